//! EPUB 2 and 3: the ZIP container read with bounded memory, `META-INF/container.xml` to the
//! package document (OPF), its metadata, manifest and spine, and the table of contents (the
//! EPUB 3 navigation document, or the EPUB 2 NCX) mapped onto the spine: several entries in
//! one file are cut at their anchors, and a file the TOC does not name belongs to the entry
//! before it. Without a TOC each spine file is a chapter.
//!
//! Not responsible for the XHTML itself (see `html`).

use std::collections::HashMap;
use std::io::{Cursor, Read};

use unicode_normalization::UnicodeNormalization as _;

use quick_xml::Reader;
use quick_xml::events::Event;

use super::html::{HtmlOptions, Page, read_page};
use super::{Book, Choice, Cover, add_left_out, chapters, image_extension};

mod lexicon;
mod package;
mod parts;
mod source;
mod toc;

use package::{Package, attributes, local_name, read_package, resolve};
use toc::table_of_contents;

pub(crate) use source::SourceBook;

/// The most a single file of the book may take once inflated.
const MAX_ENTRY_BYTES: u64 = 32 * 1024 * 1024;
/// The most the whole book may take once inflated (a ZIP bomb stops here; the text of a long
/// novel is a few megabytes).
const MAX_TOTAL_BYTES: u64 = 256 * 1024 * 1024;
/// The most files a book may hold.
const MAX_ENTRIES: usize = 100_000;
/// Encryption that is not DRM: font obfuscation (IDPF and Adobe).
const FONT_OBFUSCATION: &[&str] = &[
    "http://www.idpf.org/2008/embedding",
    "http://ns.adobe.com/pdf/enc#RC",
];

struct Archive {
    zip: zip::ZipArchive<Cursor<Vec<u8>>>,
    /// Bytes inflated so far.
    read: u64,
    /// Each entry's name in Unicode normal form C, to the name the archive gives it (the zip
    /// crate reads names as UTF-8, or as CP437 when they are not).
    composed: HashMap<String, String>,
}

impl Archive {
    fn new(zip: zip::ZipArchive<Cursor<Vec<u8>>>) -> Self {
        let composed = zip
            .file_names()
            .filter_map(Result::ok)
            .map(|n| (n.nfc().collect::<String>(), n.into_owned()))
            .collect();
        Archive {
            zip,
            read: 0,
            composed,
        }
    }

    /// The archive's name for `name`: as written, else the entry that is the same once both
    /// are composed (one tool writes "é" as one character, another as "e" and an accent).
    fn entry_name(&self, name: &str) -> Option<String> {
        if self.zip.index_for_name(name).is_some() {
            return Some(name.to_string());
        }
        self.composed.get(&name.nfc().collect::<String>()).cloned()
    }

    fn has(&self, name: &str) -> bool {
        self.entry_name(name).is_some()
    }

    /// The entry whose name is nearest `name`, for an error that names what is there.
    fn nearest(&self, name: &str) -> Option<&str> {
        self.composed
            .values()
            .map(|n| (strsim::levenshtein(n, name), n.as_str()))
            .min()
            .map(|(_, n)| n)
    }

    /// One file of the book, at most [`MAX_ENTRY_BYTES`] and within the book's budget.
    fn bytes(&mut self, name: &str) -> Result<Vec<u8>, String> {
        let budget = (MAX_TOTAL_BYTES - self.read).min(MAX_ENTRY_BYTES);
        let real = self.entry_name(name).unwrap_or_else(|| name.to_string());
        let entry = self
            .zip
            .by_name(&real)
            .map_err(|e| format!("{name}: {e}"))?;
        if entry.size() > budget {
            return Err(format!(
                "{name}: {} bytes once inflated, more than narrate reads ({budget})",
                entry.size()
            ));
        }
        let mut out = Vec::new();
        entry
            .take(budget + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("{name}: cannot inflate: {e}"))?;
        if out.len() as u64 > budget {
            return Err(format!(
                "{name}: inflates past its declared size and the limit of {budget} bytes"
            ));
        }
        self.read += out.len() as u64;
        Ok(out)
    }

    fn text(&mut self, name: &str) -> Result<String, String> {
        let bytes = self.bytes(name)?;
        String::from_utf8(bytes).map_err(|_| format!("{name}: not UTF-8"))
    }
}

/// The archive of an EPUB's bytes, refused when it is too large, not a ZIP, protected by DRM
/// or without its package document; with the package document's path and text.
fn open(bytes: Vec<u8>) -> Result<(Archive, String, String), String> {
    // The archive's own count, read before its directory is: a directory of millions of
    // entries is refused without being parsed.
    if let Some(n) = declared_entries(&bytes)
        && n > MAX_ENTRIES as u64
    {
        return Err(format!("{n} files, more than narrate reads"));
    }
    let zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| format!("not a ZIP archive, so not an EPUB ({e})"))?;
    if zip.len() > MAX_ENTRIES {
        return Err(format!("{} files, more than narrate reads", zip.len()));
    }
    let mut archive = Archive::new(zip);
    refuse_drm(&mut archive)?;
    if !archive.has("META-INF/container.xml") {
        return Err("not an EPUB: META-INF/container.xml is missing".into());
    }
    let container = archive.text("META-INF/container.xml")?;
    let opf_path = rootfile(&container)?;
    if !archive.has(&opf_path) {
        return Err(format!(
            "the package document {opf_path} named in META-INF/container.xml is missing"
        ));
    }
    let opf = archive.text(&opf_path)?;
    Ok((archive, opf_path, opf))
}

/// Reads an EPUB's chapters.
pub(crate) fn read(bytes: Vec<u8>, choice: &Choice, options: HtmlOptions) -> Result<Book, String> {
    let (mut archive, opf_path, opf) = open(bytes)?;
    let package = read_package(&opf, &opf_path)?;
    let mut book = book_of(&package);
    book.cover = cover(&mut archive, &package, &mut book.skipped);
    let spine = package.spine_documents();
    if spine.is_empty() {
        return Err(format!("{opf_path}: the spine lists no XHTML documents"));
    }
    let (entries, landmarks) = table_of_contents(&mut archive, &package, options)?;
    let mut pages: Vec<Page> = Vec::with_capacity(spine.len());
    for (path, _) in &spine {
        if !archive.has(path) {
            let nearest = archive
                .nearest(path)
                .map(|n| format!(" (the nearest file in it is {n})"))
                .unwrap_or_default();
            return Err(format!("{path}: in the spine but not in the book{nearest}"));
        }
        let source = archive.text(path)?;
        let page = read_page(&source, options)
            .map_err(|e| format!("{path}: the XHTML does not parse: {e}"))?;
        add_left_out(&mut book, &page.left_out);
        pages.push(page);
    }
    let kinds = file_kinds(&spine, &landmarks, &package);
    let files = parts::Files {
        spine: &spine,
        pages: &pages,
        kinds,
    };
    let marks = if entries.is_empty() {
        parts::marks_of_headings(&files)
    } else {
        parts::marks_of_toc(&entries, &files, &mut book)
    };
    let parts = parts::parts(&marks, &files, choice.toc_depth);
    chapters(parts, choice, &mut book);
    lexicon::lexicon(&mut archive, &package, &mut book);
    lexicon::inline(&pages, &mut book);
    Ok(book)
}

/// What the landmarks, the guide and the navigation document say each spine file is.
fn file_kinds(
    spine: &[(String, bool)],
    landmarks: &[(String, String)],
    package: &Package,
) -> Vec<Vec<String>> {
    let nav_path = package
        .items
        .values()
        .find(|i| i.properties.split_whitespace().any(|p| p == "nav"))
        .map(|i| i.href.clone());
    spine
        .iter()
        .map(|(path, _)| {
            let mut kinds: Vec<String> = landmarks
                .iter()
                .chain(&package.guide)
                .filter(|(_, p)| p == path)
                .map(|(t, _)| t.clone())
                .collect();
            if nav_path.as_deref() == Some(path.as_str()) {
                kinds.push("toc".into());
            }
            kinds
        })
        .collect()
}

/// Refuses a DRM-protected book: `rights.xml`, or `encryption.xml` that encrypts anything but
/// fonts (font obfuscation).
fn refuse_drm(archive: &mut Archive) -> Result<(), String> {
    if archive.has("META-INF/rights.xml") {
        return Err("DRM-protected (META-INF/rights.xml): narrate cannot read it".into());
    }
    if !archive.has("META-INF/encryption.xml") {
        return Ok(());
    }
    let enc = archive.text("META-INF/encryption.xml")?;
    let mut reader = Reader::from_str(&enc);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e))
                if local_name(e.local_name()) == "EncryptionMethod" =>
            {
                let alg = attributes(&e).get("Algorithm").cloned().unwrap_or_default();
                if !FONT_OBFUSCATION.contains(&alg.as_str()) {
                    return Err(format!(
                        "DRM-protected (META-INF/encryption.xml encrypts content with {alg}): narrate cannot read it"
                    ));
                }
            }
            Ok(Event::Eof) | Err(_) => return Ok(()),
            _ => {}
        }
    }
}

/// The book's metadata from its package document.
fn book_of(package: &Package) -> Book {
    let epub3 = package.version.starts_with('3');
    Book {
        format: if epub3 { "EPUB 3" } else { "EPUB 2" },
        meta: crate::book::Metadata {
            title: package.title.clone(),
            author: (!package.creators.is_empty()).then(|| package.creators.join(" & ")),
            language: package.language.clone(),
            description: package.description.clone(),
            year: package
                .date
                .as_deref()
                .map(|d| d.chars().take(4).collect::<String>())
                .filter(|y| y.len() == 4 && y.chars().all(|c| c.is_ascii_digit())),
            ..Default::default()
        },
        ..Book::default()
    }
}

/// The rootfile's path from `META-INF/container.xml`.
fn rootfile(container: &str) -> Result<String, String> {
    let mut reader = Reader::from_str(container);
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("META-INF/container.xml: {e}"))?
        {
            Event::Start(e) | Event::Empty(e) if local_name(e.local_name()) == "rootfile" => {
                if let Some(p) = attributes(&e).get("full-path") {
                    return Ok(resolve("", p).0);
                }
            }
            Event::Eof => {
                return Err("META-INF/container.xml names no package document (OPF)".into());
            }
            _ => {}
        }
    }
}

/// How many entries a ZIP archive says its central directory holds (its end record, or the
/// ZIP64 end record it points to), when it says.
fn declared_entries(bytes: &[u8]) -> Option<u64> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    // The end record is in the last 22 + 65,535 (its comment) bytes.
    let from = bytes.len().saturating_sub(22 + 65_535);
    let end = (from..bytes.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(i) == Some(0x0605_4b50))?;
    let entries = u16_at(end + 10)?;
    if entries != u16::MAX {
        return Some(u64::from(entries));
    }
    // ZIP64: the locator just before the end record gives where the ZIP64 end record is.
    let locator = end.checked_sub(20)?;
    if u32_at(locator)? != 0x0706_4b50 {
        return None;
    }
    let record = usize::try_from(u64_at(locator + 8)?).ok()?;
    (u32_at(record)? == 0x0606_4b50).then(|| u64_at(record + 32))?
}

/// The largest cover narrate keeps.
const MAX_COVER_BYTES: usize = 16 * 1024 * 1024;

/// The cover image: EPUB 3's `cover-image` item or EPUB 2's `<meta name="cover">`, if it is a
/// JPEG or PNG of at most 16 MB; one that is not is listed in `skipped` with why.
fn cover(
    archive: &mut Archive,
    package: &Package,
    skipped: &mut Vec<super::Skipped>,
) -> Option<Cover> {
    let item = package
        .items
        .values()
        .find(|i| i.properties.split_whitespace().any(|p| p == "cover-image"))
        .or_else(|| {
            package
                .cover_id
                .as_ref()
                .and_then(|id| package.items.get(id))
        })?;
    let mut skip = |reason: String| {
        skipped.push(super::Skipped {
            title: format!("Cover ({})", item.href),
            reason,
            characters: 0,
        });
        None
    };
    let bytes = match archive.bytes(&item.href) {
        Ok(bytes) => bytes,
        Err(e) => return skip(format!("cannot be read: {e}")),
    };
    if bytes.len() > MAX_COVER_BYTES {
        return skip(format!(
            "{} bytes, more than the 16 MB narrate keeps",
            bytes.len()
        ));
    }
    match image_extension(&bytes) {
        Some(extension) => Some(Cover { extension, bytes }),
        None => skip("not a JPEG or PNG image".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::declared_entries;

    #[test]
    fn the_entry_count_is_read_from_the_end_record() {
        let mut zip = vec![0u8; 100];
        let mut end = vec![0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0];
        end.extend_from_slice(&7u16.to_le_bytes());
        end.extend_from_slice(&7u16.to_le_bytes());
        end.extend_from_slice(&[0; 10]);
        zip.extend_from_slice(&end);
        assert_eq!(declared_entries(&zip), Some(7));
        assert_eq!(declared_entries(b"not a zip"), None);
    }

    #[test]
    fn a_zip64_directory_of_millions_is_refused_before_it_is_read() {
        let mut zip = vec![0u8; 64];
        let record = zip.len() as u64;
        zip.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        zip.extend_from_slice(&[0; 20]);
        zip.extend_from_slice(&5_000_000u64.to_le_bytes()); // on this disk
        zip.extend_from_slice(&5_000_000u64.to_le_bytes()); // in all
        zip.extend_from_slice(&[0; 16]);
        zip.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        zip.extend_from_slice(&0u32.to_le_bytes());
        zip.extend_from_slice(&record.to_le_bytes());
        zip.extend_from_slice(&1u32.to_le_bytes());
        zip.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        zip.extend_from_slice(&[0; 4]);
        zip.extend_from_slice(&u16::MAX.to_le_bytes());
        zip.extend_from_slice(&u16::MAX.to_le_bytes());
        zip.extend_from_slice(&[0xFF; 8]);
        zip.extend_from_slice(&[0; 2]);
        assert_eq!(declared_entries(&zip), Some(5_000_000));
        let refused = super::read(zip, &Default::default(), Default::default()).map(|_| ());
        assert_eq!(
            refused,
            Err("5000000 files, more than narrate reads".into())
        );
    }
}
