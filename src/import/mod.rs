//! `narrate import`: the book a producer has (EPUB 2 or 3, Markdown, plain text, HTML) read into
//! chapters of paragraphs, written as a manifest and one text file per chapter beside it.
//!
//! - `epub`: the container, its package (metadata, spine, cover) and its table of contents;
//!   `html`: one (X)HTML page into blocks; `text`: plain text and Markdown.
//! - this file: what every format shares (cleaning text, telling front and back matter from
//!   the book, the chapters' ids and file names) and writing the manifest.
//!
//! Not responsible for rendering (the manifest is an ordinary one; see `manifest`).

use std::path::{Path, PathBuf};

use crate::error::UsageError;

mod epub;
mod html;
mod text;
mod write;

pub(crate) use write::{is_book, manifest_in_memory, summary, write};

/// The largest book file narrate reads (an EPUB with its images).
pub(crate) const MAX_BOOK_BYTES: u64 = 512 * 1024 * 1024;

/// How to import.
#[derive(Clone, Debug, Default)]
pub(crate) struct ImportOptions {
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
pub(crate) const DEFAULT_TITLE_PAUSE_MS: u64 = 1500;

/// The default voice of an imported manifest (George, a premade voice).
pub(crate) const DEFAULT_VOICE_ID: &str = "JBFqnCBsd6RMkjVDRZzb";
/// The default model of an imported manifest.
pub(crate) const DEFAULT_MODEL: &str = "eleven_multilingual_v2";
/// The default format of an imported manifest.
pub(crate) const DEFAULT_FORMAT: &str = "mp3_44100_128";

/// A cover image.
#[derive(Clone, Debug)]
pub(crate) struct Cover {
    /// `jpg` or `png`, from the image's first bytes.
    pub extension: &'static str,
    pub bytes: Vec<u8>,
}

/// A chapter: the name players show, the heading read aloud, the paragraphs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Chapter {
    pub title: String,
    /// The chapter's heading as the book prints it, read aloud before the text.
    pub heading: Option<String>,
    pub paragraphs: Vec<String>,
}

/// A part of the book left out, and why.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Skipped {
    pub title: String,
    pub reason: String,
}

/// A book read into chapters.
#[derive(Clone, Debug, Default)]
pub(crate) struct Book {
    /// `EPUB 3`, `EPUB 2`, `Markdown`, `text`, `HTML`.
    pub format: &'static str,
    /// Title, author, language (a BCP 47 tag, as the book gives it), description and year; its
    /// cover's path is set when the cover is written beside the manifest.
    pub meta: crate::book::Metadata,
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
            .meta
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
pub(crate) fn read_book(path: &Path, options: &ImportOptions) -> anyhow::Result<Book> {
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
    if book.meta.title.is_none() {
        book.meta.title = path
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
