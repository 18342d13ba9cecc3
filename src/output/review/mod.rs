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

/// One segment's text and waveform (peaks 0–255, at most a few hundred), and its sentences
/// with where each is heard in its file (when the API's character timings are stored for all
/// its requests), for the page to highlight the sentence being read.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SegmentData {
    pub id: String,
    pub text: String,
    pub peaks: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sentences: Vec<(f64, f64, String)>,
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

/// A writer of JSON that can sit inside a `<script>` element: nothing written through it can
/// end the element or start markup (`<`, `>`, `&`, U+2028 and U+2029 become `\uXXXX`).
struct ScriptSafe<W> {
    inner: W,
    /// The start of a U+2028 or U+2029 whose end is still to come.
    held: Vec<u8>,
}

impl<W: std::io::Write> std::io::Write for ScriptSafe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut bytes = std::mem::take(&mut self.held);
        bytes.extend_from_slice(buf);
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let escaped: Option<(&[u8], usize)> = match bytes[i] {
                b'<' => Some((b"\\u003c", 1)),
                b'>' => Some((b"\\u003e", 1)),
                b'&' => Some((b"\\u0026", 1)),
                0xE2 if bytes.len() - i < 3 && [0xE2, 0x80].starts_with(&bytes[i..]) => {
                    // Perhaps the start of U+2028/2029: wait for the rest.
                    self.held = bytes[i..].to_vec();
                    self.inner.write_all(&bytes[start..i])?;
                    return Ok(buf.len());
                }
                0xE2 if bytes[i..].starts_with(&[0xE2, 0x80, 0xA8]) => Some((b"\\u2028", 3)),
                0xE2 if bytes[i..].starts_with(&[0xE2, 0x80, 0xA9]) => Some((b"\\u2029", 3)),
                _ => None,
            };
            if let Some((with, len)) = escaped {
                self.inner.write_all(&bytes[start..i])?;
                self.inner.write_all(with)?;
                i += len;
                start = i;
            } else {
                i += 1;
            }
        }
        self.inner.write_all(&bytes[start..])?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let held = std::mem::take(&mut self.held);
        self.inner.write_all(&held)?;
        self.inner.flush()
    }
}

/// Writes the page for `report` (as written) and its review data to `w`.
pub(crate) fn render_to(
    report: &PageReport,
    data: &ReviewData,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    render_with(w, |safe| report.page_json(data, safe))
}

/// Writes the page, with the data `json` writes where it goes (made safe inside its script
/// element).
fn render_with(
    w: &mut dyn std::io::Write,
    json: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let (before, after) = PAGE.split_once("__DATA__").unwrap_or((PAGE, ""));
    w.write_all(before.as_bytes())?;
    let mut safe = ScriptSafe {
        inner: &mut *w,
        held: Vec::new(),
    };
    json(&mut safe)?;
    std::io::Write::flush(&mut safe)?;
    w.write_all(after.as_bytes())
}

/// Writes the review data and the page of a report at `report_path`.
pub(crate) fn write(
    report: &PageReport,
    report_path: &Path,
    data: &ReviewData,
) -> std::io::Result<PathBuf> {
    files::write_atomic_with(&data_path(report_path), |w| {
        serde_json::to_writer(w, data).map_err(std::io::Error::other)
    })?;
    let page = page_path(report_path);
    files::write_atomic_with(&page, |w| render_to(report, data, w))?;
    Ok(page)
}

/// Writes the review data and the page of a report whose rows are spooled (a render done a
/// window at a time), from its spools and `data` (each segment's text and waveform, a line a
/// segment in the report's order): the same files [`write`] makes, a row in memory at a time.
pub(crate) fn write_streamed(
    report: &crate::output::report::Report,
    report_path: &Path,
    title: &Option<String>,
    data: &crate::output::report::Spool,
) -> std::io::Result<PathBuf> {
    use crate::output::report::{SeqFrom, raw};
    #[derive(Serialize)]
    struct Data<'a, S> {
        title: &'a Option<String>,
        segments: S,
    }
    files::write_atomic_with(&data_path(report_path), |w| {
        let segments = SeqFrom::new(data.lines()?.map(raw));
        serde_json::to_writer(w, &Data { title, segments }).map_err(std::io::Error::other)
    })?;
    let head = PageReport::head(report).map_err(std::io::Error::other)?;
    let page = page_path(report_path);
    files::write_atomic_with(&page, |w| {
        render_with(w, |safe| {
            head.page_json_streamed(report, (title, data), safe)
        })
    })?;
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
    files::write_atomic_with(&page, |w| render_to(&report, &data, w)).map_err(|source| {
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

    fn render(report: &PageReport, data: &ReviewData) -> String {
        let mut page = Vec::new();
        render_to(report, data, &mut page).unwrap();
        String::from_utf8(page).unwrap()
    }

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
                sentences: Vec::new(),
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
    fn script_safe_escapes_across_writes_cut_anywhere() {
        use std::io::Write as _;
        let text = "a\u{2028}b<c>&d\u{2029}\u{e9}\u{2026}";
        let want = "a\\u2028b\\u003cc\\u003e\\u0026d\\u2029\u{e9}\u{2026}";
        for chunk in 1..=4 {
            let mut out = ScriptSafe {
                inner: Vec::new(),
                held: Vec::new(),
            };
            for piece in text.as_bytes().chunks(chunk) {
                out.write_all(piece).unwrap();
            }
            out.flush().unwrap();
            assert_eq!(
                String::from_utf8(out.inner).unwrap(),
                want,
                "chunks of {chunk}"
            );
        }
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
