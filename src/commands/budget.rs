//! The budget of a render, checked before anything is sent: every job planned with the model
//! limits, what is left to render estimated against the cache, `--only` and `--max-credits`
//! refused when they cannot be met, and the account's balance read.
//!
//! Not responsible for planning (see `plan`) or for the estimate of one job (see
//! `execute::estimate`).

use crate::api::Client;
use crate::cli::RenderConfig;
use crate::error::UsageError;
use crate::execute::{self, Estimate};
use crate::manifest::Job;
use crate::plan::{self, Limits, Plan};
use crate::state::Cache;

/// Plans every job with `limits` and estimates what is left to render, refusing (exit 2) an
/// `--only` whose other segments are not cached and a total above `--max-credits`; `log` says
/// each plan in the log (the final pass, not the offline one).
pub(crate) fn estimate_all(
    config: &RenderConfig,
    jobs: &[(&Job, &Cache)],
    limits: &Limits,
    source: &str,
    log: bool,
) -> anyhow::Result<(Vec<Plan>, Estimate)> {
    let mut plans = Vec::with_capacity(jobs.len());
    let mut total = Estimate::default();
    for (job, cache) in jobs {
        let mut plan = plan::plan_with_limits(job, limits);
        plan::mark_regenerate(&mut plan, job, &config.only);
        let e = execute::estimate(job, &plan, Some(cache), (source, config.retime));
        if !config.only.is_empty()
            && let Some(si) = e.missing
        {
            return Err(UsageError(format!(
                "{}: segment {:?} is not in the cache; --only re-renders some segments of a rendered manifest, so render it in full first",
                job.manifest.display(),
                job.segments[si].id
            ))
            .into());
        }
        if log {
            tracing::info!(
                manifest = %job.manifest.display(),
                requests = plan.requests.len(),
                chains = plan.chains.len(),
                cached = e.cached,
                credits = e.credits,
                "planned"
            );
        }
        total.add(&e);
        plans.push(plan);
    }
    if let Some(max) = config.max_credits
        && total.credits > max
    {
        return Err(UsageError(format!(
            "this run needs about {} credits for {} uncached requests ({} characters), more than --max-credits {max}; nothing was sent",
            total.credits, total.requests, total.characters
        ))
        .into());
    }
    Ok((plans, total))
}

/// Reads the account's balance and refuses a job larger than it. A refused key is a
/// configuration error; an unreadable balance (no permission, no network) only a warning.
pub(crate) async fn check_balance(client: &Client, total: &Estimate) -> anyhow::Result<()> {
    match client.subscription().await {
        Ok(sub) => {
            if let Some(remaining) = sub.remaining() {
                tracing::info!(remaining, needed = total.credits, "account balance");
                if total.credits > remaining {
                    return Err(UsageError(format!(
                        "this run needs about {} credits for {} uncached requests, but the account has {remaining} credits remaining; nothing was sent",
                        total.credits, total.requests
                    ))
                    .into());
                }
            }
            Ok(())
        }
        Err(e) if e.is_refused_key() => {
            Err(UsageError(format!("the API refused the key ({e}); nothing was sent")).into())
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the account balance; rendering without the check");
            Ok(())
        }
    }
}
