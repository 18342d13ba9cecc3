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

/// The phoneme alphabets the API takes.
pub const ALPHABETS: &[&str] = &["ipa", "cmu-arpabet"];

/// The models whose documentation says they honour phoneme rules; the others skip them.
pub const PHONEME_MODELS: &[&str] = &[
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
pub fn occurs_in(word: &str, text: &str) -> bool {
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
pub fn matching<'a>(rules: &'a [Rule], text: &str) -> Vec<&'a Rule> {
    rules.iter().filter(|r| occurs_in(&r.word, text)).collect()
}

/// A PLS problem: the 1-based line and what is wrong.
#[derive(Debug, PartialEq)]
pub struct PlsError {
    pub line: u64,
    pub message: String,
}

/// Reads a W3C PLS lexicon: each `<lexeme>` with its `<grapheme>`s and an `<alias>` or a
/// `<phoneme>` (in the lexicon's `alphabet`, or the phoneme's own). Every grapheme of a lexeme
/// becomes a rule.
pub fn parse_pls(source: &str) -> Result<Vec<Rule>, PlsError> {
    use quick_xml::Reader;
    use quick_xml::events::Event;
    let line_at = |pos: u64| {
        1 + source.as_bytes()[..(pos as usize).min(source.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64
    };
    let mut reader = Reader::from_str(source);
    let mut rules = Vec::new();
    let mut alphabet: Option<String> = None;
    let mut saw_lexicon = false;
    // The lexeme being read: its graphemes, alias, phoneme (with alphabet), start line.
    let mut graphemes: Vec<String> = Vec::new();
    let mut spoken: Option<Spoken> = None;
    let mut lexeme_line = 0;
    let mut text: Option<(String, String, Option<String>)> = None;
    loop {
        let pos = reader.buffer_position();
        let event = reader.read_event().map_err(|e| PlsError {
            line: line_at(reader.error_position()),
            message: format!("the PLS does not parse: {e}"),
        })?;
        match event {
            Event::Start(e) | Event::Empty(e) => {
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
                        saw_lexicon = true;
                        alphabet = attr("alphabet");
                    }
                    "lexeme" => {
                        graphemes.clear();
                        spoken = None;
                        lexeme_line = line_at(pos);
                    }
                    "grapheme" | "alias" | "phoneme" => {
                        text = Some((name, String::new(), attr("alphabet")));
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let Some((_, s, _)) = &mut text {
                    s.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some((_, s, _)) = &mut text {
                    let c = match r.xml10_content().as_ref() {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        _ => r.resolve_char_ref().ok().flatten(),
                    };
                    s.extend(c);
                }
            }
            Event::End(e) => {
                let name = e.local_name().as_ref().to_string();
                if let Some((kind, s, own_alphabet)) = text.take_if(|(k, _, _)| *k == name) {
                    let s = s.trim().to_string();
                    match kind.as_str() {
                        "grapheme" => graphemes.push(s),
                        "alias" if spoken.is_none() => spoken = Some(Spoken::Alias { alias: s }),
                        "phoneme" if spoken.is_none() => {
                            let alphabet = own_alphabet.or_else(|| alphabet.clone()).ok_or(
                                PlsError {
                                    line: line_at(pos),
                                    message: "a phoneme without an alphabet (give the lexicon's alphabet attribute)".into(),
                                },
                            )?;
                            spoken = Some(Spoken::Phoneme {
                                phoneme: s,
                                alphabet,
                            });
                        }
                        _ => {}
                    }
                } else if name == "lexeme" {
                    let Some(how) = spoken.take() else {
                        return Err(PlsError {
                            line: lexeme_line,
                            message: "a lexeme without an alias or a phoneme".into(),
                        });
                    };
                    if graphemes.is_empty() {
                        return Err(PlsError {
                            line: lexeme_line,
                            message: "a lexeme without a grapheme".into(),
                        });
                    }
                    for g in graphemes.drain(..) {
                        rules.push(Rule {
                            word: g,
                            spoken: how.clone(),
                        });
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_lexicon {
        return Err(PlsError {
            line: 1,
            message: "not a PLS lexicon (no <lexicon> element)".into(),
        });
    }
    Ok(rules)
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
