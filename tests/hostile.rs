//! Hostile and careless input: inputs are never outputs, every write is atomic and link-safe,
//! every read and every response body is bounded, every number is checked, the key goes only to
//! the configured origin, every charged credit is counted, a damaged cache is never used, and
//! nothing is sent or written when narrate exits with 2.
//!
//! A small hostile HTTP server stands in for an API that redirects elsewhere, never stops
//! talking or asks to be retried in a hundred quintillion seconds.

use std::io::{BufRead, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use narrate::emulator::{self, Fault, Faults};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::*;

/// A manifest of two short segments in one chapter, writing `output`.
fn tiny_book(dir: &Path, output: &str) -> std::path::PathBuf {
    write(
        dir,
        "book.yaml",
        &format!(
            "output: {output}\ndefaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: mp3_22050_32}}\nsegments:\n  - {{id: a, chapter: One, text: \"Alice was beginning to get very tired.\"}}\n  - {{id: b, chapter: One, text: \"So she was considering in her own mind.\"}}\n"
        ),
    )
}

fn key_env() -> [(&'static str, &'static str); 1] {
    [("ELEVENLABS_API_KEY", SECRET_KEY)]
}

fn assert_nothing_sent(dir: &Path) {
    let log = request_log(dir);
    assert!(log.is_empty(), "requests were sent: {log:?}");
}

// ---------------------------------------------------------------------------------------------
// A hostile server.

/// What the hostile server does with a request.
#[derive(Clone)]
enum Behaviour {
    /// Every request is answered 307 to the same path on another origin.
    RedirectTo(String),
    /// TTS answers 200 with audio headers and a body that never ends.
    EndlessOk,
    /// TTS answers 500 with a body that never ends.
    EndlessError,
    /// TTS answers 429 with this `Retry-After`.
    RetryAfter(&'static str),
    /// `GET /v1/models` answers this JSON; TTS answers 400.
    Models(String),
    /// TTS answers 200 with audio headers and this body, whole, which is not audio of the
    /// format asked for.
    NotAudio(&'static [u8]),
}

/// One request the hostile server saw.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

struct Hostile {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hostile {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn hostile(behaviour: Behaviour) -> Hostile {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let task = tokio::spawn({
        let seen = seen.clone();
        async move {
            // Bounded: a test makes a handful of connections.
            for _ in 0..200 {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(answer(stream, behaviour.clone(), seen.clone()));
            }
        }
    });
    Hostile { base, seen, task }
}

/// Reads one request (head and body) and answers it as `behaviour` says, then closes.
async fn answer(
    mut stream: tokio::net::TcpStream,
    behaviour: Behaviour,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 1 << 20 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length.min(1 << 20) {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        headers,
    });
    let tts = method == "POST";
    let json = |status: &str, extra: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
            body.len()
        )
    };
    let not_found = json("404 Not Found", "", r#"{"detail":"Not Found"}"#);
    let reply = match &behaviour {
        Behaviour::RedirectTo(to) => format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: {to}{path}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        ),
        Behaviour::EndlessOk if tts => {
            "HTTP/1.1 200 OK\r\ncontent-type: audio/mpeg\r\ncharacter-cost: 38\r\nrequest-id: r1\r\nconnection: close\r\n\r\n".to_string()
        }
        Behaviour::EndlessError if tts => {
            "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/html\r\nconnection: close\r\n\r\n".to_string()
        }
        Behaviour::RetryAfter(value) if tts => json(
            "429 Too Many Requests",
            &format!("retry-after: {value}\r\n"),
            r#"{"detail":{"status":"system_busy","message":"busy"}}"#,
        ),
        Behaviour::Models(models) if path.starts_with("/v1/models") => {
            json("200 OK", "", models)
        }
        Behaviour::NotAudio(body) if tts => format!(
            "HTTP/1.1 200 OK\r\ncontent-type: audio/mpeg\r\nrequest-id: r1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
            body.len(),
            String::from_utf8_lossy(body)
        ),
        Behaviour::Models(_) if tts => json(
            "400 Bad Request",
            "",
            r#"{"detail":{"status":"invalid","message":"no"}}"#,
        ),
        _ => not_found,
    };
    if stream.write_all(reply.as_bytes()).await.is_err() {
        return;
    }
    if tts && matches!(behaviour, Behaviour::EndlessOk | Behaviour::EndlessError) {
        // Until the client hangs up, bounded at 4 GB.
        let block = vec![0x55u8; 64 * 1024];
        for _ in 0..65_536 {
            if stream.write_all(&block).await.is_err() {
                return;
            }
        }
    }
    let _ = stream.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Inputs are never destroyed.

#[tokio::test]
async fn an_output_or_side_file_that_is_an_input_is_refused_before_anything_is_sent() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    let base = fx.emu.base_url();
    // The manifest is named like the CUE sheet its own output would write.
    let manifest = "output: book.wav\ndefaults: {voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: pcm_16000}\nsegments:\n  - {id: a, chapter: One, text: Hello there.}\n";
    write(dir.path(), "book.cue", manifest);
    let out = run_against(dir.path(), &base, &["book.cue"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("book.cue") && err.contains("is the input"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("book.cue")).unwrap(),
        manifest
    );

    // A text_file that the captions would overwrite.
    write(
        dir.path(),
        "chapter.srt",
        "Alice was beginning to get very tired.",
    );
    write(
        dir.path(),
        "chapter.yaml",
        "output: chapter.wav\ndefaults: {voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: pcm_16000}\nsegments:\n  - {id: a, text_file: chapter.srt}\n",
    );
    let out = run_against(dir.path(), &base, &["chapter.yaml"]).await;
    refused(&out, "chapter.srt");

    // A text_file that a chapter file's captions would overwrite (`--split chapters`).
    let text = "The rabbit ran past.";
    write(dir.path(), "split-01-one.vtt", text);
    write(
        dir.path(),
        "split.yaml",
        "output: split.wav\ndefaults: {voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: pcm_16000}\nsegments:\n  - {id: a, chapter: One, text_file: split-01-one.vtt}\n",
    );
    let out = run_against(dir.path(), &base, &["split.yaml", "--split", "chapters"]).await;
    refused(&out, "split-01-one.vtt");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("split-01-one.vtt")).unwrap(),
        text
    );
    // With `--split segments`, an id that would name a hidden file is refused before sending.
    write(
        dir.path(),
        "ids.yaml",
        "output: ids.wav\ndefaults: {voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: pcm_16000}\nsegments:\n  - {id: .hidden, text: Hello there.}\n",
    );
    let out = run_against(dir.path(), &base, &["ids.yaml", "--split", "segments"]).await;
    refused(&out, "segment \".hidden\": its id would name a hidden file");

    // An output reached through a symlink and `..` that is the manifest itself.
    #[cfg(unix)]
    {
        std::fs::create_dir_all(dir.path().join("out/sub")).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("chapter.yaml"),
            dir.path().join("out/x.wav"),
        )
        .unwrap();
        let before = std::fs::read(dir.path().join("chapter.yaml")).unwrap();
        let out = run_against(
            dir.path(),
            &base,
            &["chapter.yaml", "-o", "out/sub/../x.wav"],
        )
        .await;
        refused(&out, "chapter.yaml");
        assert_eq!(
            std::fs::read(dir.path().join("chapter.yaml")).unwrap(),
            before
        );
    }

    // The key file is an input too.
    tiny_book(dir.path(), "out/book.wav");
    write(dir.path(), "out/book.vtt", "sk_key_in_a_file\n");
    let out = narrate(
        dir.path(),
        &[
            "book.yaml",
            "--base-url",
            &base,
            "--api-key-file",
            "out/book.vtt",
        ],
        &[],
    )
    .await;
    refused(&out, "out/book.vtt");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/book.vtt")).unwrap(),
        "sk_key_in_a_file\n"
    );
    assert_nothing_sent(dir.path());
}

#[tokio::test]
async fn two_manifests_with_one_output_are_refused_and_one_manifest_twice_renders_once() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    tiny_book(dir.path(), "out/book.mp3");
    let other = std::fs::read_to_string(dir.path().join("book.yaml"))
        .unwrap()
        .replace("Alice", "Bob");
    write(dir.path(), "other.yaml", &other);
    let out = fx.run(&["book.yaml", "other.yaml"]).await;
    refused(&out, "also written by");
    assert_nothing_sent(dir.path());

    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let out = fx
        .run(&["book.yaml", "sub/../book.yaml", "./book.yaml"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().filter(|l| l.starts_with("ok")).count(),
        1
    );
    assert_eq!(tts_log(dir.path()).len(), 2, "each request sent once");
}

#[tokio::test]
async fn an_output_that_cannot_be_written_is_refused_before_anything_is_paid() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    // A directory where the output should be.
    tiny_book(dir.path(), "out/book.mp3");
    std::fs::create_dir_all(dir.path().join("out/book.mp3")).unwrap();
    let out = fx.run(&["book.yaml"]).await;
    refused(&out, "is a directory");
    // A directory that cannot be made: a file stands in its way.
    write(dir.path(), "blocked", "a file");
    tiny_book(dir.path(), "blocked/book.mp3");
    let out = fx.run(&["book.yaml"]).await;
    refused(&out, "blocked");
    assert_nothing_sent(dir.path());
}

// ---------------------------------------------------------------------------------------------
// Every write is atomic and does not follow planted links.

#[cfg(unix)]
#[tokio::test]
async fn links_planted_at_outputs_are_replaced_and_a_state_dir_leading_elsewhere_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator_in(dir.path(), emulator::Config::default()).await;
    tiny_book(dir.path(), "out/book.mp3");
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let victim = write(dir.path(), "victim.txt", "precious");
    for name in [
        "out/book.report.json",
        "out/book.report.csv",
        "out/book.srt",
    ] {
        std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
    }
    // Leftovers of a killed run beside the output are removed.
    let leftover = write(dir.path(), "out/.book.mp3.narrate-Ab12Cd.part", "half");
    let out = run_against(dir.path(), &emu.base_url(), &["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    for name in [
        "out/book.report.json",
        "out/book.report.csv",
        "out/book.srt",
    ] {
        let meta = std::fs::symlink_metadata(dir.path().join(name)).unwrap();
        assert!(meta.is_file(), "{name} is a regular file now");
    }
    assert!(
        !leftover.exists(),
        "the killed run's temporary file is gone"
    );
    let parts = part_files(dir.path());
    assert!(parts.is_empty(), "{parts:?}");

    // A state directory that is a link to somewhere outside its parent.
    let elsewhere = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    tiny_book(&project, "out/book.mp3");
    std::os::unix::fs::symlink(elsewhere.path(), project.join(".narrate")).unwrap();
    let out = run_against(&project, &emu.base_url(), &["book.yaml"]).await;
    refused(&out, "is a symlink");
    assert!(
        std::fs::read_dir(elsewhere.path())
            .unwrap()
            .next()
            .is_none()
    );
    emu.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn outputs_take_their_mode_from_the_umask_and_a_shared_key_file_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    tiny_book(dir.path(), "out/book.mp3");
    let key = write(dir.path(), "key.txt", &format!("{SECRET_KEY}\n"));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let base = fx.emu.base_url();
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            // umask 027: new files 0640.
            Command::new("sh")
                .current_dir(&dir)
                .env_clear()
                .args([
                    "-c",
                    &format!(
                        "umask 027 && exec {} book.yaml --base-url {base} --api-key-file key.txt",
                        assert_cmd::cargo::cargo_bin!("narrate").display()
                    ),
                ])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("mode 644"), "{err}");
    assert!(!err.contains('\x1b'), "no colour off a terminal: {err:?}");
    assert!(!err.contains(SECRET_KEY));
    for name in ["out/book.mp3", "out/book.report.json", "out/book.vtt"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o640, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Every read is bounded.

#[cfg(unix)]
#[tokio::test]
async fn inputs_that_are_devices_pipes_or_huge_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let check = |args: Vec<String>| {
        let dir = dir.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            narrate(&dir, &args, &[]).await
        }
    };
    let manifest = |text_file: &str| {
        format!(
            "defaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb}}\nsegments:\n  - {{id: a, text_file: {text_file}}}\n"
        )
    };
    write(dir.path(), "zero.yaml", &manifest("/dev/zero"));
    let out = check(vec!["check".into(), "zero.yaml".into()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/dev/zero") && stderr(&out).contains("a device"),
        "{}",
        stderr(&out)
    );

    let fifo = dir.path().join("pipe.txt");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    write(dir.path(), "pipe.yaml", &manifest("pipe.txt"));
    let out = check(vec!["check".into(), "pipe.yaml".into()]).await;
    refused(&out, "a named pipe");
    // The manifest itself may be the pipe.
    let out = check(vec!["check".into(), "pipe.txt".into()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let big = std::fs::File::create(dir.path().join("big.txt")).unwrap();
    big.set_len(narrate::files::MAX_INPUT_BYTES + 1).unwrap();
    write(dir.path(), "big.yaml", &manifest("big.txt"));
    let out = check(vec!["check".into(), "big.yaml".into()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("big.txt") && stderr(&out).contains("limit"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_body_fails_its_request_with_flat_memory() {
    for behaviour in [Behaviour::EndlessOk, Behaviour::EndlessError] {
        let dir = tempfile::tempdir().unwrap();
        let server = hostile(behaviour).await;
        tiny_book(dir.path(), "out/book.mp3");
        let args = [
            "book.yaml",
            "--base-url",
            &server.base,
            "--max-retries",
            "1",
            "--retry-base-ms",
            "5",
            "--concurrency",
            "2",
        ]
        .map(String::from)
        .to_vec();
        let (out, peak_mb) = run_measured(dir.path(), args).await;
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(peak_mb < 256.0, "peak RSS {peak_mb} MB");
        let report = read_json(&dir.path().join("out/book.report.json"));
        let error = report["segments"][0]["error"].as_str().unwrap().to_string();
        if error.contains("HTTP 500") {
            assert!(!error.contains("UUUU".repeat(100).as_str()), "{error}");
        } else {
            assert!(error.contains("response body passed"), "{error}");
            // The endless 200s were generated and charged: 38 credits an attempt.
            assert_eq!(report["totals"]["credits"], 38.0 * 4.0, "{report}");
        }
    }
}

/// `book.yaml` against `base`, retrying `retries` times at once.
async fn run_retrying(dir: &Path, base: &str, retries: &str) -> std::process::Output {
    let args = ["book.yaml", "--base-url", base, "--max-retries", retries];
    narrate(
        dir,
        &[&args[..], &["--retry-base-ms", "5"]].concat(),
        &key_env(),
    )
    .await
}

#[tokio::test]
async fn a_200_whose_body_is_not_audio_is_retried_then_fails_and_is_never_kept() {
    // MP3 asked for, a page of HTML served; 16-bit PCM asked for, an odd number of bytes; a
    // WAV asked for, no RIFF header.
    for (format, body) in [
        (
            "mp3_22050_32",
            &b"<html><body>Service unavailable</body></html>"[..],
        ),
        ("pcm_16000", &b"\x01\x02\x03"[..]),
        ("wav_16000", &b"not a wave file at all"[..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let server = hostile(Behaviour::NotAudio(body)).await;
        write(
            dir.path(),
            "book.yaml",
            &format!(
                "output: out/book.wav\ndefaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: {format}}}\nsegments:\n  - {{id: a, text: \"Alice was beginning to get very tired.\"}}\n"
            ),
        );
        let out = run_retrying(dir.path(), &server.base, "1").await;
        assert_eq!(out.status.code(), Some(1), "{format}: {}", stderr(&out));
        let tts = server.seen().iter().filter(|s| s.method == "POST").count();
        assert_eq!(tts, 2, "{format}: sent, then retried once");
        let report = read_json(&dir.path().join("out/book.report.json"));
        let error = report["segments"][0]["error"].as_str().unwrap();
        assert!(error.contains("undecodable audio"), "{format}: {error}");
        assert!(!dir.path().join("out/book.wav").exists(), "{format}");
        // Nothing was kept: the next run asks again.
        let again = run_retrying(dir.path(), &server.base, "0").await;
        assert_eq!(again.status.code(), Some(1), "{format}: {}", stderr(&again));
        let tts = server.seen().iter().filter(|s| s.method == "POST").count();
        assert_eq!(tts, 3, "{format}: the second run sent it again");
    }
}

// ---------------------------------------------------------------------------------------------
// Every number is checked.

#[tokio::test]
async fn absurd_numbers_in_a_manifest_are_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("pause_after_ms: 100000000000", "pause_after_ms"),
        ("chapter_pause_ms: 86400000", "chapter_pause_ms"),
        ("language_code: english", "language_code"),
        ("language_code: EN", "language_code"),
        ("seed: -1", "seed"),
        ("seed: 4294967296", "seed"),
        ("max_request_chars: 3", "max_request_chars"),
    ];
    for (field, name) in cases {
        write(
            dir.path(),
            "bad.yaml",
            &format!(
                "defaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb, model_id: eleven_flash_v2_5}}\nsegments:\n  - id: a\n    text: Hello.\n    {field}\n"
            ),
        );
        let out = narrate(dir.path(), &["check", "bad.yaml"], &[]).await;
        assert_eq!(out.status.code(), Some(2), "{field}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("bad.yaml:") && stderr(&out).contains(name),
            "{field}: {}",
            stderr(&out)
        );
    }
    for header in ["lead_in_ms: 999999999999", "tail_ms: 600001"] {
        write(
            dir.path(),
            "bad.yaml",
            &format!(
                "{header}\ndefaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb}}\nsegments:\n  - {{id: a, text: Hello.}}\n"
            ),
        );
        let out = narrate(dir.path(), &["check", "bad.yaml"], &[]).await;
        assert_eq!(out.status.code(), Some(2), "{header}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(header.split(':').next().unwrap()),
            "{}",
            stderr(&out)
        );
    }
}

#[tokio::test]
async fn a_huge_retry_after_and_absurd_model_limits_do_not_crash_a_run() {
    let dir = tempfile::tempdir().unwrap();
    tiny_book(dir.path(), "out/book.mp3");
    let server = hostile(Behaviour::RetryAfter("1e20")).await;
    let out = run_against(
        dir.path(),
        &server.base,
        &["book.yaml", "--max-retries", "0"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert!(stderr(&out).contains("system_busy"), "{}", stderr(&out));

    let models = r#"[{"model_id":"eleven_multilingual_v2","maximum_text_length_per_request":0},{"model_id":"eleven_v3","maximum_text_length_per_request":18446744073709551615}]"#;
    let server = hostile(Behaviour::Models(models.to_string())).await;
    let out = run_against(
        dir.path(),
        &server.base,
        &["book.yaml", "--max-retries", "0"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("eleven_multilingual_v2") && err.contains("cannot be right"),
        "{err}"
    );
    // The requests still went out, split under the built-in limit, each once: a 400 without
    // request ids in the body is not sent again.
    assert_eq!(
        server
            .seen()
            .iter()
            .filter(|s| s.method == "POST" && s.path.starts_with("/v1/text-to-speech/"))
            .count(),
        2
    );
}

// ---------------------------------------------------------------------------------------------
// The key goes only where it was meant to go.

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed_and_the_key_stays_home() {
    let dir = tempfile::tempdir().unwrap();
    tiny_book(dir.path(), "out/book.mp3");
    let thief = hostile(Behaviour::EndlessError).await;
    let server = hostile(Behaviour::RedirectTo(thief.base.clone())).await;
    let out = run_against(dir.path(), &server.base, &["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        thief.seen().is_empty(),
        "the other host got {:?}",
        thief.seen()
    );
    let report = read_json(&dir.path().join("out/book.report.json"));
    let error = report["segments"][0]["error"].as_str().unwrap();
    assert!(error.contains(&thief.base), "{error}");
    assert!(error.contains("redirect"), "{error}");
    // Refused redirects are not retried: one attempt each.
    assert_eq!(report["totals"]["attempts"], 2);
    // The server itself did receive the key (it is the configured origin).
    assert!(server.seen().iter().any(|s| {
        s.headers
            .iter()
            .any(|(k, v)| k == "xi-api-key" && v == SECRET_KEY)
    }));
}

#[tokio::test]
async fn a_malformed_key_or_base_url_is_refused_before_anything_is_sent() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    tiny_book(dir.path(), "out/book.mp3");
    let base = fx.emu.base_url();
    for (content, expected) in [
        ("sk_one\nsk_two\n", "has 2 lines"),
        ("sk_one sk_two", "a space or a control character"),
        ("sk_\u{7}bell", "a space or a control character"),
        ("\n\n", "is empty"),
    ] {
        write(dir.path(), "key.txt", content);
        let out = narrate(
            dir.path(),
            &[
                "book.yaml",
                "--base-url",
                &base,
                "--api-key-file",
                "key.txt",
            ],
            &[],
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{content:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{}", stderr(&out));
        assert!(!stderr(&out).contains("sk_one"), "the key is never shown");
    }
    let out = narrate(
        dir.path(),
        &["book.yaml", "--base-url", &base],
        &[("ELEVENLABS_API_KEY", "sk_a\r\nInjected: header")],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    for url in [
        "http://[::1",
        "ftp://example.com",
        "http://",
        "http://user:pw@host",
    ] {
        let started = std::time::Instant::now();
        let out = run_against(dir.path(), url, &["book.yaml"]).await;
        assert_eq!(out.status.code(), Some(2), "{url}: {}", stderr(&out));
        assert!(stderr(&out).contains("--base-url"), "{}", stderr(&out));
        assert!(started.elapsed() < Duration::from_secs(20));
    }
    assert_nothing_sent(dir.path());
}

// ---------------------------------------------------------------------------------------------
// Every charged credit is counted.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_of_cut_deliveries_are_in_the_report_and_the_budget() {
    let long = "Alice was beginning to get very tired of sitting by her sister on the bank. Once or twice she had peeped into the book her sister was reading. It had no pictures or conversations in it. And what is the use of a book, thought Alice, without pictures or conversations? So she was considering in her own mind, as well as she could.";
    // With `enable_logging: false` nothing is kept in the speech history: a cut delivery cannot
    // be recovered and is paid for again.
    let book = |dir: &Path, logging: bool| {
        write(
            dir,
            "book.yaml",
            &format!(
                "output: out/book.mp3\ndefaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: mp3_22050_32, max_request_chars: 60, enable_logging: {logging}}}\nsegments:\n  - {{id: a, chapter: One, text: \"{long}\"}}\n  - {{id: b, chapter: Two, text: \"{long}\"}}\n"
            ),
        );
    };
    let faulty = || emulator::Config {
        faults: Faults {
            rate: 0.4,
            seed: 7,
            // Cut after the headers arrived: the client knows what it was charged. (A reset
            // before any answer is charged too, but only the history can tell; see README.)
            kinds: vec![Fault::Truncated],
        },
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator_in(dir.path(), faulty()).await;
    book(dir.path(), true);
    let out = run_against(
        dir.path(),
        &emu.base_url(),
        &["book.yaml", "--max-retries", "8"],
    )
    .await;
    let report = read_json(&dir.path().join("out/book.report.json"));
    let charged = emu.state.credits_used();
    let cut = tts_log(dir.path())
        .iter()
        .filter(|e| e["fault"].as_str() == Some("truncated"))
        .count();
    assert!(cut > 0, "some deliveries were cut");
    assert_eq!(
        report["totals"]["credits"].as_f64().unwrap(),
        charged,
        "{}",
        stderr(&out)
    );
    let summed: f64 = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["credits"].as_f64().unwrap())
        .sum();
    assert_eq!(summed, charged);
    assert!(
        stdout(&out).contains(&format!("{charged} credits")),
        "{}",
        stdout(&out)
    );
    emu.stop().await;

    // --max-credits holds for what the API charged, cut deliveries included.
    let clean: f64 = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["characters"].as_f64().unwrap())
        .sum();
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator_in(dir.path(), faulty()).await;
    book(dir.path(), false);
    let max = (clean * 1.05).round();
    let out = run_against(
        dir.path(),
        &emu.base_url(),
        &[
            "book.yaml",
            "--max-retries",
            "8",
            "--max-credits",
            &max.to_string(),
        ],
    )
    .await;
    let charged = emu.state.credits_used();
    assert!(charged <= max, "charged {charged} > --max-credits {max}");
    assert_eq!(
        out.status.code(),
        Some(3),
        "the budget stopped it, with the budget's status: {}",
        stdout(&out)
    );
    let report = read_json(&dir.path().join("out/book.report.json"));
    assert_eq!(report["stopped_by"], "budget");
    assert_eq!(report["totals"]["credits"].as_f64().unwrap(), charged);
    emu.stop().await;
}

// ---------------------------------------------------------------------------------------------
// A damaged cache is never silently used.

#[tokio::test]
async fn a_damaged_cache_entry_is_rendered_again_with_a_warning_naming_it() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    tiny_book(dir.path(), "out/book.mp3");
    let base = fx.emu.base_url();
    let out = run_against(dir.path(), &base, &["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let clean = std::fs::read(dir.path().join("out/book.mp3")).unwrap();
    let entries: Vec<_> = files_under(&dir.path().join(".narrate/cache"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "audio"))
        .collect();
    assert_eq!(entries.len(), 2);

    // Bit rot inside one cached MP3 (same length); zeros over the other.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0xA5;
    }
    std::fs::write(&entries[0], &bytes).unwrap();
    let len = std::fs::metadata(&entries[1]).unwrap().len();
    std::fs::write(&entries[1], vec![0u8; usize::try_from(len).unwrap()]).unwrap();
    let out = run_against(dir.path(), &base, &["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    for entry in &entries {
        let name = entry.with_extension("json");
        assert!(
            err.contains(&*name.file_name().unwrap().to_string_lossy()),
            "{err}"
        );
    }
    assert!(err.contains("SHA-256"), "{err}");
    assert_eq!(tts_log(dir.path()).len(), 4, "both rendered again");
    assert_eq!(
        std::fs::read(dir.path().join("out/book.mp3")).unwrap(),
        clean
    );

    // Metadata with impossible values is a miss too, never a panic.
    let meta_path = entries[0].with_extension("json");
    let mut meta: Value = read_json(&meta_path);
    meta["issued_unix"] = serde_json::json!(1e300);
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let out = run_against(dir.path(), &base, &["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("issued_unix"), "{}", stderr(&out));
    assert_eq!(tts_log(dir.path()).len(), 5);
}

// ---------------------------------------------------------------------------------------------
// Nothing sent, nothing written on exit 2.

#[tokio::test]
async fn usage_errors_send_nothing_and_write_nothing() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    tiny_book(dir.path(), "out/book.mp3");
    let base = fx.emu.base_url();
    let models = dir.path().join(".narrate/models.json");

    let out = run_against(dir.path(), &base, &["book.yaml", "--only", "nope"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = run_against(dir.path(), &base, &["book.yaml", "--max-credits", "10"]).await;
    refused(&out, "--max-credits");
    let out = run_against(dir.path(), &base, &["book.yaml", "--only", "a"]).await;
    refused(&out, "not in the cache");

    // A held lock.
    std::fs::create_dir_all(dir.path().join(".narrate")).unwrap();
    let lock = std::fs::File::create(dir.path().join(".narrate/lock")).unwrap();
    lock.try_lock().unwrap();
    let out = run_against(dir.path(), &base, &["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("another narrate run"),
        "{}",
        stderr(&out)
    );
    drop(lock);

    assert_nothing_sent(dir.path());
    assert!(!models.exists(), "models.json was written");
    assert!(!dir.path().join("out/book.report.json").exists());
}

// ---------------------------------------------------------------------------------------------
// Manifests.

#[tokio::test]
async fn hostile_manifests_are_refused_with_the_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "other.txt", "secret words");
    let cases: [(&str, &str, &str); 5] = [
        (
            "bad.csv",
            "id,text,text,voice_id\na,Hello,Bye,JBFqnCBsd6RMkjVDRZzb\n",
            "duplicate column",
        ),
        (
            "bad.yaml",
            "defaults: {voice_id: JBFqnCBsd6RMkjVDRZzb}\nsegments:\n  - id: a\n    text: !include other.txt\n",
            "bad.yaml:4",
        ),
        (
            "bad.yaml",
            "segments:\n  - {id: a, text: Hi., voice_id: ..}\n",
            "voice_id",
        ),
        (
            "bad.yaml",
            "segments:\n  - {id: a, text: \"a/b\", voice_id: \"JBF/../x\"}\n",
            "voice_id",
        ),
        (
            "bad.yaml",
            "defaults: {voice_id: JBFqnCBsd6RMkjVDRZzb}\nsegments:\n  - {id: a, text: \"\\0\\0\\x01\\n\"}\n",
            "the text is empty",
        ),
    ];
    for (name, content, expected) in cases {
        write(dir.path(), name, content);
        let out = narrate(
            dir.path(),
            &["check", name, "--voice-id", "JBFqnCBsd6RMkjVDRZzb"],
            &[],
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{content}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(name) && stderr(&out).contains(expected),
            "{content}: {}",
            stderr(&out)
        );
    }
}

#[tokio::test]
async fn a_manifest_of_100000_segments_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = String::from(
        "output: big.wav\ndefaults: {voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: pcm_16000}\nsegments:\n",
    );
    for i in 0..100_000 {
        yaml.push_str(&format!(
            "  - {{id: s{i}, chapter: C{}, text: Word {i}.}}\n",
            i / 1000
        ));
    }
    write(dir.path(), "big.yaml", &yaml);
    let out = narrate(dir.path(), &["check", "big.yaml"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("100000 segments"), "{}", stdout(&out));
}

// ---------------------------------------------------------------------------------------------
// Signals and leftovers.

/// Spawns narrate with `-v` and returns the child once its stderr shows `line`, with the rest of
/// stderr collected by a thread.
fn spawn_until(
    dir: &Path,
    args: &[&str],
    line: &str,
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    let mut child = spawn_narrate(dir, args, Stdio::piped(), Stdio::piped());
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut l = String::new();
        if reader.read_line(&mut l).unwrap() == 0 {
            panic!("narrate ended before {line:?}: {seen}");
        }
        seen.push_str(&l);
        if l.contains(line) {
            break;
        }
    }
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        seen + &rest
    });
    (child, rest)
}

fn signal(child: &std::process::Child, name: &str) {
    assert!(
        Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_stops_like_sigterm_and_sigint_during_assembly_leaves_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let config = emulator::Config {
        latency_ms: 400,
        ..Default::default()
    };
    let emu = emulator_in(dir.path(), config).await;
    // Long pauses make assembly take a while: 8 × 10 minutes of 48 kHz silence, measured.
    let mut yaml = String::from(
        "output: out/book.wav\ndefaults: {voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: pcm_48000, pause_after_ms: 600000}\nsegments:\n",
    );
    for i in 0..8 {
        yaml.push_str(&format!("  - {{id: s{i}, text: Sentence number {i}.}}\n"));
    }
    write(dir.path(), "book.yaml", &yaml);
    let base = emu.base_url();
    let args = [
        "book.yaml",
        "--base-url",
        &base,
        "--concurrency",
        "1",
        "-v",
        "--loudness",
    ];
    // SIGHUP once the first request is on its way: the run stops like on SIGTERM.
    let (child, rest) = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            spawn_until(&dir, &args, "planned")
        }
    })
    .await
    .unwrap();
    for _ in 0..500 {
        if !tts_log(dir.path()).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&child, "HUP");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let err = rest.join().unwrap();
    assert_eq!(out.status.code(), Some(130), "{err}");
    let report = read_json(&dir.path().join("out/book.report.json"));
    assert_eq!(report["interrupted"], true);
    assert!(!dir.path().join("out/book.wav").exists());

    // Everything cached; a previous output in place. SIGINT while assembling leaves it.
    let out = run_against(dir.path(), &base, &["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::write(dir.path().join("out/book.wav"), "previous output").unwrap();
    let (child, rest) = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            spawn_until(&dir, &args, "assembling")
        }
    })
    .await
    .unwrap();
    signal(&child, "INT");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let err = rest.join().unwrap();
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(stdout(&out).starts_with("interrupted"), "{}", stdout(&out));
    let report = read_json(&dir.path().join("out/book.report.json"));
    assert_eq!(report["interrupted"], true);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/book.wav")).unwrap(),
        "previous output"
    );
    let parts = part_files(dir.path());
    assert!(parts.is_empty(), "{parts:?}");
    emu.stop().await;
}

// ---------------------------------------------------------------------------------------------
// `plan` with a refused key.

#[tokio::test]
async fn plan_with_a_refused_key_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator_in(
        dir.path(),
        emulator::Config {
            api_key: Some("sk_the_right_one".into()),
            ..Default::default()
        },
    )
    .await;
    tiny_book(dir.path(), "out/book.mp3");
    let out = narrate(
        dir.path(),
        &["plan", "book.yaml", "--base-url", &emu.base_url()],
        &key_env(),
    )
    .await;
    refused(&out, "refused the key");
    assert!(stderr(&out).contains("invalid_api_key"), "{}", stderr(&out));
    emu.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The emulator is a server on a network.

#[tokio::test]
async fn the_emulator_closes_idle_connections_and_caps_them() {
    let emu = emulator::start(emulator::Config {
        max_connections: 3,
        header_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(emu.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Over the cap: closed as soon as it is accepted.
    let mut extra = tokio::net::TcpStream::connect(emu.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_millis(200), extra.read(&mut buf))
        .await
        .expect("the connection over the cap is closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // Idle ones are closed after the header timeout, freeing their slots.
    for stream in &mut idle {
        let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
            .await
            .expect("an idle connection is closed")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    // A slow client sending half a head is closed too.
    let mut slow = tokio::net::TcpStream::connect(emu.addr).await.unwrap();
    slow.write_all(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(3), slow.read(&mut buf))
        .await
        .expect("a slow head is cut off")
        .unwrap_or(0);
    assert!(n == 0 || buf.starts_with(b"HTTP/1.1 408"), "{buf:?}");
    let models = reqwest::Client::new()
        .get(format!("{}/v1/models", emu.base_url()))
        .header("xi-api-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    emu.stop().await;
}

#[tokio::test]
async fn the_emulator_refuses_speeds_outside_the_documented_range() {
    let emu = emulator::start(emulator::Config::default()).await.unwrap();
    for (speed, bound) in [(0.25, 0.7), (4.0, 1.2)] {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb",
                emu.base_url()
            ))
            .header("xi-api-key", "k")
            .json(&serde_json::json!({"text": "Hello.", "voice_settings": {"speed": speed}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422);
        let body: Value = response.json().await.unwrap();
        let item = &body["detail"][0];
        assert_eq!(
            item["loc"],
            serde_json::json!(["body", "voice_settings", "speed"])
        );
        assert_eq!(item["input"], speed);
        let limit = if speed < 1.0 {
            &item["ctx"]["ge"]
        } else {
            &item["ctx"]["le"]
        };
        assert_eq!(*limit, bound);
    }
    emu.stop().await;
}

#[tokio::test]
async fn the_emulator_command_checks_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = narrate(dir.path(), &["emulate", "--fault-rate", "2"], &[]).await;
    refused(&out, "--fault-rate");
    let out = narrate(
        dir.path(),
        &[
            "emulate",
            "--listen",
            "127.0.0.1:0",
            "--request-log",
            "missing/dir/log.jsonl",
        ],
        &[],
    )
    .await;
    refused(&out, "missing/dir/log.jsonl");
}

/// Every state a kill during a cache write can leave (the write order is audio, then metadata,
/// each through a temporary file renamed into place), made on disk: each damaged entry is
/// rendered again, the sound ones are used, and no temporary file is left.
#[tokio::test]
async fn every_state_a_kill_during_a_cache_write_leaves_is_rendered_again() {
    let fx = Fixture::default().await;
    let segments: String = (0..6)
        .map(|i| {
            format!("  - {{id: s{i}, chapter: c{i}, text: \"Sentence number {i} of six.\"}}\n")
        })
        .collect();
    fx.write(
        "book.yaml",
        &format!("output: out/book.mp3\ndefaults: {{voice_id: {NARRATOR}}}\nsegments:\n{segments}"),
    );
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let clean = fx.read("out/book.mp3");
    let mut audio: Vec<_> = files_under(&fx.path().join(".narrate/cache"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "audio"))
        .collect();
    audio.sort();
    assert_eq!(audio.len(), 6);
    let part = |path: &std::path::Path| {
        let name = path.file_name().unwrap().to_string_lossy();
        path.with_file_name(format!(".{name}.narrate-Kx9Qz2.part"))
    };
    // Killed while writing the audio: only its temporary file exists.
    let bytes = std::fs::read(&audio[0]).unwrap();
    std::fs::write(part(&audio[0]), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::remove_file(&audio[0]).unwrap();
    std::fs::remove_file(audio[0].with_extension("json")).unwrap();
    // Killed after the audio, before the metadata.
    std::fs::remove_file(audio[1].with_extension("json")).unwrap();
    // Killed while writing the metadata: the audio, and the metadata's temporary file.
    let meta = audio[2].with_extension("json");
    let json = std::fs::read(&meta).unwrap();
    std::fs::write(part(&meta), &json[..json.len() / 3]).unwrap();
    std::fs::remove_file(&meta).unwrap();
    // A disk that lost the audio's tail under complete metadata.
    std::fs::write(&audio[3], &std::fs::read(&audio[3]).unwrap()[..100]).unwrap();

    let out = fx.run(&["book.yaml", "-v"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The two temporary files are counted as they are removed.
    assert!(
        stderr(&out).contains("removed the temporary files of cache writes")
            && stderr(&out).contains("removed=2"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fx.tts_log().len(),
        6 + 4,
        "exactly the four damaged entries are rendered again"
    );
    let report = fx.json("out/book.report.json");
    let cached = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["cached"] == true)
        .count();
    assert_eq!(cached, 2);
    assert_eq!(fx.read("out/book.mp3"), clean);
    let parts = part_files(fx.path());
    assert!(parts.is_empty(), "{parts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_in_the_place_of_a_cache_entry_stops_its_request_before_it_is_paid_for() {
    let fx = Fixture::default().await;
    fx.write(
        "book.yaml",
        &format!(
            "output: out/book.mp3\ndefaults: {{voice_id: {NARRATOR}}}\nsegments:\n  - {{id: a, text: \"One sentence to keep.\"}}\n"
        ),
    );
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The state (the cache, its records of published files) is kept in `.narrate`, nowhere else.
    let mut top: Vec<String> = std::fs::read_dir(fx.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, [".narrate", "book.yaml", "out", "requests.jsonl"]);
    let audio: Vec<_> = files_under(&fx.path().join(".narrate/cache"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "audio"))
        .collect();
    assert_eq!(audio.len(), 1);
    // The entry is gone and a folder stands where its audio would be written.
    std::fs::remove_file(&audio[0]).unwrap();
    std::fs::remove_file(audio[0].with_extension("json")).unwrap();
    std::fs::create_dir(&audio[0]).unwrap();
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is in the way of its cache entry"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fx.tts_log().len(), 1, "nothing sent that could not be kept");
}
