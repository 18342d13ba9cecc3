//! narrate: a batch narration pipeline for the ElevenLabs text-to-speech API.
//!
//! A YAML or CSV manifest of text segments is planned into requests that chain
//! `previous_request_ids` and `next_text` for continuity, executed under a rate limiter, a
//! concurrency cap and retries through a cache, and stitched into one `.wav` or `.mp3` with
//! JSON and CSV reports.
//!
//! # Layout
//!
//! The modules follow the data flow:
//!
//! ```text
//! manifest ──▶ plan ──▶ execute (api, cache) ──▶ audio ──▶ report
//! ```
//!
//! - [`cli`]: flags, resolved into validated configuration.
//! - [`manifest`]: YAML/CSV parsing and validation into a [`manifest::Job`].
//! - [`plan`]: text splitting and continuity chains.
//! - [`api`]: the HTTP client and the API's error shapes.
//! - [`execute`]: scheduling, rate limit, concurrency cap, retries.
//! - [`cache`]: rendered requests stored atomically; reruns pay nothing twice.
//! - [`audio`]: streaming assembly into WAV or MP3.
//! - [`report`]: the JSON and CSV reports.
//! - [`progress`]: the progress bar on stderr.
//! - [`tags`]: ID3 chapters and the Info header of MP3 output.
//! - [`sidefiles`]: chapters for ffmpeg, a CUE sheet, SRT and WebVTT captions.
//! - [`emulator`]: the built-in ElevenLabs-compatible API server.
//! - [`files`]: bounded reads of inputs, atomic link-safe writes, file identity.
//! - [`mod@format`], [`models`]: facts about output formats and models.
//!
//! This file wires the stages together for each command.

// Outside data never meets an unwrap: every failure is an error with a message.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod api;
pub mod audio;
pub mod cache;
pub mod cli;
pub mod emulator;
pub mod encode;
pub mod execute;
pub mod files;
pub mod format;
pub mod manifest;
pub mod models;
pub mod plan;
pub mod progress;
pub mod report;
pub mod sidefiles;
pub mod tags;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;

use crate::api::Client;
use crate::cli::{Cli, Command, RenderConfig};
use crate::execute::{Runner, Settings};
use crate::manifest::Job;

/// Exit status: every segment rendered and the output written.
pub const EXIT_OK: u8 = 0;
/// Exit status: at least one segment failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: usage, manifest or configuration error; nothing sent.
pub const EXIT_USAGE: u8 = 2;

/// The exit status for an error that ended a command.
pub fn exit_code_for(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<manifest::ManifestError>().is_some()
        || error.downcast_ref::<cli::UsageError>().is_some()
    {
        EXIT_USAGE
    } else {
        EXIT_FAILED
    }
}

/// Runs one command line. `env_key` is `ELEVENLABS_API_KEY`.
pub async fn run(cli: Cli, env_key: Option<String>) -> anyhow::Result<u8> {
    match cli.command {
        None => render(RenderConfig::from_args(&cli.render, env_key)?).await,
        Some(Command::Render(args)) => render(RenderConfig::from_args(&args, env_key)?).await,
        Some(Command::Plan(args)) => plan_command(&args, env_key).await,
        Some(Command::Check(args)) => check_command(&args, env_key).await,
        Some(Command::Voices(args)) => voices_command(&args, env_key).await,
        Some(Command::Models(args)) => models_command(&args, env_key).await,
        Some(Command::Emulate(args)) => emulate_command(&args).await,
    }
}

/// Loads every manifest before anything is sent.
fn load_jobs(
    manifests: &[PathBuf],
    defaults: &manifest::FlagDefaults,
    output: Option<&std::path::Path>,
) -> anyhow::Result<Vec<Job>> {
    manifests
        .iter()
        .map(|m| manifest::load(m, defaults, output).map_err(anyhow::Error::from))
        .collect()
}

/// What rendering one manifest produced.
pub struct Rendered {
    pub job: Job,
    pub report: report::Report,
    pub report_paths: (PathBuf, PathBuf),
}

/// The manifests of one invocation, each once: the same file named twice (through a link or
/// `..`) is rendered once.
fn distinct_manifests(manifests: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    manifests
        .iter()
        .filter(|m| seen.insert(files::identity(m)))
        .cloned()
        .collect()
}

/// Renders every manifest of `config`; the exit status is 0 only if all of them succeeded.
pub async fn render(config: RenderConfig) -> anyhow::Result<u8> {
    let manifests = distinct_manifests(&config.manifests);
    let jobs = load_jobs(&manifests, &config.defaults, config.output.as_deref())?;
    let rendered = render_jobs(&config, jobs).await?;
    let mut status = EXIT_OK;
    for r in &rendered {
        let t = &r.report.totals;
        let failed = r
            .report
            .segments
            .iter()
            .filter(|s| s.status != "ok")
            .count();
        let shown = if r.report.outputs.is_empty() {
            r.job.output.display().to_string()
        } else {
            // The first file and the last one's name: the report lists them all.
            let outputs = &r.report.outputs;
            let last = outputs.last().map_or("", |o| {
                std::path::Path::new(&o.path)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or(&o.path)
            });
            match outputs.len() {
                1 => format!("{} (1 chapter file)", outputs[0].path),
                n => format!("{} ... {last} ({n} chapter files)", outputs[0].path),
            }
        };
        if r.report.status == "ok" {
            println!(
                "ok {}: {} segments ok, 0 failed, {} credits, {:.1} s of audio, {} requests ({} from cache), {:.1} s; report {}",
                shown,
                t.segments,
                t.credits,
                t.audio_seconds,
                t.requests,
                t.cache_hits,
                r.report.wall_seconds,
                r.report_paths.0.display()
            );
            if let Some(line) = report::audiobook_summary(&r.report) {
                println!("{line}");
            }
        } else {
            status = EXIT_FAILED;
            println!(
                "{} {}: {} segments ok, {failed} failed, {} credits, {:.1} s; output not written; report {}",
                if r.report.interrupted {
                    "interrupted"
                } else {
                    "failed"
                },
                r.job.output.display(),
                t.segments - failed,
                t.credits,
                r.report.wall_seconds,
                r.report_paths.0.display()
            );
            for s in r.report.segments.iter().filter(|s| s.status != "ok") {
                eprintln!("error: {}", s.error.as_deref().unwrap_or("failed"));
            }
        }
    }
    Ok(status)
}

/// Renders loaded jobs, sharing one client, limiter and cap; writes outputs and reports.
pub async fn render_jobs(config: &RenderConfig, jobs: Vec<Job>) -> anyhow::Result<Vec<Rendered>> {
    let source = if config.endpoint.emulate {
        "emulator".to_string()
    } else {
        config.endpoint.base_url.clone()
    };
    // Without a cache, responses still pass through disk so memory stays flat.
    let scratch = if config.no_cache {
        Some(tempfile::tempdir().context("creating a scratch directory")?)
    } else {
        None
    };
    // Everything that can be checked offline is checked before anything is sent or written.
    for id in &config.only {
        if !jobs.iter().any(|j| j.segments.iter().any(|s| s.id == *id)) {
            return Err(cli::UsageError(format!("--only {id}: no segment has this id")).into());
        }
    }
    let split = config.split == cli::Split::Chapters;
    check_outputs(&jobs, split, config.endpoint.key_file.as_deref())?;
    let mut locks = Vec::new();
    let mut caches = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let cache_dir = match &scratch {
            Some(dir) => dir.path().to_path_buf(),
            None => {
                let state = config.state_dir_for(&job.manifest);
                if !locks.iter().any(|(dir, _)| *dir == state) {
                    let lock = cache::lock_state_dir(&state)?;
                    locks.push((state.clone(), lock));
                }
                state.join("cache")
            }
        };
        let cache = cache::Cache::open(&cache_dir)
            .with_context(|| format!("opening the cache in {}", cache_dir.display()))?;
        caches.push(cache);
    }
    for job in &jobs {
        for (path, _, _) in output_files(job, split) {
            let removed = files::remove_leftovers(&path);
            if removed > 0 {
                tracing::info!(output = %path.display(), removed, "removed temporary files of an earlier run that was killed");
            }
        }
    }
    let first_state = jobs
        .first()
        .filter(|_| !config.no_cache)
        .map(|j| config.state_dir_for(&j.manifest));
    let saved_limits = first_state
        .as_deref()
        .map(remembered_limits)
        .unwrap_or_default();
    // With the limits known offline, a budget or an --only that cannot be met is refused
    // before any request (voice names are resolved online, so their jobs wait for that).
    let offline: Vec<(&Job, &cache::Cache)> = jobs
        .iter()
        .zip(&caches)
        .filter(|(j, _)| !manifest::has_voice_names(j))
        .collect();
    estimate_all(config, &offline, &saved_limits, &source)?;

    let (client, emulator) = connect(&config.endpoint, config.request_timeout).await?;
    let fetched = fetch_limits(&client).await;
    let limits = fetched.clone().unwrap_or(saved_limits);
    let mut jobs = jobs;
    resolve_voices(&client, &mut jobs).await?;
    let pairs: Vec<(&Job, &cache::Cache)> = jobs.iter().zip(&caches).collect();
    let (plans, total) = estimate_all(config, &pairs, &limits, &source)?;
    if total.requests > 0 {
        check_balance(&client, &total).await?;
    }
    if let (Some(limits), Some(state)) = (&fetched, &first_state) {
        remember_limits(state, limits);
    }
    let prepared: Vec<(Job, plan::Plan, cache::Cache)> = jobs
        .into_iter()
        .zip(plans)
        .zip(caches)
        .map(|((job, plan), cache)| (job, plan, cache))
        .collect();
    let settings = Settings {
        concurrency: config.concurrency,
        rate: config.rate,
        max_retries: config.max_retries,
        retry_base: config.retry_base,
        retry_cap: std::time::Duration::from_secs(60),
        source,
        synthetic: config.endpoint.emulate,
        max_credits: config.max_credits,
        breaker_threshold: 20,
        clock_offset: config.clock_offset,
        loudness: config.loudness || config.audiobook,
        loudness_target: config.loudness_target,
        audiobook: config.audiobook,
        split_chapters: config.split == cli::Split::Chapters,
        gapless: config.gapless,
        timestamps: config.timestamps,
    };
    let total_requests: usize = prepared
        .iter()
        .map(|(_, plan, _)| plan.requests.len())
        .sum();
    let progress = progress::Progress::new(total_requests as u64, config.progress);
    let runner = Arc::new(Runner::new(client, settings, progress));
    let signals = tokio::spawn(stop_on_signals(runner.clone()));
    let tasks = prepared
        .into_iter()
        .map(|(job, plan, cache)| render_job(runner.clone(), job, plan, cache));
    let results = futures::future::join_all(tasks).await;
    runner.progress.finish();
    signals.abort();
    if let Some(e) = emulator {
        e.stop().await;
    }
    drop(locks);
    results.into_iter().collect()
}

/// Plans every job with `limits` and estimates what is left to render, refusing (exit 2) an
/// `--only` whose other segments are not cached and a total above `--max-credits`.
fn estimate_all(
    config: &RenderConfig,
    jobs: &[(&Job, &cache::Cache)],
    limits: &plan::Limits,
    source: &str,
) -> anyhow::Result<(Vec<plan::Plan>, execute::Estimate)> {
    let mut plans = Vec::with_capacity(jobs.len());
    let mut total = execute::Estimate::default();
    for (job, cache) in jobs {
        let mut plan = plan::plan_with_limits(job, limits);
        plan::mark_regenerate(&mut plan, job, &config.only);
        let e = execute::estimate(job, &plan, Some(cache), source);
        if !config.only.is_empty()
            && let Some(si) = e.missing
        {
            return Err(cli::UsageError(format!(
                "{}: segment {:?} is not in the cache; --only re-renders some segments of a rendered manifest, so render it in full first",
                job.manifest.display(),
                job.segments[si].id
            ))
            .into());
        }
        tracing::info!(
            manifest = %job.manifest.display(),
            requests = plan.requests.len(),
            chains = plan.chains.len(),
            cached = e.cached,
            credits = e.credits,
            "planned"
        );
        total.requests += e.requests;
        total.cached += e.cached;
        total.characters += e.characters;
        total.credits += e.credits;
        plans.push(plan);
    }
    if let Some(max) = config.max_credits
        && total.credits > max
    {
        return Err(cli::UsageError(format!(
            "this run needs about {} credits for {} uncached requests ({} characters), more than --max-credits {max}; nothing was sent",
            total.credits, total.requests, total.characters
        ))
        .into());
    }
    Ok((plans, total))
}

/// Every file a job writes: its audio (one file, or one per chapter), both reports and the side
/// files beside them.
fn written_files(job: &Job, split: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (path, _, _) in output_files(job, split) {
        if split {
            let [_, _, srt, vtt] = sidefiles::paths(&path);
            out.extend([srt, vtt]);
        }
        out.push(path);
    }
    let (json, csv) = report::paths(&job.output);
    out.extend([json, csv]);
    out.extend(sidefiles::paths(&job.output));
    out.push(job.output.with_extension("m3u8"));
    out
}

/// Refuses, before anything is sent, an output (or a file written beside it) that is one of the
/// inputs (a manifest, a `text_file`, a CSV, the key file) or another output of this
/// invocation, and an output that cannot be written (a directory, a read-only place).
fn check_outputs(
    jobs: &[Job],
    split: bool,
    key_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use std::collections::HashMap;
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
        for path in written_files(job, split) {
            let id = files::identity(&path);
            if let Some(input) = inputs.get(&id) {
                return Err(cli::UsageError(format!(
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
                return Err(cli::UsageError(format!(
                    "{}: the output {} is also written by {} (as {}); give each manifest its own output",
                    job.manifest.display(),
                    path.display(),
                    manifest.display(),
                    other.display()
                ))
                .into());
            }
            outputs.insert(id, (path, job.manifest.as_path()));
        }
        for (path, _, _) in output_files(job, split) {
            files::check_writable(&path).map_err(|why| {
                cli::UsageError(format!("{}: output {why}", job.manifest.display()))
            })?;
        }
        let (report, _) = report::paths(&job.output);
        files::check_writable(&report)
            .map_err(|why| cli::UsageError(format!("{}: report {why}", job.manifest.display())))?;
    }
    Ok(())
}

/// The smallest and largest per-request limit believed from the API: anything else is a
/// damaged or hostile answer, and the built-in table is used instead.
const PLAUSIBLE_LIMITS: std::ops::RangeInclusive<u64> = 50..=1_000_000;

/// Keeps the plausible limits of `(model_id, limit)` pairs, warning about the others.
fn plausible_limits(pairs: impl IntoIterator<Item = (String, u64)>, from: &str) -> plan::Limits {
    pairs
        .into_iter()
        .filter_map(|(id, max)| {
            if PLAUSIBLE_LIMITS.contains(&max) {
                usize::try_from(max).ok().map(|m| (id, m))
            } else {
                tracing::warn!(
                    "{from}: model {id:?} has a per-request limit of {max} characters, which cannot be right; using the built-in limit"
                );
                None
            }
        })
        .collect()
}

/// Per-request character limits from `GET /v1/models`, or `None` when it cannot be read.
async fn fetch_limits(client: &Client) -> Option<plan::Limits> {
    match client.get_json("/v1/models", &[]).await {
        Ok(models) => Some(plausible_limits(
            models.as_array().into_iter().flatten().filter_map(|m| {
                let id = m["model_id"].as_str()?;
                let max = m["maximum_text_length_per_request"].as_u64()?;
                Some((id.to_string(), max))
            }),
            "GET /v1/models",
        )),
        Err(e) => {
            tracing::info!(error = %e, "GET /v1/models failed; using the remembered or built-in limits");
            None
        }
    }
}

/// The limits remembered in `state/models.json` by an earlier run (empty when none).
fn remembered_limits(state: &std::path::Path) -> plan::Limits {
    let path = state.join("models.json");
    let Ok(bytes) = files::read_bytes(&path, files::MAX_STATE_JSON_BYTES) else {
        return plan::Limits::new();
    };
    match serde_json::from_slice::<std::collections::HashMap<String, u64>>(&bytes) {
        Ok(saved) => plausible_limits(saved, &path.display().to_string()),
        Err(e) => {
            tracing::warn!(
                "{}: unreadable ({e}); using the built-in limits",
                path.display()
            );
            plan::Limits::new()
        }
    }
}

/// Remembers the API's limits for runs that cannot reach it.
fn remember_limits(state: &std::path::Path, limits: &plan::Limits) {
    if let Ok(json) = serde_json::to_vec_pretty(limits)
        && std::fs::create_dir_all(state).is_ok()
    {
        let _ = files::write_atomic(&state.join("models.json"), &json);
    }
}

/// Reads the account's balance and refuses a job larger than it. A refused key is a
/// configuration error; an unreadable balance (no permission, no network) only a warning.
async fn check_balance(client: &Client, total: &execute::Estimate) -> anyhow::Result<()> {
    match client.get_json("/v1/user/subscription", &[]).await {
        Ok(sub) => {
            let limit = sub["character_limit"].as_f64();
            let used = sub["character_count"].as_f64();
            if let (Some(limit), Some(used)) = (limit, used) {
                let remaining = (limit - used).max(0.0);
                tracing::info!(remaining, needed = total.credits, "account balance");
                if total.credits > remaining {
                    return Err(cli::UsageError(format!(
                        "this run needs about {} credits for {} uncached requests, but the account has {remaining} credits remaining; nothing was sent",
                        total.credits, total.requests
                    ))
                    .into());
                }
            }
            Ok(())
        }
        Err(e) if refused_key(&e) => {
            Err(cli::UsageError(format!("the API refused the key ({e}); nothing was sent")).into())
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the account balance; rendering without the check");
            Ok(())
        }
    }
}

/// Whether an answer says the key itself is refused (401 `invalid_api_key` and its kin).
fn refused_key(e: &api::ApiError) -> bool {
    matches!(e, api::ApiError::Status {
        status: 401,
        code,
        ..
    } if matches!(
        code.as_deref(),
        Some("invalid_api_key" | "needs_authorization" | "unauthorized")
    ))
}

/// On SIGINT, SIGTERM or SIGHUP, stop sending and let requests in flight finish; a second signal
/// exits at once.
async fn stop_on_signals(runner: Arc<Runner>) {
    async fn signal() {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                let _ = tokio::signal::ctrl_c().await;
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    signal().await;
    eprintln!(
        "narrate: stopping: requests in flight will finish and be cached (signal again to quit at once)"
    );
    runner.interrupt();
    signal().await;
    std::process::exit(130);
}

async fn render_job(
    runner: Arc<Runner>,
    job: Job,
    plan: plan::Plan,
    cache: cache::Cache,
) -> anyhow::Result<Rendered> {
    let started = SystemTime::now();
    let job = Arc::new(job);
    let plan = Arc::new(plan);
    let outcomes =
        execute::execute(runner.clone(), job.clone(), plan.clone(), Arc::new(cache)).await;
    let all_ok = outcomes.iter().all(|o| o.audio.is_some());
    let mut assembly_error = None;
    let split = runner.settings.split_chapters;
    let mut assembled: Vec<(PathBuf, audio::Placement)> = Vec::new();
    let mut request_spans = vec![(0, 0..0, audio::Edit::default()); plan.requests.len()];
    // An interrupted run never replaces the previous output, even when every request is done.
    if all_ok && !runner.was_interrupted() {
        for (path, range, chapter) in output_files(&job, split) {
            let (pieces, index, chapters) = pieces(&job, &plan, &outcomes, range);
            let options = audio::Options {
                tags: tags::TagSpec {
                    // One chapter a file when split: the file is named after it.
                    title: if split {
                        chapter.clone().or_else(|| job.title.clone())
                    } else {
                        job.title.clone()
                    },
                    author: job.author.clone(),
                    album: job
                        .album
                        .clone()
                        .or_else(|| split.then(|| job.title.clone()).flatten()),
                    chapters: if split { Vec::new() } else { chapters },
                },
                measure: runner.settings.loudness,
                loudness_target: runner.settings.loudness_target,
                trim_silence: job.trim_silence,
                encode_mp3: runner.settings.gapless,
                rf64_above_bytes: None,
                cancel: Some(runner.cancel.clone()),
            };
            tracing::info!(output = %path.display(), "assembling");
            match audio::assemble(&pieces, job.output_format, &path, &options) {
                Ok(p) => {
                    for (r, i) in index {
                        request_spans[r] = (assembled.len(), p.spans[i].clone(), p.edits[i]);
                    }
                    assembled.push((path, p));
                }
                Err(e) => {
                    assembly_error = Some(e);
                    break;
                }
            }
        }
    }
    let assembled_all = all_ok && assembly_error.is_none() && !runner.was_interrupted();
    let timeline = assembled_all.then(|| report::Timeline {
        files: assembled
            .iter()
            .map(|(path, p)| (path.as_path(), p))
            .collect(),
        request_spans,
        split,
    });
    let mut rep = report::build(
        &job,
        &plan,
        &outcomes,
        timeline.as_ref(),
        started,
        SystemTime::now(),
        runner.settings.synthetic,
    );
    rep.interrupted = runner.was_interrupted();
    if runner.settings.audiobook {
        report::audiobook(&job, &mut rep);
    }
    let not_assembled = match assembly_error {
        Some(e) => Some(format!("assembly failed: {e}")),
        None if all_ok && runner.was_interrupted() => {
            Some("interrupted before assembly; the previous output is left as it was".to_string())
        }
        None => None,
    };
    if let Some(why) = not_assembled {
        for s in &mut rep.segments {
            s.status = "failed";
            s.error.get_or_insert_with(|| why.clone());
        }
        rep.status = "failed";
    }
    let report_paths = report::write(&rep, &job.output)?;
    let alignments: Vec<Option<PathBuf>> = outcomes.iter().map(|o| o.alignment.clone()).collect();
    if runner.settings.timestamps {
        let missing = outcomes
            .iter()
            .filter(|o| o.audio.is_some() && o.alignment.is_none())
            .count();
        if missing > 0 {
            tracing::warn!(
                "{}: {missing} request(s) came from the cache without character timings; their captions are one cue per request (render them again with --only to get word timings)",
                job.manifest.display()
            );
        }
    }
    if rep.status == "ok" {
        sidefiles::write(&job, &plan, &rep, &alignments)
            .with_context(|| format!("writing the side files of {}", job.output.display()))?;
    }
    let job = Arc::try_unwrap(job).unwrap_or_else(|j| (*j).clone());
    Ok(Rendered {
        job,
        report: rep,
        report_paths,
    })
}

/// The pieces of one output file made of the segments `range`, in order: lead-in, each segment
/// and its pause (the chapter pause after a chapter's last segment), the tail instead of the
/// last pause. Also, for each request in the range, the index of its piece, and the chapters
/// with the index of the piece where each starts.
#[allow(clippy::type_complexity)]
fn pieces<'a>(
    job: &Job,
    plan: &plan::Plan,
    outcomes: &'a [execute::Outcome],
    range: std::ops::Range<usize>,
) -> (
    Vec<audio::Piece<'a>>,
    Vec<(usize, usize)>,
    Vec<(String, usize)>,
) {
    let mut pieces = Vec::new();
    let mut index = Vec::new();
    let mut chapters: Vec<(String, usize)> = Vec::new();
    if job.lead_in_ms > 0 {
        pieces.push(audio::Piece::Silence { ms: job.lead_in_ms });
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
            pieces.push(audio::Piece::Audio { path, segment: si });
        }
        let pause = if si + 1 == range.end {
            job.tail_ms
        } else if job.segments[si + 1].chapter != segment.chapter {
            segment.chapter_pause_ms
        } else {
            segment.pause_after_ms
        };
        if pause > 0 {
            pieces.push(audio::Piece::Silence { ms: pause });
        }
    }
    (pieces, index, chapters)
}

/// The output files of a job: the whole job in its `output`, or with `--split chapters` one
/// file per chapter, `<stem>-NN-<chapter>.<ext>` beside it. Each is a run of segments.
fn output_files(job: &Job, split: bool) -> Vec<(PathBuf, std::ops::Range<usize>, Option<String>)> {
    if !split {
        return vec![(job.output.clone(), 0..job.segments.len(), None)];
    }
    let mut runs: Vec<(std::ops::Range<usize>, Option<String>)> = Vec::new();
    for (si, segment) in job.segments.iter().enumerate() {
        match runs.last_mut() {
            Some((range, chapter)) if *chapter == segment.chapter => range.end = si + 1,
            _ => runs.push((si..si + 1, segment.chapter.clone())),
        }
    }
    let stem = job
        .output
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let ext = job
        .output
        .extension()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let dir = job
        .output
        .parent()
        .unwrap_or(std::path::Path::new(""))
        .to_path_buf();
    let width = runs.len().to_string().len().max(2);
    runs.into_iter()
        .enumerate()
        .map(|(k, (range, chapter))| {
            let name = format!(
                "{stem}-{:0width$}-{}.{ext}",
                k + 1,
                slug(chapter.as_deref().unwrap_or("part"))
            );
            (dir.join(name), range, chapter)
        })
        .collect()
}

/// A file-system-safe name from a chapter title: lowercase ASCII letters and digits, words
/// joined by '-', at most 60 characters.
fn slug(title: &str) -> String {
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

/// A client for commands that can do without one (`plan`, `check`): present with `--emulate`
/// or a key. The emulator, when started, lives as long as the returned guard.
async fn optional_client(
    api: &cli::ApiArgs,
    env_key: Option<String>,
) -> anyhow::Result<(Option<Client>, Option<emulator::Running>)> {
    let endpoint = cli::endpoint(api, env_key, false)?;
    if !endpoint.emulate && endpoint.key.is_none() {
        return Ok((None, None));
    }
    let (client, emulator) = connect(&endpoint, std::time::Duration::from_secs(60)).await?;
    Ok((Some(client), emulator))
}

/// A client for `endpoint`, with the in-process emulator started first for `--emulate` (it
/// serves as long as the returned handle lives).
async fn connect(
    endpoint: &cli::Endpoint,
    timeout: std::time::Duration,
) -> anyhow::Result<(Client, Option<emulator::Running>)> {
    let emulator = if endpoint.emulate {
        Some(
            emulator::start(emulator::Config::default())
                .await
                .context("starting the emulator")?,
        )
    } else {
        None
    };
    let base = emulator
        .as_ref()
        .map_or_else(|| endpoint.base_url.clone(), |e| e.base_url());
    let client = Client::new(&base, endpoint.key.clone(), timeout)?;
    Ok((client, emulator))
}

/// Every voice of the account, all pages of `GET /v2/voices`.
async fn fetch_voices(
    client: &Client,
    search: Option<&str>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut voices = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = vec![("page_size", "100".to_string())];
        if let Some(s) = search {
            query.push(("search", s.to_string()));
        }
        if let Some(t) = &token {
            query.push(("next_page_token", t.clone()));
        }
        let page = client
            .get_json("/v2/voices", &query)
            .await
            .context("GET /v2/voices")?;
        voices.extend(page["voices"].as_array().into_iter().flatten().cloned());
        token = page["next_page_token"].as_str().map(str::to_string);
        if !page["has_more"].as_bool().unwrap_or(false) || token.is_none() {
            return Ok(voices);
        }
    }
}

/// Resolves `voice` names in every job through `GET /v2/voices`, once for all of them.
async fn resolve_voices(client: &Client, jobs: &mut [Job]) -> anyhow::Result<()> {
    if !jobs.iter().any(manifest::has_voice_names) {
        return Ok(());
    }
    let voices: Vec<(String, String)> = match fetch_voices(client, None).await {
        Ok(v) => v
            .iter()
            .filter_map(|v| {
                Some((
                    v["voice_id"].as_str()?.to_string(),
                    v["name"].as_str()?.to_string(),
                ))
            })
            .collect(),
        Err(e) => {
            let refused = e
                .downcast_ref::<api::ApiError>()
                .is_some_and(|a| a.status() == Some(401));
            let message = format!("cannot resolve voice names: {e:#}");
            return Err(if refused {
                cli::UsageError(message).into()
            } else {
                anyhow::anyhow!(message)
            });
        }
    };
    for job in jobs.iter_mut() {
        manifest::resolve_voice_names(job, &voices)?;
    }
    Ok(())
}

async fn check_command(args: &cli::CheckArgs, env_key: Option<String>) -> anyhow::Result<u8> {
    let defaults = cli::flag_defaults(&args.defaults);
    let mut jobs = load_jobs(&args.manifests, &defaults, None)?;
    let (client, emulator) = optional_client(&args.api, env_key).await?;
    let names_checked = match &client {
        Some(c) => {
            let result = resolve_voices(c, &mut jobs).await;
            if let Some(e) = emulator {
                e.stop().await;
            }
            result?;
            true
        }
        None => false,
    };
    for job in &jobs {
        let plan = plan::plan(job);
        let names = job
            .segments
            .iter()
            .filter(|s| s.voice_name.is_some())
            .count();
        println!(
            "ok {}: {} segments, {} requests in {} chains, {} characters, {} → {}{}",
            job.manifest.display(),
            job.segments.len(),
            plan.requests.len(),
            plan.chains.len(),
            plan.characters(),
            job.output_format,
            job.output.display(),
            match (names, names_checked) {
                (0, _) => String::new(),
                (_, true) => format!("; {names} voice names resolved"),
                (_, false) => format!("; {names} voice names not checked (no key)"),
            }
        );
    }
    Ok(EXIT_OK)
}

async fn plan_command(args: &cli::PlanArgs, env_key: Option<String>) -> anyhow::Result<u8> {
    let defaults = cli::flag_defaults(&args.defaults);
    let mut jobs = load_jobs(&args.manifests, &defaults, None)?;
    let (client, emulator) = optional_client(&args.api, env_key).await?;
    let mut balance = serde_json::Value::Null;
    if let Some(c) = &client {
        resolve_voices(c, &mut jobs).await?;
        match c.get_json("/v1/user/subscription", &[]).await {
            Ok(sub) => {
                let (limit, used) = (
                    sub["character_limit"].as_f64(),
                    sub["character_count"].as_f64(),
                );
                if let (Some(limit), Some(used)) = (limit, used) {
                    balance = serde_json::json!({"tier": sub["tier"], "remaining_credits": (limit - used).max(0.0)});
                }
            }
            Err(e) if refused_key(&e) => {
                if let Some(e) = emulator {
                    e.stop().await;
                }
                return Err(cli::UsageError(format!("the API refused the key: {e}")).into());
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the account balance; the plan has no balance line");
            }
        }
    }
    if let Some(e) = emulator {
        e.stop().await;
    }
    for job in &mut jobs {
        for s in &mut job.segments {
            if s.voice_id.is_empty() {
                s.voice_id = format!("voice:{}", s.voice_name.as_deref().unwrap_or(""));
            }
        }
    }
    let source = if args.api.emulate {
        "emulator".to_string()
    } else {
        args.api.base_url.trim_end_matches('/').to_string()
    };
    let docs: Vec<serde_json::Value> = jobs
        .iter()
        .map(|job| {
            plan_json(
                job,
                cli::state_dir_for(args.state_dir.as_deref(), &job.manifest),
                &source,
            )
        })
        .collect();
    if args.json {
        let doc = serde_json::json!({"manifests": docs, "balance": balance});
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(EXIT_OK);
    }
    for doc in &docs {
        print_plan(doc);
    }
    if let Some(remaining) = balance["remaining_credits"].as_f64() {
        println!(
            "account: {} tier, {remaining} credits remaining",
            balance["tier"].as_str().unwrap_or("?")
        );
    }
    Ok(EXIT_OK)
}

/// The plan of one job as JSON: chains, and for each request its size, cache state and context.
fn plan_json(job: &Job, state: PathBuf, source: &str) -> serde_json::Value {
    use serde_json::json;
    let plan = plan::plan_with_limits(job, &remembered_limits(&state));
    let cache = cache::Cache::open(&state.join("cache")).ok();
    let estimate = execute::estimate(job, &plan, cache.as_ref(), source);
    let format = job.output_format.to_string();
    let label = |r: usize| {
        let request = &plan.requests[r];
        format!("{}#{}", job.segments[request.segment].id, request.piece + 1)
    };
    let now = SystemTime::now();
    let mut chains = Vec::new();
    for chain in &plan.chains {
        // Cached requests lend their stored ids (when fresh); the others the ids they will
        // have, written as labels.
        let mut done: Vec<Option<plan::Done>> = Vec::new();
        let mut requests = Vec::new();
        for &r in &chain.requests {
            let request = &plan.requests[r];
            let segment = &job.segments[request.segment];
            let context = plan::context_for(&plan, r, &done, &[], now);
            let body = execute::body_for(job, &plan, r, &context);
            let key = cache::key(&segment.voice_id, &format, &body, source);
            let cached = cache.as_ref().and_then(|c| c.get(&key)).map(|(m, _)| m);
            let as_labels = |ids: &[String]| -> Vec<String> {
                ids.iter()
                    .map(|id| {
                        chain
                            .requests
                            .iter()
                            .find(|&&q| label(q) == *id)
                            .map_or_else(|| id.clone(), |&q| label(q))
                    })
                    .collect()
            };
            let previous = if !context.previous_request_ids.is_empty() {
                json!({"kind": "ids", "of": as_labels(&context.previous_request_ids)})
            } else if context.previous_text.is_some() {
                json!({"kind": "text", "of": [label(chain.requests[request.pos - 1])]})
            } else {
                json!({"kind": "none", "of": []})
            };
            let next = if context.next_text.is_some() {
                json!({"kind": "text", "of": [label(chain.requests[request.pos + 1])]})
            } else {
                json!({"kind": "none", "of": []})
            };
            requests.push(json!({
                "request": label(r),
                "segment": segment.id,
                "characters": request.text.chars().count(),
                "cached": cached.is_some(),
                "previous": previous,
                "next": next,
            }));
            done.push(Some(match cached {
                Some(meta) => plan::Done {
                    request_id: meta.request_id.clone(),
                    issued: meta.issued(),
                },
                None => plan::Done {
                    request_id: Some(label(r)),
                    issued: now,
                },
            }));
        }
        chains.push(json!({
            "chapter": chain.chapter,
            "voice_id": chain.voice_id,
            "model_id": chain.model_id,
            "in_order": chain.sequential(&plan),
            "requests": requests,
        }));
    }
    json!({
        "manifest": job.manifest.display().to_string(),
        "output": job.output.display().to_string(),
        "output_format": format,
        "chains": chains,
        "totals": {
            "segments": job.segments.len(),
            "requests": plan.requests.len(),
            "characters": plan.characters(),
            "cached": estimate.cached,
            "estimated_credits": estimate.credits,
        },
    })
}

fn print_plan(doc: &serde_json::Value) {
    let context = |c: &serde_json::Value| -> String {
        let of: Vec<&str> = c["of"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        match c["kind"].as_str() {
            Some("ids") => format!("ids of {}", of.join(", ")),
            Some("text") => format!("text of {}", of.join(", ")),
            _ => "-".to_string(),
        }
    };
    println!(
        "{} → {} ({})",
        doc["manifest"].as_str().unwrap_or(""),
        doc["output"].as_str().unwrap_or(""),
        doc["output_format"].as_str().unwrap_or("")
    );
    for (i, chain) in doc["chains"].as_array().into_iter().flatten().enumerate() {
        let requests = chain["requests"].as_array().map_or(0, Vec::len);
        println!(
            "  chain {}: chapter {:?}, voice {}, model {}: {requests} requests, {}",
            i + 1,
            chain["chapter"].as_str().unwrap_or("-"),
            chain["voice_id"].as_str().unwrap_or(""),
            chain["model_id"].as_str().unwrap_or(""),
            if chain["in_order"].as_bool() == Some(true) {
                "request ids, in order"
            } else {
                "text context, in parallel"
            }
        );
        for r in chain["requests"].as_array().into_iter().flatten() {
            println!(
                "    {:<24} {:>6} chars  {:<7}  previous: {}; next: {}",
                r["request"].as_str().unwrap_or(""),
                r["characters"].as_u64().unwrap_or(0),
                if r["cached"].as_bool() == Some(true) {
                    "cached"
                } else {
                    "to send"
                },
                context(&r["previous"]),
                context(&r["next"]),
            );
        }
    }
    let t = &doc["totals"];
    println!(
        "  total: {} segments, {} requests, {} characters, {} cached, about {} credits to render",
        t["segments"],
        t["requests"],
        t["characters"],
        t["cached"],
        t["estimated_credits"].as_f64().unwrap_or(0.0)
    );
}

/// Runs `f` against the endpoint of `api`, starting an emulator for `--emulate`.
async fn with_client<T>(
    api: &cli::ApiArgs,
    env_key: Option<String>,
    f: impl AsyncFnOnce(&Client) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let endpoint = cli::endpoint(api, env_key, true)?;
    let (client, emulator) = connect(&endpoint, std::time::Duration::from_secs(60)).await?;
    let result = f(&client).await;
    if let Some(e) = emulator {
        e.stop().await;
    }
    result
}

async fn voices_command(args: &cli::VoicesArgs, env_key: Option<String>) -> anyhow::Result<u8> {
    let search = args.search.clone();
    let json = args.json;
    with_client(&args.api, env_key, async move |client: &Client| {
        let voices = fetch_voices(client, search.as_deref()).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&voices)?);
            return Ok(EXIT_OK);
        }
        println!(
            "{:<22} {:<12} {:<10} {:<8} {:<11} description",
            "voice_id", "name", "category", "gender", "accent"
        );
        for v in &voices {
            println!(
                "{:<22} {:<12} {:<10} {:<8} {:<11} {}",
                v["voice_id"].as_str().unwrap_or(""),
                v["name"].as_str().unwrap_or(""),
                v["category"].as_str().unwrap_or(""),
                v["labels"]["gender"].as_str().unwrap_or(""),
                v["labels"]["accent"].as_str().unwrap_or(""),
                v["description"].as_str().unwrap_or("")
            );
        }
        Ok(EXIT_OK)
    })
    .await
}

async fn models_command(args: &cli::ModelsArgs, env_key: Option<String>) -> anyhow::Result<u8> {
    let json = args.json;
    with_client(&args.api, env_key, async move |client: &Client| {
        let models = client
            .get_json("/v1/models", &[])
            .await
            .context("GET /v1/models")?;
        if json {
            println!("{}", serde_json::to_string_pretty(&models)?);
            return Ok(EXIT_OK);
        }
        println!(
            "{:<24} {:>9} {:>8} {:>9}  name",
            "model_id", "max_chars", "credits", "languages"
        );
        for m in models.as_array().into_iter().flatten() {
            println!(
                "{:<24} {:>9} {:>8} {:>9}  {}",
                m["model_id"].as_str().unwrap_or(""),
                m["maximum_text_length_per_request"]
                    .as_u64()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                m["model_rates"]["character_cost_multiplier"]
                    .as_f64()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                m["languages"].as_array().map_or(0, Vec::len),
                m["name"].as_str().unwrap_or("")
            );
        }
        Ok(EXIT_OK)
    })
    .await
}

async fn emulate_command(args: &cli::EmulateArgs) -> anyhow::Result<u8> {
    let tier = args.tier.parse().map_err(|e: String| cli::UsageError(e))?;
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err(cli::UsageError(format!(
            "--fault-rate {}: a probability, between 0 and 1",
            args.fault_rate
        ))
        .into());
    }
    if !(args.latency_per_char_ms.is_finite()
        && (0.0..=10_000.0).contains(&args.latency_per_char_ms))
    {
        return Err(cli::UsageError(format!(
            "--latency-per-char-ms {}: expected milliseconds between 0 and 10000",
            args.latency_per_char_ms
        ))
        .into());
    }
    let header_timeout = std::time::Duration::try_from_secs_f64(args.header_timeout)
        .ok()
        .filter(|d| !d.is_zero() && *d <= std::time::Duration::from_secs(3600))
        .ok_or_else(|| {
            cli::UsageError(format!(
                "--header-timeout {}: expected seconds between 0 and 3600",
                args.header_timeout
            ))
        })?;
    if args.max_connections == 0 {
        return Err(cli::UsageError("--max-connections must be at least 1".into()).into());
    }
    let config = emulator::Config {
        api_key: args.api_key.clone(),
        tier,
        character_limit: args.quota,
        latency_ms: args.latency_ms,
        latency_per_char_ms: args.latency_per_char_ms,
        request_log: args.request_log.clone(),
        faults: emulator::Faults {
            rate: args.fault_rate,
            seed: args.fault_seed,
            kinds: args
                .faults
                .iter()
                .map(|f| f.parse())
                .collect::<Result<_, String>>()
                .map_err(cli::UsageError)?,
        },
        max_connections: args.max_connections,
        header_timeout,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| cli::UsageError(format!("--listen {}: {e}", args.listen)))?;
    let addr = listener.local_addr()?;
    let state = emulator::Emulator::new(config).map_err(|e| cli::UsageError(e.to_string()))?;
    println!("narrate emulator listening on http://{addr}");
    eprintln!(
        "point narrate at it with --base-url http://{addr} (any non-empty key); Ctrl-C stops it"
    );
    emulator::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(EXIT_OK)
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
