//! The 422 checks of a text-to-speech request, in FastAPI/pydantic's list shape: the body is a
//! JSON object with a string `text`, settings within their ranges (stability and similarity
//! 0..1, speed 0.7..1.2), known enums, and a known `output_format`.
//!
//! Not responsible for the API's own 400s (see `tts`).

use serde_json::{Value, json};

use crate::format::OutputFormat;

pub(crate) fn range_error(loc: &[&str], value: f64, bound: f64, upper: bool) -> Value {
    let (kind, msg, ctx) = if upper {
        (
            "less_than_equal",
            format!("Input should be less than or equal to {bound:?}"),
            json!({"le": bound}),
        )
    } else {
        (
            "greater_than_equal",
            format!("Input should be greater than or equal to {bound:?}"),
            json!({"ge": bound}),
        )
    };
    json!({"type": kind, "loc": loc, "msg": msg, "input": value, "ctx": ctx})
}

/// The 422 items for a TTS request, empty when it is well formed.
pub(crate) fn validate(
    body: Option<&Value>,
    raw: &[u8],
    format: Option<&str>,
    stream: bool,
) -> Vec<Value> {
    let mut errors = Vec::new();
    if let Some(format) = format {
        let ok = format.parse::<OutputFormat>().is_ok() && !(stream && format.starts_with("wav_"));
        if !ok {
            errors.push(json!({"type": "enum", "loc": ["query", "output_format"],
                "msg": "Input should be a valid output format", "input": format}));
        }
    }
    let Some(body) = body else {
        errors.push(
            json!({"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error",
            "input": {}, "ctx": {"error": String::from_utf8_lossy(&raw[..raw.len().min(80)])}}),
        );
        return errors;
    };
    if !body.is_object() {
        errors.push(json!({"type": "model_attributes_type", "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from", "input": body}));
        return errors;
    }
    match body.get("text") {
        None | Some(Value::Null) => errors.push(json!({"type": "missing", "loc": ["body", "text"], "msg": "Field required", "input": null})),
        Some(Value::String(_)) => {}
        Some(other) => errors.push(json!({"type": "string_type", "loc": ["body", "text"], "msg": "Input should be a valid string", "input": other})),
    }
    if let Some(settings) = body.get("voice_settings").filter(|v| !v.is_null()) {
        for name in ["stability", "similarity_boost", "style", "speed"] {
            let Some(v) = settings.get(name) else {
                continue;
            };
            let loc = ["body", "voice_settings", name];
            match v.as_f64() {
                None => errors.push(json!({"type": "float_type", "loc": loc, "msg": "Input should be a valid number", "input": v})),
                Some(x) if matches!(name, "stability" | "similarity_boost") && x > 1.0 => errors.push(range_error(&loc, x, 1.0, true)),
                Some(x) if matches!(name, "stability" | "similarity_boost") && x < 0.0 => errors.push(range_error(&loc, x, 0.0, false)),
                // The documented range of speed; it also bounds the audio one request produces.
                Some(x) if name == "speed" && x > 1.2 => errors.push(range_error(&loc, x, 1.2, true)),
                Some(x) if name == "speed" && x < 0.7 => errors.push(range_error(&loc, x, 0.7, false)),
                Some(_) => {}
            }
        }
    }
    if let Some(n) = body
        .get("apply_text_normalization")
        .filter(|v| !v.is_null())
        && !matches!(n.as_str(), Some("auto" | "on" | "off"))
    {
        errors.push(json!({"type": "enum", "loc": ["body", "apply_text_normalization"],
            "msg": "Input should be 'auto', 'on' or 'off'", "input": n, "ctx": {"expected": "'auto', 'on' or 'off'"}}));
    }
    errors
}
