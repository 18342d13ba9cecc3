//! EPUB 2 and 3: the ZIP container read with bounded memory, `META-INF/container.xml` to the
//! package document (OPF), its metadata, manifest and spine, and the table of contents (the
//! EPUB 3 navigation document, or the EPUB 2 NCX) mapped onto the spine: several entries in
//! one file are cut at their anchors, and a file the TOC does not name belongs to the entry
//! before it. Without a TOC each spine file is a chapter.
//!
//! Not responsible for the XHTML itself (see `html`).

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::Event;

use super::html::{HtmlOptions, Page, read_page};
use super::{Book, Cover, Part, add_left_out, chapters, clean, image_extension};

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
}

impl Archive {
    fn has(&self, name: &str) -> bool {
        self.zip.index_for_name(name).is_some()
    }

    /// One file of the book, at most [`MAX_ENTRY_BYTES`] and within the book's budget.
    fn bytes(&mut self, name: &str) -> Result<Vec<u8>, String> {
        let budget = (MAX_TOTAL_BYTES - self.read).min(MAX_ENTRY_BYTES);
        let entry = self.zip.by_name(name).map_err(|e| format!("{name}: {e}"))?;
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

/// A path in the book, from an `href` relative to the file at `base`: percent-decoded, `..`
/// resolved, the fragment split off.
fn resolve(base: &str, href: &str) -> (String, Option<String>) {
    let (path, fragment) = match href.split_once('#') {
        Some((p, f)) => (p, Some(f.to_string())),
        None => (href, None),
    };
    let path = percent_decode(path);
    let dir = base.rsplit_once('/').map_or("", |(d, _)| d);
    let mut parts: Vec<&str> = if path.is_empty() {
        return (base.to_string(), fragment);
    } else if dir.is_empty() {
        Vec::new()
    } else {
        dir.split('/').collect()
    };
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    (parts.join("/"), fragment)
}

/// `%20` and the like decoded (an invalid escape is kept as written).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An XML element's attributes by local name.
fn attributes(e: &quick_xml::events::BytesStart<'_>) -> HashMap<String, String> {
    e.attributes()
        .with_checks(false)
        .flatten()
        .map(|a| {
            let key = a.key.local_name().as_ref().to_string();
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(|v| v.into_owned())
                .unwrap_or_default();
            (key, value)
        })
        .collect()
}

fn local_name(name: quick_xml::name::LocalName<'_>) -> String {
    name.as_ref().to_string()
}

#[derive(Debug)]
struct Item {
    href: String,
    media_type: String,
    properties: String,
}

#[derive(Debug, Default)]
struct Package {
    version: String,
    title: Option<String>,
    creators: Vec<String>,
    language: Option<String>,
    description: Option<String>,
    date: Option<String>,
    /// EPUB 2's `<meta name="cover" content="item-id">`.
    cover_id: Option<String>,
    items: HashMap<String, Item>,
    /// (idref, linear)
    spine: Vec<(String, bool)>,
    /// The NCX's item id.
    toc: Option<String>,
    /// EPUB 2 guide references: (type, path).
    guide: Vec<(String, String)>,
}

/// The package document's parts narrate uses.
fn read_package(source: &str, opf_path: &str) -> Result<Package, String> {
    let mut reader = Reader::from_str(source);
    let mut p = Package::default();
    let mut text: Option<(String, String)> = None;
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("{opf_path}: {e} (at byte {})", reader.error_position()))?
        {
            Event::Start(e) | Event::Empty(e) => {
                let name = local_name(e.local_name());
                let a = attributes(&e);
                match name.as_str() {
                    "package" => p.version = a.get("version").cloned().unwrap_or_default(),
                    "title" | "creator" | "language" | "description" | "date" => {
                        text = Some((name, String::new()));
                    }
                    "meta" if a.get("name").map(String::as_str) == Some("cover") => {
                        p.cover_id = a.get("content").cloned();
                    }
                    "item" => {
                        if let (Some(id), Some(href)) = (a.get("id"), a.get("href")) {
                            p.items.insert(
                                id.clone(),
                                Item {
                                    href: resolve(opf_path, href).0,
                                    media_type: a.get("media-type").cloned().unwrap_or_default(),
                                    properties: a.get("properties").cloned().unwrap_or_default(),
                                },
                            );
                        }
                    }
                    "spine" => p.toc = a.get("toc").cloned(),
                    "itemref" => {
                        if let Some(idref) = a.get("idref") {
                            let linear = a.get("linear").map(String::as_str) != Some("no");
                            p.spine.push((idref.clone(), linear));
                        }
                    }
                    "reference" => {
                        if let (Some(t), Some(href)) = (a.get("type"), a.get("href")) {
                            p.guide
                                .push((t.to_ascii_lowercase(), resolve(opf_path, href).0));
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let Some((_, s)) = &mut text {
                    s.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some((_, s)) = &mut text {
                    let name = r.xml10_content();
                    match name.as_ref() {
                        "amp" => s.push('&'),
                        "lt" => s.push('<'),
                        "gt" => s.push('>'),
                        "quot" => s.push('"'),
                        "apos" => s.push('\''),
                        _ => {
                            if let Ok(Some(c)) = r.resolve_char_ref() {
                                s.push(c);
                            }
                        }
                    }
                }
            }
            Event::End(e) => {
                let name = local_name(e.local_name());
                if let Some((field, s)) = text.take_if(|(f, _)| *f == name) {
                    let v = clean(&s);
                    if v.is_empty() {
                        continue;
                    }
                    match field.as_str() {
                        "title" if p.title.is_none() => p.title = Some(v),
                        "creator" => p.creators.push(v),
                        "language" if p.language.is_none() => p.language = Some(v),
                        "description" if p.description.is_none() => p.description = Some(v),
                        "date" if p.date.is_none() => p.date = Some(v),
                        _ => {}
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(p)
}

/// A table of contents entry: its label, the file and anchor it points to, its depth.
#[derive(Clone, Debug)]
struct Entry {
    label: String,
    path: String,
    fragment: Option<String>,
    depth: usize,
}

/// The EPUB 2 NCX's `navPoint`s, with their depth.
fn read_ncx(source: &str, ncx_path: &str) -> Result<Vec<Entry>, String> {
    let mut reader = Reader::from_str(source);
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut label: Option<String> = None;
    let mut in_text = false;
    let mut pending: Vec<usize> = Vec::new();
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("{ncx_path}: {e} (at byte {})", reader.error_position()))?
        {
            Event::Start(e) => match local_name(e.local_name()).as_str() {
                "navPoint" => {
                    depth += 1;
                    label = None;
                }
                "text" if depth > 0 && label.is_none() => {
                    in_text = true;
                    label = Some(String::new());
                }
                _ => {}
            },
            Event::Empty(e) if local_name(e.local_name()) == "content" && depth > 0 => {
                if let Some(src) = attributes(&e).get("src") {
                    let (path, fragment) = resolve(ncx_path, src);
                    out.push(Entry {
                        label: clean(label.as_deref().unwrap_or("")),
                        path,
                        fragment,
                        depth,
                    });
                    pending.push(out.len() - 1);
                }
            }
            Event::Text(t) if in_text => {
                if let Some(l) = &mut label {
                    l.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) if in_text => {
                if let (Some(l), Some(c)) = (&mut label, super::html::entity(&r.xml10_content())) {
                    l.push(c);
                }
            }
            Event::End(e) => match local_name(e.local_name()).as_str() {
                "text" => in_text = false,
                "navPoint" => depth = depth.saturating_sub(1),
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// Reads an EPUB's chapters.
pub(crate) fn read(bytes: Vec<u8>, keep_all: bool, options: HtmlOptions) -> Result<Book, String> {
    let zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| format!("not a ZIP archive, so not an EPUB ({e})"))?;
    if zip.len() > MAX_ENTRIES {
        return Err(format!("{} files, more than narrate reads", zip.len()));
    }
    let mut archive = Archive { zip, read: 0 };
    if archive.has("META-INF/rights.xml") {
        return Err("DRM-protected (META-INF/rights.xml): narrate cannot read it".into());
    }
    if archive.has("META-INF/encryption.xml") {
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
                Ok(Event::Eof) | Err(_) => break,
                _ => {}
            }
        }
    }
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
    let package = read_package(&archive.text(&opf_path)?, &opf_path)?;
    let epub3 = package.version.starts_with('3');
    let mut book = Book {
        format: if epub3 { "EPUB 3" } else { "EPUB 2" },
        title: package.title.clone(),
        author: (!package.creators.is_empty()).then(|| package.creators.join(" & ")),
        language: package.language.clone(),
        description: package.description.clone(),
        year: package
            .date
            .as_deref()
            .map(|d| d.chars().take(4).collect::<String>())
            .filter(|y| y.len() == 4 && y.chars().all(|c| c.is_ascii_digit())),
        ..Book::default()
    };
    book.cover = cover(&mut archive, &package);
    let spine: Vec<(String, bool)> = package
        .spine
        .iter()
        .filter_map(|(idref, linear)| {
            package
                .items
                .get(idref)
                .filter(|i| i.media_type.contains("html"))
                .map(|i| (i.href.clone(), *linear))
        })
        .collect();
    if spine.is_empty() {
        return Err(format!("{opf_path}: the spine lists no XHTML documents"));
    }
    let (entries, landmarks) = table_of_contents(&mut archive, &package, options)?;
    let mut pages: Vec<Page> = Vec::with_capacity(spine.len());
    for (path, _) in &spine {
        if !archive.has(path) {
            return Err(format!("{path}: in the spine but not in the book"));
        }
        let source = archive.text(path)?;
        let page = read_page(&source, options)
            .map_err(|e| format!("{path}: the XHTML does not parse: {e}"))?;
        add_left_out(&mut book, &page.left_out);
        pages.push(page);
    }
    let nav_path = package
        .items
        .values()
        .find(|i| i.properties.split_whitespace().any(|p| p == "nav"))
        .map(|i| i.href.clone());
    let mut kinds_of = |k: usize, path: &str| {
        let mut kinds = pages[k].kinds.clone();
        kinds.extend(
            landmarks
                .iter()
                .chain(&package.guide)
                .filter(|(_, p)| p == path)
                .map(|(t, _)| t.clone()),
        );
        if nav_path.as_deref() == Some(path) {
            kinds.push("toc".into());
        }
        kinds
    };
    let parts = if entries.is_empty() {
        let mut parts: Vec<Part> = Vec::new();
        for (k, (path, linear)) in spine.iter().enumerate() {
            if *linear {
                let kinds = kinds_of(k, path);
                page_parts(&pages[k], kinds, k, &mut parts);
            }
        }
        parts
    } else {
        parts_from_toc(&entries, &spine, &pages, &mut kinds_of, &mut book)
    };
    chapters(parts, keep_all, &mut book);
    Ok(book)
}

/// A page's parts when the book has no table of contents: a part at each heading of the
/// page's first heading level, titled by it (or by the page's `<title>`); a page without
/// headings goes on with the part before it.
fn page_parts(page: &Page, kinds: Vec<String>, k: usize, parts: &mut Vec<Part>) {
    let level = page.blocks.iter().find_map(|b| b.heading);
    if level.is_none()
        && let Some(last) = parts.last_mut()
    {
        last.paragraphs
            .extend(page.blocks.iter().map(|b| b.text.clone()));
        return;
    }
    let mut current: Option<Part> = None;
    for b in &page.blocks {
        if b.heading.is_some() && b.heading == level {
            parts.extend(current.take());
            current = Some(Part {
                title: b.text.clone(),
                heading: Some(b.text.clone()),
                paragraphs: Vec::new(),
                kinds: kinds.clone(),
            });
            continue;
        }
        current
            .get_or_insert_with(|| Part {
                title: page
                    .title
                    .clone()
                    .unwrap_or_else(|| format!("Part {}", k + 1)),
                kinds: kinds.clone(),
                ..Part::default()
            })
            .paragraphs
            .push(b.text.clone());
    }
    parts.extend(current);
}

/// The parts the TOC's entries mark out on the spine.
fn parts_from_toc(
    entries: &[Entry],
    spine: &[(String, bool)],
    pages: &[Page],
    kinds_of: &mut dyn FnMut(usize, &str) -> Vec<String>,
    book: &mut Book,
) -> Vec<Part> {
    // Where each entry starts: (spine index, block index).
    let mut starts: Vec<((usize, usize), &Entry)> = Vec::new();
    for e in entries {
        let Some(k) = spine.iter().position(|(p, _)| *p == e.path) else {
            book.skipped.push(super::Skipped {
                title: e.label.clone(),
                reason: format!("its file {} is not in the reading order", e.path),
            });
            continue;
        };
        let block = match &e.fragment {
            None => 0,
            Some(f) => pages[k]
                .blocks
                .iter()
                .position(|b| b.anchors.iter().any(|a| a == f))
                .unwrap_or(if pages[k].trailing_anchors.contains(f) {
                    pages[k].blocks.len()
                } else {
                    0
                }),
        };
        if starts.iter().all(|(at, _)| *at != (k, block)) {
            starts.push(((k, block), e));
        }
    }
    starts.sort_by_key(|(at, _)| *at);
    let mut parts = Vec::new();
    if let Some(&((k0, b0), _)) = starts.first() {
        let before: usize = pages[..k0].iter().map(|p| p.blocks.len()).sum::<usize>() + b0;
        if before > 0 {
            let mut front = Part {
                title: "Front matter".into(),
                paragraphs: pages[..k0]
                    .iter()
                    .flat_map(|p| &p.blocks)
                    .chain(&pages[k0].blocks[..b0])
                    .map(|b| b.text.clone())
                    .collect(),
                ..Part::default()
            };
            front.kinds.push("frontmatter-before-toc".into());
            for (k, (path, _)) in spine.iter().enumerate().take(k0) {
                front.kinds.extend(kinds_of(k, path));
            }
            parts.push(front);
        }
    }
    for (n, &((k, b), entry)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or((pages.len(), 0), |(at, _)| *at);
        let mut blocks = Vec::new();
        let mut kinds = Vec::new();
        for (kk, page) in pages.iter().enumerate().take(end.0 + 1).skip(k) {
            if !spine[kk].1 && kk != k {
                continue; // a non-linear file (notes) the TOC does not name
            }
            if kk != k || b == 0 {
                kinds.extend(kinds_of(kk, &spine[kk].0));
            }
            let from = if kk == k { b } else { 0 };
            let to = if kk == end.0 {
                end.1
            } else {
                page.blocks.len()
            };
            blocks.extend(page.blocks.get(from..to.max(from)).unwrap_or_default());
        }
        let mut iter = blocks.into_iter().peekable();
        let heading = iter
            .next_if(|bl| bl.heading.is_some())
            .map(|bl| bl.text.clone());
        let title = if entry.label.is_empty() {
            heading.clone().unwrap_or_else(|| format!("Part {}", n + 1))
        } else {
            entry.label.clone()
        };
        parts.push(Part {
            title,
            heading,
            paragraphs: iter.map(|bl| bl.text.clone()).collect(),
            kinds,
        });
    }
    parts
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

/// The cover image: EPUB 3's `cover-image` item or EPUB 2's `<meta name="cover">`, if it is a
/// JPEG or PNG of at most 16 MB.
fn cover(archive: &mut Archive, package: &Package) -> Option<Cover> {
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
    let bytes = archive.bytes(&item.href).ok()?;
    if bytes.len() > 16 * 1024 * 1024 {
        return None;
    }
    image_extension(&bytes).map(|extension| Cover { extension, bytes })
}

/// The table of contents (EPUB 3 nav, else the NCX) at its chapter level, and the landmarks
/// (EPUB 3) as (kind, path).
#[allow(clippy::type_complexity)]
fn table_of_contents(
    archive: &mut Archive,
    package: &Package,
    options: HtmlOptions,
) -> Result<(Vec<Entry>, Vec<(String, String)>), String> {
    let mut entries = Vec::new();
    let mut landmarks = Vec::new();
    let nav = package
        .items
        .values()
        .find(|i| i.properties.split_whitespace().any(|p| p == "nav"));
    if let Some(nav) = nav
        && archive.has(&nav.href)
    {
        let source = archive.text(&nav.href)?;
        let page = read_page(&source, options)
            .map_err(|e| format!("{}: the navigation document does not parse: {e}", nav.href))?;
        for link in page.nav {
            let (path, fragment) = resolve(&nav.href, &link.href);
            match link.nav.as_str() {
                "toc" => entries.push(Entry {
                    label: link.label,
                    path,
                    fragment,
                    depth: link.depth,
                }),
                "landmarks" => {
                    if let Some(kind) = link.kind {
                        landmarks.push((kind, path));
                    }
                }
                _ => {}
            }
        }
    }
    if entries.is_empty()
        && let Some(ncx) = package.toc.as_ref().and_then(|id| package.items.get(id))
        && archive.has(&ncx.href)
    {
        let href = ncx.href.clone();
        entries = read_ncx(&archive.text(&href)?, &href)?;
    }
    Ok((chapter_level(entries), landmarks))
}

/// The entries that are chapters: the top level, or the level below a single top entry that
/// holds the whole book (a title wrapping the chapters).
fn chapter_level(entries: Vec<Entry>) -> Vec<Entry> {
    let top: Vec<&Entry> = entries.iter().filter(|e| e.depth == 1).collect();
    let level = if top.len() == 1 && entries.iter().any(|e| e.depth == 2) {
        2
    } else {
        1
    };
    entries.into_iter().filter(|e| e.depth == level).collect()
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn hrefs_resolve_against_their_file() {
        assert_eq!(
            resolve("OEBPS/content.opf", "text/ch%201.xhtml#a"),
            ("OEBPS/text/ch 1.xhtml".into(), Some("a".into()))
        );
        assert_eq!(
            resolve("OEBPS/text/nav.xhtml", "../ch2.xhtml"),
            ("OEBPS/ch2.xhtml".into(), None)
        );
        assert_eq!(
            resolve("OEBPS/text/ch2.xhtml", "#n1"),
            ("OEBPS/text/ch2.xhtml".into(), Some("n1".into()))
        );
        assert_eq!(resolve("", "../../x.opf"), ("x.opf".into(), None));
    }
}
