//! The layout of a job's audio: which output files it writes (one, or one per chapter with
//! `--split chapters`, named after the chapter) and the pieces of each (lead-in, responses,
//! pauses, tail) in order.
//!
//! Not responsible for writing them (see the rest of `audio`).

use std::path::PathBuf;

use super::Piece;
use crate::execute::Outcome;
use crate::manifest::Job;
use crate::plan::Plan;

/// The pieces of one output file made of the segments `range`, in order: lead-in, each segment
/// and its pause (the chapter pause after a chapter's last segment), the tail instead of the
/// last pause. Also, for each request in the range, the index of its piece, and the chapters
/// with the index of the piece where each starts.
#[allow(clippy::type_complexity)]
pub(crate) fn pieces<'a>(
    job: &Job,
    plan: &Plan,
    outcomes: &'a [Outcome],
    range: std::ops::Range<usize>,
) -> (Vec<Piece<'a>>, Vec<(usize, usize)>, Vec<(String, usize)>) {
    let mut pieces = Vec::new();
    let mut index = Vec::new();
    let mut chapters: Vec<(String, usize)> = Vec::new();
    if job.lead_in_ms > 0 {
        pieces.push(Piece::Silence { ms: job.lead_in_ms });
    }
    for si in range.clone() {
        let segment = &job.segments[si];
        if let Some(chapter) = &segment.chapter
            && (si == range.start || job.segments[si - 1].chapter.as_ref() != Some(chapter))
        {
            chapters.push((chapter.clone(), pieces.len()));
        }
        for &r in &plan.segment_requests[si] {
            index.push((r, pieces.len()));
            let path = outcomes[r].audio.as_deref().expect("all requests rendered");
            pieces.push(Piece::Audio { path, segment: si });
        }
        let pause = if si + 1 == range.end {
            job.tail_ms
        } else if job.segments[si + 1].chapter != segment.chapter {
            segment.chapter_pause_ms
        } else {
            segment.pause_after_ms
        };
        if pause > 0 {
            pieces.push(Piece::Silence { ms: pause });
        }
    }
    (pieces, index, chapters)
}

/// The output files of a job: the whole job in its `output`, or with `--split chapters` one
/// file per chapter, `<stem>-NN-<chapter>.<ext>` beside it. Each is a run of segments.
pub(crate) fn output_files(
    job: &Job,
    split: bool,
) -> Vec<(PathBuf, std::ops::Range<usize>, Option<String>)> {
    if !split {
        return vec![(job.output.clone(), 0..job.segments.len(), None)];
    }
    let runs = crate::manifest::chapters::runs(job);
    // A subset of the chapters keeps the whole job's file names and numbers.
    let (whole, numbers, total) = match &job.subset {
        Some(sub) => (&sub.whole_output, Some(&sub.numbers), sub.total),
        None => (&job.output, None, runs.len()),
    };
    let stem = whole
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let ext = whole
        .extension()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let dir = whole
        .parent()
        .unwrap_or(std::path::Path::new(""))
        .to_path_buf();
    let width = total.to_string().len().max(2);
    runs.into_iter()
        .enumerate()
        .map(|(k, (chapter, range))| {
            let number = numbers.and_then(|n| n.get(k)).copied().unwrap_or(k + 1);
            let name = format!(
                "{stem}-{:0width$}-{}.{ext}",
                number,
                slug(chapter.as_deref().unwrap_or("part"))
            );
            (dir.join(name), range, chapter)
        })
        .collect()
}

/// A file-system-safe name from a chapter title: lowercase ASCII letters and digits, words
/// joined by '-', at most 60 characters.
pub(crate) fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out: String = out.trim_end_matches('-').chars().take(60).collect();
    out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "part".to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn chapter_file_names_are_safe() {
        assert_eq!(
            slug("Chapter I. Down the Rabbit-Hole!"),
            "chapter-i-down-the-rabbit-hole"
        );
        assert_eq!(slug("../../etc/passwd"), "etc-passwd");
        assert_eq!(slug("Ünïcödé"), "n-c-d");
        assert_eq!(slug("!!!"), "part");
        assert!(slug(&"word ".repeat(40)).len() <= 60);
    }
}
