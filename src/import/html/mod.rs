//! An (X)HTML page read into blocks of text to be narrated: headings and paragraphs, with the
//! element ids found in each (where a table of contents may point), what the page says it is
//! (`epub:type`, `role`) and what was left out (tables, images, footnotes, page numbers).
//!
//! EPUB content is XHTML; a lone `.html` file is read leniently (end tags may be missing or
//! misnested, void elements need no `/`). Not responsible for chapters (see `epub`, `mod`).

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::clean;

mod names;

pub(crate) use names::BLOCKS;
pub(crate) use names::entity;
use names::{SKIPPED, SKIPPED_CLASSES, SKIPPED_KINDS, VOID};

/// A block of text, in reading order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Block {
    /// `Some(level)` for `h1`..`h6`.
    pub(crate) heading: Option<u8>,
    pub(crate) text: String,
    /// Element ids that start at or inside this block (or in the empty run before it).
    pub(crate) anchors: Vec<String>,
    /// The `epub:type` and `role` values of the elements it is in (`bibliography`,
    /// `doc-colophon`...), and `pg-header`/`pg-footer` for Project Gutenberg's boilerplate.
    pub(crate) kinds: Vec<String>,
}

/// A page's blocks and what the page says about itself.
#[derive(Debug, Default)]
pub(crate) struct Page {
    pub(crate) blocks: Vec<Block>,
    /// `<title>`.
    pub(crate) title: Option<String>,
    /// The structural kinds the page declares on `body` or its top sections (`epub:type`,
    /// `role="doc-…"`), such as `cover`, `toc`, `copyright-page`, `index`.
    pub(crate) kinds: Vec<String>,
    /// Ids that come after the last block.
    pub(crate) trailing_anchors: Vec<String>,
    /// What was left out, counted by kind: `("table", 2)`.
    pub(crate) left_out: Vec<(&'static str, usize)>,
    /// The `href`s of links in a `nav` of this kind, when asked for (EPUB 3 navigation).
    pub(crate) nav: Vec<NavLink>,
    /// The pronunciations the page gives inline (`ssml:ph`): (the text, the phonemes, the
    /// alphabet of `ssml:alphabet` on it or an element around it).
    pub(crate) phonemes: Vec<(String, String, Option<String>)>,
}

/// One link of an EPUB 3 navigation document, with its nesting depth (1 = top level).
#[derive(Clone, Debug)]
pub(crate) struct NavLink {
    /// `toc` or `landmarks` (the `epub:type` of its `nav`).
    pub(crate) nav: String,
    pub(crate) depth: usize,
    pub(crate) href: String,
    pub(crate) label: String,
    /// The link's own `epub:type` (landmarks: `cover`, `toc`, `bodymatter`...).
    pub(crate) kind: Option<String>,
}

/// Options of the reading.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HtmlOptions {
    /// Read images' `alt` text as a paragraph.
    pub(crate) alt_text: bool,
}

struct Attrs {
    id: Option<String>,
    kinds: Vec<String>,
    classes: Vec<String>,
    href: Option<String>,
    alt: Option<String>,
    /// `ssml:ph` and `ssml:alphabet`.
    ph: Option<String>,
    alphabet: Option<String>,
}

fn attrs(e: &BytesStart<'_>) -> Attrs {
    let mut out = Attrs {
        id: None,
        kinds: Vec::new(),
        classes: Vec::new(),
        href: None,
        alt: None,
        ph: None,
        alphabet: None,
    };
    for a in e.attributes().with_checks(false).flatten() {
        let key = a.key.as_ref().to_ascii_lowercase();
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map(|v| v.into_owned())
            .unwrap_or_else(|_| a.value.to_string());
        match key.as_str() {
            "id" | "xml:id" => {
                // Project Gutenberg's EPUBs mark their header and licence by id.
                if value == "pg-header" || value == "pg-footer" {
                    out.kinds.push(value.clone());
                }
                out.id = Some(value);
            }
            "epub:type" | "role" => out
                .kinds
                .extend(value.split_whitespace().map(str::to_ascii_lowercase)),
            "class" => out
                .classes
                .extend(value.split_whitespace().map(str::to_ascii_lowercase)),
            "href" => out.href = Some(value),
            // An image's alt, or MathML's alttext.
            "alt" | "alttext" => out.alt = Some(value),
            "ssml:ph" => out.ph = Some(value),
            "ssml:alphabet" => out.alphabet = Some(value),
            _ => {}
        }
    }
    out
}

fn local(e: &BytesStart<'_>) -> String {
    e.local_name().as_ref().to_ascii_lowercase()
}

/// An element's local name (lower case), and whether its content is never narrated: the
/// import's own judgement, for what reads a page after it (the read-along book).
pub(crate) fn element(e: &BytesStart<'_>) -> (String, bool) {
    let name = local(e);
    let skipped = skip_reason(&name, &attrs(e)).is_some();
    (name, skipped)
}

/// Why an element's content is not read, if it is not.
fn skip_reason(name: &str, a: &Attrs) -> Option<&'static str> {
    if let Some((_, why)) = SKIPPED.iter().find(|(n, _)| *n == name) {
        return Some(why);
    }
    for k in &a.kinds {
        if let Some((_, why)) = SKIPPED_KINDS.iter().find(|(n, _)| n == k) {
            return Some(why);
        }
    }
    for c in &a.classes {
        if let Some((_, why)) = SKIPPED_CLASSES.iter().find(|(n, _)| n == c) {
            return Some(why);
        }
    }
    None
}

struct Open {
    name: String,
    /// The `ssml:alphabet` in force inside it.
    alphabet: Option<String>,
    /// Its `epub:type` and `role` values.
    kinds: Vec<String>,
    /// Content of this element is not read (it or an ancestor is skipped).
    skipping: bool,
    /// A `nav` element's `epub:type`.
    nav: Option<String>,
}

/// The state of one page's reading.
struct Builder {
    page: Page,
    text: String,
    anchors: Vec<String>,
    /// Inside an element with `ssml:ph`: (its place in `stack`, the phonemes, the alphabet,
    /// its text so far).
    phoneme: Option<(usize, String, Option<String>, String)>,
    /// Inside `<sup>`: its text waits until its end, to drop a footnote number.
    sup: Option<String>,
    in_title: Option<String>,
    left_out: Vec<(&'static str, usize)>,
    /// Inside a navigation link: (nav kind, depth, href, label, link kind).
    link: Option<(String, usize, String, String, Option<String>)>,
    /// The elements open, outermost first.
    stack: Vec<Open>,
    /// How deep in a navigation document's lists.
    depth_of_lists: usize,
    /// Inside a `nav`: its kind.
    nav_kind: Option<String>,
    options: HtmlOptions,
}

impl Builder {
    fn new(options: HtmlOptions) -> Self {
        Builder {
            page: Page::default(),
            text: String::new(),
            anchors: Vec::new(),
            phoneme: None,
            sup: None,
            in_title: None,
            left_out: Vec::new(),
            link: None,
            stack: Vec::new(),
            depth_of_lists: 0,
            nav_kind: None,
            options,
        }
    }

    fn skipping(&self) -> bool {
        self.stack.last().is_some_and(|o| o.skipping)
    }

    fn push_text(&mut self, s: &str) {
        if let Some((_, _, _, word)) = &mut self.phoneme {
            word.push_str(s);
        }
        if let Some(t) = &mut self.in_title {
            t.push_str(s);
        } else if let Some((_, _, _, label, _)) = &mut self.link {
            label.push_str(s);
            self.text.push_str(s);
        } else if let Some(sup) = &mut self.sup {
            sup.push_str(s);
        } else {
            self.text.push_str(s);
        }
    }

    fn flush(&mut self, heading: Option<u8>) {
        let text = clean(&self.text);
        self.text.clear();
        if text.is_empty() {
            return;
        }
        let mut kinds: Vec<String> = Vec::new();
        for k in self.stack.iter().flat_map(|o| &o.kinds) {
            if !kinds.contains(k) {
                kinds.push(k.clone());
            }
        }
        self.page.blocks.push(Block {
            heading,
            text,
            anchors: std::mem::take(&mut self.anchors),
            kinds,
        });
    }

    fn leave_out(&mut self, what: &'static str) {
        if what.is_empty() {
            return;
        }
        match self.left_out.iter_mut().find(|(w, _)| *w == what) {
            Some((_, n)) => *n += 1,
            None => self.left_out.push((what, 1)),
        }
    }

    /// An element that has no content (`br`, `hr`, `img`, ...).
    fn void(&mut self, name: &str, a: Attrs) {
        if self.skipping() {
            return;
        }
        if let Some(id) = a.id {
            self.anchors.push(id);
        }
        match name {
            "br" => self.push_text(" "),
            "hr" => self.flush(None),
            "img" => match a
                .alt
                .filter(|alt| self.options.alt_text && !clean(alt).is_empty())
            {
                Some(alt) => {
                    self.flush(None);
                    self.text.push_str(&alt);
                    self.flush(None);
                }
                None => self.leave_out("image"),
            },
            _ => {}
        }
    }

    /// An element opens.
    fn start(&mut self, name: String, a: Attrs) {
        let skipping = self.skipping();
        let heading = heading_level(&name);
        if !skipping && (BLOCKS.contains(&name.as_str()) || heading.is_some()) {
            self.flush(None);
        }
        if matches!(name.as_str(), "body" | "section" | "article")
            && self.stack.iter().filter(|o| o.name != "html").count() <= 2
        {
            self.page.kinds.extend(a.kinds.iter().cloned());
        }
        if name == "title" && self.stack.iter().any(|o| o.name == "head") {
            self.in_title = Some(String::new());
        }
        self.start_nav(&name, &a);
        if name == "sup" && !skipping {
            self.sup = Some(String::new());
        }
        if let Some(why) = (!skipping).then(|| skip_reason(&name, &a)).flatten() {
            // A formula with alt text is read as it with --alt-text.
            match a.alt.as_deref().map(clean) {
                Some(alt) if name == "math" && self.options.alt_text && !alt.is_empty() => {
                    self.push_text(&format!(" {alt} "));
                }
                _ => self.leave_out(why),
            }
            self.stack.push(Open {
                name,
                alphabet: None,
                kinds: Vec::new(),
                skipping: true,
                nav: None,
            });
            return;
        }
        if !skipping && let Some(id) = a.id {
            self.anchors.push(id);
        }
        let nav = (name == "nav").then(|| self.nav_kind.clone()).flatten();
        let alphabet = a
            .alphabet
            .or_else(|| self.stack.last().and_then(|o| o.alphabet.clone()));
        if let Some(ph) = a.ph.filter(|_| self.phoneme.is_none()) {
            self.phoneme = Some((self.stack.len(), ph, alphabet.clone(), String::new()));
        }
        self.stack.push(Open {
            name,
            alphabet,
            kinds: a.kinds,
            skipping,
            nav,
        });
    }

    /// A `nav`, a list in one or a link in one opens.
    fn start_nav(&mut self, name: &str, a: &Attrs) {
        if name == "nav" {
            self.nav_kind = Some(a.kinds.first().cloned().unwrap_or_else(|| "toc".into()));
            self.depth_of_lists = 0;
        }
        if self.nav_kind.is_some() && name == "ol" {
            self.depth_of_lists += 1;
        }
        // A list item titled without a link (a part, an author heading a group of stories)
        // is an entry without a place of its own.
        if let (Some(kind), "span", None) = (&self.nav_kind, name, &self.link)
            && self.stack.last().is_some_and(|o| o.name == "li")
        {
            self.link = Some((
                kind.clone(),
                self.depth_of_lists.max(1),
                String::new(),
                String::new(),
                None,
            ));
        }
        if let (Some(kind), "a", Some(href)) = (&self.nav_kind, name, &a.href) {
            self.link = Some((
                kind.clone(),
                self.depth_of_lists.max(1),
                href.clone(),
                String::new(),
                a.kinds.first().cloned(),
            ));
        }
    }

    /// An element closes (and every element left open inside it).
    fn end(&mut self, name: &str) {
        let Some(at) = self.stack.iter().rposition(|o| o.name == name) else {
            return;
        };
        let closed = self.stack.split_off(at);
        if self
            .phoneme
            .as_ref()
            .is_some_and(|(depth, ..)| *depth >= at)
            && let Some((_, ph, alphabet, word)) = self.phoneme.take()
        {
            self.page
                .phonemes
                .push((clean(&word), clean(&ph), alphabet));
        }
        let was_skipping = closed[0].skipping;
        if name == "title" {
            if let Some(t) = self.in_title.take() {
                self.page.title = Some(clean(&t)).filter(|t| !t.is_empty());
            }
            return;
        }
        if closed.iter().any(|o| o.nav.is_some()) {
            self.nav_kind = None;
        }
        if self.nav_kind.is_some() && name == "ol" {
            self.depth_of_lists = self.depth_of_lists.saturating_sub(1);
        }
        let closes_link = match &self.link {
            Some((_, _, href, _, _)) if href.is_empty() => name == "span",
            Some(_) => name == "a",
            None => false,
        };
        if closes_link && let Some((nav, depth, href, label, kind)) = self.link.take() {
            self.page.nav.push(NavLink {
                nav,
                depth,
                href,
                label: clean(&label),
                kind,
            });
        }
        if name == "sup" {
            self.end_sup();
        }
        if was_skipping && !self.skipping() {
            return;
        }
        if let Some(level) = heading_level(name) {
            self.flush(Some(level));
        } else if BLOCKS.contains(&name) {
            self.flush(None);
        }
    }

    /// A `<sup>` closes: a footnote marker (a number or a symbol) is left out.
    fn end_sup(&mut self) {
        let Some(sup) = self.sup.take() else {
            return;
        };
        let t = sup.trim();
        let marker = t.chars().count() <= 4
            && t.chars()
                .all(|c| c.is_ascii_digit() || "*\u{2020}\u{2021}§[]()".contains(c));
        if marker && !t.is_empty() {
            self.leave_out("footnote marker");
        } else {
            self.text.push_str(&sup);
        }
    }
}

fn heading_level(name: &str) -> Option<u8> {
    match name.as_bytes() {
        [b'h', d @ b'1'..=b'6'] => Some(d - b'0'),
        _ => None,
    }
}

/// Reads a page. `Err` carries the parser's message and the byte offset where it stopped.
pub(crate) fn read_page(source: &str, options: HtmlOptions) -> Result<Page, String> {
    let mut reader = Reader::from_str(source);
    let config = reader.config_mut();
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    config.allow_dangling_amp = true;
    let mut b = Builder::new(options);
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("{e} (at byte {})", reader.error_position()))?;
        let reading = !b.skipping() || b.in_title.is_some();
        match event {
            Event::Start(e) | Event::Empty(e) if VOID.contains(&local(&e).as_str()) => {
                b.void(&local(&e), attrs(&e));
            }
            Event::Empty(e) => {
                if !b.skipping()
                    && let Some(id) = attrs(&e).id
                {
                    b.anchors.push(id);
                }
            }
            Event::Start(e) => b.start(local(&e), attrs(&e)),
            Event::End(e) => b.end(&e.local_name().as_ref().to_ascii_lowercase()),
            Event::Text(t) if reading => b.push_text(&t.xml10_content()),
            Event::CData(t) if !b.skipping() => b.push_text(&t.into_inner()),
            Event::GeneralRef(r) if reading => {
                let name = r.xml10_content();
                match entity(&name) {
                    Some(c) => b.push_text(c.encode_utf8(&mut [0u8; 4])),
                    None => b.push_text(&format!("&{name};")),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    b.flush(None);
    b.page.trailing_anchors = std::mem::take(&mut b.anchors);
    b.page.left_out = std::mem::take(&mut b.left_out);
    Ok(b.page)
}

#[cfg(test)]
mod tests;
