//! The API's own refusals of a well-formed text-to-speech request, in its order: the voice, the
//! model, the text and its length, the format and the tier, the stitching ids, the quota and the
//! tier's concurrency.
//!
//! Not responsible for the 422s (see `validate`) or for generating (see `tts`).

// Errors here are the answers themselves, built once per refused request.
#![allow(clippy::result_large_err)]

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::auth::{api_error, bad};
use super::data::{self, Model};
use super::{Emulator, Tier};
use crate::format::{Codec, OutputFormat};

/// A request that passed the API's checks: what to synthesize.
pub(crate) struct Accepted<'a> {
    pub(crate) text: &'a str,
    /// The text as it is spoken: the alias rules of its pronunciation dictionaries applied.
    pub(crate) spoken: String,
    pub(crate) chars: usize,
    pub(crate) model: &'static Model,
    pub(crate) format: OutputFormat,
}

/// The API's checks of a well-formed request, in its order: the voice exists, the model is
/// known, the text is not empty and within the model's limit, the format can be produced and
/// the tier may use it.
#[allow(clippy::result_large_err)] // the error is the answer itself
pub(crate) fn accept<'a>(
    state: &Emulator,
    voice_id: &str,
    body: &'a Value,
    output_format: Option<&str>,
) -> Result<Accepted<'a>, Response> {
    if !data::voice_exists(voice_id) {
        return Err(api_error(
            state,
            StatusCode::NOT_FOUND,
            "not_found",
            "voice_not_found",
            &format!("A voice with the voice_id {voice_id} was not found."),
        ));
    }
    let model_id = body
        .get("model_id")
        .and_then(|v| v.as_str())
        .unwrap_or(data::DEFAULT_MODEL);
    let Some(model) = data::find_model(model_id) else {
        return Err(bad(
            state,
            "model_not_found",
            &format!("A model with model ID {model_id} does not exist."),
        ));
    };
    let text = body
        .get("text")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let chars = text.chars().count();
    if text.trim().is_empty() {
        return Err(bad(
            state,
            "empty_text",
            "The text is empty. Please provide some text to convert to speech.",
        ));
    }
    let max_chars = state
        .config
        .model_limits
        .iter()
        .find(|(id, _)| id == model_id)
        .map_or(model.max_chars, |(_, max)| *max);
    if chars > max_chars {
        return Err(bad(
            state,
            "max_character_limit_exceeded",
            &format!(
                "This request's text has {chars} characters and exceeds the character limit of {max_chars} characters for {model_id}."
            ),
        ));
    }
    let format = producible(state, output_format)?;
    let spoken = super::aliases::apply(state, body, text)?;
    Ok(Accepted {
        text,
        spoken,
        chars,
        model,
        format,
    })
}

/// The output format, if the emulator can produce it and the tier may use it (validation has
/// already checked that it is one of the API's).
#[allow(clippy::result_large_err)] // the error is the answer itself
pub(crate) fn producible(
    state: &Emulator,
    output_format: Option<&str>,
) -> Result<OutputFormat, Response> {
    let name = output_format.unwrap_or(crate::format::DEFAULT_FORMAT);
    let Ok(format) = name.parse::<OutputFormat>() else {
        return Err(bad(
            state,
            "invalid_output_format",
            &format!("Unknown output format {name}."),
        ));
    };
    if let Codec::Opus { .. } = format.codec {
        return Err(bad(
            state,
            "invalid_output_format",
            &format!(
                "The emulator cannot produce {format}: Opus encoding is not supported. Use an mp3, pcm, wav, ulaw or alaw format."
            ),
        ));
    }
    let tier = state.config.tier;
    let gated = match format.codec {
        Codec::Mp3 { kbps: 192 } => (tier < Tier::Creator).then_some("Creator"),
        Codec::Pcm | Codec::Wav if format.sample_rate == 44_100 => {
            (tier < Tier::Pro).then_some("Pro")
        }
        _ => None,
    };
    if let Some(needed) = gated {
        return Err(api_error(
            state,
            StatusCode::FORBIDDEN,
            "authorization_error",
            "output_format_not_allowed",
            &format!(
                "Requested output format {format} is only allowed for {needed} tier and above."
            ),
        ));
    }
    Ok(format)
}

/// Said in the answers whose status and wording the API does not document.
const UNDOCUMENTED: &str = "(This 400 is the emulator's choice: the API documents the rule, not how it refuses a request that breaks it.)";

/// The stitching rules: at most 3 ids in each list, none for a model without stitching or with
/// `enable_logging=false`, and each one known, delivered in full and under two hours old.
#[allow(clippy::result_large_err)] // the error is the answer itself
pub(crate) fn check_stitching(
    state: &Emulator,
    body: &Value,
    model: &Model,
    enable_logging: bool,
) -> Result<(), Response> {
    for field in ["previous_request_ids", "next_request_ids"] {
        let ids = id_list(body, field);
        if ids.len() > 3 {
            return Err(bad(
                state,
                "invalid_request_ids",
                &format!(
                    "A maximum of 3 request_ids can be sent in {field}; got {}. {UNDOCUMENTED}",
                    ids.len()
                ),
            ));
        }
        if ids.is_empty() {
            continue;
        }
        if !model.stitching {
            return Err(bad(
                state,
                "unsupported_model",
                &format!(
                    "Request stitching is not available for the {} model.",
                    model.model_id
                ),
            ));
        }
        if !enable_logging {
            return Err(bad(
                state,
                "invalid_request_ids",
                "Request stitching is unavailable with enable_logging=false (zero retention mode).",
            ));
        }
        check_ids(state, field, &ids)?;
    }
    Ok(())
}

/// Each id of `field` is known, complete and fresh.
#[allow(clippy::result_large_err)] // the error is the answer itself
pub(crate) fn check_ids(state: &Emulator, field: &str, ids: &[String]) -> Result<(), Response> {
    let now = state.now();
    let issued = state.issued.lock().expect("issued lock");
    for id in ids {
        let why = match issued.get(id) {
            None => format!("The request id {id} in {field} is unknown. {UNDOCUMENTED}"),
            Some(i) if !i.complete => format!(
                "The request id {id} in {field} has not finished generating; read its audio to the end first. {UNDOCUMENTED}"
            ),
            Some(i) if now - i.issued > 2.0 * 3600.0 => {
                format!("The request id {id} in {field} is older than two hours. {UNDOCUMENTED}")
            }
            Some(_) => continue,
        };
        return Err(bad(state, "invalid_request_ids", &why));
    }
    Ok(())
}

/// Charges `cost` credits, or answers 401 `quota_exceeded`; returns the credits used before.
#[allow(clippy::result_large_err)] // the error is the answer itself
pub(crate) fn charge(state: &Emulator, cost: f64) -> Result<f64, Response> {
    let mut used = state.credits_used.lock().expect("credits lock");
    let limit = state.character_limit() as f64;
    if *used + cost > limit {
        return Err(api_error(
            state,
            StatusCode::UNAUTHORIZED,
            "payment_required",
            "quota_exceeded",
            &format!(
                "This request exceeds your quota of {limit}. You have {} credits remaining, while {cost} credits are required for this request.",
                (limit - *used).max(0.0)
            ),
        ));
    }
    let before = *used;
    *used += cost;
    Ok(before)
}

pub(crate) fn too_many(state: &Emulator, limit: usize) -> Response {
    api_error(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        "too_many_concurrent_requests",
        &format!(
            "Too many concurrent requests. Your current subscription is associated with a maximum of {limit} concurrent requests (running in parallel). This is done such that a single user does not overwhelm our systems and affect other users negatively. Please upgrade your subscription or contact sales if you want to increase this limit."
        ),
    )
}

pub(crate) fn id_list(body: &Value, field: &str) -> Vec<String> {
    body.get(field)
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
