//! Continuity through the request log: dialogue chains, the eleven_v3 text fallback in
//! parallel, ids that aged past two hours, refused ids, and `--only` regeneration.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use narrate::emulator;
use serde_json::Value;

use crate::util::*;

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Request ids of each segment, from the report.
fn segment_ids(report: &Value) -> HashMap<String, Vec<String>> {
    report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let list = s["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["request_id"].as_str().unwrap().to_string())
                .collect();
            (s["id"].as_str().unwrap().to_string(), list)
        })
        .collect()
}

fn entry<'a>(log: &'a [Value], request_id: &str) -> &'a Value {
    log.iter()
        .find(|e| e["request_id"] == request_id)
        .expect("logged")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrators_chain_continues_across_an_interleaved_three_voice_dialogue() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    let lines = [
        ("n1", NARRATOR, "Just then a White Rabbit ran close by her."),
        ("r1", RABBIT, "'Oh dear! Oh dear! I shall be late!'"),
        ("n2", NARRATOR, "said the Rabbit, hurrying on."),
        ("a1", ALICE, "'Why, what a remarkable thing!'"),
        (
            "n3",
            NARRATOR,
            "thought Alice, following it across the field.",
        ),
        (
            "r2",
            RABBIT,
            "'My ears and whiskers, how late it's getting!'",
        ),
        ("a2", ALICE, "'Wait for me!'"),
        ("n4", NARRATOR, "But the Rabbit was already gone."),
        ("n5", NARRATOR, "Alice was alone in the long, low hall."),
    ];
    let segs: Vec<String> = lines
        .iter()
        .map(|(id, voice, text)| {
            format!("  - {{id: {id}, chapter: One, voice_id: {voice}, text: \"{text}\"}}")
        })
        .collect();
    write(
        dir.path(),
        "d.yaml",
        &format!(
            "output: d.wav\ndefaults: {{output_format: pcm_16000}}\nsegments:\n{}\n",
            segs.join("\n")
        ),
    );
    let out = fx.run(&["d.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ids_of = segment_ids(&read_json(&dir.path().join("d.report.json")));
    let log = tts_log(dir.path());
    let id = |s: &str| ids_of[s][0].clone();
    // The narrator's n3 follows n1 and n2 although Rabbit and Alice spoke in between.
    assert_eq!(
        ids(&entry(&log, &id("n3"))["body"]["previous_request_ids"]),
        vec![id("n1"), id("n2")]
    );
    assert_eq!(
        ids(&entry(&log, &id("n5"))["body"]["previous_request_ids"]),
        vec![id("n2"), id("n3"), id("n4")]
    );
    assert_eq!(
        entry(&log, &id("n2"))["body"]["next_text"],
        "thought Alice, following it across the field."
    );
    assert_eq!(
        ids(&entry(&log, &id("r2"))["body"]["previous_request_ids"]),
        vec![id("r1")]
    );
    assert_eq!(
        ids(&entry(&log, &id("a2"))["body"]["previous_request_ids"]),
        vec![id("a1")]
    );
    assert!(
        entry(&log, &id("a2"))["body"].get("next_text").is_none(),
        "Alice's last line has no next"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_v3_sends_text_context_and_runs_in_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator_in(
        dir.path(),
        emulator::Config {
            latency_ms: 150,
            ..Default::default()
        },
    )
    .await;
    let segs: Vec<String> = (0..6)
        .map(|i| format!("  - {{id: s{i}, chapter: One, text: \"Line {i} of the v3 chapter.\"}}"))
        .collect();
    write(
        dir.path(),
        "v3.yaml",
        &format!(
            "output: v3.wav\ndefaults: {{voice_id: {NARRATOR}, model_id: eleven_v3, output_format: pcm_16000}}\nsegments:\n{}\n",
            segs.join("\n")
        ),
    );
    let out = run_against(
        dir.path(),
        &emu.base_url(),
        &["v3.yaml", "--concurrency", "6"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = tts_log(dir.path());
    assert_eq!(log.len(), 6);
    for e in &log {
        let body = &e["body"];
        assert!(
            body.get("previous_request_ids").is_none(),
            "no ids for eleven_v3"
        );
        let text = body["text"].as_str().unwrap();
        let i: usize = text[5..6].parse().unwrap();
        let prev = (i > 0).then(|| format!("Line {} of the v3 chapter.", i - 1));
        assert_eq!(body["previous_text"].as_str(), prev.as_deref());
        let next = (i < 5).then(|| format!("Line {} of the v3 chapter.", i + 1));
        assert_eq!(body["next_text"].as_str(), next.as_deref());
    }
    let most = log
        .iter()
        .filter_map(|e| e["concurrent"].as_u64())
        .max()
        .unwrap();
    assert!(
        most > 1,
        "requests with no id dependency overlap (at most {most} at once)"
    );
    emu.stop().await;
}

fn chapter(dir: &Path, name: &str, count: usize) {
    let segs: Vec<String> = (0..count)
        .map(|i| format!("  - {{id: s{i}, chapter: One, text: \"This is sentence number {i} of the chapter.\"}}"))
        .collect();
    write(
        dir,
        name,
        &format!(
            "output: out/{}.wav\ndefaults: {{voice_id: {NARRATOR}, output_format: pcm_16000}}\nsegments:\n{}\n",
            name.trim_end_matches(".yaml"),
            segs.join("\n")
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_chains_from_fresh_cached_ids_and_falls_back_to_text_when_they_aged() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    // The first three segments are rendered, then the manifest grows.
    chapter(dir.path(), "part.yaml", 3);
    let out = fx.run(&["part.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cached = segment_ids(&read_json(&dir.path().join("out/part.report.json")));

    // Fresh: the first new request chains on from the cached ids.
    let fresh_dir = dir.path().join("fresh");
    std::fs::create_dir_all(&fresh_dir).unwrap();
    std::fs::copy(dir.path().join("part.yaml"), fresh_dir.join("part.yaml")).unwrap();
    let copy = |from: &Path, to: &Path| {
        for f in files_under(from) {
            let rel = f.strip_prefix(from).unwrap();
            std::fs::create_dir_all(to.join(rel).parent().unwrap()).unwrap();
            std::fs::copy(&f, to.join(rel)).unwrap();
        }
    };
    copy(
        &dir.path().join(".narrate/cache"),
        &fresh_dir.join(".narrate/cache"),
    );
    chapter(&fresh_dir, "part.yaml", 5);
    let before = tts_log(dir.path()).len();
    let out = run_against(&fresh_dir, &fx.emu.base_url(), &["part.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = tts_log(dir.path());
    assert_eq!(
        log.len() - before,
        2,
        "only the two new segments are rendered"
    );
    let first_new = &log[before]["body"];
    assert_eq!(
        first_new["text"],
        "This is sentence number 3 of the chapter."
    );
    assert_eq!(
        ids(&first_new["previous_request_ids"]),
        vec![
            cached["s0"][0].clone(),
            cached["s1"][0].clone(),
            cached["s2"][0].clone()
        ]
    );

    // Two hours later (both clocks moved): the cached ids have expired; text instead.
    fx.emu
        .state
        .advance_clock(Duration::from_secs(2 * 3600 + 60));
    chapter(dir.path(), "part.yaml", 5);
    let before = log.len();
    let out = fx.run(&["part.yaml", "--clock-offset-secs", "7260"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = tts_log(dir.path());
    assert_eq!(log.len() - before, 2);
    let first_new = &log[before]["body"];
    assert!(
        first_new.get("previous_request_ids").is_none(),
        "expired ids are not sent: {first_new}"
    );
    assert_eq!(
        first_new["previous_text"],
        "This is sentence number 2 of the chapter."
    );
    // The second new request chains from the first, which is fresh.
    assert_eq!(
        ids(&log[before + 1]["body"]["previous_request_ids"]),
        vec![log[before]["request_id"].as_str().unwrap().to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_the_api_refuses_are_replaced_by_text() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    chapter(dir.path(), "c.yaml", 2);
    let out = fx.run(&["c.yaml"]).await;
    assert_eq!(out.status.code(), Some(0));
    // Only the server's clock moves: narrate believes its cached ids are fresh, the API does not.
    fx.emu.state.advance_clock(Duration::from_secs(3 * 3600));
    // Two new segments: the first is refused in the middle of the chain, not at its end.
    chapter(dir.path(), "c.yaml", 4);
    let before = tts_log(dir.path()).len();
    let out = fx.run(&["c.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = tts_log(dir.path());
    assert_eq!(log[before]["status"], 400, "the stale ids were refused");
    assert_eq!(log[before + 1]["status"], 200);
    // The resend carries both neighbours' text in place of the refused ids.
    let resend = &log[before + 1]["body"];
    assert_eq!(resend["text"], "This is sentence number 2 of the chapter.");
    assert_eq!(
        resend["previous_text"],
        "This is sentence number 1 of the chapter."
    );
    assert_eq!(
        resend["next_text"],
        "This is sentence number 3 of the chapter."
    );
    let report = read_json(&dir.path().join("out/c.report.json"));
    let last = &report["segments"][2]["requests"][0];
    assert_eq!(last["used_previous_text"], true);
    assert_eq!(last["attempts"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_regenerates_one_segment_with_its_cached_neighbours_as_context() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    chapter(dir.path(), "c.yaml", 6);
    let out = fx.run(&["c.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let original = std::fs::read(dir.path().join("out/c.wav")).unwrap();

    // (segment, expected previous ids, expected next ids), in terms of the latest ids.
    for (target, prev, next) in [
        ("s3", vec![0, 1, 2], vec![4, 5]),
        ("s0", vec![], vec![1, 2, 3]),
        ("s5", vec![2, 3, 4], vec![]),
    ] {
        let current = segment_ids(&read_json(&dir.path().join("out/c.report.json")));
        let id = |i: usize| current[&format!("s{i}")][0].clone();
        let before = tts_log(dir.path()).len();
        let out = fx.run(&["c.yaml", "--only", target]).await;
        assert_eq!(out.status.code(), Some(0), "{target}: {}", stderr(&out));
        let log = tts_log(dir.path());
        assert_eq!(log.len() - before, 1, "{target}: only that segment is sent");
        let body = &log[before]["body"];
        assert_eq!(
            body["text"],
            format!("This is sentence number {} of the chapter.", &target[1..])
        );
        assert_eq!(
            ids(&body["previous_request_ids"]),
            prev.iter().map(|&i| id(i)).collect::<Vec<_>>(),
            "{target} previous"
        );
        assert_eq!(
            ids(&body["next_request_ids"]),
            next.iter().map(|&i| id(i)).collect::<Vec<_>>(),
            "{target} next"
        );
        if next.is_empty() {
            assert!(body.get("next_text").is_none());
        } else {
            assert!(
                body.get("next_text").is_none(),
                "{target}: next_request_ids replace next_text"
            );
        }
        if prev.is_empty() {
            assert!(body.get("previous_text").is_none());
        }
        let report = read_json(&dir.path().join("out/c.report.json"));
        for s in report["segments"].as_array().unwrap() {
            let is_target = s["id"] == target;
            assert_eq!(s["regenerated"], is_target);
            assert_eq!(s["cached"], !is_target);
        }
        let target_report = report["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == target)
            .unwrap();
        assert_eq!(
            ids(&target_report["requests"][0]["next_request_ids"]).len(),
            next.len()
        );
        // The emulator's audio is deterministic: re-stitched output is unchanged.
        assert!(std::fs::read(dir.path().join("out/c.wav")).unwrap() == original);
    }
    // --only with a segment that is not cached, or an unknown id, is refused.
    chapter(dir.path(), "c.yaml", 7);
    let out = fx.run(&["c.yaml", "--only", "s2"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("\"s6\" is not in the cache"),
        "{}",
        stderr(&out)
    );
    let out = fx.run(&["c.yaml", "--only", "nope"]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_limits_come_from_the_api_and_are_remembered() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    chapter(dir.path(), "c.yaml", 1);
    let out = fx.run(&["c.yaml"]).await;
    assert_eq!(out.status.code(), Some(0));
    let saved = read_json(&dir.path().join(".narrate/models.json"));
    assert_eq!(saved["eleven_v3"], 5000);
    assert!(
        request_log(dir.path())
            .iter()
            .any(|e| e["path"] == "/v1/models")
    );
    // A run that cannot ask the API (assemble sends nothing) plans with the limits remembered:
    // a smaller one cuts the segment into two requests, which the cache does not have.
    fx.write(
        "long.yaml",
        &format!(
            "output: out/long.mp3\ndefaults: {{voice_id: {NARRATOR}}}\nsegments:\n  - {{id: a, text: \"This is sentence number one of the chapter. And here is another sentence.\"}}\n"
        ),
    );
    let out = fx.run(&["long.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let base = fx.base();
    let assemble = ["assemble", "long.yaml", "--base-url", base.as_str()];
    let out = narrate(dir.path(), &assemble, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let models = dir.path().join(".narrate/models.json");
    let mut remembered = read_json(&models);
    remembered["eleven_multilingual_v2"] = serde_json::json!(60);
    std::fs::write(&models, remembered.to_string()).unwrap();
    let out = narrate(dir.path(), &assemble, &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 request(s) are not in the cache"),
        "{}",
        stderr(&out)
    );
}

/// Eight unrelated announcements, one chapter-less row each, with `header` at the top.
fn announcements(fx: &Fixture, name: &str, header: &str) {
    let segments: String = (0..8)
        .map(|i| format!("  - {{id: a{i}, text: \"{name} {i}: platform {i} is open.\"}}\n"))
        .collect();
    fx.write(
        name,
        &format!(
            "{header}output: out/{name}.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32}}\nsegments:\n{segments}"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_continuity_none_every_segment_stands_alone_and_they_run_at_once() {
    let fx = Fixture::new(emulator::Config {
        latency_ms: 300,
        ..Default::default()
    })
    .await;
    announcements(&fx, "chained.yaml", "");
    announcements(&fx, "alone.yaml", "continuity: none\n");
    let context = |e: &serde_json::Value| {
        [
            "previous_request_ids",
            "next_request_ids",
            "previous_text",
            "next_text",
        ]
        .iter()
        .any(|k| !e["body"][k].is_null())
    };
    let out = fx.run(&["chained.yaml", "--concurrency", "4"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let chained = fx.tts_log();
    assert!(
        chained.iter().any(context),
        "a chapter's rows carry context"
    );
    assert!(
        chained.iter().all(|e| e["concurrent"] == 1),
        "one at a time"
    );

    let out = fx.run(&["alone.yaml", "--concurrency", "4"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let alone = &fx.tts_log()[chained.len()..];
    assert_eq!(alone.len(), 8);
    assert!(
        !alone.iter().any(context),
        "no ids and no neighbouring text"
    );
    let most = alone.iter().filter_map(|e| e["concurrent"].as_u64()).max();
    assert_eq!(most, Some(4), "up to the cap at once");

    // A bare CSV: `--continuity none`, and a warning when many rows would be chained.
    let rows: String = (0..400)
        .map(|i| format!("r{i},Row {i} says something.,{NARRATOR}\n"))
        .collect();
    fx.write("rows.csv", &format!("id,text,voice_id\n{rows}"));
    let out = narrate(fx.path(), &["check", "rows.csv"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("in 1 chains"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("--continuity none"),
        "{}",
        stderr(&out)
    );
    let out = narrate(
        fx.path(),
        &["check", "rows.csv", "--continuity", "none"],
        &[],
    )
    .await;
    assert!(
        stdout(&out).contains("400 requests in 400 chains"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("continuity none"), "{}", stderr(&out));
}

/// The modification time and inode of each file in `dir`, by name.
fn stamps(dir: &Path) -> HashMap<String, (std::time::SystemTime, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, (meta.modified().unwrap(), meta.ino()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_job_writes_a_file_per_row_and_a_rerun_rewrites_only_the_changed_row() {
    let fx = Fixture::default().await;
    // More rows than render tasks exist at once, so the window of tasks moves along.
    let rows = 1_100;
    let csv = |changed: &str| -> String {
        let mut text = String::from("id,text,voice_id\n");
        for i in 0..rows {
            let word = if i == 7 { changed } else { "open" };
            text.push_str(&format!("item-{i},Platform {i} is {word}.,{NARRATOR}\n"));
        }
        text
    };
    fx.write("rows.csv", &csv("open"));
    let args = [
        "rows.csv",
        "--continuity",
        "none",
        "--split",
        "segments",
        "-o",
        "out/tonight.mp3",
        "--output-format",
        "mp3_22050_32",
        "--rate",
        "1000",
        "--concurrency",
        "8",
    ];
    let out = fx.run(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let folder = fx.path().join("out/tonight");
    let first = stamps(&folder);
    assert_eq!(first.len(), rows, "one file per row and nothing else");
    assert!(first.contains_key("item-0.mp3") && first.contains_key("item-1099.mp3"));
    let log = fx.tts_log();
    assert_eq!(log.len(), rows);
    assert!(
        log.iter().all(
            |e| e["body"]["previous_request_ids"].is_null() && e["body"]["next_text"].is_null()
        )
    );
    // Each file holds its own row's audio: ffprobe reads the one of item-7 as an MP3 of about
    // the length the report gives.
    let report = fx.json("out/tonight.report.json");
    let outputs = report["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), rows);
    let seven = &report["segments"][7];
    assert_eq!(seven["file"], "out/tonight/item-7.mp3");
    let probe = ffprobe_json(&folder.join("item-7.mp3"), &["-show_format"]);
    assert_eq!(probe["format"]["format_name"], "mp3");
    let seconds = secs(&probe["format"]["duration"]);
    let reported =
        seven["end_seconds"].as_f64().unwrap() - seven["start_seconds"].as_f64().unwrap();
    assert!((seconds - reported).abs() < 0.1, "{seconds} vs {reported}");
    let playlist = String::from_utf8(fx.read("out/tonight.m3u8")).unwrap();
    assert!(playlist.contains("\ntonight/item-7.mp3\n"), "{playlist}");

    // One row changed: one request, one file written again, the others untouched on disk.
    fx.write("rows.csv", &csv("closed"));
    let out = fx.run(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fx.tts_log().len(), rows + 1);
    let second = stamps(&folder);
    let rewritten: Vec<&String> = second
        .iter()
        .filter(|(name, stamp)| first.get(*name) != Some(stamp))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(rewritten, ["item-7.mp3"]);

    // Ids that cannot name their files are refused before anything is sent.
    // (The manifest itself refuses ids with separators, `.` and `..`.)
    let long = "x".repeat(201);
    for (ids, says) in [
        (["..", "b"], "not a valid id"),
        ([".hidden", "b"], "hidden file"),
        (["Item", "item"], "would be the file of"),
        ([long.as_str(), "b"], "over 200 bytes"),
    ] {
        let rows: String = ids
            .iter()
            .map(|id| format!("{id},Hello.,{NARRATOR}\n"))
            .collect();
        fx.write("bad.csv", &format!("id,text,voice_id\n{rows}"));
        let mut bad = args;
        bad[0] = "bad.csv";
        bad[6] = "out/bad.mp3";
        let before = fx.tts_log().len();
        let out = fx.run(&bad).await;
        assert_eq!(out.status.code(), Some(2), "{ids:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{ids:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("bad.csv:"),
            "names the file and line: {}",
            stderr(&out)
        );
        assert_eq!(fx.tts_log().len(), before, "{ids:?}: nothing sent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_after_two_hours_sends_its_neighbours_text_not_their_expired_ids() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    chapter(dir.path(), "c.yaml", 6);
    let out = fx.run(&["c.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Two hours later on both clocks: every cached id has expired.
    fx.emu
        .state
        .advance_clock(Duration::from_secs(2 * 3600 + 60));
    let before = tts_log(dir.path()).len();
    let out = fx
        .run(&["c.yaml", "--only", "s3", "--clock-offset-secs", "7260"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = tts_log(dir.path());
    assert_eq!(log.len() - before, 1, "only s3 is sent");
    let body = &log[before]["body"];
    assert_eq!(log[before]["status"], 200, "{body}");
    for field in ["previous_request_ids", "next_request_ids"] {
        assert!(body.get(field).is_none(), "expired {field} sent: {body}");
    }
    assert_eq!(
        body["previous_text"],
        "This is sentence number 2 of the chapter."
    );
    assert_eq!(
        body["next_text"],
        "This is sentence number 4 of the chapter."
    );
}
