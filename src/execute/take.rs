//! What makes a take the one a request asked for, judged on a speech-history item before it is
//! recovered: the text, voice and model, the format, and every field the request sent that
//! shapes the audio (voice settings, seed, language, dictionaries and their versions, text
//! normalisation). A field the item does not show cannot be confirmed, so the take is not taken:
//! another job's take of the same words, at another speed or seed, never goes into this book.
//!
//! Not responsible for finding items or downloading them (see `recover`).

use serde_json::Value;

use crate::api::{HistoryItem, TtsBody};

/// Why `item` is not the take `body` asked for (words that follow "the take"), or `Ok` when it
/// is.
pub(crate) fn same_take(item: &HistoryItem, body: &TtsBody, format: &str) -> Result<(), String> {
    if item.text.as_deref() != Some(body.text.as_str()) {
        return Err("has another text".into());
    }
    if item.model_id.as_deref() != Some(body.model_id.as_str()) {
        return Err("was made by another model".into());
    }
    if let Some(f) = &item.output_format
        && f != format
    {
        return Err(format!(
            "is in another format ({f}); narrate does not re-encode a take"
        ));
    }
    let settings = &item.settings;
    let sent = serde_json::to_value(body).unwrap_or(Value::Null);
    if let Some(voice) = sent.get("voice_settings").and_then(Value::as_object) {
        for (field, value) in voice {
            let shown = settings
                .get(field)
                .or_else(|| settings.pointer(&format!("/voice_settings/{field}")));
            confirm(field, value, shown)?;
        }
    }
    for field in [
        "seed",
        "language_code",
        "apply_text_normalization",
        "pronunciation_dictionary_locators",
    ] {
        if let Some(value) = sent.get(field) {
            confirm(field, value, settings.get(field))?;
        }
    }
    Ok(())
}

/// A field the request sent, against what the item shows of it.
fn confirm(field: &str, sent: &Value, shown: Option<&Value>) -> Result<(), String> {
    let same = match (sent, shown) {
        (Value::Number(a), Some(Value::Number(b))) => {
            (a.as_f64().unwrap_or(f64::NAN) - b.as_f64().unwrap_or(f64::NAN)).abs() < 1e-9
        }
        (a, Some(b)) => a == b,
        (_, None) => {
            return Err(format!(
                "does not show its {field}, so it cannot be confirmed as this request's"
            ));
        }
    };
    if same {
        Ok(())
    } else {
        Err(format!("has another {field}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::VoiceSettings;

    fn body() -> TtsBody {
        TtsBody {
            text: "Hello there.".into(),
            model_id: "eleven_multilingual_v2".into(),
            voice_settings: Some(VoiceSettings {
                speed: Some(1.2),
                ..Default::default()
            }),
            seed: Some(7),
            ..Default::default()
        }
    }

    fn item(settings: Value) -> HistoryItem {
        HistoryItem {
            text: Some("Hello there.".into()),
            model_id: Some("eleven_multilingual_v2".into()),
            output_format: Some("mp3_44100_128".into()),
            settings,
            ..Default::default()
        }
    }

    #[test]
    fn every_field_that_shapes_the_audio_must_match() {
        let f = "mp3_44100_128";
        let ok = item(serde_json::json!({"speed": 1.2, "seed": 7}));
        assert_eq!(same_take(&ok, &body(), f), Ok(()));
        let slower = item(serde_json::json!({"speed": 0.8, "seed": 7}));
        assert_eq!(
            same_take(&slower, &body(), f),
            Err("has another speed".into())
        );
        let other_seed = item(serde_json::json!({"speed": 1.2, "seed": 8}));
        assert_eq!(
            same_take(&other_seed, &body(), f),
            Err("has another seed".into())
        );
        let unknown_seed = item(serde_json::json!({"speed": 1.2}));
        assert!(same_take(&unknown_seed, &body(), f).is_err());
        assert!(same_take(&ok, &body(), "mp3_22050_32").is_err());
        let mut other_text = ok.clone();
        other_text.text = Some("Hello.".into());
        assert!(same_take(&other_text, &body(), f).is_err());
    }
}
