//! The four text-to-speech endpoints (`/v1/text-to-speech/{voice_id}`, `/stream`,
//! `/with-timestamps`, `/stream/with-timestamps`): validation, the key, the API's 400s (voice,
//! model, text, format, tier gates, stitching ids), quota and concurrency, then the synthetic
//! audio delivered with the API's headers, and one request-log line per request.
//!
//! Not responsible for the 422 shapes (see `validate`), the API's refusals (see `rules`) or
//! faults (see `faults`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{api_error, authorize, query_pairs, validation_error};
use super::faults::{Delivery, Injected, deliver, inject_fault};
use super::rules::{Accepted, accept, charge, check_stitching, too_many};
use super::state::{IssuedId, Item};
use super::validate::validate;
use super::{Emulator, Fault, synth};

/// The four text-to-speech endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    Full,
    Stream,
    Timestamps,
    StreamTimestamps,
}

impl Variant {
    fn streams(self) -> bool {
        matches!(self, Variant::Stream | Variant::StreamTimestamps)
    }

    fn path(self, voice_id: &str) -> String {
        let suffix = match self {
            Variant::Full => "",
            Variant::Stream => "/stream",
            Variant::Timestamps => "/with-timestamps",
            Variant::StreamTimestamps => "/stream/with-timestamps",
        };
        format!("/v1/text-to-speech/{voice_id}{suffix}")
    }
}

macro_rules! tts_handler {
    ($name:ident, $variant:expr) => {
        pub(crate) async fn $name(
            State(state): State<Arc<Emulator>>,
            Path(voice_id): Path<String>,
            RawQuery(query): RawQuery,
            headers: HeaderMap,
            body: Bytes,
        ) -> Response {
            tts(state, voice_id, query, headers, body, $variant).await
        }
    };
}

tts_handler!(tts_full, Variant::Full);
tts_handler!(tts_stream, Variant::Stream);
tts_handler!(tts_timestamps, Variant::Timestamps);
tts_handler!(tts_stream_timestamps, Variant::StreamTimestamps);

/// Releases an in-flight slot when dropped.
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A text-to-speech request, handled on a task of its own: like the real service, a generation
/// that has started runs to the end (charged, recorded in the history, logged) even when the
/// client goes away.
pub(crate) async fn tts(
    state: Arc<Emulator>,
    voice_id: String,
    query: Option<String>,
    headers: HeaderMap,
    raw_body: Bytes,
    variant: Variant,
) -> Response {
    let task = tokio::spawn(async move {
        let arrived = arrive(&state);
        let response = answer(&state, &voice_id, &query, &headers, &raw_body, variant).await;
        state.answered.fetch_add(1, Ordering::SeqCst);
        let request = (voice_id.as_str(), &query, &headers, &raw_body);
        log_tts(&state, request, variant, arrived, &response);
        response
    });
    task.await.unwrap_or_else(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request's task failed: {e}"),
        )
            .into_response()
    })
}

/// Where a request came in the order of arrivals (1 for the first), and how many answers had
/// been made before it arrived: 0 means its client had been answered nothing when it sent it.
#[derive(Clone, Copy)]
struct Arrived {
    number: usize,
    answered_before: usize,
}

fn arrive(state: &Emulator) -> Arrived {
    let answered_before = state.answered.load(Ordering::SeqCst);
    let mut number = 0;
    state.arrivals.send_modify(|n| {
        *n += 1;
        number = *n;
    });
    Arrived {
        number,
        answered_before,
    }
}

/// Waits, at most [`crate::HOLD_AT_MOST`], until the requests `hold_answers_until` asks for
/// have arrived.
async fn hold(state: &Emulator) {
    let until = state.config.hold_answers_until;
    if until == 0 {
        return;
    }
    let mut arrivals = state.arrivals.subscribe();
    let _ = tokio::time::timeout(crate::HOLD_AT_MOST, arrivals.wait_for(|n| *n >= until)).await;
}

async fn answer(
    state: &Arc<Emulator>,
    voice_id: &str,
    query: &Option<String>,
    headers: &HeaderMap,
    raw_body: &Bytes,
    variant: Variant,
) -> Response {
    tts_response(
        state,
        voice_id,
        &query_pairs(query),
        headers,
        raw_body,
        variant,
    )
    .await
}

/// Where each word of an answer's spoken text is in its audio ([`synth::words`]).
#[derive(Clone)]
struct Heard(Vec<(String, f64, f64)>);

/// The requests in flight when a request refused for concurrency came (its own included): the
/// log's `concurrent`, which an answer carries in its `current-concurrent-requests` header.
#[derive(Clone, Copy)]
struct Refused(usize);

/// One request-log line for a text-to-speech request: with the words of an answer's audio
/// and where each is heard, in seconds.
fn log_tts(
    state: &Emulator,
    (voice_id, query, headers, raw_body): (&str, &Option<String>, &HeaderMap, &Bytes),
    variant: Variant,
    arrived: Arrived,
    response: &Response,
) {
    let pairs = query_pairs(query);
    let parsed: Option<Value> = serde_json::from_slice(raw_body).ok();
    let path = variant.path(voice_id);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    state.log(json!({
        "time": state.now(),
        "method": "POST",
        "path": path,
        "voice_id": voice_id,
        "query": pairs.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "key_present": headers.contains_key("xi-api-key"),
        "body": parsed,
        "status": response.status().as_u16(),
        "fault": response.extensions().get::<Fault>().map(|f| format!("{f:?}").to_lowercase()),
        "request_id": header("request-id"),
        "history_item_id": header("history-item-id"),
        "character_cost": header("character-cost"),
        "concurrent": header("current-concurrent-requests")
            .and_then(|v| v.parse::<usize>().ok())
            .or_else(|| response.extensions().get::<Refused>().map(|r| r.0)),
        "arrival": arrived.number,
        "answered_before": arrived.answered_before,
        "words": response.extensions().get::<Heard>().map(|h| &h.0),
    }));
}

/// The body of a `/with-timestamps` answer: one JSON object, or NDJSON lines of chunks when
/// streaming.
pub(crate) fn with_timestamps(text: &str, audio: &[u8], seconds: f64, variant: Variant) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let chars: Vec<char> = text.chars().collect();
    let per_char = seconds / chars.len().max(1) as f64;
    if variant == Variant::Timestamps {
        let all = synth::alignment(&chars, 0, per_char);
        let body =
            json!({"audio_base64": b64(audio), "alignment": all, "normalized_alignment": all});
        return body.to_string().into_bytes();
    }
    // About 40 characters a chunk, with the audio bytes in proportion.
    let mut lines = String::new();
    for from in (0..chars.len()).step_by(40) {
        let to = (from + 40).min(chars.len());
        let a = audio.len() * from / chars.len().max(1);
        let b = if to == chars.len() {
            audio.len()
        } else {
            audio.len() * to / chars.len().max(1)
        };
        let piece = synth::alignment(&chars[from..to], from, per_char);
        let line = json!({"audio_base64": b64(&audio[a..b]), "alignment": piece, "normalized_alignment": piece});
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    lines.into_bytes()
}

/// The synthetic audio of a request after the configured latency, encoded, and its length in
/// samples.
#[allow(clippy::result_large_err)] // the error is the answer itself
pub(crate) async fn synthesize(
    state: &Emulator,
    voice_id: &str,
    body: &Value,
    accepted: &Accepted<'_>,
) -> Result<(Vec<u8>, usize), Response> {
    let delay =
        state.config.latency_ms as f64 + state.config.latency_per_char_ms * accepted.chars as f64;
    if delay > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(delay / 1000.0)).await;
    }
    let speed = speed_of(body);
    let (text, voice, format) = (
        accepted.spoken.clone(),
        voice_id.to_string(),
        accepted.format,
    );
    let _permit = state.synthesis.acquire().await;
    tokio::task::spawn_blocking(move || synth::render(&text, &voice, speed, format))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|e| {
            api_error(
                state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal_error",
                &e,
            )
        })
}

/// The `voice_settings.speed` of a request (1 when not given).
fn speed_of(body: &Value) -> f64 {
    body.get("voice_settings")
        .and_then(|s| s.get("speed"))
        .and_then(Value::as_f64)
        .unwrap_or(1.0)
}

/// Room among the undelivered answers for one of `text` (its audio, and the timings and
/// base64 of a `/with-timestamps` answer), waited for a while, else a 429 `system_busy`.
#[allow(clippy::result_large_err)] // the error is the answer itself
async fn room_for(
    state: &Emulator,
    text: &str,
    speed: f64,
    format: crate::format::OutputFormat,
) -> Result<tokio::sync::OwnedSemaphorePermit, Response> {
    use super::state::UNDELIVERED_WAIT;
    let samples = synth::sample_count(text, speed, format.sample_rate) as f64;
    let seconds = samples / f64::from(format.sample_rate.max(1));
    let bytes = format.bytes_per_second() as f64 * seconds * 1.4 + text.len() as f64 * 64.0;
    let mib = ((bytes / 1_048_576.0).ceil() as u32).clamp(1, state.config.undelivered_mib.max(1));
    let wait = state.undelivered.clone().acquire_many_owned(mib);
    match tokio::time::timeout(UNDELIVERED_WAIT, wait).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(api_error(
            state,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "system_busy",
            "The emulator holds too many answers its clients have not read; try again (the emulator's limit).",
        )),
    }
}

pub(crate) async fn tts_response(
    state: &Arc<Emulator>,
    voice_id: &str,
    pairs: &[(String, String)],
    headers: &HeaderMap,
    raw: &[u8],
    variant: Variant,
) -> Response {
    // The last of a repeated parameter, as FastAPI reads it.
    let query = |k: &str| {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let path = variant.path("{voice_id}");
    let body = match validate(&path, headers, raw, pairs) {
        Ok(body) => body,
        Err(errors) => return validation_error(errors),
    };
    let body = &body;
    if let Err(response) = authorize(state, headers) {
        return *response;
    }
    let accepted = match accept(state, voice_id, body, query("output_format")) {
        Ok(a) => a,
        Err(response) => return response,
    };
    let enable_logging = super::pydantic::query_bool(pairs, "enable_logging").unwrap_or(true);
    if let Err(response) = check_stitching(state, body, accepted.model, enable_logging) {
        return response;
    }
    let delivery = match delivery_of(state, voice_id, &accepted, variant) {
        Ok(d) => d,
        Err(response) => return response,
    };
    generate(
        state,
        voice_id,
        body,
        &accepted,
        enable_logging,
        (variant, delivery),
    )
    .await
}

/// An accepted request generated: room for its answer, its charge, the account's concurrency,
/// its ids and history item, its audio, and the answer delivered as `how` says.
async fn generate(
    state: &Arc<Emulator>,
    voice_id: &str,
    body: &Value,
    accepted: &Accepted<'_>,
    enable_logging: bool,
    (variant, delivery): (Variant, Delivery),
) -> Response {
    // Room for the answer first: a busy 429 charges nothing.
    let room = match room_for(state, &accepted.spoken, speed_of(body), accepted.format).await {
        Ok(room) => room,
        Err(response) => return response,
    };
    let cost = (accepted.chars as f64 * accepted.model.credits_per_char).ceil();
    let used_before = match charge(state, cost) {
        Ok(before) => before,
        Err(response) => return response,
    };
    let limit = state.config.tier.concurrency(accepted.model.fast);
    let now_in_flight = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _slot = InFlight(&state.in_flight);
    if now_in_flight > limit {
        *state.credits_used.lock().expect("credits lock") -= cost;
        let mut refused = too_many(state, limit);
        refused.extensions_mut().insert(Refused(now_in_flight));
        return refused;
    }
    hold(state).await;
    let (request_id, history_id) = start_generation(
        state,
        voice_id,
        body,
        accepted,
        enable_logging.then_some((used_before, cost)),
    );
    let started = Instant::now();
    let (audio, sample_count) = match synthesize(state, voice_id, body, accepted).await {
        Ok(a) => a,
        Err(response) => return response,
    };
    let answer = Answer {
        cost,
        now_in_flight,
        limit,
        started,
        request_id,
        history_id,
        room,
    };
    respond(
        state,
        accepted,
        audio,
        sample_count,
        variant,
        delivery,
        answer,
    )
}

/// How the answer is delivered: whole, chunked, or spoiled by an injected fault (`Err` is a
/// fault that answers at once).
#[allow(clippy::result_large_err)] // the error is the answer itself
fn delivery_of(
    state: &Emulator,
    voice_id: &str,
    accepted: &Accepted<'_>,
    variant: Variant,
) -> Result<Delivery, Response> {
    let content = format!(
        "{voice_id}|{}|{}|{}|{}",
        accepted.model.model_id,
        accepted.format,
        variant.path(""),
        accepted.text
    );
    match inject_fault(state, &content) {
        Some(Injected::Answer(response)) => Err(response),
        Some(Injected::Delivery(fault)) => Ok(Delivery::Fault(fault)),
        None if variant.streams() => Ok(Delivery::Chunked),
        None => Ok(Delivery::Whole),
    }
}

/// A generation starts: its ids, and its item in the history at once (as `processing`),
/// whatever becomes of the delivery or the client. `charged` is the credits used before it and
/// its cost, `None` with zero retention (nothing kept).
fn start_generation(
    state: &Emulator,
    voice_id: &str,
    body: &Value,
    accepted: &Accepted<'_>,
    charged: Option<(f64, f64)>,
) -> (String, String) {
    let request_id = state.next_id("request");
    let history_id = state.next_id("history");
    if let Some((used_before, cost)) = charged {
        state.history.lock().expect("history lock").push(Item {
            id: history_id.clone(),
            request_id: request_id.clone(),
            date_unix: state.now().floor() as i64,
            credits_from: used_before as u64,
            credits_to: (used_before + cost) as u64,
            voice_id: voice_id.to_string(),
            model_id: accepted.model.model_id.to_string(),
            text: accepted.text.to_string(),
            settings: history_settings(body),
            format: accepted.format,
            seconds: 0.0,
            created: false,
        });
    }
    (request_id, history_id)
}

/// The figures an answer's headers report.
pub(crate) struct Answer {
    cost: f64,
    now_in_flight: usize,
    limit: usize,
    started: Instant,
    /// The ids of this generation (its history item is there unless zero retention).
    request_id: String,
    history_id: String,
    /// Its room among the undelivered answers, given back when the body is dropped.
    room: tokio::sync::OwnedSemaphorePermit,
}

/// The answer to an accepted request: a new request id, the body (audio, or JSON with
/// timings) delivered as `delivery` says, and the API's headers.
pub(crate) fn respond(
    state: &Arc<Emulator>,
    accepted: &Accepted<'_>,
    audio: Vec<u8>,
    sample_count: usize,
    variant: Variant,
    delivery: Delivery,
    answer: Answer,
) -> Response {
    let format = accepted.format;
    let (request_id, history_id) = (answer.request_id.clone(), answer.history_id.clone());
    let seconds = sample_count as f64 / f64::from(format.sample_rate);
    if let Some(item) = state
        .history
        .lock()
        .expect("history lock")
        .iter_mut()
        .find(|i| i.id == history_id)
    {
        item.seconds = seconds;
        item.created = true;
    }
    state.issued.lock().expect("issued lock").insert(
        request_id.clone(),
        IssuedId {
            issued: state.now(),
            complete: false,
        },
    );
    // Faults in the body (reset, truncated, slow) hit every variant alike.
    let body = match variant {
        Variant::Full | Variant::Stream => audio,
        Variant::Timestamps | Variant::StreamTimestamps => {
            with_timestamps(accepted.text, &audio, seconds, variant)
        }
    };
    let mut response = deliver(state, body, &request_id, delivery, Some(answer.room));
    response.extensions_mut().insert(Heard(synth::words(
        &accepted.spoken,
        sample_count,
        format.sample_rate,
    )));
    if let Delivery::Fault(fault) = delivery {
        response.extensions_mut().insert(fault);
    }
    let h = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    if matches!(variant, Variant::Full | Variant::Stream) {
        set("content-type", format.mime().to_string());
    } else {
        set("content-type", "application/json".to_string());
    }
    set("request-id", request_id);
    set("history-item-id", history_id);
    set("character-cost", format!("{}", answer.cost));
    set(
        "current-concurrent-requests",
        answer.now_in_flight.to_string(),
    );
    set("maximum-concurrent-requests", answer.limit.to_string());
    set(
        "tts-latency-ms",
        answer.started.elapsed().as_millis().to_string(),
    );
    set(
        "access-control-expose-headers",
        "request-id, history-item-id, character-cost, current-concurrent-requests, maximum-concurrent-requests".into(),
    );
    response
}

/// What a history item shows of its request besides the text: the voice settings as sent,
/// and the seed, language, text normalisation and dictionary locators when they were given
/// (the emulator's choice: the API documents `settings` as an object without saying what it
/// holds).
fn history_settings(body: &Value) -> Value {
    let mut settings = match body.get("voice_settings") {
        Some(Value::Object(v)) => v.clone(),
        _ => serde_json::Map::new(),
    };
    for field in [
        "seed",
        "language_code",
        "apply_text_normalization",
        "pronunciation_dictionary_locators",
    ] {
        if let Some(v) = body.get(field).filter(|v| !v.is_null()) {
            settings.insert(field.to_string(), v.clone());
        }
    }
    Value::Object(settings)
}
