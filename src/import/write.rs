//! Writing an imported book: its manifest (YAML a person can read and edit, with what was
//! skipped as comments), one text file per chapter and the cover, never over the book or an
//! existing file without `--force`; the same manifest in memory for a book rendered directly;
//! and the summary `import` prints.
//!
//! Not responsible for reading books (see `epub`, `html`, `text`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{Book, DEFAULT_FORMAT, DEFAULT_MODEL, DEFAULT_VOICE_ID, ImportOptions, bad, read_book};

/// The models that take `language_code` (the API: "Currently only Turbo v2.5 and Flash v2.5
/// support language enforcement").
const LANGUAGE_MODELS: &[&str] = &["eleven_turbo_v2_5", "eleven_flash_v2_5"];

/// What `import` wrote.
#[derive(Debug)]
pub(crate) struct Imported {
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

/// The files beside the chapters' texts: the cover and the book's lexicon.
#[derive(Default)]
struct Side {
    cover: Option<PathBuf>,
    lexicon: Option<PathBuf>,
}

impl Side {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        self.cover.iter().chain(&self.lexicon).map(PathBuf::as_path)
    }
}

/// The files `import` would write for this book: the chapters' texts in order, and beside
/// them the cover and the lexicon.
fn chapter_files(book: &Book, dir: &Path) -> (Vec<PathBuf>, Side) {
    let width = book.chapters.len().to_string().len().max(2);
    let files = book
        .chapters
        .iter()
        .enumerate()
        .map(|(k, c)| {
            dir.join(format!(
                "{:0width$}-{}.txt",
                k + 1,
                crate::files::slug(&c.title)
            ))
        })
        .collect();
    let side = Side {
        cover: book
            .cover
            .as_ref()
            .map(|c| dir.join(format!("cover.{}", c.extension))),
        lexicon: book.lexicon.as_ref().map(|_| dir.join("lexicon.pls")),
    };
    (files, side)
}

/// Writes the manifest and its chapter files. The book and an existing manifest (without
/// `force`) are never overwritten.
pub(crate) fn write(
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
    let (files, side) = chapter_files(book, &dir);
    refuse_overwrites(book_path, manifest, &dir, &files, &side, options.force)?;
    let yaml = manifest_yaml(book, book_path, manifest, Some(&files), &side, options)?;
    let io = |path: &Path, e: std::io::Error| bad(path, format!("cannot write: {e}"));
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    for (chapter, path) in book.chapters.iter().zip(&files) {
        let mut text = chapter.paragraphs.join("\n\n");
        text.push('\n');
        crate::files::write_atomic(path, text.as_bytes()).map_err(|e| io(path, e))?;
    }
    if let (Some(c), Some(path)) = (&book.cover, &side.cover) {
        crate::files::write_atomic(path, &c.bytes).map_err(|e| io(path, e))?;
    }
    if let (Some(l), Some(path)) = (&book.lexicon, &side.lexicon) {
        crate::files::write_atomic(path, &l.bytes).map_err(|e| io(path, e))?;
    }
    crate::files::write_atomic(manifest, yaml.as_bytes()).map_err(|e| io(manifest, e))?;
    Ok(Imported {
        manifest: manifest.to_path_buf(),
        files,
        cover: side.cover,
    })
}

/// Refuses to write over the book, into a chapter folder that is not a directory, or (without
/// `force`) over an existing manifest, chapter text or cover.
fn refuse_overwrites(
    book_path: &Path,
    manifest: &Path,
    dir: &Path,
    files: &[PathBuf],
    side: &Side,
    force: bool,
) -> anyhow::Result<()> {
    let book_id = crate::files::identity(book_path);
    for path in std::iter::once(manifest)
        .chain(files.iter().map(PathBuf::as_path))
        .chain(side.paths())
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
    if std::fs::symlink_metadata(dir).is_ok_and(|m| !m.is_dir()) {
        return Err(bad(
            manifest,
            format!(
                "the chapter texts go in {}, which exists and is not a directory; give another -o",
                dir.display()
            ),
        ));
    }
    if !force && std::fs::symlink_metadata(manifest).is_ok() {
        return Err(bad(
            manifest,
            "already exists; give another -o, or --force to replace it and its chapter files",
        ));
    }
    if !force
        && let Some(taken) = files
            .iter()
            .map(PathBuf::as_path)
            .chain(side.paths())
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
    Ok(())
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
    side: &Side,
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
        .meta
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
        ("title", &book.meta.title),
        ("author", &book.meta.author),
        ("description", &book.meta.description),
        ("year", &book.meta.year),
    ] {
        if let Some(v) = value {
            writeln!(y, "{key}: {}", quoted(v))?;
        }
    }
    if let Some(c) = &side.cover {
        writeln!(y, "cover: {}", quoted(&rel(c)))?;
    }
    if book.format.starts_with("EPUB") {
        writeln!(y, "source: {}", quoted(&rel(book_path)))?;
    }
    pronunciations_yaml(&mut y, book, side.lexicon.as_ref().map(|p| rel(p)))?;
    writeln!(y, "output: {}", quoted(&audio))?;
    defaults_yaml(&mut y, options, model, format, language.as_deref())?;
    segments_yaml(&mut y, book, files, options.title_pause_ms, &rel)?;
    Ok(y)
}

/// The book's pronunciations: its lexicon as `pronunciation_file` (or, when it is not
/// written beside the manifest, its rules inline), then the text's own `ssml:ph`.
fn pronunciations_yaml(y: &mut String, book: &Book, lexicon: Option<String>) -> std::fmt::Result {
    let mut rules: Vec<&crate::pronounce::Rule> = Vec::new();
    match (&book.lexicon, lexicon) {
        (Some(l), Some(path)) => {
            writeln!(y, "# The book's lexicon, {}", l.name.replace('\n', " "))?;
            writeln!(y, "pronunciation_file: {}", quoted(&path))?;
        }
        (Some(l), None) => rules.extend(&l.rules),
        (None, _) => {}
    }
    rules.extend(&book.pronunciations);
    if rules.is_empty() {
        return Ok(());
    }
    writeln!(y, "pronunciations:")?;
    for r in rules {
        writeln!(y, "  - word: {}", quoted(&r.word))?;
        match &r.spoken {
            crate::pronounce::Spoken::Alias { alias } => {
                writeln!(y, "    alias: {}", quoted(alias))?
            }
            crate::pronounce::Spoken::Phoneme { phoneme, alphabet } => {
                writeln!(y, "    phoneme: {}", quoted(phoneme))?;
                writeln!(y, "    alphabet: {}", quoted(alphabet))?;
            }
        }
    }
    Ok(())
}

/// Whether `path` is a book `import` reads (by its extension), rather than a manifest.
pub(crate) fn is_book(path: &Path) -> bool {
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
/// state directory beside the book (`.narrate/cover-<stem>.jpg`), for the output's artwork,
/// and only with `write_cover` (`check` and `plan` write nothing: their manifest has no cover).
pub(crate) fn manifest_in_memory(
    path: &Path,
    options: &ImportOptions,
    write_cover: bool,
) -> anyhow::Result<String> {
    let book = read_book(path, options)?;
    let base = crate::files::parent_dir(path).to_path_buf();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "book".into());
    let cover = match book.cover.as_ref().filter(|_| write_cover) {
        Some(c) => {
            let state = base.join(".narrate");
            crate::state::check_links(&state)?;
            let file = state.join(format!(
                "cover-{}.{}",
                crate::files::slug(&stem),
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
    let side = Side {
        cover,
        lexicon: None,
    };
    manifest_yaml(&book, path, path, None, &side, &options)
}

/// Each chapter with its size and file, under the parts it is in (each part on a line of its
/// own where it opens).
fn chapter_tree(s: &mut String, book: &Book, files: &[PathBuf]) {
    let size =
        |paragraphs: &[String]| -> usize { paragraphs.iter().map(|p| p.chars().count()).sum() };
    let mut parts: &[String] = &[];
    for (k, (c, f)) in book.chapters.iter().zip(files).enumerate() {
        // Each part the chapter opens, on a line of its own above it.
        let shared = parts
            .iter()
            .zip(&c.parts)
            .take_while(|(a, b)| a == b)
            .count();
        for (depth, name) in c.parts.iter().enumerate().skip(shared) {
            let _ = writeln!(s, "  {:indent$}{name}", "", indent = 2 * depth);
        }
        parts = &c.parts;
        let prefix: String = c.parts.iter().map(|p| format!("{p}: ")).collect();
        let own = c.title.strip_prefix(&prefix).unwrap_or(&c.title);
        let _ = writeln!(
            s,
            "  {:indent$}{:>2}. {own}  ({} characters, {})",
            "",
            k + 1,
            size(&c.paragraphs),
            f.display(),
            indent = 2 * c.parts.len()
        );
    }
}

/// The book as a tree for the terminal: its parts, each chapter with its size and file, each
/// skipped part with its reason and size, and what leaving them out saves in credits at
/// `model`'s rate.
pub(crate) fn summary(book: &Book, imported: &Imported, model: Option<&str>) -> String {
    let mut s = String::new();
    let size =
        |paragraphs: &[String]| -> usize { paragraphs.iter().map(|p| p.chars().count()).sum() };
    let chars: usize = book.chapters.iter().map(|c| size(&c.paragraphs)).sum();
    let _ = writeln!(
        s,
        "imported {} ({}): {} chapters, {chars} characters",
        book.meta.title.as_deref().unwrap_or("the book"),
        book.format,
        book.chapters.len()
    );
    chapter_tree(&mut s, book, &imported.files);
    let model = model.unwrap_or(DEFAULT_MODEL);
    let rate = crate::models::find(model).map_or(1.0, |m| m.credits_per_char);
    for sk in &book.skipped {
        let _ = writeln!(
            s,
            "  skipped: {} ({}, {} characters, about {:.0} credits)",
            sk.title,
            sk.reason,
            sk.characters,
            sk.characters as f64 * rate
        );
    }
    let saved: usize = book.skipped.iter().map(|sk| sk.characters).sum();
    if saved > 0 {
        let _ = writeln!(
            s,
            "  not narrated: {saved} characters, about {:.0} credits with {model}",
            saved as f64 * rate
        );
    }
    if !book.left_out.is_empty() {
        let items: Vec<String> = book
            .left_out
            .iter()
            .map(|(w, n)| format!("{n} {w}{}", if *n == 1 { "" } else { "s" }))
            .collect();
        let _ = writeln!(s, "  left out of the text: {}", items.join(", "));
    }
    if let Some(l) = &book.lexicon {
        let _ = writeln!(
            s,
            "  pronunciations: {} words from the book's lexicon {}",
            l.rules.len(),
            l.name
        );
    }
    if !book.pronunciations.is_empty() {
        let _ = writeln!(
            s,
            "  pronunciations: {} words from the text's own phonemes (ssml:ph)",
            book.pronunciations.len()
        );
    }
    for note in &book.notes {
        let _ = writeln!(s, "  note: {note}");
    }
    if let Some(c) = &imported.cover {
        let _ = writeln!(s, "  cover: {}", c.display());
    }
    let _ = write!(s, "manifest {}", imported.manifest.display());
    s
}

/// The manifest's `defaults`: voice, model, format, and the book's language where the model
/// takes one.
fn defaults_yaml(
    y: &mut String,
    options: &ImportOptions,
    model: &str,
    format: &str,
    language: Option<&str>,
) -> std::fmt::Result {
    writeln!(y, "defaults:")?;
    match options.voice.as_deref() {
        Some(v) if !is_voice_id(v) => writeln!(y, "  voice: {}", quoted(v))?,
        Some(v) => writeln!(y, "  voice_id: {v}")?,
        None => writeln!(y, "  voice_id: {DEFAULT_VOICE_ID}")?,
    }
    writeln!(y, "  model_id: {}", quoted(model))?;
    writeln!(y, "  output_format: {}", quoted(format))?;
    match language {
        Some(l) if LANGUAGE_MODELS.contains(&model) => writeln!(y, "  language_code: {l}")?,
        Some(l) => writeln!(
            y,
            "  # language: {l} (not sent: {model} does not take language_code)"
        )?,
        None => {}
    }
    Ok(())
}

/// The manifest's `segments`: each chapter's title, read and followed by a pause, then its body.
fn segments_yaml(
    y: &mut String,
    book: &Book,
    files: Option<&[PathBuf]>,
    title_pause_ms: u64,
    rel: &dyn Fn(&Path) -> String,
) -> std::fmt::Result {
    writeln!(y, "segments:")?;
    let width = book.chapters.len().to_string().len().max(2);
    for (k, chapter) in book.chapters.iter().enumerate() {
        let id = format!("ch{:0width$}", k + 1);
        let title = quoted(&chapter.title);
        let heading = chapter.heading.as_deref().unwrap_or(&chapter.title);
        writeln!(y, "  - id: {id}-title")?;
        writeln!(y, "    chapter: {title}")?;
        writeln!(y, "    text: {}", quoted(heading))?;
        writeln!(y, "    pause_after_ms: {}", title_pause_ms)?;
        writeln!(y, "  - id: {id}-body")?;
        writeln!(y, "    chapter: {title}")?;
        match files.and_then(|f| f.get(k)) {
            Some(file) => writeln!(y, "    text_file: {}", quoted(&rel(file)))?,
            None => writeln!(y, "    text: {}", quoted(&chapter.paragraphs.join("\n\n")))?,
        }
    }
    Ok(())
}
