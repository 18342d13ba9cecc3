//! Bodies read as FastAPI reads them (JSON only when the content type says JSON or nothing)
//! and checked against the operation's schema in pydantic's lax mode, with its error items.
//!
//! Not responsible for query strings (see `query`).

use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use super::{
    check_enum, declared_order, item, non_null, nullable, operation, parse_bool, parse_float,
    parse_int, resolve,
};

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
    let refused = match kind {
        Some("object") if has_properties => {
            check_object(name, schema, value, loc, errors);
            None
        }
        Some("string") => match value {
            Value::String(_) => {
                check_enum(schema, value, loc, errors);
                None
            }
            _ => Some(("string_type", "Input should be a valid string")),
        },
        Some("integer") => integer_refused(value),
        Some("number") => match number(value) {
            Ok(x) => {
                check_bounds(schema, x, value, loc, errors);
                None
            }
            Err(refused) => Some(refused),
        },
        Some("boolean") => boolean_refused(value),
        Some("array") => check_array(schema, value, loc, errors),
        _ if has_properties => {
            check_object(name, schema, value, loc, errors);
            None
        }
        _ => None,
    };
    if let Some((kind, msg)) = refused {
        errors.push(item(kind, loc, msg, value.clone(), None));
    }
}

/// Why pydantic refuses `value` as an integer: its error type and message.
fn integer_refused(value: &Value) -> Option<(&'static str, &'static str)> {
    match value {
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
    }
}

/// `value` as pydantic reads a number, or why it refuses it.
fn number(value: &Value) -> Result<f64, (&'static str, &'static str)> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .ok_or(("float_type", "Input should be a valid number")),
        Value::Bool(b) => Ok(f64::from(u8::from(*b))),
        Value::String(s) => parse_float(s).ok_or((
            "float_parsing",
            "Input should be a valid number, unable to parse string as a number",
        )),
        _ => Err(("float_type", "Input should be a valid number")),
    }
}

/// Why pydantic refuses `value` as a boolean.
fn boolean_refused(value: &Value) -> Option<(&'static str, &'static str)> {
    let ok = match value {
        Value::Bool(_) => true,
        Value::Number(n) => n.as_f64().is_some_and(|f| f == 0.0 || f == 1.0),
        Value::String(s) => parse_bool(s).is_some(),
        _ => false,
    };
    if ok {
        None
    } else if matches!(value, Value::String(_) | Value::Number(_)) {
        Some((
            "bool_parsing",
            "Input should be a valid boolean, unable to interpret input",
        ))
    } else {
        Some(("bool_type", "Input should be a valid boolean"))
    }
}

/// An array: each item checked against the schema's `items`; anything else refused.
fn check_array(
    schema: &Value,
    value: &Value,
    loc: &[Value],
    errors: &mut Vec<Value>,
) -> Option<(&'static str, &'static str)> {
    let Value::Array(items) = value else {
        return Some(("list_type", "Input should be a valid list"));
    };
    let each = schema.get("items").unwrap_or(&Value::Null);
    for (i, v) in items.iter().enumerate() {
        let mut at = loc.to_vec();
        at.push(json!(i));
        check(each, v, &at, errors);
    }
    None
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
