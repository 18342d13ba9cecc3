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

pub(crate) mod epub;
pub(crate) mod html;
mod text;
mod tree;
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
    /// Which front and back matter is kept, and the table of contents' chapter level.
    pub choice: Choice,
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
    /// The parts it is in, outermost first (its title starts with their names).
    pub parts: Vec<String>,
}

/// A part of the book left out, why, and its size in characters.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Skipped {
    pub title: String,
    pub reason: String,
    pub characters: usize,
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
    /// The book's own PLS lexicon (the first in its package), when narrate can send its rules.
    pub lexicon: Option<Lexicon>,
    /// The pronunciations the text gives inline (`ssml:ph`), one a word, none of the lexicon's.
    pub pronunciations: Vec<crate::pronounce::Rule>,
    /// What the import says besides (a lexicon it could not use, inline pronunciations left
    /// out and why).
    pub notes: Vec<String>,
}

/// A PLS lexicon from the book: its bytes, written beside the manifest, and its rules.
#[derive(Clone, Debug)]
pub(crate) struct Lexicon {
    /// Its path in the book.
    pub name: String,
    pub bytes: Vec<u8>,
    pub rules: Vec<crate::pronounce::Rule>,
}

/// A part of a book before front and back matter are told apart.
#[derive(Clone, Debug, Default)]
pub(crate) struct Part {
    pub(crate) title: String,
    pub(crate) heading: Option<String>,
    pub(crate) paragraphs: Vec<String>,
    /// Structural kinds the book declares for it (`cover`, `toc`, `copyright-page`...).
    pub(crate) kinds: Vec<String>,
    /// The parts of the book it is in, outermost first.
    pub(crate) parts: Vec<String>,
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

/// The kinds of front and back matter narrate leaves out unless kept: the name `--keep` takes,
/// and the reason the import summary gives.
pub(crate) const MATTER: &[(&str, &str)] = &[
    ("frontmatter", "before the first table-of-contents entry"),
    ("cover", "cover page"),
    ("titlepage", "title page"),
    ("toc", "table of contents"),
    ("landmarks", "landmarks"),
    ("copyright-page", "copyright page"),
    ("colophon", "colophon"),
    ("index", "index"),
    ("bibliography", "bibliography"),
    ("glossary", "glossary"),
    ("endnotes", "endnotes"),
    ("footnotes", "footnotes"),
    ("pagebreak", "page numbers"),
    ("loi", "list of illustrations"),
    ("lot", "list of tables"),
    ("licence", "licence"),
    ("pg-header", "Project Gutenberg's header"),
];

/// The `epub:type` and `role` values (and narrate's own marks) of each kind of matter.
const KINDS: &[(&str, &str)] = &[
    ("frontmatter-before-toc", "frontmatter"),
    ("cover", "cover"),
    ("doc-cover", "cover"),
    ("titlepage", "titlepage"),
    ("title-page", "titlepage"),
    ("halftitlepage", "titlepage"),
    ("toc", "toc"),
    ("doc-toc", "toc"),
    ("landmarks", "landmarks"),
    ("copyright-page", "copyright-page"),
    ("colophon", "colophon"),
    ("doc-colophon", "colophon"),
    ("index", "index"),
    ("doc-index", "index"),
    ("bibliography", "bibliography"),
    ("doc-bibliography", "bibliography"),
    ("glossary", "glossary"),
    ("doc-glossary", "glossary"),
    ("endnotes", "endnotes"),
    ("doc-endnotes", "endnotes"),
    ("rearnotes", "endnotes"),
    ("footnotes", "footnotes"),
    ("loi", "loi"),
    ("lot", "lot"),
    ("pg-header", "pg-header"),
    ("pg-footer", "licence"),
];

/// The kind of matter these `epub:type`/`role` values declare, if any (the first that does).
pub(crate) fn matter_type<'a>(kinds: impl IntoIterator<Item = &'a String>) -> Option<&'static str> {
    kinds
        .into_iter()
        .find_map(|k| KINDS.iter().find(|(n, _)| n == k).map(|(_, t)| *t))
}

/// The reason the summary gives for a kind of matter.
pub(crate) fn reason(kind: &str) -> &'static str {
    MATTER
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("front or back matter", |(_, r)| r)
}

/// The kind of front or back matter a part is, if it is: from the kinds the book declares, or
/// else from its title.
pub(crate) fn matter(title: &str, kinds: &[String]) -> Option<&'static str> {
    if let Some(kind) = matter_type(kinds) {
        return Some(kind);
    }
    let t = title.trim().trim_end_matches('.').to_lowercase();
    let named: &[(&str, &str)] = &[
        ("cover", "cover"),
        ("contents", "toc"),
        ("table of contents", "toc"),
        ("copyright", "copyright-page"),
        ("index", "index"),
        ("title page", "titlepage"),
        ("colophon", "colophon"),
        ("bibliography", "bibliography"),
        ("glossary", "glossary"),
        ("license", "licence"),
        ("licence", "licence"),
    ];
    if let Some((_, kind)) = named.iter().find(|(n, _)| *n == t) {
        return Some(kind);
    }
    if t.contains("project gutenberg") && (t.contains("license") || t.contains("licence")) {
        return Some("licence");
    }
    None
}

/// Which front and back matter is kept (`--keep-all`, `--keep KIND`), and where the chapters
/// are in a nested table of contents (`--toc-depth`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Choice {
    pub all: bool,
    pub kinds: Vec<String>,
    pub toc_depth: Option<usize>,
}

impl Choice {
    pub(crate) fn keeps(&self, kind: &str) -> bool {
        self.all || self.kinds.iter().any(|k| k == kind)
    }
}

/// Why a part without paragraphs is skipped.
const NO_TEXT: &str = "no text besides its title";

/// Parts into chapters: front and back matter and parts without text are skipped (each with
/// its reason and size) unless `choice` keeps the matter.
pub(crate) fn chapters(parts: Vec<Part>, choice: &Choice, book: &mut Book) {
    for part in parts {
        if part.paragraphs.is_empty() {
            let title = if part.title.is_empty() {
                "(untitled)".to_string()
            } else {
                part.title
            };
            book.skipped.push(Skipped {
                characters: part.heading.map_or(0, |h| h.chars().count()),
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
        let kind = matter(&part.title, &part.kinds).or(title_page.then_some("titlepage"));
        if let Some(kind) = kind.filter(|k| !choice.keeps(k)) {
            book.skipped.push(Skipped {
                title: part.title,
                reason: reason(kind).into(),
                characters: chars + part.heading.map_or(0, |h| h.chars().count()),
            });
            continue;
        }
        book.chapters.push(Chapter {
            title: part.title,
            heading: part.heading,
            paragraphs: part.paragraphs,
            parts: part.parts,
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
            epub::read(bytes, &options.choice, html_options).map_err(|e| bad(path, e))?
        }
        "md" | "markdown" | "txt" | "text" | "html" | "htm" | "xhtml" => {
            let source = crate::files::read_text(path, crate::files::MAX_INPUT_BYTES)
                .map_err(|e| bad(path, format!("cannot read: {e}")))?;
            match ext.as_str() {
                "md" | "markdown" => text::read_markdown(&source, &options.choice),
                "txt" | "text" => {
                    text::read_plain(&source, options.chapter_pattern.as_deref(), options)
                        .map_err(|e| bad(path, e))?
                }
                _ => text::read_html(&source, &options.choice, html_options)
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
