//! `narrate import`: the book a producer has (EPUB 2 or 3, Markdown, plain text, HTML) read into
//! chapters of paragraphs, written as a manifest and one text file per chapter beside it.
//!
//! - `epub`: the container, its package (metadata, spine, cover) and its table of contents;
//!   `html`: one (X)HTML page into blocks; `text`: plain text and Markdown.
//! - this file: what every format shares (cleaning text, telling front and back matter from
//!   the book, the chapters' ids and file names) and writing the manifest.
//!
//! Not responsible for rendering (the manifest is an ordinary one; see `manifest`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::UsageError;

mod epub;
mod html;
mod text;

/// The largest book file narrate reads (an EPUB with its images).
pub const MAX_BOOK_BYTES: u64 = 512 * 1024 * 1024;

/// How to import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// A voice id (20 letters and digits) or a voice name, for every segment.
    pub voice: Option<String>,
    pub model: Option<String>,
    pub output_format: Option<String>,
    /// The audio the manifest renders to, relative to the working directory.
    pub audio_output: Option<PathBuf>,
    /// Plain text: a line matching this starts a chapter (instead of the built-in headings).
    pub chapter_pattern: Option<String>,
    /// Keep front and back matter (cover, contents, copyright, licence, index).
    pub keep_all: bool,
    /// Read images' `alt` text.
    pub alt_text: bool,
    /// The pause after each chapter title, in milliseconds.
    pub title_pause_ms: u64,
    /// Overwrite an existing manifest.
    pub force: bool,
}

/// The default pause after a chapter title, in milliseconds.
pub const DEFAULT_TITLE_PAUSE_MS: u64 = 1500;

/// The default voice of an imported manifest (George, a premade voice).
pub const DEFAULT_VOICE_ID: &str = "JBFqnCBsd6RMkjVDRZzb";
/// The default model of an imported manifest.
pub const DEFAULT_MODEL: &str = "eleven_multilingual_v2";
/// The default format of an imported manifest.
pub const DEFAULT_FORMAT: &str = "mp3_44100_128";

/// A cover image.
#[derive(Clone, Debug)]
pub struct Cover {
    /// `jpg` or `png`, from the image's first bytes.
    pub extension: &'static str,
    pub bytes: Vec<u8>,
}

/// A chapter: the name players show, the heading read aloud, the paragraphs.
#[derive(Clone, Debug, PartialEq)]
pub struct Chapter {
    pub title: String,
    /// The chapter's heading as the book prints it, read aloud before the text.
    pub heading: Option<String>,
    pub paragraphs: Vec<String>,
}

/// A part of the book left out, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    pub title: String,
    pub reason: String,
}

/// A book read into chapters.
#[derive(Clone, Debug, Default)]
pub struct Book {
    /// `EPUB 3`, `EPUB 2`, `Markdown`, `text`, `HTML`.
    pub format: &'static str,
    pub title: Option<String>,
    pub author: Option<String>,
    /// A BCP 47 tag, as the book gives it.
    pub language: Option<String>,
    pub description: Option<String>,
    pub year: Option<String>,
    pub cover: Option<Cover>,
    pub chapters: Vec<Chapter>,
    pub skipped: Vec<Skipped>,
    /// What was left out of the text, counted: `("table", 2)`.
    pub left_out: Vec<(&'static str, usize)>,
}

/// A part of a book before front and back matter are told apart.
#[derive(Clone, Debug, Default)]
pub(crate) struct Part {
    pub(crate) title: String,
    pub(crate) heading: Option<String>,
    pub(crate) paragraphs: Vec<String>,
    /// Structural kinds the book declares for it (`cover`, `toc`, `copyright-page`...).
    pub(crate) kinds: Vec<String>,
}

/// Whitespace collapsed; soft hyphens, zero-width characters and byte-order marks removed;
/// non-breaking spaces made spaces. Typographic quotes and dashes are kept.
pub(crate) fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        match c {
            '\u{ad}' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}' => {}
            c if c.is_whitespace() || c.is_control() => space = true,
            c => {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                space = false;
                out.push(c);
            }
        }
    }
    out
}

/// Why a part is front or back matter, if it is: from the kinds the book declares, or else
/// from its title.
pub(crate) fn matter(title: &str, kinds: &[String]) -> Option<&'static str> {
    const KINDS: &[(&str, &str)] = &[
        (
            "frontmatter-before-toc",
            "before the first table-of-contents entry",
        ),
        ("cover", "cover page"),
        ("toc", "table of contents"),
        ("doc-toc", "table of contents"),
        ("copyright-page", "copyright page"),
        ("doc-colophon", "colophon"),
        ("colophon", "colophon"),
        ("index", "index"),
        ("doc-index", "index"),
        ("titlepage", "title page"),
        ("title-page", "title page"),
        ("halftitlepage", "title page"),
        ("loi", "list of illustrations"),
        ("lot", "list of tables"),
    ];
    for k in kinds {
        if let Some((_, why)) = KINDS.iter().find(|(n, _)| n == k) {
            return Some(why);
        }
    }
    let t = title.trim().trim_end_matches('.').to_lowercase();
    let named: &[(&str, &str)] = &[
        ("cover", "cover page"),
        ("contents", "table of contents"),
        ("table of contents", "table of contents"),
        ("copyright", "copyright page"),
        ("index", "index"),
        ("title page", "title page"),
        ("colophon", "colophon"),
        ("license", "licence"),
        ("licence", "licence"),
    ];
    if let Some((_, why)) = named.iter().find(|(n, _)| *n == t) {
        return Some(why);
    }
    if t.contains("project gutenberg") && (t.contains("license") || t.contains("licence")) {
        return Some("licence");
    }
    None
}

/// Why a part without paragraphs is skipped.
const NO_TEXT: &str = "no text besides its title";

/// Parts into chapters: front and back matter and parts without text are skipped (each with
/// its reason) unless `keep_all` keeps the matter.
pub(crate) fn chapters(parts: Vec<Part>, keep_all: bool, book: &mut Book) {
    for part in parts {
        if part.paragraphs.is_empty() {
            let title = if part.title.is_empty() {
                "(untitled)".to_string()
            } else {
                part.title
            };
            book.skipped.push(Skipped {
                title,
                reason: NO_TEXT.into(),
            });
            continue;
        }
        let chars: usize = part.paragraphs.iter().map(|p| p.chars().count()).sum();
        let title_page = book
            .title
            .as_deref()
            .is_some_and(|t| clean(t).eq_ignore_ascii_case(&part.title))
            && chars < 500;
        let why = matter(&part.title, &part.kinds).or(title_page.then_some("title page"));
        if !keep_all && let Some(why) = why {
            book.skipped.push(Skipped {
                title: part.title,
                reason: why.into(),
            });
            continue;
        }
        book.chapters.push(Chapter {
            title: part.title,
            heading: part.heading,
            paragraphs: part.paragraphs,
        });
    }
}

/// Adds counted left-out items to a book's list.
pub(crate) fn add_left_out(book: &mut Book, items: &[(&'static str, usize)]) {
    for (what, n) in items {
        match book.left_out.iter_mut().find(|(w, _)| w == what) {
            Some((_, m)) => *m += n,
            None => book.left_out.push((what, *n)),
        }
    }
}

/// `jpg` or `png` from an image's first bytes.
pub(crate) fn image_extension(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("jpg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("png")
    } else {
        None
    }
}

/// An import problem: exit status 2, naming the book.
fn bad(path: &Path, message: impl std::fmt::Display) -> anyhow::Error {
    UsageError(format!("{}: {message}", path.display())).into()
}

/// Reads a book by its extension: `.epub`, `.md`/`.markdown`, `.txt`, `.html`/`.htm`/`.xhtml`.
pub fn read_book(path: &Path, options: &ImportOptions) -> anyhow::Result<Book> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let html_options = html::HtmlOptions {
        alt_text: options.alt_text,
    };
    let mut book = match ext.as_str() {
        "epub" => {
            let bytes = crate::files::read_bytes(path, MAX_BOOK_BYTES)
                .map_err(|e| bad(path, format!("cannot read: {e}")))?;
            epub::read(bytes, options.keep_all, html_options).map_err(|e| bad(path, e))?
        }
        "md" | "markdown" | "txt" | "text" | "html" | "htm" | "xhtml" => {
            let source = crate::files::read_text(path, crate::files::MAX_INPUT_BYTES)
                .map_err(|e| bad(path, format!("cannot read: {e}")))?;
            match ext.as_str() {
                "md" | "markdown" => text::read_markdown(&source, options.keep_all),
                "txt" | "text" => {
                    text::read_plain(&source, options.chapter_pattern.as_deref(), options)
                        .map_err(|e| bad(path, e))?
                }
                _ => text::read_html(&source, options.keep_all, html_options)
                    .map_err(|e| bad(path, e))?,
            }
        }
        _ => {
            return Err(bad(
                path,
                "not a book narrate can import: give an .epub, .md, .txt or .html file",
            ));
        }
    };
    if book.title.is_none() {
        book.title = path
            .file_stem()
            .map(|s| s.to_string_lossy().replace(['_', '-'], " "));
    }
    let no_text = book.skipped.iter().all(|s| s.reason == NO_TEXT);
    if book.chapters.is_empty() && no_text {
        return Err(bad(path, "the book has no text to narrate"));
    }
    if book.chapters.is_empty() {
        let skipped = book
            .skipped
            .iter()
            .map(|s| format!("{} ({})", s.title, s.reason))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(bad(
            path,
            format!(
                "the book has no chapter to narrate (skipped: {skipped}); --keep-all keeps front and back matter"
            ),
        ));
    }
    Ok(book)
}

/// The models that take `language_code` (the API: "Currently only Turbo v2.5 and Flash v2.5
/// support language enforcement").
const LANGUAGE_MODELS: &[&str] = &["eleven_turbo_v2_5", "eleven_flash_v2_5"];

/// What `import` wrote.
#[derive(Debug)]
pub struct Imported {
    pub manifest: PathBuf,
    /// Each chapter's text file, in order.
    pub files: Vec<PathBuf>,
    pub cover: Option<PathBuf>,
}

/// `to` relative to the directory `from` (both taken from the working directory when
/// relative), for a path written into a manifest.
fn relative(from: &Path, to: &Path) -> PathBuf {
    use std::path::Component;
    let cwd = std::env::current_dir().unwrap_or_default();
    let abs = |p: &Path| crate::manifest::normalize(&cwd.join(p));
    let (from, to) = (abs(from), abs(to));
    let a: Vec<Component<'_>> = from.components().collect();
    let b: Vec<Component<'_>> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    out
}

/// A YAML string: JSON's double-quoted strings are YAML's.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The files `import` would write for this book, in order: the chapters' texts, the cover.
fn chapter_files(book: &Book, dir: &Path) -> (Vec<PathBuf>, Option<PathBuf>) {
    let width = book.chapters.len().to_string().len().max(2);
    let files = book
        .chapters
        .iter()
        .enumerate()
        .map(|(k, c)| {
            dir.join(format!(
                "{:0width$}-{}.txt",
                k + 1,
                crate::output::names::slug(&c.title)
            ))
        })
        .collect();
    let cover = book
        .cover
        .as_ref()
        .map(|c| dir.join(format!("cover.{}", c.extension)));
    (files, cover)
}

/// Writes the manifest and its chapter files. The book and an existing manifest (without
/// `force`) are never overwritten.
pub fn write(
    book: &Book,
    book_path: &Path,
    manifest: &Path,
    options: &ImportOptions,
) -> anyhow::Result<Imported> {
    let stem = manifest
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "book".into());
    let dir = match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(&stem),
        _ => PathBuf::from(&stem),
    };
    let (files, cover) = chapter_files(book, &dir);
    let book_id = crate::files::identity(book_path);
    for path in std::iter::once(manifest)
        .chain(files.iter().map(PathBuf::as_path))
        .chain(cover.as_deref())
    {
        if crate::files::identity(path) == book_id {
            return Err(bad(
                manifest,
                format!(
                    "{} is the book being imported; narrate never writes over its inputs",
                    path.display()
                ),
            ));
        }
    }
    if std::fs::symlink_metadata(&dir).is_ok_and(|m| !m.is_dir()) {
        return Err(bad(
            manifest,
            format!(
                "the chapter texts go in {}, which exists and is not a directory; give another -o",
                dir.display()
            ),
        ));
    }
    if !options.force && std::fs::symlink_metadata(manifest).is_ok() {
        return Err(bad(
            manifest,
            "already exists; give another -o, or --force to replace it and its chapter files",
        ));
    }
    if !options.force
        && let Some(taken) = files
            .iter()
            .chain(&cover)
            .find(|p| std::fs::symlink_metadata(p).is_ok())
    {
        return Err(bad(
            manifest,
            format!(
                "{} already exists; give another -o, or --force to replace the chapter files",
                taken.display()
            ),
        ));
    }
    let yaml = manifest_yaml(
        book,
        book_path,
        manifest,
        Some(&files),
        cover.as_deref(),
        options,
    )?;
    let io = |path: &Path, e: std::io::Error| bad(path, format!("cannot write: {e}"));
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    for (chapter, path) in book.chapters.iter().zip(&files) {
        let mut text = chapter.paragraphs.join("\n\n");
        text.push('\n');
        crate::files::write_atomic(path, text.as_bytes()).map_err(|e| io(path, e))?;
    }
    if let (Some(c), Some(path)) = (&book.cover, &cover) {
        crate::files::write_atomic(path, &c.bytes).map_err(|e| io(path, e))?;
    }
    crate::files::write_atomic(manifest, yaml.as_bytes()).map_err(|e| io(manifest, e))?;
    Ok(Imported {
        manifest: manifest.to_path_buf(),
        files,
        cover,
    })
}

/// A voice given as an id: 20 letters and digits (the API's ids); anything else is a name.
fn is_voice_id(voice: &str) -> bool {
    voice.len() == 20 && voice.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The manifest of a book: each chapter's body from its file in `files`, or (without files)
/// written inline.
fn manifest_yaml(
    book: &Book,
    book_path: &Path,
    manifest: &Path,
    files: Option<&[PathBuf]>,
    cover: Option<&Path>,
    options: &ImportOptions,
) -> anyhow::Result<String> {
    let base = crate::files::parent_dir(manifest);
    let rel = |p: &Path| relative(base, p).to_string_lossy().replace('\\', "/");
    let model = options.model.as_deref().unwrap_or(DEFAULT_MODEL);
    let format = options.output_format.as_deref().unwrap_or(DEFAULT_FORMAT);
    let stem = manifest
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "book".into());
    let audio = match &options.audio_output {
        Some(p) => rel(p),
        None => {
            let ext = if format.starts_with("mp3") {
                "mp3"
            } else {
                "wav"
            };
            format!("{stem}.{ext}")
        }
    };
    let language = book
        .language
        .as_deref()
        .and_then(|l| l.split(['-', '_']).next())
        .map(str::to_ascii_lowercase)
        .filter(|l| l.len() == 2 && l.chars().all(|c| c.is_ascii_lowercase()));
    let mut y = String::new();
    let name = book_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    writeln!(
        y,
        "# Imported by narrate from {name} ({}): {} chapters.",
        book.format,
        book.chapters.len()
    )?;
    for s in &book.skipped {
        writeln!(
            y,
            "# Skipped: {} ({})",
            s.title.replace('\n', " "),
            s.reason
        )?;
    }
    for (key, value) in [
        ("title", &book.title),
        ("author", &book.author),
        ("description", &book.description),
        ("year", &book.year),
    ] {
        if let Some(v) = value {
            writeln!(y, "{key}: {}", quoted(v))?;
        }
    }
    if let Some(c) = cover {
        writeln!(y, "cover: {}", quoted(&rel(c)))?;
    }
    writeln!(y, "output: {}", quoted(&audio))?;
    writeln!(y, "defaults:")?;
    match options.voice.as_deref() {
        Some(v) if !is_voice_id(v) => writeln!(y, "  voice: {}", quoted(v))?,
        Some(v) => writeln!(y, "  voice_id: {v}")?,
        None => writeln!(y, "  voice_id: {DEFAULT_VOICE_ID}")?,
    }
    writeln!(y, "  model_id: {}", quoted(model))?;
    writeln!(y, "  output_format: {}", quoted(format))?;
    match &language {
        Some(l) if LANGUAGE_MODELS.contains(&model) => writeln!(y, "  language_code: {l}")?,
        Some(l) => writeln!(
            y,
            "  # language: {l} (not sent: {model} does not take language_code)"
        )?,
        None => {}
    }
    writeln!(y, "segments:")?;
    let width = book.chapters.len().to_string().len().max(2);
    for (k, chapter) in book.chapters.iter().enumerate() {
        let id = format!("ch{:0width$}", k + 1);
        let title = quoted(&chapter.title);
        let heading = chapter.heading.as_deref().unwrap_or(&chapter.title);
        writeln!(y, "  - id: {id}-title")?;
        writeln!(y, "    chapter: {title}")?;
        writeln!(y, "    text: {}", quoted(heading))?;
        writeln!(y, "    pause_after_ms: {}", options.title_pause_ms)?;
        writeln!(y, "  - id: {id}-body")?;
        writeln!(y, "    chapter: {title}")?;
        match files.and_then(|f| f.get(k)) {
            Some(file) => writeln!(y, "    text_file: {}", quoted(&rel(file)))?,
            None => writeln!(y, "    text: {}", quoted(&chapter.paragraphs.join("\n\n")))?,
        }
    }
    Ok(y)
}

/// Whether `path` is a book `import` reads (by its extension), rather than a manifest.
pub fn is_book(path: &Path) -> bool {
    path.extension().is_some_and(|e| {
        let e = e.to_string_lossy().to_ascii_lowercase();
        [
            "epub", "md", "markdown", "txt", "text", "html", "htm", "xhtml",
        ]
        .contains(&e.as_str())
    })
}

/// A book imported in memory, for `narrate render book.epub`: the manifest's text (chapter
/// texts inline), as if it were written beside the book. Only the cover is written, into the
/// state directory beside the book (`.narrate/cover-<stem>.jpg`), for the output's artwork.
pub fn manifest_in_memory(path: &Path, options: &ImportOptions) -> anyhow::Result<String> {
    let book = read_book(path, options)?;
    let base = crate::files::parent_dir(path).to_path_buf();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "book".into());
    let cover = match &book.cover {
        Some(c) => {
            let file = base.join(".narrate").join(format!(
                "cover-{}.{}",
                crate::output::names::slug(&stem),
                c.extension
            ));
            std::fs::create_dir_all(crate::files::parent_dir(&file))
                .and_then(|()| crate::files::write_atomic(&file, &c.bytes))
                .map_err(|e| bad(&file, format!("cannot write the cover: {e}")))?;
            Some(file)
        }
        None => None,
    };
    let mut options = options.clone();
    if options.audio_output.is_none() {
        let format = options.output_format.as_deref().unwrap_or(DEFAULT_FORMAT);
        let ext = if format.starts_with("mp3") {
            "mp3"
        } else {
            "wav"
        };
        options.audio_output = Some(base.join(format!("{stem}.{ext}")));
    }
    manifest_yaml(&book, path, path, None, cover.as_deref(), &options)
}

/// One line per chapter and per skipped part, for the terminal.
pub fn summary(book: &Book, imported: &Imported) -> String {
    let mut s = String::new();
    let chars: usize = book
        .chapters
        .iter()
        .flat_map(|c| &c.paragraphs)
        .map(|p| p.chars().count())
        .sum();
    let _ = writeln!(
        s,
        "imported {} ({}): {} chapters, {chars} characters",
        book.title.as_deref().unwrap_or("the book"),
        book.format,
        book.chapters.len()
    );
    for (k, (c, f)) in book.chapters.iter().zip(&imported.files).enumerate() {
        let n: usize = c.paragraphs.iter().map(|p| p.chars().count()).sum();
        let _ = writeln!(
            s,
            "  {:>2}. {}  ({n} characters, {})",
            k + 1,
            c.title,
            f.display()
        );
    }
    for sk in &book.skipped {
        let _ = writeln!(s, "  skipped: {} ({})", sk.title, sk.reason);
    }
    if !book.left_out.is_empty() {
        let items: Vec<String> = book
            .left_out
            .iter()
            .map(|(w, n)| format!("{n} {w}{}", if *n == 1 { "" } else { "s" }))
            .collect();
        let _ = writeln!(s, "  left out of the text: {}", items.join(", "));
    }
    if let Some(c) = &imported.cover {
        let _ = writeln!(s, "  cover: {}", c.display());
    }
    let _ = write!(s, "manifest {}", imported.manifest.display());
    s
}
