//! The CSV report (`<stem>.report.csv`): a row a segment, from the report's segments in memory
//! or read back from their spool a line at a time.
//!
//! Not responsible for the JSON report (see `report`).

use std::path::Path;

use serde::Deserialize;

use super::SegmentReport;

/// What the CSV says of a segment.
#[derive(Debug, Deserialize)]
pub(super) struct Row {
    id: String,
    chapter: Option<String>,
    status: String,
    characters: usize,
    credits: f64,
    attempts: u32,
    cached: bool,
    start_seconds: Option<f64>,
    end_seconds: Option<f64>,
    error: Option<String>,
    requests: Vec<RowRequest>,
}

#[derive(Debug, Deserialize)]
struct RowRequest {
    request_id: Option<String>,
}

impl Row {
    pub(super) fn of(s: &SegmentReport) -> Row {
        Row {
            id: s.id.clone(),
            chapter: s.chapter.clone(),
            status: s.status.as_str().to_string(),
            characters: s.characters,
            credits: s.credits,
            attempts: s.attempts,
            cached: s.cached,
            start_seconds: s.start_seconds,
            end_seconds: s.end_seconds,
            error: s.error.clone(),
            requests: s
                .requests
                .iter()
                .map(|r| RowRequest {
                    request_id: r.request_id.clone(),
                })
                .collect(),
        }
    }
}

const HEADER: [&str; 13] = [
    "id",
    "chapter",
    "status",
    "characters",
    "credits",
    "requests",
    "attempts",
    "cached",
    "start_seconds",
    "end_seconds",
    "duration_seconds",
    "request_ids",
    "error",
];

/// Writes the CSV report at `path` atomically, a row at a time.
pub(super) fn write(
    path: &Path,
    rows: impl Iterator<Item = std::io::Result<Row>>,
) -> std::io::Result<()> {
    crate::files::write_atomic_with(path, |w| {
        let mut out = ::csv::Writer::from_writer(w);
        out.write_record(HEADER)?;
        let num = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_default();
        for row in rows {
            let s = row?;
            let duration = s.start_seconds.zip(s.end_seconds).map(|(a, b)| b - a);
            let ids: Vec<&str> = s
                .requests
                .iter()
                .filter_map(|r| r.request_id.as_deref())
                .collect();
            out.write_record([
                s.id.as_str(),
                s.chapter.as_deref().unwrap_or(""),
                s.status.as_str(),
                &s.characters.to_string(),
                &format!("{}", s.credits),
                &s.requests.len().to_string(),
                &s.attempts.to_string(),
                if s.cached { "true" } else { "false" },
                &num(s.start_seconds),
                &num(s.end_seconds),
                &num(duration),
                &ids.join(" "),
                s.error.as_deref().unwrap_or(""),
            ])?;
        }
        out.flush()
    })
}
