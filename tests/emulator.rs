//! The emulator through real HTTP: the documented errors and headers, paging, stitching rules.

use std::time::Duration;

use narrate::emulator::{self, Tier};
use serde_json::{Value, json};

const VOICE: &str = "21m00Tcm4TlvDq8ikWAM";

async fn post(base: &str, path: &str, key: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body);
    if let Some(k) = key {
        req = req.header("xi-api-key", k);
    }
    req.send().await.unwrap()
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("xi-api-key", "k")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn detail(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let has_trace = r.headers().contains_key("x-trace-id");
    let no_request_id = !r.headers().contains_key("request-id");
    let body: Value = r.json().await.unwrap();
    // Every error: the API's own shape, FastAPI's 422 list and its plain 404 alike.
    assert!(
        status < 400 || (has_trace && no_request_id),
        "errors carry x-trace-id and no request-id: {status} {body}"
    );
    (status, body["detail"].clone())
}

#[tokio::test]
async fn errors_have_the_documented_statuses_and_shapes() {
    let emu = emulator::start(emulator::Config {
        api_key: Some("right".into()),
        tier: Tier::Free,
        ..Default::default()
    })
    .await
    .unwrap();
    let base = emu.base_url();
    let tts = format!("/v1/text-to-speech/{VOICE}");
    let ok = json!({"text": "Hello there."});

    let (s, d) = detail(post(&base, &tts, None, ok.clone()).await).await;
    assert_eq!(
        (s, d["status"].as_str()),
        (401, Some("needs_authorization"))
    );
    let (s, d) = detail(post(&base, &tts, Some("wrong"), ok.clone()).await).await;
    assert_eq!(
        (s, d["status"].as_str(), d["message"].as_str()),
        (401, Some("invalid_api_key"), Some("Invalid API key"))
    );
    assert_eq!(d["request_id"].as_str().unwrap().len(), 32);

    // 422 comes before auth, in FastAPI's list shape.
    let (s, d) = detail(post(&base, &tts, None, json!({"model_id": "eleven_v3"})).await).await;
    assert_eq!(s, 422);
    assert_eq!(d[0]["loc"], json!(["body", "text"]));
    assert_eq!(d[0]["type"], "missing");
    let (s, d) = detail(
        post(
            &base,
            &tts,
            Some("right"),
            json!({"text": "x", "voice_settings": {"stability": 2}}),
        )
        .await,
    )
    .await;
    assert_eq!((s, d[0]["type"].as_str()), (422, Some("less_than_equal")));
    assert_eq!(d[0]["ctx"]["le"], 1.0);

    let (s, d) =
        detail(post(&base, "/v1/text-to-speech/nope", Some("right"), ok.clone()).await).await;
    assert_eq!((s, d["status"].as_str()), (404, Some("voice_not_found")));
    let long = "a".repeat(5_001);
    let (s, d) = detail(
        post(
            &base,
            &tts,
            Some("right"),
            json!({"text": long, "model_id": "eleven_v3"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, d["status"].as_str()),
        (400, Some("max_character_limit_exceeded"))
    );
    assert!(d["message"].as_str().unwrap().contains("5001 characters"));
    let (s, d) = detail(
        post(
            &base,
            &format!("{tts}?output_format=pcm_44100"),
            Some("right"),
            ok.clone(),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, d["status"].as_str()),
        (403, Some("output_format_not_allowed"))
    );
    let (s, d) = detail(
        post(
            &base,
            &format!("{tts}?output_format=opus_48000_64"),
            Some("right"),
            ok.clone(),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(d["message"].as_str().unwrap().contains("Opus"));

    let r = reqwest::Client::new()
        .get(format!("{base}/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().contains_key("x-trace-id"),
        "a route 404 is traced"
    );
    let (s, body) = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    assert_eq!((s, body), (404, json!({"detail": "Not Found"})));
    // A wrong method: 405, traced too.
    let r = reqwest::Client::new()
        .get(format!("{base}{tts}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().contains_key("x-trace-id"), "a 405 is traced");
    emu.stop().await;
}

#[tokio::test]
async fn success_headers_and_deterministic_audio() {
    let emu = emulator::start(emulator::Config::default()).await.unwrap();
    let base = emu.base_url();
    let body = json!({"text": "The same text twice.", "model_id": "eleven_flash_v2_5"});
    let path = format!("/v1/text-to-speech/{VOICE}?output_format=pcm_16000");
    let a = post(&base, &path, Some("k"), body.clone()).await;
    assert_eq!(a.status(), 200);
    let h = a.headers().clone();
    let id = h["request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 20);
    assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(h["history-item-id"], h["request-id"]);
    assert_eq!(
        h["character-cost"], "10",
        "flash costs half a credit a character"
    );
    assert_eq!(h["content-type"], "audio/pcm");
    assert_eq!(h["maximum-concurrent-requests"], "20");
    let audio_a = a.bytes().await.unwrap();
    let b = post(&base, &path, Some("k"), body).await;
    assert_ne!(b.headers()["request-id"].to_str().unwrap(), id);
    assert_eq!(b.bytes().await.unwrap(), audio_a, "same body, same bytes");
    // About 15 characters a second: 20 characters at 16 kHz.
    assert_eq!(
        audio_a.len(),
        2 * (20.0 / 15.0 * 16_000.0_f64).round() as usize
    );
    emu.stop().await;
}

#[tokio::test]
async fn stitching_ids_are_checked() {
    let emu = emulator::start(emulator::Config::default()).await.unwrap();
    let base = emu.base_url();
    let tts = format!("/v1/text-to-speech/{VOICE}?output_format=pcm_8000");
    let first = post(&base, &tts, Some("k"), json!({"text": "One."})).await;
    let id = first.headers()["request-id"].to_str().unwrap().to_string();
    first.bytes().await.unwrap();

    let ok = post(
        &base,
        &tts,
        Some("k"),
        json!({"text": "Two.", "previous_request_ids": [id]}),
    )
    .await;
    assert_eq!(ok.status(), 200);
    ok.bytes().await.unwrap();
    for field in ["previous_request_ids", "next_request_ids"] {
        let three = post(
            &base,
            &tts,
            Some("k"),
            json!({"text": "Three.", field: [id, id, id]}),
        )
        .await;
        assert_eq!(
            three.status(),
            200,
            "three ids in {field} are within the three allowed"
        );
        three.bytes().await.unwrap();
        let (s, d) = detail(
            post(
                &base,
                &tts,
                Some("k"),
                json!({"text": "x", field: [id, id, id, id]}),
            )
            .await,
        )
        .await;
        assert_eq!(
            (s, d["status"].as_str()),
            (400, Some("invalid_request_ids")),
            "four ids in {field} are refused"
        );
    }
    let (s, _) = detail(
        post(
            &base,
            &tts,
            Some("k"),
            json!({"text": "x", "previous_request_ids": ["AAAAAAAAAAAAAAAAAAAA"]}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400, "unknown ids are refused");
    let (s, _) = detail(
        post(
            &base,
            &tts,
            Some("k"),
            json!({"text": "x", "previous_request_ids": [id, id, id, id]}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400, "more than 3 ids are refused");
    let (s, d) = detail(
        post(
            &base,
            &tts,
            Some("k"),
            json!({"text": "x", "model_id": "eleven_v3", "previous_request_ids": [id]}),
        )
        .await,
    )
    .await;
    assert_eq!((s, d["status"].as_str()), (400, Some("unsupported_model")));
    let (s, _) = detail(
        post(
            &base,
            &format!("{tts}&enable_logging=false"),
            Some("k"),
            json!({"text": "x", "previous_request_ids": [id]}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400, "no stitching in zero-retention mode");
    // A minute short of two hours, the id still stitches; past two hours it does not.
    emu.state.advance_clock(Duration::from_secs(2 * 3600 - 60));
    let fresh = post(
        &base,
        &tts,
        Some("k"),
        json!({"text": "Still fresh.", "previous_request_ids": [id]}),
    )
    .await;
    assert_eq!(fresh.status(), 200, "an id of 1 h 59 min is usable");
    fresh.bytes().await.unwrap();
    emu.state.advance_clock(Duration::from_secs(61));
    let (s, d) = detail(
        post(
            &base,
            &tts,
            Some("k"),
            json!({"text": "x", "previous_request_ids": [id]}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("older than two hours")
    );
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_above_the_tier_gets_429() {
    let emu = emulator::start(emulator::Config {
        tier: Tier::Free,
        latency_ms: 1500,
        ..Default::default()
    })
    .await
    .unwrap();
    let base = emu.base_url();
    let tts = format!("/v1/text-to-speech/{VOICE}?output_format=pcm_8000");
    // Two requests take the Free tier's two slots (waited for, not timed)...
    let first: Vec<_> = (0..2)
        .map(|_| tokio::spawn(post_owned(base.clone(), tts.clone())))
        .collect();
    for _ in 0..1000 {
        if emu.state.in_flight() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(emu.state.in_flight(), 2);
    // ...so two more, while they run, are refused.
    for _ in 0..2 {
        let r = post(&base, &tts, Some("k"), json!({"text": "Hello."})).await;
        let (s, d) = detail(r).await;
        assert_eq!(
            (s, d["status"].as_str()),
            (429, Some("too_many_concurrent_requests"))
        );
    }
    for f in first {
        assert_eq!(f.await.unwrap(), 200);
    }
    emu.stop().await;
}

#[tokio::test]
async fn a_changed_character_limit_holds_for_its_model_only() {
    let emu = emulator::start(emulator::Config {
        model_limits: vec![("eleven_multilingual_v2".into(), 150)],
        ..Default::default()
    })
    .await
    .unwrap();
    let base = emu.base_url();
    let tts = format!("/v1/text-to-speech/{VOICE}?output_format=pcm_8000");
    let text = "word ".repeat(40); // 200 characters
    let (s, d) = detail(
        post(
            &base,
            &tts,
            Some("k"),
            json!({"text": text, "model_id": "eleven_multilingual_v2"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, d["status"].as_str()),
        (400, Some("max_character_limit_exceeded"))
    );
    assert!(d["message"].as_str().unwrap().contains("150"), "{d}");
    let r = post(
        &base,
        &tts,
        Some("k"),
        json!({"text": &text[..150], "model_id": "eleven_multilingual_v2"}),
    )
    .await;
    assert_eq!(r.status().as_u16(), 200, "150 characters are within 150");
    let r = post(
        &base,
        &tts,
        Some("k"),
        json!({"text": text, "model_id": "eleven_flash_v2_5"}),
    )
    .await;
    assert_eq!(
        r.status().as_u16(),
        200,
        "another model keeps its own limit"
    );
    emu.stop().await;
}

#[tokio::test]
async fn the_quota_is_spent_to_the_last_credit_and_not_past_it() {
    let emu = emulator::start(emulator::Config {
        character_limit: 20,
        ..Default::default()
    })
    .await
    .unwrap();
    let base = emu.base_url();
    let tts = format!("/v1/text-to-speech/{VOICE}?output_format=pcm_8000");
    // Multilingual v2 costs a credit a character.
    let say = |text: String| json!({"text": text, "model_id": "eleven_multilingual_v2"});
    let (s, d) = detail(post(&base, &tts, Some("k"), say("a".repeat(21))).await).await;
    assert_eq!(
        (s, d["status"].as_str()),
        (401, Some("quota_exceeded")),
        "one request over the whole quota"
    );
    let r = post(&base, &tts, Some("k"), say("a".repeat(12))).await;
    assert_eq!(r.status().as_u16(), 200);
    let r = post(&base, &tts, Some("k"), say("a".repeat(8))).await;
    assert_eq!(
        r.status().as_u16(),
        200,
        "12 + 8 credits are exactly the 20"
    );
    let (s, d) = detail(post(&base, &tts, Some("k"), say("a".into())).await).await;
    assert_eq!((s, d["status"].as_str()), (401, Some("quota_exceeded")));
    emu.stop().await;
}

#[tokio::test]
async fn the_tier_gates_of_the_output_formats_are_the_documented_ones() {
    // The API reference: MP3 at 192 kbps from Creator up, PCM and WAV at 44.1 kHz from Pro up.
    let gates = [
        ("mp3_44100_192", Tier::Starter, Tier::Creator, "Creator"),
        ("pcm_44100", Tier::Creator, Tier::Pro, "Pro"),
        ("wav_44100", Tier::Creator, Tier::Pro, "Pro"),
    ];
    for (format, below, from, needed) in gates {
        for (tier, allowed) in [(below, false), (from, true)] {
            let emu = emulator::start(emulator::Config {
                tier,
                ..Default::default()
            })
            .await
            .unwrap();
            let path = format!("/v1/text-to-speech/{VOICE}?output_format={format}");
            let r = post(&emu.base_url(), &path, Some("k"), json!({"text": "Hi."})).await;
            if allowed {
                assert_eq!(r.status().as_u16(), 200, "{format} on {tier:?}");
            } else {
                let (s, d) = detail(r).await;
                assert_eq!(
                    (s, d["status"].as_str()),
                    (403, Some("output_format_not_allowed")),
                    "{format} on {tier:?}"
                );
                assert!(d["message"].as_str().unwrap().contains(needed), "{d}");
            }
            emu.stop().await;
        }
    }
}

async fn post_owned(base: String, path: String) -> u16 {
    post(&base, &path, Some("k"), json!({"text": "Hello."}))
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn voices_page_and_search_models_and_subscription() {
    let emu = emulator::start(emulator::Config {
        character_limit: 1000,
        ..Default::default()
    })
    .await
    .unwrap();
    let base = emu.base_url();
    let (s, page) = get(&base, "/v2/voices").await;
    assert_eq!(s, 200);
    assert_eq!(page["voices"].as_array().unwrap().len(), 10);
    assert_eq!(page["has_more"], true);
    let mut seen = page["voices"].as_array().unwrap().len();
    let mut token = page["next_page_token"].as_str().unwrap().to_string();
    loop {
        let (_, p) = get(
            &base,
            &format!("/v2/voices?page_size=7&next_page_token={token}"),
        )
        .await;
        seen += p["voices"].as_array().unwrap().len();
        match p["next_page_token"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, page["total_count"].as_u64().unwrap() as usize);
    let (_, found) = get(&base, "/v2/voices?search=george").await;
    assert_eq!(found["voices"][0]["voice_id"], "JBFqnCBsd6RMkjVDRZzb");
    let (_, two) = get(
        &base,
        &format!("/v2/voices?voice_ids={VOICE}&voice_ids=JBFqnCBsd6RMkjVDRZzb"),
    )
    .await;
    assert_eq!(two["total_count"], 2);
    let (s, _) = get(&base, "/v2/voices?page_size=101").await;
    assert_eq!(s, 422);
    let (s, v) = get(&base, &format!("/v1/voices/{VOICE}")).await;
    assert_eq!((s, v["name"].as_str()), (200, Some("Rachel")));

    let (_, models) = get(&base, "/v1/models").await;
    let v2 = models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model_id"] == "eleven_multilingual_v2")
        .unwrap();
    assert_eq!(v2["maximum_text_length_per_request"], 10_000);

    // Quota: 401 quota_exceeded once the credits run out.
    let tts = format!("/v1/text-to-speech/{VOICE}?output_format=pcm_8000");
    let r = post(&base, &tts, Some("k"), json!({"text": "a".repeat(900)})).await;
    assert_eq!(r.status(), 200);
    let (s, d) = detail(post(&base, &tts, Some("k"), json!({"text": "a".repeat(200)})).await).await;
    assert_eq!((s, d["status"].as_str()), (401, Some("quota_exceeded")));
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("100 credits remaining, while 200 credits are required")
    );
    let (_, sub) = get(&base, "/v1/user/subscription").await;
    assert_eq!(
        (
            sub["character_count"].as_u64(),
            sub["character_limit"].as_u64()
        ),
        (Some(900), Some(1000))
    );
    assert_eq!(sub["tier"], "pro");
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_and_openapi_schemas() {
    let emu = emulator::start(emulator::Config {
        api_key: Some("sdk-test-key".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = emu.base_url();
    let script = root.join("tests/sdk/python_sdk.py");
    let spec = root.join("crates/emulator/data/elevenlabs-tts-openapi.json");
    let mut command = std::process::Command::new("python3");
    command
        .arg(script)
        .args([base.as_str(), "sdk-test-key"])
        .arg(spec);
    let stdout = run_checker(command, "the Python SDK check", PIP).await;
    assert!(stdout.contains("checks passed"), "{stdout}");
    emu.stop().await;
}

/// The official JavaScript SDK (`@elevenlabs/elevenlabs-js`, run by Node): voices paged and
/// filtered, models, conversion with its headers, stitching, and the SDK's error for a wrong
/// key, an unknown voice and a bad setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_javascript_sdk() {
    let emu = emulator::start(emulator::Config {
        api_key: Some("sdk-test-key".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    let base = emu.base_url();
    let mut command = std::process::Command::new("node");
    command
        .current_dir(&sdk)
        .args(["js_sdk.mjs", base.as_str(), "sdk-test-key"]);
    let stdout = run_checker(
        command,
        "the JavaScript SDK check",
        "npm ci --prefix tests/sdk",
    )
    .await;
    assert!(stdout.contains("13 checks passed"), "{stdout}");
    emu.stop().await;
}

#[tokio::test]
async fn stream_and_timestamp_endpoints() {
    let emu = emulator::start(emulator::Config::default()).await.unwrap();
    let base = emu.base_url();
    let stream = post(
        &base,
        &format!("/v1/text-to-speech/{VOICE}/stream?output_format=pcm_16000"),
        Some("k"),
        json!({"text": "A streamed reply, long enough for several chunks of audio."}),
    )
    .await;
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers().get("content-length").is_none(),
        "chunked transfer"
    );
    assert_eq!(stream.headers()["transfer-encoding"], "chunked");
    assert!(stream.headers().contains_key("request-id"));
    assert!(stream.bytes().await.unwrap().len() > 8192);
    let (s, d) = detail(
        post(
            &base,
            &format!("/v1/text-to-speech/{VOICE}/stream?output_format=wav_16000"),
            Some("k"),
            json!({"text": "x"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, d[0]["loc"].clone()),
        (422, json!(["query", "output_format"])),
        "no wav on streaming endpoints"
    );

    let text = "Timed words.";
    let r = post(
        &base,
        &format!("/v1/text-to-speech/{VOICE}/with-timestamps?output_format=pcm_16000"),
        Some("k"),
        json!({"text": text}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let chars = v["alignment"]["characters"].as_array().unwrap();
    assert_eq!(chars.len(), text.chars().count());
    let ends = v["alignment"]["character_end_times_seconds"]
        .as_array()
        .unwrap();
    assert!((ends.last().unwrap().as_f64().unwrap() - 12.0 / 15.0).abs() < 0.01);
    use base64::Engine as _;
    let audio = base64::engine::general_purpose::STANDARD
        .decode(v["audio_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        audio.len(),
        2 * (12.0 / 15.0 * 16_000.0_f64).round() as usize
    );

    let long = "word ".repeat(40);
    let r = post(
        &base,
        &format!("/v1/text-to-speech/{VOICE}/stream/with-timestamps"),
        Some("k"),
        json!({"text": long}),
    )
    .await;
    let body = r.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "NDJSON, one chunk per 40 characters");
    let total: usize = lines
        .iter()
        .map(|l| l["alignment"]["characters"].as_array().unwrap().len())
        .sum();
    assert_eq!(total, 200);
    emu.stop().await;
}

#[tokio::test]
async fn injected_faults_look_like_the_real_thing() {
    use narrate::emulator::{Fault, Faults};
    let tts = format!("/v1/text-to-speech/{VOICE}?output_format=pcm_16000");
    let body = json!({"text": "A sentence long enough to be cut in half by a fault."});
    for (fault, check) in [
        (Fault::Busy, "busy"),
        (Fault::BusyRetryAfter, "retry-after"),
        (Fault::Internal, "500"),
        (Fault::UnavailableHtml, "503"),
        (Fault::Reset, "reset"),
        (Fault::Truncated, "truncated"),
        (Fault::Slow, "slow"),
    ] {
        let emu = emulator::start(emulator::Config {
            faults: Faults {
                rate: 1.0,
                seed: 1,
                kinds: vec![fault],
            },
            ..Default::default()
        })
        .await
        .unwrap();
        let base = emu.base_url();
        let sent = reqwest::Client::new()
            .post(format!("{base}{tts}"))
            .header("xi-api-key", "k")
            .json(&body)
            .send()
            .await;
        match check {
            "busy" | "retry-after" => {
                let r = sent.unwrap();
                assert_eq!(r.status(), 429);
                assert_eq!(
                    r.headers().contains_key("retry-after"),
                    check == "retry-after"
                );
                let (_, d) = detail(r).await;
                assert_eq!(d["status"], "system_busy");
            }
            "500" => assert_eq!(sent.unwrap().status(), 500),
            "503" => {
                let r = sent.unwrap();
                assert_eq!(r.status(), 503);
                assert_eq!(r.headers()["content-type"], "text/html");
                assert!(r.text().await.unwrap().starts_with("<html>"));
            }
            "reset" => assert!(sent.is_err(), "the connection drops before any answer"),
            "truncated" => {
                let r = sent.unwrap();
                let id = r.headers()["request-id"].to_str().unwrap().to_string();
                let promised = r.content_length().unwrap();
                assert!(
                    r.bytes().await.is_err(),
                    "the body stops short of {promised} bytes"
                );
                // An id whose audio was not delivered whole cannot be stitched.
                let again = post(
                    &base,
                    &tts,
                    Some("k"),
                    json!({"text": "x", "previous_request_ids": [id]}),
                )
                .await;
                let (s, d) = detail(again).await;
                assert_eq!(s, 400);
                assert!(
                    d["message"].as_str().unwrap().contains("has not finished"),
                    "{d}"
                );
            }
            _ => {
                let started = std::time::Instant::now();
                let bytes = sent.unwrap().bytes().await.unwrap();
                assert!(bytes.len() > 1000);
                assert!(
                    started.elapsed() >= Duration::from_millis(500),
                    "slow delivery takes its time"
                );
            }
        }
        emu.stop().await;
    }
}

/// How to install the Python packages the outside checkers need.
const PIP: &str = "python3 -m pip install -r tests/sdk/requirements.txt";

/// Runs an outside checker (an SDK script, schemathesis) to its end off the async runtime, and
/// gives its stdout once it has succeeded.
async fn run_checker(mut command: std::process::Command, what: &str, install: &str) -> String {
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{what} does not start ({e}); install it with: {install}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed (install it with: {install})\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A request with a raw body and content type; the status and the whole JSON body.
async fn raw(
    base: &str,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .header("xi-api-key", "k")
        .body(body.to_string());
    if let Some(t) = content_type {
        req = req.header("content-type", t);
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let text = r.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, value)
}

/// The 422 items pydantic v2 gives, written from its documented error types: a request the
/// real API refuses is refused here with the same body.
#[tokio::test]
async fn requests_are_validated_with_pydantics_exact_errors() {
    let emu = emulator::start(emulator::Config::default()).await.unwrap();
    let base = emu.base_url();
    let tts = format!("/v1/text-to-speech/{VOICE}?output_format=pcm_8000");
    let post_json = |body: Value| {
        let (base, tts) = (base.clone(), tts.clone());
        async move {
            let (s, h, v) = raw(
                &base,
                reqwest::Method::POST,
                &tts,
                Some("application/json"),
                &body.to_string(),
            )
            .await;
            assert!(s < 400 || h.contains_key("x-trace-id"), "{s} {v}");
            (s, v)
        }
    };
    let cases = [
        (
            json!({"text": "Hi.", "model_id": null}),
            json!([{"type": "string_type", "loc": ["body", "model_id"], "msg": "Input should be a valid string", "input": null}]),
        ),
        (
            json!({"text": "Hi.", "model_id": 0}),
            json!([{"type": "string_type", "loc": ["body", "model_id"], "msg": "Input should be a valid string", "input": 0}]),
        ),
        (
            json!({"text": "Hi.", "seed": "abc"}),
            json!([{"type": "int_parsing", "loc": ["body", "seed"], "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "abc"}]),
        ),
        (
            json!({"text": "Hi.", "seed": 1.5}),
            json!([{"type": "int_from_float", "loc": ["body", "seed"], "msg": "Input should be a valid integer, got a number with a fractional part", "input": 1.5}]),
        ),
        (
            json!({"text": "Hi.", "language_code": 5, "previous_text": 1, "next_text": true}),
            json!([
                {"type": "string_type", "loc": ["body", "language_code"], "msg": "Input should be a valid string", "input": 5},
                {"type": "string_type", "loc": ["body", "previous_text"], "msg": "Input should be a valid string", "input": 1},
                {"type": "string_type", "loc": ["body", "next_text"], "msg": "Input should be a valid string", "input": true},
            ]),
        ),
        (
            json!({"text": "Hi.", "previous_request_ids": "abc"}),
            json!([{"type": "list_type", "loc": ["body", "previous_request_ids"], "msg": "Input should be a valid list", "input": "abc"}]),
        ),
        (
            json!({"text": "Hi.", "voice_settings": [0.5]}),
            json!([{"type": "model_attributes_type", "loc": ["body", "voice_settings"], "msg": "Input should be a valid dictionary or object to extract fields from", "input": [0.5]}]),
        ),
        (
            json!({"text": "Hi.", "pronunciation_dictionary_locators": [{"version_id": "v1"}]}),
            json!([{"type": "missing", "loc": ["body", "pronunciation_dictionary_locators", 0, "pronunciation_dictionary_id"], "msg": "Field required", "input": null}]),
        ),
        (
            json!({"model_id": "eleven_v3"}),
            json!([{"type": "missing", "loc": ["body", "text"], "msg": "Field required", "input": null}]),
        ),
        (
            json!({"text": "Hi.", "apply_text_normalization": "maybe"}),
            json!([{"type": "literal_error", "loc": ["body", "apply_text_normalization"], "msg": "Input should be 'auto', 'on' or 'off'", "input": "maybe", "ctx": {"expected": "'auto', 'on' or 'off'"}}]),
        ),
        (
            json!({"text": "Hi.", "voice_settings": {"stability": -0.5, "use_speaker_boost": "perhaps"}}),
            json!([
                {"type": "greater_than_equal", "loc": ["body", "voice_settings", "stability"], "msg": "Input should be greater than or equal to 0.0", "input": -0.5, "ctx": {"ge": 0.0}},
                {"type": "bool_parsing", "loc": ["body", "voice_settings", "use_speaker_boost"], "msg": "Input should be a valid boolean, unable to interpret input", "input": "perhaps"},
            ]),
        ),
        (
            json!({"text": "Hi.", "voice_settings": {"style": 1.5, "speed": 2}}),
            json!([
                {"type": "less_than_equal", "loc": ["body", "voice_settings", "speed"], "msg": "Input should be less than or equal to 1.2", "input": 2, "ctx": {"le": 1.2}},
                {"type": "less_than_equal", "loc": ["body", "voice_settings", "style"], "msg": "Input should be less than or equal to 1.0", "input": 1.5, "ctx": {"le": 1.0}},
            ]),
        ),
        (
            json!({"text": "Hi.", "voice_settings": {"style": -0.01, "speed": 0.69}}),
            json!([
                {"type": "greater_than_equal", "loc": ["body", "voice_settings", "speed"], "msg": "Input should be greater than or equal to 0.7", "input": 0.69, "ctx": {"ge": 0.7}},
                {"type": "greater_than_equal", "loc": ["body", "voice_settings", "style"], "msg": "Input should be greater than or equal to 0.0", "input": -0.01, "ctx": {"ge": 0.0}},
            ]),
        ),
    ];
    for (body, want) in cases {
        let (s, got) = post_json(body.clone()).await;
        assert_eq!(s, 422, "{body}");
        assert_eq!(got, json!({"detail": want}), "{body}");
    }
    // What pydantic's lax mode coerces is accepted.
    for body in [
        json!({"text": "Hi.", "seed": "7"}),
        json!({"text": "Hi.", "seed": 7.0}),
        json!({"text": "Hi.", "voice_settings": {"stability": "0.4", "use_speaker_boost": "yes"}}),
        json!({"text": "Hi.", "model_id": "eleven_flash_v2_5", "previous_text": null}),
        // The bounds themselves are within them.
        json!({"text": "Hi.", "voice_settings": {"speed": 0.7, "style": 0}}),
        json!({"text": "Hi.", "voice_settings": {"speed": 1.2, "style": 1}}),
    ] {
        assert_eq!(post_json(body.clone()).await.0, 200, "{body}");
    }
    // A query parameter given twice is read as FastAPI reads it: the last one counts. WAV
    // comes from the endpoints that answer whole files, not from the streaming ones (the
    // description's lists). Each refusal is one item.
    for (path, want) in [
        ("?output_format=mp3_1&output_format=pcm_8000", 200),
        ("?output_format=pcm_8000&output_format=mp3_1", 422),
        ("?output_format=wav_16000", 200),
        ("/with-timestamps?output_format=wav_16000", 200),
        ("/stream?output_format=wav_16000", 422),
        ("/stream/with-timestamps?output_format=wav_16000", 422),
    ] {
        let url = format!("/v1/text-to-speech/{VOICE}{path}");
        let r = post(&base, &url, Some("k"), json!({"text": "Hi."})).await;
        assert_eq!(r.status().as_u16(), want, "{path}");
        if want == 422 {
            let (_, detail) = detail(r).await;
            assert_eq!(
                detail.as_array().map(Vec::len),
                Some(1),
                "{path}: one item: {detail}"
            );
            assert_eq!(detail[0]["type"], "literal_error", "{path}: {detail}");
        }
    }

    // The body is JSON only when the content type says so (or says nothing), as FastAPI reads it.
    let (s, _, v) = raw(
        &base,
        reqwest::Method::POST,
        &tts,
        Some("application/x-www-form-urlencoded"),
        "text=Hello",
    )
    .await;
    assert_eq!(
        (s, v),
        (
            422,
            json!({"detail": [{"type": "model_attributes_type", "loc": ["body"], "msg": "Input should be a valid dictionary or object to extract fields from", "input": "text=Hello"}]})
        )
    );
    let (s, _, _) = raw(
        &base,
        reqwest::Method::POST,
        &tts,
        None,
        r#"{"text": "Hi."}"#,
    )
    .await;
    assert_eq!(s, 200, "no content type: read as JSON");
    let (s, _, v) = raw(
        &base,
        reqwest::Method::POST,
        &tts,
        Some("application/json"),
        "",
    )
    .await;
    assert_eq!(
        (s, v),
        (
            422,
            json!({"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": null}]})
        )
    );
    let (s, _, v) = raw(
        &base,
        reqwest::Method::POST,
        &tts,
        Some("application/json"),
        "{\"text\": ",
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(v["detail"][0]["type"], "json_invalid");
    assert_eq!(v["detail"][0]["loc"], json!(["body", 9]));

    // Query parameters are parsed as their schema says; the query's items come first.
    let path =
        format!("/v1/text-to-speech/{VOICE}?enable_logging=maybe&optimize_streaming_latency=abc");
    let (s, _, v) = raw(
        &base,
        reqwest::Method::POST,
        &path,
        Some("application/json"),
        r#"{"text": 3}"#,
    )
    .await;
    assert_eq!(
        (s, v),
        (
            422,
            json!({"detail": [
                {"type": "bool_parsing", "loc": ["query", "enable_logging"], "msg": "Input should be a valid boolean, unable to interpret input", "input": "maybe"},
                {"type": "int_parsing", "loc": ["query", "optimize_streaming_latency"], "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "abc"},
                {"type": "string_type", "loc": ["body", "text"], "msg": "Input should be a valid string", "input": 3},
            ]})
        )
    );
    let path = format!(
        "/v1/text-to-speech/{VOICE}?enable_logging=yes&optimize_streaming_latency=2&output_format=pcm_8000"
    );
    assert_eq!(
        raw(
            &base,
            reqwest::Method::POST,
            &path,
            None,
            r#"{"text": "Hi."}"#
        )
        .await
        .0,
        200
    );

    // The dictionaries' bodies are read alike.
    let dictionaries = "/v1/pronunciation-dictionaries/add-from-rules";
    for (content_type, body, want) in [
        (
            Some("application/json"),
            r#"{"name": "Names"}"#,
            json!({"type": "missing", "loc": ["body", "rules"], "msg": "Field required", "input": null}),
        ),
        (
            Some("text/plain"),
            "name=Names",
            json!({"type": "model_attributes_type", "loc": ["body"], "msg": "Input should be a valid dictionary or object to extract fields from", "input": "name=Names"}),
        ),
    ] {
        let (s, _, v) = raw(
            &base,
            reqwest::Method::POST,
            dictionaries,
            content_type,
            body,
        )
        .await;
        assert_eq!((s, v), (422, json!({"detail": [want]})), "{body}");
    }

    // Every listing reads page_size alike, in pydantic's words.
    for (path, want) in [
        (
            "/v2/voices?page_size=0",
            json!({"type": "greater_than_equal", "loc": ["query", "page_size"], "msg": "Input should be greater than or equal to 1", "input": "0", "ctx": {"ge": 1}}),
        ),
        (
            "/v2/voices?page_size=101",
            json!({"type": "less_than_equal", "loc": ["query", "page_size"], "msg": "Input should be less than or equal to 100", "input": "101", "ctx": {"le": 100}}),
        ),
        (
            "/v1/history?page_size=1001",
            json!({"type": "less_than_equal", "loc": ["query", "page_size"], "msg": "Input should be less than or equal to 1000", "input": "1001", "ctx": {"le": 1000}}),
        ),
        (
            "/v1/pronunciation-dictionaries?page_size=x",
            json!({"type": "int_parsing", "loc": ["query", "page_size"], "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "x"}),
        ),
        (
            "/v2/voices?include_total_count=maybe",
            json!({"type": "bool_parsing", "loc": ["query", "include_total_count"], "msg": "Input should be a valid boolean, unable to interpret input", "input": "maybe"}),
        ),
        (
            "/v1/history?sort_direction=up",
            json!({"type": "literal_error", "loc": ["query", "sort_direction"], "msg": "Input should be 'asc' or 'desc'", "input": "up", "ctx": {"expected": "'asc' or 'desc'"}}),
        ),
    ] {
        let (s, v) = get(&base, path).await;
        assert_eq!((s, v), (422, json!({"detail": [want]})), "{path}");
    }
    emu.stop().await;
}

/// CORS as the API sends it, a browser's preflight answered, FastAPI's 405 body.
#[tokio::test]
async fn cors_preflight_and_method_not_allowed_are_the_apis() {
    let emu = emulator::start(emulator::Config::default()).await.unwrap();
    let base = emu.base_url();
    let tts = format!("/v1/text-to-speech/{VOICE}");
    let r = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}{tts}"))
        .header("origin", "https://example.org")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "xi-api-key, content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert_eq!(h["access-control-allow-headers"], "*");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(h["access-control-max-age"], "600");
    // Success and errors alike carry the CORS headers.
    let (s, h, _) = raw(
        &base,
        reqwest::Method::POST,
        &format!("{tts}?output_format=pcm_8000"),
        None,
        r#"{"text": "Hi."}"#,
    )
    .await;
    assert_eq!(
        (s, &h["access-control-allow-origin"]),
        (200, &"*".parse().unwrap())
    );
    assert!(
        h["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("request-id")
    );
    let (s, h, v) = raw(&base, reqwest::Method::GET, &tts, None, "").await;
    assert_eq!((s, v), (405, json!({"detail": "Method Not Allowed"})));
    assert!(h.contains_key("x-trace-id"));
    assert_eq!(h["access-control-allow-origin"], "*");
    assert_eq!(h["content-type"], "application/json");
    emu.stop().await;
}

/// `/v2/voices` filters as documented, over a catalogue with the account's own voices, and
/// the models' languages as the models page lists them.
#[tokio::test]
async fn voice_filters_and_model_languages_are_the_documented_ones() {
    let emu = emulator::start(emulator::Config::default()).await.unwrap();
    let base = emu.base_url();
    let names = |page: &Value| -> Vec<String> {
        page["voices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, all) = get(&base, "/v2/voices?page_size=100").await;
    let total = all["total_count"].as_u64().unwrap();
    let (_, premade) = get(&base, "/v2/voices?page_size=100&voice_type=default").await;
    let (_, own) = get(&base, "/v2/voices?page_size=100&voice_type=non-default").await;
    let (_, personal) = get(&base, "/v2/voices?page_size=100&voice_type=personal").await;
    assert_eq!(
        premade["total_count"].as_u64().unwrap() + own["total_count"].as_u64().unwrap(),
        total
    );
    assert_eq!(names(&own), names(&personal));
    for v in premade["voices"].as_array().unwrap() {
        assert_eq!(v["category"], "premade");
        assert_eq!(v["is_owner"], false);
    }
    for v in own["voices"].as_array().unwrap() {
        assert_ne!(v["category"], "premade");
        assert_eq!(v["is_owner"], true);
    }
    for (query, want) in [
        ("category=cloned", vec!["My Narrator", "Lucia"]),
        ("category=generated", vec!["Storm Giant"]),
        (
            "category=professional&fine_tuning_state=fine_tuned",
            vec!["Studio Reader"],
        ),
        ("fine_tuning_state=draft", vec!["Draft Reader"]),
        (
            "collection_id=cOlLeCtIoNaUdIoBoOk1",
            vec!["My Narrator", "Storm Giant", "Studio Reader"],
        ),
        ("language=es", vec!["Lucia"]),
        (
            "use_cases=characters_animation&use_cases=conversational",
            vec!["Storm Giant", "Draft Reader"],
        ),
        (
            "voice_type=personal&gender=female",
            vec!["Lucia", "Studio Reader"],
        ),
        (
            "voice_type=personal&age=young&accent=canadian",
            vec!["Draft Reader"],
        ),
        ("search=narrator&voice_type=personal", vec!["My Narrator"]),
        ("voice_type=community", vec![]),
        (
            "voice_type=non-default&sort=created_at_unix&sort_direction=desc&page_size=2",
            vec!["Draft Reader", "Studio Reader"],
        ),
    ] {
        let (s, page) = get(&base, &format!("/v2/voices?{query}")).await;
        assert_eq!(s, 200, "{query}");
        assert_eq!(names(&page), want, "{query}");
    }
    // An account voice speaks.
    let r = post(
        &base,
        "/v1/text-to-speech/cLoNeDnArRaT0r000001?output_format=pcm_8000",
        Some("k"),
        json!({"text": "Hello."}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, page) = get(&base, "/v2/voices?include_total_count=false&page_size=3").await;
    assert_eq!(
        (page["total_count"].as_u64(), page["has_more"].as_bool()),
        (Some(0), Some(true))
    );
    let (s, body) = get(&base, "/v2/voices?next_page_token=bogus").await;
    assert_eq!(
        (s, body["detail"]["status"].as_str()),
        (400, Some("invalid_next_page_token"))
    );
    assert!(
        body["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("emulator's choice")
    );

    // The models page: Multilingual v2's 29 languages in its order, v2.5 adds hu, no and vi,
    // the English models speak English.
    let v2 = [
        "en", "ja", "zh", "de", "hi", "fr", "ko", "pt", "it", "es", "id", "nl", "tr", "fil", "pl",
        "sv", "bg", "ro", "ar", "cs", "el", "fi", "hr", "ms", "sk", "da", "ta", "uk", "ru",
    ];
    let mut v25: Vec<&str> = v2.to_vec();
    v25.extend(["hu", "no", "vi"]);
    let (_, models) = get(&base, "/v1/models").await;
    let languages = |id: &str| -> Vec<String> {
        models
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model_id"] == id)
            .unwrap()["languages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["language_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(languages("eleven_multilingual_v2"), v2);
    assert_eq!(languages("eleven_flash_v2_5"), v25);
    assert_eq!(languages("eleven_turbo_v2_5"), v25);
    assert_eq!(languages("eleven_flash_v2"), ["en"]);
    assert_eq!(languages("eleven_monolingual_v1"), ["en"]);
    emu.stop().await;
}

/// schemathesis, from the vendored OpenAPI description, against every operation the emulator
/// serves (the spec's `DELETE /v1/voices/{voice_id}` is not served): no server error, every
/// response in its schema, invalid data refused, valid data accepted, except the spec's own
/// known gaps in `tests/sdk/schemathesis-known-gaps.json` (statuses it does not declare: the
/// API's documented 400s, 422s for bounds and formats it leaves out; NDJSON declared as JSON).
/// Deterministic generation, 30 examples an operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_beyond_the_specs_known_gaps() {
    let emu = emulator::start(emulator::Config {
        tier: Tier::Business,
        ..Default::default()
    })
    .await
    .unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = root.join("crates/emulator/data/elevenlabs-tts-openapi.json");
    let gaps = root.join("tests/sdk/schemathesis-known-gaps.json");
    let base = emu.base_url();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().to_path_buf();
    let mut command = std::process::Command::new("python3");
    command
        .current_dir(cwd)
        .args([
            "-c",
            "import sys; from schemathesis.cli import schemathesis; sys.argv[0] = 'st'; sys.exit(schemathesis())",
            "run",
        ])
        .arg(spec)
        .args(["--url", &base, "-H", "xi-api-key: k", "--checks"])
        .arg("not_a_server_error,response_schema_conformance,negative_data_rejection,positive_data_acceptance")
        .args(["-n", "30", "-w", "1", "--generation-deterministic", "--no-color"])
        .args(["--exclude-operation-id", "delete_voice", "--baseline"])
        .arg(gaps);
    let stdout = run_checker(
        command,
        "schemathesis (a failure the known gaps do not explain)",
        PIP,
    )
    .await;
    // Not a vacuous run: every served operation tested, many cases each.
    assert!(stdout.contains("Tested: 10"), "{stdout}");
    let generated: u64 = stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_suffix(" passed")?
                .split(" generated")
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    assert!(generated >= 1000, "{generated} cases: {stdout}");
    emu.stop().await;
}
