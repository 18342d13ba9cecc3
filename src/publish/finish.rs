//! What a published job leaves beside its audio: the side files (chapters, CUE, captions,
//! playlist) and the review page, written from the report and the assembled placement.
//!
//! Not responsible for the reports themselves (see `output::report`) or the formats of the
//! side files (see `output::sidefiles`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::execute::Outcome;
use crate::manifest::Job;
use crate::output::report::{Report, Status};
use crate::output::{review, sidefiles};
use crate::plan::Plan;

/// The side files of a successful render, with a warning when `timestamps` was asked for and
/// cached audio has no character timings for word-timed captions.
pub(crate) fn write_side_files(
    timestamps: bool,
    split: crate::output::names::Split,
    job: &Job,
    plan: &Plan,
    outcomes: &[Outcome],
    rep: &Report,
) -> anyhow::Result<()> {
    let alignments: Vec<Option<PathBuf>> = outcomes.iter().map(|o| o.alignment.clone()).collect();
    if timestamps {
        let missing = outcomes
            .iter()
            .filter(|o| o.audio.is_some() && o.alignment.is_none())
            .count();
        if missing > 0 {
            tracing::warn!(
                "{}: {missing} request(s) came from the cache without character timings; their captions (and read-along clips) are one a request (--retime renders them again with timings; `plan --retime` shows the cost)",
                job.manifest.display()
            );
        }
    }
    if rep.status == Status::Ok {
        sidefiles::write(job, plan, rep, &alignments, split)
            .with_context(|| format!("writing the side files of {}", job.output.display()))?;
    }
    Ok(())
}

/// The read-along book of a successful render (`--read-along`), named in the report.
pub(crate) fn write_read_along(
    on: bool,
    job: &Job,
    plan: &Plan,
    outcomes: &[Outcome],
    rep: &mut Report,
) -> anyhow::Result<()> {
    if !on || rep.status != Status::Ok {
        return Ok(());
    }
    let alignments: Vec<Option<PathBuf>> = outcomes.iter().map(|o| o.alignment.clone()).collect();
    let book = crate::output::readalong::write(job, plan, rep, &alignments)
        .with_context(|| format!("writing the read-along book of {}", job.output.display()))?;
    rep.read_along = Some(book);
    Ok(())
}

/// The review page of a successful render, with each segment's text and waveform beside it,
/// and its sentences' times where the API's character timings are stored (`outcomes` have
/// them; `rep` places them).
pub(crate) fn write_review(
    (job, plan, outcomes): (&Job, &Plan, &[Outcome]),
    rep: &Report,
    report_path: &Path,
    peaks: &[Vec<u8>],
) -> anyhow::Result<()> {
    let segments = review_segments((job, plan, outcomes), rep, peaks);
    let data = review::ReviewData {
        title: job.book.title.clone(),
        segments,
    };
    // The page reads the report as written, through a small typed view of it.
    let file = std::fs::File::open(report_path)
        .with_context(|| format!("reading {}", report_path.display()))?;
    let view: review::PageReport = serde_json::from_reader(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", report_path.display()))?;
    review::write(&view, report_path, &data)
        .with_context(|| format!("writing the review page of {}", job.output.display()))?;
    Ok(())
}

/// Each segment's text and waveform for the review page, and its sentences' times where the
/// API's character timings are stored (`outcomes` have them; `rep` places them).
pub(crate) fn review_segments(
    (job, plan, outcomes): (&Job, &Plan, &[Outcome]),
    rep: &Report,
    peaks: &[Vec<u8>],
) -> Vec<review::SegmentData> {
    let mut sentences = if outcomes.iter().any(|o| o.alignment.is_some()) {
        let alignments: Vec<Option<PathBuf>> =
            outcomes.iter().map(|o| o.alignment.clone()).collect();
        crate::output::readalong::sentences(job, plan, rep, &alignments)
    } else {
        Vec::new()
    };
    sentences.resize_with(job.segments.len(), Vec::new);
    job.segments
        .iter()
        .zip(sentences)
        .enumerate()
        .map(|(si, (s, sentences))| {
            let all: Vec<u8> = plan.segment_requests[si]
                .iter()
                .flat_map(|&r| peaks.get(r).cloned().unwrap_or_default())
                .collect();
            review::SegmentData {
                id: s.id.clone(),
                text: s.text.clone(),
                peaks: review::downsample(&all),
                sentences,
            }
        })
        .collect()
}
