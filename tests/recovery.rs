//! Never paying twice: requests sent without an answer (a kill -9, a cut delivery, a timeout)
//! are recovered from the speech history instead of being generated again. The oracle is the
//! emulator's own history and request log: every text generated once.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use narrate::emulator::{self, Fault, Faults, HistoryMode};
use serde_json::Value;

use crate::util::*;

/// Four chapters of three requests each: four chains that run side by side.
fn four_chapters(fx: &Fixture, logging: bool) {
    let sentences = [
        "Alice was beginning to get very tired of sitting by her sister on the bank.",
        "Once or twice she had peeped into the book her sister was reading.",
        "It had no pictures or conversations in it, and what is the use of a book?",
    ];
    let mut yaml = format!(
        "output: out/book.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32, enable_logging: {logging}}}\nsegments:\n"
    );
    for c in 1..=4 {
        for (i, s) in sentences.iter().enumerate() {
            yaml.push_str(&format!(
                "  - {{id: c{c}-{i}, chapter: Chapter {c}, text: \"Chapter {c}. {s}\"}}\n"
            ));
        }
    }
    fx.write("book.yaml", &yaml);
}

/// An emulator that cuts every delivery short, each answered after `latency_ms`.
fn every_delivery_cut(latency_ms: u64) -> emulator::Config {
    emulator::Config {
        latency_ms,
        faults: Faults {
            rate: 1.0,
            seed: 1,
            kinds: vec![Fault::Truncated],
        },
        ..Default::default()
    }
}

/// Waits (five seconds at most) until the emulator's count of generations in progress is
/// one `done` accepts.
async fn until_in_flight(fx: &Fixture, done: impl Fn(usize) -> bool) {
    for _ in 0..1000 {
        if done(fx.emu.state.in_flight()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every item of the emulator's speech history, read through its API, every page.
pub(crate) async fn history(fx: &Fixture) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut items = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let mut url = reqwest::Url::parse(&format!("{}/v1/history", fx.base())).unwrap();
        url.query_pairs_mut().append_pair("page_size", "1000");
        if let Some(s) = &start {
            url.query_pairs_mut()
                .append_pair("start_after_history_item_id", s);
        }
        let page: Value = client
            .get(url)
            .header("xi-api-key", "test")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        items.extend(page["history"].as_array().unwrap().iter().cloned());
        if page["has_more"] != true {
            return items;
        }
        start = page["last_history_item_id"].as_str().map(str::to_string);
    }
}

/// How many times each text was generated.
pub(crate) async fn generations(fx: &Fixture) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for item in history(fx).await {
        *counts
            .entry(item["text"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    counts
}

/// The charge of each history item, by id.
async fn generations_by_id(fx: &Fixture) -> HashMap<String, f64> {
    history(fx)
        .await
        .iter()
        .map(|i| {
            let charge = i["character_count_change_to"].as_f64().unwrap()
                - i["character_count_change_from"].as_f64().unwrap();
            (i["history_item_id"].as_str().unwrap().to_string(), charge)
        })
        .collect()
}

fn recovered(report: &Value) -> Vec<Value> {
    report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["requests"].as_array().unwrap().clone())
        .filter(|r| r["recovered"] == true)
        .collect()
}

/// The output and the credits of an uninterrupted run of the same book.
async fn clean_run(logging: bool) -> (Vec<u8>, f64) {
    let fx = Fixture::default().await;
    four_chapters(&fx, logging);
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (fx.read("out/book.mp3"), fx.emu.state.credits_used())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_requests_in_flight_then_a_resume_generates_each_text_once() {
    let (clean, clean_credits) = clean_run(true).await;
    let fx = Fixture::new(emulator::Config {
        latency_ms: 1500,
        ..Default::default()
    })
    .await;
    four_chapters(&fx, true);
    let base = fx.base();
    let mut child = spawn_narrate(
        fx.path(),
        &["book.yaml", "--base-url", &base, "--concurrency", "4"],
        Stdio::null(),
        Stdio::null(),
    );
    // Kill at a controlled point: once at least three requests are being generated.
    let mut in_flight = 0;
    for _ in 0..1000 {
        in_flight = fx.emu.state.in_flight();
        if in_flight >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(in_flight >= 3, "{in_flight} requests in flight");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The generations the killed run started go on to the end on the server.
    until_in_flight(&fx, |n| n == 0).await;
    let journal = std::fs::read_to_string(fx.path().join(".narrate/cache/journal.jsonl")).unwrap();
    assert!(
        journal.lines().count() >= 3,
        "the sends are journaled: {journal}"
    );

    let out = fx.run(&["book.yaml", "--concurrency", "4"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let counts = generations(&fx).await;
    assert_eq!(counts.len(), 12, "{counts:?}");
    assert!(
        counts.values().all(|&n| n == 1),
        "generated twice: {counts:?}"
    );
    assert_eq!(
        fx.emu.state.credits_used(),
        clean_credits,
        "billed / needed = 1"
    );
    assert!(
        fx.read("out/book.mp3") == clean,
        "output differs from an uninterrupted run"
    );
    let report = fx.json("out/book.report.json");
    assert!(report["totals"]["recovered"].as_u64().unwrap() >= in_flight as u64);
    // Each recovered request reports the charge of the lost generation, once.
    let history = generations_by_id(&fx).await;
    for r in recovered(&report) {
        let id = r["history_item_id"].as_str().unwrap();
        assert_eq!(r["credits"].as_f64().unwrap(), history[id], "{r}");
    }
    // The journal is compacted: every send has its answer; only the items taken remain.
    let journal = std::fs::read_to_string(fx.path().join(".narrate/cache/journal.jsonl")).unwrap();
    assert!(
        journal.lines().all(|l| l.contains("\"kind\":\"used\"")),
        "{journal}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_deliveries_and_timeouts_generate_nothing_twice() {
    let (clean, clean_credits) = clean_run(true).await;
    for (name, kinds, extra) in [
        ("cut", vec![Fault::Truncated, Fault::Reset], vec![]),
        (
            "timeout",
            vec![Fault::Slow],
            vec!["--request-timeout", "0.4"],
        ),
    ] {
        let fx = Fixture::new(emulator::Config {
            faults: Faults {
                rate: 0.3,
                seed: 5,
                kinds,
            },
            ..Default::default()
        })
        .await;
        four_chapters(&fx, true);
        let mut args = vec!["book.yaml", "--max-retries", "20"];
        args.extend(extra);
        let out = fx.run(&args).await;
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        let counts = generations(&fx).await;
        assert!(
            counts.values().all(|&n| n == 1),
            "{name}: generated twice: {counts:?}"
        );
        assert_eq!(fx.emu.state.credits_used(), clean_credits, "{name}");
        assert!(fx.read("out/book.mp3") == clean, "{name}: output differs");
        let report = fx.json("out/book.report.json");
        assert!(
            report["totals"]["recovered"].as_u64().unwrap() > 0,
            "{name}"
        );
        assert_eq!(
            report["totals"]["credits"].as_f64().unwrap(),
            clean_credits,
            "{name}: the report counts each credit once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_usable_history_narrate_pays_again_and_says_why() {
    let cases = [
        (HistoryMode::Absent, "not available", true),
        (
            HistoryMode::Format("mp3_44100_128".parse().unwrap()),
            "does not re-encode",
            true,
        ),
        (HistoryMode::Kept, "enable_logging is false", false),
    ];
    for (mode, why, logging) in cases {
        let fx = Fixture::new(emulator::Config {
            faults: Faults {
                rate: 0.3,
                seed: 5,
                kinds: vec![Fault::Truncated],
            },
            history: mode.clone(),
            ..Default::default()
        })
        .await;
        four_chapters(&fx, logging);
        let out = fx.run(&["book.yaml", "--max-retries", "20"]).await;
        assert_eq!(out.status.code(), Some(0), "{mode:?}: {}", stderr(&out));
        let report = fx.json("out/book.report.json");
        assert_eq!(report["totals"]["recovered"], 0, "{mode:?}");
        let notes: Vec<String> = report["segments"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["requests"].as_array().unwrap().clone())
            .filter_map(|r| r["recovery"].as_str().map(str::to_string))
            .collect();
        assert!(!notes.is_empty(), "{mode:?}: the report says why");
        assert!(notes.iter().all(|n| n.contains(why)), "{mode:?}: {notes:?}");
        // Paid again: the cut ones were generated twice (or more).
        let cut = fx
            .tts_log()
            .iter()
            .filter(|e| e["fault"] == "truncated")
            .count();
        assert!(cut > 0);
        assert_eq!(
            report["totals"]["credits"].as_f64().unwrap(),
            fx.emu.state.credits_used(),
            "{mode:?}: every charge is in the report"
        );
        if mode == HistoryMode::Absent {
            let warned = stderr(&out)
                .matches("speech history cannot be read")
                .count();
            assert_eq!(warned, 1, "one warning: {}", stderr(&out));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_job_does_not_take_an_earlier_jobs_history_item() {
    let fx = Fixture::new(every_delivery_cut(0)).await;
    // The same text in two projects, each with its own state directory.
    for project in ["a", "b"] {
        fx.write(
            &format!("{project}/book.yaml"),
            &format!(
                "output: out.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32}}\nsegments:\n  - {{id: s, text: \"The very same sentence, in both books.\"}}\n"
            ),
        );
    }
    let first = fx.run(&["a/book.yaml"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let second = fx.run(&["b/book.yaml"]).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    // Every delivery was cut: each job generated its text once and recovered its own item.
    let posts = fx.tts_log();
    assert_eq!(posts.len(), 2, "one generation each");
    let item_of = |job: &str| {
        let report = fx.json(&format!("{job}/out.report.json"));
        report["segments"][0]["requests"][0]["history_item_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(item_of("a"), posts[0]["history_item_id"].as_str().unwrap());
    assert_eq!(item_of("b"), posts[1]["history_item_id"].as_str().unwrap());
}

#[tokio::test]
async fn the_history_lists_filters_and_pages_as_documented() {
    let fx = Fixture::default().await;
    let client = reqwest::Client::new();
    let post = |text: &'static str, voice: &'static str| {
        let (client, base) = (client.clone(), fx.base());
        async move {
            client
                .post(format!("{base}/v1/text-to-speech/{voice}"))
                .header("xi-api-key", "k")
                .json(&serde_json::json!({"text": text}))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        }
    };
    post("One.", NARRATOR).await;
    post("Two.", ALICE).await;
    post("Three.", NARRATOR).await;
    let zero = client
        .post(format!(
            "{}/v1/text-to-speech/{NARRATOR}?enable_logging=false",
            fx.base()
        ))
        .header("xi-api-key", "k")
        .json(&serde_json::json!({"text": "Not kept."}))
        .send()
        .await
        .unwrap();
    assert_eq!(zero.status(), 200);
    let get = |query: &'static str| {
        let (client, base) = (client.clone(), fx.base());
        async move {
            let r = client
                .get(format!("{base}/v1/history?{query}"))
                .header("xi-api-key", "k")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let texts = |v: &Value| -> Vec<String> {
        v["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["text"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, all) = get("").await;
    assert_eq!(status, 200);
    assert_eq!(texts(&all), ["Three.", "Two.", "One."], "newest first");
    let (_, asc) = get("sort_direction=asc").await;
    assert_eq!(texts(&asc), ["One.", "Two.", "Three."]);
    let (_, narrator) = get("voice_id=JBFqnCBsd6RMkjVDRZzb").await;
    assert_eq!(texts(&narrator), ["Three.", "One."]);
    let (_, page) = get("page_size=2").await;
    assert_eq!(texts(&page), ["Three.", "Two."]);
    assert_eq!(page["has_more"], true);
    let last = page["last_history_item_id"].as_str().unwrap().to_string();
    let (_, rest) = {
        let r = client
            .get(format!(
                "{}/v1/history?page_size=2&start_after_history_item_id={last}",
                fx.base()
            ))
            .header("xi-api-key", "k")
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(texts(&rest), ["One."]);
    assert_eq!(rest["has_more"], false);
    let (_, search) = get("search=two").await;
    assert_eq!(texts(&search), ["Two."]);
    let (_, sts) = get("source=STS").await;
    assert!(texts(&sts).is_empty());
    let (status, too_big) = get("page_size=1001").await;
    assert_eq!(status, 422, "{too_big}");
    let item = &all["history"][0];
    for field in [
        "history_item_id",
        "request_id",
        "date_unix",
        "character_count_change_from",
        "character_count_change_to",
        "content_type",
        "state",
        "voice_id",
        "model_id",
        "voice_name",
        "text",
        "settings",
        "source",
        "output_format",
    ] {
        assert!(!item[field].is_null(), "{field} in {item}");
    }
    assert_eq!(
        item["character_count_change_to"].as_i64().unwrap()
            - item["character_count_change_from"].as_i64().unwrap(),
        6,
        "the item's credits"
    );
    // Unknown ids, without a key.
    let r = client
        .get(format!("{}/v1/history/nope", fx.base()))
        .header("xi-api-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client
        .get(format!("{}/v1/history", fx.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_take_past_the_first_hundred_history_items_is_found_on_a_later_page() {
    // Long texts take long to generate; short ones are quick.
    let fx = Fixture::new(emulator::Config {
        latency_per_char_ms: 4.0,
        ..Default::default()
    })
    .await;
    let text = "Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to do. ".repeat(4);
    fx.write(
        "book.yaml",
        &format!(
            "output: out/book.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32}}\nsegments:\n  - {{id: s, text: \"{}\"}}\n",
            text.trim()
        ),
    );
    let mut child = spawn_narrate(
        fx.path(),
        &["book.yaml", "--base-url", &fx.base()],
        Stdio::null(),
        Stdio::null(),
    );
    until_in_flight(&fx, |n| n > 0).await;
    child.kill().unwrap(); // SIGKILL, the request in flight
    child.wait().unwrap();
    until_in_flight(&fx, |n| n == 0).await;
    // Another job's 120 takes with the same voice and model, newer than the lost one.
    let client = reqwest::Client::new();
    for n in 0..120 {
        let answer = client
            .post(format!("{}/v1/text-to-speech/{NARRATOR}", fx.base()))
            .header("xi-api-key", "other")
            .json(&serde_json::json!({"text": format!("Item {n}."), "model_id": "eleven_multilingual_v2"}))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
    }
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let counts = generations(&fx).await;
    assert_eq!(counts[text.trim()], 1, "the lost take was paid again");
    let report = fx.json("out/book.report.json");
    assert_eq!(report["totals"]["recovered"], 1, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_recovered_but_never_stored_is_its_own_requests_on_the_next_run() {
    // Every delivery is cut, so the audio is recovered from the history. The first run cannot
    // store it: a file stands where each cache folder would go, put there while the text is
    // generated. It stops as if killed between taking the item and storing it.
    let fx = Fixture::new(every_delivery_cut(1500)).await;
    fx.write(
        "book.yaml",
        &format!(
            "output: out.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32}}\nsegments:\n  - {{id: s, text: \"A sentence taken from the history but never stored.\"}}\n"
        ),
    );
    let child = spawn_narrate(
        fx.path(),
        &["book.yaml", "--base-url", &fx.base()],
        Stdio::null(),
        Stdio::piped(),
    );
    until_in_flight(&fx, |n| n > 0).await;
    assert_eq!(fx.emu.state.in_flight(), 1, "the text is being generated");
    let cache = fx.path().join(".narrate/cache");
    let blocks: Vec<_> = (0..=255u8)
        .map(|b| cache.join(format!("{b:02x}")))
        .collect();
    for block in &blocks {
        std::fs::write(block, "").unwrap();
    }
    let first = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_ne!(first.status.code(), Some(0), "{}", stderr(&first));
    let journal = std::fs::read_to_string(cache.join("journal.jsonl")).unwrap();
    assert!(journal.contains("\"kind\":\"used\""), "taken: {journal}");
    for block in &blocks {
        std::fs::remove_file(block).unwrap();
    }
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let posts = fx.tts_log();
    assert_eq!(
        posts.len(),
        1,
        "generated once: the item taken before is this request's own"
    );
    let report = fx.json("out.report.json");
    assert_eq!(
        report["segments"][0]["requests"][0]["history_item_id"],
        posts[0]["history_item_id"]
    );
}
