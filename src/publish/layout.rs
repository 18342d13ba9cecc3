//! The pieces of one output file (lead-in, responses, pauses, tail) in order, with where each
//! request and chapter starts among them.
//!
//! Not responsible for which files a job writes (see `output::names`) or for joining the
//! pieces (see `audio`).

use crate::audio::Piece;
use crate::execute::Outcome;
use crate::manifest::Job;
use crate::plan::Plan;

/// What one output file is made of.
pub(crate) struct FileLayout<'a> {
    pub(crate) pieces: Vec<Piece<'a>>,
    /// For each request in the file, in order: the request's index and its piece's index.
    pub(crate) requests: Vec<(usize, usize)>,
    /// Each chapter that starts in the file, with the index of its first piece.
    pub(crate) chapters: Vec<(String, usize)>,
}

/// The pieces of one output file made of the segments `range`, in order: lead-in, each segment
/// and its pause (the chapter pause after a chapter's last segment), the tail instead of the
/// last pause.
pub(crate) fn pieces<'a>(
    job: &Job,
    plan: &Plan,
    outcomes: &'a [Outcome],
    range: std::ops::Range<usize>,
) -> FileLayout<'a> {
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
    FileLayout {
        pieces,
        requests: index,
        chapters,
    }
}
