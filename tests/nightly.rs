//! The nightly job's contract: the exit statuses a scheduler acts on (the deadline, nothing to
//! do), each driven by the emulator.

use narrate::emulator;

use crate::util::*;

/// Runs a tool the tests judge with; it must succeed (its output is in the message if not).
fn succeeded(cmd: &mut std::process::Command, missing: &str) -> std::process::Output {
    let out = cmd.output().expect(missing);
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        cmd.get_program(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

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
    let out = succeeded(
        std::process::Command::new("bash").args(["--norc", "-c", &program]),
        "bash runs",
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
    let shown = succeeded(
        std::process::Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100"),
        "man is required by the tests: apt-get install man-db",
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

/// What a tiny HTTP server on loopback heard: each request's method, path, headers and body.
type Heard = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String, String)>>>;

/// Serves on loopback until the test ends: answers 200, or for paths under `/moved` a 307 to
/// `elsewhere`.
fn listener(elsewhere: Option<String>) -> (String, Heard) {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    let heard: Heard = Default::default();
    let log = heard.clone();
    std::thread::spawn(move || {
        for stream in server.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                head.push_str(&line);
                line.clear();
            }
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let mut first = head.lines().next().unwrap_or("").split(' ');
            let (method, path) = (
                first.next().unwrap_or("").to_string(),
                first.next().unwrap_or("").to_string(),
            );
            let answer = match (&elsewhere, path.starts_with("/moved")) {
                (Some(to), true) => format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nlocation: {to}{path}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                ),
                _ => "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nOK"
                    .to_string(),
            };
            log.lock().unwrap().push((
                method,
                path,
                head,
                String::from_utf8_lossy(&body).into_owned(),
            ));
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (base, heard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_a_summary_and_pings_tell_monitoring_how_the_night_went() {
    let fx = Fixture::new(emulator::Config {
        latency_ms: 1_500,
        ..Default::default()
    })
    .await;
    chapter(&fx, 3);
    // A manifest name that needs escaping in a label.
    std::fs::rename(
        fx.path().join("job.yaml"),
        fx.path().join("night \"one\".yaml"),
    )
    .unwrap();
    let (ping, heard) = listener(None);
    let url = format!("{ping}/ping/abc");
    let args = [
        "night \"one\".yaml",
        "--metrics-textfile",
        "metrics/narrate.prom",
        "--summary-json",
        "summary.json",
        "--log-format",
        "json",
        "--notify-url",
        &url,
    ];
    let out = fx.run(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let promtool = |path: &str| {
        succeeded(
            std::process::Command::new("promtool")
                .args(["check", "metrics"])
                .stdin(std::fs::File::open(fx.path().join(path)).unwrap()),
            "promtool is required by the tests: apt-get install prometheus",
        );
    };
    promtool("metrics/narrate.prom");
    let metrics = String::from_utf8(fx.read("metrics/narrate.prom")).unwrap();
    assert!(metrics.contains("narrate_exit_status 0\n"), "{metrics}");
    let label = r#"manifest="night \"one\".yaml""#;
    assert!(
        metrics.contains(&format!("narrate_segments{{{label},status=\"ok\"}} 3\n")),
        "{metrics}"
    );
    let success = metrics
        .lines()
        .find(|l| l.starts_with("narrate_last_success_timestamp_seconds"))
        .unwrap()
        .to_string();
    // The summary: the file, and the last line of the JSON log.
    let summary = fx.json("summary.json");
    assert_eq!(summary["exit_status"], 0);
    assert_eq!(summary["manifests"][0]["segments"], 3);
    let last: serde_json::Value =
        serde_json::from_str(stderr(&out).lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "summary");
    assert_eq!(last["status"], "ok");
    // The pings: start, then success with the summary; never the key.
    let pings = heard.lock().unwrap().clone();
    let paths: Vec<&str> = pings.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(paths, ["/ping/abc/start", "/ping/abc"]);
    assert!(
        pings
            .iter()
            .all(|p| p.0 == "POST" && !p.2.contains(SECRET_KEY))
    );
    let body: serde_json::Value = serde_json::from_str(&pings[1].3).unwrap();
    assert_eq!(body["exit_status"], 0);

    // A night that misses its deadline: status 4 everywhere, the last success kept.
    std::fs::write(
        fx.path().join("night \"one\".yaml"),
        std::fs::read_to_string(fx.path().join("night \"one\".yaml"))
            .unwrap()
            .replace("is ready", "is late"),
    )
    .unwrap();
    let mut late = args.to_vec();
    late.extend(["--max-duration", "1s"]);
    let out = fx.run(&late).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    promtool("metrics/narrate.prom");
    let metrics = String::from_utf8(fx.read("metrics/narrate.prom")).unwrap();
    assert!(metrics.contains("narrate_exit_status 4\n"), "{metrics}");
    assert!(
        metrics.contains(&format!("{success}\n")),
        "the last success is kept: {metrics}"
    );
    assert_eq!(fx.json("summary.json")["status"], "deadline");
    let pings = heard.lock().unwrap().clone();
    assert_eq!(pings.last().unwrap().1, "/ping/abc/4");

    // A redirect to another origin is not followed, and a ping that fails changes nothing.
    let (other, other_heard) = listener(None);
    let (moved, _) = listener(Some(other));
    let out = fx
        .run(&[
            "night \"one\".yaml",
            "--notify-url",
            &format!("{moved}/moved"),
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        other_heard.lock().unwrap().is_empty(),
        "nothing reached the other origin"
    );
    let out = fx
        .run(&[
            "night \"one\".yaml",
            "--notify-url",
            "http://127.0.0.1:9/nobody",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("ping"), "{}", stderr(&out));

    // The summary never goes over an input.
    let manifest = std::fs::read(fx.path().join("night \"one\".yaml")).unwrap();
    let out = fx
        .run(&["night \"one\".yaml", "--summary-json", "night \"one\".yaml"])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("input of this run"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(fx.path().join("night \"one\".yaml")).unwrap(),
        manifest
    );

    // A run that ends before rendering still says so.
    fx.write("broken.yaml", "segments: [\n");
    let out = fx
        .run(&["broken.yaml", "--summary-json", "summary.json"])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let summary = fx.json("summary.json");
    assert_eq!(summary["status"], "usage");
    assert_eq!(summary["failed"], 0, "counts are whole numbers: {summary}");
    assert!(
        summary["error"].as_str().unwrap().contains("broken.yaml"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_examples_use_flags_narrate_has() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let read = |name: &str| std::fs::read_to_string(deploy.join(name)).unwrap();
    // The narrate command of the systemd service (continued lines joined) and of the crontab.
    let service = read("narrate-nightly.service").replace("\\\n", " ");
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=/usr/local/bin/narrate "))
        .unwrap()
        .to_string();
    let cron = read("crontab");
    let cron = cron
        .lines()
        .find_map(|l| l.split("/usr/local/bin/narrate ").nth(1))
        .unwrap()
        .split(" >>")
        .next()
        .unwrap()
        .to_string();
    let cronjob: serde_json::Value = serde_saphyr::from_str(&read("cronjob.yaml")).unwrap();
    let k8s: Vec<String> = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        [0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for args in [
        exec.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>(),
        cron.split_whitespace().map(str::to_string).collect(),
        k8s,
    ] {
        assert_eq!(args[0], "render", "{args:?}");
        // Every flag and value before --help is parsed; an unknown one is an error.
        let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
        with_help.push("--help");
        let out = narrate(dir.path(), &with_help, &[]).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(args.iter().any(|a| a == "--max-duration"), "{args:?}");
    }
}

/// Reads a feed with feedparser (and Apple's required tags with ElementTree): a JSON summary.
const READ_FEED: &str = r#"
import json, sys, feedparser
import xml.etree.ElementTree as ET
path = sys.argv[1]
d = feedparser.parse(path)
ns = {"itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd", "podcast": "https://podcastindex.org/namespace/1.0"}
channel = ET.parse(path).getroot().find("channel")
apple_channel = all(channel.find(t, ns) is not None for t in ["title", "description", "language", "itunes:image", "itunes:category", "itunes:explicit"])
items = channel.findall("item")
apple_items = all(i.find("title") is not None and i.find("guid") is not None and i.find("enclosure") is not None and all(i.find("enclosure").get(a) for a in ["url", "length", "type"]) for i in items)
print(json.dumps({
    "bozo": d.bozo, "title": d.feed.get("title"), "image": d.feed.get("image", {}).get("href"),
    "apple_channel": apple_channel, "apple_items": apple_items,
    "entries": [{"id": e.id, "title": e.title, "duration": e.get("itunes_duration"), "published": e.get("published_parsed") is not None,
                 "enclosure": [{"href": l.href, "length": l.length, "type": l.type} for l in e.enclosures]} for e in d.entries],
    "transcripts": [i.find("podcast:transcript", ns).get("url") if i.find("podcast:transcript", ns) is not None else None for i in items],
    "chapters": [i.find("podcast:chapters", ns).get("url") if i.find("podcast:chapters", ns) is not None else None for i in items],
}))
"#;

/// An episode's manifest: two chapters of two sentences.
fn episode(fx: &Fixture, name: &str) {
    fx.write(
        &format!("{name}.yaml"),
        &format!(
            "title: \"Tonight <{name}> & more\"\noutput: out/{name}.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32}}\nsegments:\n  - {{id: a, chapter: Headlines, text: \"The {name} headlines.\"}}\n  - {{id: b, chapter: Headlines, text: \"More of them.\"}}\n  - {{id: c, chapter: Weather, text: \"Rain tonight.\"}}\n"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nights_make_one_feed_of_five_episodes_with_stable_guids() {
    let fx = Fixture::default().await;
    let read = |fx: &Fixture| -> serde_json::Value {
        let out = succeeded(
            std::process::Command::new("python3")
                .args(["-c", READ_FEED])
                .arg(fx.path().join("out/feed.xml")),
            "python3 runs",
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let feed = |fx: &Fixture, days: &[&str]| {
        let mut args = vec![
            "feed".to_string(),
            "out/feed.xml".into(),
            "--feed-base-url".into(),
            "https://cdn.example.com/night".into(),
            "--title".into(),
            "Night \"news\"\n<b>".into(),
            "--image".into(),
            "https://cdn.example.com/cover.jpg".into(),
        ];
        args.extend(days.iter().map(|d| format!("out/{d}.report.json")));
        let dir = fx.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            narrate(&dir, &args, &[]).await
        }
    };
    for name in ["ep1", "ep2", "ep3"] {
        episode(&fx, name);
    }
    let out = fx.run(&["ep1.yaml", "ep2.yaml", "ep3.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = feed(&fx, &["ep1", "ep2", "ep3"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let day1 = read(&fx);
    assert_eq!(day1["entries"].as_array().unwrap().len(), 3);

    // Day 2: two more, and the feed made again from all five reports.
    for name in ["ep4", "ep5"] {
        episode(&fx, name);
    }
    let out = fx.run(&["ep4.yaml", "ep5.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = feed(&fx, &["ep1", "ep2", "ep3", "ep4", "ep5"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let day2 = read(&fx);
    assert_eq!(day2["bozo"], false, "{day2}");
    assert_eq!(day2["apple_channel"], true);
    assert_eq!(day2["apple_items"], true);
    assert_eq!(day2["title"], "Night \"news\" <b>");
    assert_eq!(day2["image"], "https://cdn.example.com/cover.jpg");
    let entries = day2["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5, "no episode twice");
    let ids: std::collections::HashSet<&str> =
        entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5);
    for old in day1["entries"].as_array().unwrap() {
        assert!(
            ids.contains(old["id"].as_str().unwrap()),
            "GUIDs are stable"
        );
    }
    for e in entries {
        assert_eq!(e["published"], true);
        assert!(e["duration"].as_str().unwrap().starts_with("0:00:"), "{e}");
        assert!(
            e["title"].as_str().unwrap().starts_with("Tonight <ep"),
            "{e}"
        );
        let enclosure = &e["enclosure"][0];
        assert_eq!(enclosure["type"], "audio/mpeg");
        let href = enclosure["href"].as_str().unwrap();
        let name = href.strip_prefix("https://cdn.example.com/night/").unwrap();
        let on_disk = std::fs::metadata(fx.path().join("out").join(name))
            .unwrap()
            .len();
        assert_eq!(enclosure["length"], on_disk.to_string(), "{href}");
    }
    // Each episode links its captions and its chapters (two chapters, in order).
    for url in day2["transcripts"].as_array().unwrap() {
        assert!(url.as_str().unwrap().ends_with(".vtt"), "{url}");
    }
    let chapters = day2["chapters"][0].as_str().unwrap();
    let name = chapters
        .strip_prefix("https://cdn.example.com/night/")
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&fx.read(&format!("out/{name}"))).unwrap();
    let titles: Vec<&str> = json["chapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Headlines", "Weather"]);
    assert!(json["chapters"][1]["startTime"].as_f64().unwrap() > 0.0);

    // A feed narrate did not make is not written over.
    std::fs::write(fx.path().join("out/theirs.xml"), "<rss/>").unwrap();
    let out = narrate(
        fx.path(),
        &[
            "feed",
            "out/theirs.xml",
            "out/ep1.report.json",
            "--feed-base-url",
            "https://x.example",
            "--title",
            "T",
            "--image",
            "https://x.example/c.jpg",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(fx.path().join("out/theirs.xml")).unwrap(),
        "<rss/>"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_deadline_the_rows_that_are_complete_get_their_files() {
    let fx = Fixture::new(emulator::Config {
        latency_ms: 1_500,
        ..Default::default()
    })
    .await;
    let rows: String = (0..6)
        .map(|i| format!("row-{i},Row {i} is ready.,{NARRATOR}\n"))
        .collect();
    fx.write("rows.csv", &format!("id,text,voice_id\n{rows}"));
    let args = [
        "rows.csv",
        "--continuity",
        "none",
        "--split",
        "segments",
        "-o",
        "out/rows.mp3",
        "--output-format",
        "mp3_22050_32",
        "--concurrency",
        "2",
    ];
    // Two at a time, 1.5 s each: at 2 s two are done and two in flight, which finish; the last
    // two are never sent.
    let mut late = args.to_vec();
    late.extend(["--max-duration", "2s"]);
    let out = fx.run(&late).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(fx.tts_log().len(), 4);
    let report = fx.json("out/rows.report.json");
    let listed: Vec<&str> = report["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 4, "{listed:?}");
    let on_disk = files_under(&fx.path().join("out/rows"));
    assert_eq!(on_disk.len(), 4, "{on_disk:?}");
    for path in &listed {
        let probe = ffprobe_json(&fx.path().join(path), &["-show_format"]);
        assert_eq!(probe["format"]["format_name"], "mp3", "{path}");
    }
    for s in report["segments"].as_array().unwrap() {
        assert_eq!(s["status"] == "ok", !s["file"].is_null(), "{s}");
    }
    // The next run renders the other two and keeps the four.
    let out = fx.run(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fx.tts_log().len(), 6);
    let report = fx.json("out/rows.report.json");
    let reused = report["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["published"] == "reused")
        .count();
    assert_eq!(reused, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_sends_exactly_the_segments_that_failed() {
    let fx = Fixture::default().await;
    // Three of six name a voice the account does not have: 404, failed at once.
    let segments: String = (0..6)
        .map(|i| {
            let voice = if i % 2 == 1 {
                "NoSuchVoice000000000"
            } else {
                NARRATOR
            };
            format!("  - {{id: s{i}, voice_id: {voice}, text: \"Item {i} tonight.\"}}\n")
        })
        .collect();
    fx.write(
        "job.yaml",
        &format!("continuity: none\noutput: out/job.mp3\ndefaults: {{output_format: mp3_22050_32}}\nsegments:\n{segments}"),
    );
    let out = fx.run(&["job.yaml"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let first = fx.tts_log().len();
    let base = fx.base();
    let out = narrate(
        fx.path(),
        &["retry", "out/job.report.json", "--base-url", &base],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "they fail again: {}",
        stderr(&out)
    );
    let mut again: Vec<String> = fx.tts_log()[first..]
        .iter()
        .map(|e| e["body"]["text"].as_str().unwrap().to_string())
        .collect();
    again.sort();
    assert_eq!(
        again,
        ["Item 1 tonight.", "Item 3 tonight.", "Item 5 tonight."]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_that_never_answers_does_not_hold_the_job() {
    // A server that accepts and never answers.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ping", server.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in server.incoming() {
            held.push(stream);
        }
    });
    let fx = Fixture::default().await;
    chapter(&fx, 2);
    let started = std::time::Instant::now();
    let out = fx.run(&["job.yaml", "--notify-url", &url]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("ping"), "{}", stderr(&out));
    // Two pings of at most 5 s each, and the render; far less than a stalled connection.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
