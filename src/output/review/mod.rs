//! The review page: `<stem>.review.html` beside the report, one self-contained file (inline CSS
//! and JavaScript, no network) to listen to a render, see each segment's text, facts and
//! waveform, and mark segments for another take (it shows the `--only` command and saves a file
//! for `--only-file`). The audio is referenced by relative path, so the folder can be zipped
//! and sent.
//!
//! The page is made from the report and `<stem>.review.json` (each segment's text and
//! waveform), so `narrate review REPORT.json` can make it again. Everything from the manifest
//! is data, embedded as JSON that cannot close its script element, and shown with `textContent`:
//! nothing in a text runs. Not responsible for the audio (see `audio`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files;

mod view;

pub(crate) use view::PageReport;

/// The page, with `__DATA__` where the review data goes.
const PAGE: &str = include_str!("page.html");

/// The most waveform points a segment gets on the page.
const MAX_PEAKS: usize = 240;

/// What the review page needs beyond the report: each segment's text and waveform.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ReviewData {
    pub title: Option<String>,
    pub segments: Vec<SegmentData>,
}

/// One segment's text and waveform (peaks 0–255, at most a few hundred).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SegmentData {
    pub id: String,
    pub text: String,
    pub peaks: Vec<u8>,
}

/// The stem of a report path: `out/book.report.json` gives `out/book`.
fn stem(report: &Path) -> PathBuf {
    let name = report
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".report.json")
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or(&name)
        .to_string();
    files::parent_dir(report).join(stem)
}

/// `<stem>.review.json` beside a report.
pub(crate) fn data_path(report: &Path) -> PathBuf {
    let s = stem(report);
    s.with_file_name(format!(
        "{}.review.json",
        s.file_name().unwrap_or_default().to_string_lossy()
    ))
}

/// `<stem>.review.html` beside a report.
pub(crate) fn page_path(report: &Path) -> PathBuf {
    let s = stem(report);
    s.with_file_name(format!(
        "{}.review.html",
        s.file_name().unwrap_or_default().to_string_lossy()
    ))
}

/// Shrinks a waveform to at most `MAX_PEAKS` points, keeping each stretch's peak.
pub(crate) fn downsample(peaks: &[u8]) -> Vec<u8> {
    if peaks.len() <= MAX_PEAKS {
        return peaks.to_vec();
    }
    let chunk = peaks.len().div_ceil(MAX_PEAKS);
    peaks
        .chunks(chunk)
        .map(|c| c.iter().copied().max().unwrap_or(0))
        .collect()
}

/// The file name an audio file is referenced by from the page (the page sits beside it).
pub(super) fn name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// JSON that can sit inside a `<script>` element: nothing in it can end the element or start
/// markup.
fn script_safe(json: &str, out: &mut String) {
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

/// The page for `report` (as written) and its review data.
pub(crate) fn render(report: &PageReport, data: &ReviewData) -> String {
    let json = report.page_json(data).unwrap_or_else(|_| "{}".into());
    let (before, after) = PAGE.split_once("__DATA__").unwrap_or((PAGE, ""));
    let mut page = String::with_capacity(PAGE.len() + json.len() + json.len() / 8);
    page.push_str(before);
    script_safe(&json, &mut page);
    page.push_str(after);
    page
}

/// Writes the review data and the page of a report at `report_path`.
pub(crate) fn write(
    report: &PageReport,
    report_path: &Path,
    data: &ReviewData,
) -> std::io::Result<PathBuf> {
    let json = serde_json::to_vec(data).map_err(std::io::Error::other)?;
    files::write_atomic(&data_path(report_path), &json)?;
    let page = page_path(report_path);
    files::write_atomic(&page, render(report, data).as_bytes())?;
    Ok(page)
}

/// Why the review page could not be made again.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RewriteError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: files::ReadError,
    },
    #[error("{}: not a narrate report ({why})", path.display())]
    NotAReport { path: PathBuf, why: String },
    #[error("{}: unreadable review data ({source}); render the manifest again to make it", path.display())]
    NoData {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Makes the page of a report again from the report and its review data (`narrate review`).
pub(crate) fn rewrite(report_path: &Path) -> Result<PathBuf, RewriteError> {
    let read = |path: &Path| {
        files::read_text(path, files::MAX_INPUT_BYTES).map_err(|source| RewriteError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let not_a_report = |why: String| RewriteError::NotAReport {
        path: report_path.to_path_buf(),
        why,
    };
    let report: PageReport =
        serde_json::from_str(&read(report_path)?).map_err(|e| not_a_report(e.to_string()))?;
    let data_file = data_path(report_path);
    let data: ReviewData =
        serde_json::from_str(&read(&data_file)?).map_err(|source| RewriteError::NoData {
            path: data_file.clone(),
            source,
        })?;
    let page = page_path(report_path);
    files::write_atomic(&page, render(&report, &data).as_bytes()).map_err(|source| {
        RewriteError::Write {
            path: page.clone(),
            source,
        }
    })?;
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn manifest_text_cannot_end_the_script_element() {
        let report: PageReport = serde_json::from_value(
            json!({"output": "out/a.mp3", "manifest": "a.yaml", "segments": [
                {"id": "a", "chapter": "\"quoted\" </script><b>", "requests": []}
            ]}),
        )
        .unwrap();
        let data = ReviewData {
            title: Some("</script><script>alert(1)</script>".into()),
            segments: vec![SegmentData {
                id: "a".into(),
                text: "<script>alert(1)</script> & \u{2028}".into(),
                peaks: vec![1, 2],
            }],
        };
        let page = render(&report, &data);
        let start = page.find("<script id=\"review-data\"").unwrap();
        let end = start + page[start..].find("</script>").unwrap();
        let embedded = &page[start..end];
        assert!(!embedded[1..].contains('<'), "{embedded}");
        assert!(embedded.contains("\\u003cscript\\u003ealert(1)"));
        // The data still parses back to the same text.
        let json = &embedded[embedded.find('>').unwrap() + 1..];
        let value: Value = serde_json::from_str(json).unwrap();
        assert_eq!(
            value["segments"][0]["text"],
            "<script>alert(1)</script> & \u{2028}"
        );
    }

    #[test]
    fn paths_sit_beside_the_report_and_waveforms_are_small() {
        let r = Path::new("out/book.report.json");
        assert_eq!(page_path(r), Path::new("out/book.review.html"));
        assert_eq!(data_path(r), Path::new("out/book.review.json"));
        let long: Vec<u8> = (0..1000).map(|i| (i % 256) as u8).collect();
        let small = downsample(&long);
        assert!(small.len() <= MAX_PEAKS);
        assert_eq!(small.iter().max(), long.iter().max());
    }
}
