//! Hostile input on the surfaces added last: invisible text, side files that cannot be written,
//! titles that carry newlines and markup into side-file formats, credentials in `--base-url`.
//! Each test fails when its protection is removed (tried when it was written).

use std::path::Path;

use narrate::emulator;

use crate::util::*;

/// A manifest of two chapters whose titles and texts carry what a side file must not take in.
fn hostile_titles(dir: &Path) {
    write(
        dir,
        "book.yaml",
        "output: out/book.mp3\n\
         defaults: {voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: mp3_22050_32}\n\
         segments:\n  \
         - {id: a, chapter: \"One\\nFILE \\\"/etc/passwd\\\" WAVE\\n  TRACK 99 AUDIO\", text: \"Alice --> the rabbit <b>ran</b> & hid.\"}\n  \
         - {id: b, chapter: \"Two\\r\\n#EXTINF:1,evil\\n/etc/shadow\", text: \"So she was considering.\"}\n",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invisible_text_is_refused_before_anything_is_sent() {
    let fx = Fixture::default().await;
    fx.write(
        "book.yaml",
        "output: out/book.mp3\ndefaults: {voice_id: JBFqnCBsd6RMkjVDRZzb}\nsegments:\n  - {id: a, text: \"Real words.\"}\n  - {id: ghost, text: \"\\u200B\\uFEFF\\u200D\\u2060\\u00AD\"}\n",
    );
    let checked = narrate(fx.path(), &["check", "book.yaml"], &[]).await;
    let rendered = fx.run(&["book.yaml"]).await;
    for out in [checked, rendered] {
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("segment \"ghost\""),
            "{}",
            stderr(&out)
        );
    }
    assert!(
        fx.tts_log().is_empty(),
        "nothing is sent for invisible text"
    );
    assert!(!fx.path().join("out/book.mp3").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_file_that_cannot_be_written_is_found_before_paying() {
    let fx = Fixture::default().await;
    hostile_titles(fx.path());
    for side in [
        "book.srt",
        "book.vtt",
        "book.cue",
        "book.m3u8",
        "book.review.html",
    ] {
        let blocker = fx.path().join("out").join(side);
        std::fs::create_dir_all(&blocker).unwrap();
        let out = fx.run(&["book.yaml"]).await;
        assert_eq!(out.status.code(), Some(2), "{side}: {}", stderr(&out));
        assert!(stderr(&out).contains(side), "{side}: {}", stderr(&out));
        assert!(fx.tts_log().is_empty(), "{side}: nothing is paid for");
        assert!(!fx.path().join("out/book.mp3").exists(), "{side}");
        std::fs::remove_dir(&blocker).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn titles_and_texts_cannot_add_lines_or_markup_to_side_files() {
    let fx = Fixture::default().await;
    hostile_titles(fx.path());
    let out = fx.run(&["book.yaml", "--split", "chapters"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = |name: &str| String::from_utf8(fx.read(name)).unwrap();

    // The CUE sheet: one FILE and one TRACK per chapter file, every line a known command.
    let cue = text("out/book.cue");
    let commands: Vec<&str> = cue
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert!(
        commands
            .iter()
            .all(|c| ["PERFORMER", "TITLE", "FILE", "TRACK", "INDEX", "REM"].contains(c)),
        "{cue}"
    );
    assert_eq!(
        commands.iter().filter(|c| **c == "FILE").count(),
        2,
        "{cue}"
    );
    assert_eq!(
        commands.iter().filter(|c| **c == "TRACK").count(),
        2,
        "{cue}"
    );
    assert!(
        !cue.lines().any(|l| l.trim_start().starts_with("TRACK 99")),
        "{cue}"
    );

    // The playlist: `#EXTM3U`, then an `#EXTINF` and a path per file, and the paths are the
    // files written.
    let m3u = text("out/book.m3u8");
    let entries: Vec<&str> = m3u.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(entries.len(), 2, "{m3u}");
    for e in entries {
        assert!(
            fx.path().join("out").join(e).is_file(),
            "{e} is a file written: {m3u}"
        );
    }

    // The captions of each chapter file, read by ffmpeg: one cue per request, none added by
    // the text.
    let requests = fx.tts_log().len();
    for ext in ["srt", "vtt"] {
        let files: Vec<_> = files_under(&fx.path().join("out"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        assert_eq!(files.len(), 2, "{ext}: one per chapter file");
        let mut cues = 0;
        for path in &files {
            let probe = ffprobe_json(
                path,
                &["-count_packets", "-show_entries", "stream=nb_read_packets"],
            );
            cues += probe["streams"][0]["nb_read_packets"]
                .as_str()
                .unwrap()
                .parse::<usize>()
                .unwrap();
        }
        assert_eq!(cues, requests, "{ext}");
        if ext == "vtt" {
            let all: String = files
                .iter()
                .map(|p| std::fs::read_to_string(p).unwrap())
                .collect();
            assert!(!all.contains("<b>") && all.contains("&lt;b&gt;"), "{all}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_base_url_is_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "book.yaml",
        "output: out/book.mp3\ndefaults: {voice_id: JBFqnCBsd6RMkjVDRZzb}\nsegments:\n  - {id: a, text: \"Hello.\"}\n",
    );
    for url in [
        "https://reader:hunter2@api.example.com",
        "https://reader:hunter2@[::1",
    ] {
        let out = narrate(
            dir.path(),
            &["check", "book.yaml", "--base-url", url],
            &[("ELEVENLABS_API_KEY", SECRET_KEY)],
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let said = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!said.contains("hunter2"), "{said}");
        assert!(said.contains("***"), "{said}");
    }
}

/// A manifest of six sentences read at `speed`, as WAV.
fn at_speed(dir: &Path, name: &str, speed: f64) {
    let segments: String = (1..=6)
        .map(|i| {
            format!("  - {{id: s{i}, text: \"Sentence number {i} of the shared passage.\"}}\n")
        })
        .collect();
    write(
        dir,
        &format!("{name}.yaml"),
        &format!(
            "output: out/{name}.wav\ndefaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: pcm_16000, voice_settings: {{speed: {speed}}}, pause_after_ms: 0}}\nsegments:\n{segments}"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_send_never_recovers_another_jobs_take_at_another_speed() {
    let fx = Fixture::default().await;
    at_speed(fx.path(), "slow", 0.8);
    at_speed(fx.path(), "fast", 1.2);
    let slow = fx.run(&["slow.yaml"]).await;
    assert_eq!(slow.status.code(), Some(0), "{}", stderr(&slow));
    // A run of the fast book that wrote its sends in the journal and died before they
    // arrived: the next run looks for them in the speech history, where the slow book's takes
    // of the same words are, within the minute.
    let manifest = fx.path().join("fast.yaml");
    let job = narrate::manifest::load(&manifest, &Default::default(), None).unwrap();
    let plan = narrate::plan::plan(&job);
    let state = narrate::state::StateDir::for_manifest(None, &manifest);
    let cache = narrate::state::Cache::open(&state.cache_dir()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for r in 0..plan.requests.len() {
        let key = narrate::execute::RequestKey::of(&job, &plan, r, &fx.base());
        let segment = &job.segments[plan.requests[r].segment];
        cache
            .journal()
            .append(narrate::state::journal::Entry::Sent {
                key: key.key,
                voice_id: segment.voice_id.clone(),
                model_id: segment.model_id.clone(),
                output_format: job.output_format.to_string(),
                text_sha256: String::new(),
                sent_unix: now,
            })
            .unwrap();
    }
    drop(cache);
    let sent_before = fx.tts_log().len();
    let fast = fx.run(&["fast.yaml"]).await;
    assert_eq!(fast.status.code(), Some(0), "{}", stderr(&fast));
    let report = fx.json("out/fast.report.json");
    assert_eq!(
        report["totals"]["recovered"], 0,
        "no take of the slow book is recovered"
    );
    let resent: Vec<_> = fx.tts_log()[sent_before..]
        .iter()
        .map(|e| e["body"]["voice_settings"]["speed"].clone())
        .collect();
    assert_eq!(
        resent.len(),
        6,
        "each request is sent again at its own speed"
    );
    assert!(resent.iter().all(|s| *s == 1.2), "{resent:?}");
    // Every take in the fast book is read at its own speed: the emulator speaks 15 characters
    // a second at speed 1, so each sentence lasts chars / 15 / speed seconds.
    let (spec, samples) = read_wav(&fx.path().join("out/fast.wav"));
    let expected: usize = (1..=6)
        .map(|i| {
            let chars = format!("Sentence number {i} of the shared passage.")
                .chars()
                .count();
            (chars as f64 / 15.0 / 1.2 * f64::from(spec.sample_rate)).round() as usize
        })
        .sum();
    let slack = spec.sample_rate as usize / 100;
    assert!(
        samples.len().abs_diff(expected) <= slack,
        "the fast book has {} samples, its own takes {expected}: another job's take was used",
        samples.len()
    );
}

/// A two-segment book in one chapter.
fn two_segments(dir: &Path) {
    write(
        dir,
        "book.yaml",
        "output: out/book.mp3\ndefaults: {voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: mp3_22050_32}\nsegments:\n  - {id: a, text: \"Alice was beginning to get very tired.\"}\n  - {id: b, text: \"So she was considering in her own mind.\"}\n",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_paid_for_an_answer_the_cache_could_not_keep() {
    let fx = Fixture::default().await;
    two_segments(fx.path());
    let cache = fx.path().join(".narrate/cache");

    // The journal, which must record each send before it is made, cannot be written.
    std::fs::create_dir_all(cache.join("journal.jsonl")).unwrap();
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("journal.jsonl"), "{}", stderr(&out));
    assert!(fx.tts_log().is_empty(), "nothing is sent");
    std::fs::remove_dir(cache.join("journal.jsonl")).unwrap();

    // One entry's audio replaced by a directory: that request is not sent (it could not be
    // kept), the other is rendered, and the message names the file in the way.
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sent = fx.tts_log().len();
    let audio: Vec<_> = files_under(&cache)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "audio"))
        .collect();
    assert_eq!(audio.len(), 2, "{audio:?}");
    std::fs::remove_file(&audio[0]).unwrap();
    std::fs::remove_file(audio[0].with_extension("json")).unwrap();
    std::fs::create_dir(&audio[0]).unwrap();
    for _ in 0..2 {
        let out = fx.run(&["book.yaml"]).await;
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let said = format!("{}{}", stdout(&out), stderr(&out));
        let name = audio[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(said.contains(&name), "the file in the way is named: {said}");
    }
    assert_eq!(
        fx.tts_log().len(),
        sent,
        "nothing is paid for what cannot be kept"
    );
}

/// A book with one pronunciation rule, `rules` the YAML of its list.
fn with_rules(rules: &str) -> String {
    format!(
        "title: Names\noutput: out/names.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_22050_32}}\npronunciations:\n{rules}segments:\n  - {{id: a, text: \"The Cheshire Cat grinned.\"}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_that_cannot_be_spoken_are_refused_and_each_book_has_its_own_dictionary() {
    let fx = Fixture::default().await;
    fx.write(
        "empty.pls",
        "<?xml version=\"1.0\"?>\n<lexicon version=\"1.0\" xmlns=\"http://www.w3.org/2005/01/pronunciation-lexicon\" alphabet=\"ipa\">\n<lexeme><grapheme></grapheme><alias>nothing</alias></lexeme>\n</lexicon>\n",
    );
    fx.write(
        "empty.yaml",
        &with_rules("").replace("pronunciations:\n", "pronunciation_file: empty.pls\n"),
    );
    fx.write(
        "newline.yaml",
        &with_rules("  - {word: Cheshire, alias: \"CHESH\\ner\"}\n"),
    );
    for name in ["empty.yaml", "newline.yaml"] {
        let out = narrate(fx.path(), &["check", name], &[]).await;
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
    }
    // Two books whose names have no ASCII letters to tell them apart.
    let rule = "  - {word: Cheshire, alias: \"CHESH-er\"}\n";
    fx.write(
        "книга.yaml",
        &with_rules(rule).replace("out/names", "out/a"),
    );
    fx.write("本.yaml", &with_rules(rule).replace("out/names", "out/b"));
    for name in ["книга.yaml", "本.yaml"] {
        let out = fx.run(&[name]).await;
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
    }
    let created = fx
        .log()
        .iter()
        .filter(|e| e["path"] == "/v1/pronunciation-dictionaries/add-from-rules")
        .count();
    assert_eq!(created, 2, "each book keeps a dictionary of its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_bounds_a_trickled_body_and_its_flags() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let emu = emulator::start(emulator::Config {
        max_connections: 2,
        body_timeout: std::time::Duration::from_millis(400),
        ..Default::default()
    })
    .await
    .unwrap();
    // Two clients take every connection and send a body a byte at a time, forever.
    let mut tricklers = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(emu.addr).await.unwrap();
        s.write_all(
            b"POST /v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb HTTP/1.1\r\nhost: x\r\nxi-api-key: k\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
        )
        .await
        .unwrap();
        tricklers.push(s);
    }
    for s in &mut tricklers {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            let mut buf = [0u8; 512];
            loop {
                let _ = s.write_all(b" ").await;
                match tokio::time::timeout(std::time::Duration::from_millis(100), s.read(&mut buf))
                    .await
                {
                    Ok(Ok(0)) | Ok(Err(_)) => return,
                    Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
            }
        })
        .await;
        assert!(read.is_ok(), "a trickled body is cut off");
        let head = String::from_utf8_lossy(&answer);
        assert!(
            head.is_empty() || head.starts_with("HTTP/1.1 408"),
            "{head}"
        );
    }
    // Their connections are free again: another client is served.
    let models = reqwest::Client::new()
        .get(format!("{}/v1/models", emu.base_url()))
        .header("xi-api-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    emu.stop().await;

    let dir = tempfile::tempdir().unwrap();
    for flag in [
        &["emulate", "--latency-ms", "18446744073709551615"][..],
        &["emulate", "--body-timeout", "0"][..],
        &["emulate", "--max-connections", "0"][..],
    ] {
        let out = narrate(dir.path(), flag, &[]).await;
        assert_eq!(out.status.code(), Some(2), "{flag:?}: {}", stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_inside_the_state_directory_are_not_followed_out_of_it() {
    let fx = Fixture::default().await;
    two_segments(fx.path());
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let elsewhere = tempfile::tempdir().unwrap();
    let state = fx.path().join(".narrate");
    let folder = files_under(&state.join("cache"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "audio"))
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap();
    for place in [
        folder,
        state.join("cache/published"),
        state.join("dictionaries"),
        state.join("lock"),
    ] {
        let kept = place.with_extension("kept");
        let existed = place.exists();
        if existed {
            std::fs::rename(&place, &kept).unwrap();
        }
        std::os::unix::fs::symlink(elsewhere.path(), &place).unwrap();
        let out = fx.run(&["book.yaml", "--only", "a"]).await;
        assert_eq!(out.status.code(), Some(2), "{place:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("is a symlink"), "{}", stderr(&out));
        assert_eq!(
            std::fs::read_dir(elsewhere.path()).unwrap().count(),
            0,
            "{place:?}: nothing is written through the link"
        );
        std::fs::remove_file(&place).unwrap();
        if existed {
            std::fs::rename(&kept, &place).unwrap();
        }
    }
}

/// The peak resident memory of a process, in MiB (Linux).
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_their_answers_hold_bounded_memory() {
    use std::io::BufRead as _;
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let mut emu = spawn_narrate(
        dir.path(),
        &[
            "emulate",
            "--listen",
            "127.0.0.1:0",
            "--undelivered-mib",
            "64",
        ],
        std::process::Stdio::piped(),
        std::process::Stdio::null(),
    );
    let mut line = String::new();
    std::io::BufReader::new(emu.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    // Six clients each ask for 40,000 characters of 48 kHz PCM (about 256 MB each) and never
    // read a byte of the answers.
    let text = "All work and no play makes a long answer. ".repeat(1000);
    let body =
        serde_json::json!({"text": &text[..40_000], "model_id": "eleven_flash_v2_5"}).to_string();
    let mut clients = Vec::new();
    for _ in 0..6 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /v1/text-to-speech/{NARRATOR}?output_format=pcm_48000 HTTP/1.1\r\nhost: x\r\nxi-api-key: k\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body.as_bytes()).await.unwrap();
        clients.push(s);
    }
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    let peak = peak_rss_mib(emu.id());
    let _ = emu.kill();
    let _ = emu.wait();
    // One unread answer's room (64 MiB) and the one being made; unbounded, a debug build
    // makes five of them in this time (a release build all sixteen: a gigabyte).
    assert!(peak < 220, "the emulator reached {peak} MiB");
    drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_side_files_are_never_written_over_an_input_but_a_cover_already_there_is_kept() {
    let fx = Fixture::default().await;
    let d = fx.path();
    let folder = d.join("library/A. Writer/Small");
    std::fs::create_dir_all(&folder).unwrap();
    crate::import::cover_jpeg(&folder);
    std::fs::write(folder.join("desc.txt"), "Hello from the text file.").unwrap();
    let manifest = |text: &str| {
        format!(
            "title: Small\nauthor: A. Writer\nnarrator: A. Reader\ndescription: A short book.\ncover: \"library/A. Writer/Small/cover.jpg\"\noutput: out/small.mp3\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_44100_128}}\nsegments:\n  - {{id: a, chapter: One, {text}}}\n"
        )
    };
    // The segment's text is the file the library's desc.txt would be written over: refused.
    write(
        d,
        "over.yaml",
        &manifest("text_file: \"library/A. Writer/Small/desc.txt\""),
    );
    let out = fx.run(&["over.yaml", "--library", "library"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("desc.txt"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(folder.join("desc.txt")).unwrap(),
        "Hello from the text file."
    );
    assert!(fx.tts_log().is_empty(), "nothing was sent");
    // A cover that already is the library's cover.jpg is an input left where it is.
    write(d, "kept.yaml", &manifest("text: \"Hello there.\""));
    let cover = std::fs::read(folder.join("cover.jpg")).unwrap();
    let out = fx.run(&["kept.yaml", "--library", "library"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read(folder.join("cover.jpg")).unwrap(), cover);
    assert_eq!(
        std::fs::read_to_string(folder.join("desc.txt")).unwrap(),
        "A short book.\n"
    );
}
