//! Faults, budgets, locks, signals and crashes: narrate finishes what can be finished, pays once
//! for each response it received, and leaves a state a rerun completes from.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use narrate::emulator::{self, Fault, Faults, Tier};
use serde_json::Value;

use crate::util::*;

/// A narrator chain split into about ten requests, plus an `eleven_v3` chain of three.
fn small_book(dir: &Path, output: &str) {
    let long = "Alice was beginning to get very tired of sitting by her sister on the bank. \
        Once or twice she had peeped into the book her sister was reading. \
        It had no pictures or conversations in it. \
        And what is the use of a book, thought Alice, without pictures or conversations? \
        So she was considering in her own mind, as well as she could, for the hot day made her feel very sleepy. \
        Whether the pleasure of making a daisy-chain would be worth the trouble of getting up. \
        Suddenly a White Rabbit with pink eyes ran close by her.";
    write(
        dir,
        "book.yaml",
        &format!(
            "output: {output}\nlead_in_ms: 100\ntail_ms: 200\ndefaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: mp3_22050_32, max_request_chars: 80}}\nsegments:\n  - {{id: a, chapter: One, text: \"{long}\"}}\n  - {{id: b, chapter: One, model_id: eleven_v3, text: \"There was nothing so very remarkable in that. Nor did Alice think it so very much out of the way. Oh dear, I shall be late.\"}}\n"
        ),
    );
}

/// An emulator configuration that injects `kinds` of faults into a share `rate` of requests.
fn faulty(rate: f64, seed: u64, kinds: Vec<Fault>) -> emulator::Config {
    emulator::Config {
        faults: Faults { rate, seed, kinds },
        ..Default::default()
    }
}

/// The output of a clean run, for comparison.
async fn clean_output() -> Vec<u8> {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    small_book(dir.path(), "out/book.mp3");
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::read(dir.path().join("out/book.mp3")).unwrap()
}

/// Waits until `done` holds, polling; a minute without it fails the test (a hung run), but no
/// shorter clock decides anything.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: not seen in a minute"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn delivered(entry: &Value) -> bool {
    entry["status"] == 200 && !matches!(entry["fault"].as_str(), Some("reset" | "truncated"))
}

/// Each distinct request (voice, body text) was delivered in full at most `max` times, and no
/// request id whose body was cut was ever sent as context, unless its audio was then delivered
/// in full from the speech history. `log` is the whole request log.
fn assert_paid_once(log: &[Value], max: usize) {
    let mut counts: HashMap<(String, String), usize> = HashMap::new();
    let mut cut = HashSet::new();
    // Cut deliveries recovered from the history were delivered in full there.
    let fetched: HashSet<&str> = log
        .iter()
        .filter_map(|e| e["path"].as_str())
        .filter_map(|p| p.strip_prefix("/v1/history/")?.strip_suffix("/audio"))
        .collect();
    for e in log.iter().filter(|e| e["method"] == "POST") {
        if delivered(e) {
            let key = (
                e["voice_id"].as_str().unwrap().to_string(),
                e["body"]["text"].as_str().unwrap().to_string(),
            );
            *counts.entry(key).or_default() += 1;
        } else if let Some(id) = e["request_id"].as_str()
            && !e["history_item_id"]
                .as_str()
                .is_some_and(|h| fetched.contains(h))
        {
            cut.insert(id.to_string());
        }
    }
    for (key, n) in &counts {
        assert!(*n <= max, "{key:?} was delivered {n} times");
    }
    for e in log {
        for id in e["body"]["previous_request_ids"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(
                !cut.contains(id.as_str().unwrap()),
                "an id whose body was cut (and not recovered) was chained: {id}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_kind_alone_and_all_mixed_give_the_clean_output() {
    let clean = clean_output().await;
    let kinds: Vec<(&str, Vec<Fault>, f64)> = vec![
        ("busy", vec![Fault::Busy], 0.4),
        ("busy-retry-after", vec![Fault::BusyRetryAfter], 0.15),
        ("500", vec![Fault::Internal], 0.4),
        ("503", vec![Fault::UnavailableHtml], 0.4),
        ("reset", vec![Fault::Reset], 0.4),
        ("truncated", vec![Fault::Truncated], 0.4),
        ("slow", vec![Fault::Slow], 0.3),
        (
            "mixed",
            vec![
                Fault::Busy,
                Fault::Internal,
                Fault::UnavailableHtml,
                Fault::Reset,
                Fault::Truncated,
                Fault::Slow,
            ],
            0.6,
        ),
    ];
    for (name, faults, rate) in kinds {
        let dir = tempfile::tempdir().unwrap();
        let config = faulty(rate, 11, faults);
        let emu = emulator_in(dir.path(), config).await;
        small_book(dir.path(), "out/book.mp3");
        let out = run_against(
            dir.path(),
            &emu.base_url(),
            &["book.yaml", "--max-retries", "20"],
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        let output = std::fs::read(dir.path().join("out/book.mp3")).unwrap();
        assert!(output == clean, "{name}: output differs from a clean run");
        let log = tts_log(dir.path());
        assert!(
            log.iter().any(|e| !delivered(e) || e["fault"].is_string()),
            "{name}: a fault was injected"
        );
        assert_paid_once(&request_log(dir.path()), 1);
        let report = read_json(&dir.path().join("out/book.report.json"));
        assert!(
            report["totals"]["retries"].as_u64().unwrap() > 0
                || report["totals"]["recovered"].as_u64().unwrap() > 0
                || name == "slow",
            "{name}: retried, or recovered from the history"
        );
        emu.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timeout_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let config = faulty(0.3, 3, vec![Fault::Slow]);
    let emu = emulator_in(dir.path(), config).await;
    small_book(dir.path(), "out/book.mp3");
    let out = run_against(
        dir.path(),
        &emu.base_url(),
        &[
            "book.yaml",
            "--request-timeout",
            "0.4",
            "--max-retries",
            "20",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_json(&dir.path().join("out/book.report.json"));
    let statuses = all_statuses(&report);
    assert!(
        statuses.contains(&0),
        "a timed-out attempt is recorded with no status: {statuses:?}"
    );
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_controlled_points_then_a_rerun_completes_identically() {
    let clean = clean_output().await;
    let fx = Fixture::new(emulator::Config {
        latency_ms: 25,
        ..Default::default()
    })
    .await;
    small_book(fx.path(), "out/book.mp3");
    let base = fx.base();
    // Killed after 2, then after 6 complete deliveries (counted in the emulator's log, not
    // guessed from the clock).
    for deliveries in [2usize, 6] {
        let mut child = spawn_narrate(
            fx.path(),
            &["book.yaml", "--base-url", &base, "--concurrency", "2"],
            std::process::Stdio::null(),
            std::process::Stdio::null(),
        );
        // The condition decides when, never a timer: on a loaded machine the run may take
        // seconds to start (a cap that killed it early made this test fail now and then).
        wait_until("deliveries", || {
            fx.tts_log().iter().filter(|e| delivered(e)).count() >= deliveries
        })
        .await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    // What the killed runs stored (an answer delivered but not yet written when the kill came
    // is not there, and is recovered or sent again instead).
    // An entry is complete once its metadata is written, after its audio.
    let stored = crate::util::files_under(&fx.path().join(".narrate/cache"))
        .iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            let folder = p.parent().unwrap().file_name().unwrap().len();
            folder == 2 && name.len() == 64 + ".json".len() && name.ends_with(".json")
        })
        .count();
    let out = fx.run(&["book.yaml", "--concurrency", "2"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = fx.json("out/book.report.json");
    let requests = report["totals"]["requests"].as_u64().unwrap() as usize;
    let cached = report["totals"]["cache_hits"].as_u64().unwrap() as usize;
    let recovered = report["totals"]["recovered"].as_u64().unwrap() as usize;
    let sent: usize = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["requests"].as_array().unwrap().clone())
        .filter(|r| r["cached"] == false && r["recovered"] == false)
        .count();
    assert_eq!(cached + recovered + sent, requests);
    let parts = part_files(fx.path());
    assert!(
        parts.is_empty(),
        "the killed runs' temporary files are gone: {parts:?}"
    );
    assert!(stored >= 1, "the killed runs stored answers");
    assert_eq!(
        cached, stored,
        "every answer the killed runs stored is reused, and only those"
    );
    assert!(fx.read("out/book.mp3") == clean);
    // Nothing was generated twice: every delivered or cut generation is one request's.
    let log = fx.tts_log();
    let generated = log.iter().filter(|e| e["status"] == 200).count();
    assert_eq!(
        generated, requests,
        "each request generated once across the kills"
    );
    // And a final rerun sends nothing.
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(fx.tts_log().len(), log.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_cleanly_and_the_report_says_interrupted() {
    let clean = clean_output().await;
    let dir = tempfile::tempdir().unwrap();
    let config = emulator::Config {
        latency_ms: 60,
        ..Default::default()
    };
    let emu = emulator_in(dir.path(), config).await;
    small_book(dir.path(), "out/book.mp3");
    let child = spawn_narrate(
        dir.path(),
        &[
            "book.yaml",
            "--base-url",
            &emu.base_url(),
            "--concurrency",
            "1",
        ],
        std::process::Stdio::piped(),
        std::process::Stdio::piped(),
    );
    // Wait for the first responses (however long the start takes), then interrupt.
    wait_until("two requests", || tts_log(dir.path()).len() >= 2).await;
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("interrupted"), "{}", stdout(&out));
    let report = read_json(&dir.path().join("out/book.report.json"));
    assert_eq!(report["interrupted"], true);
    assert_eq!(report["status"], "failed");
    assert!(!dir.path().join("out/book.mp3").exists());
    let out = run_against(dir.path(), &emu.base_url(), &["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(std::fs::read(dir.path().join("out/book.mp3")).unwrap() == clean);
    assert_paid_once(&request_log(dir.path()), 1);
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_running_out_mid_run_stops_it_and_a_rerun_finishes() {
    // One chain sent in order; what each request costs is learned from a first emulator, and a
    // second one has credits for exactly the first three: no race with a timer.
    let book = |dir: &Path| {
        small_book(dir, "out/book.mp3");
        let yaml = std::fs::read_to_string(dir.join("book.yaml")).unwrap();
        let one_chain: String = yaml
            .lines()
            .filter(|l| !l.contains("id: b,"))
            .map(|l| format!("{l}\n"))
            .collect();
        write(dir, "book.yaml", &one_chain);
    };
    let learn = Fixture::default().await;
    book(learn.path());
    let out = learn.run(&["book.yaml", "--concurrency", "1"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let costs: Vec<f64> = learn
        .tts_log()
        .iter()
        .map(|e| e["character_cost"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(costs.len() >= 5, "{costs:?}");
    let three: f64 = costs[..3].iter().sum();

    let dir = tempfile::tempdir().unwrap();
    // The balance cannot be read (narrate warns and goes on), so the quota shows mid-run.
    let config = emulator::Config {
        character_limit: three as u64,
        subscription_down: true,
        ..Default::default()
    };
    let emu = emulator_in(dir.path(), config).await;
    book(dir.path());
    let base = emu.base_url();
    let out = run_against(dir.path(), &base, &["book.yaml", "--concurrency", "1"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("quota_exceeded"), "{}", stderr(&out));
    let statuses: Vec<u64> = tts_log(dir.path())
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 401],
        "three fit, the fourth is refused and the run stops"
    );
    let report = read_json(&dir.path().join("out/book.report.json"));
    let ok = report["segments"][0]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["request_id"].is_string())
        .count();
    assert_eq!(ok, 3, "what was rendered before the quota ran out is kept");

    emu.state.set_character_limit(10_000_000);
    let out = run_against(dir.path(), &base, &["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        tts_log(dir.path()).len(),
        4 + costs.len() - 3,
        "the rerun sends only the rest"
    );
    assert_paid_once(&request_log(dir.path()), 1);
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_concurrency_below_the_flag_lowers_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let config = emulator::Config {
        tier: Tier::Free,
        latency_ms: 60,
        ..Default::default()
    };
    let emu = emulator_in(dir.path(), config).await;
    // All in eleven_v3: no ids, so every request can run at once.
    let texts: Vec<String> = (0..12)
        .map(|i| format!("  - {{id: s{i}, text: \"Sentence number {i} of the test.\"}}"))
        .collect();
    write(
        dir.path(),
        "book.yaml",
        &format!(
            "output: out/book.wav\ndefaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb, model_id: eleven_v3, output_format: pcm_16000}}\nsegments:\n{}\n",
            texts.join("\n")
        ),
    );
    let out = run_against(
        dir.path(),
        &emu.base_url(),
        &["book.yaml", "--concurrency", "8", "--max-retries", "30"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = tts_log(dir.path());
    let rejected = log.iter().filter(|e| e["status"] == 429).count();
    assert!(rejected > 0, "the account's limit of 2 was hit");
    assert!(
        rejected < 12,
        "the cap came down instead of hammering: {rejected} rejections"
    );
    // Each concurrency 429 halves the cap (8, 4, 2, 1), and a retry is sent only after its
    // own 429 was answered: an attempt that follows k rejections of its text was sent under a
    // cap of at most 8 >> k, so the emulator found at most that many in flight when it came,
    // whether it was answered or refused (a retry's log line follows the rejections before
    // it). Order, not the clock.
    let mut rejections: std::collections::HashMap<String, u32> = Default::default();
    let mut judged = 0;
    for entry in &log {
        let text = entry["body"]["text"].as_str().unwrap().to_string();
        let before = rejections.get(&text).copied().unwrap_or(0);
        let in_flight = entry["concurrent"].as_u64().unwrap();
        let cap = (8u64 >> before.min(3)).max(1);
        assert!(
            in_flight <= cap,
            "{text:?} was sent after {before} rejections of its own (a cap of at most {cap}) and found {in_flight} in flight: {log:?}"
        );
        judged += u32::from(before >= 1);
        if entry["status"] == 429 {
            rejections.insert(text, before + 1);
        }
    }
    assert!(judged > 0, "no refused request was sent again: {log:?}");
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_manifests_share_one_cap() {
    let dir = tempfile::tempdir().unwrap();
    let config = emulator::Config {
        tier: Tier::Free,
        latency_ms: 50,
        ..Default::default()
    };
    let emu = emulator_in(dir.path(), config).await;
    for name in ["a", "b"] {
        let texts: Vec<String> = (0..5)
            .map(|i| format!("  - {{id: s{i}, text: \"Manifest {name}, line {i}.\"}}"))
            .collect();
        write(
            dir.path(),
            &format!("{name}.yaml"),
            &format!(
                "output: out/{name}.wav\ndefaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb, model_id: eleven_v3, output_format: pcm_16000}}\nsegments:\n{}\n",
                texts.join("\n")
            ),
        );
    }
    let out = narrate(
        dir.path(),
        &[
            "a.yaml",
            "b.yaml",
            "--base-url",
            &emu.base_url(),
            "--concurrency",
            "2",
        ],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(dir.path().join("out/a.wav").exists() && dir.path().join("out/b.wav").exists());
    let log = tts_log(dir.path());
    assert_eq!(log.len(), 10);
    assert!(
        log.iter().all(|e| e["status"] == 200),
        "one cap of 2 across both manifests never exceeds the account's 2"
    );
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_balance_and_the_state_lock() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator_in(
        dir.path(),
        emulator::Config {
            character_limit: 500,
            ..Default::default()
        },
    )
    .await;
    small_book(dir.path(), "out/book.mp3");
    let base = emu.base_url();

    // Larger than the account's balance: refused before sending, naming both numbers.
    let out = run_against(dir.path(), &base, &["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("500 credits remaining") && err.contains("needs about"),
        "{err}"
    );
    // Above --max-credits: refused too.
    emu.state.set_character_limit(1_000_000);
    let over = run_against(dir.path(), &base, &["book.yaml", "--max-credits", "100"]).await;
    assert_eq!(over.status.code(), Some(2));
    assert!(
        stderr(&over).contains("--max-credits 100"),
        "{}",
        stderr(&over)
    );
    assert!(tts_log(dir.path()).is_empty(), "nothing sent");

    // Another run holds the state directory: refused with a clear message.
    let lock = narrate::state::lock_state_dir(&dir.path().join(".narrate")).unwrap();
    let out = run_against(dir.path(), &base, &["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(5), "the lock's own status");
    assert!(
        stderr(&out).contains("another narrate run"),
        "{}",
        stderr(&out)
    );
    drop(lock);
    let out = run_against(dir.path(), &base, &["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The refusal's figures were what the run then cost: both models charge a credit a
    // character, so the emulator's charge is the credits and the characters alike.
    let charged = emu.state.credits_used();
    let needs = format!(
        "needs about {charged} credits for {} uncached requests ({charged} characters)",
        tts_log(dir.path()).len()
    );
    assert!(stderr(&over).contains(&needs), "{needs}: {}", stderr(&over));
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_credits_stops_sending_when_actual_costs_pass_it() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    // Flash is charged half a credit a character, rounded up per request: odd lengths cost a
    // little more than the estimate, so a budget of exactly the estimate runs out.
    let texts: Vec<String> = (0..6)
        .map(|i| format!("  - {{id: s{i}, text: \"Line {i} is odd..\"}}"))
        .collect();
    write(
        dir.path(),
        "book.yaml",
        &format!(
            "output: out/book.wav\ndefaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb, model_id: eleven_flash_v2_5, output_format: pcm_16000}}\nsegments:\n{}\n",
            texts.join("\n")
        ),
    );
    let estimate = 6.0 * 15.0 * 0.5;
    let out = fx
        .run(&[
            "book.yaml",
            "--max-credits",
            &estimate.to_string(),
            "--concurrency",
            "1",
        ])
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let report = read_json(&dir.path().join("out/book.report.json"));
    let spent = report["totals"]["credits"].as_f64().unwrap();
    assert!(spent <= estimate, "spent {spent} of a budget of {estimate}");
    assert!(stderr(&out).contains("--max-credits"), "{}", stderr(&out));
    assert_eq!(fx.emu.state.credits_used(), spent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_api_trips_the_circuit_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let config = faulty(1.0, 5, vec![Fault::Internal]);
    let emu = emulator_in(dir.path(), config).await;
    small_book(dir.path(), "out/book.mp3");
    let out = run_against(
        dir.path(),
        &emu.base_url(),
        &["book.yaml", "--max-retries", "100", "--concurrency", "1"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("failed 20 attempts in a row"),
        "{}",
        stderr(&out)
    );
    // One at a time, so nothing else is in flight when the twentieth fails.
    let sent = tts_log(dir.path()).len();
    assert_eq!(sent, 20, "the run stops at the 20th failure in a row");
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_survive_faults_in_the_body() {
    // The same book through /with-timestamps, clean and with every fault at 60%: the same
    // audio and the same word-timed captions, each answer paid once.
    let mut results = Vec::new();
    for rate in [0.0, 0.6] {
        let dir = tempfile::tempdir().unwrap();
        let config = faulty(
            rate,
            5,
            vec![
                Fault::Busy,
                Fault::Internal,
                Fault::Reset,
                Fault::Truncated,
                Fault::Slow,
            ],
        );
        let emu = emulator_in(dir.path(), config).await;
        small_book(dir.path(), "out/book.mp3");
        let out = run_against(
            dir.path(),
            &emu.base_url(),
            &["book.yaml", "--max-retries", "20", "--timestamps"],
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let log = tts_log(dir.path());
        assert!(
            log.iter()
                .all(|e| e["path"].as_str().unwrap().ends_with("/with-timestamps"))
        );
        if rate > 0.0 {
            assert!(
                log.iter()
                    .any(|e| e["fault"] == "truncated" || e["fault"] == "reset"),
                "a body was cut"
            );
        }
        assert_paid_once(&request_log(dir.path()), 1);
        results.push((
            std::fs::read(dir.path().join("out/book.mp3")).unwrap(),
            std::fs::read_to_string(dir.path().join("out/book.vtt")).unwrap(),
        ));
        emu.stop().await;
    }
    assert!(results[0].0 == results[1].0, "the audio differs");
    assert_eq!(results[0].1, results[1].1);
    assert!(
        results[0].1.matches(" --> ").count() > 4,
        "word-timed cues: {}",
        results[0].1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_concurrency_follows_the_accounts_maximum() {
    // A Scale account allows 15 at once: auto starts at 2 and grows towards it.
    let fx = Fixture::new(emulator::Config {
        tier: Tier::Scale,
        latency_ms: 120,
        ..Default::default()
    })
    .await;
    let texts: Vec<String> = (0..40)
        .map(|i| format!("  - {{id: s{i}, text: \"Sentence number {i} of the test.\"}}"))
        .collect();
    fx.write(
        "book.yaml",
        &format!(
            "output: out/book.wav\ndefaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb, model_id: eleven_v3, output_format: pcm_16000}}\nsegments:\n{}\n",
            texts.join("\n")
        ),
    );
    let out = fx.run(&["book.yaml", "--rate", "1000"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = fx.tts_log();
    assert!(
        log.iter().all(|e| e["status"] == 200),
        "no 429 on the way up"
    );
    let peak = log
        .iter()
        .map(|e| e["concurrent"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(peak > 2, "auto grew past its start: {peak} at once");
    assert!(peak <= 15, "never past the account's maximum: {peak}");
    // Growth follows answers: before the first answer was made, at most the starting two had
    // been sent (the emulator counts the answers made before each arrival).
    let unanswered: Vec<u64> = log
        .iter()
        .filter(|e| e["answered_before"] == 0)
        .map(|e| e["concurrent"].as_u64().unwrap())
        .collect();
    assert!(
        !unanswered.is_empty() && unanswered.len() <= 2,
        "it starts low: {} sent before any answer",
        unanswered.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_chain_starts_in_the_first_wave_wherever_it_is_listed() {
    // 36 requests in 7 chains, 4 slots, the 12-request chain listed last: it bounds the run, so
    // it must take one of the first four slots, not wait for a freed one. The emulator answers
    // nothing until four requests have come, so the first wave is the requests sent before any
    // answer, whatever the machine's load.
    let fx = Fixture::new(emulator::Config {
        hold_answers_until: 4,
        ..Default::default()
    })
    .await;
    let mut segments = String::new();
    for c in 0..6 {
        for i in 0..4 {
            segments.push_str(&format!(
                "  - {{id: c{c}s{i}, chapter: short{c}, text: \"Short chain {c}, sentence {i}.\"}}\n"
            ));
        }
    }
    for i in 0..12 {
        segments.push_str(&format!(
            "  - {{id: longs{i}, chapter: long, text: \"The long chain, sentence {i}.\"}}\n"
        ));
    }
    fx.write(
        "book.yaml",
        &format!("output: out/book.mp3\ndefaults: {{voice_id: {NARRATOR}}}\nsegments:\n{segments}"),
    );
    let out = fx
        .run(&["book.yaml", "--concurrency", "4", "--rate", "100"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = fx.tts_log();
    assert_eq!(log.len(), 36);
    let first_wave: Vec<&str> = log
        .iter()
        .filter(|e| e["answered_before"] == 0)
        .map(|e| e["body"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(first_wave.len(), 4, "four slots: {first_wave:?}");
    assert!(
        first_wave.contains(&"The long chain, sentence 0."),
        "sent before any answer: {first_wave:?}"
    );
}

/// The texts sent, in order, for a book of two chains under one slot: a (`a1`, then `a2`) and
/// b (`b1`).
async fn one_slot_order(a1: &str, a2: &str, b1: &str) -> Vec<String> {
    let fx = Fixture::default().await;
    fx.write(
        "book.yaml",
        &format!(
            "output: out/book.mp3\ndefaults: {{voice_id: {NARRATOR}}}\nsegments:\n  - {{id: a1, chapter: a, text: \"{a1}\"}}\n  - {{id: a2, chapter: a, text: \"{a2}\"}}\n  - {{id: b1, chapter: b, text: \"{b1}\"}}\n"
        ),
    );
    let out = fx
        .run(&["book.yaml", "--concurrency", "1", "--rate", "100"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fx.tts_log()
        .iter()
        .map(|e| e["body"]["text"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_gives_its_slot_to_a_waiting_chain_with_more_work_left() {
    // One slot. Chain a (a long request, then a short one) has the most work and goes first;
    // after its long request, chain b waits with more work left than a's short request, so b
    // takes the slot before a's second request.
    let long = "The first request of chain a is long, much longer than anything else in this book.";
    let middle = "Chain b has one request of middle length.";
    let short = "A short end.";
    let sent = one_slot_order(long, short, middle).await;
    assert_eq!(sent, [long, middle, short], "in the order sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_keeps_its_slot_for_its_next_request_when_the_waiting_chain_has_less_left() {
    // One slot. Chain a's second request has more work left than all of chain b, which waits:
    // a never queues behind b between its own requests.
    let long = "The first request of chain a is long, much longer than anything else in this book.";
    let middle = "Chain a goes on with a request of middle length.";
    let short = "Chain b is short.";
    let sent = one_slot_order(long, middle, short).await;
    assert_eq!(sent, [long, middle, short], "in the order sent");
}
