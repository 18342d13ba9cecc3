//! Side files beside the output: `<stem>.chapters.txt` (FFMETADATA, for ffmpeg to make an M4B
//! with chapters), `<stem>.cue`, and captions `<stem>.srt` and `<stem>.vtt`: one cue per
//! request's text at its place in the audio, or with `--timestamps` cues of a few words each,
//! timed by the API's character timings. With `--split chapters`: captions beside each chapter
//! file, `<stem>.cue` over the files and a `<stem>.m3u8` playlist.
//!
//! Everything is derived from the report's offsets, so the files agree with it by construction.
//! Not responsible for the audio or the report (see `audio`, `report`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::names::Split;
use super::report::{Report, RequestReport, SegmentReport};
use crate::api::Alignment;
use crate::audio::tags::ffmetadata_escape;
use crate::manifest::Job;
use crate::plan::Plan;

/// A chapter of the output: its title and where it starts and ends, in seconds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Chapter {
    pub title: String,
    pub start: f64,
    pub end: f64,
}

/// The chapters of a rendered report: a chapter starts where its first segment's audio starts
/// (the first chapter at 0, so the lead-in belongs to it) and ends where the next one starts.
pub(crate) fn chapters(report: &Report) -> Vec<Chapter> {
    let mut starts: Vec<(String, f64)> = Vec::new();
    let mut previous: Option<&str> = None;
    for s in &report.segments {
        if let Some(chapter) = s.chapter.as_deref()
            && previous != Some(chapter)
        {
            let start = if starts.is_empty() {
                0.0
            } else {
                s.start_seconds.unwrap_or(0.0)
            };
            starts.push((chapter.to_string(), start));
        }
        previous = s.chapter.as_deref();
    }
    let total = report.totals.audio_seconds;
    (0..starts.len())
        .map(|i| Chapter {
            title: starts[i].0.clone(),
            start: starts[i].1,
            end: starts.get(i + 1).map_or(total, |n| n.1),
        })
        .collect()
}

pub(crate) fn clock(seconds: f64, separator: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{separator}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// `MM:SS:FF` with 75 frames a second, as CUE sheets count.
pub(crate) fn cue_time(seconds: f64) -> String {
    let frames = (seconds.max(0.0) * 75.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}",
        frames / 75 / 60,
        frames / 75 % 60,
        frames % 75
    )
}

/// The side files' paths for an output: chapters for ffmpeg, CUE sheet, SRT and WebVTT
/// captions, and the Podcasting 2.0 JSON transcript.
pub(crate) fn paths(output: &Path) -> [PathBuf; 5] {
    let stem = output
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let dir = output.parent().unwrap_or(Path::new(""));
    ["chapters.txt", "cue", "srt", "vtt", "transcript.json"]
        .map(|ext| dir.join(format!("{stem}.{ext}")))
}

/// The longest caption line, in characters.
pub(crate) const CUE_CHARS: usize = 42;
/// The longest caption, in seconds.
pub(crate) const CUE_SECONDS: f64 = 6.0;

/// Caption cues from character timings: words (runs of non-space characters) gathered into
/// cues of at most 42 characters and 6 seconds, ending early after a sentence,
/// or after a clause once half full. Times are the first character's start and the last one's
/// end, in seconds from the start of the request's audio.
pub(crate) fn word_cues(alignment: &Alignment) -> Vec<(f64, f64, String)> {
    let n = alignment
        .characters
        .len()
        .min(alignment.character_start_times_seconds.len())
        .min(alignment.character_end_times_seconds.len());
    let mut words: Vec<(f64, f64, String)> = Vec::new();
    let mut current: Option<(f64, f64, String)> = None;
    for i in 0..n {
        let c = &alignment.characters[i];
        let (start, end) = (
            alignment.character_start_times_seconds[i],
            alignment.character_end_times_seconds[i],
        );
        if c.chars().all(char::is_whitespace) {
            words.extend(current.take());
            continue;
        }
        match &mut current {
            Some(w) => {
                w.1 = end;
                w.2.push_str(c);
            }
            None => current = Some((start, end, c.clone())),
        }
    }
    words.extend(current);
    let ends_sentence = |w: &str| {
        w.trim_end_matches(['"', '\'', '\u{2019}', '\u{201D}', ')'])
            .ends_with(['.', '!', '?', '\u{2026}'])
    };
    let ends_clause = |w: &str| w.ends_with([',', ';', ':', '\u{2014}']);
    let mut cues: Vec<(f64, f64, String)> = Vec::new();
    let mut cue: Option<(f64, f64, String)> = None;
    for (start, end, word) in words {
        match &mut cue {
            Some(c)
                if c.2.chars().count() + 1 + word.chars().count() <= CUE_CHARS
                    && end - c.0 <= CUE_SECONDS =>
            {
                c.1 = end;
                c.2.push(' ');
                c.2.push_str(&word);
            }
            _ => {
                cues.extend(cue.take());
                cue = Some((start, end, word));
            }
        }
        if let Some(c) = &cue
            && (ends_sentence(&c.2) || (ends_clause(&c.2) && c.2.chars().count() >= CUE_CHARS / 2))
        {
            cues.extend(cue.take());
        }
    }
    cues.extend(cue);
    cues
}

/// Writes the side files of a successful render. `alignments[r]` is where request `r`'s
/// character timings are stored, if it has them. A split output gets one CUE sheet over the
/// files and an M3U playlist, and when split by chapter captions beside each chapter file.
pub(crate) fn write(
    job: &Job,
    plan: &Plan,
    report: &Report,
    alignments: &[Option<PathBuf>],
    split: Split,
) -> std::io::Result<Vec<PathBuf>> {
    if report.outputs.is_empty() {
        return write_whole(job, plan, report, alignments);
    }
    let mut written = Vec::new();
    let mut files = Vec::new();
    // Each file's first segment, found in one pass.
    let mut first: HashMap<&str, &SegmentReport> = HashMap::new();
    for s in &report.segments {
        if let Some(file) = &s.file {
            first.entry(file.as_str()).or_insert(s);
        }
    }
    for output in &report.outputs {
        let path = Path::new(&output.path);
        if split == Split::Chapters {
            let [_, _, srt_path, vtt_path, transcript_path] = paths(path);
            let texts = captions(plan, report, alignments, Some(&output.path));
            for (path, text) in [srt_path, vtt_path, transcript_path].into_iter().zip(texts) {
                crate::files::write_atomic(&path, text.as_bytes())?;
                written.push(path);
            }
        }
        let segment = first.get(output.path.as_str());
        let title = match split {
            Split::Segments => segment.map(|s| s.id.clone()),
            _ => segment.and_then(|s| s.chapter.clone()),
        };
        files.push((path, title.unwrap_or_default(), output.audio_seconds));
    }
    let listed = || {
        Ok(files
            .iter()
            .map(|(p, t, s)| Ok((p.to_path_buf(), t.clone(), *s))))
    };
    written.extend(write_lists(job, listed)?);
    Ok(written)
}

/// One file of a split output as its CUE sheet and playlist list it: its path, title and
/// length in seconds.
pub(crate) type Listed = (PathBuf, String, f64);

/// Writes the CUE sheet and the M3U8 playlist of a split output's files, read from `files`
/// (called once for each list, so the files can be streamed rather than held).
pub(crate) fn write_lists<I>(
    job: &Job,
    files: impl Fn() -> std::io::Result<I>,
) -> std::io::Result<[PathBuf; 2]>
where
    I: Iterator<Item = std::io::Result<Listed>>,
{
    let [_, cue_path, ..] = paths(&job.output);
    crate::files::write_atomic_with(&cue_path, |w| {
        w.write_all(cue_head(job).as_bytes())?;
        for (i, file) in files()?.enumerate() {
            let (path, title, _) = file?;
            let name = beside(&path, &job.output);
            write!(
                w,
                "FILE \"{}\" {}\n  TRACK {:02} AUDIO\n    TITLE \"{}\"\n    INDEX 01 00:00:00\n",
                quote(&name),
                cue_kind(job, &name),
                i + 1,
                quote(&title)
            )?;
        }
        Ok(())
    })?;
    let playlist_path = job.output.with_extension("m3u8");
    crate::files::write_atomic_with(&playlist_path, |w| {
        w.write_all(b"#EXTM3U\n")?;
        for file in files()? {
            let (path, title, seconds) = file?;
            let name = beside(&path, &job.output);
            writeln!(
                w,
                "#EXTINF:{},{}\n{}",
                seconds.round() as u64,
                one_line(&title),
                m3u_path(&name)
            )?;
        }
        Ok(())
    })?;
    Ok([cue_path, playlist_path])
}

/// How a side file beside `output` names `path`: relative to the output's folder (a segment's
/// file is in a folder of its own), else by its file name.
fn beside(path: &Path, output: &Path) -> String {
    path.strip_prefix(crate::files::parent_dir(output))
        .unwrap_or_else(|_| Path::new(path.file_name().unwrap_or_default()))
        .to_string_lossy()
        .into_owned()
}

/// A value on one line of a side file: control characters (newlines, tabs...) become spaces,
/// so a title cannot start a line of its own (a `FILE` or `TRACK` of a CUE sheet, an entry of
/// a playlist).
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A CUE sheet's quoted value: on one line, with no double quote to end it early.
pub(crate) fn quote(s: &str) -> String {
    one_line(s).replace('"', "'")
}

/// A playlist entry's path: control characters percent-encoded, so the entry stays one line.
fn m3u_path(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_control() || c == '%' {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Caption text for SRT: one line, and no `-->` that a reader would take for a timing line.
fn srt_text(text: &str) -> String {
    one_line(text).replace("-->", "->")
}

/// Caption text for WebVTT, where `<` and `&` start markup: escaped, on one line.
fn vtt_text(text: &str) -> String {
    one_line(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub(crate) fn cue_head(job: &Job) -> String {
    let mut cue = String::new();
    if let Some(a) = &job.book.author {
        let _ = writeln!(cue, "PERFORMER \"{}\"", quote(a));
    }
    if let Some(t) = &job.book.title {
        let _ = writeln!(cue, "TITLE \"{}\"", quote(t));
    }
    cue
}

pub(crate) fn cue_kind(job: &Job, file: &str) -> &'static str {
    if job.output_format.is_mp3() && file.to_lowercase().ends_with(".mp3") {
        "MP3"
    } else {
        "WAVE"
    }
}

/// The side files of one output file: chapters for ffmpeg and a CUE sheet (when the
/// manifest has chapters), captions.
pub(crate) fn write_whole(
    job: &Job,
    plan: &Plan,
    report: &Report,
    alignments: &[Option<PathBuf>],
) -> std::io::Result<Vec<PathBuf>> {
    let [chapters_path, cue_path, srt_path, vtt_path, transcript_path] = paths(&job.output);
    let chapters = chapters(report);
    let mut written = Vec::new();

    if !chapters.is_empty() {
        let mut meta = String::from(";FFMETADATA1\n");
        if let Some(t) = &job.book.title {
            let _ = writeln!(meta, "title={}", ffmetadata_escape(t));
        }
        if let Some(a) = &job.book.author {
            let _ = writeln!(meta, "artist={}", ffmetadata_escape(a));
        }
        if let Some(a) = &job.album {
            let _ = writeln!(meta, "album={}", ffmetadata_escape(a));
        }
        for c in &chapters {
            let _ = write!(
                meta,
                "\n[CHAPTER]\nTIMEBASE=1/1000\nSTART={}\nEND={}\ntitle={}\n",
                (c.start * 1000.0).round() as u64,
                (c.end * 1000.0).round() as u64,
                ffmetadata_escape(&c.title)
            );
        }
        crate::files::write_atomic(&chapters_path, meta.as_bytes())?;
        written.push(chapters_path);

        let mut cue = cue_head(job);
        let file = job.output.file_name().unwrap_or_default().to_string_lossy();
        let _ = writeln!(cue, "FILE \"{}\" {}", quote(&file), cue_kind(job, &file));
        for (i, c) in chapters.iter().enumerate() {
            let _ = write!(
                cue,
                "  TRACK {:02} AUDIO\n    TITLE \"{}\"\n    INDEX 01 {}\n",
                i + 1,
                quote(&c.title),
                cue_time(c.start)
            );
        }
        crate::files::write_atomic(&cue_path, cue.as_bytes())?;
        written.push(cue_path);
    }

    let texts = captions(plan, report, alignments, None);
    for (path, text) in [srt_path, vtt_path, transcript_path].into_iter().zip(texts) {
        crate::files::write_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// Request `r`'s character timings, when they are stored and readable.
pub(crate) fn alignment_of(alignments: &[Option<PathBuf>], r: usize) -> Option<Alignment> {
    let path = alignments.get(r)?.as_ref()?;
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Where a time in a request's audio is in its file, the request placed from `start` to
/// `end`: its own time zero is its start before any silence `trim_silence` cut, and a time is
/// kept within its span.
pub(crate) fn place_in_file(request: &RequestReport, start: f64, end: f64) -> impl Fn(f64) -> f64 {
    let origin = start - request.trimmed_ms.map_or(0.0, |t| t[0] / 1000.0);
    move |t| (origin + t).clamp(start, end)
}

/// SRT and WebVTT captions of the segments in `file` (all of them when `None`), and the same
/// cues as a Podcasting 2.0 JSON transcript (`version`, `segments` of `startTime`, `endTime`,
/// `body`).
pub(crate) fn captions(
    plan: &Plan,
    report: &Report,
    alignments: &[Option<PathBuf>],
    file: Option<&str>,
) -> [String; 3] {
    let mut transcript: Vec<serde_json::Value> = Vec::new();
    let mut srt = String::new();
    let mut vtt = String::from("WEBVTT\n");
    let mut n = 0;
    for (si, segment) in report.segments.iter().enumerate() {
        if file.is_some() && segment.file.as_deref() != file {
            continue;
        }
        for (k, request) in segment.requests.iter().enumerate() {
            let (Some(start), Some(end)) = (request.start_seconds, request.end_seconds) else {
                continue;
            };
            let r = plan.segment_requests[si][k];
            let timed = alignment_of(alignments, r);
            let words = timed.is_some();
            let cues = match timed {
                Some(alignment) => {
                    let place = place_in_file(request, start, end);
                    word_cues(&alignment)
                        .into_iter()
                        .map(|(a, b, text)| (place(a), place(b), text))
                        .collect()
                }
                None => vec![(
                    start,
                    end,
                    plan.requests[r]
                        .text
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                )],
            };
            for (c, (from, to, text)) in cues.into_iter().enumerate() {
                n += 1;
                transcript.push(serde_json::json!({
                    "startTime": (from * 1000.0).round() / 1000.0,
                    "endTime": (to * 1000.0).round() / 1000.0,
                    "body": text,
                }));
                let _ = write!(
                    srt,
                    "{n}\n{} --> {}\n{}\n\n",
                    clock(from, ','),
                    clock(to, ','),
                    srt_text(&text)
                );
                // Cue ids: the segment and request, and with word timings the cue's number.
                let id = if words {
                    format!("{}-{}-{}", segment.id, k + 1, c + 1)
                } else {
                    format!("{}-{}", segment.id, k + 1)
                };
                let _ = write!(
                    vtt,
                    "\n{id}\n{} --> {}\n{}\n",
                    clock(from, '.'),
                    clock(to, '.'),
                    vtt_text(&text)
                );
            }
        }
    }
    let transcript = serde_json::json!({"version": "1.0.0", "segments": transcript});
    [srt, vtt, format!("{transcript:#}\n")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_formatted_for_each_format() {
        assert_eq!(clock(3725.0456, ','), "01:02:05,046");
        assert_eq!(clock(0.5, '.'), "00:00:00.500");
        assert_eq!(cue_time(61.5), "01:01:38"); // 1 min, 1 s, 37.5 frames → 38
        assert_eq!(ffmetadata_escape("a=b;c"), "a\\=b\\;c");
    }

    fn timed(text: &str, per_char: f64) -> Alignment {
        let n = text.chars().count();
        Alignment {
            characters: text.chars().map(String::from).collect(),
            character_start_times_seconds: (0..n).map(|i| i as f64 * per_char).collect(),
            character_end_times_seconds: (0..n).map(|i| (i + 1) as f64 * per_char).collect(),
        }
    }

    #[test]
    fn word_cues_break_at_sentences_clauses_and_length() {
        let cues = word_cues(&timed(
            "Down, down, down. Would the fall never come to an end? I wonder how many miles I've fallen by this time.",
            0.1,
        ));
        let texts: Vec<&str> = cues.iter().map(|c| c.2.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Down, down, down.",
                "Would the fall never come to an end?",
                "I wonder how many miles I've fallen by",
                "this time."
            ]
        );
        // Each cue runs from its first character's start to its last one's end.
        assert_eq!((cues[1].0, cues[1].1), (1.8, 5.4));
        // A cue never lasts more than six seconds, however short its words.
        let slow = word_cues(&timed("a b c d e f g h", 1.0));
        assert!(slow.iter().all(|c| c.1 - c.0 <= CUE_SECONDS), "{slow:?}");
        assert_eq!(slow.len(), 3);
    }
}
