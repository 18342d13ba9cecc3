//! `narrate render`: load every manifest, check offline all that can be checked, then render the
//! jobs together under one client, limiter and concurrency cap, and assemble and report each.
//!
//! The order is the promise "nothing sent, nothing written on exit 2": ids, outputs, locks and
//! budgets are checked before the first request; the remembered model limits are written only
//! once the run is certain to start. Not responsible for the summary lines (see `summary`) or
//! the stages themselves.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;

use crate::api::Client;
use crate::audio::layout::{output_files, pieces};
use crate::cli::args::OtherChapters;
use crate::cli::{RenderConfig, Split};
use crate::error::UsageError;
use crate::execute::{Estimate, Outcome, Runner, Settings};
use crate::manifest::Job;
use crate::output::report::{self, Report, Status};
use crate::plan::{Limits, Plan};
use crate::session::Session;
use crate::state::{Cache, StateDir};
use crate::{audio, execute, files, manifest, output, plan, progress, signals};

/// What rendering one manifest produced.
pub struct Rendered {
    pub job: Job,
    pub report: Report,
    pub report_paths: (PathBuf, PathBuf),
}

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

/// Renders every manifest of `config`; the exit status is 0 only if all of them succeeded.
pub async fn render(config: RenderConfig) -> anyhow::Result<u8> {
    let manifests = distinct_manifests(&config.manifests);
    let mut jobs = super::load_jobs(&manifests, &config.defaults, config.output.as_deref())?;
    if let Some(library) = &config.library {
        for job in &mut jobs {
            let (folder, audio) = output::library::place(job, library);
            job.output = audio;
            job.library_folder = Some(folder);
        }
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
    Ok(super::summary::print(&rendered))
}

/// The caches of the jobs, with the state directories' locks held while they live. Without a
/// cache (`--no-cache`), responses still pass through a scratch directory so memory stays flat.
pub(crate) struct Caches {
    caches: Vec<Cache>,
    _locks: Vec<std::fs::File>,
    _scratch: Option<tempfile::TempDir>,
}

impl Caches {
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
    for id in &config.only {
        if !jobs.iter().any(|j| j.segments.iter().any(|s| s.id == *id)) {
            return Err(UsageError(format!("--only {id}: no segment has this id")).into());
        }
    }
    let split = config.split == Split::Chapters;
    output::check_outputs(jobs, split, config.endpoint.key_file.as_deref())?;
    if let Some(job) = jobs.iter().find(|j| {
        j.output
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("m4b"))
    }) {
        crate::audio::m4b::check_ffmpeg()
            .map_err(|why| UsageError(format!("{}: {why}", job.manifest.display())))?;
    }
    let caches = Caches::open(config, jobs)?;
    for job in jobs {
        for (path, _, _) in output_files(job, split) {
            let removed = files::remove_leftovers(&path);
            if removed > 0 {
                tracing::info!(output = %path.display(), removed, "removed temporary files of an earlier run that was killed");
            }
        }
    }
    Ok(caches)
}

/// Renders loaded jobs, sharing one client, limiter and cap; writes outputs and reports.
pub async fn render_jobs(config: &RenderConfig, jobs: Vec<Job>) -> anyhow::Result<Vec<Rendered>> {
    let source = config.endpoint.source();
    let caches = check_offline(config, &jobs)?;
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

    let session = Session::connect(&config.endpoint, config.request_timeout).await?;
    let fetched = session.client.limits().await;
    let limits = fetched.clone().unwrap_or(saved_limits);
    let mut jobs = jobs;
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
    let pairs: Vec<(&Job, &Cache)> = jobs.iter().zip(&caches.caches).collect();
    let (plans, total) = estimate_all(config, &pairs, &limits, &source, true)?;
    if total.requests > 0 {
        check_balance(&session.client, &total).await?;
    }
    if let (Some(limits), Some(state)) = (&fetched, &state) {
        state.remember_limits(limits);
    }
    let total_requests: usize = plans.iter().map(|p| p.requests.len()).sum();
    let progress = progress::Progress::new(total_requests as u64, config.progress);
    let runner = Arc::new(Runner::new(
        session.client.clone(),
        settings(config, source),
        progress,
    ));
    // Every chain of every job is known before the first slot is handed out, so the longest
    // goes first from the start (a chain that stitches asks as one, the others per request).
    let participants: usize = plans
        .iter()
        .flat_map(|p| {
            p.chains
                .iter()
                .map(move |c| if c.sequential(p) { 1 } else { c.requests.len() })
        })
        .sum();
    runner.slots.expect(participants);
    let signals = tokio::spawn(signals::stop_on_signals(runner.clone()));
    let tasks = jobs
        .into_iter()
        .zip(plans)
        .zip(caches.caches.iter().cloned())
        .map(|((job, plan), cache)| render_job(runner.clone(), job, plan, cache));
    let results = futures::future::join_all(tasks).await;
    runner.progress.finish();
    signals.abort();
    session.close().await;
    for cache in &caches.caches {
        cache.compact_journal();
    }
    drop(caches);
    results.into_iter().collect()
}

/// The execution settings of a render.
pub(crate) fn settings(config: &RenderConfig, source: String) -> Settings {
    Settings {
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
        split_chapters: config.split == Split::Chapters,
        gapless: config.gapless,
        timestamps: config.timestamps,
        jobs: config.jobs,
    }
}

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
        let e = execute::estimate(job, &plan, Some(cache), source);
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

/// Renders one job: its requests, then (when all succeeded and no signal came) its audio, then
/// its reports and, on success, its side files.
pub(crate) async fn render_job(
    runner: Arc<Runner>,
    job: Job,
    plan: Plan,
    cache: Cache,
) -> anyhow::Result<Rendered> {
    let started = SystemTime::now();
    let job = Arc::new(job);
    let plan = Arc::new(plan);
    let published = cache.published_dir();
    let outcomes =
        execute::execute(runner.clone(), job.clone(), plan.clone(), Arc::new(cache)).await;
    let all_ok = outcomes.iter().all(|o| o.audio.is_some());
    // An interrupted run never replaces the previous output, even when every request is done.
    let assembled = if all_ok && !runner.was_interrupted() {
        Some(assemble(&runner, &job, &plan, &outcomes, &published))
    } else {
        None
    };
    let (files, request_spans, peaks, assembly_error) = match assembled {
        Some(Ok((files, spans, peaks))) => (files, spans, peaks, None),
        Some(Err(e)) => (Vec::new(), Vec::new(), Vec::new(), Some(e)),
        None => (Vec::new(), Vec::new(), Vec::new(), None),
    };
    let split = runner.settings.split_chapters;
    let assembled_all = all_ok && assembly_error.is_none() && !runner.was_interrupted();
    let timeline = assembled_all.then(|| report::Timeline {
        files: files.iter().map(|(path, p)| (path.as_path(), p)).collect(),
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
        output::audiobook::audiobook(&job, &mut rep);
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
            s.status = Status::Failed;
            s.error.get_or_insert_with(|| why.clone());
        }
        rep.status = Status::Failed;
    }
    let report_paths = report::write(&rep, &job.output)?;
    write_side_files(&runner, &job, &plan, &outcomes, &rep)?;
    if rep.status == Status::Ok {
        write_review(&job, &plan, &rep, &report_paths.0, &peaks)?;
    }
    let job = Arc::try_unwrap(job).unwrap_or_else(|j| (*j).clone());
    Ok(Rendered {
        job,
        report: rep,
        report_paths,
    })
}

/// Where each request landed: the file it is in, its sample span there, and what was trimmed.
pub(crate) type Spans = Vec<(usize, std::ops::Range<u64>, audio::Edit)>;

/// What assembling a job gives: its files with their placements, where each request landed,
/// and each request's waveform.
pub(crate) type Assembled = (Vec<(PathBuf, audio::Placement)>, Spans, Vec<Vec<u8>>);

/// The review page of a successful render, with each segment's text and waveform beside it.
fn write_review(
    job: &Job,
    plan: &Plan,
    rep: &Report,
    report_path: &std::path::Path,
    peaks: &[Vec<u8>],
) -> anyhow::Result<()> {
    use crate::output::review;
    let segments = job
        .segments
        .iter()
        .enumerate()
        .map(|(si, s)| {
            let all: Vec<u8> = plan.segment_requests[si]
                .iter()
                .flat_map(|&r| peaks.get(r).cloned().unwrap_or_default())
                .collect();
            review::SegmentData {
                id: s.id.clone(),
                text: s.text.clone(),
                peaks: review::downsample(&all),
            }
        })
        .collect();
    let data = review::ReviewData {
        title: job.title.clone(),
        segments,
    };
    let value = serde_json::to_value(rep)?;
    review::write(&value, report_path, &data)
        .with_context(|| format!("writing the review page of {}", job.output.display()))?;
    Ok(())
}

/// Assembles every output file of a job (one, or one per chapter) from its rendered requests:
/// with `--split chapters`, up to `--jobs` files at once, each decoding on one thread (memory
/// stays one response per file). A file already there, made from the same inputs and intact,
/// is kept (its record is in `published`, see `output::published`).
pub(crate) fn assemble(
    runner: &Runner,
    job: &Job,
    plan: &Plan,
    outcomes: &[Outcome],
    published: &std::path::Path,
) -> Result<Assembled, audio::AudioError> {
    let split = runner.settings.split_chapters;
    let files = output_files(job, split);
    let jobs = runner.settings.jobs.clamp(1, files.len().max(1));
    let one = |k: usize| -> Result<(audio::Placement, Vec<(usize, usize)>), audio::AudioError> {
        let (path, range, chapter) = &files[k];
        let (pieces, index, chapters) = pieces(job, plan, outcomes, range.clone());
        let options = audio::Options {
            tags: audio::tags::TagSpec {
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
                narrator: job.narrator.clone(),
                year: job.year.clone(),
                description: job.description.clone(),
                cover: job.cover.clone(),
                chapters: if split { Vec::new() } else { chapters },
            },
            measure: runner.settings.loudness,
            loudness_target: runner.settings.loudness_target,
            trim_silence: job.trim_silence,
            encode_mp3: runner.settings.gapless,
            rf64_above_bytes: None,
            cancel: Some(runner.cancel.clone()),
            // For the review page.
            waveform: true,
            decode_threads: (jobs > 1).then_some(1),
        };
        let ids = piece_ids(&pieces, &index, outcomes);
        let fingerprint =
            output::published::fingerprint(path, job.output_format, &options, ids.as_deref());
        if let Some(p) = fingerprint
            .as_deref()
            .and_then(|f| output::published::reusable(published, path, f))
        {
            tracing::info!(output = %path.display(), "unchanged since it was published; kept");
            return Ok((p, index));
        }
        tracing::info!(output = %path.display(), "assembling");
        let p = audio::assemble(&pieces, job.output_format, path, &options)?;
        if let Some(f) = &fingerprint {
            output::published::remember(published, path, f, &p);
        }
        Ok((p, index))
    };
    // One result per file; `None` for a file not started because another failed.
    let results: Vec<Option<Result<_, audio::AudioError>>> = if jobs == 1 {
        (0..files.len()).map(|k| Some(one(k))).collect()
    } else {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done: Vec<std::sync::Mutex<Option<Result<_, audio::AudioError>>>> = (0..files.len())
            .map(|_| std::sync::Mutex::new(None))
            .collect();
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| {
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if k >= files.len() {
                            return;
                        }
                        let result = one(k);
                        let failed = result.is_err();
                        if let Ok(mut slot) = done[k].lock() {
                            *slot = Some(result);
                        }
                        if failed {
                            // The others stop at their next response.
                            next.store(files.len(), std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        done.into_iter()
            .map(|m| m.into_inner().ok().flatten())
            .collect()
    };
    let mut assembled: Vec<(PathBuf, audio::Placement)> = Vec::new();
    let mut request_spans = vec![(0, 0..0, audio::Edit::default()); plan.requests.len()];
    let mut request_peaks = vec![Vec::new(); plan.requests.len()];
    // The first failure in file order is the one reported.
    if let Some(e) = results.iter().position(|r| matches!(r, Some(Err(_)))) {
        if let Some(Some(Err(error))) = results.into_iter().nth(e) {
            return Err(error);
        }
        return Err(audio::AudioError::Interrupted);
    }
    for ((path, _, _), result) in files.iter().zip(results) {
        let Some(Ok((p, index))) = result else {
            return Err(audio::AudioError::Interrupted);
        };
        for (r, i) in index {
            request_spans[r] = (assembled.len(), p.spans[i].clone(), p.edits[i]);
            request_peaks[r] = p.peaks.get(i).cloned().unwrap_or_default();
        }
        assembled.push((path.clone(), p));
    }
    Ok((assembled, request_spans, request_peaks))
}

/// What each piece of a file is made from, for its record; `None` when a response's audio has
/// no recorded hash (a cache entry from before narrate stored one).
fn piece_ids(
    pieces: &[audio::Piece<'_>],
    index: &[(usize, usize)],
    outcomes: &[Outcome],
) -> Option<Vec<output::published::PieceId>> {
    use output::published::PieceId;
    let mut request_of = vec![None; pieces.len()];
    for &(r, i) in index {
        if let Some(slot) = request_of.get_mut(i) {
            *slot = Some(r);
        }
    }
    pieces
        .iter()
        .zip(request_of)
        .map(|(piece, r)| match piece {
            audio::Piece::Silence { ms } => Some(PieceId::Silence { ms: *ms }),
            audio::Piece::Audio { path, segment } => {
                let meta = outcomes.get(r?)?.meta.as_ref()?;
                Some(PieceId::Audio {
                    file: path.file_name()?.to_string_lossy().into_owned(),
                    request_id: meta.request_id.clone(),
                    sha256: meta.sha256.clone()?,
                    segment: *segment,
                })
            }
        })
        .collect()
}

/// The side files of a successful render (chapters, CUE, captions, playlist), with a warning
/// when cached audio has no character timings for word-timed captions.
pub(crate) fn write_side_files(
    runner: &Runner,
    job: &Job,
    plan: &Plan,
    outcomes: &[Outcome],
    rep: &Report,
) -> anyhow::Result<()> {
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
    if rep.status == Status::Ok {
        output::sidefiles::write(job, plan, rep, &alignments)
            .with_context(|| format!("writing the side files of {}", job.output.display()))?;
    }
    Ok(())
}
