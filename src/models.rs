//! The built-in table of text-to-speech models: per-request character limits, credit rates and
//! whether request stitching is available. The planner uses it when `GET /v1/models` is not
//! consulted; the emulator serves `/v1/models` from it. Also the limits the API serves
//! ([`Limits`]), kept only when plausible, for the client, the state directory and the planner.
//!
//! Not responsible for talking to the API (see `api`).

/// What narrate knows about one model.
#[derive(Clone, Copy, Debug)]
pub struct ModelInfo {
    pub model_id: &'static str,
    pub name: &'static str,
    /// `maximum_text_length_per_request`: longer texts are rejected with 400.
    pub max_chars: usize,
    /// Credits per character (`model_rates.character_cost_multiplier`).
    pub credits_per_char: f64,
    /// Whether `previous_request_ids` / `next_request_ids` are accepted.
    pub stitching: bool,
    /// Flash and Turbo models have twice the concurrency of the others.
    pub fast: bool,
    pub english_only: bool,
}

/// Models the API documents, with the limits of the reference fact sheet.
pub const MODELS: &[ModelInfo] = &[
    ModelInfo {
        model_id: "eleven_multilingual_v2",
        name: "Eleven Multilingual v2",
        max_chars: 10_000,
        credits_per_char: 1.0,
        stitching: true,
        fast: false,
        english_only: false,
    },
    ModelInfo {
        model_id: "eleven_v3",
        name: "Eleven v3",
        max_chars: 5_000,
        credits_per_char: 1.0,
        stitching: false,
        fast: false,
        english_only: false,
    },
    ModelInfo {
        model_id: "eleven_flash_v2_5",
        name: "Eleven Flash v2.5",
        max_chars: 40_000,
        credits_per_char: 0.5,
        stitching: true,
        fast: true,
        english_only: false,
    },
    ModelInfo {
        model_id: "eleven_turbo_v2_5",
        name: "Eleven Turbo v2.5",
        max_chars: 40_000,
        credits_per_char: 0.5,
        stitching: true,
        fast: true,
        english_only: false,
    },
    ModelInfo {
        model_id: "eleven_flash_v2",
        name: "Eleven Flash v2",
        max_chars: 30_000,
        credits_per_char: 0.5,
        stitching: true,
        fast: true,
        english_only: true,
    },
    ModelInfo {
        model_id: "eleven_turbo_v2",
        name: "Eleven Turbo v2",
        max_chars: 30_000,
        credits_per_char: 0.5,
        stitching: true,
        fast: true,
        english_only: true,
    },
    ModelInfo {
        model_id: "eleven_multilingual_v1",
        name: "Eleven Multilingual v1",
        max_chars: 10_000,
        credits_per_char: 1.0,
        stitching: true,
        fast: false,
        english_only: false,
    },
    ModelInfo {
        model_id: "eleven_monolingual_v1",
        name: "Eleven English v1",
        max_chars: 10_000,
        credits_per_char: 1.0,
        stitching: true,
        fast: false,
        english_only: true,
    },
];

/// The model used when a manifest names none (the API's own default).
pub const DEFAULT_MODEL: &str = "eleven_multilingual_v2";

/// Looks a model up by id.
pub fn find(model_id: &str) -> Option<&'static ModelInfo> {
    MODELS.iter().find(|m| m.model_id == model_id)
}

/// Per-request character limits by model id, from `GET /v1/models` when it was reachable;
/// models missing here use the built-in table.
pub type Limits = std::collections::HashMap<String, usize>;

/// The smallest and largest per-request limit believed from the API (or a remembered copy):
/// anything else is a damaged or hostile answer, and the built-in table is used instead.
pub(crate) const PLAUSIBLE_LIMITS: std::ops::RangeInclusive<u64> = 50..=1_000_000;

/// Keeps the plausible limits of `(model_id, limit)` pairs, warning about the others (`from`
/// names where they came from).
pub fn plausible_limits(pairs: impl IntoIterator<Item = (String, u64)>, from: &str) -> Limits {
    pairs
        .into_iter()
        .filter_map(|(id, max)| {
            if PLAUSIBLE_LIMITS.contains(&max) {
                usize::try_from(max).ok().map(|m| (id, m))
            } else {
                tracing::warn!(
                    "{from}: model {id:?} has a per-request limit of {max} characters, which cannot be right; using the built-in limit"
                );
                None
            }
        })
        .collect()
}
