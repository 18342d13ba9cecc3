//! Pronunciation rules: a word said as an alias or as phonemes, from the manifest's
//! `pronunciations` or a W3C PLS lexicon (`pronunciation_file`); where a rule applies to a text
//! (the whole word, case as written, as narrate asks the API to match it); the rules' API form.
//!
//! A leaf: imports nothing of narrate. Not responsible for the dictionary on the account (see
//! `api::dictionaries`) or for validating manifest fields (see `manifest`).

use serde::Serialize;

/// How a word is said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Spoken {
    Alias { alias: String },
    Phoneme { phoneme: String, alphabet: String },
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub word: String,
    #[serde(flatten)]
    pub spoken: Spoken,
}

/// Why a rule cannot be sent: an empty word (a PLS `<grapheme/>`), or a word, alias or phoneme
/// with a control character (a newline inside a rule would be spoken, or break the request).
pub(crate) fn unspeakable(word: &str, spoken: &Spoken) -> Option<String> {
    if word.trim().is_empty() {
        return Some("a rule with an empty word (grapheme)".into());
    }
    let said = match spoken {
        Spoken::Alias { alias } => alias,
        Spoken::Phoneme { phoneme, .. } => phoneme,
    };
    [word, said.as_str()]
        .into_iter()
        .find(|s| s.chars().any(char::is_control))
        .map(|s| format!("{s:?} has a control character (a newline, a tab...)"))
}

/// The phoneme alphabets the API takes.
pub(crate) const ALPHABETS: &[&str] = &["ipa", "cmu-arpabet"];

/// The models whose documentation says they honour phoneme rules; the others skip them.
pub(crate) const PHONEME_MODELS: &[&str] = &[
    "eleven_flash_v2",
    "eleven_turbo_v2",
    "eleven_monolingual_v1",
];

impl Rule {
    /// The rule as the API's dictionary endpoints take it, matching the whole word with its
    /// case as written.
    pub fn api(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "string_to_replace": self.word,
            "case_sensitive": true,
            "word_boundaries": true,
        });
        match &self.spoken {
            Spoken::Alias { alias } => {
                v["type"] = "alias".into();
                v["alias"] = alias.as_str().into();
            }
            Spoken::Phoneme { phoneme, alphabet } => {
                v["type"] = "phoneme".into();
                v["phoneme"] = phoneme.as_str().into();
                v["alphabet"] = alphabet.as_str().into();
            }
        }
        v
    }

    pub fn is_phoneme(&self) -> bool {
        matches!(self.spoken, Spoken::Phoneme { .. })
    }
}

/// Whether `word` occurs in `text` as a whole word (no letter, digit or `_` on either side),
/// with its case as written.
pub(crate) fn occurs_in(word: &str, text: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(at) = text[from..].find(word) {
        let start = from + at;
        let end = start + word.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
            return true;
        }
        from = start + text[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// The rules that apply to `text`, in order.
pub(crate) fn matching<'a>(rules: &'a [Rule], text: &str) -> Vec<&'a Rule> {
    rules.iter().filter(|r| occurs_in(&r.word, text)).collect()
}

/// A PLS problem: the 1-based line and what is wrong.
#[derive(Debug, PartialEq)]
pub(crate) struct PlsError {
    pub line: u64,
    pub message: String,
}

/// The state of one PLS's reading.
struct PlsReader<'s> {
    source: &'s str,
    /// Lines are counted from here on, so finding one is linear in the whole reading.
    counted: (usize, u64),
    rules: Vec<Rule>,
    /// The lexicon's `alphabet`.
    alphabet: Option<String>,
    saw_lexicon: bool,
    /// The lexeme being read: its graphemes, how it is spoken, its start line.
    graphemes: Vec<String>,
    spoken: Option<Spoken>,
    lexeme_line: u64,
    /// The text element being read: its name, its text, its own `alphabet`.
    text: Option<(String, String, Option<String>)>,
}

impl PlsReader<'_> {
    /// The 1-based line of byte `pos`; positions come in order.
    fn line_at(&mut self, pos: u64) -> u64 {
        let pos = usize::try_from(pos)
            .unwrap_or(usize::MAX)
            .min(self.source.len());
        let (from, line) = self.counted;
        if pos < from {
            let before = self.source.as_bytes()[..pos]
                .iter()
                .filter(|b| **b == b'\n');
            return 1 + before.count() as u64;
        }
        let more = self.source.as_bytes()[from..pos]
            .iter()
            .filter(|b| **b == b'\n');
        self.counted = (pos, line + more.count() as u64);
        self.counted.1
    }

    fn start(&mut self, e: &quick_xml::events::BytesStart<'_>, pos: u64) {
        let name = e.local_name().as_ref().to_string();
        let attr = |key: &str| {
            e.attributes().with_checks(false).flatten().find_map(|a| {
                (a.key.local_name().as_ref() == key).then(|| {
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map(|v| v.into_owned())
                        .unwrap_or_default()
                })
            })
        };
        match name.as_str() {
            "lexicon" => {
                self.saw_lexicon = true;
                self.alphabet = attr("alphabet");
            }
            "lexeme" => {
                self.graphemes.clear();
                self.spoken = None;
                self.lexeme_line = self.line_at(pos);
            }
            "grapheme" | "alias" | "phoneme" => {
                self.text = Some((name, String::new(), attr("alphabet")));
            }
            _ => {}
        }
    }

    fn end(&mut self, name: &str, pos: u64) -> Result<(), PlsError> {
        if let Some((kind, s, own_alphabet)) = self.text.take_if(|(k, _, _)| *k == name) {
            let s = s.trim().to_string();
            match kind.as_str() {
                "grapheme" => self.graphemes.push(s),
                "alias" if self.spoken.is_none() => self.spoken = Some(Spoken::Alias { alias: s }),
                "phoneme" if self.spoken.is_none() => {
                    let Some(alphabet) = own_alphabet.or_else(|| self.alphabet.clone()) else {
                        return Err(PlsError {
                            line: self.line_at(pos),
                            message: "a phoneme without an alphabet (give the lexicon's alphabet attribute)".into(),
                        });
                    };
                    self.spoken = Some(Spoken::Phoneme {
                        phoneme: s,
                        alphabet,
                    });
                }
                _ => {}
            }
        } else if name == "lexeme" {
            let Some(how) = self.spoken.take() else {
                return Err(PlsError {
                    line: self.lexeme_line,
                    message: "a lexeme without an alias or a phoneme".into(),
                });
            };
            if self.graphemes.is_empty() {
                return Err(PlsError {
                    line: self.lexeme_line,
                    message: "a lexeme without a grapheme".into(),
                });
            }
            for g in self.graphemes.drain(..) {
                self.rules.push(Rule {
                    word: g,
                    spoken: how.clone(),
                });
            }
        }
        Ok(())
    }

    fn push_text(&mut self, s: &str) {
        if let Some((_, text, _)) = &mut self.text {
            text.push_str(s);
        }
    }
}

/// Reads a W3C PLS lexicon: each `<lexeme>` with its `<grapheme>`s and an `<alias>` or a
/// `<phoneme>` (in the lexicon's `alphabet`, or the phoneme's own). Every grapheme of a lexeme
/// becomes a rule.
pub(crate) fn parse_pls(source: &str) -> Result<Vec<Rule>, PlsError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(source);
    let mut pls = PlsReader {
        source,
        counted: (0, 1),
        rules: Vec::new(),
        alphabet: None,
        saw_lexicon: false,
        graphemes: Vec::new(),
        spoken: None,
        lexeme_line: 0,
        text: None,
    };
    loop {
        let pos = reader.buffer_position();
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => {
                return Err(PlsError {
                    line: pls.line_at(reader.error_position()),
                    message: format!("the PLS does not parse: {e}"),
                });
            }
        };
        match event {
            Event::Start(e) | Event::Empty(e) => pls.start(&e, pos),
            Event::Text(t) => pls.push_text(&t.xml10_content()),
            Event::GeneralRef(r) => {
                let c = crate::xml::general_ref(&r);
                pls.push_text(&c.map(String::from).unwrap_or_default());
            }
            Event::End(e) => pls.end(e.local_name().as_ref(), pos)?,
            Event::Eof => break,
            _ => {}
        }
    }
    if !pls.saw_lexicon {
        return Err(PlsError {
            line: 1,
            message: "not a PLS lexicon (no <lexicon> element)".into(),
        });
    }
    Ok(pls.rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_with_their_case() {
        assert!(occurs_in("Cheshire", "the Cheshire Cat"));
        assert!(occurs_in("Cheshire", "Cheshire."));
        assert!(!occurs_in("Cheshire", "Cheshires"));
        assert!(!occurs_in("Cheshire", "cheshire cat"));
        assert!(occurs_in("Mock Turtle", "said the Mock Turtle,"));
        assert!(!occurs_in("Cat", "Catalogue Cat_x"));
        assert!(occurs_in("é", "café é"));
    }

    #[test]
    fn pls_lexemes_and_their_errors() {
        let pls = r#"<?xml version="1.0" encoding="UTF-8"?>
<lexicon version="1.0" xmlns="http://www.w3.org/2005/01/pronunciation-lexicon" alphabet="ipa" xml:lang="en-GB">
  <lexeme><grapheme>Alice</grapheme><phoneme>ˈælɪs</phoneme></lexeme>
  <lexeme><grapheme>Dinah</grapheme><grapheme>DINAH</grapheme><alias>Dye-nah</alias></lexeme>
</lexicon>"#;
        let rules = parse_pls(pls).unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules[0].spoken,
            Spoken::Phoneme {
                phoneme: "ˈælɪs".into(),
                alphabet: "ipa".into()
            }
        );
        assert_eq!(rules[2].word, "DINAH");
        let bad =
            "<lexicon alphabet=\"ipa\">\n<lexeme>\n<grapheme>X</grapheme>\n</lexeme>\n</lexicon>";
        assert_eq!(parse_pls(bad).unwrap_err().line, 2);
        let broken = "<lexicon>\n<lexeme><grapheme>X</grapheme>\n<alias>y</lexeme>";
        let err = parse_pls(broken).unwrap_err();
        assert!(
            err.line >= 2 && err.message.contains("does not parse"),
            "{err:?}"
        );
    }
}
