//! Shards (`--shard I/N`): a run's chains divided among N processes that never talk to each
//! other. Each computes the same partition from the manifests alone: a chain (a chapter with
//! one voice and model, or a segment alone under `continuity: none`) is never split, so every
//! `previous_request_ids` comes from the process that rendered it; chains go heaviest first to
//! the shard with the fewest characters so far (the lowest index on a tie). With `--shard-by
//! manifest`, whole manifests are divided instead (a backlist).
//!
//! Not responsible for rendering a share (see `commands::render`) or assembling the whole
//! (`narrate assemble`).

use std::path::PathBuf;

use super::{Continuity, Job};
use crate::error::UsageError;

/// One process's share: shard `index` (from 1) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// What is divided among the shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ShardBy {
    /// Chains (a chapter with one voice and model): a book over several machines.
    #[default]
    Chain,
    /// Whole manifests: a backlist of books over several machines.
    Manifest,
}

/// The most shards of one run.
pub const MAX_SHARDS: usize = 10_000;

impl Shard {
    /// `I/N` (1 ≤ I ≤ N), or `auto/N`: the index from `JOB_COMPLETION_INDEX` (a Kubernetes
    /// Indexed Job's, counted from 0) plus one. `job_index` is that variable's value.
    pub fn parse(value: &str, job_index: Option<&str>) -> Result<Shard, UsageError> {
        let bad = |why: &str| UsageError(format!("--shard {value:?}: {why}"));
        let (index, count) = value
            .split_once('/')
            .ok_or_else(|| bad("expected I/N, such as 2/4, or auto/N"))?;
        let count: usize = count.trim().parse().map_err(|_| bad("N is not a number"))?;
        if count == 0 || count > MAX_SHARDS {
            return Err(bad(&format!("N must be from 1 to {MAX_SHARDS}")));
        }
        let index = if index.trim() == "auto" {
            let from_zero: usize = job_index
                .ok_or_else(|| {
                    bad("auto needs JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job)")
                })?
                .trim()
                .parse()
                .map_err(|_| bad("JOB_COMPLETION_INDEX is not a number"))?;
            from_zero + 1
        } else {
            index.trim().parse().map_err(|_| bad("I is not a number"))?
        };
        if index == 0 || index > count {
            return Err(bad(&format!(
                "the index must be from 1 to {count} (shards count from 1; JOB_COMPLETION_INDEX from 0)"
            )));
        }
        Ok(Shard { index, count })
    }

    /// `shard-I-of-N`, for file names.
    pub fn label(self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What goes to one shard: segments of one job, and their characters.
struct Unit {
    job: usize,
    segments: Vec<usize>,
    characters: usize,
}

/// The units of `jobs`, in manifest order: each chain of each job, or each job.
fn units(jobs: &[Job], by: ShardBy) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        let mut of_chain: std::collections::HashMap<(Option<&str>, &str, &str, usize), usize> =
            std::collections::HashMap::new();
        for (s, segment) in job.segments.iter().enumerate() {
            let alone = if job.continuity == Continuity::Independent {
                s
            } else {
                0
            };
            let wanted = match by {
                ShardBy::Manifest => (None, "", "", 0),
                ShardBy::Chain => (
                    segment.chapter.as_deref(),
                    segment.voice_id.as_str(),
                    segment.model_id.as_str(),
                    alone,
                ),
            };
            let u = *of_chain.entry(wanted).or_insert_with(|| {
                units.push(Unit {
                    job: j,
                    segments: Vec::new(),
                    characters: 0,
                });
                units.len() - 1
            });
            units[u].segments.push(s);
            units[u].characters += segment.text.chars().count();
        }
    }
    units
}

/// The shard (from 0) of every segment of every job, out of `count`.
pub fn owners(jobs: &[Job], count: usize, by: ShardBy) -> Vec<Vec<usize>> {
    let units = units(jobs, by);
    let mut order: Vec<usize> = (0..units.len()).collect();
    // Heaviest first; among equals, manifest order (the sort is stable).
    order.sort_by_key(|&u| std::cmp::Reverse(units[u].characters));
    let mut load = vec![0usize; count.max(1)];
    let mut owner: Vec<Vec<usize>> = jobs.iter().map(|j| vec![0; j.segments.len()]).collect();
    for u in order {
        let lightest = (0..load.len()).min_by_key(|&k| (load[k], k)).unwrap_or(0);
        load[lightest] += units[u].characters;
        for &s in &units[u].segments {
            owner[units[u].job][s] = lightest;
        }
    }
    owner
}

/// `jobs` cut to `shard`'s share: each job keeps its own segments, renamed
/// `OUTPUT-STEM.shard-I-of-N.EXT` (its report goes there; a shard writes no book); a job with
/// none is left out.
pub fn restrict(jobs: Vec<Job>, shard: Shard, by: ShardBy) -> Vec<Job> {
    let owner = owners(&jobs, shard.count, by);
    jobs.into_iter()
        .zip(owner)
        .filter_map(|(mut job, owner)| {
            let mut k = 0;
            job.segments.retain(|_| {
                k += 1;
                owner[k - 1] + 1 == shard.index
            });
            if job.segments.is_empty() {
                return None;
            }
            job.output = shard_output(&job.output, shard);
            job.shard = Some(shard);
            Some(job)
        })
        .collect()
}

/// The shard that rendered segment `si` of `job` (`I/N`), when the job knows it: a shard's
/// own, or the one `assemble --shards N` computed.
pub fn of_segment(job: &Job, si: usize) -> Option<String> {
    if let Some(shard) = job.shard {
        return Some(shard.to_string());
    }
    let (count, owners) = job.shard_owners.as_ref()?;
    Some(format!("{}/{count}", owners.get(si)? + 1))
}

/// Where a shard's report of `output` goes: `OUTPUT-STEM.shard-I-of-N.EXT`.
fn shard_output(output: &std::path::Path, shard: Shard) -> PathBuf {
    let stem = output.file_stem().unwrap_or_default().to_string_lossy();
    let name = match output.extension() {
        Some(ext) => format!("{stem}.{}.{}", shard.label(), ext.to_string_lossy()),
        None => format!("{stem}.{}", shard.label()),
    };
    output.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::{Shard, ShardBy, owners};

    /// A manifest of `chapters` chapters of `per` segments each (one voice), with `extra` YAML.
    fn job(
        dir: &std::path::Path,
        name: &str,
        chapters: usize,
        per: usize,
        extra: &str,
    ) -> crate::manifest::Job {
        let mut yaml = format!(
            "{extra}output: out/{name}.mp3\ndefaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb}}\nsegments:\n"
        );
        for c in 0..chapters {
            for k in 0..per {
                let text = "word ".repeat(10 + 7 * c + k);
                yaml.push_str(&format!(
                    "  - {{id: c{c}-{k}, chapter: C{c}, text: \"{text}\"}}\n"
                ));
            }
        }
        crate::manifest::from_yaml(&dir.join(format!("{name}.yaml")), &yaml)
    }

    #[test]
    fn a_chain_is_never_split_and_the_shares_are_balanced_by_characters() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = [
            job(dir.path(), "book", 9, 4, ""),
            job(dir.path(), "rows", 1, 12, "continuity: none\n"),
        ];
        let owner = owners(&jobs, 3, ShardBy::Chain);
        // A chapter (one voice, one model) is one chain: all in one shard.
        for chapter in owner[0].chunks(4) {
            assert!(chapter.iter().all(|&o| o == chapter[0]), "{:?}", owner[0]);
        }
        // Under continuity: none each row is its own chain: the rows are spread.
        let rows: std::collections::BTreeSet<_> = owner[1].iter().collect();
        assert_eq!(rows.len(), 3, "{:?}", owner[1]);
        // Every shard's load is within the largest chain of every other's.
        let mut load = [0usize; 3];
        let mut largest = 0;
        for (job, owner) in jobs.iter().zip(&owner) {
            for (segment, &o) in job.segments.iter().zip(owner) {
                load[o] += segment.text.chars().count();
            }
        }
        for chapter in jobs[0].segments.chunks(4) {
            largest = largest.max(
                chapter
                    .iter()
                    .map(|s| s.text.chars().count())
                    .sum::<usize>(),
            );
        }
        let (min, max) = (load.iter().min().unwrap(), load.iter().max().unwrap());
        assert!(max - min <= largest, "{load:?}, largest chain {largest}");
        // The same partition every time, and whole manifests with --shard-by manifest.
        assert_eq!(owners(&jobs, 3, ShardBy::Chain), owner);
        let by_manifest = owners(&jobs, 2, ShardBy::Manifest);
        for o in &by_manifest {
            assert!(o.iter().all(|&x| x == o[0]), "{by_manifest:?}");
        }
        assert_ne!(by_manifest[0][0], by_manifest[1][0]);
    }

    #[test]
    fn a_shard_is_one_of_n_counted_from_one_and_auto_reads_the_job_index_from_zero() {
        assert_eq!(
            Shard::parse("2/4", None).unwrap(),
            Shard { index: 2, count: 4 }
        );
        assert_eq!(
            Shard::parse("auto/4", Some("3")).unwrap(),
            Shard { index: 4, count: 4 }
        );
        for bad in ["0/4", "5/4", "1/0", "1", "a/4", "auto/4"] {
            let err = Shard::parse(bad, None).unwrap_err().0;
            assert!(err.contains(bad), "{bad}: {err}");
        }
        assert!(Shard::parse("auto/4", Some("4")).is_err());
        // The count itself: from 1 to MAX_SHARDS.
        for bad in ["1/0", "1/10001"] {
            let err = Shard::parse(bad, None).unwrap_err().0;
            assert!(err.contains("N must be from 1 to 10000"), "{bad}: {err}");
        }
        assert_eq!(
            Shard::parse("10000/10000", None).unwrap(),
            Shard {
                index: 10_000,
                count: 10_000
            }
        );
    }
}
