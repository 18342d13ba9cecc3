//! The 422s of a text-to-speech request: its query and body checked against the OpenAPI
//! description as the API's server does (see `pydantic`; its enums hold `output_format` to the
//! API's formats, with no `wav_*` on the streaming endpoints), then what the description leaves
//! out: `speed` within its documented 0.7..1.2 and `style` within 0..1 (both the emulator's
//! choice: the description gives no bounds).
//!
//! Not responsible for the API's own 400s (see `tts`).

use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::pydantic::{body_errors, python_float, query_errors, read_body};

/// A bound's 422 item; `input` is the value as sent, as pydantic echoes it.
fn range_error(loc: &[&str], input: &Value, bound: f64, upper: bool) -> Value {
    let (kind, msg, ctx) = if upper {
        (
            "less_than_equal",
            format!(
                "Input should be less than or equal to {}",
                python_float(bound)
            ),
            json!({"le": bound}),
        )
    } else {
        (
            "greater_than_equal",
            format!(
                "Input should be greater than or equal to {}",
                python_float(bound)
            ),
            json!({"ge": bound}),
        )
    };
    json!({"type": kind, "loc": loc, "msg": msg, "input": input, "ctx": ctx})
}

/// A well-formed text-to-speech request's body, or the 422 items that refuse it. `path` is the
/// operation's path template.
pub(crate) fn validate(
    path: &str,
    headers: &HeaderMap,
    raw: &[u8],
    pairs: &[(String, String)],
) -> Result<Value, Vec<Value>> {
    let mut errors = query_errors(path, "post", pairs);
    let body = match read_body(headers, raw) {
        Ok(body) => body,
        Err(items) => {
            errors.extend(items);
            return Err(errors);
        }
    };
    errors.extend(body_errors(path, "post", body.as_ref()));
    if let Some(settings) = body
        .as_ref()
        .and_then(|b| b.get("voice_settings"))
        .filter(|v| v.is_object())
    {
        for (name, low, high) in [("speed", 0.7, 1.2), ("style", 0.0, 1.0)] {
            let loc = ["body", "voice_settings", name];
            let Some(input) = settings.get(name) else {
                continue;
            };
            match input.as_f64() {
                Some(x) if x > high => errors.push(range_error(&loc, input, high, true)),
                Some(x) if x < low => errors.push(range_error(&loc, input, low, false)),
                _ => {}
            }
        }
    }
    match body {
        Some(body) if errors.is_empty() => Ok(body),
        _ => Err(errors),
    }
}
