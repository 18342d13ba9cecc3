//! Independent oracles: narrate's tables against the emulator's own (written from the API's
//! documentation on its side) and against the OpenAPI description; the model limits the API
//! serves, followed and remembered.

use std::collections::BTreeSet;

use narrate::emulator;
use serde_json::Value;

use crate::util::*;

#[test]
fn the_client_and_the_emulator_agree_on_every_model() {
    let client = narrate::models::MODELS;
    let served = narrate::emulator::data::MODELS;
    assert_eq!(
        client.iter().map(|m| m.model_id).collect::<BTreeSet<_>>(),
        served.iter().map(|m| m.model_id).collect::<BTreeSet<_>>(),
        "the same models"
    );
    for c in client {
        let s = narrate::emulator::data::find_model(c.model_id).unwrap();
        assert_eq!(
            (
                c.max_chars,
                c.credits_per_char,
                c.stitching,
                c.fast,
                c.english_only
            ),
            (
                s.max_chars,
                s.credits_per_char,
                s.stitching,
                s.fast,
                s.english_only
            ),
            "{}",
            c.model_id
        );
    }
    assert_eq!(
        narrate::models::DEFAULT_MODEL,
        narrate::emulator::data::DEFAULT_MODEL
    );
}

#[test]
fn the_output_formats_are_the_openapi_descriptions() {
    let spec: Value = serde_json::from_str(include_str!(
        "../crates/emulator/data/elevenlabs-tts-openapi.json"
    ))
    .unwrap();
    for path in [
        "/v1/text-to-speech/{voice_id}",
        "/v1/text-to-speech/{voice_id}/with-timestamps",
    ] {
        let enumerated: BTreeSet<&str> = spec["paths"][path]["post"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "output_format")
            .unwrap()["schema"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let ours: BTreeSet<&str> = narrate::format::ALL_FORMATS.iter().copied().collect();
        assert_eq!(ours, enumerated, "{path}");
    }
}

/// A manifest with one segment of about `n` characters of prose.
fn long_segment(fx: &Fixture, name: &str, n: usize, salt: &str) {
    // Distinct sentences: identical pieces would share a cache entry.
    let text: String = (1..)
        .map(|i| format!("The {salt} rabbit ran past her for the {i}th time, and she followed. "))
        .take_while({
            let mut total = 0;
            move |s| {
                total += s.len();
                total <= n
            }
        })
        .collect::<String>()
        .trim_end()
        .to_string();
    fx.write(
        name,
        &format!(
            "output: out/{name}.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32}}\nsegments:\n  - {{id: long, text: \"{text}\"}}\n"
        ),
    );
}

#[tokio::test]
async fn requests_follow_the_limits_the_api_serves_and_remember_them() {
    // The API says Multilingual v2 takes 150 characters a request (not the documented 10,000).
    let fx = Fixture::new(emulator::Config {
        model_limits: vec![("eleven_multilingual_v2".into(), 150)],
        ..Default::default()
    })
    .await;
    long_segment(&fx, "a.yaml", 900, "white");
    let out = fx.run(&["a.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sizes: Vec<usize> = fx
        .tts_log()
        .iter()
        .map(|e| e["body"]["text"].as_str().unwrap().chars().count())
        .collect();
    assert!(sizes.len() >= 6, "split under 150: {sizes:?}");
    assert!(sizes.iter().all(|&n| n <= 150), "{sizes:?}");
    let remembered = fx.json(".narrate/models.json");
    assert_eq!(remembered["eleven_multilingual_v2"], 150);

    // Now GET /v1/models is down, and the emulator's own limit is back to 10,000: the limit
    // remembered from the last run is used.
    let down = Fixture::new(emulator::Config {
        models_down: true,
        ..Default::default()
    })
    .await;
    long_segment(&fx, "b.yaml", 900, "grey");
    let base = down.base();
    let out = narrate(
        fx.path(),
        &["b.yaml", "--base-url", &base],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sizes: Vec<usize> = down
        .tts_log()
        .iter()
        .map(|e| e["body"]["text"].as_str().unwrap().chars().count())
        .collect();
    assert!(
        sizes.len() >= 6,
        "split under the remembered 150: {sizes:?}"
    );
    assert!(sizes.iter().all(|&n| n <= 150), "{sizes:?}");
    assert!(
        down.log()
            .iter()
            .any(|e| e["path"] == "/v1/models" && e["status"] == 503),
        "the models list was asked for and was down"
    );
}
