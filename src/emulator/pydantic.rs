//! Request validation as the API's server (FastAPI with pydantic v2) does it, driven by the
//! vendored OpenAPI description: each query parameter and body field of the operation checked
//! against its schema, with pydantic's lax coercions (`"1"` for an integer in a query string,
//! `1.0` for an integer in JSON, `"true"`/`"on"`/`1` for a boolean) and its error items (`type`,
//! `loc`, `msg`, `input`, `ctx`), and the body read as FastAPI reads it (JSON only when the
//! content type says JSON or says nothing).
//!
//! Not responsible for the API's own checks of valid input (see `rules`, `validate`).

use std::sync::OnceLock;

use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

/// The OpenAPI description the emulator is checked against.
const OPENAPI: &str = include_str!("../../tests/data/elevenlabs-tts-openapi.json");

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

/// The 422 items of a request's query string for operation `path`/`method`: every declared
/// query parameter present is parsed as its schema says (repeated ones as a list).
pub(crate) fn query_errors(path: &str, method: &str, pairs: &[(String, String)]) -> Vec<Value> {
    let mut errors = Vec::new();
    let Some(params) = operation(path, method)
        .and_then(|op| op.get("parameters"))
        .and_then(Value::as_array)
    else {
        return errors;
    };
    for p in params {
        if p.get("in").and_then(Value::as_str) != Some("query") {
            continue;
        }
        let (Some(name), Some(schema)) = (p.get("name").and_then(Value::as_str), p.get("schema"))
        else {
            continue;
        };
        let values: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect();
        let loc = vec![json!("query"), json!(name)];
        if values.is_empty() {
            if p.get("required").and_then(Value::as_bool) == Some(true) {
                errors.push(item("missing", &loc, "Field required", Value::Null, None));
            }
            continue;
        }
        let schema = non_null(schema);
        if schema.get("type").and_then(Value::as_str) == Some("array") {
            let items = schema.get("items").unwrap_or(&Value::Null);
            for (i, v) in values.iter().enumerate() {
                let mut at = loc.clone();
                at.push(json!(i));
                check_query_value(items, v, &at, &mut errors);
            }
        } else if let Some(last) = values.last() {
            // FastAPI takes the last of a repeated scalar parameter.
            check_query_value(schema, last, &loc, &mut errors);
        }
    }
    errors
}

/// One query value (always a string) against a scalar schema.
fn check_query_value(schema: &Value, value: &str, loc: &[Value], errors: &mut Vec<Value>) {
    let input = json!(value);
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") => {
            if parse_int(value).is_none() {
                errors.push(item(
                    "int_parsing",
                    loc,
                    "Input should be a valid integer, unable to parse string as an integer",
                    input,
                    None,
                ));
            }
        }
        Some("number") => {
            if parse_float(value).is_none() {
                errors.push(item(
                    "float_parsing",
                    loc,
                    "Input should be a valid number, unable to parse string as a number",
                    input,
                    None,
                ));
            }
        }
        Some("boolean") => {
            if parse_bool(value).is_none() {
                errors.push(item(
                    "bool_parsing",
                    loc,
                    "Input should be a valid boolean, unable to interpret input",
                    input,
                    None,
                ));
            }
        }
        _ => check_enum(schema, &input, loc, errors),
    }
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

/// A query flag as the API reads it: `None` when absent or not a boolean (validation has
/// refused the latter already).
pub(crate) fn query_bool(pairs: &[(String, String)], name: &str) -> Option<bool> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| parse_bool(v))
}

/// The query of a listing described at `path`: checked against the description, with its
/// `page_size` (default `default`, 1 to `max`, the bound the documentation states) read; or
/// the 422 items.
pub(crate) fn listing_query(
    path: &str,
    pairs: &[(String, String)],
    default: i64,
    max: i64,
) -> Result<usize, Vec<Value>> {
    let mut errors = query_errors(path, "get", pairs);
    match page_size(pairs, default, max) {
        Ok(n) if errors.is_empty() => Ok(n),
        Ok(_) => Err(errors),
        Err(e) => {
            // The description's own item for the parameter comes first.
            if !errors.iter().any(|x| x["loc"] == e["loc"]) {
                errors.push(e);
            }
            Err(errors)
        }
    }
}

/// A listing's `page_size` (default `default`, 1 to `max`), or its 422 item in pydantic's
/// shape: every listing the emulator serves reads it here.
pub(crate) fn page_size(
    pairs: &[(String, String)],
    default: i64,
    max: i64,
) -> Result<usize, Value> {
    let loc = [json!("query"), json!("page_size")];
    let Some((_, raw)) = pairs.iter().rev().find(|(k, _)| k == "page_size") else {
        return Ok(usize::try_from(default).unwrap_or(1));
    };
    let input = json!(raw);
    let Some(n) = parse_int(raw) else {
        return Err(item(
            "int_parsing",
            &loc,
            "Input should be a valid integer, unable to parse string as an integer",
            input,
            None,
        ));
    };
    if n < 1 {
        return Err(item(
            "greater_than_equal",
            &loc,
            "Input should be greater than or equal to 1",
            input,
            Some(json!({"ge": 1})),
        ));
    }
    if n > max {
        return Err(item(
            "less_than_equal",
            &loc,
            &format!("Input should be less than or equal to {max}"),
            input,
            Some(json!({"le": max})),
        ));
    }
    Ok(usize::try_from(n).unwrap_or(1))
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

/// The body as FastAPI reads it: JSON when the content type is `application/json` (or
/// `+json`) or absent, else the raw text, which no model accepts. `Err` is the 422 items of a
/// body that is not JSON.
pub(crate) fn read_body(headers: &HeaderMap, raw: &[u8]) -> Result<Option<Value>, Vec<Value>> {
    if raw.is_empty() {
        return Ok(None);
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let json = match content_type.as_deref() {
        None => true,
        Some(t) => t
            .strip_prefix("application/")
            .is_some_and(|sub| sub == "json" || sub.ends_with("+json")),
    };
    if !json {
        return Ok(Some(Value::String(
            String::from_utf8_lossy(raw).into_owned(),
        )));
    }
    match serde_json::from_slice(raw) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            // Python's json module counts the position in characters from 0; at the end of
            // the input, it is where the missing value would start.
            let text = String::from_utf8_lossy(raw);
            let position: usize = if e.is_eof() {
                text.chars().count()
            } else {
                text.split('\n')
                    .take(e.line().saturating_sub(1))
                    .map(|l| l.chars().count() + 1)
                    .sum::<usize>()
                    + e.column().saturating_sub(1)
            };
            let why = if e.is_eof() {
                "Expecting value"
            } else {
                "Expecting property name enclosed in double quotes"
            };
            Err(vec![item(
                "json_invalid",
                &[json!("body"), json!(position)],
                "JSON decode error",
                json!({}),
                Some(json!({"error": why})),
            )])
        }
    }
}

/// The 422 items of `body` (as [`read_body`] gave it) against the JSON body schema of
/// operation `path`/`method`.
pub(crate) fn body_errors(path: &str, method: &str, body: Option<&Value>) -> Vec<Value> {
    let Some(schema) = operation(path, method)
        .and_then(|op| op.get("requestBody"))
        .and_then(|b| b.get("content"))
        .and_then(|c| c.get("application/json"))
        .and_then(|j| j.get("schema"))
    else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    match body {
        None => errors.push(item(
            "missing",
            &[json!("body")],
            "Field required",
            Value::Null,
            None,
        )),
        Some(b) => check(schema, b, &[json!("body")], &mut errors),
    }
    errors
}

/// `value` (JSON) against `schema`, pydantic's lax mode.
fn check(schema: &Value, value: &Value, loc: &[Value], errors: &mut Vec<Value>) {
    check_named(None, schema, value, loc, errors);
}

/// [`check`] of a schema that may be the component `name` (for its fields' order).
fn check_named(
    name: Option<&str>,
    schema: &Value,
    value: &Value,
    loc: &[Value],
    errors: &mut Vec<Value>,
) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        if let Some((name, target)) = resolve(r) {
            check_named(Some(name), target, value, loc, errors);
        }
        return;
    }
    if value.is_null() && nullable(schema) {
        return;
    }
    let schema = non_null(schema);
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        if let Some((name, target)) = resolve(r) {
            check_named(Some(name), target, value, loc, errors);
        }
        return;
    }
    let kind = schema.get("type").and_then(Value::as_str);
    let has_properties = schema.get("properties").is_some();
    match kind {
        Some("object") if has_properties => check_object(name, schema, value, loc, errors),
        Some("string") => match value {
            Value::String(_) => check_enum(schema, value, loc, errors),
            _ => errors.push(item(
                "string_type",
                loc,
                "Input should be a valid string",
                value.clone(),
                None,
            )),
        },
        Some("integer") => {
            let refused = match value {
                Value::Number(n) if n.is_i64() || n.is_u64() => None,
                Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => None,
                Value::Number(_) => Some((
                    "int_from_float",
                    "Input should be a valid integer, got a number with a fractional part",
                )),
                Value::Bool(_) => None,
                Value::String(s) if parse_int(s).is_some() => None,
                Value::String(_) => Some((
                    "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer",
                )),
                _ => Some(("int_type", "Input should be a valid integer")),
            };
            if let Some((kind, msg)) = refused {
                errors.push(item(kind, loc, msg, value.clone(), None));
            }
        }
        Some("number") => {
            let number = match value {
                Value::Number(n) => n.as_f64(),
                Value::Bool(b) => Some(f64::from(u8::from(*b))),
                Value::String(s) => {
                    let parsed = parse_float(s);
                    if parsed.is_none() {
                        errors.push(item(
                            "float_parsing",
                            loc,
                            "Input should be a valid number, unable to parse string as a number",
                            value.clone(),
                            None,
                        ));
                        return;
                    }
                    parsed
                }
                _ => {
                    errors.push(item(
                        "float_type",
                        loc,
                        "Input should be a valid number",
                        value.clone(),
                        None,
                    ));
                    return;
                }
            };
            if let Some(x) = number {
                check_bounds(schema, x, value, loc, errors);
            }
        }
        Some("boolean") => {
            let ok = match value {
                Value::Bool(_) => true,
                Value::Number(n) => n.as_f64().is_some_and(|f| f == 0.0 || f == 1.0),
                Value::String(s) => parse_bool(s).is_some(),
                _ => false,
            };
            if !ok {
                let parsing = matches!(value, Value::String(_) | Value::Number(_));
                errors.push(item(
                    if parsing { "bool_parsing" } else { "bool_type" },
                    loc,
                    if parsing {
                        "Input should be a valid boolean, unable to interpret input"
                    } else {
                        "Input should be a valid boolean"
                    },
                    value.clone(),
                    None,
                ));
            }
        }
        Some("array") => match value {
            Value::Array(items) => {
                let each = schema.get("items").unwrap_or(&Value::Null);
                for (i, v) in items.iter().enumerate() {
                    let mut at = loc.to_vec();
                    at.push(json!(i));
                    check(each, v, &at, errors);
                }
            }
            _ => errors.push(item(
                "list_type",
                loc,
                "Input should be a valid list",
                value.clone(),
                None,
            )),
        },
        _ if has_properties => check_object(name, schema, value, loc, errors),
        _ => {}
    }
}

/// A model: a JSON object with its required fields, each field checked. Unknown fields are
/// ignored, as pydantic does by default.
fn check_object(
    name: Option<&str>,
    schema: &Value,
    value: &Value,
    loc: &[Value],
    errors: &mut Vec<Value>,
) {
    let Value::Object(map) = value else {
        errors.push(item(
            "model_attributes_type",
            loc,
            "Input should be a valid dictionary or object to extract fields from",
            value.clone(),
            None,
        ));
        return;
    };
    let empty = Map::new();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let order: Vec<&str> = match name {
        Some(n) => declared_order(n, schema),
        None => properties.keys().map(String::as_str).collect(),
    };
    for field_name in order {
        let Some(field) = properties.get(field_name) else {
            continue;
        };
        let mut at = loc.to_vec();
        at.push(json!(field_name));
        match map.get(field_name) {
            // `input` is null, as the API's real answers show (pydantic itself would give
            // the object missing the field: the API validates its body fields one by one).
            None if required.contains(&field_name) => {
                errors.push(item("missing", &at, "Field required", Value::Null, None));
            }
            None => {}
            Some(v) => check(field, v, &at, errors),
        }
    }
}

/// `minimum`/`maximum` as pydantic's `ge`/`le`.
fn check_bounds(schema: &Value, x: f64, input: &Value, loc: &[Value], errors: &mut Vec<Value>) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && x < min
    {
        errors.push(item(
            "greater_than_equal",
            loc,
            &format!(
                "Input should be greater than or equal to {}",
                python_float(min)
            ),
            input.clone(),
            Some(json!({"ge": min})),
        ));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && x > max
    {
        errors.push(item(
            "less_than_equal",
            loc,
            &format!(
                "Input should be less than or equal to {}",
                python_float(max)
            ),
            input.clone(),
            Some(json!({"le": max})),
        ));
    }
}

/// A float as Python prints it (`1.0`, `0.7`).
pub(crate) fn python_float(x: f64) -> String {
    format!("{x:?}")
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
