//! Request validation as the API's server (FastAPI with pydantic v2) does it, driven by the
//! vendored OpenAPI description: each query parameter and body field of the operation checked
//! against its schema, with pydantic's lax coercions (`"1"` for an integer in a query string,
//! `1.0` for an integer in JSON, `"true"`/`"on"`/`1` for a boolean) and its error items (`type`,
//! `loc`, `msg`, `input`, `ctx`), and the body read as FastAPI reads it (JSON only when the
//! content type says JSON or says nothing).
//!
//! This file holds the description and pydantic's parsing of scalars and error items; `query`
//! checks query strings, `body` reads and checks bodies.
//!
//! Not responsible for the API's own checks of valid input (see `rules`, `validate`).

use std::sync::OnceLock;

use serde_json::{Value, json};

mod body;
mod query;

pub(crate) use body::{body_errors, python_float, read_body};
pub(crate) use query::{listing_query, page_size, query_bool, query_errors};

/// The OpenAPI description the emulator is checked against.
pub(crate) const OPENAPI: &str = include_str!("../../data/elevenlabs-tts-openapi.json");

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| serde_json::from_str(OPENAPI).unwrap_or(Value::Null))
}

/// The schema `reference` (`#/components/schemas/Name`) points at, and its name.
fn resolve(reference: &str) -> Option<(&'static str, &'static Value)> {
    let name = reference.strip_prefix("#/components/schemas/")?;
    let (name, schema) = spec()
        .get("components")?
        .get("schemas")?
        .as_object()?
        .get_key_value(name)?;
    Some((name.as_str(), schema))
}

/// The properties of component schema `name` in the order the description declares them
/// (pydantic reports errors in field order; the parsed description's maps are sorted).
fn declared_order<'a>(name: &str, schema: &'a Value) -> Vec<&'a str> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let at = |needle: &str, from: usize| OPENAPI[from..].find(needle).map(|i| from + i);
    let start = at("\"schemas\"", 0)
        .and_then(|s| at(&format!("\"{name}\": {{"), s))
        .and_then(|s| at("\"properties\": {", s))
        .unwrap_or(0);
    let mut keys: Vec<(usize, &'a str)> = properties
        .keys()
        .map(|k| {
            let pos = at(&format!("\"{k}\": {{"), start).unwrap_or(usize::MAX);
            (pos, k.as_str())
        })
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}

/// The operation `method` (lowercase) of the path template `path`.
fn operation(path: &str, method: &str) -> Option<&'static Value> {
    spec().get("paths")?.get(path)?.get(method)
}

/// Pydantic's integer from a string: optional sign, digits, surrounding whitespace. Python's
/// integers have no bound: one past `i64` is valid, and saturates here.
fn parse_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(t.parse().unwrap_or(if t.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    }))
}

fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    // Rust also reads "infinity" and "nan", as Python's float() does.
    if t.is_empty() || lower.contains('_') {
        return None;
    }
    t.parse().ok()
}

/// Pydantic's boolean from a string.
fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
        "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
        _ => None,
    }
}

/// A schema without its `null` alternative (`Optional[X]` is X, or null).
fn non_null(schema: &Value) -> &Value {
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let rest: Vec<&Value> = any
            .iter()
            .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if let [only] = rest.as_slice() {
            return only;
        }
    }
    schema
}

fn nullable(schema: &Value) -> bool {
    schema
        .get("anyOf")
        .and_then(Value::as_array)
        .is_some_and(|any| {
            any.iter()
                .any(|s| s.get("type").and_then(Value::as_str) == Some("null"))
        })
}

fn item(kind: &str, loc: &[Value], msg: &str, input: Value, ctx: Option<Value>) -> Value {
    let mut v = json!({"type": kind, "loc": loc, "msg": msg, "input": input});
    if let Some(ctx) = ctx {
        v["ctx"] = ctx;
    }
    v
}

/// An inline `enum` is a `Literal` on the server: pydantic's `literal_error`.
fn check_enum(schema: &Value, value: &Value, loc: &[Value], errors: &mut Vec<Value>) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if allowed.contains(value) {
        return;
    }
    let quoted: Vec<String> = allowed
        .iter()
        .filter_map(Value::as_str)
        .map(|s| format!("'{s}'"))
        .collect();
    let expected = match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    };
    errors.push(item(
        "literal_error",
        loc,
        &format!("Input should be {expected}"),
        value.clone(),
        Some(json!({"expected": expected})),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_is_read_and_its_references_resolve() {
        let body = operation("/v1/text-to-speech/{voice_id}", "post").unwrap();
        assert!(body.get("requestBody").is_some());
        assert!(resolve("#/components/schemas/VoiceSettingsResponseModel").is_some());
    }

    #[test]
    fn fields_are_in_the_order_the_description_declares_them() {
        let (name, body) = resolve("#/components/schemas/Body_text_to_speech_full").unwrap();
        let order = declared_order(name, body);
        assert_eq!(
            &order[..4],
            ["text", "model_id", "language_code", "voice_settings"]
        );
        let previous = order.iter().position(|k| *k == "previous_text").unwrap();
        let next = order.iter().position(|k| *k == "next_text").unwrap();
        assert!(previous < next);
    }

    #[test]
    fn query_strings_are_coerced_as_pydantic_does() {
        for (v, ok) in [
            ("1", true),
            (" 2 ", true),
            ("-1", true),
            ("123456789012345678901234567890", true),
            ("", false),
            ("abc", false),
            ("1.5", false),
        ] {
            assert_eq!(parse_int(v).is_some(), ok, "{v}");
        }
        for (v, ok) in [
            ("true", true),
            ("OFF", true),
            ("yes", true),
            ("1", true),
            ("maybe", false),
            ("2", false),
        ] {
            assert_eq!(parse_bool(v).is_some(), ok, "{v}");
        }
    }
}
