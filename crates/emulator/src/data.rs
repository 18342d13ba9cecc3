//! The emulator's fixed data: premade voices, and the JSON it serves for voices and models.
//!
//! Not responsible for routing (see the parent module).

use serde_json::{Value, json};

/// A model as the emulator serves it. The emulator keeps its own table, written from the API's
/// documentation, so that narrate's table (`crate::models`) is checked against it rather than
/// copied into it: a test compares the two.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Model {
    pub model_id: &'static str,
    pub name: &'static str,
    /// `maximum_text_length_per_request`: the fact sheet's table of character limits.
    pub max_chars: usize,
    /// "The Flash and Turbo models cost 1 credit per 2 characters, and all other models cost 1
    /// credit per character" (help centre, in the fact sheet).
    pub credits_per_char: f64,
    /// Whether `previous_request_ids` / `next_request_ids` are accepted (not for v3).
    pub stitching: bool,
    /// Flash and Turbo: twice the concurrency of the tier.
    pub fast: bool,
    pub english_only: bool,
}

const fn model(
    model_id: &'static str,
    name: &'static str,
    max_chars: usize,
    fast: bool,
    english_only: bool,
) -> Model {
    Model {
        model_id,
        name,
        max_chars,
        credits_per_char: if fast { 0.5 } else { 1.0 },
        stitching: !matches!(model_id.as_bytes(), b"eleven_v3"),
        fast,
        english_only,
    }
}

/// The models the emulator serves (the fact sheet's table of limits: v3 5,000; Multilingual v2
/// and v1 and English v1 10,000; Flash and Turbo v2 30,000; v2.5 40,000).
pub const MODELS: &[Model] = &[
    model(
        "eleven_multilingual_v2",
        "Eleven Multilingual v2",
        10_000,
        false,
        false,
    ),
    model("eleven_v3", "Eleven v3", 5_000, false, false),
    model(
        "eleven_flash_v2_5",
        "Eleven Flash v2.5",
        40_000,
        true,
        false,
    ),
    model(
        "eleven_turbo_v2_5",
        "Eleven Turbo v2.5",
        40_000,
        true,
        false,
    ),
    model("eleven_flash_v2", "Eleven Flash v2", 30_000, true, true),
    model("eleven_turbo_v2", "Eleven Turbo v2", 30_000, true, true),
    model(
        "eleven_multilingual_v1",
        "Eleven Multilingual v1",
        10_000,
        false,
        false,
    ),
    model(
        "eleven_monolingual_v1",
        "Eleven English v1",
        10_000,
        false,
        true,
    ),
];

/// The API's default model.
pub const DEFAULT_MODEL: &str = "eleven_multilingual_v2";

/// A served model by id.
pub fn find_model(model_id: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.model_id == model_id)
}

/// `(voice_id, name, gender, accent, description)` of the premade voices the emulator knows.
pub const VOICES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "21m00Tcm4TlvDq8ikWAM",
        "Rachel",
        "female",
        "american",
        "Calm and clear narration",
    ),
    (
        "JBFqnCBsd6RMkjVDRZzb",
        "George",
        "male",
        "british",
        "Warm, captivating storyteller",
    ),
    (
        "EXAVITQu4vr4xnSDxMaL",
        "Sarah",
        "female",
        "american",
        "Mature, reassuring, confident",
    ),
    (
        "pNInz6obpgDQGcFmaJgB",
        "Adam",
        "male",
        "american",
        "Dominant, firm",
    ),
    (
        "TX3LPaxmHKxFdv7VOQHJ",
        "Liam",
        "male",
        "american",
        "Energetic social media creator",
    ),
    (
        "XB0fDUnXU5powFXDhCwa",
        "Charlotte",
        "female",
        "swedish",
        "Seductive, for characters",
    ),
    (
        "onwK4e9ZLuTAKqWW03F9",
        "Daniel",
        "male",
        "british",
        "Steady broadcaster",
    ),
    (
        "pFZP5JQG7iQjIQuC4Bku",
        "Lily",
        "female",
        "british",
        "Velvety actress",
    ),
    (
        "nPczCjzI2devNBz1zQrb",
        "Brian",
        "male",
        "american",
        "Deep, resonant and comforting",
    ),
    (
        "Xb7hH8MSUJpSbSDYk0k2",
        "Alice",
        "female",
        "british",
        "Clear, engaging educator",
    ),
    (
        "IKne3meq5aSn9XLyUdCD",
        "Charlie",
        "male",
        "australian",
        "Deep, confident, energetic",
    ),
    (
        "N2lVS1w4EtoT3dr4eOWO",
        "Callum",
        "male",
        "american",
        "Husky trickster",
    ),
    (
        "CwhRBWXzGAHq8TQ4Fs17",
        "Roger",
        "male",
        "american",
        "Laid-back, casual, resonant",
    ),
    (
        "FGY2WhTYpPnrIDTdsKH5",
        "Laura",
        "female",
        "american",
        "Enthusiast, quirky attitude",
    ),
    (
        "SAz9YHcvj6GT2YYXdXww",
        "River",
        "neutral",
        "american",
        "Relaxed, neutral, informative",
    ),
    (
        "bIHbv24MWmeRgasZH58o",
        "Will",
        "male",
        "american",
        "Relaxed optimist",
    ),
    (
        "cgSgspJ2msm6clMCkdW9",
        "Jessica",
        "female",
        "american",
        "Playful, bright, warm",
    ),
    (
        "cjVigY5qzO86Huf0OWal",
        "Eric",
        "male",
        "american",
        "Smooth, trustworthy",
    ),
    (
        "iP95p4xoKVk53GoZ742B",
        "Chris",
        "male",
        "american",
        "Charming, down-to-earth",
    ),
    (
        "pqHfZKP75CvOlQylNhV4",
        "Bill",
        "male",
        "american",
        "Wise, mature, balanced",
    ),
];

/// A voice of the emulator's catalogue: the premade voices, and the account's own (cloned,
/// generated, professional).
#[derive(Clone, Debug)]
pub struct Voice {
    pub voice_id: &'static str,
    pub name: &'static str,
    /// `premade`, `cloned`, `generated` or `professional`.
    pub category: &'static str,
    pub gender: &'static str,
    pub age: &'static str,
    pub accent: &'static str,
    pub language: &'static str,
    pub use_case: &'static str,
    pub description: &'static str,
    /// A professional clone's fine-tuning state (the `fine_tuning_state` filter's values).
    pub fine_tuning_state: Option<&'static str>,
    pub collection_ids: &'static [&'static str],
    pub created_at_unix: i64,
}

/// The account's own voices, for trying filters and "find my cloned voice".
const ACCOUNT_VOICES: &[Voice] = &[
    Voice {
        voice_id: "cLoNeDnArRaT0r000001",
        name: "My Narrator",
        category: "cloned",
        gender: "male",
        age: "middle_aged",
        accent: "irish",
        language: "en",
        use_case: "narrative_story",
        description: "Instant clone of the account's narrator",
        fine_tuning_state: None,
        collection_ids: &["cOlLeCtIoNaUdIoBoOk1"],
        created_at_unix: 1760000000,
    },
    Voice {
        voice_id: "cLoNeDlUcIa000000002",
        name: "Lucia",
        category: "cloned",
        gender: "female",
        age: "young",
        accent: "castilian",
        language: "es",
        use_case: "narrative_story",
        description: "Instant clone, Spanish narration",
        fine_tuning_state: None,
        collection_ids: &[],
        created_at_unix: 1760086400,
    },
    Voice {
        voice_id: "gEnErAtEdGiAnT000003",
        name: "Storm Giant",
        category: "generated",
        gender: "male",
        age: "old",
        accent: "scottish",
        language: "en",
        use_case: "characters_animation",
        description: "Designed from a prompt: a booming old giant",
        fine_tuning_state: None,
        collection_ids: &["cOlLeCtIoNaUdIoBoOk1"],
        created_at_unix: 1760172800,
    },
    Voice {
        voice_id: "pRoFeSsIoNaLrEaDeR04",
        name: "Studio Reader",
        category: "professional",
        gender: "female",
        age: "middle_aged",
        accent: "canadian",
        language: "en",
        use_case: "narrative_story",
        description: "Professional clone of a studio reader",
        fine_tuning_state: Some("fine_tuned"),
        collection_ids: &["cOlLeCtIoNaUdIoBoOk1"],
        created_at_unix: 1760259200,
    },
    Voice {
        voice_id: "pRoFeSsIoNaLdRaFt005",
        name: "Draft Reader",
        category: "professional",
        gender: "male",
        age: "young",
        accent: "canadian",
        language: "en",
        use_case: "conversational",
        description: "Professional clone, samples not yet verified",
        fine_tuning_state: Some("draft"),
        collection_ids: &[],
        created_at_unix: 1760345600,
    },
];

/// Every voice the emulator knows: the premade ones, then the account's.
pub fn catalogue() -> &'static [Voice] {
    static ALL: std::sync::OnceLock<Vec<Voice>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let premade =
            VOICES
                .iter()
                .enumerate()
                .map(|(i, &(id, name, gender, accent, description))| {
                    let lower = description.to_lowercase();
                    let age = if ["mature", "wise", "deep"].iter().any(|w| lower.contains(w)) {
                        "old"
                    } else if ["energetic", "playful", "enthusiast", "quirky"]
                        .iter()
                        .any(|w| lower.contains(w))
                    {
                        "young"
                    } else {
                        "middle_aged"
                    };
                    Voice {
                        voice_id: id,
                        name,
                        category: "premade",
                        gender,
                        age,
                        accent,
                        language: "en",
                        use_case: "narration",
                        description,
                        fine_tuning_state: None,
                        collection_ids: &[],
                        created_at_unix: 1_700_000_000 + i as i64 * 86_400,
                    }
                });
        premade.chain(ACCOUNT_VOICES.iter().cloned()).collect()
    })
}

/// A voice by id.
pub fn find_voice(voice_id: &str) -> Option<&'static Voice> {
    catalogue().iter().find(|v| v.voice_id == voice_id)
}

/// Whether the emulator knows this voice.
pub fn voice_exists(voice_id: &str) -> bool {
    find_voice(voice_id).is_some()
}

/// A `VoiceResponseModel`.
pub fn voice_json(v: &Voice) -> Value {
    let owned = v.category != "premade";
    let fine_tuning = v.fine_tuning_state.map(|state| {
        // The response's per-model state has no `draft` or `not_verified`: those are the
        // clone's own stages before fine-tuning starts.
        let model_state = match state {
            "draft" | "not_verified" => "not_started",
            other => other,
        };
        json!({
            "is_allowed_to_fine_tune": true,
            "state": {"eleven_multilingual_v2": model_state},
            "verification_failures": [],
            "verification_attempts_count": 0,
            "manual_verification_requested": false,
        })
    });
    json!({
        "voice_id": v.voice_id,
        "name": v.name,
        "category": v.category,
        "description": v.description,
        "labels": {"gender": v.gender, "age": v.age, "accent": v.accent, "language": v.language, "use_case": v.use_case},
        "available_for_tiers": [],
        "high_quality_base_model_ids": ["eleven_multilingual_v2", "eleven_flash_v2_5", "eleven_v3"],
        "preview_url": null,
        "settings": {"stability": 0.5, "similarity_boost": 0.75, "style": 0.0, "use_speaker_boost": true, "speed": 1.0},
        "samples": null,
        "fine_tuning": fine_tuning,
        "sharing": null,
        "verified_languages": [],
        "collection_ids": v.collection_ids,
        "safety_control": null,
        "is_owner": owned,
        "is_legacy": false,
        "is_mixed": false,
        "created_at_unix": v.created_at_unix,
    })
}

/// The languages of Multilingual v2, in the order the models page lists them (29); Flash and
/// Turbo v2.5 add the last three (32).
const LANGUAGES: &[(&str, &str)] = &[
    ("en", "English"),
    ("ja", "Japanese"),
    ("zh", "Chinese"),
    ("de", "German"),
    ("hi", "Hindi"),
    ("fr", "French"),
    ("ko", "Korean"),
    ("pt", "Portuguese"),
    ("it", "Italian"),
    ("es", "Spanish"),
    ("id", "Indonesian"),
    ("nl", "Dutch"),
    ("tr", "Turkish"),
    ("fil", "Filipino"),
    ("pl", "Polish"),
    ("sv", "Swedish"),
    ("bg", "Bulgarian"),
    ("ro", "Romanian"),
    ("ar", "Arabic"),
    ("cs", "Czech"),
    ("el", "Greek"),
    ("fi", "Finnish"),
    ("hr", "Croatian"),
    ("ms", "Malay"),
    ("sk", "Slovak"),
    ("da", "Danish"),
    ("ta", "Tamil"),
    ("uk", "Ukrainian"),
    ("ru", "Russian"),
    ("hu", "Hungarian"),
    ("no", "Norwegian"),
    ("vi", "Vietnamese"),
];

/// Multilingual v1's eight languages.
const V1_LANGUAGES: &[&str] = &["en", "de", "pl", "es", "it", "fr", "pt", "hi"];

/// The languages a model lists: English alone for the English models, Multilingual v1's
/// eight, Multilingual v2's 29, and the 32 of the v2.5 models. Eleven v3 speaks 70+
/// languages; the reference names no list, so the emulator gives it the 32 it knows.
pub fn languages(m: &Model) -> Vec<(&'static str, &'static str)> {
    let count = match m.model_id {
        _ if m.english_only => 1,
        "eleven_multilingual_v2" => 29,
        _ => LANGUAGES.len(),
    };
    if m.model_id == "eleven_multilingual_v1" {
        return LANGUAGES
            .iter()
            .filter(|(id, _)| V1_LANGUAGES.contains(id))
            .copied()
            .collect();
    }
    LANGUAGES[..count].to_vec()
}

/// A `ModelResponseModel`.
pub fn model_json(m: &Model) -> Value {
    let languages: Vec<Value> = languages(m)
        .iter()
        .map(|(id, name)| json!({"language_id": id, "name": name}))
        .collect();
    json!({
        "model_id": m.model_id,
        "name": m.name,
        "can_be_finetuned": true,
        "can_do_text_to_speech": true,
        "can_do_voice_conversion": false,
        "can_use_style": true,
        "can_use_speaker_boost": true,
        "serves_pro_voices": false,
        "token_cost_factor": m.credits_per_char,
        "description": format!("{} (emulated)", m.name),
        "requires_alpha_access": false,
        "max_characters_request_free_user": m.max_chars,
        "max_characters_request_subscribed_user": m.max_chars,
        "maximum_text_length_per_request": m.max_chars,
        "languages": languages,
        "model_rates": {"character_cost_multiplier": m.credits_per_char, "cost_discount_multiplier": 1.0},
        "concurrency_group": if m.fast { "turbo" } else { "standard" },
    })
}

/// The `/v1/models` array, with `limits` overriding the documented character limits.
pub fn models_json(limits: &[(String, usize)]) -> Value {
    Value::Array(
        MODELS
            .iter()
            .map(|m| {
                let mut m = *m;
                if let Some((_, max)) = limits.iter().find(|(id, _)| id == m.model_id) {
                    m.max_chars = *max;
                }
                model_json(&m)
            })
            .collect(),
    )
}
