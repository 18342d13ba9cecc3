//! XML's general references in the XML files narrate reads (a PLS lexicon, an EPUB's package
//! document): the five named entities and character references. A leaf.
//!
//! Not responsible for HTML's named entities (see `import::html`).

/// The character a general reference (`&amp;`, `&#233;`) stands for, if any.
pub(crate) fn general_ref(r: &quick_xml::events::BytesRef<'_>) -> Option<char> {
    match r.xml10_content().as_ref() {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => r.resolve_char_ref().ok().flatten(),
    }
}
