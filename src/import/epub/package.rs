//! The package document (OPF): its metadata, manifest, spine and guide; and the paths in the
//! book, resolved from the hrefs that name them.
//!
//! Not responsible for the table of contents (see `toc`).

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::import::clean;

/// A path in the book, from an `href` relative to the file at `base`: percent-decoded, `..`
/// resolved, the fragment split off.
pub(super) fn resolve(base: &str, href: &str) -> (String, Option<String>) {
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
pub(super) fn percent_decode(s: &str) -> String {
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
pub(super) fn attributes(e: &quick_xml::events::BytesStart<'_>) -> HashMap<String, String> {
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

pub(super) fn local_name(name: quick_xml::name::LocalName<'_>) -> String {
    name.as_ref().to_string()
}

#[derive(Debug)]
pub(super) struct Item {
    pub(super) href: String,
    pub(super) media_type: String,
    pub(super) properties: String,
}

#[derive(Debug, Default)]
pub(super) struct Package {
    pub(super) version: String,
    pub(super) title: Option<String>,
    pub(super) creators: Vec<String>,
    pub(super) language: Option<String>,
    pub(super) description: Option<String>,
    pub(super) date: Option<String>,
    /// EPUB 2's `<meta name="cover" content="item-id">`.
    pub(super) cover_id: Option<String>,
    pub(super) items: HashMap<String, Item>,
    /// (idref, linear)
    pub(super) spine: Vec<(String, bool)>,
    /// The NCX's item id.
    pub(super) toc: Option<String>,
    /// EPUB 2 guide references: (type, path).
    pub(super) guide: Vec<(String, String)>,
}

impl Package {
    /// The XHTML documents of the spine, in reading order: (path, linear).
    pub(super) fn spine_documents(&self) -> Vec<(String, bool)> {
        self.spine
            .iter()
            .filter_map(|(idref, linear)| {
                self.items
                    .get(idref)
                    .filter(|i| i.media_type.contains("html"))
                    .map(|i| (i.href.clone(), *linear))
            })
            .collect()
    }
}

impl Package {
    /// An element of the package document opens: `text` becomes the metadata field it starts.
    fn start(
        &mut self,
        name: String,
        a: &HashMap<String, String>,
        opf_path: &str,
        text: &mut Option<(String, String)>,
    ) {
        match name.as_str() {
            "package" => self.version = a.get("version").cloned().unwrap_or_default(),
            "title" | "creator" | "language" | "description" | "date" => {
                *text = Some((name, String::new()));
            }
            "meta" if a.get("name").map(String::as_str) == Some("cover") => {
                self.cover_id = a.get("content").cloned();
            }
            "item" => {
                if let (Some(id), Some(href)) = (a.get("id"), a.get("href")) {
                    let item = Item {
                        href: resolve(opf_path, href).0,
                        media_type: a.get("media-type").cloned().unwrap_or_default(),
                        properties: a.get("properties").cloned().unwrap_or_default(),
                    };
                    self.items.insert(id.clone(), item);
                }
            }
            "spine" => self.toc = a.get("toc").cloned(),
            "itemref" => {
                if let Some(idref) = a.get("idref") {
                    let linear = a.get("linear").map(String::as_str) != Some("no");
                    self.spine.push((idref.clone(), linear));
                }
            }
            "reference" => {
                if let (Some(t), Some(href)) = (a.get("type"), a.get("href")) {
                    self.guide
                        .push((t.to_ascii_lowercase(), resolve(opf_path, href).0));
                }
            }
            _ => {}
        }
    }

    /// A metadata field's text is read: the first of each is kept (every creator).
    fn field(&mut self, field: &str, v: String) {
        match field {
            "title" if self.title.is_none() => self.title = Some(v),
            "creator" => self.creators.push(v),
            "language" if self.language.is_none() => self.language = Some(v),
            "description" if self.description.is_none() => self.description = Some(v),
            "date" if self.date.is_none() => self.date = Some(v),
            _ => {}
        }
    }
}

/// The package document's parts narrate uses.
pub(super) fn read_package(source: &str, opf_path: &str) -> Result<Package, String> {
    let mut reader = Reader::from_str(source);
    let mut p = Package::default();
    let mut text: Option<(String, String)> = None;
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("{opf_path}: {e} (at byte {})", reader.error_position()))?
        {
            Event::Start(e) | Event::Empty(e) => {
                p.start(
                    local_name(e.local_name()),
                    &attributes(&e),
                    opf_path,
                    &mut text,
                );
            }
            Event::Text(t) => {
                if let Some((_, s)) = &mut text {
                    s.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let (Some((_, s)), Some(c)) = (&mut text, crate::xml::general_ref(&r)) {
                    s.push(c);
                }
            }
            Event::End(e) => {
                let name = local_name(e.local_name());
                if let Some((field, s)) = text.take_if(|(f, _)| *f == name) {
                    let v = clean(&s);
                    if !v.is_empty() {
                        p.field(&field, v);
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(p)
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
