//! The command line as a user meets it: help, usage errors, plan, voices and models.

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = narrate(dir.path(), &["--help"], &[]).await;
    assert_eq!(out.status.code(), Some(0));
    for word in [
        "render",
        "plan",
        "voices",
        "models",
        "emulate",
        "--emulate",
        "--concurrency",
        "--api-key-file",
    ] {
        assert!(stdout(&out).contains(word), "help mentions {word}");
    }
    write(
        dir.path(),
        "m.yaml",
        "output: o.wav\nsegments:\n  - {id: a, text: Hi., voice_id: JBFqnCBsd6RMkjVDRZzb}\n",
    );
    let out = narrate(dir.path(), &["m.yaml"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("ELEVENLABS_API_KEY"),
        "{}",
        stderr(&out)
    );
    let out = narrate(
        dir.path(),
        &["m.yaml", "m.yaml", "-o", "x.wav", "--emulate"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("one manifest"));
    let out = narrate(
        dir.path(),
        &["m.yaml", "--emulate", "--concurrency", "zero"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let out = narrate(dir.path(), &[], &[]).await;
    assert_eq!(out.status.code(), Some(2), "a manifest is required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_sends_nothing_and_counts_cache_hits() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    let long = "Alice was beginning to get very tired. ".repeat(20);
    write(
        dir.path(),
        "m.yaml",
        &format!(
            "output: o.wav\ndefaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: pcm_16000, max_request_chars: 300}}\nsegments:\n  - {{id: a, chapter: One, text: \"{long}\"}}\n  - {{id: b, chapter: One, model_id: eleven_v3, text: Hi there.}}\n"
        ),
    );
    let out = narrate(dir.path(), &["plan", "m.yaml"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("a#1") && text.contains("a#3") && text.contains("b#1"),
        "{text}"
    );
    assert!(text.contains("request ids, in order") && text.contains("text context, in parallel"));
    assert!(text.contains("0 cached"), "{text}");
    assert!(request_log(dir.path()).is_empty(), "plan sends nothing");

    let out = narrate(
        dir.path(),
        &["m.yaml", "--base-url", &fx.emu.base_url()],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sent = request_log(dir.path()).len();
    let out = narrate(
        dir.path(),
        &["plan", "m.yaml", "--base-url", &fx.emu.base_url()],
        &[],
    )
    .await;
    assert!(
        stdout(&out).contains("4 requests") && stdout(&out).contains("4 cached"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("about 0 credits"));
    assert_eq!(request_log(dir.path()).len(), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voices_and_models_list_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let out = narrate(dir.path(), &["voices", "--emulate"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().count(),
        1 + narrate::emulator::data::catalogue().len()
    );
    let out = narrate(
        dir.path(),
        &["voices", "--emulate", "--search", "british"],
        &[],
    )
    .await;
    assert!(stdout(&out).contains("George") && !stdout(&out).contains("Rachel"));
    let out = narrate(dir.path(), &["models", "--emulate"], &[]).await;
    assert!(stdout(&out).contains("eleven_multilingual_v2") && stdout(&out).contains("10000"));
}

/// The demo manifest, writing to `out/demo.mp3` beside it.
const DEMO: &str = include_str!("../manifests/demo.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_tables_and_plan_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "demo.yaml",
        &DEMO.replace("../out/demo.mp3", "out/demo.mp3"),
    );
    let out = narrate(dir.path(), &["-h"], &[]).await;
    insta::assert_snapshot!(stdout(&out), @r#"
        Render manifests of text into narrated audio with the ElevenLabs text-to-speech API

        Usage: narrate [OPTIONS] <MANIFEST>...
               narrate <COMMAND>

        Commands:
          render       Render each manifest (the default command)
          assemble     Build every output from the cache alone (after shards rendered it): sends nothing, needs no key
          plan         Show the requests, characters and estimated credits of each manifest; sends no TTS request
          check        Validate manifests without sending anything
          voices       List the account's voices (GET /v2/voices, every page)
          models       List the models and their per-request character limits (GET /v1/models)
          emulate      Run the built-in ElevenLabs-compatible API server
          review       Write the review page of a render again, beside its report
          import       Turn a book (EPUB, Markdown, text, HTML) into a manifest and one text file per chapter
          retry        Render again only the segments a report lists as failed (the others from the cache), with the render flags after the report
          feed         Add the episodes of finished renders to a podcast feed (RSS 2.0, Apple and Podcasting 2.0 tags), or update them
          audition     Render the book's opening passage with each candidate voice, side by side on one page, the cost said first (the chosen voice's takes are the book's)
          completions  Print a shell's completion script for narrate (bash, zsh, fish, powershell, elvish)
          man          Print narrate's manual page (roff), for man -l or a man directory
          help         Print this message or the help of the given subcommand(s)

        Arguments:
          <MANIFEST>...  Manifests to render (.yaml, .yml or .csv), or books (.epub, .md, .txt, .html) imported in memory

        Options:
          -o, --output <PATH>                 Output file (.wav, .mp3 or .m4b); one manifest only
              --concurrency <N|auto>          Requests in flight at once: a number, or auto (follow the account's limit) [default: auto]
              --rate <N>                      Requests per second, every attempt counted [default: 10]
              --max-retries <N>               Retries of one request after a retryable error [default: 4]
              --request-timeout <SECS>        Seconds before one attempt times out [default: 240]
              --state-dir <DIR>               Cache and run state (default: .narrate/ beside each manifest)
              --no-cache                      Neither read nor write the cache
              --only <ID>...                  Render these segments again (all others must be cached), with the cached neighbours as context
              --only-file <FILE>              Like --only, with the ids in a file: one a line, `#` starts a comment (the review page saves one)
              --chapters <LIST>               Only these chapters, by number (as --split chapters numbers them) or title: 2,5-7,"Pig and Pepper"
              --other-chapters <omit|cached>  With --chapters, the other chapters: left out (omit; the output is OUTPUT-STEM.chapters-N.EXT) or taken from the cache into the whole output while the listed ones are rendered again (cached) [default: omit] [possible values: omit, cached]
              --jobs <N>                      Files assembled at once with --split (default: the core count)
              --library <DIR>                 Write the output where Audiobookshelf finds it: DIR/<Author>/<Title>/, with cover.jpg, desc.txt and reader.txt
              --max-credits <N>               Refuse to start above this many estimated credits, and stop sending before spending more
              --max-duration <DURATION>       Stop sending at this deadline (90s, 45m, 2h, 1h30m): requests in flight finish, the report is written, exit status 4
              --exit-nothing-to-do <N>        Exit with this status when there was nothing to do: every request cached and every output unchanged (default 0)
              --summary-json <PATH>           Write the run's summary (exit status, counts, credits, seconds, reports) to this file as one JSON object
              --metrics-textfile <PATH>       Write the run's metrics in the Prometheus text format to this file (for node_exporter's textfile collector)
              --notify-url <URL>              Ping a dead-man's switch: URL/start at the start, URL on success, URL/<exit status> otherwise, the summary as the body
              --loudness                      Measure loudness (EBU R128, true peak, RMS) of each segment and the whole output
              --loudness-target <LUFS>        Scale the output to this integrated loudness (LUFS), keeping the true peak under -1 dBTP (.mp3 output is then re-encoded)
              --audiobook                     Check the output against audiobook (ACX-style) requirements, pass or fail each, in the report
              --profile <NAME>                Also deliver the book to a store, into OUTPUT-FOLDER/NAME/: its format, room tone, loudness, credits and file naming, each file measured and checked (repeatable: acx, inaudio, google-play, apple, podcast)
              --sample                        With --profile, also write each store's retail sample (one to five minutes of the first chapter after the credits)
              --split <SPLIT>                 One output file, one per chapter (OUTPUT-STEM-01-chapter-title.EXT) or one per segment (OUTPUT-STEM/ID.EXT) [default: none] [possible values: none, chapters, segments]
              --gapless                       Join .mp3 output sample-exactly and encode it once, instead of copying the responses' frames
              --timestamps                    Render through /with-timestamps and write word-timed captions (.srt, .vtt)
              --retime                        With --timestamps, render again (and pay again for) the audio cached without character timings
              --read-along                    Also write OUTPUT-STEM.read-along.epub: the text read along with the chapter files' audio (EPUB 3 Media Overlays; needs --split chapters; sentence by sentence with --timestamps)
              --progress <PROGRESS>           Progress bar on stderr: auto (when stderr is a terminal), always, never [default: auto] [possible values: auto, always, never]
              --cache-url <URL>               A cache shared by every machine of a job: s3://BUCKET/PREFIX, gs://..., az://... or file:///DIR (credentials from the store's own environment variables) [env: NARRATE_CACHE_URL]
              --cache-fallback <error|local>  When the shared cache cannot be reached: error (nothing is sent) or local (a warning, then this machine's cache alone) [default: error] [possible values: error, local]
              --shards <N>                    With assemble: how many shards rendered the job, to name the shard of a missing request
              --shard <I/N>                   Render only this share of the run: I/N (I from 1), or auto/N with a Kubernetes Indexed Job's JOB_COMPLETION_INDEX; writes the share's report, no book
              --shard-by <chain|manifest>     What --shard divides: chain (the chapters of the books, balanced by characters) or manifest (whole books) [default: chain] [possible values: chain, manifest]
              --voice-id <ID>                 Voice for segments that name none
              --model-id <ID>                 Model for segments that name none
              --output-format <FORMAT>        output_format for manifests that name none
              --continuity <chapter|none>     continuity for manifests that state none: chapter (chain a chapter's segments) or none (every segment on its own, all in parallel) [possible values: chapter, none]
              --api-key-file <PATH>           Read the API key from this file (otherwise ELEVENLABS_API_KEY)
              --base-url <URL>                The API's base URL [env: ELEVENLABS_BASE_URL=] [default: https://api.elevenlabs.io]
              --emulate                       Use the built-in emulator on a loopback port: no key, no network, synthetic audio
          -v, --verbose...                    More logging on stderr (-v info, -vv debug)
          -q, --quiet                         Only errors on stderr
              --log-format <LOG_FORMAT>       Log lines as text or as JSON objects (for nightly jobs) [default: text] [possible values: text, json]
          -h, --help                          Print help (see more with '--help')
          -V, --version                       Print version
    "#);
    let out = narrate(dir.path(), &["models", "--emulate"], &[]).await;
    insta::assert_snapshot!(stdout(&out), @r#"
        model_id                 max_chars  credits languages  name
        eleven_multilingual_v2       10000        1        29  Eleven Multilingual v2
        eleven_v3                     5000        1        32  Eleven v3
        eleven_flash_v2_5            40000      0.5        32  Eleven Flash v2.5
        eleven_turbo_v2_5            40000      0.5        32  Eleven Turbo v2.5
        eleven_flash_v2              30000      0.5         1  Eleven Flash v2
        eleven_turbo_v2              30000      0.5         1  Eleven Turbo v2
        eleven_multilingual_v1       10000        1         8  Eleven Multilingual v1
        eleven_monolingual_v1        10000        1         1  Eleven English v1
    "#);
    let out = narrate(
        dir.path(),
        &["voices", "--emulate", "--search", "british"],
        &[],
    )
    .await;
    insta::assert_snapshot!(stdout(&out), @r#"
        voice_id               name         category   gender   accent      description
        JBFqnCBsd6RMkjVDRZzb   George       premade    male     british     Warm, captivating storyteller
        onwK4e9ZLuTAKqWW03F9   Daniel       premade    male     british     Steady broadcaster
        pFZP5JQG7iQjIQuC4Bku   Lily         premade    female   british     Velvety actress
        Xb7hH8MSUJpSbSDYk0k2   Alice        premade    female   british     Clear, engaging educator
    "#);
    let out = narrate(dir.path(), &["plan", "demo.yaml"], &[]).await;
    insta::assert_snapshot!(stdout(&out), @r#"
        demo.yaml → out/demo.mp3 (mp3_44100_128)
          chain 1: chapter "Chapter 1", voice JBFqnCBsd6RMkjVDRZzb, model eleven_multilingual_v2: 3 requests, request ids, in order
            ch1-title#1                  34 chars  to send  previous: -; next: text of ch1-opening#1
            ch1-opening#1               218 chars  to send  previous: ids of ch1-title#1; next: text of ch1-thought#1
            ch1-thought#1                14 chars  to send  previous: ids of ch1-title#1, ch1-opening#1; next: -
          chain 2: chapter "Chapter 1", voice Xb7hH8MSUJpSbSDYk0k2, model eleven_multilingual_v2: 2 requests, request ids, in order
            ch1-alice#1                  32 chars  to send  previous: -; next: text of ch1-alice-2#1
            ch1-alice-2#1                35 chars  to send  previous: ids of ch1-alice#1; next: -
          chain 3: chapter "Chapter 2", voice JBFqnCBsd6RMkjVDRZzb, model eleven_multilingual_v2: 2 requests, request ids, in order
            ch2-title#1                  31 chars  to send  previous: -; next: text of ch2-opening#1
            ch2-opening#1               211 chars  to send  previous: ids of ch2-title#1; next: -
          total: 7 segments, 7 requests, 575 characters, 0 cached, about 575 credits to render
    "#);
}

/// The fields the parser accepts at one place, read from its unknown-field error.
async fn accepted_fields(dir: &std::path::Path, yaml: &str) -> std::collections::BTreeSet<String> {
    write(dir, "probe.yaml", yaml);
    let out = narrate(dir, &["check", "probe.yaml"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let list = err
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("{err}"));
    list.trim()
        .split(", ")
        .map(|f| f.trim_matches('`').to_string())
        .collect()
}

fn schema_fields(v: &serde_json::Value) -> std::collections::BTreeSet<String> {
    v["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifest_schema_matches_what_the_parser_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schema/manifest.schema.json")).unwrap();
    let segment = &schema["definitions"]["segment"];
    let seg = "segments:\n  - {id: a, text: x, voice_id: v";
    assert_eq!(
        accepted_fields(dir.path(), "zzz: 1\nsegments: []\n").await,
        schema_fields(&schema)
    );
    assert_eq!(
        accepted_fields(dir.path(), &format!("{seg}, zzz: 1}}\n")).await,
        schema_fields(segment)
    );
    assert_eq!(
        accepted_fields(
            dir.path(),
            &format!("{seg}, voice_settings: {{zzz: 1}}}}\n")
        )
        .await,
        schema_fields(&segment["properties"]["voice_settings"])
    );
    assert_eq!(
        accepted_fields(
            dir.path(),
            &format!("{seg}, pronunciation_dictionary_locators: [{{zzz: 1}}]}}\n")
        )
        .await,
        schema_fields(&segment["properties"]["pronunciation_dictionary_locators"]["items"])
    );
    // Defaults take every segment field but the segment's own identity and text.
    let mut defaults = schema_fields(segment);
    for own in ["id", "text", "text_file"] {
        defaults.remove(own);
    }
    assert_eq!(defaults, schema_fields(&schema["definitions"]["defaults"]));
    // Enumerations agree with the tool's own tables.
    let formats: Vec<&str> = narrate::format::ALL_FORMATS
        .iter()
        .copied()
        .filter(|f| !f.starts_with("opus"))
        .collect();
    let in_schema: Vec<&str> = segment["properties"]["output_format"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(in_schema, formats);
    let models: Vec<&str> = narrate::models::MODELS.iter().map(|m| m.model_id).collect();
    let in_schema: Vec<&str> = segment["properties"]["model_id"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(in_schema, models);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_validates_every_example_and_sends_nothing() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifests: Vec<String> = [
        "demo.yaml",
        "alice-ch1.yaml",
        "dialogue.yaml",
        "nightly.csv",
    ]
    .iter()
    .map(|m| root.join("manifests").join(m).display().to_string())
    .collect();
    let mut args = vec!["check", "--base-url", fx.emu.base_url().leak()];
    args.extend(manifests.iter().map(String::as_str));
    let out = narrate(dir.path(), &args, &[("ELEVENLABS_API_KEY", SECRET_KEY)]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("ok "))
            .count(),
        4
    );
    assert!(stdout(&out).contains("7 voice names resolved"));
    assert!(tts_log(dir.path()).is_empty(), "check sends no TTS request");
    // An unknown voice name is an error naming the file, line and candidates.
    write(
        dir.path(),
        "v.yaml",
        "output: v.wav\nsegments:\n  - {id: a, text: Hi., voice: Ri}\n",
    );
    let out = narrate(
        dir.path(),
        &["check", "v.yaml", "--base-url", &fx.emu.base_url()],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("v.yaml:3") && stderr(&out).contains("River (SAz9YHcvj6GT2YYXdXww)"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_json_json_logs_and_the_progress_bar() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    write(
        dir.path(),
        "demo.yaml",
        &DEMO.replace("../out/demo.mp3", "out/demo.mp3"),
    );
    let out = narrate(
        dir.path(),
        &[
            "plan",
            "demo.yaml",
            "--json",
            "--base-url",
            &fx.emu.base_url(),
        ],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let doc = &plan["manifests"][0];
    assert_eq!(doc["totals"]["requests"], 7);
    assert_eq!(doc["chains"].as_array().unwrap().len(), 3);
    assert_eq!(
        doc["chains"][0]["requests"][1]["previous"],
        serde_json::json!({"kind": "ids", "of": ["ch1-title#1"]})
    );
    assert_eq!(
        plan["balance"]["remaining_credits"], 10_000_000.0,
        "the balance is read with a key"
    );

    let out = narrate(
        dir.path(),
        &[
            "demo.yaml",
            "--base-url",
            &fx.emu.base_url(),
            "-v",
            "--log-format",
            "json",
        ],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let json_lines: Vec<serde_json::Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect();
    assert!(
        json_lines
            .iter()
            .any(|l| l["level"] == "INFO" && l["fields"]["message"] == "planned"),
        "{err}"
    );
    assert!(
        !err.contains("ETA"),
        "off a terminal, auto draws no bar (only the logs): {err}"
    );
    assert!(!err.contains(SECRET_KEY) && !stdout(&out).contains(SECRET_KEY));
    let summary = stdout(&out);
    assert!(
        summary.starts_with("ok out/demo.mp3: 7 segments ok, 0 failed, 575 credits"),
        "{summary}"
    );
}

#[tokio::test]
async fn verbose_logs_are_narrates_own_and_rust_log_overrides_them() {
    let fx = Fixture::default().await;
    fx.write(
        "b.yaml",
        &format!(
            "output: out/b.wav\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32}}\nsegments:\n  - {{id: a, text: \"Hello there, how are you today?\"}}\n"
        ),
    );
    // MP3 responses decoded into a WAV: symphonia logs at info level while decoding.
    let out = fx.run(&["b.yaml", "-v"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("planned").count(), 1, "{err}");
    assert!(err.contains("assembling"), "{err}");
    assert!(!err.contains("estimating duration"), "{err}");
    let base = fx.base();
    // A new take, so the output is assembled (and decoded) again rather than kept.
    let out = narrate(
        fx.path(),
        &["b.yaml", "--base-url", &base, "--only", "a"],
        &[("ELEVENLABS_API_KEY", SECRET_KEY), ("RUST_LOG", "info")],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("estimating duration"),
        "RUST_LOG=info shows every crate: {err}"
    );
    assert!(err.contains("planned"), "{err}");
}

/// Runs narrate under a pseudo-terminal (`script`), as a person at a terminal would; returns
/// what the terminal showed.
fn on_a_terminal(dir: &std::path::Path, args: &str) -> String {
    let bin = assert_cmd::cargo::cargo_bin!("narrate")
        .display()
        .to_string();
    let out = std::process::Command::new("script")
        .current_dir(dir)
        .env_clear()
        .env("ELEVENLABS_API_KEY", SECRET_KEY)
        .env("TERM", "xterm")
        .args(["-qfec", &format!("{bin} {args}"), "/dev/null"])
        .output()
        .expect("script (util-linux) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_bar_is_drawn_on_a_terminal_and_only_there() {
    let fx = Fixture::new(narrate::emulator::Config {
        latency_ms: 150,
        ..Default::default()
    })
    .await;
    fx.write(
        "demo.yaml",
        &DEMO.replace("../out/demo.mp3", "out/demo.mp3"),
    );
    let base = fx.base();
    let dir = fx.path().to_path_buf();
    let shown = tokio::task::spawn_blocking(move || {
        let auto = on_a_terminal(
            &dir,
            &format!("demo.yaml --base-url {base} --no-cache --concurrency 1"),
        );
        let never = on_a_terminal(
            &dir,
            &format!("demo.yaml --base-url {base} --no-cache --concurrency 1 --progress never"),
        );
        (auto, never)
    })
    .await
    .unwrap();
    let (auto, never) = shown;
    // What only the bar prints: the count over the total, and the ETA.
    assert!(
        auto.contains("/7 requests") && auto.contains("ETA"),
        "{auto}"
    );
    assert!(auto.contains("ok out/demo.mp3"), "{auto}");
    assert!(
        !never.contains("/7 requests") && !never.contains("ETA"),
        "{never}"
    );
    assert!(!auto.contains(SECRET_KEY));
}
