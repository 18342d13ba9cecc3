//! Publishable output, read back with ffmpeg's tools: MP3 duration, tags and chapters, an M4B
//! made from the chapter side file, captions that agree with the report, and loudness figures
//! that agree with ffmpeg's EBU R128 filter.
//!
//! These tests need `ffmpeg` and `ffprobe` (CI installs them). Without them they say so and
//! pass, unless `NARRATE_REQUIRE_FFMPEG` is set, as CI sets it.

use std::path::Path;
use std::process::Command;

use narrate::emulator;
use serde_json::Value;

use crate::util::*;

fn have_ffmpeg() -> bool {
    let found = Command::new("ffprobe")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("NARRATE_REQUIRE_FFMPEG").is_none(),
            "ffmpeg and ffprobe are required (NARRATE_REQUIRE_FFMPEG is set)"
        );
        eprintln!("ffprobe is not installed: skipping the read-back checks");
    }
    found
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
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_format",
            "-show_chapters",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn secs(v: &Value) -> f64 {
    v.as_str()
        .map_or_else(|| v.as_f64().unwrap(), |s| s.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp3_duration_tags_and_chapters_read_back_with_ffprobe() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator_in(dir.path(), emulator::Config::default()).await;
    book(dir.path(), "mp3_44100_128", "out/book.mp3");
    let out = narrate(
        dir.path(),
        &["book.yaml", "--base-url", &emu.base_url()],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
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
    emu.stop().await;
}

/// Runs ffmpeg's `ebur128` filter (with true peak) on a file and returns a reader of its
/// summary: `"I:"` gives the integrated loudness, `"Peak:"` the true peak.
fn ffmpeg_ebur128(path: &Path) -> impl Fn(&str) -> f64 + use<> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-af", "ebur128=peak=true", "-f", "null", "-"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = log[log.rfind("Summary:").expect("ebur128 prints a summary")..].to_string();
    move |label: &str| -> f64 {
        let line = summary
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} in {summary}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

/// `HH:MM:SS,mmm` or `HH:MM:SS.mmm` in seconds.
fn clock(s: &str) -> f64 {
    let s = s.replace(',', ".");
    let parts: Vec<f64> = s.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captions_agree_with_the_report_and_loudness_with_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator_in(dir.path(), emulator::Config::default()).await;
    book(dir.path(), "pcm_24000", "out/book.wav");
    let out = narrate(
        dir.path(),
        &["book.yaml", "--base-url", &emu.base_url(), "--loudness"],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
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
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loudness_target_normalizes_and_the_audiobook_check_reports_each_number() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator_in(dir.path(), emulator::Config::default()).await;
    book(dir.path(), "pcm_44100", "out/book.wav");
    let args = [
        "book.yaml",
        "--base-url",
        &emu.base_url(),
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
    assert!(
        (integrated + 16.0).abs() < 0.05 || (peak + 1.0).abs() < 0.05,
        "at the target or at the peak ceiling: {integrated} LUFS, {peak} dBTP"
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
    // An MP3 output is decoded, scaled and encoded once: normalized as well.
    book(dir.path(), "mp3_44100_192", "out/book.mp3");
    let out = narrate(dir.path(), &args, &[("ELEVENLABS_API_KEY", SECRET_KEY)]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_json(&dir.path().join("out/book.report.json"));
    let integrated = report["loudness"]["integrated_lufs"].as_f64().unwrap();
    let peak = report["loudness"]["true_peak_dbtp"].as_f64().unwrap();
    assert!(report["loudness_gain_db"].as_f64().unwrap() > 0.0);
    assert!(
        (integrated + 16.0).abs() < 0.1 || (peak + 1.0).abs() < 0.1,
        "MP3 at the target or at the peak ceiling: {integrated} LUFS, {peak} dBTP"
    );
    if have_ffmpeg() {
        let theirs = ffmpeg_ebur128(&dir.path().join("out/book.mp3"))("I:");
        assert!(
            (theirs - integrated).abs() <= 0.5,
            "MP3 normalized to {integrated}, ffmpeg reads {theirs}"
        );
    }
    // The same book as a 192 kbps MP3 passes the format check.
    let out = narrate(
        dir.path(),
        &["book.yaml", "--base-url", &emu.base_url(), "--audiobook"],
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
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_chapters_writes_one_file_per_chapter() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator_in(dir.path(), emulator::Config::default()).await;
    book(dir.path(), "pcm_16000", "out/book.wav");
    let args = [
        "book.yaml",
        "--base-url",
        &emu.base_url(),
        "--split",
        "chapters",
    ];
    let out = narrate(dir.path(), &args, &[("ELEVENLABS_API_KEY", SECRET_KEY)]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
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
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(outputs.len(), 2);
    assert!(
        outputs[0].ends_with("book-01-down-the-rabbit-hole.wav")
            && outputs[1].ends_with("book-02-the-pool-of-tears.wav")
    );
    let mut total = 0.0;
    for (path, segments) in [(&first, ["t1", "b1"]), (&second, ["t2", "b2"])] {
        let (spec, samples) = read_wav(path);
        let seconds = samples.len() as f64 / f64::from(spec.sample_rate);
        total += seconds;
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
    emu.stop().await;
}
