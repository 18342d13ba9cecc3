//! `--chapters LIST`: which chapters of a job a render is about, by number (`2`, `5-7`) or title,
//! and the job restricted to them.
//!
//! A chapter is a run of consecutive segments with the same `chapter` (as `--split chapters`
//! counts them, so chapter 5 is the file numbered 05). Not responsible for rendering.

use std::path::PathBuf;

use super::Job;
use crate::error::UsageError;

/// A job restricted to some of its chapters: their numbers (1-based, in order), how many the
/// whole job has, and the output the whole job writes (chapter files keep its names).
#[derive(Clone, Debug)]
pub struct Subset {
    pub numbers: Vec<usize>,
    pub total: usize,
    pub whole_output: PathBuf,
}

/// The chapters of a job in order: the name of each run, and its segments.
pub fn runs(job: &Job) -> Vec<(Option<String>, std::ops::Range<usize>)> {
    let mut runs: Vec<(Option<String>, std::ops::Range<usize>)> = Vec::new();
    for (si, segment) in job.segments.iter().enumerate() {
        match runs.last_mut() {
            Some((chapter, range)) if *chapter == segment.chapter => range.end = si + 1,
            _ => runs.push((segment.chapter.clone(), si..si + 1)),
        }
    }
    runs
}

/// The chapter numbers a `--chapters` list names: numbers, ranges `a-b`, titles (exact, case
/// aside), separated by commas. Each must exist.
pub fn select(job: &Job, list: &str) -> Result<Vec<usize>, UsageError> {
    let runs = runs(job);
    let names = || {
        runs.iter()
            .enumerate()
            .map(|(k, (c, _))| format!("{} {}", k + 1, c.as_deref().unwrap_or("(no chapter)")))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let fail = |item: &str, why: &str| {
        UsageError(format!(
            "--chapters {item:?}: {why}; {} has {} chapters: {}",
            job.manifest.display(),
            runs.len(),
            names()
        ))
    };
    let mut chosen = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let number = |s: &str| s.trim().parse::<usize>().ok();
        let range = match item.split_once('-').map(|(a, b)| (number(a), number(b))) {
            Some((Some(a), Some(b))) => Some((a, b)),
            _ => number(item).map(|n| (n, n)),
        };
        match range {
            Some((a, b)) if a >= 1 && a <= b && b <= runs.len() => chosen.extend(a..=b),
            Some(_) => return Err(fail(item, "no such chapter")),
            None => {
                let k = runs
                    .iter()
                    .position(|(c, _)| c.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(item)))
                    .ok_or_else(|| fail(item, "no chapter has this number or title"))?;
                chosen.push(k + 1);
            }
        }
    }
    if chosen.is_empty() {
        return Err(fail(list, "names no chapter"));
    }
    chosen.sort_unstable();
    chosen.dedup();
    Ok(chosen)
}

/// The segment ids of the chapters `numbers`.
pub fn segment_ids(job: &Job, numbers: &[usize]) -> Vec<String> {
    runs(job)
        .into_iter()
        .enumerate()
        .filter(|(k, _)| numbers.contains(&(k + 1)))
        .flat_map(|(_, (_, range))| job.segments[range].iter().map(|s| s.id.clone()))
        .collect()
}

/// The job restricted to the chapters `numbers`. Its reports and whole-output side files go to
/// `<stem>.chapters-<numbers>` (unless `output` was given with `-o`), so the whole book's are
/// kept; with `--split chapters` the chapter files keep their names and numbers.
pub fn restrict(job: &mut Job, numbers: &[usize], output_given: bool) {
    let runs = runs(job);
    let keep: Vec<usize> = runs
        .iter()
        .enumerate()
        .filter(|(k, _)| numbers.contains(&(k + 1)))
        .flat_map(|(_, (_, range))| range.clone())
        .collect();
    let mut k = 0;
    job.segments.retain(|_| {
        k += 1;
        keep.contains(&(k - 1))
    });
    let whole_output = job.output.clone();
    if !output_given {
        let stem = job.output.file_stem().unwrap_or_default().to_string_lossy();
        let ext = job.output.extension().unwrap_or_default().to_string_lossy();
        let label: Vec<String> = numbers.iter().map(usize::to_string).collect();
        let name = format!("{stem}.chapters-{}.{ext}", label.join("-"));
        job.output = job.output.with_file_name(name);
    }
    job.subset = Some(Subset {
        numbers: numbers.to_vec(),
        total: runs.len(),
        whole_output,
    });
}
