//! The command line as a user meets it: help, usage errors, plan, voices and models.

use narrate::emulator;

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
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator_in(dir.path(), emulator::Config::default()).await;
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
        &["m.yaml", "--base-url", &emu.base_url()],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sent = request_log(dir.path()).len();
    let out = narrate(
        dir.path(),
        &["plan", "m.yaml", "--base-url", &emu.base_url()],
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
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voices_and_models_list_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let out = narrate(dir.path(), &["voices", "--emulate"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().count(),
        1 + narrate::emulator::data::VOICES.len()
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
