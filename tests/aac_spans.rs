//! An `.m4b` encoded on every core: the book cut into spans in its silences, each encoded by
//! its own ffmpeg, the streams joined. Judged by ffmpeg: how many encoders ran (a wrapper logs
//! each ffmpeg narrate starts), the decoded audio (each segment's sound starts where the report
//! puts it, within one AAC frame; the pauses between segments, joins among them, stay silent),
//! and ffprobe's duration and chapter marks.

use std::path::Path;

use crate::util::*;

/// One AAC frame, in seconds at 44.1 kHz.
const FRAME: f64 = 1024.0 / 44_100.0;

/// Three chapters of the sample book, a segment per paragraph, about twelve minutes in all:
/// the segments' texts.
fn manifest(dir: &Path) -> Vec<String> {
    let mut texts = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/alice");
    let mut segments = String::new();
    for k in 1..=3 {
        let text = std::fs::read_to_string(root.join(format!("ch{k:02}.txt"))).unwrap();
        let mut size = 0;
        for (n, p) in text.split("\n\n").enumerate() {
            let p = p.split_whitespace().collect::<Vec<_>>().join(" ");
            if p.is_empty() || size > 3600 {
                continue;
            }
            size += p.len();
            texts.push(p.clone());
            let text = serde_json::to_string(&p).unwrap();
            segments.push_str(&format!(
                "  - {{id: c{k}p{n}, chapter: \"Chapter {k}\", text: {text}}}\n"
            ));
        }
    }
    write(
        dir,
        "book.yaml",
        &format!(
            "title: Spans\noutput: out/book.m4b\nlead_in_ms: 500\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_44100_128, pause_after_ms: 400, chapter_pause_ms: 1500}}\nsegments:\n{segments}"
        ),
    );
    let wrapper = dir.join("ffmpeg-logged");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec ffmpeg \"$@\"\n",
            dir.join("ffmpeg.log").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    texts
}

/// Where sound first rises above -50 dB after `from`.
fn onset(pcm: &[i16], from: f64) -> f64 {
    let first = (from.max(0.0) * 44_100.0) as usize;
    let at = pcm[first.min(pcm.len())..]
        .iter()
        .position(|s| s.unsigned_abs() > 100)
        .unwrap_or(pcm.len());
    (first + at) as f64 / 44_100.0
}

/// The loudest sample (0..1) of `pcm` between two times.
fn peak(pcm: &[i16], from: f64, to: f64) -> f64 {
    let at = |t: f64| ((t.max(0.0) * 44_100.0) as usize).min(pcm.len());
    pcm[at(from)..at(to).max(at(from))]
        .iter()
        .map(|s| f64::from(s.unsigned_abs()) / 32768.0)
        .fold(0.0, f64::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_m4b_encoded_in_spans_at_once_is_heard_where_the_report_says_with_silent_joins() {
    let fx = Fixture::default().await;
    let d = fx.path();
    let texts = manifest(d);
    let wrapper = d.join("ffmpeg-logged");
    let out = narrate(
        d,
        &[
            "book.yaml",
            "--base-url",
            &fx.base(),
            "--loudness-target",
            "-20",
        ],
        &[
            ("ELEVENLABS_API_KEY", SECRET_KEY),
            ("NARRATE_FFMPEG", wrapper.to_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // More than one encoder ran, each on its span.
    let log = std::fs::read_to_string(d.join("ffmpeg.log")).unwrap();
    let encoders = log.lines().filter(|l| l.contains("-f adts")).count();
    assert!(encoders >= 2, "{log}");
    let report = fx.json("out/book.report.json");
    let m4b = d.join("out/book.m4b");
    let pcm = ffmpeg_pcm(&m4b);
    let heard = pcm.len() as f64 / 44_100.0;
    let total = report["totals"]["audio_seconds"].as_f64().unwrap();
    // The joins are few: a span holds at least two minutes, but the last.
    assert!(
        encoders as f64 <= total / 120.0 + 1.0,
        "{encoders} spans for {total} s"
    );
    assert!(
        (heard - total).abs() <= 2.0 * FRAME,
        "{heard} s heard, {total} s placed"
    );
    let segments = report["segments"].as_array().unwrap();
    let mut starts = Vec::new();
    for (n, s) in segments.iter().enumerate() {
        let (start, end) = (
            s["start_seconds"].as_f64().unwrap(),
            s["end_seconds"].as_f64().unwrap(),
        );
        // Its sound starts where the report puts it, within one frame (a quotation mark
        // before its first word is a silent moment).
        if texts[n].starts_with(char::is_alphanumeric) {
            let heard = onset(&pcm, start - 3.0 * FRAME);
            assert!(
                (heard - start).abs() <= FRAME,
                "{n}: heard at {heard}, placed at {start}"
            );
        }
        // The pause after it (where the joins are) is silent.
        if let Some(next) = segments.get(n + 1) {
            let next = next["start_seconds"].as_f64().unwrap();
            assert!(
                peak(&pcm, end + FRAME, next - FRAME) < 0.001,
                "{n}: {end}..{next}"
            );
        }
        if n == 0 || s["chapter"] != segments[n - 1]["chapter"] {
            starts.push(start);
        }
    }
    assert_eq!(starts.len(), 3);
    // Each chapter mark is at or before its first sound, and after the pause before it.
    let probe = ffprobe_json(&m4b, &["-show_chapters"]);
    let marks: Vec<f64> = probe["chapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| secs(&c["start_time"]))
        .collect();
    assert_eq!(marks.len(), 3, "{probe}");
    for (mark, start) in marks.iter().zip(&starts) {
        assert!(
            *mark <= start + FRAME && *mark >= start - 2.0,
            "{mark} for {start}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoder_that_fails_fails_the_m4b_and_leaves_no_file_behind() {
    let fx = Fixture::default().await;
    let d = fx.path();
    manifest(d);
    // An ffmpeg that refuses to encode a span (its other work, the check and the rest, runs).
    let failing = d.join("ffmpeg-failing");
    std::fs::write(
        &failing,
        "#!/bin/sh\ncase \"$*\" in *'-f adts'*) echo 'no encoder today' >&2; exit 1;; esac\nexec ffmpeg \"$@\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = narrate(
        d,
        &["book.yaml", "--base-url", &fx.base()],
        &[
            ("ELEVENLABS_API_KEY", SECRET_KEY),
            ("NARRATE_FFMPEG", failing.to_str().unwrap()),
        ],
    )
    .await;
    assert_ne!(out.status.code(), Some(0));
    let said = stderr(&out);
    assert!(
        said.contains("AAC encoding") && said.contains("no encoder today"),
        "{said}"
    );
    assert!(!d.join("out/book.m4b").exists());
    // Nothing of the spill, the spans or the temporary output is left.
    let left: Vec<_> = files_under(&d.join("out"))
        .into_iter()
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".pcm") || name.ends_with(".aac") || name.ends_with(".part")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
