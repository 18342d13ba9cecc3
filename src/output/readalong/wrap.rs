//! A source book's XHTML with the narrated sentences wrapped: each document read into words
//! with where a `span` could open before a word and close after it, the narrated clips found
//! among those words in order, and each clip's span inserted where it opens and closes inside
//! one element, so the document stays well formed and nothing else in it changes.
//!
//! Not responsible for reading the book (see `import::epub`) or the SMIL (see `source`).

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::import::html::{BLOCKS, element};

/// Inline elements a span may enclose whole when a sentence starts or ends at their edge.
const PHRASING: &[&str] = &[
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "del", "dfn", "em", "i", "ins", "kbd", "mark",
    "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var",
];

/// A place a span's tag may go: the byte offset in the document, and the element it would be
/// a child of (by its number in the document).
type Place = (usize, usize);

/// A word of a document: its text as a reader sees it, and where a span could open before it
/// and close after it, innermost first.
#[derive(Debug)]
pub(super) struct Word {
    pub(super) text: String,
    opens: Vec<Place>,
    closes: Vec<Place>,
}

struct Open {
    serial: usize,
    /// Where its start tag begins.
    at: usize,
    phrasing: bool,
    /// A word has begun inside it.
    worded: bool,
    /// The word that ended last inside it, with no word after it yet.
    last: Option<usize>,
}

/// Reads documents into words.
#[derive(Default)]
struct Reading {
    stack: Vec<Open>,
    serial: usize,
    /// How many open elements are never narrated (their text is skipped, not a break).
    skipped: usize,
    words: Vec<Word>,
    /// The word being read, and where a span could close after its last character so far.
    current: Option<(Word, Vec<Place>)>,
}

/// An end tag's local name, lower case, as the import reads it.
fn local(e: &quick_xml::events::BytesEnd<'_>) -> String {
    e.local_name().as_ref().to_ascii_lowercase()
}

impl Reading {
    fn parent(&self) -> usize {
        self.stack.last().map_or(0, |o| o.serial)
    }

    /// A character of text at byte `at`, `len` bytes long in the source.
    fn char(&mut self, c: char, at: usize, len: usize) {
        if self.skipped > 0 {
            return;
        }
        if c.is_whitespace() || c.is_control() {
            self.end_word();
            return;
        }
        if matches!(
            c,
            '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{ad}'
        ) {
            if let Some((_, closes)) = &mut self.current {
                *closes = vec![(at + len, self.stack.last().map_or(0, |o| o.serial))];
            }
            return;
        }
        let parent = self.parent();
        match &mut self.current {
            Some((word, closes)) => {
                word.text.push(c);
                *closes = vec![(at + len, parent)];
            }
            None => self.begin_word(c, at, len),
        }
    }

    fn begin_word(&mut self, c: char, at: usize, len: usize) {
        let mut opens = vec![(at, self.parent())];
        // Before an inline element it starts, when nothing was read in it before.
        for k in (0..self.stack.len()).rev() {
            let o = &self.stack[k];
            if !o.phrasing || o.worded {
                break;
            }
            let outer = if k == 0 { 0 } else { self.stack[k - 1].serial };
            opens.push((o.at, outer));
        }
        for o in &mut self.stack {
            o.worded = true;
            o.last = None;
        }
        let word = Word {
            text: c.to_string(),
            opens,
            closes: Vec::new(),
        };
        self.current = Some((word, vec![(at + len, self.parent())]));
    }

    fn end_word(&mut self) {
        if let Some((mut word, closes)) = self.current.take() {
            let n = self.words.len();
            for (_, parent) in &closes {
                if let Some(o) = self.stack.iter_mut().find(|o| o.serial == *parent) {
                    o.last = Some(n);
                }
            }
            word.closes = closes;
            self.words.push(word);
        }
    }

    fn start(&mut self, name: &str, at: usize, skip: bool) {
        if BLOCKS.contains(&name) || is_heading(name) {
            self.end_word();
        }
        self.serial += 1;
        self.skipped += usize::from(skip || self.skipped > 0);
        self.stack.push(Open {
            serial: self.serial,
            at,
            phrasing: PHRASING.contains(&name) && self.skipped == 0,
            worded: false,
            last: None,
        });
    }

    /// An element ends; `after` is the byte after its end tag.
    fn end(&mut self, name: &str, after: usize) {
        if BLOCKS.contains(&name) || is_heading(name) {
            self.end_word();
        }
        if self.skipped > 0 {
            self.skipped -= 1;
        }
        let Some(open) = self.stack.pop() else { return };
        if !open.phrasing {
            return;
        }
        // After it, when a word ended last inside it (or its last character is the last in it).
        let outer = self.parent();
        if let Some((_, closes)) = &mut self.current
            && closes.last().is_some_and(|c| c.1 == open.serial)
        {
            closes.push((after, outer));
        } else if let Some(n) = open.last {
            self.words[n].closes.push((after, outer));
            if let Some(o) = self.stack.last_mut() {
                o.last = Some(n);
            }
        }
    }
}

fn is_heading(name: &str) -> bool {
    matches!(name, "h1" | "h2" | "h3" | "h4" | "h5" | "h6")
}

/// A document's words, in reading order; an error when the XHTML does not parse.
pub(super) fn words(source: &str) -> Result<Vec<Word>, String> {
    let mut reader = Reader::from_str(source);
    reader.config_mut().trim_text(false);
    let mut r = Reading::default();
    loop {
        let at = reader.buffer_position() as usize;
        let event = reader
            .read_event()
            .map_err(|e| format!("{e} (at byte {})", reader.error_position()))?;
        let after = reader.buffer_position() as usize;
        match event {
            Event::Start(e) => {
                let (name, skipped) = element(&e);
                r.start(&name, at, skipped);
            }
            Event::End(e) => r.end(&local(&e), after),
            Event::Empty(e) => {
                let name = e.local_name().as_ref().to_ascii_lowercase();
                if matches!(name.as_str(), "br" | "hr") || BLOCKS.contains(&name.as_str()) {
                    r.end_word();
                }
            }
            Event::Text(t) => {
                let raw: &str = t.as_ref();
                for (i, c) in raw.char_indices() {
                    r.char(c, at + i, c.len_utf8());
                }
            }
            Event::GeneralRef(g) => {
                let name = g.as_ref().to_string();
                let c = crate::xml::general_ref(&g)
                    .or_else(|| crate::import::html::entity(&name))
                    .unwrap_or('\u{fffd}');
                r.char(c, at, after - at);
            }
            Event::CData(_) => r.end_word(),
            Event::Eof => break,
            _ => {}
        }
    }
    r.end_word();
    Ok(r.words)
}

/// The narrated words found in the documents' words, in order: for each narrated word, its
/// (document, word) when found. A word is taken where the reading is; further on only where
/// the next three words agree too (the book's text the narration left out is passed over).
pub(super) fn align(narrated: &[&str], docs: &[Vec<Word>]) -> Vec<Option<(usize, usize)>> {
    let all: Vec<(usize, usize, &str)> = docs
        .iter()
        .enumerate()
        .flat_map(|(d, ws)| {
            ws.iter()
                .enumerate()
                .map(move |(w, x)| (d, w, x.text.as_str()))
        })
        .collect();
    let mut index: HashMap<(&str, &str, &str), Vec<usize>> = HashMap::new();
    for i in 0..all.len().saturating_sub(2) {
        index
            .entry((all[i].2, all[i + 1].2, all[i + 2].2))
            .or_default()
            .push(i);
    }
    let mut out = Vec::with_capacity(narrated.len());
    let mut j = 0;
    for (i, word) in narrated.iter().enumerate() {
        if all.get(j).is_some_and(|a| a.2 == *word) {
            out.push(Some((all[j].0, all[j].1)));
            j += 1;
            continue;
        }
        let next = narrated
            .get(i..i + 3)
            .and_then(|t| index.get(&(t[0], t[1], t[2])))
            .and_then(|at| at.get(at.partition_point(|&p| p < j)).copied());
        match next {
            Some(p) => {
                out.push(Some((all[p].0, all[p].1)));
                j = p + 1;
            }
            None => out.push(None),
        }
    }
    out
}

/// Where a span around words `first..=last` opens and closes: inside the innermost element
/// that holds both ends.
pub(super) fn span_places(words: &[Word], first: usize, last: usize) -> Option<(usize, usize)> {
    let closes = &words[last].closes;
    words[first].opens.iter().find_map(|(at, parent)| {
        closes
            .iter()
            .find(|(_, p)| p == parent)
            .map(|(end, _)| (*at, *end))
    })
}

/// Words `first..=last` as runs that a span each can hold, longest first from the left:
/// `(first, last, (open, close))`; a word no span can hold alone is left out.
pub(super) fn runs(
    words: &[Word],
    first: usize,
    last: usize,
) -> Vec<(usize, usize, (usize, usize))> {
    let mut out = Vec::new();
    let mut s = first;
    while s <= last {
        let run = (s..=last)
            .rev()
            .find_map(|e| span_places(words, s, e).map(|p| (e, p)));
        match run {
            Some((e, places)) => {
                out.push((s, e, places));
                s = e + 1;
            }
            None => s += 1,
        }
    }
    out
}

/// `source` with each `(open, close, id)` wrapped: `<span id="...">` at `open`, `</span>` at
/// `close`; and `extra` text inserted where it says. The spans must not overlap.
pub(super) fn insert_spans(
    source: &str,
    spans: &[(usize, usize, String)],
    extra: Option<(usize, String)>,
) -> String {
    let mut tags: Vec<(usize, u8, String)> = Vec::with_capacity(spans.len() * 2 + 1);
    tags.extend(extra.map(|(at, text)| (at, 2, text)));
    for (open, close, id) in spans {
        tags.push((*open, 1, format!("<span id=\"{id}\">")));
        tags.push((*close, 0, "</span>".to_string()));
    }
    // At one place, a span closes before the next opens.
    tags.sort_by_key(|(at, kind, _)| (*at, *kind));
    let mut out = String::with_capacity(source.len() + tags.len() * 24);
    let mut from = 0;
    for (at, _, tag) in &tags {
        out.push_str(&source[from..*at]);
        out.push_str(tag);
        from = *at;
    }
    out.push_str(&source[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(source: &str, clips: &[&str]) -> String {
        let words = words(source).unwrap();
        let docs = [words];
        let mut spans = Vec::new();
        let mut at = 0;
        for (n, clip) in clips.iter().enumerate() {
            let first = at;
            at += clip.split_whitespace().count();
            if let Some(places) = span_places(&docs[0], first, at - 1) {
                spans.push((places.0, places.1, format!("s{n}")));
            }
        }
        insert_spans(source, &spans, None)
    }

    #[test]
    fn sentences_are_wrapped_inside_their_element_and_nothing_else_changes() {
        let doc = "<html><head><title>T</title></head><body><p class=\"x\">One <em>two</em> three. <b>F</b>our five<a epub:type=\"noteref\" href=\"#n\">1</a>.</p></body></html>";
        let out = wrap(doc, &["One two three.", "Four five."]);
        assert_eq!(
            out,
            "<html><head><title>T</title></head><body><p class=\"x\"><span id=\"s0\">One <em>two</em> three.</span> <span id=\"s1\"><b>F</b>our five<a epub:type=\"noteref\" href=\"#n\">1</a>.</span></p></body></html>"
        );
        // Two sentences inside one emphasis: each wrapped inside it.
        let doc = "<html><body><p><em>Stop. Go.</em></p></body></html>";
        assert_eq!(
            wrap(doc, &["Stop.", "Go."]),
            "<html><body><p><em><span id=\"s0\">Stop.</span> <span id=\"s1\">Go.</span></em></p></body></html>"
        );
    }

    #[test]
    fn a_sentence_that_ends_inside_an_element_it_did_not_start_in_is_not_wrapped() {
        let doc = "<html><body><p>He said <em>stop. Then</em> went.</p></body></html>";
        let words = words(doc).unwrap();
        assert_eq!(words.len(), 5);
        assert_eq!(span_places(&words, 0, 2), None);
        assert!(span_places(&words, 0, 4).is_some());
    }

    #[test]
    fn a_sentence_over_two_paragraphs_is_wrapped_in_each_never_around_them() {
        // A span holds phrasing content only: never a paragraph.
        let doc = "<html><body><div><p>One two</p><p>three.</p></div></body></html>";
        let words = words(doc).unwrap();
        assert_eq!(span_places(&words, 0, 2), None);
        let spans: Vec<(usize, usize, String)> = runs(&words, 0, 2)
            .into_iter()
            .map(|(first, last, (open, close))| (open, close, format!("w{first}-{last}")))
            .collect();
        assert_eq!(
            insert_spans(doc, &spans, None),
            "<html><body><div><p><span id=\"w0-1\">One two</span></p><p><span id=\"w2-2\">three.</span></p></div></body></html>"
        );
    }

    #[test]
    fn a_word_no_span_can_hold_is_left_out_and_the_words_after_it_are_still_wrapped() {
        // "noww" starts inside the emphasis, after "Go", and ends outside it: no span holds it
        // alone and stays well formed.
        let doc = "<html><body><p><em>Go now</em>w on.</p></body></html>";
        let words = words(doc).unwrap();
        assert_eq!(words[1].text, "noww");
        let held: Vec<(usize, usize)> = runs(&words, 1, 2).iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(held, [(2, 2)]);
    }

    #[test]
    fn a_sentence_ending_in_a_character_reference_is_wrapped_after_it() {
        let doc = "<html><body><p>&#8220;Stop.&#8221; He went.</p></body></html>";
        assert_eq!(
            wrap(doc, &["\u{201C}Stop.\u{201D}", "He went."]),
            "<html><body><p><span id=\"s0\">&#8220;Stop.&#8221;</span> <span id=\"s1\">He went.</span></p></body></html>"
        );
    }

    #[test]
    fn words_join_across_inline_tags_and_entities_and_break_at_blocks() {
        let doc = "<html><head><title>Not this</title></head><body><h1>A&amp;B</h1><p>x&#8212;y<br/>z</p><div>w<script>no</script>v</div></body></html>";
        let texts: Vec<String> = words(doc).unwrap().into_iter().map(|w| w.text).collect();
        assert_eq!(texts, ["A&B", "x\u{2014}y", "z", "wv"]);
    }

    #[test]
    fn nothing_inside_a_footnote_is_a_word_past_the_elements_nested_in_it() {
        let doc = "<html><body><div>Before<aside epub:type=\"footnote\"><p>The <em>note</em> itself</p> and more</aside>After</div></body></html>";
        let texts: Vec<String> = words(doc).unwrap().into_iter().map(|w| w.text).collect();
        assert_eq!(texts, ["Before", "After"]);
    }

    #[test]
    fn a_heading_is_a_block_whose_words_never_join_the_text_around_it() {
        let doc = "<html><body><div>Before<h2>Heading</h2>After</div></body></html>";
        let texts: Vec<String> = words(doc).unwrap().into_iter().map(|w| w.text).collect();
        assert_eq!(texts, ["Before", "Heading", "After"]);
    }

    #[test]
    fn a_sentence_whose_last_word_ends_before_an_inline_elements_end_tag_is_wrapped_around_it() {
        // "stop." is followed by a space inside the emphasis: the sentence began outside it,
        // so its span closes after `</em>`.
        let doc = "<html><body><p>Say <em>stop. </em>Next.</p></body></html>";
        assert_eq!(
            wrap(doc, &["Say stop.", "Next."]),
            "<html><body><p><span id=\"s0\">Say <em>stop. </em></span><span id=\"s1\">Next.</span></p></body></html>"
        );
    }

    #[test]
    fn a_sentence_whose_last_word_closes_an_inline_element_is_wrapped_around_it() {
        let doc = "<html><body><p>Say <em>stop.</em> Next.</p></body></html>";
        assert_eq!(
            wrap(doc, &["Say stop.", "Next."]),
            "<html><body><p><span id=\"s0\">Say <em>stop.</em></span> <span id=\"s1\">Next.</span></p></body></html>"
        );
    }

    #[test]
    fn the_narration_is_found_past_what_it_left_out() {
        let doc = words("<html><body><p>Copyright 2020 Someone. All rights.</p><p>It was a dark night and cold.</p></body></html>").unwrap();
        let said = ["It", "was", "a", "dark", "night", "and", "cold."];
        let found = align(&said, &[doc]);
        assert_eq!(found[0], Some((0, 5)));
        assert_eq!(found[6], Some((0, 11)));
    }

    #[test]
    fn words_the_book_says_twice_are_found_again_ahead_of_the_reading_never_behind_it() {
        // The narration skipped "gap" and said a word the book does not have; the three words
        // after it are the book's second "one two three", not its first, already read.
        let doc = words("<html><body><p>one two three gap one two three end</p></body></html>");
        let said = ["one", "two", "three", "other", "one", "two", "three", "end"];
        let found = align(&said, &[doc.unwrap()]);
        let at: Vec<Option<usize>> = found.iter().map(|f| f.map(|(_, w)| w)).collect();
        assert_eq!(
            at,
            [
                Some(0),
                Some(1),
                Some(2),
                None,
                Some(4),
                Some(5),
                Some(6),
                Some(7)
            ]
        );
    }
}
