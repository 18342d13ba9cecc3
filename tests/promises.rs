//! Promises the README makes that need a test of their own: chaining only on whole bodies, the
//! budget with several requests in flight, signals, an unreadable balance, the ten-minute margin
//! before request ids expire, `Retry-After`, a kill during assembly, and flat memory.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use narrate::emulator::{self, Fault, Faults, Tier};
use serde_json::{Value, json};

use crate::util::*;

/// `n` sentences in one chapter (one chain), each its own segment.
fn chapter(fx: &Fixture, name: &str, n: usize, extra: &str) {
    let segments: String = (0..n)
        .map(|i| {
            format!("  - {{id: s{i}, text: \"This is sentence number {i} of the chapter.\"}}\n")
        })
        .collect();
    fx.write(
        name,
        &format!(
            "output: out/{name}.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32{extra}}}\nsegments:\n{segments}"
        ),
    );
}

#[tokio::test]
async fn a_request_id_is_usable_as_context_only_once_its_body_was_read_whole() {
    let fx = Fixture::new(emulator::Config {
        faults: Faults {
            rate: 1.0,
            seed: 1,
            kinds: vec![Fault::Slow],
        },
        ..Default::default()
    })
    .await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/text-to-speech/{NARRATOR}", fx.base());
    let send = |body: Value| {
        client
            .post(&url)
            .header("xi-api-key", "k")
            .json(&body)
            .send()
    };
    // Headers arrive at once; the body takes about a second (20 chunks, 50 ms apart).
    let first = send(json!({"text": "The first sentence, delivered slowly."}))
        .await
        .unwrap();
    let id = first.headers()["request-id"].to_str().unwrap().to_string();
    let early = send(json!({"text": "Chained on headers alone.", "previous_request_ids": [id]}))
        .await
        .unwrap();
    assert_eq!(early.status(), 400, "chaining before the body was read");
    let early: Value = early.json().await.unwrap();
    assert!(
        early["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("has not finished"),
        "{early}"
    );
    first.bytes().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let later = send(json!({"text": "Chained after the body.", "previous_request_ids": [id]}))
        .await
        .unwrap();
    assert_eq!(later.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_holds_with_several_requests_in_flight() {
    let fx = Fixture::new(emulator::Config {
        latency_ms: 100,
        ..Default::default()
    })
    .await;
    // Twelve chapters of one 29-character request each, in Flash v2.5: estimated at 14.5
    // credits, charged 15 (the API rounds up). Twelve chains run side by side.
    let segments: String = (0..12)
        .map(|i| format!("  - {{id: s{i:02}, chapter: C{i:02}, text: \"Independent sentence, no. {i:02}.\"}}\n"))
        .collect();
    fx.write(
        "book.yaml",
        &format!(
            "output: out/book.wav\ndefaults: {{voice_id: {NARRATOR}, model_id: eleven_flash_v2_5, output_format: pcm_16000}}\nsegments:\n{segments}"
        ),
    );
    // 174 estimated fits 175 up front; what is charged (15 each) and reserved for the requests
    // in flight (14.5 each) then allows exactly eleven, however they overlap: the twelfth would
    // make 180.
    let out = fx
        .run(&["book.yaml", "--concurrency", "3", "--max-credits", "175"])
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let sent = fx.tts_log();
    assert_eq!(sent.len(), 11, "exactly what fits was sent");
    assert!(
        sent.iter().any(|e| e["concurrent"].as_u64().unwrap() > 1),
        "requests were in flight together"
    );
    assert_eq!(fx.emu.state.credits_used(), 165.0);
    let report = fx.json("out/book.report.json");
    let refused: Vec<&str> = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["error"]
                .as_str()
                .is_some_and(|e| e.contains("--max-credits"))
        })
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(refused.len(), 1, "the twelfth was refused: {refused:?}");
    let sent_texts: Vec<&str> = sent
        .iter()
        .map(|e| e["body"]["text"].as_str().unwrap())
        .collect();
    let refused_text = format!("Independent sentence, no. {}.", &refused[0][1..]);
    assert!(
        !sent_texts.contains(&refused_text.as_str()),
        "the refused one was not sent"
    );
}

/// Spawns narrate, waits until it has sent its first request (the emulator's log says so), and
/// returns the child.
async fn started(fx: &Fixture, args: &[&str]) -> std::process::Child {
    let child = spawn_narrate(fx.path(), args, Stdio::piped(), Stdio::piped());
    for _ in 0..2000 {
        if fx.emu.state.in_flight() > 0 || !fx.tts_log().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child
}

fn kill(child: &std::process::Child, signal: &str) {
    assert!(
        Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

#[tokio::test]
async fn a_budget_of_exactly_what_the_book_costs_sends_all_of_it() {
    let fx = Fixture::default().await;
    chapter(&fx, "book.yaml", 3, "");
    // Multilingual v2, a credit a character, estimated and charged alike: the last request
    // brings the spent and reserved credits to the limit exactly, which is within it.
    let cost = 3 * "This is sentence number 0 of the chapter.".chars().count();
    let out = fx
        .run(&["book.yaml", "--max-credits", &cost.to_string()])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fx.tts_log().len(), 3);
    assert_eq!(fx.emu.state.credits_used(), cost as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_gently_and_a_second_signal_ends_the_run_with_its_report() {
    let fx = Fixture::new(emulator::Config {
        latency_ms: 3000,
        ..Default::default()
    })
    .await;
    chapter(&fx, "book.yaml", 4, "");
    let base = fx.base();
    let child = started(&fx, &["book.yaml", "--base-url", &base]).await;
    kill(&child, "TERM");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = std::time::Instant::now();
    kill(&child, "TERM");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    // The first signal lets the request in flight finish (3 s); the second does not wait.
    assert!(
        second.elapsed() < Duration::from_millis(2000),
        "{:?}",
        second.elapsed()
    );
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("signal again to stop them now"),
        "{}",
        stderr(&out)
    );
    let report = fx.json("out/book.yaml.report.json");
    assert_eq!(report["interrupted"], true);
    assert!(
        report["segments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "failed"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_signal_unsent_requests_are_not_waited_through_the_limiter() {
    let fx = Fixture::default().await;
    // Forty chapters, forty chains that may all run at once.
    let segments: String = (0..40)
        .map(|i| format!("  - {{id: s{i}, chapter: C{i}, text: \"Sentence {i} of the book.\"}}\n"))
        .collect();
    fx.write(
        "book.yaml",
        &format!(
            "output: out/book.yaml.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32}}\nsegments:\n{segments}"
        ),
    );
    let base = fx.base();
    // One request a second, forty of them: draining the queue would take forty seconds.
    let child = started(
        &fx,
        &[
            "book.yaml",
            "--base-url",
            &base,
            "--rate",
            "1",
            "--concurrency",
            "40",
        ],
    )
    .await;
    let signalled = std::time::Instant::now();
    kill(&child, "TERM");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "{:?}",
        signalled.elapsed()
    );
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let report = fx.json("out/book.yaml.report.json");
    assert_eq!(report["interrupted"], true);
    assert!(fx.tts_log().len() < 10, "{} sent", fx.tts_log().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_are_abandoned_after_the_grace_and_the_report_is_written() {
    let fx = Fixture::new(emulator::Config {
        latency_ms: 60_000,
        ..Default::default()
    })
    .await;
    chapter(&fx, "book.yaml", 2, "");
    let base = fx.base();
    let child = started(&fx, &["book.yaml", "--base-url", &base]).await;
    let signalled = std::time::Instant::now();
    kill(&child, "TERM");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(20),
        "{took:?}"
    );
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let report = fx.json("out/book.yaml.report.json");
    assert_eq!(report["interrupted"], true);
    let errors: Vec<String> = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["error"].as_str().map(str::to_string))
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("abandoned in flight")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn an_unreadable_balance_warns_and_the_render_goes_on() {
    let fx = Fixture::new(emulator::Config {
        subscription_down: true,
        ..Default::default()
    })
    .await;
    chapter(&fx, "book.yaml", 2, "");
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot read the account balance"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fx.tts_log().len(), 2);
}

#[tokio::test]
async fn cached_ids_are_sent_until_ten_minutes_before_they_expire() {
    let fx = Fixture::default().await;
    chapter(&fx, "book.yaml", 3, "");
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cached: Vec<String> = fx
        .tts_log()
        .iter()
        .map(|e| e["request_id"].as_str().unwrap().to_string())
        .collect();
    // Re-render the last segment as if 1 h 49 min had passed (inside the margin: the ids are
    // sent) and as if 1 h 51 min had (past it: text instead, though the API would still take
    // them).
    for (offset, ids_sent) in [("6540", true), ("6660", false)] {
        let before = fx.tts_log().len();
        let out = fx
            .run(&["book.yaml", "--only", "s2", "--clock-offset-secs", offset])
            .await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let body = &fx.tts_log()[before]["body"];
        if ids_sent {
            assert_eq!(
                body["previous_request_ids"],
                json!([cached[0], cached[1]]),
                "{offset}"
            );
        } else {
            assert!(
                body.get("previous_request_ids").is_none(),
                "{offset}: {body}"
            );
            assert_eq!(
                body["previous_text"],
                "This is sentence number 1 of the chapter."
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_waited_for() {
    let fx = Fixture::new(emulator::Config {
        faults: Faults {
            rate: 0.5,
            seed: 3,
            kinds: vec![Fault::BusyRetryAfter],
        },
        ..Default::default()
    })
    .await;
    chapter(&fx, "book.yaml", 4, "");
    let out = fx.run(&["book.yaml", "--max-retries", "10"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = fx.tts_log();
    let mut gaps = Vec::new();
    for (i, e) in log.iter().enumerate() {
        if e["status"] != 429 {
            continue;
        }
        let text = &e["body"]["text"];
        let next = log[i + 1..]
            .iter()
            .find(|n| n["body"]["text"] == *text)
            .unwrap();
        gaps.push(next["time"].as_f64().unwrap() - e["time"].as_f64().unwrap());
    }
    assert!(!gaps.is_empty(), "some answers asked to wait");
    // `Retry-After: 1`, measured between the 429 and the next attempt in the emulator's log.
    assert!(gaps.iter().all(|&g| g >= 0.95), "{gaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_assembly_leaves_the_old_output_and_nothing_half_written() {
    let fx = Fixture::default().await;
    // Long pauses make assembly last long enough to be caught in the act.
    let segments: String = (0..4)
        .map(|i| format!("  - {{id: s{i}, text: \"Sentence {i}.\"}}\n"))
        .collect();
    fx.write(
        "book.yaml",
        &format!(
            "output: out/book.wav\ndefaults: {{voice_id: {NARRATOR}, model_id: eleven_v3, output_format: pcm_16000, pause_after_ms: 300000}}\nsegments:\n{segments}"
        ),
    );
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let clean = fx.read("out/book.wav");
    std::fs::write(fx.path().join("out/book.wav"), "the previous output").unwrap();
    let base = fx.base();
    let mut child = spawn_narrate(
        fx.path(),
        &["book.yaml", "--base-url", &base, "-v"],
        Stdio::null(),
        Stdio::piped(),
    );
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let assembling = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("assembling"));
    assert!(assembling, "assembly started");
    child.kill().unwrap(); // SIGKILL, mid-assembly
    child.wait().unwrap();
    assert_eq!(
        std::fs::read_to_string(fx.path().join("out/book.wav")).unwrap(),
        "the previous output"
    );
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = fx.json("out/book.report.json");
    assert_eq!(
        report["totals"]["cache_hits"], 4,
        "every request resumed from the cache"
    );
    assert!(fx.read("out/book.wav") == clean);
    let parts = part_files(fx.path());
    assert!(
        parts.is_empty(),
        "the killed run's temporary file is gone: {parts:?}"
    );
}

/// Peak resident memory (MB) of a narrate run that must succeed.
async fn peak_rss(fx: &Fixture, args: Vec<String>) -> f64 {
    let (out, peak) = run_measured(fx.path(), args).await;
    assert!(out.status.success(), "{}", stderr(&out));
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_as_the_book_grows() {
    let fx = Fixture::new(emulator::Config {
        tier: Tier::Business,
        ..Default::default()
    })
    .await;
    let book = |name: &str, n: usize| {
        let segments: String = (0..n)
            .map(|i| format!("  - {{id: s{i}, chapter: C{}, text: \"Sentence number {i} of a long book, read at an even pace.\"}}\n", i / 20))
            .collect();
        fx.write(
            name,
            &format!(
                "output: out/{name}.wav\ndefaults: {{voice_id: {NARRATOR}, model_id: eleven_v3, output_format: pcm_24000}}\nsegments:\n{segments}"
            ),
        );
    };
    book("short.yaml", 10);
    book("long.yaml", 300);
    let base = fx.base();
    for name in ["short.yaml", "long.yaml"] {
        let out = fx.run(&[name, "--rate", "1000"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    // From the cache: decoding and writing 30 times more audio takes no more memory.
    let args = |name: &str| {
        vec![
            name.to_string(),
            "--base-url".into(),
            base.clone(),
            "--loudness".into(),
        ]
    };
    let short = peak_rss(&fx, args("short.yaml")).await;
    let long = peak_rss(&fx, args("long.yaml")).await;
    assert!(
        long < short + 25.0,
        "peak RSS {short:.0} MB for 10 segments, {long:.0} MB for 300"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_exponentially_with_full_jitter() {
    // Every attempt fails with a 500: each request is tried 1 + 4 times, and the gaps between
    // its attempts in the emulator's log are the backoff waits. Three runs of three requests
    // (narrate stops a run after 20 failed attempts in a row) give nine waits per retry.
    let fx = Fixture::new(emulator::Config {
        faults: Faults {
            rate: 1.0,
            seed: 1,
            kinds: vec![Fault::Internal],
        },
        ..Default::default()
    })
    .await;
    let base = fx.base();
    let mut gaps = vec![Vec::new(); 4];
    for run in 0..3 {
        let segments: String = (0..3)
            .map(|i| {
                format!("  - {{id: s{i}, chapter: c{i}, text: \"Run {run}, sentence {i}.\"}}\n")
            })
            .collect();
        fx.write(
            "book.yaml",
            &format!(
                "output: out/book.mp3\ndefaults: {{voice_id: {NARRATOR}}}\nsegments:\n{segments}"
            ),
        );
        let out = narrate(
            fx.path(),
            &[
                "book.yaml",
                "--base-url",
                &base,
                "--retry-base-ms",
                "200",
                "--concurrency",
                "3",
                "--rate",
                "100",
            ],
            &[("ELEVENLABS_API_KEY", SECRET_KEY)],
        )
        .await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "every request fails: {}",
            stderr(&out)
        );
        let log = fx.tts_log();
        for i in 0..3 {
            let text = format!("Run {run}, sentence {i}.");
            let times: Vec<f64> = log
                .iter()
                .filter(|e| e["body"]["text"] == text.as_str())
                .map(|e| e["time"].as_f64().unwrap())
                .collect();
            assert_eq!(times.len(), 5, "1 + 4 retries of {text:?}");
            for k in 0..4 {
                gaps[k].push(times[k + 1] - times[k]);
            }
        }
    }
    // Full jitter: retry k waits less than base × 2^(k-1) (plus the time an attempt takes)...
    let slack = 0.25;
    for (k, g) in gaps.iter().enumerate() {
        let cap = 0.2 * f64::from(1u32 << k) + slack;
        assert!(
            g.iter().all(|&x| x < cap),
            "retry {}: {g:?} (cap {cap} s)",
            k + 1
        );
    }
    // ...and the waits grow: some fourth retry waited longer than any first retry may.
    let longest = gaps[3].iter().copied().fold(0.0, f64::max);
    assert!(longest > 0.2 + slack, "fourth retries: {:?}", gaps[3]);
}
