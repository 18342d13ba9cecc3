//! Reports: `<stem>.report.json` and `<stem>.report.csv` beside the output, describing every
//! segment and request of a run, with where each sits in the audio.
//!
//! Not responsible for the audio itself (see `audio`); never contains the API key.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use crate::audio::{Assembly, Placement};
use crate::execute::Outcome;
use crate::manifest::Job;
use crate::plan::Plan;

mod csv;
mod delivery;
mod rows;

pub(crate) use delivery::{Check, DeliveredFile, Delivery, Measured, Role};

pub(crate) use rows::Rows;
pub(crate) use rows::{SeqFrom, Spool, parse_line, raw};

/// Whether a run, or a segment, succeeded (`"ok"` / `"failed"` in the reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
}

impl Status {
    /// As the reports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
        }
    }
}

/// The report of one manifest (`<stem>.report.json`).
#[derive(Debug, Serialize)]
pub struct Report {
    pub status: Status,
    pub manifest: String,
    pub output: String,
    /// True when the audio came from the built-in emulator: synthetic, not speech.
    pub synthetic: bool,
    /// True when SIGINT or SIGTERM stopped the run before it finished.
    pub interrupted: bool,
    /// The limit that stopped the run early: `budget` or `deadline` (null when none did).
    pub stopped_by: Option<crate::execute::Limit>,
    pub started_at: String,
    pub finished_at: String,
    pub wall_seconds: f64,
    pub totals: Totals,
    /// How the audio was assembled: `decode` (WAV), `copy` (MP3 frames copied) or `encode`
    /// (MP3 encoded once from the joined samples).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assembly: Option<Assembly>,
    /// Whether the output file was built this run or kept as it was, made from the same inputs
    /// (per file in `outputs` when split).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<Published>,
    /// The chapter files written (with `--split chapters`), each with its own figures.
    #[serde(skip_serializing_if = "Rows::is_empty")]
    pub outputs: Rows<OutputReport>,
    /// Loudness of the whole output (with `--loudness`; per file in `outputs` when split).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loudness: Option<crate::audio::Loudness>,
    /// The gain applied to reach `--loudness-target`, in dB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loudness_gain_db: Option<f64>,
    /// The audiobook (ACX-style) checks (with `--audiobook`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audiobook: Option<Audiobook>,
    /// Each store's delivery (`--profile`), its files measured and checked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<Delivery>,
    /// The read-along book (`--read-along`) and how its clips were timed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_along: Option<ReadAlong>,
    /// With `--shard I/N`: the share this run rendered (its segments only; no book is
    /// assembled, `narrate assemble` does that).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub segments: Rows<SegmentReport>,
    /// What the summary needs when the rows are spooled (a render done a window at a time).
    #[serde(skip)]
    pub(crate) brief: Option<Brief>,
}

/// What the summary reads of a report whose rows are spooled, gathered as they were.
#[derive(Debug, Default)]
pub(crate) struct Brief {
    pub first_output: Option<String>,
    pub last_output: Option<String>,
    /// Files kept as they were (made from the same inputs).
    pub outputs_reused: usize,
    pub failed: usize,
    /// The failed segments' errors, in order.
    pub errors: Vec<String>,
}

/// Whether an output file was built this run or kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Published {
    /// Assembled this run.
    Rebuilt,
    /// Already there, intact and made from the same inputs: kept as it was.
    Reused,
}

impl Published {
    fn of(p: &Placement) -> Self {
        if p.reused {
            Published::Reused
        } else {
            Published::Rebuilt
        }
    }
}

/// The read-along book written (`--read-along`), and how its clips were timed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReadAlong {
    pub path: String,
    /// Clips (sentences, or phrases of long ones) timed from the API's character timings.
    pub sentences: usize,
    /// Clips at paragraph level, placed at their request's span (no timings: rendered
    /// without `--timestamps`, or recovered from the history).
    pub paragraphs: usize,
    /// The EPUB whose own pages and styles the book keeps (the manifest's `source`), and the
    /// clips not found in its text (heard, not highlighted); or why it could not be kept.
    pub source: Option<String>,
    pub unfound: usize,
    pub source_not_kept: Option<String>,
}

/// One chapter file of a split output.
#[derive(Debug, Serialize)]
pub struct OutputReport {
    pub path: String,
    pub published: Published,
    pub audio_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loudness: Option<crate::audio::Loudness>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loudness_gain_db: Option<f64>,
    /// This file's audiobook checks (with `--audiobook`): ACX judges each file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audiobook: Option<Audiobook>,
}

/// The totals of a report.
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub segments: usize,
    pub requests: usize,
    pub attempts: u32,
    pub retries: u32,
    pub cache_hits: usize,
    /// Requests whose audio was recovered from the speech history.
    pub recovered: usize,
    pub characters: usize,
    pub credits: f64,
    pub audio_seconds: f64,
}

/// One segment of a report.
#[derive(Debug, Serialize)]
pub struct SegmentReport {
    pub id: String,
    pub chapter: Option<String>,
    pub voice_id: String,
    pub model_id: String,
    pub characters: usize,
    pub status: Status,
    pub cached: bool,
    /// Rendered again with `--only`.
    pub regenerated: bool,
    pub credits: f64,
    pub attempts: u32,
    pub start_seconds: Option<f64>,
    pub end_seconds: Option<f64>,
    pub error: Option<String>,
    /// Loudness of this segment's audio (with `--loudness`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loudness: Option<crate::audio::Loudness>,
    /// The chapter file the segment is in (with `--split chapters`); its offsets are in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Its integrated loudness is more than [`LOUDNESS_JUMP_LU`] away from its neighbours'.
    pub loudness_jump: bool,
    /// The shard that rendered it (`I/N`): in a shard's report, and in `assemble --shards N`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub requests: Vec<RequestReport>,
}

/// How far (LU) a segment's loudness may stray from the mean of its neighbours before it is
/// flagged.
pub(crate) const LOUDNESS_JUMP_LU: f64 = 4.0;

/// One request of a segment.
#[derive(Debug, Serialize)]
pub struct RequestReport {
    pub request_id: Option<String>,
    pub characters: usize,
    pub attempts: u32,
    pub statuses: Vec<u16>,
    pub latency_ms: Option<u64>,
    pub credits: f64,
    pub cached: bool,
    pub regenerated: bool,
    pub previous_request_ids: Vec<String>,
    pub next_request_ids: Vec<String>,
    pub used_previous_text: bool,
    pub used_next_text: bool,
    pub start_seconds: Option<f64>,
    pub end_seconds: Option<f64>,
    /// Whether the API's character timings are stored for it (`--timestamps`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub timestamps: bool,
    /// Its audio came from the speech history: generated and paid for by an attempt whose
    /// answer was lost, not paid again.
    pub recovered: bool,
    /// The history item it was recovered from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_item_id: Option<String>,
    /// Why it could not be recovered (and was paid for again), when that was tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<String>,
    /// Silence `trim_silence` cut from the start and the end of its audio, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trimmed_ms: Option<[f64; 2]>,
}

/// Where each request's audio sits in the output, from the assembler's placement.
/// `request_spans[r]` is where request `r` is.
pub(crate) struct Timeline<'a> {
    /// The assembled files: one, or one per chapter with `--split chapters`.
    pub files: Vec<(&'a std::path::Path, &'a Placement)>,
    /// For each request: the file it is in, its sample span there, and what `trim_silence`
    /// cut from its audio; `None` for a request in no file written (a run a limit stopped).
    pub request_spans: Vec<Option<crate::audio::RequestSpan>>,
    /// Whether the output was split into chapter files.
    pub split: bool,
}

impl Timeline<'_> {
    /// Where request `r` is, when it is in a file written.
    fn span(&self, r: usize) -> Option<&crate::audio::RequestSpan> {
        self.request_spans.get(r)?.as_ref()
    }

    /// Where request `r` starts and ends in its file, in seconds.
    fn seconds(&self, r: usize) -> Option<(f64, f64)> {
        let span = self.span(r)?;
        let placement = self.files[span.file].1;
        Some((
            placement.seconds(span.samples.start),
            placement.seconds(span.samples.end),
        ))
    }

    /// What `trim_silence` cut from request `r`, in milliseconds at each end.
    fn trimmed_ms(&self, r: usize) -> Option<[f64; 2]> {
        let span = self.span(r)?;
        let rate = self.files[span.file].1.sample_rate;
        let ms = |n: u64| round(n as f64 * 1000.0 / f64::from(rate));
        Some([ms(span.edit.head), ms(span.edit.tail)])
    }
}

/// The report of request `r`: what it cost this run (the delivered answer's cost, plus every
/// attempt that was generated and billed but arrived cut or spoiled), and the context it was
/// rendered with (a cached request reports the context stored with it).
pub(crate) fn request_report(
    job: &Job,
    plan: &Plan,
    o: &Outcome,
    r: usize,
    timeline: Option<&Timeline<'_>>,
) -> RequestReport {
    let credits = if o.cached {
        0.0
    } else {
        o.meta.as_ref().and_then(|m| m.credits).unwrap_or(0.0)
    } + o.charged_undelivered;
    let (previous_ids, next_ids, used_previous, used_next) = match (&o.meta, o.cached) {
        (Some(m), true) => (
            m.previous_request_ids.clone(),
            m.next_request_ids.clone(),
            m.used_previous_text,
            m.used_next_text,
        ),
        _ => (
            o.context.previous_request_ids.clone(),
            o.context.next_request_ids.clone(),
            o.context.previous_text.is_some(),
            o.context.next_text.is_some(),
        ),
    };
    let span = timeline.and_then(|t| t.seconds(r));
    RequestReport {
        request_id: o.meta.as_ref().and_then(|m| m.request_id.clone()),
        characters: plan.requests[r].text.chars().count(),
        attempts: o.attempts,
        statuses: o.statuses.clone(),
        latency_ms: o.latency_ms,
        credits,
        cached: o.cached,
        regenerated: o.regenerated,
        previous_request_ids: previous_ids,
        next_request_ids: next_ids,
        used_previous_text: used_previous,
        used_next_text: used_next,
        start_seconds: span.map(|s| round(s.0)),
        end_seconds: span.map(|s| round(s.1)),
        timestamps: o.alignment.is_some(),
        recovered: o.recovered_from.is_some(),
        history_item_id: o.recovered_from.clone(),
        recovery: o.recovery.clone(),
        trimmed_ms: timeline
            .filter(|_| job.trim_silence)
            .and_then(|t| t.trimmed_ms(r)),
    }
}

/// The report of segment `si` from its requests' reports.
pub(crate) fn segment_report(
    job: &Job,
    plan: &Plan,
    si: usize,
    requests: Vec<RequestReport>,
    error: Option<String>,
    timeline: Option<&Timeline<'_>>,
) -> SegmentReport {
    let segment = &job.segments[si];
    SegmentReport {
        id: segment.id.clone(),
        chapter: segment.chapter.clone(),
        voice_id: segment.voice_id.clone(),
        model_id: segment.model_id.clone(),
        characters: requests.iter().map(|r| r.characters).sum(),
        status: if error.is_none() {
            Status::Ok
        } else {
            Status::Failed
        },
        cached: requests.iter().all(|r| r.cached),
        regenerated: requests.iter().any(|r| r.regenerated),
        credits: requests.iter().map(|r| r.credits).sum(),
        attempts: requests.iter().map(|r| r.attempts).sum(),
        start_seconds: requests.first().and_then(|r| r.start_seconds),
        end_seconds: requests.last().and_then(|r| r.end_seconds),
        error: error.map(|e| format!("segment {}: {e}", segment.id)),
        shard: crate::manifest::shard::of_segment(job, si),
        // In the file of its first request; a file's segments are measured in order.
        loudness: timeline.and_then(|t| {
            let r = *plan.segment_requests[si].first()?;
            let (_, placement) = t.files.get(t.span(r)?.file)?;
            let measured = &placement.loudness.as_ref()?.segments;
            let k = measured.binary_search_by_key(&si, |(s, _)| *s).ok()?;
            Some(measured[k].1)
        }),
        file: timeline.filter(|t| t.split).and_then(|t| {
            plan.segment_requests[si]
                .first()
                .and_then(|&r| t.span(r))
                .map(|span| t.files[span.file].0.display().to_string())
        }),
        loudness_jump: false,
        requests,
    }
}

/// The chapter files of a split output, each with its own figures.
pub(crate) fn output_reports(timeline: Option<&Timeline<'_>>) -> Vec<OutputReport> {
    let Some(t) = timeline.filter(|t| t.split) else {
        return Vec::new();
    };
    t.files
        .iter()
        .map(|(path, p)| OutputReport {
            path: path.display().to_string(),
            published: Published::of(p),
            audio_seconds: round(p.seconds(p.total_samples)),
            loudness: p.loudness.as_ref().map(|m| m.whole),
            loudness_gain_db: p.loudness.as_ref().and_then(|m| m.gain_db),
            audiobook: None,
        })
        .collect()
}

impl Report {
    /// How many of its segments failed.
    pub fn failed_segments(&self) -> usize {
        if let Some(brief) = &self.brief {
            return brief.failed;
        }
        self.segments
            .iter()
            .filter(|s| s.status != Status::Ok)
            .count()
    }
}

/// Builds the report of one manifest.
pub(crate) fn build(
    job: &Job,
    plan: &Plan,
    outcomes: &[Outcome],
    timeline: Option<&Timeline<'_>>,
    started: SystemTime,
    finished: SystemTime,
    synthetic: bool,
) -> Report {
    let mut totals = Totals {
        segments: job.segments.len(),
        requests: plan.requests.len(),
        ..Totals::default()
    };
    let mut segments = Vec::with_capacity(job.segments.len());
    for si in 0..job.segments.len() {
        let mut requests = Vec::with_capacity(plan.segment_requests[si].len());
        let mut error = None;
        for &r in &plan.segment_requests[si] {
            let o = &outcomes[r];
            let report = request_report(job, plan, o, r, timeline);
            totals.attempts += o.attempts;
            totals.retries += o.attempts.saturating_sub(1);
            totals.cache_hits += usize::from(o.cached);
            totals.recovered += usize::from(o.recovered_from.is_some());
            totals.characters += report.characters;
            totals.credits += report.credits;
            if error.is_none() {
                error = o.error.clone();
            }
            requests.push(report);
        }
        segments.push(segment_report(job, plan, si, requests, error, timeline));
    }
    totals.audio_seconds = timeline.map_or(0.0, |t| {
        round(
            t.files
                .iter()
                .map(|(_, p)| p.seconds(p.total_samples))
                .sum(),
        )
    });
    flag_loudness_jumps(&mut segments);
    // A shard writes no file: its report is good when its segments are.
    let ok = segments.iter().all(|s| s.status == Status::Ok)
        && (timeline.is_some() || job.shard.is_some());
    Report {
        status: if ok { Status::Ok } else { Status::Failed },
        manifest: job.manifest.display().to_string(),
        output: job.output.display().to_string(),
        synthetic,
        interrupted: false,
        stopped_by: None,
        started_at: crate::output::time::rfc3339(started),
        finished_at: crate::output::time::rfc3339(finished),
        wall_seconds: round(
            finished
                .duration_since(started)
                .map_or(0.0, |d| d.as_secs_f64()),
        ),
        totals,
        assembly: timeline
            .and_then(|t| t.files.first())
            .map(|(_, p)| p.method),
        published: match timeline.filter(|t| !t.split).map(|t| t.files.as_slice()) {
            Some([(_, p)]) => Some(Published::of(p)),
            _ => None,
        },
        outputs: output_reports(timeline).into(),
        loudness: whole(timeline).map(|m| m.whole),
        loudness_gain_db: whole(timeline).and_then(|m| m.gain_db),
        audiobook: None,
        deliveries: Vec::new(),
        read_along: None,
        shard: job.shard.map(|s| s.to_string()),
        segments: segments.into(),
        brief: None,
    }
}

/// The measurement of the whole output, when there is one file.
pub(crate) fn whole<'a>(timeline: Option<&'a Timeline<'_>>) -> Option<&'a crate::audio::Measured> {
    match timeline?.files.as_slice() {
        [(_, p)] => p.loudness.as_ref(),
        _ => None,
    }
}

/// Flags segments whose integrated loudness strays from the mean of their nearest measured
/// neighbours by more than [`LOUDNESS_JUMP_LU`].
pub(crate) fn flag_loudness_jumps(segments: &mut [SegmentReport]) {
    let values: Vec<Option<f64>> = segments
        .iter()
        .map(|s| s.loudness.and_then(|l| l.integrated_lufs))
        .collect();
    for i in 0..segments.len() {
        let Some(own) = values[i] else { continue };
        let before = values[..i].iter().rev().flatten().next();
        let after = values[i + 1..].iter().flatten().next();
        let neighbours: Vec<f64> = before.into_iter().chain(after).copied().collect();
        if !neighbours.is_empty() {
            let mean = neighbours.iter().sum::<f64>() / neighbours.len() as f64;
            segments[i].loudness_jump = (own - mean).abs() > LOUDNESS_JUMP_LU;
        }
    }
}

pub(crate) fn round(x: f64) -> f64 {
    (x * 1_000_000.0).round() / 1_000_000.0
}

/// The report paths for an output: `out/demo.mp3` gives `out/demo.report.json` and `.csv`.
pub(crate) fn paths(output: &Path) -> (PathBuf, PathBuf) {
    let stem = output.file_stem().unwrap_or_default().to_string_lossy();
    let dir = output.parent().unwrap_or(Path::new(""));
    (
        dir.join(format!("{stem}.report.json")),
        dir.join(format!("{stem}.report.csv")),
    )
}

/// One audiobook requirement and whether the output meets it.
#[derive(Debug, Serialize)]
pub struct AudiobookCheck {
    pub check: &'static str,
    pub value: serde_json::Value,
    pub want: String,
    pub pass: bool,
}

/// The audiobook checks of an output: pass only if every check passes.
#[derive(Debug, Serialize)]
pub struct Audiobook {
    pub pass: bool,
    pub checks: Vec<AudiobookCheck>,
}

/// Marks every segment, and the report, failed for `why` (kept where a segment has its own
/// error): the job's files were not written.
pub(crate) fn fail_all(report: &mut Report, why: &str) {
    for s in &mut report.segments {
        s.status = Status::Failed;
        s.error.get_or_insert_with(|| why.to_string());
    }
    report.status = Status::Failed;
}

/// Writes both reports beside the output.
pub(crate) fn write(report: &Report, output: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    use anyhow::Context as _;
    let (json_path, csv_path) = paths(output);
    if let Some(dir) = json_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::files::write_atomic_with(&json_path, |w| {
        serde_json::to_writer_pretty(w, report).map_err(std::io::Error::other)
    })
    .with_context(|| format!("writing {}", json_path.display()))?;
    match report.segments.spooled_lines()? {
        Some(lines) => csv::write(&csv_path, lines.map(rows::parse_line)),
        None => csv::write(
            &csv_path,
            report.segments.iter().map(|s| Ok(csv::Row::of(s))),
        ),
    }
    .with_context(|| format!("writing {}", csv_path.display()))?;
    Ok((json_path, csv_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_paths_are_beside_the_output() {
        let (j, c) = paths(Path::new("out/demo.mp3"));
        assert_eq!(j, Path::new("out/demo.report.json"));
        assert_eq!(c, Path::new("out/demo.report.csv"));
    }
}
