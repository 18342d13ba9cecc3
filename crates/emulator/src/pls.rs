//! PLS lexicons as the dictionaries' `add-from-file` endpoint reads them: each `<lexeme>`'s
//! graphemes with its `<alias>` or `<phoneme>`, turned into the API's rules. The emulator reads
//! them itself, so the client's PLS reader is never the judge of its own output.
//!
//! Not responsible for applying the rules (see `aliases`).

use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::{Value, json};

/// A lexicon that cannot be read: the 1-based line and why.
pub(crate) struct PlsError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

/// The lexeme being read.
#[derive(Default)]
struct Lexeme {
    graphemes: Vec<String>,
    /// `("alias", text)` or `("phoneme", text)` with its alphabet.
    spoken: Option<(&'static str, String, Option<String>)>,
    line: usize,
}

/// An element's local name and its `alphabet` attribute.
fn name_and_alphabet(e: &quick_xml::events::BytesStart<'_>) -> (String, Option<String>) {
    let alphabet = e
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == "alphabet")
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        });
    (e.local_name().as_ref().to_string(), alphabet)
}

/// The characters a text event or a general reference stands for.
fn characters(event: &Event<'_>) -> Option<String> {
    match event {
        Event::Text(t) => Some(t.xml10_content().into_owned()),
        Event::GeneralRef(r) => {
            let named = match r.xml10_content().as_ref() {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => None,
            };
            named
                .or_else(|| r.resolve_char_ref().ok().flatten())
                .map(String::from)
        }
        _ => None,
    }
}

/// The rules of a PLS document, each grapheme of a lexeme a rule (whole words, case as
/// written).
pub(crate) fn rules(source: &str) -> Result<Vec<Value>, PlsError> {
    let mut reader = Reader::from_str(source);
    let line = |pos: u64| {
        let pos = usize::try_from(pos).unwrap_or(usize::MAX).min(source.len());
        1 + source.as_bytes()[..pos]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
    };
    let (mut rules, mut lexicon_alphabet, mut lexicon) = (Vec::new(), None, false);
    let mut lexeme = Lexeme::default();
    let mut text: Option<(String, String, Option<String>)> = None;
    loop {
        let pos = reader.buffer_position();
        let event = reader.read_event().map_err(|e| PlsError {
            line: line(reader.error_position()),
            message: e.to_string(),
        })?;
        if let (Some((_, s, _)), Some(chars)) = (&mut text, characters(&event)) {
            s.push_str(&chars);
            continue;
        }
        match event {
            Event::Start(e) | Event::Empty(e) => match name_and_alphabet(&e) {
                (name, alphabet) if name == "lexicon" => {
                    (lexicon, lexicon_alphabet) = (true, alphabet);
                }
                (name, _) if name == "lexeme" => {
                    lexeme = Lexeme {
                        line: line(pos),
                        ..Lexeme::default()
                    };
                }
                (name, alphabet) if ["grapheme", "alias", "phoneme"].contains(&name.as_str()) => {
                    text = Some((name, String::new(), alphabet));
                }
                _ => {}
            },
            Event::End(e) => {
                let name = e.local_name().as_ref().to_string();
                if let Some((kind, s, alphabet)) = text.take_if(|(k, ..)| *k == name) {
                    let alphabet = alphabet.or_else(|| lexicon_alphabet.clone());
                    lexeme.read(&kind, s.trim().to_string(), alphabet);
                } else if name == "lexeme" {
                    rules.extend(lexeme_rules(std::mem::take(&mut lexeme))?);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !lexicon {
        return Err(PlsError {
            line: 1,
            message: "no <lexicon> element".into(),
        });
    }
    Ok(rules)
}

impl Lexeme {
    /// A grapheme, alias or phoneme of the lexeme is read (the first way of saying it counts).
    fn read(&mut self, kind: &str, text: String, alphabet: Option<String>) {
        match kind {
            "grapheme" => self.graphemes.push(text),
            "alias" if self.spoken.is_none() => self.spoken = Some(("alias", text, None)),
            "phoneme" if self.spoken.is_none() => self.spoken = Some(("phoneme", text, alphabet)),
            _ => {}
        }
    }
}

/// One rule per grapheme of a finished lexeme.
fn lexeme_rules(lexeme: Lexeme) -> Result<Vec<Value>, PlsError> {
    let refuse = |message: &str| PlsError {
        line: lexeme.line,
        message: message.into(),
    };
    let Some((kind, spoken, alphabet)) = &lexeme.spoken else {
        return Err(refuse("a lexeme without an alias or a phoneme"));
    };
    if lexeme.graphemes.is_empty() {
        return Err(refuse("a lexeme without a grapheme"));
    }
    if *kind == "phoneme" && alphabet.is_none() {
        return Err(refuse("a phoneme without an alphabet"));
    }
    Ok(lexeme
        .graphemes
        .iter()
        .map(|g| {
            let mut rule = json!({
                "string_to_replace": g,
                "type": kind,
                "case_sensitive": true,
                "word_boundaries": true,
            });
            rule[*kind] = json!(spoken);
            if let Some(a) = alphabet {
                rule["alphabet"] = json!(a);
            }
            rule
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::rules;

    #[test]
    fn each_grapheme_is_a_rule_and_a_broken_lexicon_says_its_line() {
        let pls = r#"<?xml version="1.0"?>
<lexicon version="1.0" xmlns="http://www.w3.org/2005/01/pronunciation-lexicon" alphabet="ipa">
  <lexeme><grapheme>Cheshire</grapheme><grapheme>CHESHIRE</grapheme><alias>Chesh-er</alias></lexeme>
  <lexeme><grapheme>Alice</grapheme><phoneme>ˈælɪs</phoneme></lexeme>
</lexicon>"#;
        let got = rules(pls).unwrap_or_else(|e| panic!("line {}: {}", e.line, e.message));
        assert_eq!(got.len(), 3);
        assert_eq!(got[1]["string_to_replace"], "CHESHIRE");
        assert_eq!(got[1]["alias"], "Chesh-er");
        assert_eq!(got[2]["phoneme"], "ˈælɪs");
        assert_eq!(got[2]["alphabet"], "ipa");
        let broken = "<lexicon>\n<lexeme>\n<grapheme>x</grapheme>\n</lexeme>\n</lexicon>";
        let Err(e) = rules(broken) else {
            panic!("a lexeme without an alias is refused")
        };
        assert_eq!(e.line, 2);
    }
}
