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

/// Replaces `word` by `alias` in `text` as a rule says (whole words and case by default).
fn replace(text: &str, word: &str, alias: &str, case_sensitive: bool, boundaries: bool) -> String {
    if word.is_empty() {
        return text.to_string();
    }
    let (hay, needle) = if case_sensitive {
        (text.to_string(), word.to_string())
    } else {
        (text.to_lowercase(), word.to_lowercase())
    };
    // Lowercasing can change lengths; then only exact-case matches are replaced.
    let hay = if hay.len() == text.len() {
        hay
    } else {
        text.to_string()
    };
    let mut out = String::new();
    let mut from = 0;
    while let Some(i) = hay[from..].find(&needle) {
        let at = from + i;
        if !boundaries || whole_word(text, at, needle.len()) {
            out.push_str(&text[from..at]);
            out.push_str(alias);
            from = at + needle.len();
        } else {
            let step = text[at..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&text[from..at + step]);
            from = at + step;
        }
    }
    out.push_str(&text[from..]);
    out
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
    let mut out = text.to_string();
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
        for rule in rules.iter().filter(|r| r["type"] == "alias") {
            out = replace(
                &out,
                rule["string_to_replace"].as_str().unwrap_or_default(),
                rule["alias"].as_str().unwrap_or_default(),
                rule["case_sensitive"].as_bool().unwrap_or(true),
                rule["word_boundaries"].as_bool().unwrap_or(true),
            );
        }
    }
    Ok(out)
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
}
