//! Query strings checked as FastAPI does: each declared parameter against its schema, with
//! pydantic's lax parsing of a string, and the listings' shared readers (`page_size`, a
//! boolean flag, the listing query).
//!
//! Not responsible for bodies (see `body`).

use serde_json::{Value, json};

use super::{check_enum, item, non_null, operation, parse_bool, parse_float, parse_int};

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
