//! What goes over the wire: the text-to-speech body, its answer, character timings, and typed
//! replies of the account endpoints narrate reads (voices, models, subscription), and the
//! request fields a manifest sets (voice settings, dictionary locators), so the client imports
//! no manifest type.
//!
//! Not responsible for sending (see `Client`).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The JSON body of a text-to-speech request. Unset fields are omitted, never sent as `null`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TtsBody {
    pub text: String,
    pub model_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_settings: Option<VoiceSettings>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pronunciation_dictionary_locators: Vec<DictionaryLocator>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_text: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub previous_request_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub next_request_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_text_normalization: Option<String>,
}

/// A successful text-to-speech response, body read to the end.
#[derive(Clone, Debug)]
pub struct TtsResponse {
    pub audio: Bytes,
    /// The `request-id` header: what later requests send in `previous_request_ids`.
    pub request_id: Option<String>,
    /// The `character-cost` header: credits charged.
    pub character_cost: Option<f64>,
    /// The `maximum-concurrent-requests` header.
    pub max_concurrency: Option<usize>,
    /// The `history-item-id` header: where the API keeps this generation.
    pub history_item_id: Option<String>,
    /// Character timings, from `/with-timestamps`.
    pub alignment: Option<Alignment>,
}

/// When each character of a request's text is spoken, in seconds from the start of its audio
/// (the `alignment` of a `/with-timestamps` answer).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alignment {
    pub characters: Vec<String>,
    pub character_start_times_seconds: Vec<f64>,
    pub character_end_times_seconds: Vec<f64>,
}

/// A `/with-timestamps` answer.
#[derive(serde::Deserialize)]
pub(crate) struct Timed {
    pub(crate) audio_base64: String,
    pub(crate) alignment: Option<Alignment>,
}

/// One voice of `GET /v2/voices`, as far as narrate reads it.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Voice {
    #[serde(default)]
    pub voice_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: VoiceLabels,
}

/// A voice's labels.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct VoiceLabels {
    pub gender: Option<String>,
    pub accent: Option<String>,
}

/// One page of `GET /v2/voices`: the voices as the API wrote them (printed as they are by
/// `narrate voices --json`) and where the next page starts.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct VoicesPage {
    #[serde(default)]
    pub voices: Vec<serde_json::Value>,
    #[serde(default)]
    pub has_more: bool,
    pub next_page_token: Option<String>,
}

/// One model of `GET /v1/models`, as far as narrate reads it.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Model {
    #[serde(default)]
    pub model_id: String,
    #[serde(default)]
    pub name: String,
    pub maximum_text_length_per_request: Option<u64>,
    pub model_rates: Option<ModelRates>,
    #[serde(default)]
    pub languages: Vec<serde_json::Value>,
}

/// A model's credit rate.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ModelRates {
    pub character_cost_multiplier: Option<f64>,
}

/// One item of the speech history (`GET /v1/history`), as far as narrate reads it.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct HistoryItem {
    pub history_item_id: String,
    pub request_id: Option<String>,
    pub voice_id: Option<String>,
    pub model_id: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub date_unix: i64,
    #[serde(default)]
    pub character_count_change_from: i64,
    #[serde(default)]
    pub character_count_change_to: i64,
    #[serde(default)]
    pub content_type: String,
    #[serde(default)]
    pub state: String,
    pub output_format: Option<String>,
    /// What the request asked for besides its text (its voice settings, and whatever else the
    /// API records), as the API shows it.
    #[serde(default)]
    pub settings: serde_json::Value,
    /// The character timings of its audio.
    pub alignments: Option<HistoryAlignments>,
}

/// The character timings kept with a history item.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct HistoryAlignments {
    pub alignment: Option<Alignment>,
}

/// One page of `GET /v1/history`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct HistoryPage {
    #[serde(default)]
    pub history: Vec<HistoryItem>,
    pub last_history_item_id: Option<String>,
    #[serde(default)]
    pub has_more: bool,
}

/// `GET /v1/user/subscription`, as far as narrate reads it.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Subscription {
    pub tier: Option<String>,
    pub character_count: Option<f64>,
    pub character_limit: Option<f64>,
}

impl Subscription {
    /// Credits left, when both numbers are known.
    pub fn remaining(&self) -> Option<f64> {
        Some((self.character_limit? - self.character_count?).max(0.0))
    }
}

/// Voice settings sent with a request; unset fields are omitted from the body.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stability: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity_boost: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_speaker_boost: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
}

impl VoiceSettings {
    /// Fields of `self` override those of `base`.
    pub(crate) fn over(&self, base: &VoiceSettings) -> VoiceSettings {
        VoiceSettings {
            stability: self.stability.or(base.stability),
            similarity_boost: self.similarity_boost.or(base.similarity_boost),
            style: self.style.or(base.style),
            use_speaker_boost: self.use_speaker_boost.or(base.use_speaker_boost),
            speed: self.speed.or(base.speed),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        *self == VoiceSettings::default()
    }
}

/// One pronunciation dictionary applied to a request.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DictionaryLocator {
    pub pronunciation_dictionary_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}
