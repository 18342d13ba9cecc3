//! The manifest's raw shapes, exactly as serde reads them from YAML (and as CSV rows are turned
//! into): every field optional, unknown fields refused.
//!
//! Not responsible for defaults or validation (see `resolve`).

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{DictionaryLocator, VoiceSettings};

/// Segment fields, as written in YAML (also the shape of `defaults`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSegment {
    pub(crate) id: Option<String>,
    pub(crate) chapter: Option<String>,
    pub(crate) text: Option<String>,
    pub(crate) text_file: Option<String>,
    pub(crate) voice_id: Option<String>,
    /// A voice name, resolved to an id through `GET /v2/voices`.
    pub(crate) voice: Option<String>,
    pub(crate) model_id: Option<String>,
    pub(crate) output_format: Option<String>,
    pub(crate) language_code: Option<String>,
    pub(crate) voice_settings: Option<VoiceSettings>,
    pub(crate) pronunciation_dictionary_locators: Option<Vec<DictionaryLocator>>,
    pub(crate) seed: Option<u32>,
    pub(crate) apply_text_normalization: Option<String>,
    pub(crate) enable_logging: Option<bool>,
    pub(crate) max_request_chars: Option<usize>,
    pub(crate) pause_after_ms: Option<u64>,
    pub(crate) chapter_pause_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManifest {
    pub(crate) title: Option<String>,
    pub(crate) author: Option<String>,
    pub(crate) album: Option<String>,
    pub(crate) narrator: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) year: Option<Year>,
    pub(crate) cover: Option<String>,
    pub(crate) opening_credits: Option<String>,
    pub(crate) closing_credits: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) pronunciations: Option<Vec<Spanned<RawRule>>>,
    pub(crate) pronunciation_file: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) lead_in_ms: Option<u64>,
    pub(crate) tail_ms: Option<u64>,
    pub(crate) trim_silence: Option<bool>,
    pub(crate) continuity: Option<crate::manifest::Continuity>,
    pub(crate) defaults: Option<Spanned<RawSegment>>,
    pub(crate) segments: Option<Vec<Spanned<RawSegment>>>,
    pub(crate) segments_csv: Option<String>,
}

/// A pronunciation rule as written: `{word, alias}` or `{word, phoneme, alphabet}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub(crate) word: Option<String>,
    pub(crate) alias: Option<String>,
    pub(crate) phoneme: Option<String>,
    pub(crate) alphabet: Option<String>,
}

/// `year: 1865` or `year: "1865"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Year {
    Number(u64),
    Text(String),
}

#[derive(Default)]
pub(crate) struct Header {
    pub(crate) title: Option<String>,
    pub(crate) author: Option<String>,
    pub(crate) album: Option<String>,
    pub(crate) narrator: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) year: Option<Year>,
    pub(crate) cover: Option<String>,
    pub(crate) opening_credits: Option<String>,
    pub(crate) closing_credits: Option<String>,
    /// The EPUB the manifest was imported from.
    pub(crate) source: Option<String>,
    pub(crate) pronunciations: Option<Vec<Spanned<RawRule>>>,
    pub(crate) pronunciation_file: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) lead_in_ms: Option<u64>,
    pub(crate) tail_ms: Option<u64>,
    pub(crate) trim_silence: Option<bool>,
    pub(crate) continuity: Option<crate::manifest::Continuity>,
}

/// The CSV columns a segment row may have.
pub(crate) const CSV_COLUMNS: &[&str] = &[
    "id",
    "chapter",
    "text",
    "text_file",
    "voice_id",
    "voice",
    "model_id",
    "output_format",
    "language_code",
    "stability",
    "similarity_boost",
    "style",
    "speed",
    "use_speaker_boost",
    "pronunciation_dictionary_locators",
    "seed",
    "apply_text_normalization",
    "enable_logging",
    "max_request_chars",
    "pause_after_ms",
    "chapter_pause_ms",
];
