//! A job over several machines: shards rendering their share of a book into a shared cache on
//! a real object store (SeaweedFS's S3 gateway), `assemble` building the book from it alone,
//! racing and killed processes, and the inputs that must be refused before anything is sent.
//! The emulator's speech history is the oracle of what was paid for.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use narrate::emulator;
use serde_json::Value;

use crate::recovery::generations;
use crate::util::{Fixture, NARRATOR, RABBIT, SECRET_KEY, narrate, stderr, stdout};
use crate::weed::{self, Weed};

/// A book of twelve chapters, two voices each, from the sample book's openings.
pub(crate) fn twelve_chapters(fx: &Fixture) {
    let mut yaml = format!(
        "output: out/book.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32}}\nsegments:\n"
    );
    for c in 1..=12 {
        let text = std::fs::read_to_string(format!("samples/alice/ch{c:02}.txt")).unwrap();
        let words: Vec<&str> = text.split_whitespace().skip(4).take(60).collect();
        let (a, b) = words.split_at(30);
        let (a, b) = (a.join(" ").replace('"', "'"), b.join(" ").replace('"', "'"));
        yaml.push_str(&format!(
            "  - {{id: c{c}-a, chapter: Chapter {c}, text: \"Chapter {c}. {a}.\"}}\n  - {{id: c{c}-b, chapter: Chapter {c}, voice_id: {RABBIT}, text: \"{b}.\"}}\n"
        ));
    }
    fx.write("book.yaml", &yaml);
}

/// A running store with `bucket` in it, and the twelve-chapter book before an emulator that
/// answers after `latency_ms`.
async fn store_and_book(bucket: &str, latency_ms: u64) -> (Weed, Fixture) {
    let weed = Weed::start().await;
    weed.bucket(bucket).await;
    let fx = Fixture::new(emulator::Config {
        latency_ms,
        ..Default::default()
    })
    .await;
    twelve_chapters(&fx);
    (weed, fx)
}

/// An environment as the run helpers take it.
fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Runs narrate against the fixture's emulator with the store's environment.
async fn run(fx: &Fixture, weed: &Weed, args: &[&str]) -> Output {
    let base = fx.base();
    // A command (plan, assemble) comes first, its flags after it.
    let (command, args) = match args.first() {
        Some(&c) if c == "plan" => (vec![c], &args[1..]),
        _ => (vec![], args),
    };
    let mut all = command;
    all.extend_from_slice(&["--base-url", base.as_str()]);
    if all.len() == 2 {
        all.extend_from_slice(&["--retry-base-ms", "5"]);
    }
    all.extend_from_slice(args);
    let env = weed.env(weed::SECRET_KEY);
    let mut env = pairs(&env);
    env.push(("ELEVENLABS_API_KEY", SECRET_KEY));
    narrate(fx.path(), &all, &env).await
}

/// Every text the emulator generated, by how many times.
pub(crate) async fn counts(fx: &Fixture) -> HashMap<String, usize> {
    generations(fx).await
}

/// The segment ids of a report.
fn segment_ids(report: &Value) -> Vec<String> {
    report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shards_share_a_book_through_an_object_store_and_assemble_builds_it_alone() {
    let (weed, fx) = store_and_book("books", 50).await;
    let url = "s3://books/alice";
    // Each shard's share, shown before anything is sent.
    let plan = run(&fx, &weed, &["plan", "book.yaml", "--shard", "2/4"]).await;
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    assert!(
        stdout(&plan).contains("shard 2/4: 1 manifest(s), "),
        "{}",
        stdout(&plan)
    );
    assert!(fx.tts_log().is_empty());

    // Four processes at once, each with its own state directory (its own machine).
    let shards: Vec<_> = (1..=4)
        .map(|i| {
            let (shard, state) = (format!("{i}/4"), format!("state-{i}"));
            let args = [
                "book.yaml",
                "--shard",
                &shard,
                "--cache-url",
                url,
                "--state-dir",
                &state,
            ];
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let (fx, weed) = (&fx, &weed);
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                run(fx, weed, &args).await
            }
        })
        .collect();
    let outs = futures::future::join_all(shards).await;
    let mut owned = Vec::new();
    let mut owner = HashMap::new();
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(
            out.status.code(),
            Some(0),
            "shard {}: {}",
            i + 1,
            stderr(out)
        );
        let report = fx.json(&format!("out/book.shard-{}-of-4.report.json", i + 1));
        assert_eq!(report["shard"], format!("{}/4", i + 1));
        for id in segment_ids(&report) {
            owner.insert(id.clone(), format!("{}/4", i + 1));
            owned.push(id);
        }
    }
    owned.sort();
    assert_eq!(
        owned.len(),
        24,
        "every segment in exactly one shard: {owned:?}"
    );
    owned.dedup();
    assert_eq!(owned.len(), 24, "no segment in two shards");
    assert!(
        !fx.path().join("out/book.mp3").exists(),
        "a shard writes no book"
    );
    let generated = counts(&fx).await;
    assert_eq!(generated.len(), 24, "{generated:?}");
    assert!(generated.values().all(|&n| n == 1), "{generated:?}");
    let objects = weed.objects("books", "alice").await;
    assert_eq!(
        objects.iter().filter(|o| o.ends_with(".entry")).count(),
        24,
        "{objects:?}"
    );

    // The book from the shared cache alone: no key, nothing sent.
    let sent = fx.tts_log().len();
    let env = weed.env(weed::SECRET_KEY);
    let env = pairs(&env);
    let base = fx.base();
    let args = [
        "assemble",
        "book.yaml",
        "--base-url",
        &base,
        "--cache-url",
        url,
        "--shards",
        "4",
    ];
    let out = narrate(
        fx.path(),
        &[&args[..], &["--state-dir", "state-assemble"]].concat(),
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fx.tts_log().len(), sent, "assemble sends nothing");
    let assembled = fx.read("out/book.mp3");
    let report = fx.json("out/book.report.json");
    assert_eq!(report["totals"]["cache_hits"], 24);
    // Each segment with the shard that rendered it.
    for s in report["segments"].as_array().unwrap() {
        assert_eq!(s["shard"], owner[s["id"].as_str().unwrap()], "{s}");
    }

    // The same book by one process on its own: the same bytes.
    let out = run(
        &fx,
        &weed,
        &[
            "book.yaml",
            "--state-dir",
            "state-single",
            "-o",
            "single/book.mp3",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        fx.read("single/book.mp3") == assembled,
        "assembled book differs from one process's"
    );
    // Its report places every segment as the single process's does, apart from timings.
    let single = fx.json("single/book.report.json");
    let fields = ["id", "chapter", "voice_id", "characters", "status"];
    let placed = ["start_seconds", "end_seconds"];
    let (ours, theirs) = (
        report["segments"].as_array().unwrap(),
        single["segments"].as_array().unwrap(),
    );
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(theirs) {
        for f in fields.iter().chain(&placed) {
            assert_eq!(a[*f], b[*f], "{f}: {a} / {b}");
        }
    }
    assert_eq!(
        report["totals"]["audio_seconds"],
        single["totals"]["audio_seconds"]
    );

    // All four again: nothing is sent.
    let sent = fx.tts_log().len();
    for i in 1..=4 {
        let (shard, state) = (format!("{i}/4"), format!("state-{i}"));
        let args = [
            "book.yaml",
            "--shard",
            &shard,
            "--cache-url",
            url,
            "--state-dir",
            &state,
        ];
        let out = run(&fx, &weed, &args).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    assert_eq!(
        fx.tts_log().len(),
        sent,
        "a second run of every shard sends nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_racing_on_the_same_requests_keep_one_entry_each_and_both_use_it() {
    let (weed, fx) = store_and_book("race", 200).await;
    let url = "s3://race/job";
    let both = ["a", "b"].map(|state| {
        let args = [
            "book.yaml",
            "--shard",
            "1/1",
            "--cache-url",
            url,
            "--state-dir",
            state,
        ];
        let (fx, weed) = (&fx, &weed);
        async move { run(fx, weed, &args).await }
    });
    let [a, b] = futures::future::join_all(both).await.try_into().unwrap();
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    assert_eq!(b.status.code(), Some(0), "{}", stderr(&b));
    // What was paid twice: only requests both had in flight before either stored an answer.
    let generated = counts(&fx).await;
    assert_eq!(generated.len(), 24);
    let twice = generated.values().filter(|&&n| n == 2).count();
    assert!(generated.values().all(|&n| n <= 2), "{generated:?}");
    eprintln!("racing processes: {twice} of 24 requests generated by both");
    // One object per request, and both machines hold exactly its audio.
    let objects = weed.objects("race", "job").await;
    let entries: Vec<&String> = objects.iter().filter(|o| o.ends_with(".entry")).collect();
    assert_eq!(entries.len(), 24, "{objects:?}");
    for entry in entries {
        let key = Path::new(entry)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let audio = |state: &str| fx.read(&format!("{state}/cache/{}/{key}.audio", &key[..2]));
        let object = reqwest::get(format!("{}/{}", weed.filer, entry.trim_start_matches('/')))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let tail = &object[object.len() - audio("a").len()..];
        assert!(audio("a") == audio("b"), "{key}: the two machines differ");
        assert!(
            tail == audio("a").as_slice(),
            "{key}: the machines' audio is not the object's"
        );
        // The emulator's audio is the same for the same text, so the request ids tell whose
        // answer each machine kept: the object's, on both.
        let line = object.split(|&b| b == b'\n').nth(1).unwrap();
        let header: Value = serde_json::from_slice(line).unwrap();
        for state in ["a", "b"] {
            let meta = fx.json(&format!("{state}/cache/{}/{key}.json", &key[..2]));
            assert_eq!(
                meta["request_id"], header["meta"]["request_id"],
                "{state}: {key}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_killed_mid_run_and_started_again_pays_for_nothing_twice() {
    let (weed, fx) = store_and_book("killed", 1500).await;
    let url = "s3://killed/job";
    let base = fx.base();
    let env = weed.env(weed::SECRET_KEY);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("narrate"));
    child
        .current_dir(fx.path())
        .env_clear()
        .env("ELEVENLABS_API_KEY", SECRET_KEY)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args([
            "book.yaml",
            "--base-url",
            &base,
            "--shard",
            "2/2",
            "--cache-url",
            url,
        ])
        .args(["--state-dir", "state", "--concurrency", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = child.spawn().unwrap();
    let mut in_flight = 0;
    for _ in 0..2000 {
        in_flight = fx.emu.state.in_flight();
        if in_flight >= 2 && !fx.tts_log().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(in_flight >= 2, "{in_flight} in flight");
    child.kill().unwrap();
    child.wait().unwrap();
    while fx.emu.state.in_flight() > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let args = [
        "book.yaml",
        "--shard",
        "2/2",
        "--cache-url",
        url,
        "--state-dir",
        "state",
    ];
    let out = run(&fx, &weed, &args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(
        &fx,
        &weed,
        &[
            "book.yaml",
            "--shard",
            "1/2",
            "--cache-url",
            url,
            "--state-dir",
            "other",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let generated = counts(&fx).await;
    assert_eq!(generated.len(), 24, "{generated:?}");
    assert!(
        generated.values().all(|&n| n == 1),
        "generated twice: {generated:?}"
    );
    // Everything the killed shard had is on the shelf: a third machine assembles the book.
    let env = pairs(&env);
    let args = [
        "assemble",
        "book.yaml",
        "--base-url",
        &base,
        "--cache-url",
        url,
        "--state-dir",
        "third",
    ];
    let out = narrate(fx.path(), &args, &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A server that answers every request with a redirect elsewhere.
fn redirecting_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            use std::io::{Read, Write};
            let mut stream = stream;
            let mut buf = [0u8; 8192];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 301 Moved Permanently\r\nLocation: http://198.51.100.7/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_cache_that_cannot_be_used_and_bad_shards_are_refused_before_anything_is_sent() {
    let weed = Weed::start().await;
    weed.bucket("exists").await;
    let fx = Fixture::default().await;
    twelve_chapters(&fx);
    let base = fx.base();
    let refused = |out: &Output, words: &str| {
        let err = stderr(out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(words), "expected {words:?} in: {err}");
        for secret in [weed::SECRET_KEY, "wrong_secret_DO_NOT_LEAK", SECRET_KEY] {
            assert!(
                !err.contains(secret) && !stdout(out).contains(secret),
                "{err}"
            );
        }
    };
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["--cache-url", "s3://no-such-bucket/x"],
            weed::SECRET_KEY,
            "bucket does not exist",
        ),
        (
            vec!["--cache-url", "s3://exists/x"],
            "wrong_secret_DO_NOT_LEAK",
            "refused the credentials",
        ),
        (
            vec!["--cache-url", "ftp://exists/x"],
            weed::SECRET_KEY,
            "not a store narrate knows",
        ),
        (vec!["--shard", "0/4"], weed::SECRET_KEY, "--shard \"0/4\""),
        (vec!["--shard", "5/4"], weed::SECRET_KEY, "--shard \"5/4\""),
        (vec!["--shard", "1/0"], weed::SECRET_KEY, "--shard \"1/0\""),
        (
            vec!["--shard", "auto/4"],
            weed::SECRET_KEY,
            "JOB_COMPLETION_INDEX",
        ),
    ];
    for (flags, secret, words) in cases {
        let env = weed.env(secret);
        let mut env = pairs(&env);
        env.push(("ELEVENLABS_API_KEY", SECRET_KEY));
        let args = [&["book.yaml", "--base-url", &base][..], &flags[..]].concat();
        let out = narrate(fx.path(), &args, &env).await;
        refused(&out, words);
    }
    // An endpoint that redirects: not followed, said plainly.
    let redirecting = redirecting_server();
    let env = [
        ("AWS_ACCESS_KEY_ID", weed::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", weed::SECRET_KEY),
        ("AWS_ENDPOINT", redirecting.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("ELEVENLABS_API_KEY", SECRET_KEY),
    ];
    let args = [
        "book.yaml",
        "--base-url",
        &base,
        "--cache-url",
        "s3://exists/x",
    ];
    let out = narrate(fx.path(), &args, &env).await;
    refused(&out, "redirects");
    assert!(fx.tts_log().is_empty(), "nothing is sent");
    assert!(
        !weed::has_files(&fx.path().join("out")),
        "nothing is written"
    );
    // With --cache-fallback local, the unreachable store is a warning and the run goes on.
    let args = [&args[..], &["--cache-fallback", "local"]].concat();
    let out = narrate(fx.path(), &args, &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("this machine's cache alone"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_or_foreign_object_in_a_shared_folder_is_a_miss_never_audio_in_a_book() {
    let fx = Fixture::default().await;
    twelve_chapters(&fx);
    let shelf = fx.path().join("shelf");
    let url = format!("file://{}", shelf.display());
    let args = [
        "book.yaml",
        "--cache-url",
        url.as_str(),
        "--state-dir",
        "one",
    ];
    let out = fx.run(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first = fx.read("out/book.mp3");
    let mut entries = crate::util::files_under(&shelf);
    entries.retain(|p| p.extension().is_some_and(|e| e == "entry"));
    entries.sort();
    assert_eq!(entries.len(), 24);
    // One entry torn (its audio cut), one another request's, one not narrate's at all.
    let torn = std::fs::read(&entries[0]).unwrap();
    std::fs::write(&entries[0], &torn[..torn.len() - 100]).unwrap();
    std::fs::copy(&entries[2], &entries[1]).unwrap();
    std::fs::write(&entries[3], b"<html>not an entry</html>").unwrap();
    let sent = fx.tts_log().len();
    let out = fx
        .run(&[
            "book.yaml",
            "--cache-url",
            url.as_str(),
            "--state-dir",
            "two",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("is not used").count(), 3, "{err}");
    assert!(
        err.contains("torn")
            && err.contains("another request")
            && err.contains("not a narrate cache entry"),
        "{err}"
    );
    assert_eq!(
        fx.tts_log().len(),
        sent + 3,
        "the three bad entries are rendered again"
    );
    assert!(
        fx.read("out/book.mp3") == first,
        "the book is the same as the first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assemble_with_a_shard_missing_names_its_segments_and_owner_and_writes_nothing() {
    let fx = Fixture::default().await;
    twelve_chapters(&fx);
    let shelf = format!("file://{}", fx.path().join("shelf").display());
    let args = ["book.yaml", "--shard", "1/2", "--cache-url", shelf.as_str()];
    let out = fx.run(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mine = segment_ids(&fx.json("out/book.shard-1-of-2.report.json"));
    let sent = fx.tts_log().len();
    let base = fx.base();
    let args = [
        "assemble",
        "book.yaml",
        "--base-url",
        &base,
        "--cache-url",
        &shelf,
    ];
    let args = [&args[..], &["--shards", "2", "--state-dir", "elsewhere"]].concat();
    let out = narrate(fx.path(), &args, &[]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(fx.tts_log().len(), sent, "assemble sends nothing");
    assert!(
        !fx.path().join("out/book.mp3").exists(),
        "nothing is written"
    );
    let named: Vec<&str> = err.lines().filter(|l| l.contains(": segment ")).collect();
    assert!(
        err.contains(&format!(
            "{} request(s) are not in the cache",
            24 - mine.len()
        )),
        "{err}"
    );
    assert_eq!(named.len(), (24 - mine.len()).min(20), "{err}");
    for line in named {
        assert!(line.ends_with("rendered by shard 2/2"), "{line}");
        let id = line.split('"').nth(1).unwrap();
        assert!(
            !mine.iter().any(|m| m == id),
            "{id} was rendered by shard 1"
        );
    }
    // With shard 2 rendered as well, the same command builds the book.
    let args2 = ["book.yaml", "--shard", "2/2", "--cache-url", shelf.as_str()];
    let out = fx.run(&args2).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = narrate(fx.path(), &args, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(fx.path().join("out/book.mp3").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlist_is_divided_by_whole_manifests_with_shard_by_manifest() {
    let fx = Fixture::default().await;
    twelve_chapters(&fx);
    let book = std::fs::read_to_string(fx.path().join("book.yaml")).unwrap();
    fx.write(
        "other.yaml",
        &book
            .replace("out/book.mp3", "out/other.mp3")
            .replace("Chapter", "Part"),
    );
    fx.write(
        "third.yaml",
        &book
            .replace("out/book.mp3", "out/third.mp3")
            .replace("Chapter", "Book"),
    );
    let shelf = format!("file://{}", fx.path().join("shelf").display());
    let manifests = ["book.yaml", "other.yaml", "third.yaml"];
    let mut reports = Vec::new();
    for i in 1..=2 {
        let shard = format!("{i}/2");
        let flags = [
            "--shard",
            &shard,
            "--shard-by",
            "manifest",
            "--cache-url",
            &shelf,
        ];
        let base = fx.base();
        let plan_args = [
            &["plan"][..],
            &manifests,
            &flags[..4],
            &["--base-url", &base],
        ]
        .concat();
        let plan = narrate(fx.path(), &plan_args, &[("ELEVENLABS_API_KEY", SECRET_KEY)]).await;
        assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
        let shown = stdout(&plan);
        let out = fx.run(&[&manifests[..], &flags].concat()).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        for m in ["book", "other", "third"] {
            let report = fx
                .path()
                .join(format!("out/{m}.shard-{i}-of-2.report.json"));
            if report.exists() {
                // Whole manifests: every segment of it in this shard, as its plan showed.
                assert_eq!(segment_ids(&crate::util::read_json(&report)).len(), 24);
                assert!(shown.contains(&format!("{m}.yaml")), "{shown}");
                reports.push(m);
            } else {
                assert!(!shown.contains(&format!("{m}.yaml")), "{shown}");
            }
        }
    }
    reports.sort();
    assert_eq!(
        reports,
        ["book", "other", "third"],
        "each manifest in exactly one shard"
    );
    // The three books share their rabbit's lines (the same text, voice and settings): each
    // distinct request was paid once across both shards, through the shared cache.
    let generated = counts(&fx).await;
    assert_eq!(generated.len(), 36 + 12);
    assert!(generated.values().all(|&n| n == 1), "{generated:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assemble_takes_the_dictionary_its_state_remembers_and_refuses_what_needs_the_account() {
    let fx = Fixture::default().await;
    let shelf = format!("file://{}", fx.path().join("shelf").display());
    fx.write(
        "names.yaml",
        &format!(
            "output: out/names.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32}}\npronunciations:\n  - {{word: Cheshire, alias: CHESH-er}}\nsegments:\n  - {{id: a, text: \"The Cheshire Cat grinned.\"}}\n  - {{id: b, text: \"Nothing to say here.\"}}\n"
        ),
    );
    let out = fx.run(&["names.yaml", "--cache-url", &shelf]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sent = fx.tts_log().len();
    let base = fx.base();
    let assemble = |state: &'static str| {
        let args = [
            "assemble",
            "names.yaml",
            "--base-url",
            &base,
            "--cache-url",
            &shelf,
        ];
        [&args[..], &["--state-dir", state, "-o", "again/names.mp3"]].concat()
    };
    // Where the dictionary is remembered, the requests that carry it are found in the cache.
    let out = narrate(fx.path(), &assemble(".narrate"), &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fx.tts_log().len(), sent, "assemble sends nothing");
    assert!(fx.read("again/names.mp3") == fx.read("out/names.mp3"));
    // Elsewhere it cannot know the dictionary: refused, naming the way out.
    let out = narrate(fx.path(), &assemble("elsewhere"), &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("dictionaries/"), "{}", stderr(&out));
    // Voice names need the account to become ids.
    fx.write(
        "named.yaml",
        "output: out/named.mp3\nsegments:\n  - {id: a, voice: George, text: \"Hello there.\"}\n",
    );
    let args = [
        "assemble",
        "named.yaml",
        "--base-url",
        &base,
        "--cache-url",
        &shelf,
    ];
    let out = narrate(fx.path(), &args, &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("voice names"), "{}", stderr(&out));
    assert_eq!(fx.tts_log().len(), sent, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_stored_here_but_never_put_on_the_shared_cache_is_put_by_the_next_run() {
    let fx = Fixture::default().await;
    twelve_chapters(&fx);
    let shelf = fx.path().join("shelf");
    let url = format!("file://{}", shelf.display());
    let out = fx.run(&["book.yaml", "--cache-url", &url]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A kill between storing an answer here and putting it on the shelf: the object is gone.
    let entries = |dir: &Path| {
        let mut found = crate::util::files_under(dir);
        found.retain(|p| p.extension().is_some_and(|e| e == "entry"));
        found.sort();
        found
    };
    let lost = entries(&shelf)[5].clone();
    let bytes = std::fs::read(&lost).unwrap();
    std::fs::remove_file(&lost).unwrap();
    let sent = fx.tts_log().len();
    let out = fx.run(&["book.yaml", "--cache-url", &url]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fx.tts_log().len(), sent, "nothing is sent again");
    assert_eq!(entries(&shelf).len(), 24, "the missing entry is put again");
    assert!(std::fs::read(&lost).unwrap() == bytes, "the same entry");
}
