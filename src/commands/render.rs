//! `narrate render`: load every manifest, check offline all that can be checked, then render the
//! jobs together under one client, limiter and concurrency cap, and assemble and report each.
//!
//! The order is the promise "nothing sent, nothing written on exit 2": ids, outputs, locks and
//! budgets are checked before the first request; the remembered model limits are written only
//! once the run is certain to start. Not responsible for the budget (see `budget`), the summary
//! lines (see `summary`) or the stages themselves (`execute`, `publish`, `output`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;

use super::budget::{check_balance, estimate_all};
use super::fleet;
use super::summary::Rendered;
use super::windowed;
use crate::cli::RenderConfig;
use crate::cli::args::OtherChapters;
use crate::error::UsageError;
use crate::execute::Runner;
use crate::manifest::Job;
use crate::output::names::output_files;
use crate::output::report::{self, Status};
use crate::plan::Plan;
use crate::publish;
use crate::session::Session;
use crate::state::{Cache, StateDir};
use crate::{files, manifest, output, progress, signals};

/// The manifests of one invocation, each once: the same file named twice (through a link or
/// `..`) is rendered once.
pub(crate) fn distinct_manifests(manifests: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    manifests
        .iter()
        .filter(|m| seen.insert(files::identity(m)))
        .cloned()
        .collect()
}

/// Renders every manifest of `config` and says how it went (the summary line, the summary and
/// metrics files, the pings); the exit status is 0 only if all of them succeeded.
pub async fn render(config: RenderConfig) -> anyhow::Result<u8> {
    let started = SystemTime::now();
    let outcomes = config.outcomes.clone();
    let nothing_to_do = config.exit_nothing_to_do;
    outcomes.started().await;
    let (rendered, result) = match render_all(config).await {
        Ok((rendered, code)) => (rendered, Ok(code)),
        Err(e) => (Vec::new(), Err(e)),
    };
    let code = match &result {
        Ok(code) => *code,
        Err(e) => crate::error::exit_code_for(e),
    };
    let summary = super::outcome::summary(
        &rendered,
        code,
        nothing_to_do,
        result.as_ref().err(),
        started,
    );
    outcomes.finished(&rendered, code, &summary).await;
    result
}

/// The render itself: every manifest, with the exit status of the whole.
async fn render_all(config: RenderConfig) -> anyhow::Result<(Vec<Rendered>, u8)> {
    let manifests = distinct_manifests(&config.manifests);
    let mut jobs = super::load_jobs(&manifests, &config.defaults, config.output.as_deref(), true)?;
    if let Some(shard) = config.fleet.shard {
        let all = jobs.len();
        jobs = manifest::shard::restrict(jobs, shard, config.fleet.shard_by);
        tracing::info!(%shard, manifests = jobs.len(), of = all, "this shard's share");
        if jobs.is_empty() {
            println!("shard {shard}: nothing of this run is this shard's share");
            return Ok((Vec::new(), 0));
        }
    }
    if let Some(library) = &config.library {
        for job in &mut jobs {
            let (folder, audio) = output::library::place(job, library);
            job.output = audio;
            job.library_folder = Some(folder);
        }
    }
    for job in &mut jobs {
        crate::deliver::credits::add(job, &config.publish.profiles)?;
        crate::deliver::check_lengths(job, &config.publish.profiles)?;
    }
    let mut config = config;
    if let (Some((list, other)), [job]) = (config.chapters.clone(), jobs.as_mut_slice()) {
        use crate::manifest::chapters;
        let numbers = chapters::select(job, &list)?;
        match other {
            OtherChapters::Omit => chapters::restrict(job, &numbers, config.output.is_some()),
            OtherChapters::Cached => config.only.extend(chapters::segment_ids(job, &numbers)),
        }
    }
    let rendered = render_jobs(&config, jobs).await?;
    for r in &rendered {
        if let (Some(folder), Status::Ok) = (&r.job.library_folder, r.report.status) {
            output::library::write_metadata(&r.job, folder)
                .with_context(|| format!("writing the library files in {}", folder.display()))?;
        }
    }
    let code = super::summary::print(&rendered, config.exit_nothing_to_do);
    Ok((rendered, code))
}

/// The caches of the jobs, with the state directories' locks held while they live. Without a
/// cache (`--no-cache`), responses still pass through a scratch directory so memory stays flat.
pub(crate) struct Caches {
    caches: Vec<Cache>,
    _locks: Vec<std::fs::File>,
    _scratch: Option<tempfile::TempDir>,
}

impl Caches {
    /// One cache a job, in the jobs' order.
    pub(crate) fn caches(&self) -> &[Cache] {
        &self.caches
    }

    fn open(config: &RenderConfig, jobs: &[Job]) -> anyhow::Result<Self> {
        let scratch = if config.no_cache {
            Some(tempfile::tempdir().context("creating a scratch directory")?)
        } else {
            None
        };
        let mut locked: Vec<StateDir> = Vec::new();
        let mut locks = Vec::new();
        let mut caches = Vec::with_capacity(jobs.len());
        for job in jobs {
            let dir = match &scratch {
                Some(dir) => dir.path().to_path_buf(),
                None => {
                    let state = config.state_dir_for(&job.manifest);
                    if !locked.contains(&state) {
                        locks.push(state.lock()?);
                        locked.push(state.clone());
                    }
                    state.cache_dir()
                }
            };
            let cache = Cache::open(&dir)
                .with_context(|| format!("opening the cache in {}", dir.display()))?;
            // Each send is journaled first and each answer stored: a cache that cannot take
            // them is found before anything is paid for.
            for probe in ["journal.jsonl", "probe"] {
                files::check_writable(&dir.join(probe)).map_err(|why| {
                    UsageError(format!(
                        "{}: the cache in {} cannot be written: {why}",
                        job.manifest.display(),
                        dir.display()
                    ))
                })?;
            }
            let removed = cache.remove_leftovers();
            if removed > 0 {
                tracing::info!(cache = %dir.display(), removed, "removed the temporary files of cache writes a killed run left");
            }
            caches.push(cache);
        }
        Ok(Caches {
            caches,
            _locks: locks,
            _scratch: scratch,
        })
    }
}

/// The checks that need nothing but the disk: `--only` ids, outputs (and ffmpeg for `.m4b`),
/// locks, leftovers.
pub(crate) fn check_offline(config: &RenderConfig, jobs: &[Job]) -> anyhow::Result<Caches> {
    let known: std::collections::HashSet<&str> = jobs
        .iter()
        .flat_map(|j| j.segments.iter().map(|s| s.id.as_str()))
        .collect();
    for id in &config.only {
        if !known.contains(id.as_str()) {
            return Err(UsageError(format!("--only {id}: no segment has this id")).into());
        }
    }
    let split = config.publish.split;
    let outcomes = &config.outcomes;
    let run_files: Vec<(&str, &std::path::Path)> = [
        ("--summary-json", &outcomes.summary_json),
        ("--metrics-textfile", &outcomes.metrics_textfile),
    ]
    .into_iter()
    .filter_map(|(flag, path)| Some((flag, path.as_deref()?)))
    .collect();
    let read_along = config.publish.read_along;
    output::check_outputs(
        jobs,
        (split, read_along),
        config.endpoint.key_file.as_deref(),
        &run_files,
    )?;
    if let Some(job) = jobs.iter().find(|j| {
        j.output
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("m4b"))
    }) {
        crate::audio::m4b::check_ffmpeg()
            .map_err(|why| UsageError(format!("{}: {why}", job.manifest.display())))?;
    }
    if !config.publish.profiles.is_empty() {
        crate::deliver::check_encoders().map_err(UsageError)?;
    }
    let caches = Caches::open(config, jobs)?;
    for job in jobs {
        let outputs: Vec<_> = output_files(job, split)
            .into_iter()
            .map(|f| f.path)
            .collect();
        let removed = files::remove_leftovers(outputs.iter().map(PathBuf::as_path));
        if removed > 0 {
            tracing::info!(output = %job.output.display(), removed, "removed temporary files of an earlier run that was killed");
        }
    }
    Ok(caches)
}

/// Renders loaded jobs, sharing one client, limiter and cap; writes outputs and reports.
pub async fn render_jobs(config: &RenderConfig, jobs: Vec<Job>) -> anyhow::Result<Vec<Rendered>> {
    let source = config.endpoint.source();
    let mut caches = check_offline(config, &jobs)?;
    let state = jobs
        .first()
        .filter(|_| !config.no_cache)
        .map(|j| config.state_dir_for(&j.manifest));
    let saved_limits = state
        .as_ref()
        .map(StateDir::remembered_limits)
        .unwrap_or_default();
    // With the limits known offline, a budget or an --only that cannot be met is refused
    // before any request (voice names are resolved online, so their jobs wait for that).
    let offline: Vec<(&Job, &Cache)> = jobs
        .iter()
        .zip(&caches.caches)
        .filter(|(j, _)| !manifest::has_voice_names(j))
        .collect();
    estimate_all(config, &offline, &saved_limits, &source, false)?;
    let shelf = fleet::shelf(&config.fleet).await?;
    caches.caches = std::mem::take(&mut caches.caches)
        .into_iter()
        .map(|c| c.with_shelf(shelf.clone()))
        .collect();

    let (session, client) = connect(config).await?;
    let fetched = match &session {
        Some(_) => client.limits().await,
        None => None,
    };
    let limits = fetched.clone().unwrap_or(saved_limits);
    let mut jobs = match &session {
        Some(session) => prepare_online(config, session, jobs).await?,
        None => {
            let mut jobs = jobs;
            fleet::prepare_offline(config, &mut jobs)?;
            jobs
        }
    };
    fleet::sync(&jobs, &caches.caches, &limits, &source).await;
    if config.fleet.cache_only {
        fleet::check_complete(&config.fleet, &jobs, &caches.caches, &limits, &source)?;
        fleet::name_owners(&config.fleet, &mut jobs);
    }
    let pairs: Vec<(&Job, &Cache)> = jobs.iter().zip(&caches.caches).collect();
    let (plans, total) = estimate_all(config, &pairs, &limits, &source, true)?;
    if total.requests > 0 {
        check_balance(&client, &total).await?;
    }
    if let (Some(limits), Some(state)) = (&fetched, &state) {
        state.remember_limits(limits);
    }
    let progress = Arc::new(progress::Progress::new(
        plans.iter().map(|p| p.requests.len() as u64).sum(),
        config.progress,
    ));
    let runner = Arc::new(Runner::new(
        client,
        config.execute_settings(source),
        progress.clone(),
    ));
    let replan = windowed::Replan {
        limits: &limits,
        only: &config.only,
    };
    let results = run_all(config, &runner, (jobs, plans, replan), &caches).await;
    progress.finish();
    if let Some(session) = session {
        session.close().await;
    }
    for cache in &caches.caches {
        cache.compact_journal();
    }
    drop(caches);
    results.into_iter().collect()
}

/// The session of a render, and its client; `assemble` has none (it sends nothing).
pub(crate) async fn connect(
    config: &RenderConfig,
) -> anyhow::Result<(Option<Session>, crate::api::Client)> {
    if config.fleet.cache_only {
        return Ok((None, fleet::offline_client()?));
    }
    let session = Session::connect(&config.endpoint, config.request_timeout).await?;
    let client = session.client.clone();
    Ok((Some(session), client))
}

/// Renders every job under one runner, with the signals and the deadline watched.
async fn run_all(
    config: &RenderConfig,
    runner: &Arc<Runner>,
    (jobs, plans, replan): (Vec<Job>, Vec<Plan>, windowed::Replan<'_>),
    caches: &Caches,
) -> Vec<anyhow::Result<Rendered>> {
    // Every chain of every job (up to each job's window of tasks, longest first) is known
    // before the first slot is handed out, so the longest goes first from the start.
    runner.slots.expect(
        jobs.iter()
            .zip(&plans)
            .map(|(j, p)| {
                windowed::first_participants(j, p, &config.publish).min(crate::execute::TASK_WINDOW)
            })
            .sum(),
    );
    let signals = tokio::spawn(signals::stop_on_signals(runner.clone()));
    let deadline = config
        .max_duration
        .map(|after| tokio::spawn(signals::stop_at_deadline(runner.clone(), after)));
    let publishing = Arc::new(config.publish.clone());
    let tasks = jobs
        .into_iter()
        .zip(plans)
        .zip(caches.caches.iter().cloned())
        .map(|((job, plan), cache)| {
            render_job(
                (runner.clone(), publishing.clone()),
                job,
                plan,
                cache,
                replan,
            )
        });
    let results = futures::future::join_all(tasks).await;
    signals.abort();
    if let Some(deadline) = deadline {
        deadline.abort();
    }
    results
}

/// What needs the account before planning: voice names resolved, pronunciation dictionaries
/// kept on the account.
async fn prepare_online(
    config: &RenderConfig,
    session: &Session,
    mut jobs: Vec<Job>,
) -> anyhow::Result<Vec<Job>> {
    super::resolve_voices(&session.client, &mut jobs).await?;
    for job in &mut jobs {
        let state = config.state_dir_for(&job.manifest);
        super::dictionary::ensure(&session.client, &state, job)
            .await
            .with_context(|| {
                format!(
                    "{}: keeping the pronunciation dictionary on the account",
                    job.manifest.display()
                )
            })?;
    }
    Ok(jobs)
}

/// Renders one job: its requests, then (when all succeeded and no signal came) its files, then
/// its reports and, on success, its side files and review page.
pub(crate) async fn render_job(
    (runner, publishing): (Arc<Runner>, Arc<publish::Options>),
    job: Job,
    plan: Plan,
    cache: Cache,
    replan: windowed::Replan<'_>,
) -> anyhow::Result<Rendered> {
    if let Some(windows) = windowed::windows(&job, &publishing) {
        // The whole plan goes: each window is planned again, alone.
        drop(plan);
        return windowed::render((runner, publishing), job, (cache, replan), windows).await;
    }
    let started = SystemTime::now();
    let job = Arc::new(job);
    let plan = Arc::new(plan);
    let cache = Arc::new(cache);
    let windowed::Window {
        outcomes,
        assembled,
        report: mut rep,
        ..
    } = windowed::run(&runner, &publishing, (&job, &plan, &cache), started).await;
    if job.shard.is_some() {
        let report_paths = report::write(&rep, &job.output)?;
        let job = Arc::try_unwrap(job).unwrap_or_else(|j| (*j).clone());
        return Ok(Rendered {
            job,
            report: rep,
            report_paths,
        });
    }
    let read_along = publishing.read_along;
    // The report is written even when the read-along book could not be; then the run fails.
    let read_along =
        publish::finish::write_read_along(read_along, &job, &plan, &outcomes, &mut rep);
    if rep.status == Status::Ok && !publishing.profiles.is_empty() {
        let records = cache.published_dir();
        let inputs = publish::Inputs {
            job: &job,
            plan: &plan,
            outcomes: &outcomes,
            records: &records,
            cancel: runner.cancel.clone(),
        };
        let jobs = (publishing.sample, publishing.jobs);
        rep.deliveries = tokio::task::block_in_place(|| {
            crate::deliver::deliver_all(&publishing.profiles, jobs, &inputs)
        });
    }
    let report_paths = report::write(&rep, &job.output)?;
    read_along?;
    let timestamps = runner.settings.timestamps;
    publish::finish::write_side_files(timestamps, publishing.split, &job, &plan, &outcomes, &rep)?;
    if rep.status == Status::Ok {
        let inputs = (job.as_ref(), plan.as_ref(), outcomes.as_slice());
        publish::finish::write_review(inputs, &rep, &report_paths.0, &assembled.peaks)?;
    }
    let job = Arc::try_unwrap(job).unwrap_or_else(|j| (*j).clone());
    Ok(Rendered {
        job,
        report: rep,
        report_paths,
    })
}
