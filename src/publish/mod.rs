//! Publishing: a job's rendered requests into its files. Which files (see `output::names`),
//! which pieces each is made of (`layout`), whether a file already there can be kept or must be
//! built again (`published`), and the files built on up to `--jobs` threads at once (`pool`),
//! each by `audio`. Then the side files and the review page (`finish`).
//!
//! Not responsible for fetching the audio (see `execute`), for joining samples or frames (see
//! `audio`) or for the reports' contents (see `output`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::audio::{self, AudioError, Placement, RequestSpan};
use crate::execute::Outcome;
use crate::manifest::Job;
pub use crate::output::names::Split;
use crate::output::names::{OutputFile, output_files};
use crate::plan::Plan;

pub(crate) mod finish;
pub(crate) mod layout;
pub(crate) mod pool;
pub(crate) mod published;

/// How a render publishes its files: the flags that shape assembly and nothing else, built
/// once from the command line into the render's configuration (public for the benchmarks).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Measure loudness (`--loudness`, implied by `--audiobook`).
    pub loudness: bool,
    /// Normalize to this integrated loudness (`--loudness-target`).
    pub loudness_target: Option<f64>,
    /// Check the audiobook rules on the report (`--audiobook`).
    pub audiobook: bool,
    /// One file, or one per chapter or per segment (`--split`).
    pub split: Split,
    /// Encode `.mp3` once instead of copying frames (`--gapless`).
    pub gapless: bool,
    /// Files assembled at once (`--jobs`).
    pub jobs: usize,
    /// Write the read-along EPUB beside the chapter files (`--read-along`).
    pub read_along: bool,
    /// The stores to deliver to (`--profile`), each into a folder of its own.
    pub profiles: Vec<&'static crate::stores::Store>,
    /// Write each store's retail sample (`--sample`).
    pub sample: bool,
    /// The highest true peak the loudness target may reach (a store's; `None` is -1 dBTP).
    pub peak_ceiling_dbtp: Option<f64>,
}

/// One file published.
pub(crate) struct PublishedFile {
    pub(crate) path: PathBuf,
    pub(crate) placement: Placement,
}

/// What publishing a job gives: its files, where each request landed, and each request's
/// waveform (for the review page).
#[derive(Default)]
pub(crate) struct Assembled {
    pub(crate) files: Vec<PublishedFile>,
    /// Where each request landed; `None` for a request in no file written.
    pub(crate) spans: Vec<Option<RequestSpan>>,
    pub(crate) peaks: Vec<Vec<u8>>,
}

/// What one job's publishing reads.
pub(crate) struct Inputs<'a> {
    pub(crate) job: &'a Job,
    pub(crate) plan: &'a Plan,
    pub(crate) outcomes: &'a [Outcome],
    /// The folder of the published files' records (see `published`).
    pub(crate) records: &'a Path,
    /// Set by a signal: assembly stops at the next response.
    pub(crate) cancel: Arc<AtomicBool>,
}

/// Assembles every output file of a job (one, or one per chapter) from its rendered requests:
/// with `--split`, up to `--jobs` files at once, each decoding on one thread (memory
/// stays one response per file). A file already there, made from the same inputs and intact,
/// is kept. With `complete_only`, only the files whose requests were all rendered are made.
pub(crate) fn assemble(
    options: &Options,
    inputs: &Inputs<'_>,
    complete_only: bool,
) -> Result<Assembled, AudioError> {
    let mut files = output_files(inputs.job, options.split);
    if complete_only {
        // A run a limit stopped: the files whose every request was rendered.
        let plan = inputs.plan;
        files.retain(|f| {
            f.segments.clone().all(|si| {
                plan.segment_requests[si]
                    .iter()
                    .all(|&r| inputs.outcomes[r].audio.is_some())
            })
        });
    }
    let threads = options.jobs.clamp(1, files.len().max(1));
    let results = pool::run(files.len(), threads, |k| {
        publish_file(options, inputs, &files[k], threads > 1)
    });
    // The first failure in file order is the one reported.
    if let Some(e) = results.iter().position(|r| matches!(r, Some(Err(_)))) {
        if let Some(Some(Err(error))) = results.into_iter().nth(e) {
            return Err(error);
        }
        return Err(AudioError::Interrupted);
    }
    let requests = inputs.plan.requests.len();
    let mut out = Assembled {
        files: Vec::with_capacity(files.len()),
        spans: vec![None; requests],
        peaks: vec![Vec::new(); requests],
    };
    for (file, result) in files.into_iter().zip(results) {
        let Some(Ok((placement, index))) = result else {
            return Err(AudioError::Interrupted);
        };
        for (r, i) in index {
            out.spans[r] = Some(RequestSpan {
                file: out.files.len(),
                samples: placement.spans[i].clone(),
                edit: placement.edits[i],
            });
            out.peaks[r] = placement.peaks.get(i).cloned().unwrap_or_default();
        }
        out.files.push(PublishedFile {
            path: file.path,
            placement,
        });
    }
    Ok(out)
}

/// One file, kept or built: its placement and, for each of its requests, the request's index
/// and its piece's index.
pub(crate) fn publish_file(
    options: &Options,
    inputs: &Inputs<'_>,
    file: &OutputFile,
    parallel: bool,
) -> Result<(Placement, Vec<(usize, usize)>), AudioError> {
    let job = inputs.job;
    let layout = layout::pieces(job, inputs.plan, inputs.outcomes, file.segments.clone());
    let split = options.split != Split::None;
    let title = &job.book.title;
    let tags = audio::tags::TagSpec {
        // One chapter a file when split: the file is named after it, the book is its album.
        book: crate::book::Metadata {
            title: if split {
                file.chapter.clone().or_else(|| title.clone())
            } else {
                title.clone()
            },
            ..job.book.clone()
        },
        album: job
            .album
            .clone()
            .or_else(|| split.then(|| title.clone()).flatten()),
        chapters: if split { Vec::new() } else { layout.chapters },
    };
    let ids = published::piece_ids(&layout.pieces, &layout.requests, inputs.outcomes);
    let samples =
        published::samples_fingerprint(job.output_format, job.trim_silence, ids.as_deref());
    let audio_options = audio::Options {
        tags,
        measure: options.loudness,
        loudness_target: options.loudness_target,
        peak_ceiling_dbtp: options.peak_ceiling_dbtp,
        trim_silence: job.trim_silence,
        encode_mp3: options.gapless,
        rf64_above_bytes: None,
        cancel: Some(inputs.cancel.clone()),
        // For the review page.
        waveform: true,
        decode_threads: parallel.then_some(1),
        known_loudness: samples
            .as_deref()
            .and_then(|s| published::remembered_loudness(inputs.records, s)),
    };
    let path = &file.path;
    let fingerprint =
        published::fingerprint(path, job.output_format, &audio_options, ids.as_deref());
    if let Some(p) = fingerprint
        .as_deref()
        .and_then(|f| published::reusable(inputs.records, path, f))
    {
        tracing::info!(output = %path.display(), "unchanged since it was published; kept");
        return Ok((p, layout.requests));
    }
    tracing::info!(output = %path.display(), "assembling");
    let p = audio::assemble(&layout.pieces, job.output_format, path, &audio_options)?;
    if let Some(f) = &fingerprint {
        published::remember(inputs.records, path, f, &p);
    }
    // Measured this time (not known already): remembered for the next.
    if let Some(s) = samples.filter(|_| audio_options.known_loudness.is_none()) {
        published::remember_loudness(inputs.records, &s, &p);
    }
    Ok((p, layout.requests))
}
