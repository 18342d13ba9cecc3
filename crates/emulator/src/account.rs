//! The account endpoints: `GET /v2/voices` (paging, search, sorting), `GET /v1/voices/{id}`,
//! `GET /v1/models` and `GET /v1/user/subscription`.
//!
//! Not responsible for text-to-speech (see `tts`).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{api_error, authorize, query_pairs, validation_error};
use super::{Emulator, Tier, data};

pub(crate) async fn voices(
    State(state): State<Arc<Emulator>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    voices_response(&state, &query_pairs(&query), &headers)
}

/// The filters of a `/v2/voices` listing, lowercased, as the query gives them.
struct VoiceFilter {
    search: Option<String>,
    ids: Vec<String>,
    languages: Vec<String>,
    use_cases: Vec<String>,
    voice_type: Option<String>,
    category: Option<String>,
    tuning: Option<String>,
    gender: Option<String>,
    age: Option<String>,
    accent: Option<String>,
    collection: Option<String>,
}

fn first(pairs: &[(String, String)], k: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.clone())
}

impl VoiceFilter {
    fn from_query(pairs: &[(String, String)]) -> Self {
        let lower = |k: &str| first(pairs, k).map(|s| s.to_lowercase());
        let all = |k: &str| -> Vec<String> {
            pairs
                .iter()
                .filter(|(key, _)| key == k)
                .map(|(_, v)| v.to_lowercase())
                .collect()
        };
        VoiceFilter {
            search: lower("search"),
            ids: all("voice_ids"),
            languages: all("language"),
            use_cases: all("use_cases"),
            voice_type: lower("voice_type"),
            category: lower("category"),
            tuning: lower("fine_tuning_state"),
            gender: lower("gender"),
            age: lower("age"),
            accent: lower("accent"),
            collection: first(pairs, "collection_id"),
        }
    }

    fn of_type(&self, v: &data::Voice) -> bool {
        let premade = v.category == "premade";
        match self.voice_type.as_deref() {
            None => true,
            Some("default") => premade,
            Some("non-default") => !premade,
            // The account's own voices; the emulator has no voice library or workspace
            // sharing, so nothing is "community" or "saved".
            Some("personal" | "workspace") => !premade,
            Some(_) => false,
        }
    }

    fn found(&self, v: &data::Voice) -> bool {
        self.search.as_ref().is_none_or(|s| {
            [
                v.name,
                v.description,
                v.category,
                v.gender,
                v.age,
                v.accent,
                v.language,
                v.use_case,
            ]
            .iter()
            .any(|f| f.to_lowercase().contains(s.as_str()))
        })
    }

    fn matches(&self, v: &data::Voice) -> bool {
        let is = |wanted: &Option<String>, value: &str| {
            wanted
                .as_ref()
                .is_none_or(|w| w.eq_ignore_ascii_case(value))
        };
        let any = |list: &[String], value: &str| list.is_empty() || list.iter().any(|x| x == value);
        self.found(v)
            && self.of_type(v)
            && (self.ids.is_empty() || self.ids.iter().any(|i| i.eq_ignore_ascii_case(v.voice_id)))
            && is(&self.category, v.category)
            && self
                .tuning
                .as_ref()
                .is_none_or(|s| v.fine_tuning_state == Some(s.as_str()))
            && is(&self.gender, v.gender)
            && is(&self.age, v.age)
            && is(&self.accent, v.accent)
            && any(&self.languages, v.language)
            && any(&self.use_cases, v.use_case)
            && self
                .collection
                .as_ref()
                .is_none_or(|c| v.collection_ids.contains(&c.as_str()))
    }
}

/// Where a page starts: page tokens are the emulator's own (`p` and an offset); any other is
/// refused.
#[allow(clippy::result_large_err)] // the error is the answer itself
fn page_start(state: &Emulator, token: Option<String>, len: usize) -> Result<usize, Response> {
    let Some(t) = token else {
        return Ok(0);
    };
    match t.strip_prefix('p').and_then(|n| n.parse::<usize>().ok()) {
        Some(n) if n <= len => Ok(n),
        _ => Err(api_error(
            state,
            StatusCode::BAD_REQUEST,
            "validation_error",
            "invalid_next_page_token",
            &format!(
                "The next_page_token {t:?} is not one this server issued for this listing (the emulator's choice of answer: the API does not document one)."
            ),
        )),
    }
}

pub(crate) fn voices_response(
    state: &Emulator,
    pairs: &[(String, String)],
    headers: &HeaderMap,
) -> Response {
    let page_size = match super::pydantic::listing_query("/v2/voices", pairs, 10, 100) {
        Ok(n) => n,
        Err(errors) => return validation_error(errors),
    };
    if let Err(response) = authorize(state, headers) {
        return *response;
    }
    let filter = VoiceFilter::from_query(pairs);
    let mut matching: Vec<&data::Voice> = data::catalogue()
        .iter()
        .filter(|v| filter.matches(v))
        .collect();
    match first(pairs, "sort").as_deref() {
        Some("name") => matching.sort_by_key(|v| v.name),
        Some("created_at_unix") => matching.sort_by_key(|v| v.created_at_unix),
        _ => {}
    }
    if first(pairs, "sort_direction").as_deref() == Some("desc") {
        matching.reverse();
    }
    let start = match page_start(state, first(pairs, "next_page_token"), matching.len()) {
        Ok(n) => n,
        Err(response) => return response,
    };
    let end = (start + page_size).min(matching.len());
    let page: Vec<Value> = matching[start.min(end)..end]
        .iter()
        .map(|v| data::voice_json(v))
        .collect();
    let has_more = end < matching.len();
    let with_total = super::pydantic::query_bool(pairs, "include_total_count").unwrap_or(true);
    axum::Json(json!({
        "voices": page,
        "has_more": has_more,
        // Without the count, 0: the emulator's choice (the API does not say what it sends).
        "total_count": if with_total { matching.len() } else { 0 },
        "next_page_token": if has_more { Some(format!("p{end}")) } else { None },
    }))
    .into_response()
}

pub(crate) async fn voice(
    State(state): State<Arc<Emulator>>,
    Path(voice_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let errors =
        super::pydantic::query_errors("/v1/voices/{voice_id}", "get", &query_pairs(&query));
    if !errors.is_empty() {
        let response = validation_error(errors);
        return response;
    }
    match authorize(&state, &headers) {
        Err(r) => *r,
        Ok(()) => match data::find_voice(&voice_id) {
            Some(v) => axum::Json(data::voice_json(v)).into_response(),
            None => api_error(
                &state,
                StatusCode::NOT_FOUND,
                "not_found",
                "voice_not_found",
                &format!("A voice with the voice_id {voice_id} was not found."),
            ),
        },
    }
}

/// The 503 of an account endpoint the configuration took down.
fn unavailable(message: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"detail": {"status": "service_unavailable", "message": message}})),
    )
        .into_response()
}

pub(crate) async fn list_models(
    State(state): State<Arc<Emulator>>,
    headers: HeaderMap,
) -> Response {
    match authorize(&state, &headers) {
        Err(r) => *r,
        Ok(()) if state.config.models_down => unavailable("The models list is unavailable."),
        Ok(()) => axum::Json(data::models_json(&state.config.model_limits)).into_response(),
    }
}

pub(crate) async fn subscription(
    State(state): State<Arc<Emulator>>,
    headers: HeaderMap,
) -> Response {
    match authorize(&state, &headers) {
        Err(r) => *r,
        Ok(()) if state.config.subscription_down => unavailable("The subscription is unavailable."),
        Ok(()) => {
            let used = state.credits_used().ceil() as u64;
            let tier = state.config.tier;
            axum::Json(json!({
                "tier": tier.name(),
                "character_count": used,
                "character_limit": state.character_limit(),
                "max_character_limit_extension": 0,
                "max_credit_limit_extension": 0,
                "can_extend_character_limit": false,
                "allowed_to_extend_character_limit": false,
                "next_character_count_reset_unix": (state.now() as i64 / 86_400 + 30) * 86_400,
                "voice_slots_used": 0,
                "professional_voice_slots_used": 0,
                "professional_voice_slots_used_in_workspace": 0,
                "voice_limit": 30,
                "voice_add_edit_counter": 0,
                "professional_voice_limit": 1,
                "can_extend_voice_limit": false,
                "can_use_instant_voice_cloning": true,
                "can_use_professional_voice_cloning": tier >= Tier::Creator,
                "currency": "usd",
                "current_overage": {"amount": "0.00", "currency": "usd"},
                "status": if tier == Tier::Free { "free" } else { "active" },
                "billing_period": "monthly_period",
                "character_refresh_period": "monthly_period",
                "open_invoices": [],
                "has_open_invoices": false,
            }))
            .into_response()
        }
    }
}
