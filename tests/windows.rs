//! A content job rendered a window of rows at a time (`continuity: none`, a file a row): the
//! same files, reports, playlists and review page as the job rendered whole, each request sent
//! once, and the review page streamed from the spooled rows the same page `narrate review`
//! makes again from the files.

use serde_json::Value;

use crate::util::*;

/// A job of 23 independent rows in folder `dir`, one long enough to be cut into several
/// requests (a chain of its own, which a window never cuts).
fn job(fx: &Fixture, dir: &str) {
    let mut segments = String::new();
    for i in 0..23 {
        let text = if i == 9 {
            "The nine o'clock service is delayed. It will leave from platform four. Passengers for the airport should change at the next station. We apologise for the delay.".to_string()
        } else {
            format!(
                "Announcement {i}: the train to platform {} is on time.",
                i % 7
            )
        };
        segments.push_str(&format!("  - {{id: row-{i}, text: \"{text}\"}}\n"));
    }
    fx.write(
        &format!("{dir}/job.yaml"),
        &format!(
            "output: out/rows.mp3\ncontinuity: none\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32, max_request_chars: 60}}\nsegments:\n{segments}"
        ),
    );
}

/// A report without what differs between two runs of the same job: times, request ids,
/// attempts (the emulator's busy answers are retried), the folder.
fn comparable(mut report: Value, dir: &str) -> Value {
    for key in ["started_at", "finished_at", "wall_seconds"] {
        report[key] = Value::Null;
    }
    report["totals"]["attempts"] = Value::Null;
    report["totals"]["retries"] = Value::Null;
    for s in report["segments"].as_array_mut().unwrap() {
        s["attempts"] = Value::Null;
        for r in s["requests"].as_array_mut().unwrap() {
            for key in [
                "request_id",
                "attempts",
                "statuses",
                "latency_ms",
                "previous_request_ids",
                "next_request_ids",
            ] {
                r[key] = Value::Null;
            }
        }
    }
    let text = report.to_string().replace(&format!("{dir}/"), "");
    serde_json::from_str(&text).unwrap()
}

/// Where two JSON values first differ, and how.
fn difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let (p, q) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                difference(p, q, &format!("{at}.{k}"))
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| difference(p, q, &format!("{at}[{i}]"))),
        _ => (a != b).then(|| format!("{at}: {a} against {b}")),
    }
}

/// The CSV report without the request ids and attempts columns.
fn csv_without_ids(fx: &Fixture, path: &str) -> Vec<String> {
    String::from_utf8(fx.read(path))
        .unwrap()
        .lines()
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            format!("{}|{}", cells[..6].join(","), cells[7..11].join(","))
        })
        .collect()
}

/// Renders `dir/job.yaml` a file a row, with windows of `window` rows when given.
async fn render(fx: &Fixture, dir: &str, window: Option<&str>) -> std::process::Output {
    let manifest = format!("{dir}/job.yaml");
    let base = fx.base();
    let args = [
        "--base-url",
        base.as_str(),
        manifest.as_str(),
        "--split",
        "segments",
        "--timestamps",
        "--loudness",
        "--concurrency",
        "4",
    ];
    let mut env = vec![("ELEVENLABS_API_KEY", SECRET_KEY)];
    if let Some(rows) = window {
        env.push(("NARRATE_WINDOW_ROWS", rows));
    }
    narrate(fx.path(), &args, &env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_rendered_a_window_of_rows_at_a_time_writes_what_it_writes_whole() {
    let fx = Fixture::default().await;
    job(&fx, "windowed");
    job(&fx, "whole");
    // Windows of 5 rows: five windows, the long row's chain inside the second.
    let out = render(&fx, "windowed", Some("5")).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sent = fx.tts_log().len();
    let out = render(&fx, "whole", None).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = fx.tts_log();
    assert_eq!(log.len(), 2 * sent, "each request once, in both runs");
    assert!(sent > 23, "the long row is several requests");
    // Only the long row's pieces carry context, each other's: no row conditions another.
    for e in &log {
        let body = &e["body"];
        let context = ["previous_request_ids", "previous_text", "next_text"]
            .iter()
            .any(|k| !body[k].is_null());
        let text = body["text"].as_str().unwrap();
        let of_the_long_row = !text.starts_with("Announcement");
        assert!(!context || of_the_long_row, "{body}");
        for k in ["previous_text", "next_text"] {
            if let Some(t) = body[k].as_str() {
                assert!(!t.contains("Announcement"), "{body}");
            }
        }
    }

    let windowed = comparable(fx.json("windowed/out/rows.report.json"), "windowed");
    let whole = comparable(fx.json("whole/out/rows.report.json"), "whole");
    assert_eq!(difference(&windowed, &whole, "report"), None);
    assert_eq!(windowed["outputs"].as_array().unwrap().len(), 23);
    assert!(windowed["outputs"][0]["loudness"]["integrated_lufs"].is_number());
    assert_eq!(
        csv_without_ids(&fx, "windowed/out/rows.report.csv"),
        csv_without_ids(&fx, "whole/out/rows.report.csv")
    );
    for side in ["out/rows.m3u8", "out/rows.cue", "out/rows.review.json"] {
        assert_eq!(
            fx.read(&format!("windowed/{side}")),
            fx.read(&format!("whole/{side}")),
            "{side}"
        );
    }
    for i in 0..23 {
        let file = format!("out/rows/row-{i}.mp3");
        assert_eq!(
            fx.read(&format!("windowed/{file}")),
            fx.read(&format!("whole/{file}")),
            "{file}"
        );
    }
    // The streamed page is the page `narrate review` makes from the report and data files.
    let page = fx.read("windowed/out/rows.review.html");
    let report = fx.path().join("windowed/out/rows.report.json");
    let out = narrate(fx.path(), &["review", report.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(page, fx.read("windowed/out/rows.review.html"));
    let html = String::from_utf8(page).unwrap();
    assert!(html.contains("row-22.mp3") && html.contains("platform four"));

    // A rerun sends nothing and keeps every file.
    let out = render(&fx, "windowed", Some("5")).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fx.tts_log().len(), 2 * sent);
    let again = fx.json("windowed/out/rows.report.json");
    let outputs = again["outputs"].as_array().unwrap();
    assert!(outputs.iter().all(|o| o["published"] == "reused"));
    assert_eq!(again["totals"]["cache_hits"], again["totals"]["requests"]);
}
