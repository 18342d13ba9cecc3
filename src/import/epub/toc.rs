//! The table of contents: EPUB 3's navigation document (and its landmarks), else EPUB 2's NCX,
//! at the level that holds the chapters.
//!
//! Not responsible for mapping it onto the reading order (see `epub::parts_from_toc`).

use quick_xml::Reader;
use quick_xml::events::Event;

use super::Archive;
use super::package::{Package, attributes, local_name, resolve};
use crate::import::clean;
use crate::import::html::{HtmlOptions, read_page};

/// A table of contents entry: its label, the file and anchor it points to, its depth.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) label: String,
    pub(super) path: String,
    pub(super) fragment: Option<String>,
    pub(super) depth: usize,
}

/// The EPUB 2 NCX's `navPoint`s, with their depth.
pub(super) fn read_ncx(source: &str, ncx_path: &str) -> Result<Vec<Entry>, String> {
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
                if let (Some(l), Some(c)) =
                    (&mut label, crate::import::html::entity(&r.xml10_content()))
                {
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

/// The table of contents (EPUB 3 nav, else the NCX) at every depth, and the landmarks
/// (EPUB 3) as (kind, path).
#[allow(clippy::type_complexity)]
pub(super) fn table_of_contents(
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
            let (path, fragment) = if link.href.is_empty() {
                (String::new(), None)
            } else {
                resolve(&nav.href, &link.href)
            };
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
    Ok((entries, landmarks))
}
