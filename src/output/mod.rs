//! What a render leaves on disk besides the audio: the reports, the audiobook checks and the side
//! files, and the list of every file a job writes, checked against its inputs before anything
//! is sent.
//!
//! Not responsible for the audio (see `audio` and `publish`).

use std::path::PathBuf;

use crate::error::UsageError;
use crate::files;
use crate::manifest::Job;
use names::Split;

pub(crate) mod audiobook;
pub(crate) mod feed;
pub(crate) mod library;
pub(crate) mod names;
pub(crate) mod readalong;
pub(crate) mod report;
pub(crate) mod review;
pub(crate) mod sidefiles;
pub(crate) mod time;

/// Every file a job writes: its audio (one file, or one per chapter or segment), both reports
/// and the side files beside them (captions beside each chapter file too).
pub(crate) fn written_files(job: &Job, split: Split, read_along: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for names::OutputFile { path, .. } in names::output_files(job, split) {
        if split == Split::Chapters {
            let [_, _, srt, vtt, transcript] = sidefiles::paths(&path);
            out.extend([srt, vtt, transcript]);
        }
        out.push(path);
    }
    let (json, csv) = report::paths(&job.output);
    out.extend([review::page_path(&json), review::data_path(&json)]);
    out.extend([json, csv]);
    out.extend(sidefiles::paths(&job.output));
    out.push(job.output.with_extension("m3u8"));
    if read_along {
        out.push(readalong::path(&job.output));
    }
    if let Some(folder) = &job.library_folder {
        // A cover already in the book's folder is left where it is, not written over itself.
        let cover = job.book.cover.as_deref().map(files::identity);
        out.extend(
            library::metadata_files(job, folder)
                .into_iter()
                .filter(|p| Some(files::identity(p)) != cover),
        );
    }
    out
}

/// Refuses, before anything is sent, an output (or a file written beside it) that is one of the
/// inputs (a manifest, a `text_file`, a CSV, the key file) or another output of this
/// invocation, an output that cannot be written (a directory, a read-only place), and with
/// `--split segments` an id that cannot name its file. `run_files` are the files of the whole
/// run (`--summary-json`, `--metrics-textfile`), each with its flag: never an input (the key
/// file included), and writable.
pub(crate) fn check_outputs(
    jobs: &[Job],
    (split, read_along): (Split, bool),
    key_file: Option<&std::path::Path>,
    run_files: &[(&str, &std::path::Path)],
) -> anyhow::Result<()> {
    use std::collections::{HashMap, HashSet};
    let mut inputs: HashMap<files::Identity, PathBuf> = HashMap::new();
    for path in jobs
        .iter()
        .flat_map(|j| &j.inputs)
        .map(PathBuf::as_path)
        .chain(key_file)
    {
        inputs
            .entry(files::identity(path))
            .or_insert_with(|| path.to_path_buf());
    }
    let mut outputs: HashMap<files::Identity, (PathBuf, &std::path::Path)> = HashMap::new();
    for job in jobs {
        if split == Split::Segments {
            names::check_segment_names(job)?;
        }
        if read_along {
            readalong::check(job)?;
        }
        let written = written_files(job, split, read_along);
        for path in &written {
            let id = files::identity(path);
            if let Some(input) = inputs.get(&id) {
                return Err(UsageError(format!(
                    "{}: the output {} is the input {}; narrate never writes over its inputs (choose another output)",
                    job.manifest.display(),
                    path.display(),
                    input.display()
                ))
                .into());
            }
            if let Some((other, manifest)) = outputs.get(&id)
                && *manifest != job.manifest.as_path()
            {
                return Err(UsageError(format!(
                    "{}: the output {} is also written by {} (as {}); give each manifest its own output",
                    job.manifest.display(),
                    path.display(),
                    manifest.display(),
                    other.display()
                ))
                .into());
            }
            outputs.insert(id, (path.clone(), job.manifest.as_path()));
        }
        // Every file written (audio, reports, captions, CUE, playlist, review page, library
        // files): one that cannot be written is found before anything is paid for. Each
        // folder is tried once.
        let mut checked = HashSet::new();
        for path in &written {
            files::check_writable_among(path, &mut checked).map_err(|why| {
                UsageError(format!(
                    "{}: {} cannot be written: {why}",
                    job.manifest.display(),
                    path.display()
                ))
            })?;
        }
    }
    for &(flag, path) in run_files {
        if inputs.contains_key(&files::identity(path)) {
            return Err(UsageError(format!(
                "{flag} {}: that is an input of this run; narrate never writes over its inputs",
                path.display()
            ))
            .into());
        }
        files::check_writable(path)
            .map_err(|why| UsageError(format!("{flag} {}: {why}", path.display())))?;
    }
    Ok(())
}
