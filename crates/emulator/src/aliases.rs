//! Aliases spoken: the rules of the pronunciation dictionaries a request names, applied to its
//! text before it is voiced (whole words and case as each rule says), and the locators checked
//! as the API checks them.
//!
//! Not responsible for keeping the dictionaries (see `dictionaries`).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::Emulator;
use super::auth::{api_error, validation_error};

/// Whether `word` is in `text` at `at` as a whole word.
fn whole_word(text: &str, at: usize, len: usize) -> bool {
    let inside = |c: char| c.is_alphanumeric() || c == '_';
    !text[..at].chars().next_back().is_some_and(inside)
        && !text[at + len..].chars().next().is_some_and(inside)
}

/// One alias rule of a dictionary.
struct Alias<'r> {
    word: &'r str,
    alias: &'r str,
    case_sensitive: bool,
    boundaries: bool,
}

impl Alias<'_> {
    /// The length in bytes of the rule's word where `text[at..]` starts with it.
    fn matches_at(&self, text: &str, at: usize) -> Option<usize> {
        let rest = &text[at..];
        let len = if self.case_sensitive {
            rest.starts_with(self.word).then_some(self.word.len())?
        } else {
            let mut taken = 0;
            let mut chars = rest.chars();
            for w in self.word.chars() {
                let c = chars.next()?;
                if !c.to_lowercase().eq(w.to_lowercase()) {
                    return None;
                }
                taken += c.len_utf8();
            }
            taken
        };
        (!self.boundaries || whole_word(text, at, len)).then_some(len)
    }
}

/// The text with every alias applied in one pass over it: at each place the first rule (in
/// dictionary order) whose word is there is spoken as its alias, and what an alias says is
/// never read again, so rules cannot feed each other (nine chained rules do not grow a word
/// into gigabytes).
fn apply_aliases(text: &str, rules: &[Alias<'_>]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        let hit = rules
            .iter()
            .filter(|r| !r.word.is_empty())
            .find_map(|r| r.matches_at(text, at).map(|len| (r, len)));
        match hit {
            Some((rule, len)) => {
                out.push_str(rule.alias);
                at += len;
            }
            None => {
                let step = text[at..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&text[at..at + step]);
                at += step;
            }
        }
    }
    out
}

/// Replaces `word` by `alias` in `text` as a rule says (whole words and case by default).
#[cfg(test)]
fn replace(text: &str, word: &str, alias: &str, case_sensitive: bool, boundaries: bool) -> String {
    apply_aliases(
        text,
        &[Alias {
            word,
            alias,
            case_sensitive,
            boundaries,
        }],
    )
}

/// A request's locators checked (at most 3, each a dictionary and version of the account) and
/// their alias rules applied to `text`, in order.
#[allow(clippy::result_large_err)] // the error is the answer itself
pub(crate) fn apply(state: &Emulator, body: &Value, text: &str) -> Result<String, Response> {
    let Some(locators) = body
        .get("pronunciation_dictionary_locators")
        .and_then(Value::as_array)
    else {
        return Ok(text.to_string());
    };
    if locators.len() > 3 {
        return Err(validation_error(vec![json!({
            "type": "too_long",
            "loc": ["body", "pronunciation_dictionary_locators"],
            "msg": format!("List should have at most 3 items after validation, not {}", locators.len()),
            "input": locators,
            "ctx": {"field_type": "List", "max_length": 3, "actual_length": locators.len()},
        })]));
    }
    let all = state.dictionaries();
    let mut aliases: Vec<Value> = Vec::new();
    for locator in locators {
        let id = locator
            .get("pronunciation_dictionary_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(d) = all.iter().find(|d| d.id == id) else {
            drop(all);
            return Err(api_error(
                state,
                StatusCode::BAD_REQUEST,
                "validation_error",
                "pronunciation_dictionary_not_found",
                &format!(
                    "The pronunciation dictionary {id} was not found (the emulator's choice of answer: the API does not document this error)."
                ),
            ));
        };
        let rules = match locator.get("version_id").and_then(Value::as_str) {
            None => &d.latest().1,
            Some(v) => match d.versions.iter().find(|(id, _)| id == v) {
                Some((_, rules)) => rules,
                None => {
                    drop(all);
                    return Err(api_error(
                        state,
                        StatusCode::BAD_REQUEST,
                        "validation_error",
                        "pronunciation_dictionary_version_not_found",
                        &format!(
                            "The version {v} of the pronunciation dictionary {id} was not found (the emulator's choice of answer: the API does not document this error)."
                        ),
                    ));
                }
            },
        };
        aliases.extend(rules.iter().filter(|r| r["type"] == "alias").cloned());
    }
    let rules: Vec<Alias<'_>> = aliases
        .iter()
        .map(|rule| Alias {
            word: rule["string_to_replace"].as_str().unwrap_or_default(),
            alias: rule["alias"].as_str().unwrap_or_default(),
            case_sensitive: rule["case_sensitive"].as_bool().unwrap_or(true),
            boundaries: rule["word_boundaries"].as_bool().unwrap_or(true),
        })
        .collect();
    Ok(apply_aliases(text, &rules))
}

#[cfg(test)]
mod tests {
    use super::replace;

    #[test]
    fn aliases_replace_whole_words() {
        assert_eq!(
            replace(
                "The Cheshire Cat, Cheshires.",
                "Cheshire",
                "Chesh-er",
                true,
                true
            ),
            "The Chesh-er Cat, Cheshires."
        );
        assert_eq!(replace("cheshire", "Cheshire", "X", true, true), "cheshire");
        assert_eq!(replace("cheshire", "Cheshire", "X", false, true), "X");
        assert_eq!(replace("Cheshires", "Cheshire", "X", true, false), "Xs");
    }

    #[test]
    fn aliases_are_applied_once_and_never_to_each_others_output() {
        let words = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        let aliases: Vec<String> = words[1..].iter().map(|w| format!("{w} {w} {w}")).collect();
        let rules: Vec<super::Alias<'_>> = words[..9]
            .iter()
            .zip(&aliases)
            .map(|(word, alias)| super::Alias {
                word,
                alias,
                case_sensitive: true,
                boundaries: true,
            })
            .collect();
        // Chained, a became b b b, then nine b..., 3^9 words: once, it is only "b b b".
        assert_eq!(super::apply_aliases("a", &rules), "b b b");
        assert_eq!(super::apply_aliases("a b", &rules), "b b b c c c");
    }
}
