//! The review page: written beside every successful render, made again by `narrate review`,
//! and used in a real browser (the system's Chromium driven by Playwright, tests/browser).

use serde_json::Value;

use crate::util::*;

/// Four segments, one whose text is markup and whose chapter has quotes.
fn manifest(fx: &Fixture) {
    fx.write(
        "book.yaml",
        &format!(
            r#"title: "A <b>review</b> test"
output: out/book.mp3
defaults: {{voice_id: {NARRATOR}, output_format: mp3_44100_128, pause_after_ms: 300}}
segments:
  - {{id: one, chapter: "He said \"hi\" & 'bye'", text: "Alice was beginning to get very tired of sitting by her sister."}}
  - {{id: two, chapter: "He said \"hi\" & 'bye'", text: "<script>alert(1)</script> Once or twice she had peeped into the book."}}
  - {{id: three, chapter: Two, text: "It had no pictures or conversations in it."}}
  - {{id: four, chapter: Two, text: "And what is the use of a book, thought Alice, without pictures?"}}
"#
        ),
    );
}

/// A report and review data of `n` segments, made up, for a page of that size.
fn big_report(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let segments: Vec<Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "id": format!("s{i}"), "chapter": format!("Chapter {}", i / 50 + 1),
                "status": "ok", "cached": true, "regenerated": false, "attempts": 0,
                "start_seconds": i as f64 * 3.0, "end_seconds": i as f64 * 3.0 + 2.5,
                "loudness_jump": false, "requests": [],
            })
        })
        .collect();
    let report = serde_json::json!({"status": "ok", "manifest": "big.yaml", "output": "big.mp3", "segments": segments});
    let data = serde_json::json!({"title": "Big", "segments": (0..n).map(|i| serde_json::json!({
        "id": format!("s{i}"), "text": format!("Sentence number {i} of a long book."), "peaks": vec![128u8; 60]
    })).collect::<Vec<_>>()});
    write(dir, "big.review.json", &data.to_string());
    write(dir, "big.report.json", &report.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_page_works_in_a_real_browser() {
    let fx = Fixture::default().await;
    manifest(&fx);
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = fx.path().join("out/book.review.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("<script>alert"),
        "manifest text is data, not markup"
    );
    for fetch in [
        "src=\"http",
        "href=\"http",
        "<link",
        "url(",
        "import(",
        "fetch(",
    ] {
        assert!(!html.contains(fetch), "no network: {fetch}");
    }
    let report = fx.json("out/book.report.json");

    let big = big_report(fx.path(), 1000);
    let made = narrate(fx.path(), &["review", big.to_str().unwrap()], &[]).await;
    assert_eq!(made.status.code(), Some(0), "{}", stderr(&made));
    assert!(fx.path().join("big.review.html").exists());

    // A render with character timings, for the page to read along.
    let said = [
        "Down, down, down.",
        "Would the fall never come to an end?",
        "I wonder how many miles I have fallen.",
    ];
    fx.write(
        "timed.yaml",
        &format!(
            "output: out/timed.mp3\ndefaults: {{voice_id: {NARRATOR}}}\nsegments:\n  - {{id: fall, text: \"{}\"}}\n",
            said.join(" ")
        ),
    );
    let out = fx.run(&["timed.yaml", "--timestamps"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let timed = fx.path().join("out/timed.review.html");

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/review.py");
    let marks = fx.path().join("marks.txt");
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/review.png");
    let args = [
        script.display().to_string(),
        page.display().to_string(),
        marks.display().to_string(),
        shot.display().to_string(),
        fx.path().join("big.review.html").display().to_string(),
        timed.display().to_string(),
    ];
    let browser = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3").args(&args).output()
    })
    .await
    .unwrap()
    .expect("python3 runs");
    assert!(
        browser.status.success(),
        "the browser check failed (it needs Chromium and Playwright: apt-get install chromium; python3 -m pip install -r tests/sdk/requirements.txt)\n{}\n{}",
        String::from_utf8_lossy(&browser.stdout),
        String::from_utf8_lossy(&browser.stderr)
    );
    let seen: Value = serde_json::from_slice(&browser.stdout).unwrap();
    let texts: Vec<&str> = seen["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "Alice was beginning to get very tired of sitting by her sister.",
            "<script>alert(1)</script> Once or twice she had peeped into the book.",
            "It had no pictures or conversations in it.",
            "And what is the use of a book, thought Alice, without pictures?"
        ],
        "one row per segment, text shown as text"
    );
    assert_eq!(seen["chapters_shown"][0], "He said \"hi\" & 'bye'");
    // Read along: the page's sentences are the manifest's; seeking to the second sentence's
    // clip highlights it alone, and just past its end the third.
    let reading = &seen["read_along"];
    assert_eq!(reading["sentences"], serde_json::json!(said), "{reading}");
    assert_eq!(
        reading["seen"]["at_second_start"],
        serde_json::json!([said[1]]),
        "{reading}"
    );
    assert_eq!(
        reading["seen"]["after_second_end"],
        serde_json::json!([said[2]]),
        "{reading}"
    );
    assert_eq!(seen["dialogs"], 0, "nothing in the manifest ran");
    assert_eq!(seen["injected_elements"], 0);
    assert!(
        seen["console_errors"].as_array().unwrap().is_empty(),
        "{}",
        seen["console_errors"]
    );
    assert!(
        seen["play_start_error"].as_f64().unwrap() <= 0.05,
        "play seeks to the start: {}",
        seen["play_start_error"]
    );
    assert!(
        seen["play_stop_error"].as_f64().unwrap() <= 0.15,
        "playback stops at the end: {}",
        seen["play_stop_error"]
    );
    assert_eq!(seen["highlighted"], "two");
    assert_eq!(seen["after_j"], "three", "j plays the next segment");
    assert_eq!(seen["paused_by_space"], true);
    assert_eq!(seen["command"], "narrate render book.yaml --only one three");
    assert_eq!(seen["search_rows"], 1);
    assert_eq!(seen["marked_rows"], 2);
    assert_eq!(seen["unnamed_buttons"], 0);
    assert!(
        seen["big_ready_ms"].as_f64().unwrap() < 1000.0,
        "1,000 segments ready in {} ms",
        seen["big_ready_ms"]
    );
    assert_eq!(seen["big_count"], "1000 of 1000 segments");
    assert!(seen["big_rows_after_scroll"].as_u64().unwrap() > 150);

    // The saved marks round-trip through --only-file: exactly those two are rendered again.
    let saved = std::fs::read_to_string(&marks).unwrap();
    assert!(saved.contains("# too fast\none\n"), "{saved}");
    let before = fx.tts_log().len();
    let out = fx
        .run(&["book.yaml", "--only-file", marks.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut again: Vec<String> = fx.tts_log()[before..]
        .iter()
        .map(|e| e["body"]["text"].as_str().unwrap().to_string())
        .collect();
    let texts_of = |ids: &[&str]| -> Vec<String> {
        report["segments"]
            .as_array()
            .unwrap()
            .iter()
            .zip(texts.iter())
            .filter(|(s, _)| ids.contains(&s["id"].as_str().unwrap()))
            .map(|(_, t)| t.to_string())
            .collect()
    };
    again.sort();
    let mut expected = texts_of(&["one", "three"]);
    expected.sort();
    assert_eq!(
        again, expected,
        "the two chains run side by side; each sent once"
    );
    let rerun = fx.json("out/book.report.json");
    let regenerated: Vec<&str> = rerun["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["regenerated"] == true)
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(regenerated, ["one", "three"]);
}

#[tokio::test]
async fn only_file_and_review_refuse_what_they_cannot_use() {
    let fx = Fixture::default().await;
    manifest(&fx);
    fx.write("bad.txt", "one\nnot an id!\n");
    let out = fx.run(&["book.yaml", "--only-file", "bad.txt"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.txt:2"), "{}", stderr(&out));
    fx.write("empty.txt", "# nothing\n\n");
    let out = fx.run(&["book.yaml", "--only-file", "empty.txt"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(fx.log().is_empty(), "nothing sent");
    let out = narrate(fx.path(), &["review", "missing.report.json"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("missing.report.json"),
        "{}",
        stderr(&out)
    );
}
