//! The page's view of a report: only the fields the page shows, read into small typed records
//! (a report of 100,000 segments as a `serde_json::Value` tree took several times the memory
//! of its text), and the page's data built from them segment by segment.
//!
//! Not responsible for the page itself (see `review`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ReviewData, SegmentData, name};
use crate::output::report::{Report, SeqFrom, Spool, parse_line};

/// A report as the page reads it; unknown fields are skipped, missing ones are empty.
#[derive(Debug, Deserialize)]
pub(crate) struct PageReport {
    #[serde(default)]
    manifest: Value,
    #[serde(default)]
    output: Value,
    #[serde(default)]
    status: Value,
    #[serde(default)]
    synthetic: Value,
    #[serde(default)]
    audiobook: Value,
    #[serde(default)]
    outputs: Vec<PageOutput>,
    segments: Vec<PageSegment>,
}

/// One file of a split output: its path and its audiobook checks.
#[derive(Debug, Deserialize, Serialize)]
struct PageOutput {
    #[serde(default)]
    path: String,
    #[serde(default)]
    audiobook: Value,
}

/// One segment as the page reads it: typed fields, so a report of 100,000 segments is read
/// in a few megabytes.
#[derive(Debug, Deserialize)]
struct PageSegment {
    #[serde(default)]
    id: String,
    #[serde(default)]
    chapter: Option<String>,
    #[serde(default)]
    start_seconds: Option<f64>,
    #[serde(default)]
    end_seconds: Option<f64>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    attempts: Option<u64>,
    #[serde(default)]
    cached: bool,
    #[serde(default)]
    regenerated: bool,
    #[serde(default)]
    loudness_jump: bool,
    #[serde(default)]
    loudness: Option<PageLoudness>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    requests: Vec<PageRequest>,
}

#[derive(Debug, Deserialize)]
struct PageLoudness {
    #[serde(default)]
    integrated_lufs: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct PageRequest {
    #[serde(default)]
    attempts: u64,
    #[serde(default)]
    recovered: bool,
    #[serde(default)]
    used_previous_text: bool,
}

/// What the page's script reads: the per-file and per-segment lists in memory, or streamed
/// from a spooled report.
#[derive(Serialize)]
struct PageData<'a, O, F, S> {
    title: &'a Option<String>,
    manifest: &'a Value,
    output: &'a Value,
    status: &'a Value,
    synthetic: &'a Value,
    audiobook: &'a Value,
    outputs: O,
    files: F,
    segments: S,
}

/// One segment on the page: the report's facts with its text and waveform.
#[derive(Serialize)]
struct SegmentView<'a> {
    id: &'a str,
    chapter: &'a Option<String>,
    text: &'a str,
    peaks: &'a [u8],
    sentences: &'a [(f64, f64, String)],
    start: Option<f64>,
    end: Option<f64>,
    status: &'a Option<String>,
    attempts: Option<u64>,
    retries: u64,
    cached: bool,
    regenerated: bool,
    recovered: bool,
    fallback: bool,
    loudness_jump: bool,
    lufs: Option<f64>,
    error: &'a Option<String>,
    file: String,
}

impl PageReport {
    /// Writes the page's data as JSON: the report's facts per segment, with texts and
    /// waveforms.
    pub(crate) fn page_json(
        &self,
        data: &ReviewData,
        w: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        let split = !self.outputs.is_empty();
        let output = name(self.output.as_str().unwrap_or(""));
        let files = if split {
            self.outputs.iter().map(|o| name(&o.path)).collect()
        } else {
            vec![output.clone()]
        };
        let extra: std::collections::HashMap<&str, &SegmentData> =
            data.segments.iter().map(|s| (s.id.as_str(), s)).collect();
        let segments: Vec<SegmentView> = self
            .segments
            .iter()
            .map(|s| view(s, extra.get(s.id.as_str()).copied(), split, &output))
            .collect();
        let page = PageData {
            title: &data.title,
            manifest: &self.manifest,
            output: &self.output,
            status: &self.status,
            synthetic: &self.synthetic,
            audiobook: &self.audiobook,
            outputs: &self.outputs,
            files,
            segments,
        };
        serde_json::to_writer(w, &page).map_err(std::io::Error::other)
    }
}

impl PageReport {
    /// The page's view of a report's head, its rows left to [`PageReport::page_json_streamed`].
    pub(crate) fn head(report: &Report) -> serde_json::Result<PageReport> {
        Ok(PageReport {
            manifest: serde_json::to_value(&report.manifest)?,
            output: serde_json::to_value(&report.output)?,
            status: serde_json::to_value(report.status)?,
            synthetic: serde_json::to_value(report.synthetic)?,
            audiobook: serde_json::to_value(&report.audiobook)?,
            outputs: Vec::new(),
            segments: Vec::new(),
        })
    }

    /// Writes the page's data like [`PageReport::page_json`], for a report whose rows are
    /// spooled (`report`, of which `self` is the head) with its review data (`data`, a segment
    /// a line in the same order): one row in memory at a time.
    pub(crate) fn page_json_streamed(
        &self,
        report: &Report,
        (title, data): (&Option<String>, &Spool),
        w: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        let split = !report.outputs.is_empty();
        let output = name(self.output.as_str().unwrap_or(""));
        let outputs = spooled(report.outputs.spooled_lines()?)?.map(parse_line::<PageOutput>);
        let files = spooled(report.outputs.spooled_lines()?)?
            .map(|l| parse_line::<PageOutput>(l).map(|o| name(&o.path)));
        let segments = spooled(report.segments.spooled_lines()?)?
            .zip(data.values::<SegmentData>()?)
            .map(|(s, e)| {
                Ok(Joined {
                    s: parse_line(s)?,
                    e: e?,
                    split,
                    output: output.clone(),
                })
            });
        let page = PageData {
            title,
            manifest: &self.manifest,
            output: &self.output,
            status: &self.status,
            synthetic: &self.synthetic,
            audiobook: &self.audiobook,
            outputs: SeqFrom::new(outputs),
            files: SeqFrom::new(files),
            segments: SeqFrom::new(segments),
        };
        serde_json::to_writer(w, &page).map_err(std::io::Error::other)
    }
}

/// A spool's lines, or the error of rows that are not spooled.
fn spooled<I>(lines: Option<I>) -> std::io::Result<I> {
    lines.ok_or_else(|| std::io::Error::other("the report's rows are not spooled"))
}

/// A segment of a spooled report with its review data, shown as [`view`] shows it.
struct Joined {
    s: PageSegment,
    e: SegmentData,
    split: bool,
    output: String,
}

impl Serialize for Joined {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        view(&self.s, Some(&self.e), self.split, &self.output).serialize(serializer)
    }
}

/// One segment as the page shows it: the report's facts with its text and waveform (`e`).
fn view<'a>(
    s: &'a PageSegment,
    e: Option<&'a SegmentData>,
    split: bool,
    output: &str,
) -> SegmentView<'a> {
    let any = |f: fn(&PageRequest) -> bool| s.requests.iter().any(f);
    SegmentView {
        id: &s.id,
        chapter: &s.chapter,
        text: e.map_or("", |e| e.text.as_str()),
        peaks: e.map_or(&[], |e| e.peaks.as_slice()),
        sentences: e.map_or(&[], |e| e.sentences.as_slice()),
        start: s.start_seconds,
        end: s.end_seconds,
        status: &s.status,
        attempts: s.attempts,
        retries: s
            .requests
            .iter()
            .map(|r| r.attempts.saturating_sub(1))
            .sum(),
        cached: s.cached,
        regenerated: s.regenerated,
        recovered: any(|r| r.recovered),
        fallback: any(|r| r.used_previous_text),
        loudness_jump: s.loudness_jump,
        lufs: s.loudness.as_ref().and_then(|l| l.integrated_lufs),
        error: &s.error,
        file: match (&s.file, split) {
            (Some(f), true) => name(f),
            (None, true) => String::new(),
            (_, false) => output.to_string(),
        },
    }
}
