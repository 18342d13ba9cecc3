//! What a render does when several machines share a job: reaching the shared cache before
//! anything is sent, matching the run's entries with it, and, for `assemble`, making sure every
//! request is there before any file is written.
//!
//! Not responsible for the shared cache itself (see `state::shared`) or the partition (see
//! `manifest::shard`).

use std::sync::Arc;

use crate::cli::args::CacheFallback;
use crate::cli::config::Fleet;
use crate::error::usage;
use crate::execute::estimate::RequestKey;
use crate::manifest::Job;
use crate::manifest::shard;
use crate::plan::{Limits, plan_with_limits};
use crate::state::Cache;
use crate::state::bucket::Bucket;
use crate::state::shared;
use crate::state::shelf::{SharedShelf, Shelf as _};

/// The most missing segments an error names one by one.
const NAMED: usize = 20;

/// The shared cache of the run (`--cache-url`), reached before anything is sent: one that
/// cannot be is an error (exit 2), or with `--cache-fallback local` a warning and none.
pub(crate) async fn shelf(fleet: &Fleet) -> anyhow::Result<Option<SharedShelf>> {
    let Some(url) = &fleet.cache_url else {
        return Ok(None);
    };
    let bucket = Bucket::open(url)?;
    match bucket.probe().await {
        Ok(()) => {
            tracing::info!(cache = %bucket.describe(), "shared cache reached");
            Ok(Some(Arc::new(bucket)))
        }
        Err(why) => match fleet.cache_fallback {
            CacheFallback::Error => Err(usage(format!(
                "the shared cache {} cannot be used: {why}; nothing was sent (with --cache-fallback local the run goes on with this machine's cache alone)",
                bucket.describe()
            ))),
            CacheFallback::Local => {
                tracing::warn!(
                    "the shared cache {} cannot be used: {why}; this run uses this machine's cache alone",
                    bucket.describe()
                );
                Ok(None)
            }
        },
    }
}

/// The cache keys of a job's requests.
fn keys(job: &Job, limits: &Limits, source: &str) -> Vec<String> {
    let plan = plan_with_limits(job, limits);
    (0..plan.requests.len())
        .map(|r| RequestKey::of(job, &plan, r, source).key)
        .collect()
}

/// Matches every job's entries with the shared cache before the estimate: what another
/// machine rendered is taken, and what this machine has that the shelf lacks is put there.
pub(crate) async fn sync(jobs: &[Job], caches: &[Cache], limits: &Limits, source: &str) {
    for (job, cache) in jobs.iter().zip(caches) {
        if cache.shelf().is_none() {
            continue;
        }
        let synced = shared::sync(cache, keys(job, limits, source)).await;
        tracing::info!(
            manifest = %job.manifest.display(),
            taken = synced.pulled,
            put = synced.pushed,
            "matched the cache with the shared cache"
        );
    }
}

/// For `assemble --shards N`: each job learns which shard rendered each of its segments.
pub(crate) fn name_owners(fleet: &Fleet, jobs: &mut [Job]) {
    let Some(n) = fleet.shards else {
        return;
    };
    let owners = shard::owners(jobs, n, fleet.shard_by);
    for (job, owners) in jobs.iter_mut().zip(owners) {
        job.shard_owners = Some((n, owners));
    }
}

/// For `assemble`: every request of every job is in the cache, or the error (exit 2) names
/// the segments that are not, with the shard that owns each when `--shards` is given.
pub(crate) fn check_complete(
    fleet: &Fleet,
    jobs: &[Job],
    caches: &[Cache],
    limits: &Limits,
    source: &str,
) -> anyhow::Result<()> {
    let owners = fleet
        .shards
        .map(|n| (n, shard::owners(jobs, n, fleet.shard_by)));
    let mut named = Vec::new();
    let mut missing = 0usize;
    for (j, (job, cache)) in jobs.iter().zip(caches).enumerate() {
        let plan = plan_with_limits(job, limits);
        let mut segments: Vec<usize> = (0..plan.requests.len())
            .filter(|&r| {
                cache
                    .get(&RequestKey::of(job, &plan, r, source).key)
                    .is_none()
            })
            .map(|r| plan.requests[r].segment)
            .collect();
        missing += segments.len();
        segments.dedup();
        for s in segments {
            if named.len() == NAMED {
                break;
            }
            let segment = &job.segments[s];
            let owner = owners
                .as_ref()
                .map(|(n, o)| format!(", rendered by shard {}/{n}", o[j][s] + 1))
                .unwrap_or_default();
            named.push(format!(
                "  {}: segment {:?} (line {}){owner}",
                job.manifest.display(),
                segment.id,
                segment.line
            ));
        }
    }
    if missing == 0 {
        return Ok(());
    }
    Err(usage(format!(
        "assemble sends nothing, and {missing} request(s) are not in the cache; nothing was written. Missing:\n{}{}\nRender the missing shards (or the job) again, then assemble.",
        named.join("\n"),
        if missing > named.len() { "\n  ..." } else { "" }
    )))
}

/// For `assemble`: what cannot be known without the account is refused (voice names), and the
/// dictionaries come from the state directory.
pub(crate) fn prepare_offline(
    config: &crate::cli::RenderConfig,
    jobs: &mut [Job],
) -> anyhow::Result<()> {
    for job in jobs {
        if crate::manifest::has_voice_names(job) {
            return Err(usage(format!(
                "{}: voice names are resolved with the account, and assemble sends nothing; give voice ids (narrate voices lists them)",
                job.manifest.display()
            )));
        }
        let state = config.state_dir_for(&job.manifest);
        super::dictionary::remembered(&state, job)?;
    }
    Ok(())
}

/// The client of a run that sends nothing (`assemble`): it holds no key and is never used,
/// since every request is taken from the cache (and one that is not fails unsent).
pub(crate) fn offline_client() -> anyhow::Result<crate::api::Client> {
    crate::api::Client::new(
        "http://127.0.0.1:9",
        None,
        std::time::Duration::from_secs(1),
    )
}
