//! Publishable output, read back with ffmpeg's tools: MP3 duration, tags and chapters, an M4B
//! made from the chapter side file, captions that agree with the report, and loudness figures
//! that agree with ffmpeg's EBU R128 filter.
//!
//! These tests need `ffmpeg` and `ffprobe`, and fail without them (the README's test command
//! installs them).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::*;

/// ffmpeg and ffprobe are the independent judges of these tests: they are required, never
/// skipped (the README's test command installs them).
fn have_ffmpeg() -> bool {
    for tool in ["ffmpeg", "ffprobe"] {
        let found = Command::new(tool)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{tool} is required by the tests: apt-get install ffmpeg"
        );
    }
    true
}

fn book(dir: &Path, format: &str, output: &str) {
    let body = "Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to do.";
    write(
        dir,
        "book.yaml",
        &format!(
            "title: \"Alice's Adventures\"\nauthor: Lewis Carroll\nalbum: Wonderland\noutput: {output}\nlead_in_ms: 700\ntail_ms: 1200\ndefaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: {format}, chapter_pause_ms: 1500}}\nsegments:\n  - {{id: t1, chapter: \"Down the Rabbit-Hole\", text: \"Chapter One.\"}}\n  - {{id: b1, chapter: \"Down the Rabbit-Hole\", text: \"{body}\"}}\n  - {{id: t2, chapter: \"The Pool of Tears\", text: \"Chapter Two.\"}}\n  - {{id: b2, chapter: \"The Pool of Tears\", voice_id: Xb7hH8MSUJpSbSDYk0k2, text: \"Curiouser and curiouser! cried Alice.\"}}\n"
        ),
    );
}

fn ffprobe(path: &Path) -> Value {
    ffprobe_json(path, &["-show_format", "-show_chapters"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp3_duration_tags_and_chapters_read_back_with_ffprobe() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    book(dir.path(), "mp3_44100_128", "out/book.mp3");
    let out = narrate(
        dir.path(),
        &["book.yaml", "--base-url", &fx.emu.base_url()],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    waveform_agrees_with_ffmpeg(dir.path());
    let report = read_json(&dir.path().join("out/book.report.json"));
    let total = report["totals"]["audio_seconds"].as_f64().unwrap();
    let segs = report["segments"].as_array().unwrap();

    // The chapter side file: the second chapter starts where its first segment does.
    let meta = std::fs::read_to_string(dir.path().join("out/book.chapters.txt")).unwrap();
    assert!(
        meta.starts_with(
            ";FFMETADATA1\ntitle=Alice's Adventures\nartist=Lewis Carroll\nalbum=Wonderland\n"
        ),
        "{meta}"
    );
    let second_start = (segs[2]["start_seconds"].as_f64().unwrap() * 1000.0).round() as u64;
    assert!(
        meta.contains(&format!(
            "START={second_start}\nEND={}\ntitle=The Pool of Tears",
            (total * 1000.0).round() as u64
        )),
        "{meta}"
    );
    let cue = std::fs::read_to_string(dir.path().join("out/book.cue")).unwrap();
    assert!(
        cue.contains("FILE \"book.mp3\" MP3") && cue.contains("TRACK 02 AUDIO"),
        "{cue}"
    );

    if !have_ffmpeg() {
        return;
    }
    let probe = ffprobe(&dir.path().join("out/book.mp3"));
    let duration = secs(&probe["format"]["duration"]);
    assert!(
        (duration - total).abs() <= 1152.0 / 44_100.0,
        "ffprobe {duration} s, report {total} s"
    );
    let tags = &probe["format"]["tags"];
    assert_eq!(
        (
            tags["title"].as_str(),
            tags["artist"].as_str(),
            tags["album"].as_str()
        ),
        (
            Some("Alice's Adventures"),
            Some("Lewis Carroll"),
            Some("Wonderland")
        )
    );
    let chapters = probe["chapters"].as_array().unwrap();
    assert_eq!(chapters.len(), 2);
    assert_eq!(chapters[0]["tags"]["title"], "Down the Rabbit-Hole");
    assert_eq!(chapters[1]["tags"]["title"], "The Pool of Tears");
    assert!(secs(&chapters[0]["start_time"]).abs() < 1e-3);
    assert!((secs(&chapters[1]["start_time"]) - second_start as f64 / 1000.0).abs() < 2e-3);
    assert!((secs(&chapters[1]["end_time"]) - total).abs() < 2e-3);

    // The README's recipe: an M4B with chapters from the side file.
    let m4b = dir.path().join("out/book.m4b");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(dir.path().join("out/book.mp3"))
        .arg("-i")
        .arg(dir.path().join("out/book.chapters.txt"))
        .args(["-map_metadata", "1", "-c:a", "aac"])
        .arg(&m4b)
        .status()
        .unwrap();
    assert!(status.success());
    let probe = ffprobe(&m4b);
    assert_eq!(probe["chapters"].as_array().unwrap().len(), 2);
    assert_eq!(probe["format"]["tags"]["title"], "Alice's Adventures");
}

/// Runs ffmpeg's `ebur128` filter (with true peak) on a file and returns a reader of its
/// summary: `"I:"` gives the integrated loudness, `"Peak:"` the true peak.
pub(crate) fn ffmpeg_ebur128(path: &Path) -> impl Fn(&str) -> f64 + use<> {
    let log = ffmpeg_filter_log(path, "ebur128=peak=true");
    let summary = log[log.rfind("Summary:").expect("ebur128 prints a summary")..].to_string();
    move |label: &str| -> f64 {
        let line = summary
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} in {summary}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

/// An MP3 book copied frame by frame without `--loudness` (its frames decoded only for the
/// waveform) still has each segment's waveform for the review page, its loudest bucket the
/// file's peak as ffmpeg measures it.
fn waveform_agrees_with_ffmpeg(dir: &Path) {
    let review = read_json(&dir.join("out/book.review.json"));
    let segments = review["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 4);
    let mut loudest = 0;
    for s in segments {
        let peaks = s["peaks"].as_array().unwrap();
        assert!(!peaks.is_empty(), "{} has no waveform", s["id"]);
        loudest = loudest.max(peaks.iter().map(|p| p.as_u64().unwrap()).max().unwrap());
    }
    // 0 dBFS is 255.
    let log = ffmpeg_filter_log(&dir.join("out/book.mp3"), "volumedetect");
    let max_db: f64 = log
        .lines()
        .find_map(|l| l.split("max_volume: ").nth(1))
        .and_then(|v| v.trim_end_matches(" dB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no max_volume in {log}"));
    let expected = 255.0 * 10f64.powf(max_db / 20.0);
    assert!(
        (loudest as f64 - expected).abs() <= 0.05 * expected + 2.0,
        "loudest bucket {loudest}, ffmpeg's peak {max_db} dB ({expected:.1})"
    );
}

/// `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (WebVTT) in seconds.
fn clock(s: &str) -> f64 {
    let s = s.replace(',', ".");
    let parts: Vec<f64> = s.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captions_agree_with_the_report_and_loudness_with_ffmpeg() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    book(dir.path(), "pcm_24000", "out/book.wav");
    let out = fx.run(&["book.yaml", "--loudness"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_json(&dir.path().join("out/book.report.json"));
    let requests: Vec<&Value> = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["requests"].as_array().unwrap())
        .collect();

    let srt = std::fs::read_to_string(dir.path().join("out/book.srt")).unwrap();
    let cues: Vec<&str> = srt.split("\n\n").filter(|c| !c.trim().is_empty()).collect();
    assert_eq!(cues.len(), requests.len());
    for (cue, request) in cues.iter().zip(&requests) {
        let times = cue.lines().nth(1).unwrap();
        let (a, b) = times.split_once(" --> ").unwrap();
        assert!(
            (clock(a) - request["start_seconds"].as_f64().unwrap()).abs() < 1e-3,
            "{cue}"
        );
        assert!(
            (clock(b) - request["end_seconds"].as_f64().unwrap()).abs() < 1e-3,
            "{cue}"
        );
    }
    let vtt = std::fs::read_to_string(dir.path().join("out/book.vtt")).unwrap();
    assert!(
        vtt.starts_with("WEBVTT\n\nt1-1\n00:00:00.700 --> "),
        "{vtt}"
    );
    assert!(vtt.contains("Curiouser and curiouser! cried Alice."));

    let ours = &report["loudness"];
    let integrated = ours["integrated_lufs"].as_f64().unwrap();
    assert!(ours["true_peak_dbtp"].as_f64().unwrap() < 0.0);
    for s in report["segments"].as_array().unwrap() {
        assert!(
            s["loudness"]["rms_db"].as_f64().unwrap() < 0.0,
            "every segment is measured"
        );
        assert_eq!(
            s["loudness_jump"], false,
            "one synthetic voice does not jump"
        );
    }
    if !have_ffmpeg() {
        return;
    }
    let value = ffmpeg_ebur128(&dir.path().join("out/book.wav"));
    let theirs = value("I:");
    assert!(
        (integrated - theirs).abs() <= 0.5,
        "narrate {integrated} LUFS, ffmpeg {theirs} LUFS"
    );
    let peak = value("Peak:");
    let our_peak = ours["true_peak_dbtp"].as_f64().unwrap();
    assert!(
        (our_peak - peak).abs() <= 0.5,
        "narrate {our_peak} dBTP, ffmpeg {peak} dBFS"
    );
    rms_agrees_with_ffmpeg(dir.path(), "out/book.wav");
    // An MP3 book copied frame by frame is measured as it is heard, its pauses included.
    book(dir.path(), "mp3_22050_32", "out/book.mp3");
    let out = fx.run(&["book.yaml", "--loudness"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    rms_agrees_with_ffmpeg(dir.path(), "out/book.mp3");
}

/// The report's RMS of the whole `output` is astats' within 0.5 dB.
fn rms_agrees_with_ffmpeg(dir: &Path, output: &str) {
    let report = read_json(&dir.join(output).with_extension("report.json"));
    let ours = report["loudness"]["rms_db"].as_f64().unwrap();
    let theirs = astats_rms_db(&ffmpeg_filter_log(
        &dir.join(output),
        "astats=measure_perchannel=none",
    ));
    assert!(
        (ours - theirs).abs() <= 0.5,
        "{output}: narrate {ours} dB RMS, ffmpeg {theirs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loudness_target_normalizes_and_the_audiobook_check_reports_each_number() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    book(dir.path(), "pcm_44100", "out/book.wav");
    let args = [
        "book.yaml",
        "--base-url",
        &fx.emu.base_url(),
        "--loudness-target",
        "-16",
        "--audiobook",
    ];
    let out = narrate(dir.path(), &args, &[("ELEVENLABS_API_KEY", SECRET_KEY)]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_json(&dir.path().join("out/book.report.json"));
    let integrated = report["loudness"]["integrated_lufs"].as_f64().unwrap();
    let peak = report["loudness"]["true_peak_dbtp"].as_f64().unwrap();
    assert!(
        report["loudness_gain_db"].as_f64().unwrap() > 0.0,
        "the synthetic voice is quieter than -16"
    );
    assert!(peak <= -1.0 + 1e-6);
    let checks = report["audiobook"]["checks"].as_array().unwrap();
    let check = |name: &str| checks.iter().find(|c| c["check"] == name).unwrap().clone();
    assert_eq!(checks.len(), 7);
    assert_eq!(check("head_room_tone")["pass"], true, "0.7 s lead-in");
    assert_eq!(check("tail_room_tone")["pass"], true, "1.2 s tail");
    assert_eq!(
        check("format")["pass"],
        false,
        "a WAV is not the MP3 ACX wants"
    );
    assert_eq!(report["audiobook"]["pass"], false);
    if have_ffmpeg() {
        let theirs = ffmpeg_ebur128(&dir.path().join("out/book.wav"))("I:");
        assert!(
            (theirs - integrated).abs() <= 0.5,
            "normalized to {integrated}, ffmpeg reads {theirs}"
        );
    }
    // Judged by ffmpeg alone: a target the peak ceiling allows is met within 0.5 LU, and a
    // target it does not allow stops at -1 dBTP.
    for (target, ceiling_binds) in [("-23", false), ("-6", true)] {
        let out = narrate(
            dir.path(),
            &[
                "book.yaml",
                "--base-url",
                &fx.emu.base_url(),
                "--loudness-target",
                target,
            ],
            &[("ELEVENLABS_API_KEY", SECRET_KEY)],
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let measure = ffmpeg_ebur128(&dir.path().join("out/book.wav"));
        let (lufs, true_peak) = (measure("I:"), measure("Peak:"));
        let target: f64 = target.parse().unwrap();
        assert!(
            true_peak <= -1.0 + 0.1,
            "{target}: true peak {true_peak} dBFS"
        );
        if ceiling_binds {
            assert!(
                (true_peak + 1.0).abs() <= 0.5,
                "{target}: stopped at {true_peak} dBFS"
            );
            assert!(lufs < target, "{target}: {lufs} LUFS");
        } else {
            assert!(
                (lufs - target).abs() <= 0.5,
                "{target}: ffmpeg reads {lufs} LUFS"
            );
        }
    }
    // An MP3 output is decoded, scaled and encoded once: normalized as well.
    book(dir.path(), "mp3_44100_192", "out/book.mp3");
    let out = narrate(dir.path(), &args, &[("ELEVENLABS_API_KEY", SECRET_KEY)]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_json(&dir.path().join("out/book.report.json"));
    let integrated = report["loudness"]["integrated_lufs"].as_f64().unwrap();
    let peak = report["loudness"]["true_peak_dbtp"].as_f64().unwrap();
    assert!(report["loudness_gain_db"].as_f64().unwrap() > 0.0);
    assert!(peak <= -1.0 + 1e-6, "{peak} dBTP");
    if have_ffmpeg() {
        let measure = ffmpeg_ebur128(&dir.path().join("out/book.mp3"));
        let theirs = measure("I:");
        assert!(
            (theirs - integrated).abs() <= 0.5,
            "MP3 normalized to {integrated}, ffmpeg reads {theirs}"
        );
        assert!(
            (theirs + 16.0).abs() <= 0.5 || (measure("Peak:") + 1.0).abs() <= 0.5,
            "MP3: ffmpeg reads {theirs} LUFS, {} dBFS true peak",
            measure("Peak:")
        );
    }
    // The same book as a 192 kbps MP3 passes the format check.
    let out = narrate(
        dir.path(),
        &["book.yaml", "--base-url", &fx.emu.base_url(), "--audiobook"],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_json(&dir.path().join("out/book.report.json"));
    let format = report["audiobook"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "format")
        .unwrap()
        .clone();
    assert_eq!(format["pass"], true, "{format}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_chapters_writes_one_file_per_chapter() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    book(dir.path(), "pcm_16000", "out/book.wav");
    let args = [
        "book.yaml",
        "--base-url",
        &fx.emu.base_url(),
        "--split",
        "chapters",
        "--audiobook",
    ];
    let out = narrate(dir.path(), &args, &[("ELEVENLABS_API_KEY", SECRET_KEY)]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A WAV at 16 kHz is not what ACX takes: the summary says which checks failed, per file.
    assert!(
        stdout(&out).contains("audiobook: fail: ")
            && stdout(&out).contains("book-02-the-pool-of-tears.wav: format"),
        "{}",
        stdout(&out)
    );
    let first = dir.path().join("out/book-01-down-the-rabbit-hole.wav");
    let second = dir.path().join("out/book-02-the-pool-of-tears.wav");
    assert!(
        !dir.path().join("out/book.wav").exists(),
        "no single file when split"
    );
    let report = read_json(&dir.path().join("out/book.report.json"));
    let outputs: Vec<&str> = report["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    assert_eq!(outputs.len(), 2);
    assert!(
        outputs[0].ends_with("book-01-down-the-rabbit-hole.wav")
            && outputs[1].ends_with("book-02-the-pool-of-tears.wav")
    );
    let mut total = 0.0;
    for (i, (path, segments)) in [(&first, ["t1", "b1"]), (&second, ["t2", "b2"])]
        .into_iter()
        .enumerate()
    {
        let (spec, samples) = read_wav(path);
        let seconds = samples.len() as f64 / f64::from(spec.sample_rate);
        total += seconds;
        // Each file has its own length, loudness and audiobook checks in the report.
        let output = &report["outputs"][i];
        assert!((output["audio_seconds"].as_f64().unwrap() - seconds).abs() < 1e-3);
        let checks = output["audiobook"]["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 7);
        let length = checks.iter().find(|c| c["check"] == "length").unwrap();
        assert!(
            (length["value"].as_f64().unwrap() - (seconds / 60.0 * 10.0).round() / 10.0).abs()
                < 1e-9
        );
        let integrated = output["loudness"]["integrated_lufs"].as_f64().unwrap();
        if have_ffmpeg() {
            let theirs = ffmpeg_ebur128(path)("I:");
            assert!(
                (theirs - integrated).abs() <= 0.5,
                "{}: ours {integrated}, ffmpeg {theirs}",
                path.display()
            );
        }
        // Captions beside each file, timed within it.
        let srt = std::fs::read_to_string(path.with_extension("srt")).unwrap();
        let first_cue = srt.lines().nth(1).unwrap();
        assert!(first_cue.starts_with("00:00:00,700 --> "), "{srt}");
        assert!(path.with_extension("vtt").exists());
        // Each file has its own room tone: the lead-in, then its first segment.
        assert!(samples[..(0.7 * 16_000.0) as usize].iter().all(|&s| s == 0));
        let segs: Vec<&Value> = report["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| segments.contains(&s["id"].as_str().unwrap()))
            .collect();
        assert!(
            (segs[0]["start_seconds"].as_f64().unwrap() - 0.7).abs() < 1e-3,
            "offsets are within the chapter file"
        );
        assert!(segs.iter().all(|s| {
            s["file"]
                .as_str()
                .unwrap()
                .ends_with(path.file_name().unwrap().to_str().unwrap())
        }));
        // ... and its own tail after its last segment.
        let end = segs[1]["end_seconds"].as_f64().unwrap();
        assert!((seconds - end - 1.2).abs() < 1e-3, "{seconds} vs {end}");
    }
    assert!((report["totals"]["audio_seconds"].as_f64().unwrap() - total).abs() < 1e-3);
    assert_eq!(report["audiobook"]["pass"], false);
    // One CUE sheet and one playlist over the chapter files.
    let cue = std::fs::read_to_string(dir.path().join("out/book.cue")).unwrap();
    assert!(
        cue.contains("FILE \"book-01-down-the-rabbit-hole.wav\" WAVE\n  TRACK 01 AUDIO\n    TITLE \"Down the Rabbit-Hole\"")
            && cue.contains("FILE \"book-02-the-pool-of-tears.wav\" WAVE\n  TRACK 02 AUDIO"),
        "{cue}"
    );
    let m3u = std::fs::read_to_string(dir.path().join("out/book.m3u8")).unwrap();
    assert!(
        m3u.starts_with("#EXTM3U\n#EXTINF:")
            && m3u.contains(",The Pool of Tears\nbook-02-the-pool-of-tears.wav\n"),
        "{m3u}"
    );
    assert!(!dir.path().join("out/book.chapters.txt").exists());
}

/// A book whose responses start and end in silence: the synthetic voice is silent for quotes
/// and punctuation. The long segment is two requests.
fn quiet_edges(dir: &Path, format: &str, output: &str, trim: bool) {
    write(
        dir,
        "edges.yaml",
        &format!(
            "output: {output}\nlead_in_ms: 600\ntail_ms: 1000\ntrim_silence: {trim}\ndefaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: {format}, pause_after_ms: 350, max_request_chars: 60}}\nsegments:\n  - {{id: a, text: \"'Oh dear! Oh dear! I shall be late!'\"}}\n  - {{id: b, text: \"'Why, there is a large mushroom,' she said. 'Is it a real one, I wonder?'\"}}\n  - {{id: c, text: \"'Curiouser and curiouser!'\"}}\n"
        ),
    );
}

fn rms_db(samples: &[i16]) -> f64 {
    let mean = samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len().max(1) as f64;
    20.0 * (mean.sqrt() / 32_768.0).max(1e-10).log10()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trim_silence_makes_pauses_what_the_manifest_says() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    quiet_edges(dir.path(), "pcm_24000", "out/edges.wav", true);
    let out = narrate(
        dir.path(),
        &["edges.yaml", "--base-url", &fx.emu.base_url()],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_json(&dir.path().join("out/edges.report.json"));
    assert_eq!(report["assembly"], "decode");
    let (_, samples) = read_wav(&dir.path().join("out/edges.wav"));
    let log = by_request_id(&tts_log(dir.path()));
    let at = |v: &Value| (v.as_f64().unwrap() * 24_000.0).round() as usize;
    let fade = 24_000 * 5 / 1000;
    let mut spans = Vec::new();
    for seg in report["segments"].as_array().unwrap() {
        let requests = seg["requests"].as_array().unwrap();
        for (k, req) in requests.iter().enumerate() {
            let served = refetch(
                &fx.emu.base_url(),
                &log[req["request_id"].as_str().unwrap()].1,
            )
            .await;
            let pcm = pcm_samples(&served);
            let (start, end) = (at(&req["start_seconds"]), at(&req["end_seconds"]));
            let trimmed = req["trimmed_ms"].as_array().unwrap();
            let head = (trimmed[0].as_f64().unwrap() * 24.0).round() as usize;
            let tail = (trimmed[1].as_f64().unwrap() * 24.0).round() as usize;
            // Every response here starts with a quote: a 1/15 s silence, trimmed up to the
            // fade kept before the first audible sample.
            if k == 0 {
                assert!(head >= 1600 - fade - 10, "{}: head {head}", seg["id"]);
            }
            assert_eq!(end - start, pcm.len() - head - tail, "{}", seg["id"]);
            // Between the fades, the output is the served audio.
            assert_eq!(
                &samples[start + fade..end - fade],
                &pcm[head + fade..pcm.len() - tail - fade],
                "{}",
                seg["id"]
            );
            // What was cut is silence: under -50 dBFS.
            assert!(pcm[..head].iter().all(|s| s.unsigned_abs() < 104));
            assert!(
                pcm[pcm.len() - tail..]
                    .iter()
                    .all(|s| s.unsigned_abs() < 104)
            );
            spans.push((seg["id"].as_str().unwrap().to_string(), start, end));
        }
    }
    assert!(spans.len() >= 4, "segment b is split: {spans:?}");
    // Pauses are the manifest's, to the sample: lead-in, 350 ms between segments, none within
    // a segment, the tail.
    assert_eq!(spans[0].1, 600 * 24);
    for w in spans.windows(2) {
        let want = if w[0].0 == w[1].0 { 0 } else { 350 * 24 };
        assert_eq!(w[1].1 - w[0].2, want, "{} to {}", w[0].0, w[1].0);
        assert!(samples[w[0].2..w[1].1].iter().all(|&s| s == 0));
    }
    assert_eq!(samples.len() - spans.last().unwrap().2, 1000 * 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gapless_mp3_is_encoded_once_and_decodes_to_the_reported_timeline() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    for (trim, args) in [(false, vec!["--gapless"]), (true, vec![])] {
        quiet_edges(dir.path(), "mp3_44100_128", "out/edges.mp3", trim);
        let base = fx.emu.base_url();
        let mut all = vec!["edges.yaml", "--base-url", &base];
        all.extend(args);
        let out = narrate(dir.path(), &all, &[("ELEVENLABS_API_KEY", SECRET_KEY)]).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let report = read_json(&dir.path().join("out/edges.report.json"));
        assert_eq!(report["assembly"], "encode", "trim_silence {trim}");
        let total = report["totals"]["audio_seconds"].as_f64().unwrap();
        // LAME's tag carries the whole file's delay and padding: ffmpeg, a gapless decoder,
        // gives back exactly the joined samples.
        let pcm = ffmpeg_pcm(&dir.path().join("out/edges.mp3"));
        assert_eq!(pcm.len(), (total * 44_100.0).round() as usize);
        let at = |v: &Value| (v.as_f64().unwrap() * 44_100.0).round() as usize;
        let spans: Vec<(String, usize, usize)> = report["segments"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                s["requests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        let id = s["id"].as_str().unwrap().to_string();
                        (id, at(&r["start_seconds"]), at(&r["end_seconds"]))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        // Speech where the report puts requests; silence in the pauses between segments
        // (away from the codec's pre-echo at their edges); requests of one segment meet.
        let margin = 441;
        for w in spans.windows(2) {
            if w[0].0 == w[1].0 {
                assert_eq!(w[0].2, w[1].1, "{}: joined without a gap", w[0].0);
            } else {
                let gap = rms_db(&pcm[w[0].2 + margin..w[1].1 - margin]);
                assert!(gap < -60.0, "pause after {}: {gap:.1} dBFS", w[0].0);
            }
        }
        for (id, start, end) in &spans {
            let level = rms_db(&pcm[*start..*end]);
            assert!(level > -30.0, "{id}: {level:.1} dBFS");
            let first = pcm[*start..]
                .iter()
                .position(|s| s.unsigned_abs() >= 104)
                .unwrap();
            if trim {
                assert!(
                    first < 441,
                    "{id}: speech {first} samples after the span starts"
                );
            } else {
                assert!(first > 2500, "{id}: untrimmed, the quote's silence is kept");
            }
        }
        if have_ffmpeg() {
            // ffmpeg reads LAME's tag too: it decodes to the same number of samples.
            let theirs = ffmpeg_pcm(&dir.path().join("out/edges.mp3"));
            assert_eq!(theirs.len(), pcm.len(), "ffmpeg's sample count");
        }
    }
}

/// The cues of a WebVTT file: (id, start, end, text).
fn vtt_cues(path: &Path) -> Vec<(String, f64, f64, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n\n")
        .skip(1)
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let lines: Vec<&str> = block.trim().lines().collect();
            let (from, to) = lines[1].split_once(" --> ").unwrap();
            (
                lines[0].to_string(),
                clock(from),
                clock(to),
                lines[2..].join(" "),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_give_word_captions_at_the_apis_timings() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    let base = fx.emu.base_url();
    let key = [("ELEVENLABS_API_KEY", SECRET_KEY)];
    let vtt = dir.path().join("out/edges.vtt");
    quiet_edges(dir.path(), "pcm_24000", "out/edges.wav", true);

    // Rendered before without timings: the cached audio is used, captions stay per request.
    let out = narrate(dir.path(), &["edges.yaml", "--base-url", &base], &key).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sent = tts_log(dir.path()).len();
    let out = narrate(
        dir.path(),
        &["edges.yaml", "--base-url", &base, "--timestamps"],
        &key,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(tts_log(dir.path()).len(), sent, "nothing paid twice");
    let warning = format!("{sent} request(s) came from the cache without character timings");
    assert!(stderr(&out).contains(&warning), "{}", stderr(&out));
    assert_eq!(vtt_cues(&vtt).len(), sent, "one cue per request");

    // Rendered again through /with-timestamps: word-timed cues.
    let out = narrate(
        dir.path(),
        &[
            "edges.yaml",
            "--base-url",
            &base,
            "--timestamps",
            "--only",
            "a,b,c",
        ],
        &key,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = tts_log(dir.path());
    assert!(log.len() > sent);
    for entry in &log[sent..] {
        assert!(
            entry["path"]
                .as_str()
                .unwrap()
                .ends_with("/with-timestamps"),
            "{entry}"
        );
    }
    let check = |report: &Value| {
        let log = by_request_id(&tts_log(dir.path()));
        let cues = vtt_cues(&vtt);
        let mut checked = 0;
        for seg in report["segments"].as_array().unwrap() {
            for (k, req) in seg["requests"].as_array().unwrap().iter().enumerate() {
                assert_eq!(req["timestamps"], true);
                let text: Vec<char> = log[req["request_id"].as_str().unwrap()].1["body"]["text"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .collect();
                let start = req["start_seconds"].as_f64().unwrap();
                let end = req["end_seconds"].as_f64().unwrap();
                let trimmed = req["trimmed_ms"].as_array().unwrap();
                let (head, tail) = (
                    trimmed[0].as_f64().unwrap() / 1000.0,
                    trimmed[1].as_f64().unwrap() / 1000.0,
                );
                // The synthetic voice gives every character an equal share of its audio.
                let per_char = (end - start + head + tail) / text.len() as f64;
                let prefix = format!("{}-{}-", seg["id"].as_str().unwrap(), k + 1);
                let mine: Vec<_> = cues.iter().filter(|c| c.0.starts_with(&prefix)).collect();
                assert!(!mine.is_empty(), "{prefix}: no cues");
                let mut from = 0;
                for (_, cue_start, cue_end, words) in mine {
                    assert!(words.chars().count() <= 42, "{words}");
                    let first = words.split(' ').next().unwrap();
                    let at = (from..text.len())
                        .find(|&i| text[i..].iter().collect::<String>().starts_with(first))
                        .unwrap();
                    from = at + first.chars().count();
                    let want = (start - head + at as f64 * per_char).clamp(start, end);
                    assert!(
                        (cue_start - want).abs() <= 0.0015,
                        "{prefix} '{words}' at {cue_start}, the voice says it at {want}"
                    );
                    assert!(cue_end > cue_start && *cue_end <= end + 0.0005);
                    checked += 1;
                }
            }
        }
        checked
    };
    let report = read_json(&dir.path().join("out/edges.report.json"));
    let checked = check(&report);
    assert!(checked >= 6, "{checked} cues");
    // A rerun takes the timings from the cache too.
    std::fs::remove_file(&vtt).unwrap();
    let sent = tts_log(dir.path()).len();
    let out = narrate(
        dir.path(),
        &["edges.yaml", "--base-url", &base, "--timestamps"],
        &key,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(tts_log(dir.path()).len(), sent);
    assert!(
        !stderr(&out).contains("without character timings"),
        "every request has its timings now: {}",
        stderr(&out)
    );
    assert_eq!(
        check(&read_json(&dir.path().join("out/edges.report.json"))),
        checked
    );
}

#[test]
fn wav_past_the_riff_limit_is_rf64_and_reads_back() {
    // The switch to RF64 happens past 4 GiB of samples; the limit is lowered here so a small
    // file takes the same path. (`cargo bench` with NARRATE_BENCH_ONLY=rf64 writes a real one.)
    let dir = tempfile::tempdir().unwrap();
    // A tone that starts and ends at zero, so no fade touches it.
    let samples: Vec<i16> = (0..=24_000)
        .map(|i| ((i as f64 * std::f64::consts::PI / 120.0).sin() * 8_000.0).round() as i16)
        .collect();
    assert_eq!((samples[0], samples[24_000]), (0, 0));
    let pcm: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let response = dir.path().join("response.pcm");
    std::fs::write(&response, &pcm).unwrap();
    let pieces = [
        narrate::audio::Piece::Silence { ms: 500 },
        narrate::audio::Piece::Audio {
            path: &response,
            segment: 0,
        },
        narrate::audio::Piece::Silence { ms: 250 },
    ];
    let format = "pcm_24000".parse().unwrap();
    let expected: Vec<i16> = std::iter::repeat_n(0, 12_000)
        .chain(samples.iter().copied())
        .chain(std::iter::repeat_n(0, 6_000))
        .collect();
    for (limit, magic) in [(None, b"RIFF"), (Some(10_000), b"RF64")] {
        let output = dir.path().join("book.wav");
        let options = narrate::audio::Options {
            rf64_above_bytes: limit,
            ..Default::default()
        };
        let placement = narrate::audio::assemble(&pieces, format, &output, &options).unwrap();
        assert_eq!(placement.total_samples, expected.len() as u64);
        let bytes = std::fs::read(&output).unwrap();
        assert_eq!(&bytes[..4], magic);
        let data_len = (expected.len() * 2) as u64;
        if limit.is_some() {
            // ds64 holds the 64-bit sizes; the 32-bit ones say so.
            assert_eq!(&bytes[12..16], b"ds64");
            assert_eq!(&bytes[4..8], &u32::MAX.to_le_bytes());
            let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
            assert_eq!(u64_at(20), bytes.len() as u64 - 8, "RIFF size");
            assert_eq!(u64_at(28), data_len, "data size");
            assert_eq!(u64_at(36), expected.len() as u64, "sample count");
        } else {
            let (_, read) = read_wav(&output);
            assert!(read == expected, "an ordinary WAV reads back with hound");
        }
        let body = pcm_samples(&bytes[bytes.len() - data_len as usize..]);
        assert!(body == expected, "the data chunk holds the samples");
        if have_ffmpeg() {
            assert!(
                ffmpeg_pcm(&output) == expected,
                "ffmpeg reads the {} file",
                String::from_utf8_lossy(magic)
            );
        }
    }
}

/// Raw G.711 or WAV bytes decoded by ffmpeg (`input` says what they are) to 16-bit samples.
fn ffmpeg_decode(bytes: &[u8], input: &[&str]) -> Vec<i16> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("response");
    std::fs::write(&path, bytes).unwrap();
    ffmpeg_decode_file(&path, input)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g711_and_wav_responses_are_joined_sample_for_sample() {
    assert!(have_ffmpeg());
    for (format, rate, input) in [
        ("ulaw_8000", 8_000, &["-f", "mulaw", "-ar", "8000"][..]),
        ("alaw_8000", 8_000, &["-f", "alaw", "-ar", "8000"][..]),
        ("wav_16000", 16_000, &[][..]),
    ] {
        let fx = Fixture::default().await;
        fx.write(
            "book.yaml",
            &format!(
                "output: out/book.wav\nlead_in_ms: 200\ntail_ms: 300\ndefaults: {{voice_id: {NARRATOR}, output_format: {format}, pause_after_ms: 250}}\nsegments:\n  - {{id: a, text: \"Alice was beginning to get very tired.\"}}\n  - {{id: b, text: \"So she was considering in her own mind.\"}}\n  - {{id: c, text: \"Suddenly a White Rabbit ran close by her.\"}}\n"
            ),
        );
        let out = fx.run(&["book.yaml", "--concurrency", "1"]).await;
        assert_eq!(out.status.code(), Some(0), "{format}: {}", stderr(&out));
        let silence = |ms: usize| vec![0i16; ms * rate / 1000];
        let mut expected = silence(200);
        let log = fx.tts_log();
        assert_eq!(log.len(), 3);
        for (i, entry) in log.iter().enumerate() {
            let served = refetch(&fx.base(), entry).await;
            expected.extend(ffmpeg_decode(&served, input));
            expected.extend(silence(if i == 2 { 300 } else { 250 }));
        }
        let (spec, samples) = read_wav(&fx.path().join("out/book.wav"));
        assert_eq!(spec.sample_rate as usize, rate, "{format}");
        assert_eq!(samples.len(), expected.len(), "{format}");
        assert!(
            samples == expected,
            "{format}: the output is not the served audio"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_copied_mp3_places_each_response_where_the_report_says_by_ffmpeg() {
    assert!(have_ffmpeg());
    let fx = Fixture::default().await;
    book(fx.path(), "mp3_44100_128", "out/book.mp3");
    let out = fx.run(&["book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = fx.json("out/book.report.json");
    assert_eq!(report["assembly"], "copy");
    // ffmpeg decodes the output and each served response on its own (trimming LAME's delay and
    // padding as the Info tags say): no code of narrate's judges the placement.
    let output = ffmpeg_pcm(&fx.path().join("out/book.mp3"));
    let log = by_request_id(&fx.tts_log());
    let rate = 44_100.0;
    let mut checked = 0;
    for segment in report["segments"].as_array().unwrap() {
        for request in segment["requests"].as_array().unwrap() {
            let (_, entry) = &log[request["request_id"].as_str().unwrap()];
            let served = refetch(&fx.base(), entry).await;
            let response = ffmpeg_decode(&served, &[]);
            let start = (request["start_seconds"].as_f64().unwrap() * rate).round() as usize;
            let end = (request["end_seconds"].as_f64().unwrap() * rate).round() as usize;
            assert!(
                (end - start).abs_diff(response.len()) <= 1,
                "{}: the span is the response's length",
                segment["id"]
            );
            // The middle of each response (away from the frames that overlap its neighbours)
            // stands in the output sample for sample at the offset the report gives.
            let skip = 2 * 1152;
            assert!(response.len() > 3 * skip, "long enough to compare");
            let middle = &response[skip..response.len() - skip];
            assert!(
                output[start + skip..start + skip + middle.len()] == *middle,
                "{}: not at {start} in the output",
                segment["id"]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chapter_files_assembled_in_parallel_equal_those_assembled_one_by_one() {
    let fx = Fixture::default().await;
    let d = fx.path();
    book(d, "mp3_44100_128", "out/book.mp3");
    for (jobs, output) in [("1", "one/book.mp3"), ("2", "two/book.mp3")] {
        let out = fx
            .run(&[
                "book.yaml",
                "--split",
                "chapters",
                "--gapless",
                "--loudness",
                "--jobs",
                jobs,
                "-o",
                output,
            ])
            .await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    for name in [
        "book-01-down-the-rabbit-hole.mp3",
        "book-02-the-pool-of-tears.mp3",
    ] {
        let (one, two) = (
            fx.read(&format!("one/{name}")),
            fx.read(&format!("two/{name}")),
        );
        assert!(!one.is_empty() && one == two, "{name} differs");
    }
    let (a, b) = (
        fx.json("one/book.report.json"),
        fx.json("two/book.report.json"),
    );
    assert_eq!(a["outputs"].as_array().unwrap().len(), 2);
    let segments = |r: &Value| r["segments"].as_array().unwrap().clone();
    for (x, y) in segments(&a).iter().zip(&segments(&b)) {
        assert_eq!(x["start_seconds"], y["start_seconds"]);
        assert_eq!(x["end_seconds"], y["end_seconds"]);
        assert_eq!(
            x["file"].as_str().map(|f| f.replace("one/", "")),
            y["file"].as_str().map(|f| f.replace("two/", ""))
        );
        assert_eq!(x["loudness"], y["loudness"]);
    }
}

/// The inode of a file: a file assembled again is a new file renamed into place, a kept one is
/// the same file.
fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).unwrap().ino()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republish_keeps_unchanged_files_and_rebuilds_only_what_changed() {
    let fx = Fixture::default().await;
    let dir = fx.path();
    let mut yaml = String::from(
        "title: Three\noutput: out/three.mp3\ndefaults: {voice_id: JBFqnCBsd6RMkjVDRZzb, output_format: mp3_22050_32}\nsegments:\n",
    );
    for (c, name) in ["One", "Two", "Three"].iter().enumerate() {
        for s in 1..=2 {
            yaml.push_str(&format!(
                "  - {{id: c{}s{s}, chapter: \"{name}\", text: \"Chapter {name}, paragraph {s}: the rabbit ran past the hedge.\"}}\n",
                c + 1
            ));
        }
    }
    fx.write("three.yaml", &yaml);
    let files: Vec<std::path::PathBuf> = ["01-one", "02-two", "03-three"]
        .iter()
        .map(|n| dir.join(format!("out/three-{n}.mp3")))
        .collect();
    let split = [
        "three.yaml",
        "--split",
        "chapters",
        "--loudness-target",
        "-20",
    ];
    let run = |extra: &'static [&'static str]| {
        let args: Vec<&str> = split.iter().chain(extra).copied().collect();
        let fx = &fx;
        async move {
            let out = fx.run(&args).await;
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            let report = fx.json("out/three.report.json");
            let published: Vec<String> = report["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["published"].as_str().unwrap().to_string())
                .collect();
            (report, published)
        }
    };
    let (first, published) = run(&[]).await;
    assert_eq!(published, ["rebuilt"; 3]);
    let original: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let inodes: Vec<u64> = files.iter().map(|f| inode(f)).collect();
    let sent = fx.tts_log().len();
    assert_eq!(sent, 6);

    // Nothing changed: every file is kept as it is, with the same figures in the report.
    let (second, published) = run(&[]).await;
    assert_eq!(published, ["reused"; 3]);
    assert_eq!(fx.tts_log().len(), sent, "nothing sent");
    assert_eq!(files.iter().map(|f| inode(f)).collect::<Vec<_>>(), inodes);
    for field in ["audio_seconds", "loudness", "loudness_gain_db"] {
        for i in 0..3 {
            assert_eq!(
                first["outputs"][i][field], second["outputs"][i][field],
                "{field} of file {i}"
            );
        }
    }
    for i in 0..6 {
        for field in ["start_seconds", "end_seconds", "loudness"] {
            assert_eq!(
                first["segments"][i][field], second["segments"][i][field],
                "{field} of segment {i}"
            );
        }
    }

    // A new take of one segment: only its chapter's file is built again, to the same bytes
    // (the emulator's audio is deterministic).
    let (_, published) = run(&["--only", "c2s1"]).await;
    assert_eq!(published, ["reused", "rebuilt", "reused"]);
    assert_eq!(fx.tts_log().len(), sent + 1);
    assert_eq!(inode(&files[0]), inodes[0]);
    assert_ne!(inode(&files[1]), inodes[1]);
    assert_eq!(inode(&files[2]), inodes[2]);
    assert_eq!(std::fs::read(&files[1]).unwrap(), original[1]);

    // A file edited since (in place, to the same size) or removed is built again, as it was.
    let mut edited = original[2].clone();
    let middle = edited.len() / 2;
    for b in &mut edited[middle..middle + 10] {
        *b ^= 0x55;
    }
    std::fs::write(&files[2], &edited).unwrap();
    std::fs::remove_file(&files[0]).unwrap();
    let (_, published) = run(&[]).await;
    assert_eq!(published, ["rebuilt", "reused", "rebuilt"]);
    assert_eq!(std::fs::read(&files[0]).unwrap(), original[0]);
    assert_eq!(std::fs::read(&files[2]).unwrap(), original[2]);

    // An assembly setting changed: every file is built again.
    let now: Vec<u64> = files.iter().map(|f| inode(f)).collect();
    let args = [
        "three.yaml",
        "--split",
        "chapters",
        "--loudness-target",
        "-18",
    ];
    let out = fx.run(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = fx.json("out/three.report.json");
    for (i, f) in files.iter().enumerate() {
        assert_eq!(report["outputs"][i]["published"], "rebuilt");
        assert_ne!(inode(f), now[i]);
        assert_ne!(std::fs::read(f).unwrap(), original[i]);
    }
    assert_eq!(fx.tts_log().len(), sent + 1, "nothing sent");

    // One file: the report says it at the top.
    for expected in ["rebuilt", "reused"] {
        let out = fx.run(&["three.yaml"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(fx.json("out/three.report.json")["published"], expected);
    }
}

/// The `loudness-*.json` records in the state directory's published records.
fn loudness_records(dir: &Path) -> Vec<std::path::PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("loudness-"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_loudness_normalizes_as_measuring_again_does() {
    let fx = Fixture::default().await;
    let dir = &fx.dir;
    book(dir.path(), "mp3_44100_192", "out/book.mp3");
    let run = |extra: &'static [&'static str]| {
        let base = fx.emu.base_url();
        async move {
            let mut args = vec!["book.yaml", "--base-url", &base];
            args.extend_from_slice(extra);
            args.push("-v");
            let out = narrate(dir.path(), &args, &[("ELEVENLABS_API_KEY", SECRET_KEY)]).await;
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            stderr(&out).contains("loudness remembered")
        }
    };
    assert!(!run(&["--loudness-target", "-16"]).await);
    assert_eq!(
        loudness_records(dir.path()).len(),
        1,
        "measured once, remembered"
    );
    let first = std::fs::read(dir.path().join("out/book.mp3")).unwrap();
    let report = read_json(&dir.path().join("out/book.report.json"));
    // The same takes to another file: one pass with the remembered loudness, the same samples
    // encoded (the same bytes) and the same figures reported.
    assert!(run(&["--loudness-target", "-16", "-o", "out/again.mp3"]).await);
    assert_eq!(
        std::fs::read(dir.path().join("out/again.mp3")).unwrap(),
        first
    );
    let again = read_json(&dir.path().join("out/again.report.json"));
    let same = |a: &Value, b: &Value| {
        let keys = [
            "integrated_lufs",
            "true_peak_dbtp",
            "rms_db",
            "noise_floor_db",
        ];
        keys.iter()
            .all(|k| (a[k].as_f64().unwrap() - b[k].as_f64().unwrap()).abs() < 1e-9)
    };
    assert!(same(&again["loudness"], &report["loudness"]));
    let gain = |r: &Value| r["loudness_gain_db"].as_f64().unwrap();
    assert!((gain(&again) - gain(&report)).abs() < 1e-9);
    let segment = |r: &Value, i: usize| r["segments"][i]["loudness"].clone();
    for i in 0..4 {
        assert!(
            same(&segment(&again, i), &segment(&report, i)),
            "segment {i}"
        );
    }
    // Another target from the same record, judged by ffmpeg.
    assert!(run(&["--loudness-target", "-20", "-o", "out/quiet.mp3"]).await);
    if have_ffmpeg() {
        let lufs = ffmpeg_ebur128(&dir.path().join("out/quiet.mp3"))("I:");
        assert!((lufs + 20.0).abs() <= 0.5, "ffmpeg reads {lufs} LUFS");
    }
    // Other takes are other samples: measured, not taken from this record.
    let yaml = std::fs::read_to_string(dir.path().join("book.yaml")).unwrap();
    let louder = yaml.replace(
        "Curiouser and curiouser!",
        "Curiouser and curiouser and curiouser!",
    );
    assert_ne!(louder, yaml);
    write(dir.path(), "book.yaml", &louder);
    assert!(!run(&["--loudness-target", "-16", "-o", "out/other.mp3"]).await);
    assert_eq!(loudness_records(dir.path()).len(), 2);
    if have_ffmpeg() {
        let lufs = ffmpeg_ebur128(&dir.path().join("out/other.mp3"))("I:");
        assert!((lufs + 16.0).abs() <= 0.5, "ffmpeg reads {lufs} LUFS");
    }
}
