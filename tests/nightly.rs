//! The nightly job's contract: the exit statuses a scheduler acts on (the deadline, nothing to
//! do), each driven by the emulator.

use narrate::emulator;

use crate::util::*;

/// One chapter of `n` sentences, in one chain.
fn chapter(fx: &Fixture, n: usize) {
    let segments: String = (0..n)
        .map(|i| format!("  - {{id: s{i}, text: \"Tonight's item number {i} is ready.\"}}\n"))
        .collect();
    fx.write(
        "job.yaml",
        &format!(
            "output: out/job.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32}}\nsegments:\n{segments}"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_stops_sending_writes_the_report_and_the_next_run_resumes() {
    let fx = Fixture::new(emulator::Config {
        latency_ms: 1_500,
        ..Default::default()
    })
    .await;
    chapter(&fx, 6);
    // One chain: a request every 1.5 s. At 2 s the second is in flight: it finishes and is
    // cached, and nothing more is sent.
    let out = fx.run(&["job.yaml", "--max-duration", "2s"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("--max-duration"), "{}", stderr(&out));
    assert_eq!(
        fx.tts_log().len(),
        2,
        "what was in flight finished; nothing after"
    );
    let report = fx.json("out/job.report.json");
    assert_eq!(report["stopped_by"], "deadline");
    let ok = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "ok")
        .count();
    assert_eq!(ok, 2);
    assert!(!fx.path().join("out/job.mp3").exists(), "no partial output");

    // `retry` sends exactly the four the report lists as failed, each with its neighbours'
    // ids as context, and writes the output.
    let base = fx.base();
    let retry = ["retry", "out/job.report.json", "--base-url", &base];
    let out = narrate(fx.path(), &retry, &[("ELEVENLABS_API_KEY", SECRET_KEY)]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("s2 s3 s4 s5"), "{}", stdout(&out));
    let log = fx.tts_log();
    assert_eq!(log.len(), 6, "only the failed ones were sent again");
    let texts: Vec<&str> = log[2..]
        .iter()
        .map(|e| e["body"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        (2..6)
            .map(|i| format!("Tonight's item number {i} is ready."))
            .collect::<Vec<_>>()
    );
    assert!(!log[2]["body"]["previous_request_ids"].is_null());
    assert!(fx.path().join("out/job.mp3").exists());
    // Nothing failed now: nothing to do, nothing sent.
    let out = narrate(fx.path(), &retry, &[("ELEVENLABS_API_KEY", SECRET_KEY)]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("nothing to retry"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fx.tts_log().len(), 6);

    // A bad duration is a usage error, before anything is sent.
    let out = fx.run(&["job.yaml", "--max-duration", "30m1h"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a duration"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_do_has_its_own_status_only_when_asked_for() {
    let fx = Fixture::default().await;
    chapter(&fx, 3);
    let asked = ["job.yaml", "--exit-nothing-to-do", "9"];
    // The first run does something.
    let out = fx.run(&asked).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Everything cached and the output unchanged: 9 when asked, 0 otherwise.
    let out = fx.run(&asked).await;
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    let out = fx.run(&["job.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The output gone: it is written again, which is something.
    std::fs::remove_file(fx.path().join("out/job.mp3")).unwrap();
    let out = fx.run(&asked).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fx.tts_log().len(), 3, "nothing was sent again");
}

/// The bash completion, sourced into bash, completes `words` (the last one being typed).
fn complete(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source {}\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n_narrate narrate {} {}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        quoted[words.len() - 1],
        quoted[words.len() - 2],
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_completes_subcommands_and_flags_and_man_renders_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let out = narrate(dir.path(), &["completions", "bash"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let script = write(dir.path(), "narrate.bash", &stdout(&out));
    assert_eq!(complete(&script, &["narrate", "compl"]), ["completions"]);
    assert_eq!(
        complete(&script, &["narrate", "render", "--max-du"]),
        ["--max-duration"]
    );
    let splits = complete(&script, &["narrate", "render", "--split", ""]);
    assert!(splits.contains(&"segments".to_string()), "{splits:?}");

    let out = narrate(dir.path(), &["man"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = write(dir.path(), "narrate.1", &stdout(&out));
    let shown = std::process::Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man is required by the tests: apt-get install man-db");
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("NAME") && text.contains("narrate"), "{text}");
    assert!(text.contains("--max-duration"), "{text}");

    // Every shell clap knows gets a script.
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = narrate(dir.path(), &["completions", shell], &[]).await;
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        assert!(stdout(&out).contains("max-duration"), "{shell}");
    }
}
