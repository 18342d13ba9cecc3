//! Which take of the speech history a lost send may recover: its own (even when a killed run
//! claimed it and died before storing it), never another request's, and never one older than
//! the send. The journal is written as a run would have left it; the emulator's history is the
//! oracle of what was generated.

use serde_json::{Value, json};
use sha2::Digest as _;

use crate::recovery::{generations, history};
use crate::util::*;

const TEXT: &str = "The Queen of Hearts, she made some tarts, all on a summer day.";

/// A run's outcome after a lost send of the book's one request, journaled at `sent_unix`, with
/// the history's take of it claimed by `claimed_by` (a request key) if any: (recovered, times
/// the text was generated).
async fn after_a_lost_send(
    sent_unix: impl Fn(f64) -> f64,
    claimed_by: Option<&str>,
) -> (u64, usize) {
    let fx = Fixture::default().await;
    fx.write(
        "book.yaml",
        &format!(
            "output: out/book.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32}}\nsegments:\n  - {{id: a, text: \"{TEXT}\"}}\n"
        ),
    );
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The answer is gone from the cache, as if it had never arrived.
    let cache = fx.path().join(".narrate/cache");
    let entry = files_under(&cache)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "audio"))
        .unwrap();
    let key = entry.file_stem().unwrap().to_string_lossy().to_string();
    for ext in ["audio", "json"] {
        std::fs::remove_file(entry.with_extension(ext)).unwrap();
    }
    let items = history(&fx).await;
    assert_eq!(items.len(), 1);
    let item = items[0]["history_item_id"].as_str().unwrap().to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut lines = vec![json!({"kind": "sent", "key": key, "voice_id": NARRATOR,
        "model_id": "eleven_multilingual_v2", "output_format": "mp3_22050_32",
        "text_sha256": sha2::Sha256::digest(TEXT.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        "sent_unix": sent_unix(now)})];
    if let Some(owner) = claimed_by {
        let owner = if owner == "self" { key.as_str() } else { owner };
        lines.push(json!({"kind": "used", "key": owner, "history_item_id": item, "at_unix": now}));
    }
    let journal: String = lines.iter().map(|l: &Value| format!("{l}\n")).collect();
    std::fs::write(cache.join("journal.jsonl"), journal).unwrap();

    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = fx.json("out/book.report.json");
    let recovered = report["totals"]["recovered"].as_u64().unwrap();
    (recovered, generations(&fx).await[TEXT])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_claimed_by_this_request_before_a_kill_is_recovered_not_paid_again() {
    let (recovered, generated) = after_a_lost_send(|now| now - 5.0, Some("self")).await;
    assert_eq!((recovered, generated), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_another_request_claimed_is_never_taken_twice() {
    let other = "ee".repeat(32);
    let (recovered, generated) = after_a_lost_send(|now| now - 5.0, Some(&other)).await;
    assert_eq!((recovered, generated), (0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_older_than_the_send_is_not_the_send_s_even_of_the_same_text() {
    // The history's take is an hour older than the lost send (yesterday's, another job's):
    // only takes from 30 s before the send on may be its own.
    let (recovered, generated) = after_a_lost_send(|now| now + 3600.0, None).await;
    assert_eq!((recovered, generated), (0, 2));
    // Within the 30 s of clock skew, it is.
    let (recovered, generated) = after_a_lost_send(|now| now + 20.0, None).await;
    assert_eq!((recovered, generated), (1, 1));
}
