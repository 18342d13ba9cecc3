//! The read-along book (`--read-along`): an EPUB 3 with Media Overlays beside a render split
//! by chapter, its text synced to the chapter files' audio. Each chapter's narrated text is an
//! XHTML document with each sentence (or phrase) in an element with an id; its SMIL document
//! pairs each id with where it is heard in the chapter's file.
//!
//! - `clips`: sentences and their times, from the API's character timings carried through
//!   the placement narrate gave the audio (lead-in, pauses, trims, joins), or a request's
//!   place when it has none.
//! - `package`: the EPUB's documents and the container.
//!
//! Not responsible for the chapter files (see `publish`) or the timings' storage (see
//! `state::cache`).

use std::path::{Path, PathBuf};

use crate::manifest::Job;
use crate::output::report::{ReadAlong, Report};
use crate::output::sidefiles::{alignment_of, place_in_file};
use crate::plan::Plan;

mod clips;
mod package;
mod source;
mod wrap;

use clips::{Gatherer, Paragraph};

/// One chapter of the read-along book.
pub(crate) struct Chapter {
    pub(crate) title: String,
    /// Its audio: the chapter file the render wrote.
    pub(crate) audio: PathBuf,
    pub(crate) seconds: f64,
    pub(crate) paragraphs: Vec<Paragraph>,
}

/// Refuses, before anything is sent, a read-along book whose chapter files cannot be its
/// audio (an EPUB's audio is MP3, or AAC in MP4).
pub(crate) fn check(job: &Job) -> Result<(), crate::error::UsageError> {
    let fits = job.output.extension().is_some_and(|e| {
        ["mp3", "m4b", "m4a"]
            .iter()
            .any(|x| e.eq_ignore_ascii_case(x))
    });
    if fits {
        return Ok(());
    }
    Err(crate::error::UsageError(format!(
        "{}: --read-along needs .mp3 or .m4b chapter files (an EPUB's audio is MP3 or AAC), not {}",
        job.manifest.display(),
        job.output.display()
    )))
}

/// The read-along book's path: the output's, with `.read-along.epub` (never the `.epub` a
/// manifest was imported from, beside it under the same name).
pub(crate) fn path(output: &Path) -> PathBuf {
    output.with_extension("read-along.epub")
}

/// Whether each of a segment's requests starts a paragraph of its text: a blank line before
/// it, which the planner cut at (so its timings do not show it).
fn paragraph_starts(job: &Job, plan: &Plan, requests: &[usize]) -> Vec<bool> {
    let Some(segment) = requests
        .first()
        .and_then(|&r| job.segments.get(plan.requests[r].segment))
    else {
        return vec![false; requests.len()];
    };
    let text = segment.text.as_str();
    let mut cursor = 0;
    requests
        .iter()
        .map(|&r| {
            let sent = plan.requests[r].text.trim();
            let head: String = sent.chars().take(24).collect();
            let Some(at) = text[cursor..].find(&head).map(|i| cursor + i) else {
                return false;
            };
            // Only white space is between two requests: two newlines make a blank line.
            let blank = text[cursor..at].matches('\n').count() >= 2;
            cursor = if text[at..].starts_with(sent) {
                at + sent.len()
            } else {
                at + head.len()
            };
            blank
        })
        .collect()
}

/// The chapters of a split render: each output file's segments, their clips.
fn chapters(
    job: &Job,
    plan: &Plan,
    report: &Report,
    alignments: &[Option<PathBuf>],
) -> (Vec<Chapter>, ReadAlong) {
    let mut out = Vec::new();
    let mut timing = ReadAlong::default();
    for output in &report.outputs {
        let mut g = Gatherer::default();
        let mut title = None;
        for (si, segment) in report.segments.iter().enumerate() {
            if segment.file.as_deref() != Some(output.path.as_str()) {
                continue;
            }
            title = title.or_else(|| segment.chapter.clone());
            g.paragraph(segment.id.ends_with("-title"));
            let starts = paragraph_starts(job, plan, &plan.segment_requests[si]);
            for (k, request) in segment.requests.iter().enumerate() {
                let (Some(start), Some(end)) = (request.start_seconds, request.end_seconds) else {
                    continue;
                };
                let r = plan.segment_requests[si][k];
                let new = starts.get(k).copied().unwrap_or(false);
                match alignment_of(alignments, r) {
                    Some(alignment) => {
                        g.timed(&alignment, &place_in_file(request, start, end), new)
                    }
                    None => g.placed(&plan.requests[r].text, start, end),
                }
            }
        }
        let (paragraphs, timed, placed) = g.finish();
        timing.sentences += timed;
        timing.paragraphs += placed;
        out.push(Chapter {
            title: title.unwrap_or_else(|| format!("Chapter {}", out.len() + 1)),
            audio: PathBuf::from(&output.path),
            seconds: output.audio_seconds,
            paragraphs,
        });
    }
    (out, timing)
}

/// Each segment's sentences and where each is heard in its file, for the review page: empty
/// for a segment whose requests do not all have character timings. A paragraph's first
/// sentence after the segment's first starts with a blank line.
pub(crate) fn sentences(
    job: &Job,
    plan: &Plan,
    report: &Report,
    alignments: &[Option<PathBuf>],
) -> Vec<Vec<(f64, f64, String)>> {
    let mut out = Vec::with_capacity(report.segments.len());
    for (si, segment) in report.segments.iter().enumerate() {
        let mut g = Gatherer::default();
        let mut whole = true;
        let starts = paragraph_starts(job, plan, &plan.segment_requests[si]);
        for (k, request) in segment.requests.iter().enumerate() {
            let r = plan.segment_requests[si][k];
            let new = starts.get(k).copied().unwrap_or(false);
            match (
                request.start_seconds,
                request.end_seconds,
                alignment_of(alignments, r),
            ) {
                (Some(start), Some(end), Some(alignment)) => {
                    g.timed(&alignment, &place_in_file(request, start, end), new);
                }
                _ => whole = false,
            }
        }
        let (paragraphs, _, _) = g.finish();
        let mut said = Vec::new();
        for (p, paragraph) in paragraphs.iter().enumerate() {
            for (c, clip) in paragraph.clips.iter().enumerate() {
                let gap = if p > 0 && c == 0 { "\n\n" } else { "" };
                said.push((clip.begin, clip.end, format!("{gap}{}", clip.text)));
            }
        }
        out.push(if whole { said } else { Vec::new() });
    }
    out
}

/// Writes the read-along book of a successful render split by chapter, atomically, at
/// [`path`]; says how its clips were timed.
pub(crate) fn write(
    job: &Job,
    plan: &Plan,
    report: &Report,
    alignments: &[Option<PathBuf>],
) -> std::io::Result<ReadAlong> {
    let (chapters, mut read_along) = chapters(job, plan, report, alignments);
    let path = path(&job.output);
    read_along.path = path.display().to_string();
    if let Some(src) = &job.source {
        match source::write(job, &chapters, src, &path) {
            Ok(kept) => {
                read_along.source = Some(src.display().to_string());
                read_along.unfound = kept.unfound;
                return Ok(read_along);
            }
            Err(why) => {
                tracing::warn!(
                    "{}: the read-along book is written from the narrated text, not from the book's own pages: {why}",
                    src.display()
                );
                read_along.source_not_kept = Some(format!("{}: {why}", src.display()));
            }
        }
    }
    package::write(job, &chapters, &path)?;
    Ok(read_along)
}
