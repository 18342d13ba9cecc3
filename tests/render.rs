//! End-to-end rendering through the binary against the emulator: audio equals what was served
//! plus silences, report offsets agree with the audio, chain rules hold in the request log,
//! failures, retries, the cache, and the key never leaking.

use std::path::Path;

use narrate::emulator::{self, Fault, Faults};

use crate::util::*;

fn alice(chars: usize) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/alice/ch01.txt"),
    )
    .unwrap();
    let mut end = chars.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text[..end].rfind(['.', '!', '?']).map_or(end, |i| i + 1);
    text[..cut].to_string()
}

/// Two chapters, two voices, a long segment split into several requests, and an `eleven_v3`
/// chain that must fall back to text context.
fn book_manifest(dir: &Path, format: &str, output: &str) -> std::path::PathBuf {
    write(dir, "texts/long.txt", &alice(900));
    let yaml = format!(
        r#"title: Test book
output: {output}
lead_in_ms: 250
tail_ms: 700
defaults:
  voice_id: {NARRATOR}
  output_format: {format}
  pause_after_ms: 300
  chapter_pause_ms: 1100
  max_request_chars: 200
segments:
  - id: c1-title
    chapter: One
    text: "Chapter One. Down the Rabbit-Hole."
  - id: c1-body
    chapter: One
    text_file: texts/long.txt
  - id: c1-alice
    chapter: One
    voice_id: {ALICE}
    text: "'Oh dear! Oh dear! I shall be late!'"
  - id: c1-after
    chapter: One
    text: "She ran across the field after it, and fortunately was just in time."
  - id: c2-title
    chapter: Two
    text: "Chapter Two. The Pool of Tears."
  - id: c2-alice
    chapter: Two
    voice_id: {ALICE}
    text: "'Curiouser and curiouser!' cried Alice."
  - id: c2-v3
    chapter: Two
    model_id: eleven_v3
    text: "{v3}"
"#,
        v3 = alice(450).replace(['\n', '"'], " ")
    );
    write(dir, "book.yaml", &yaml)
}

/// Runs the binary against `base_url` with the test key.
async fn render(dir: &Path, base_url: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["book.yaml", "--base-url", base_url, "--retry-base-ms", "5"];
    args.extend_from_slice(extra);
    narrate(dir, &args, &[("ELEVENLABS_API_KEY", SECRET_KEY)]).await
}

/// Log entries by the `request-id` they were answered with.
fn silence(ms: u64, rate: u64) -> usize {
    ((ms * rate + 500) / 1000) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcm_book_equals_served_audio_plus_silences_and_offsets_are_exact() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    book_manifest(dir.path(), "pcm_24000", "out/book.wav");
    let out = render(dir.path(), &fx.emu.base_url(), &["--concurrency", "3"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));

    let report = read_json(&dir.path().join("out/book.report.json"));
    assert_eq!(report["status"], "ok");
    let (spec, samples) = read_wav(&dir.path().join("out/book.wav"));
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, 24_000, 16)
    );

    let log = by_request_id(&tts_log(dir.path()));
    let segments = report["segments"].as_array().unwrap();
    let mut expected: Vec<i16> = vec![0; silence(250, 24_000)];
    for (i, seg) in segments.iter().enumerate() {
        for req in seg["requests"].as_array().unwrap() {
            let (_, entry) = &log[req["request_id"].as_str().unwrap()];
            let start = expected.len();
            let audio = refetch(&fx.emu.base_url(), entry).await;
            expected.extend(pcm_samples(&audio));
            // The report places the request exactly where its samples are.
            let s = req["start_seconds"].as_f64().unwrap() * 24_000.0;
            let e = req["end_seconds"].as_f64().unwrap() * 24_000.0;
            assert!(
                (s - start as f64).abs() < 0.5,
                "{} start {s} vs {start}",
                seg["id"]
            );
            assert!((e - expected.len() as f64).abs() < 0.5, "{} end", seg["id"]);
        }
        let pause = match segments.get(i + 1) {
            None => 700,
            Some(next) if next["chapter"] != seg["chapter"] => 1100,
            Some(_) => 300,
        };
        expected.resize(expected.len() + silence(pause, 24_000), 0);
    }
    assert_eq!(samples.len(), expected.len());
    assert!(
        samples == expected,
        "output samples differ from served audio plus silences"
    );
    let total = report["totals"]["audio_seconds"].as_f64().unwrap();
    assert!((total * 24_000.0 - samples.len() as f64).abs() < 0.5);
    assert_eq!(report["totals"]["requests"], log.len());
    assert!(
        log.len() >= 10,
        "the long segment is split: {} requests",
        log.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_log_shows_every_chain_rule() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    book_manifest(dir.path(), "pcm_16000", "out/book.wav");
    let out = render(dir.path(), &fx.emu.base_url(), &[]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = read_json(&dir.path().join("out/book.report.json"));
    let log = by_request_id(&tts_log(dir.path()));

    // Chains: (chapter, voice, model) in manifest order.
    let mut chains: Vec<((String, String, String), Vec<String>)> = Vec::new();
    for seg in report["segments"].as_array().unwrap() {
        let key = (
            seg["chapter"].as_str().unwrap().to_string(),
            seg["voice_id"].as_str().unwrap().to_string(),
            seg["model_id"].as_str().unwrap().to_string(),
        );
        let ids = seg["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["request_id"].as_str().unwrap().to_string());
        match chains.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.extend(ids),
            None => chains.push((key, ids.collect())),
        }
    }
    assert_eq!(
        chains.len(),
        5,
        "One/narrator, One/Alice, Two/narrator, Two/Alice, Two/v3"
    );
    let narrator_one = &chains[0].1;
    assert!(
        narrator_one.len() >= 6,
        "the narrator's chain continues across Alice's line"
    );

    for ((_, _, model), ids) in &chains {
        let stitched = model != "eleven_v3";
        for (k, id) in ids.iter().enumerate() {
            let (index, entry) = &log[id];
            let body = &entry["body"];
            let prev_ids: Vec<&str> = body["previous_request_ids"]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().unwrap()).collect())
                .unwrap_or_default();
            let next_text = body["next_text"].as_str();
            let want_next = ids
                .get(k + 1)
                .map(|n| log[n].1["body"]["text"].as_str().unwrap());
            assert_eq!(
                next_text, want_next,
                "next_text of request {k} of a {model} chain"
            );
            if stitched {
                let want: Vec<&str> = ids[k.saturating_sub(3)..k]
                    .iter()
                    .map(String::as_str)
                    .collect();
                assert_eq!(prev_ids, want, "previous_request_ids of request {k}");
                assert!(
                    body.get("previous_text").is_none(),
                    "no previous_text when ids are sent"
                );
                if k > 0 {
                    // Sent only after its predecessor was answered.
                    assert!(*index > log[&ids[k - 1]].0);
                }
            } else {
                assert!(prev_ids.is_empty(), "no request ids for eleven_v3");
                let want_prev = k
                    .checked_sub(1)
                    .map(|p| log[&ids[p]].1["body"]["text"].as_str().unwrap());
                assert_eq!(body["previous_text"].as_str(), want_prev);
            }
            assert!(prev_ids.len() <= 3);
        }
    }
    let v3 = chains.iter().find(|c| c.0.2 == "eleven_v3").unwrap();
    assert!(
        v3.1.len() >= 2,
        "the v3 segment is split, so its text fallback is exercised"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp3_output_copies_served_frames_where_the_report_says() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    book_manifest(dir.path(), "mp3_44100_128", "out/book.mp3");
    let out = render(dir.path(), &fx.emu.base_url(), &[]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = read_json(&dir.path().join("out/book.report.json"));
    let log = by_request_id(&tts_log(dir.path()));

    let output_path = dir.path().join("out/book.mp3");
    let output = std::fs::read(&output_path).unwrap();
    // Frames and gapless figures as ffmpeg reads them, never narrate's own MP3 parser.
    let out_frames = mp3_frames_by_ffprobe(&output_path);
    let frames = &out_frames.frames;
    assert_eq!(
        (out_frames.sample_rate, out_frames.samples_per_frame),
        (44_100, 1152)
    );
    let spf = 1152.0;
    let mut spans: Vec<(f64, f64)> = Vec::new();
    for seg in report["segments"].as_array().unwrap() {
        for req in seg["requests"].as_array().unwrap() {
            let entry = &log[req["request_id"].as_str().unwrap()].1;
            let served = refetch(&fx.emu.base_url(), entry).await;
            let served_path = dir.path().join("served.mp3");
            std::fs::write(&served_path, &served).unwrap();
            let served_frames = mp3_frames_by_ffprobe(&served_path);
            // Gapless decoding: with LAME's tag the encoder delay and padding are trimmed, and
            // the response decodes to exactly its speech, 15 characters a second.
            let chars = entry["body"]["text"].as_str().unwrap().chars().count();
            let pcm = ffmpeg_pcm(&served_path);
            assert_eq!(
                pcm.len(),
                (chars as f64 / 15.0 * 44_100.0).round() as usize,
                "{}",
                seg["id"]
            );
            // The report gives where the speech is heard: the samples ffmpeg skips (decoder
            // delay and LAME's) after the first copied frame starts, up to the padding it
            // discards before the last ends.
            let heard_from = served_frames.skip as f64;
            let start = req["start_seconds"].as_f64().unwrap() * 44_100.0;
            let first = ((start - heard_from) / spf).round() as usize;
            assert!(
                (start - heard_from - first as f64 * spf).abs() < 0.5,
                "{}: speech starts {heard_from} samples into its first frame",
                seg["id"]
            );
            for (i, range) in served_frames.frames.iter().enumerate() {
                assert_eq!(
                    &output[frames[first + i].clone()],
                    &served[range.clone()],
                    "{} frame {i}",
                    seg["id"]
                );
            }
            let end = req["end_seconds"].as_f64().unwrap() * 44_100.0;
            let frames_end = (first + served_frames.frames.len()) as f64 * spf;
            assert!((end - (frames_end - served_frames.discard as f64)).abs() < 0.5);
            assert!(
                (end - start - pcm.len() as f64).abs() < 0.5,
                "the span is the speech"
            );
            spans.push((start, end));
        }
    }
    // Pauses are made of silent frames that bring the heard gap (padding + silence + delay)
    // nearest to the manifest's: within half a frame.
    let segments = report["segments"].as_array().unwrap();
    let mut k = 0;
    for (i, seg) in segments.iter().enumerate() {
        let n = seg["requests"].as_array().unwrap().len();
        k += n;
        let Some(next) = segments.get(i + 1) else {
            break;
        };
        let pause = if next["chapter"] != seg["chapter"] {
            1100.0
        } else {
            300.0
        };
        let gap = (spans[k].0 - spans[k - 1].1) / 44.1;
        assert!(
            (gap - pause).abs() <= 1152.0 / 44.1 / 2.0 + 0.1,
            "{}: heard pause {gap:.1} ms, manifest {pause} ms",
            seg["id"]
        );
    }
    let lead = spans[0].0 / 44.1;
    assert!((lead - 250.0).abs() <= 13.2, "lead-in {lead:.1} ms");
    let total = report["totals"]["audio_seconds"].as_f64().unwrap() * 44_100.0;
    let tail = (total - spans.last().unwrap().1) / 44.1;
    assert!((tail - 700.0).abs() <= 13.2, "tail {tail:.1} ms");
    // Every frame decodes, silences included. The output has an Info header but no LAME
    // delay or padding: ffmpeg trims nothing.
    let decoded = ffmpeg_pcm(&output_path);
    assert_eq!(
        (out_frames.skip, out_frames.discard),
        (0, 0),
        "no LAME delay or padding"
    );
    assert_eq!(decoded.len(), frames.len() * 1152);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp3_responses_decode_into_a_wav_at_the_reported_offsets() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    book_manifest(dir.path(), "mp3_22050_32", "out/book.wav");
    let out = render(dir.path(), &fx.emu.base_url(), &[]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = read_json(&dir.path().join("out/book.report.json"));
    let log = by_request_id(&tts_log(dir.path()));
    let (spec, samples) = read_wav(&dir.path().join("out/book.wav"));
    assert_eq!(spec.sample_rate, 22_050);
    for seg in report["segments"].as_array().unwrap() {
        for req in seg["requests"].as_array().unwrap() {
            let served = refetch(
                &fx.emu.base_url(),
                &log[req["request_id"].as_str().unwrap()].1,
            )
            .await;
            // Decoded by ffmpeg, not by narrate's decoder. At 32 kbps a frame is too small for
            // LAME's tag: ffmpeg trims nothing, and narrate trims the decoder's own delay of
            // 529 samples (the MP3 filter bank's), so the response's samples start there.
            let served_path = dir.path().join("served.mp3");
            std::fs::write(&served_path, &served).unwrap();
            let frames = mp3_frames_by_ffprobe(&served_path);
            let decoded = ffmpeg_pcm(&served_path);
            assert_eq!(decoded.len(), frames.frames.len() * 576, "{}", seg["id"]);
            let pcm = &decoded[529..];
            let start = (req["start_seconds"].as_f64().unwrap() * 22_050.0).round() as usize;
            let end = (req["end_seconds"].as_f64().unwrap() * 22_050.0).round() as usize;
            assert_eq!(end - start, pcm.len(), "{}", seg["id"]);
            // Two decoders round differently: within two steps of 16 bits, sample by sample.
            let worst = samples[start..end]
                .iter()
                .zip(pcm)
                .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                .max()
                .unwrap();
            assert!(worst <= 2, "{}: {worst} steps apart", seg["id"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_segment_fails_the_run_but_not_the_others_and_keeps_the_old_output() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    write(
        dir.path(),
        "book.yaml",
        &format!(
            "output: out/book.wav\ndefaults: {{voice_id: {NARRATOR}, output_format: pcm_16000}}\nsegments:\n  - {{id: a, text: First.}}\n  - {{id: ghost, voice_id: NoSuchVoice0000000000, text: Second.}}\n  - {{id: c, text: Third.}}\n"
        ),
    );
    write(dir.path(), "out/book.wav", "previous output");
    let out = render(dir.path(), &fx.emu.base_url(), &[]).await;
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/book.wav")).unwrap(),
        "previous output"
    );
    let report = read_json(&dir.path().join("out/book.report.json"));
    assert_eq!(report["status"], "failed");
    let segs = report["segments"].as_array().unwrap();
    assert_eq!(segs[0]["status"], "ok");
    assert_eq!(segs[2]["status"], "ok");
    assert_eq!(segs[1]["status"], "failed");
    let error = segs[1]["error"].as_str().unwrap();
    assert!(
        error.contains("ghost") && error.contains("404") && error.contains("voice_not_found"),
        "{error}"
    );
    assert_eq!(segs[1]["attempts"], 1, "404 is not retried");
    assert!(stderr(&out).contains("ghost"));
    let csv = std::fs::read_to_string(dir.path().join("out/book.report.csv")).unwrap();
    assert!(
        csv.lines().any(|l| l.starts_with("ghost,,failed,")),
        "{csv}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_through_faults_give_the_same_output_and_a_rerun_sends_nothing() {
    let clean_dir = tempfile::tempdir().unwrap();
    let clean = emulator_in(clean_dir.path(), emulator::Config::default()).await;
    book_manifest(clean_dir.path(), "mp3_44100_64", "out/book.mp3");
    let out = render(clean_dir.path(), &clean.base_url(), &[]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));

    let dir = tempfile::tempdir().unwrap();
    let faults = Faults {
        rate: 0.4,
        seed: 7,
        kinds: vec![Fault::Busy, Fault::Internal, Fault::UnavailableHtml],
    };
    let faulty = emulator_in(
        dir.path(),
        emulator::Config {
            faults,
            ..Default::default()
        },
    )
    .await;
    book_manifest(dir.path(), "mp3_44100_64", "out/book.mp3");
    let out = render(dir.path(), &faulty.base_url(), &["--max-retries", "12"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = read_json(&dir.path().join("out/book.report.json"));
    assert!(
        report["totals"]["retries"].as_u64().unwrap() > 0,
        "faults were injected"
    );
    let statuses = all_statuses(&report);
    assert!(statuses.contains(&429) && statuses.contains(&500) && statuses.contains(&503));
    let a = std::fs::read(clean_dir.path().join("out/book.mp3")).unwrap();
    let b = std::fs::read(dir.path().join("out/book.mp3")).unwrap();
    assert!(a == b, "output under faults equals the clean output");
    // Credits are charged once per request: failed attempts cost nothing.
    let charged = faulty.state.credits_used();
    assert_eq!(charged, report["totals"]["credits"].as_f64().unwrap());

    // A rerun is served from the cache: no TTS request, same output.
    let before = tts_log(dir.path()).len();
    let out = render(dir.path(), &faulty.base_url(), &[]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(
        tts_log(dir.path()).len(),
        before,
        "a cached rerun sends nothing"
    );
    let report = read_json(&dir.path().join("out/book.report.json"));
    assert_eq!(report["totals"]["cache_hits"], report["totals"]["requests"]);
    assert_eq!(report["totals"]["credits"].as_f64(), Some(0.0));
    assert!(std::fs::read(dir.path().join("out/book.mp3")).unwrap() == b);
    clean.stop().await;
    faulty.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_leaks_and_a_wrong_key_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = emulator::Config {
        api_key: Some(SECRET_KEY.into()),
        ..Default::default()
    };
    let emu = emulator_in(dir.path(), config).await;
    book_manifest(dir.path(), "mp3_44100_128", "out/book.mp3");
    let out = render(dir.path(), &emu.base_url(), &["-vv"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    // And once through a key file.
    write(dir.path(), "key.txt", &format!("{SECRET_KEY}\n"));
    let out2 = narrate(
        dir.path(),
        &[
            "book.yaml",
            "--base-url",
            &emu.base_url(),
            "--api-key-file",
            "key.txt",
            "--no-cache",
            "-vv",
        ],
        &[],
    )
    .await;
    assert_eq!(out2.status.code(), Some(0), "stderr: {}", stderr(&out2));
    for o in [&out, &out2] {
        assert!(!stdout(o).contains(SECRET_KEY) && !stderr(o).contains(SECRET_KEY));
    }
    for file in files_under(dir.path()) {
        if file.ends_with("key.txt") {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes
                .windows(SECRET_KEY.len())
                .any(|w| w == SECRET_KEY.as_bytes()),
            "the key is in {}",
            file.display()
        );
    }

    // A wrong key is refused before any TTS request: exit 2, the API's code shown, no key.
    let sent = tts_log(dir.path()).len();
    let out = narrate(
        dir.path(),
        &[
            "book.yaml",
            "--base-url",
            &emu.base_url(),
            "--no-cache",
            "-o",
            "out/other.mp3",
        ],
        &[("ELEVENLABS_API_KEY", "sk_wrong_key_12345")],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("invalid_api_key"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("sk_wrong_key_12345"));
    assert!(!dir.path().join("out/other.mp3").exists());
    assert_eq!(
        tts_log(dir.path()).len(),
        sent,
        "nothing sent with a refused key"
    );
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_manifests_take_defaults_from_flags() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    write(
        dir.path(),
        "nightly.csv",
        "id,chapter,text,stability,speed\nn1,News,\"Good evening, here is the news.\",0.4,1.1\nn2,News,\"That was the news.\",,\n",
    );
    let out = narrate(
        dir.path(),
        &[
            "render",
            "nightly.csv",
            "--base-url",
            &fx.emu.base_url(),
            "--voice-id",
            NARRATOR,
            "--output-format",
            "pcm_22050",
        ],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let (spec, _) = read_wav(&dir.path().join("nightly.wav"));
    assert_eq!(spec.sample_rate, 22_050);
    let log = tts_log(dir.path());
    assert_eq!(log.len(), 2);
    assert_eq!(
        log[0]["body"]["voice_settings"],
        serde_json::json!({"stability": 0.4, "speed": 1.1})
    );
    assert!(
        log[1]["body"].get("voice_settings").is_none(),
        "unset fields are omitted"
    );
    assert_eq!(log[0]["voice_id"], NARRATOR);

    // The same rows through a YAML manifest's segments_csv.
    write(
        dir.path(),
        "wrap.yaml",
        "output: wrapped.wav\ndefaults: {voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: ulaw_8000}\nsegments_csv: nightly.csv\n",
    );
    let out = narrate(
        dir.path(),
        &["wrap.yaml", "--base-url", &fx.emu.base_url()],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let (spec, samples) = read_wav(&dir.path().join("wrapped.wav"));
    assert_eq!(spec.sample_rate, 8_000);
    assert!(samples.iter().any(|&s| s != 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_demo_runs_with_emulate_from_a_clean_copy() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["manifests", "samples/alice"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(root.join(sub)).unwrap() {
            let entry = entry.unwrap();
            if entry.path().is_file() {
                std::fs::copy(entry.path(), dir.path().join(sub).join(entry.file_name())).unwrap();
            }
        }
    }
    let out = narrate(dir.path(), &["manifests/demo.yaml", "--emulate"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(stdout(&out).contains("out/demo.mp3"));
    let report = read_json(&dir.path().join("out/demo.report.json"));
    assert_eq!(report["status"], "ok");
    assert_eq!(report["synthetic"], true);
    let frames = mp3_frames_by_ffprobe(&dir.path().join("out/demo.mp3")).frames;
    let seconds = frames.len() as f64 * 1152.0 / 44_100.0;
    assert!((seconds - report["totals"]["audio_seconds"].as_f64().unwrap()).abs() < 1e-3);
    // Every example manifest renders.
    for m in ["manifests/alice-ch1.yaml", "manifests/nightly.csv"] {
        let out = narrate(dir.path(), &[m, "--emulate"], &[]).await;
        assert_eq!(out.status.code(), Some(0), "{m}: {}", stderr(&out));
    }
    // ... and every one is valid (the whole book is too long to render here).
    for entry in std::fs::read_dir(root.join("manifests")).unwrap() {
        let entry = entry.unwrap();
        if !entry.path().is_file() {
            continue;
        }
        let m = format!("manifests/{}", entry.file_name().into_string().unwrap());
        let out = narrate(dir.path(), &["check", &m], &[]).await;
        assert_eq!(out.status.code(), Some(0), "{m}: {}", stderr(&out));
    }
}
