//! The speech history: every generation recorded when it is generated (before its delivery, so
//! cut deliveries and vanished clients are in it too), except with `enable_logging=false`.
//! `GET /v1/history` (filters, both sort directions, paging), `GET /v1/history/{id}`,
//! `GET /v1/history/{id}/audio` and `DELETE /v1/history/{id}`, as the API documents them.
//!
//! The emulator keeps what it needs to regenerate an item's audio (text, voice, speed, format),
//! not the audio: the audio is deterministic, so it is synthesized again on request, in the
//! format it was generated in. Not responsible for generating (see `tts`).

// Errors here are the answers themselves, built once per refused request.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{api_error, authorize, query_pairs, validation_error};
use super::state::Item;
use super::{Emulator, data, synth};
use crate::format::OutputFormat;

impl Item {
    fn json(&self) -> Value {
        let voice = data::find_voice(&self.voice_id);
        let chars: Vec<char> = self.text.chars().collect();
        let timings = synth::alignment(&chars, 0, self.seconds / chars.len().max(1) as f64);
        json!({
            "history_item_id": self.id,
            "request_id": self.request_id,
            "voice_id": self.voice_id,
            "model_id": self.model_id,
            "voice_name": voice.map(|v| v.name),
            "voice_category": voice.map_or("premade", |v| v.category),
            "text": self.text,
            "date_unix": self.date_unix,
            "character_count_change_from": self.credits_from,
            "character_count_change_to": self.credits_to,
            "content_type": self.format.mime(),
            "state": if self.created { "created" } else { "processing" },
            "settings": if self.settings.is_object() { self.settings.clone() } else { json!({}) },
            "source": "TTS",
            "output_format": self.format.to_string(),
            "alignments": {"alignment": timings, "normalized_alignment": timings},
        })
    }
}

/// The filters of a history listing.
struct Filter {
    voice_id: Option<String>,
    model_id: Option<String>,
    before: Option<i64>,
    after: Option<i64>,
    search: Option<String>,
    source_tts: bool,
}

impl Filter {
    fn keeps(&self, item: &Item) -> bool {
        self.voice_id.as_ref().is_none_or(|v| *v == item.voice_id)
            && self.model_id.as_ref().is_none_or(|m| *m == item.model_id)
            && self.before.is_none_or(|b| item.date_unix < b)
            && self.after.is_none_or(|a| item.date_unix >= a)
            && self
                .search
                .as_ref()
                .is_none_or(|s| item.text.to_lowercase().contains(&s.to_lowercase()))
            && self.source_tts
    }
}

/// `GET /v1/history`.
pub(crate) async fn list(
    State(state): State<Arc<Emulator>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    list_response(&state, &query_pairs(&query), &headers)
}

/// The 404 of a history that is not there (see [`super::HistoryMode::Absent`]).
fn absent(state: &Emulator) -> Option<Response> {
    (state.config.history == super::HistoryMode::Absent).then(|| {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"detail": "Not Found"})),
        )
            .into_response()
    })
}

/// The format an item's audio is served in.
fn served_format(state: &Emulator, item: &Item) -> OutputFormat {
    match &state.config.history {
        super::HistoryMode::Format(f) => *f,
        _ => item.format,
    }
}

/// A listing's parameters, as FastAPI would read them.
struct Listing {
    filter: Filter,
    page_size: usize,
    descending: bool,
    start_after: Option<String>,
}

/// Reads a listing's query parameters, or answers their 422.
fn listing(pairs: &[(String, String)]) -> Result<Listing, Response> {
    // The parameters are checked against the description first; what passed is read here.
    let page_size = super::pydantic::listing_query("/v1/history", pairs, 100, 1000)
        .map_err(validation_error)?;
    // The last of a repeated parameter, as FastAPI reads it.
    let get = |k: &str| {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let int = |k: &str| get(k).and_then(|v| v.trim().parse::<i64>().ok());
    Ok(Listing {
        filter: Filter {
            voice_id: get("voice_id"),
            model_id: get("model_id"),
            before: int("date_before_unix"),
            after: int("date_after_unix"),
            search: get("search"),
            source_tts: get("source").is_none_or(|s| s == "TTS"),
        },
        page_size,
        descending: get("sort_direction").is_none_or(|s| s != "asc"),
        start_after: get("start_after_history_item_id"),
    })
}

fn list_response(state: &Emulator, pairs: &[(String, String)], headers: &HeaderMap) -> Response {
    if let Some(r) = absent(state) {
        return r;
    }
    let listing = match listing(pairs) {
        Ok(l) => l,
        Err(r) => return r,
    };
    if let Err(r) = authorize(state, headers) {
        return *r;
    }
    let history = state.history.lock().expect("history lock");
    let mut items: Vec<Item> = history
        .iter()
        .filter(|i| listing.filter.keeps(i))
        .map(|i| Item {
            format: served_format(state, i),
            ..i.clone()
        })
        .collect();
    // Kept oldest first: newest first unless `asc`.
    if listing.descending {
        items.reverse();
    }
    if let Some(start) = &listing.start_after {
        match items.iter().position(|i| i.id == *start) {
            Some(at) => items.drain(..=at).count(),
            None => items.len(),
        };
    }
    let has_more = items.len() > listing.page_size;
    items.truncate(listing.page_size);
    let page: Vec<Value> = items.iter().map(|i| i.json()).collect();
    axum::Json(json!({
        "history": page,
        "last_history_item_id": items.last().map(|i| i.id.clone()),
        "has_more": has_more,
        "scanned_until": items.last().map(|i| i.date_unix),
    }))
    .into_response()
}

fn not_found(state: &Emulator, id: &str) -> Response {
    api_error(
        state,
        StatusCode::NOT_FOUND,
        "not_found",
        "history_item_not_found",
        &format!("A history item with the id {id} was not found."),
    )
}

/// The item with `id`, or the answer when there is none or the key is refused.
fn find(state: &Emulator, id: &str, headers: &HeaderMap) -> Result<Item, Response> {
    if let Some(r) = absent(state) {
        return Err(r);
    }
    authorize(state, headers).map_err(|r| *r)?;
    let history = state.history.lock().expect("history lock");
    let mut item = history
        .iter()
        .find(|i| i.id == id)
        .cloned()
        .ok_or_else(|| not_found(state, id))?;
    item.format = served_format(state, &item);
    Ok(item)
}

/// What an item endpoint does with the item it names.
#[derive(Clone, Copy)]
enum Action {
    Show,
    Audio,
    Delete,
}

macro_rules! item_handler {
    ($(#[$doc:meta])* $name:ident, $action:expr) => {
        $(#[$doc])*
        pub(crate) async fn $name(
            State(state): State<Arc<Emulator>>,
            Path(id): Path<String>,
            headers: HeaderMap,
        ) -> Response {
            match find(&state, &id, &headers) {
                Ok(item) => on_item(&state, item, $action).await,
                Err(r) => r,
            }
        }
    };
}

item_handler!(
    /// `GET /v1/history/{id}`.
    item,
    Action::Show
);
item_handler!(
    /// `GET /v1/history/{id}/audio`: the item's audio, synthesized again (it is deterministic).
    audio,
    Action::Audio
);
item_handler!(
    /// `DELETE /v1/history/{id}`.
    delete,
    Action::Delete
);

async fn on_item(state: &Emulator, item: Item, action: Action) -> Response {
    match action {
        Action::Show => axum::Json(item.json()).into_response(),
        Action::Delete => {
            state
                .history
                .lock()
                .expect("history lock")
                .retain(|i| i.id != item.id);
            axum::Json(json!({"status": "ok"})).into_response()
        }
        Action::Audio => audio_of(state, item).await,
    }
}

/// An item's audio. Once read in full, its request id may be sent as context (the emulator's
/// rule; see the README).
async fn audio_of(state: &Emulator, item: Item) -> Response {
    let request_id = item.request_id.clone();
    let speed = item
        .settings
        .get("speed")
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    let format = item.format;
    let _permit = state.synthesis.acquire().await;
    let rendered = tokio::task::spawn_blocking(move || {
        synth::render(&item.text, &item.voice_id, speed, format).map(|(bytes, _)| bytes)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    match rendered {
        Ok(bytes) => {
            if let Some(issued) = state
                .issued
                .lock()
                .expect("issued lock")
                .get_mut(&request_id)
            {
                issued.complete = true;
            }
            let mut response = bytes.into_response();
            if let Ok(v) = HeaderValue::from_str(format.mime()) {
                response.headers_mut().insert("content-type", v);
            }
            response
        }
        Err(e) => api_error(
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal_error",
            &e,
        ),
    }
}
