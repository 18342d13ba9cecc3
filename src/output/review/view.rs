//! The page's view of a report: only the fields the page shows, read into small typed records
//! (a report of 100,000 segments as a `serde_json::Value` tree took several times the memory
//! of its text), and the page's data built from them segment by segment.
//!
//! Not responsible for the page itself (see `review`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ReviewData, SegmentData, name};

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

#[derive(Debug, Deserialize)]
struct PageSegment {
    #[serde(default)]
    id: String,
    #[serde(default)]
    chapter: Value,
    #[serde(default)]
    start_seconds: Value,
    #[serde(default)]
    end_seconds: Value,
    #[serde(default)]
    status: Value,
    #[serde(default)]
    attempts: Value,
    #[serde(default)]
    cached: Value,
    #[serde(default)]
    regenerated: Value,
    #[serde(default)]
    loudness_jump: Value,
    #[serde(default)]
    loudness: Option<PageLoudness>,
    #[serde(default)]
    error: Value,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    requests: Vec<PageRequest>,
}

#[derive(Debug, Deserialize)]
struct PageLoudness {
    #[serde(default)]
    integrated_lufs: Value,
}

#[derive(Debug, Deserialize)]
struct PageRequest {
    #[serde(default)]
    attempts: Value,
    #[serde(default)]
    recovered: Value,
    #[serde(default)]
    used_previous_text: Value,
}

/// What the page's script reads.
#[derive(Serialize)]
struct PageData<'a> {
    title: &'a Option<String>,
    manifest: &'a Value,
    output: &'a Value,
    status: &'a Value,
    synthetic: &'a Value,
    audiobook: &'a Value,
    outputs: &'a [PageOutput],
    files: Vec<String>,
    segments: Vec<SegmentView<'a>>,
}

/// One segment on the page: the report's facts with its text and waveform.
#[derive(Serialize)]
struct SegmentView<'a> {
    id: &'a str,
    chapter: &'a Value,
    text: &'a str,
    peaks: &'a [u8],
    start: &'a Value,
    end: &'a Value,
    status: &'a Value,
    attempts: &'a Value,
    retries: u64,
    cached: &'a Value,
    regenerated: &'a Value,
    recovered: bool,
    fallback: bool,
    loudness_jump: &'a Value,
    lufs: &'a Value,
    error: &'a Value,
    file: String,
}

impl PageReport {
    /// The page's data, as JSON: the report's facts per segment, with texts and waveforms.
    pub(crate) fn page_json(&self, data: &ReviewData) -> serde_json::Result<String> {
        let split = !self.outputs.is_empty();
        let output = name(self.output.as_str().unwrap_or(""));
        let files = if split {
            self.outputs.iter().map(|o| name(&o.path)).collect()
        } else {
            vec![output.clone()]
        };
        let extra: std::collections::HashMap<&str, &SegmentData> =
            data.segments.iter().map(|s| (s.id.as_str(), s)).collect();
        let null = &Value::Null;
        let segments = self
            .segments
            .iter()
            .map(|s| {
                let e = extra.get(s.id.as_str());
                let any = |f: fn(&PageRequest) -> &Value| {
                    s.requests.iter().any(|r| f(r) == &Value::Bool(true))
                };
                SegmentView {
                    id: &s.id,
                    chapter: &s.chapter,
                    text: e.map_or("", |e| e.text.as_str()),
                    peaks: e.map_or(&[], |e| e.peaks.as_slice()),
                    start: &s.start_seconds,
                    end: &s.end_seconds,
                    status: &s.status,
                    attempts: &s.attempts,
                    retries: s
                        .requests
                        .iter()
                        .map(|r| r.attempts.as_u64().unwrap_or(0).saturating_sub(1))
                        .sum(),
                    cached: &s.cached,
                    regenerated: &s.regenerated,
                    recovered: any(|r| &r.recovered),
                    fallback: any(|r| &r.used_previous_text),
                    loudness_jump: &s.loudness_jump,
                    lufs: s.loudness.as_ref().map_or(null, |l| &l.integrated_lufs),
                    error: &s.error,
                    file: match (&s.file, split) {
                        (Some(f), true) => name(f),
                        (None, true) => String::new(),
                        (_, false) => output.clone(),
                    },
                }
            })
            .collect();
        serde_json::to_string(&PageData {
            title: &data.title,
            manifest: &self.manifest,
            output: &self.output,
            status: &self.status,
            synthetic: &self.synthetic,
            audiobook: &self.audiobook,
            outputs: &self.outputs,
            files,
            segments,
        })
    }
}
