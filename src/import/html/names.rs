//! The names the (X)HTML reader knows: block and void elements, what is never narrated (by
//! element, by `epub:type`/`role`, by class), and character references.

pub(crate) const BLOCKS: &[&str] = &[
    "p",
    "div",
    "li",
    "blockquote",
    "pre",
    "dt",
    "dd",
    "section",
    "article",
    "header",
    "footer",
    "body",
    "figcaption",
    "ul",
    "ol",
    "dl",
    "address",
    "center",
    "main",
    "hgroup",
    "figure",
    "nav",
];
pub(super) const VOID: &[&str] = &[
    "br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr", "source", "embed",
    "param", "track",
];
/// Elements whose content is never narrated, and the name of what is left out.
pub(super) const SKIPPED: &[(&str, &str)] = &[
    ("head", ""),
    ("script", ""),
    ("style", ""),
    ("table", "table"),
    ("svg", "image"),
    ("math", "formula"),
    ("object", "image"),
    ("video", "video"),
    ("audio", "audio"),
    ("iframe", ""),
    ("noscript", ""),
    ("rt", ""),
    ("rp", ""),
];
/// `epub:type` / `role` values whose content is not read.
pub(super) const SKIPPED_KINDS: &[(&str, &str)] = &[
    ("noteref", "footnote marker"),
    ("doc-noteref", "footnote marker"),
    ("pagebreak", "page number"),
    ("doc-pagebreak", "page number"),
    ("footnote", "footnote"),
    ("footnotes", "footnote"),
    ("endnote", "footnote"),
    ("endnotes", "footnote"),
    ("rearnote", "footnote"),
    ("rearnotes", "footnote"),
    ("doc-footnote", "footnote"),
    ("doc-endnote", "footnote"),
    ("doc-endnotes", "footnote"),
];
/// Classes whose content is not read (pandoc's and common converters' footnotes).
pub(super) const SKIPPED_CLASSES: &[(&str, &str)] = &[
    ("footnote-ref", "footnote marker"),
    ("footnotes", "footnote"),
    ("footnote", "footnote"),
    ("pagenum", "page number"),
    ("page-number", "page number"),
];

/// A named or numeric character reference.
pub(crate) fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).filter(|c| *c != '\0');
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "shy" => '\u{ad}',
        "mdash" => '\u{2014}',
        "ndash" => '\u{2013}',
        "hellip" => '\u{2026}',
        "lsquo" => '\u{2018}',
        "rsquo" => '\u{2019}',
        "ldquo" => '\u{201c}',
        "rdquo" => '\u{201d}',
        "laquo" => '\u{ab}',
        "raquo" => '\u{bb}',
        "copy" => '\u{a9}',
        "eacute" => '\u{e9}',
        "egrave" => '\u{e8}',
        "aelig" => '\u{e6}',
        "oelig" => '\u{153}',
        "thinsp" => '\u{2009}',
        "ensp" => '\u{2002}',
        "emsp" => '\u{2003}',
        "zwnj" => '\u{200c}',
        "zwj" => '\u{200d}',
        _ => return None,
    })
}
