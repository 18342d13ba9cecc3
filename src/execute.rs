//! Execution: the plan's requests sent through the cache, a shared rate limiter and concurrency
//! cap, with retries by cause. Chains run concurrently, longest first; within a chain that
//! stitches, each request waits for its predecessor's body.
//!
//! Not responsible for splitting (see `plan`) or assembling audio (see `audio`).

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::api::{ApiError, Client, Disposition, TtsBody};
use crate::audio;
use crate::cache::{self, Cache, Meta};
use crate::format::{Codec, OutputFormat};
use crate::manifest::Job;
use crate::plan::{self, Context, Done, Plan};

/// How many requests may be in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Concurrency {
    /// Start at 2, follow `maximum-concurrent-requests`, halve on concurrency 429s.
    Auto,
    /// At most this many; still lowered on concurrency 429s.
    Fixed(usize),
}

/// Execution settings shared by all manifests of a run.
#[derive(Clone, Debug)]
pub struct Settings {
    pub concurrency: Concurrency,
    /// Requests per second, every attempt counted; `None` for no limit.
    pub rate: Option<NonZeroU32>,
    pub max_retries: u32,
    /// First backoff step; doubles each retry, with full jitter.
    pub retry_base: Duration,
    /// Longest wait between attempts, `Retry-After` included.
    pub retry_cap: Duration,
    /// Cache key namespace: `emulator` or the API's base URL.
    pub source: String,
    /// Whether the audio is synthetic (rendered by the built-in emulator).
    pub synthetic: bool,
    /// Credits this run may spend (`--max-credits`).
    pub max_credits: Option<f64>,
    /// Retryable failures in a row, across all requests, after which the run stops.
    pub breaker_threshold: u32,
    /// Added to the system clock when judging how old a request id is (a test seam).
    pub clock_offset: Duration,
    /// Measure loudness while assembling (`--loudness`).
    pub loudness: bool,
    /// Normalize WAV output to this integrated loudness (`--loudness-target`).
    pub loudness_target: Option<f64>,
    /// Check the output against audiobook (ACX-style) requirements (`--audiobook`).
    pub audiobook: bool,
    /// One output file per chapter (`--split chapters`).
    pub split_chapters: bool,
    /// Encode `.mp3` output from the joined samples (`--gapless`).
    pub gapless: bool,
    /// Render through `/with-timestamps` and keep the character timings (`--timestamps`).
    pub timestamps: bool,
}

/// The adjustable concurrency cap shared by every chain of the run. A freed slot goes to the
/// waiting request with the most work left in its chain, so the longest chain never waits
/// behind short ones (it bounds the run's length).
pub struct Slots {
    state: Mutex<SlotState>,
    auto: bool,
}

struct SlotState {
    limit: usize,
    ceiling: usize,
    in_flight: usize,
    /// Waiters by (priority, arrival), highest priority first, then first come.
    waiting:
        std::collections::BTreeMap<(std::cmp::Reverse<u64>, u64), tokio::sync::oneshot::Sender<()>>,
    arrivals: u64,
}

impl SlotState {
    /// Hands free slots to the best waiters.
    fn grant(&mut self) {
        while self.in_flight < self.limit {
            let Some((_, waiter)) = self.waiting.pop_first() else {
                return;
            };
            if waiter.send(()).is_ok() {
                self.in_flight += 1;
            }
        }
    }
}

/// A held slot; dropping it frees the slot.
pub struct Slot<'a>(&'a Slots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().expect("slots lock");
        s.in_flight -= 1;
        s.grant();
    }
}

impl Slots {
    pub fn new(concurrency: Concurrency) -> Self {
        let (limit, ceiling, auto) = match concurrency {
            Concurrency::Auto => (2, 64, true),
            Concurrency::Fixed(n) => (n.max(1), n.max(1), false),
        };
        Slots {
            state: Mutex::new(SlotState {
                limit,
                ceiling,
                in_flight: 0,
                waiting: std::collections::BTreeMap::new(),
                arrivals: 0,
            }),
            auto,
        }
    }

    /// Waits for a slot; `priority` is the work left in the caller's chain.
    pub async fn acquire(&self, priority: u64) -> Slot<'_> {
        let granted = {
            let mut s = self.state.lock().expect("slots lock");
            if s.in_flight < s.limit && s.waiting.is_empty() {
                s.in_flight += 1;
                return Slot(self);
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            s.arrivals += 1;
            let arrival = s.arrivals;
            s.waiting.insert((std::cmp::Reverse(priority), arrival), tx);
            rx
        };
        // The sender lives in the map until granted; it is never dropped unsent.
        let _ = granted.await;
        Slot(self)
    }

    /// After a success: in auto mode, grow by one towards the account's maximum.
    fn on_success(&self, account_max: Option<usize>) {
        if !self.auto {
            return;
        }
        let mut s = self.state.lock().expect("slots lock");
        if let Some(max) = account_max {
            s.ceiling = max.max(1);
        }
        s.limit = (s.limit + 1).min(s.ceiling);
        s.grant();
    }

    /// After a concurrency 429: halve the cap (never below 1).
    fn on_too_many(&self) {
        let mut s = self.state.lock().expect("slots lock");
        s.limit = (s.limit / 2).max(1);
        s.ceiling = s.ceiling.min(s.in_flight.max(1));
    }

    /// The priority of the most urgent waiter, if any waits.
    fn best_waiting(&self) -> Option<u64> {
        let s = self.state.lock().expect("slots lock");
        s.waiting.keys().next().map(|(std::cmp::Reverse(p), _)| *p)
    }

    /// The current cap.
    pub fn limit(&self) -> usize {
        self.state.lock().expect("slots lock").limit
    }
}

/// What one run shares across manifests: client, limiter, cap, and the stop flag.
pub struct Runner {
    pub client: Client,
    pub settings: Settings,
    pub slots: Slots,
    limiter: Option<DefaultDirectRateLimiter>,
    pub progress: crate::progress::Progress,
    stopped: AtomicBool,
    stop_reason: Mutex<Option<String>>,
    interrupted: AtomicBool,
    /// Set with `interrupted`: assembly in progress stops and leaves the previous output.
    pub cancel: Arc<AtomicBool>,
    /// Retryable failures since the last success (the circuit breaker).
    failures_in_a_row: AtomicU32,
    budget: Mutex<Budget>,
}

/// Credits charged and reserved for requests in flight, against `--max-credits`.
#[derive(Default)]
struct Budget {
    spent: f64,
    reserved: f64,
}

impl Runner {
    pub fn new(client: Client, settings: Settings, progress: crate::progress::Progress) -> Self {
        let limiter = settings
            .rate
            .map(|r| RateLimiter::direct(Quota::per_second(r)));
        Runner {
            client,
            slots: Slots::new(settings.concurrency),
            settings,
            limiter,
            progress,
            stopped: AtomicBool::new(false),
            stop_reason: Mutex::new(None),
            interrupted: AtomicBool::new(false),
            cancel: Arc::new(AtomicBool::new(false)),
            failures_in_a_row: AtomicU32::new(0),
            budget: Mutex::new(Budget::default()),
        }
    }

    /// The time used for request-id ages and cache records.
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + self.settings.clock_offset
    }

    /// Stops sending (SIGINT, SIGTERM): requests in flight finish and are cached.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        self.cancel.store(true, Ordering::SeqCst);
        self.stop("interrupted".into());
    }

    /// Whether the run was interrupted by a signal.
    pub fn was_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Credits charged so far in this run.
    pub fn credits_spent(&self) -> f64 {
        self.budget.lock().expect("budget lock").spent
    }

    /// Reserves `estimate` credits, or says why the budget does not allow it.
    fn reserve(&self, estimate: f64) -> Result<(), String> {
        let mut b = self.budget.lock().expect("budget lock");
        if let Some(max) = self.settings.max_credits
            && b.spent + b.reserved + estimate > max
        {
            return Err(format!(
                "not sent: --max-credits {max} would be exceeded ({} spent, {} in flight, {estimate} needed)",
                b.spent, b.reserved
            ));
        }
        b.reserved += estimate;
        Ok(())
    }

    /// Releases a reservation and records what was actually charged.
    fn settle(&self, estimate: f64, charged: f64) {
        let mut b = self.budget.lock().expect("budget lock");
        b.reserved = (b.reserved - estimate).max(0.0);
        b.spent += charged;
    }

    /// Why the run was stopped (a 401), if it was.
    pub fn stop_reason(&self) -> Option<String> {
        self.stop_reason.lock().expect("stop lock").clone()
    }

    fn stop(&self, reason: String) {
        let mut r = self.stop_reason.lock().expect("stop lock");
        if r.is_none() {
            *r = Some(reason);
        }
        self.stopped.store(true, Ordering::SeqCst);
    }
}

/// What happened to one request.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The stored response, when the request succeeded.
    pub audio: Option<PathBuf>,
    /// Its stored character timings (with `--timestamps`).
    pub alignment: Option<PathBuf>,
    pub meta: Option<Meta>,
    pub cached: bool,
    pub attempts: u32,
    /// The HTTP status of each attempt (0 for no answer).
    pub statuses: Vec<u16>,
    /// Time of the successful attempt.
    pub latency_ms: Option<u64>,
    pub context: Context,
    pub error: Option<String>,
    /// Rendered again although cached (`--only`).
    pub regenerated: bool,
    /// Credits charged for attempts whose audio never arrived whole (a 200 whose body was cut,
    /// too long or undecodable): generated and billed, but unusable.
    pub charged_undelivered: f64,
    /// The cache write still in progress, awaited at the end of [`execute`].
    write: Option<PendingWrite>,
}

/// A cache write running on the blocking pool.
#[derive(Clone)]
struct PendingWrite(Arc<Mutex<Option<tokio::task::JoinHandle<std::io::Result<PathBuf>>>>>);

impl std::fmt::Debug for PendingWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingWrite")
    }
}

/// When a chain has requests to regenerate, what the cache holds for each of its positions:
/// the ids a regenerated request may send as `next_request_ids`.
fn cached_ahead(
    runner: &Runner,
    job: &Job,
    plan: &Plan,
    cache: &Cache,
    chain: usize,
) -> Vec<Option<Done>> {
    let requests = &plan.chains[chain].requests;
    if !requests.iter().any(|&r| plan.regenerate[r]) {
        return Vec::new();
    }
    let format = job.output_format.to_string();
    requests
        .iter()
        .map(|&r| {
            let segment = &job.segments[plan.requests[r].segment];
            let body = body_for(job, plan, r, &Context::default());
            let key = cache::key(&segment.voice_id, &format, &body, &runner.settings.source);
            cache.get(&key).map(|(meta, _)| Done {
                request_id: meta.request_id.clone(),
                issued: meta.issued(),
            })
        })
        .collect()
}

/// Renders every request of `plan`, returning one outcome per request in plan order.
pub async fn execute(
    runner: Arc<Runner>,
    job: Arc<Job>,
    plan: Arc<Plan>,
    cache: Arc<Cache>,
) -> Vec<Outcome> {
    let mut order: Vec<usize> = (0..plan.chains.len()).collect();
    let work = |c: usize| -> usize {
        plan.chains[c]
            .requests
            .iter()
            .map(|&r| plan.requests[r].text.len())
            .sum()
    };
    // Longest chain first: it bounds the run's length.
    order.sort_by_key(|&c| std::cmp::Reverse(work(c)));
    let mut tasks = tokio::task::JoinSet::new();
    for c in order {
        let chain = &plan.chains[c];
        if chain.sequential(&plan) {
            let (runner, job, plan, cache) =
                (runner.clone(), job.clone(), plan.clone(), cache.clone());
            tasks.spawn(async move {
                let chain = &plan.chains[c];
                let ahead = cached_ahead(&runner, &job, &plan, &cache, c);
                let mut done: Vec<Option<Done>> = vec![None; chain.requests.len()];
                let mut out = Vec::new();
                // The slot of a request that succeeded passes to the chain's next request, so
                // a chain never queues behind others between its own requests.
                let mut held: Option<Slot<'_>> = None;
                for (pos, &r) in chain.requests.iter().enumerate() {
                    let context = plan::context_for(&plan, r, &done, &ahead, runner.now());
                    let (outcome, slot) =
                        render(&runner, &job, &plan, &cache, r, context, held.take()).await;
                    // Keep the slot for the next request unless another chain with more work
                    // left is waiting: longest remaining work first.
                    held = slot.filter(|_| {
                        let next = chain
                            .requests
                            .get(pos + 1)
                            .map_or(0, |&n| remaining_work(&plan, n));
                        next > 0 && runner.slots.best_waiting().is_none_or(|best| best <= next)
                    });
                    done[pos] = Some(Done {
                        request_id: outcome.meta.as_ref().and_then(|m| m.request_id.clone()),
                        issued: outcome.meta.as_ref().map_or(runner.now(), Meta::issued),
                    });
                    out.push((r, outcome));
                }
                out
            });
        } else {
            for &r in &chain.requests {
                let (runner, job, plan, cache) =
                    (runner.clone(), job.clone(), plan.clone(), cache.clone());
                tasks.spawn(async move {
                    let context = plan::context_for(&plan, r, &[], &[], runner.now());
                    vec![(
                        r,
                        render(&runner, &job, &plan, &cache, r, context, None)
                            .await
                            .0,
                    )]
                });
            }
        }
    }
    let mut outcomes = vec![Outcome::default(); plan.requests.len()];
    while let Some(result) = tasks.join_next().await {
        for (r, outcome) in result.expect("render task panicked") {
            outcomes[r] = outcome;
        }
    }
    for outcome in &mut outcomes {
        let Some(write) = outcome.write.take() else {
            continue;
        };
        let handle = write.0.lock().expect("write lock").take();
        if let Some(handle) = handle {
            let stored = handle
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            if let Err(e) = stored {
                outcome.audio = None;
                outcome.error = Some(format!("cannot store the response: {e}"));
            }
        }
    }
    outcomes
}

/// What rendering a plan would still cost: requests not in the cache and their estimated
/// credits (characters × the model's rate).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Estimate {
    pub requests: usize,
    /// The first segment with an uncached request that is not being regenerated (`--only`
    /// needs everything else cached).
    pub missing: Option<usize>,
    pub cached: usize,
    pub characters: usize,
    pub credits: f64,
}

/// Estimates the uncached work of a plan.
pub fn estimate(job: &Job, plan: &Plan, cache: Option<&Cache>, source: &str) -> Estimate {
    let format = job.output_format.to_string();
    let mut e = Estimate::default();
    for (r, request) in plan.requests.iter().enumerate() {
        let segment = &job.segments[request.segment];
        let body = body_for(job, plan, r, &Context::default());
        let key = cache::key(&segment.voice_id, &format, &body, source);
        if !plan.regenerate[r] && cache.is_some_and(|c| c.get(&key).is_some()) {
            e.cached += 1;
            continue;
        }
        let chars = request.text.chars().count();
        if !plan.regenerate[r] {
            e.missing.get_or_insert(request.segment);
        }
        e.requests += 1;
        e.characters += chars;
        e.credits += chars as f64
            * crate::models::find(&segment.model_id).map_or(1.0, |m| m.credits_per_char);
    }
    e
}

/// The body of request `r` with its context.
pub fn body_for(job: &Job, plan: &Plan, r: usize, context: &Context) -> TtsBody {
    let request = &plan.requests[r];
    let segment = &job.segments[request.segment];
    TtsBody {
        text: request.text.clone(),
        model_id: segment.model_id.clone(),
        language_code: segment.language_code.clone(),
        voice_settings: segment.voice_settings.clone(),
        pronunciation_dictionary_locators: segment.pronunciation_dictionary_locators.clone(),
        seed: segment.seed,
        previous_text: context.previous_text.clone(),
        next_text: context.next_text.clone(),
        previous_request_ids: context.previous_request_ids.clone(),
        next_request_ids: context.next_request_ids.clone(),
        apply_text_normalization: segment.apply_text_normalization.clone(),
    }
}

/// Renders one request and counts it in the progress bar. `held` is a slot handed over by the
/// chain's previous request; after a success the slot is handed back for the next one.
async fn render<'a>(
    runner: &'a Runner,
    job: &Job,
    plan: &Plan,
    cache: &Cache,
    r: usize,
    context: Context,
    held: Option<Slot<'a>>,
) -> (Outcome, Option<Slot<'a>>) {
    let (outcome, slot) = render_once(runner, job, plan, cache, r, context, held).await;
    let credits = match (&outcome.meta, outcome.cached) {
        (Some(m), false) => m.credits.unwrap_or(0.0),
        _ => 0.0,
    };
    runner
        .progress
        .request_done(plan.requests[r].text.chars().count(), credits);
    (outcome, slot)
}

async fn render_once<'a>(
    runner: &'a Runner,
    job: &Job,
    plan: &Plan,
    cache: &Cache,
    r: usize,
    context: Context,
    mut held: Option<Slot<'a>>,
) -> (Outcome, Option<Slot<'a>>) {
    let request = &plan.requests[r];
    let segment = &job.segments[request.segment];
    let format = job.output_format.to_string();
    let mut body = body_for(job, plan, r, &context);
    let key = cache::key(&segment.voice_id, &format, &body, &runner.settings.source);
    let mut outcome = Outcome {
        context,
        regenerated: plan.regenerate[r],
        ..Outcome::default()
    };
    if !plan.regenerate[r]
        && let Some((meta, path)) = cache.get(&key)
    {
        outcome.audio = Some(path);
        outcome.alignment = meta.alignment.then(|| cache.alignment_path(&key));
        outcome.meta = Some(meta);
        outcome.cached = true;
        return (outcome, held);
    }
    loop {
        let slot = match held.take() {
            Some(slot) => slot,
            None => runner.slots.acquire(remaining_work(plan, r)).await,
        };
        if let Some(limiter) = &runner.limiter {
            limiter.until_ready().await;
        }
        // Checked after waiting: a 401 or a signal may have stopped the run meanwhile.
        if runner.stopped.load(Ordering::SeqCst) {
            outcome.error = Some(format!(
                "not sent: the run was stopped ({})",
                runner.stop_reason().unwrap_or_default()
            ));
            return (outcome, None);
        }
        let estimate = crate::models::find(&segment.model_id).map_or(1.0, |m| m.credits_per_char)
            * request.text.chars().count() as f64;
        if let Err(message) = runner.reserve(estimate) {
            outcome.error = Some(message);
            return (outcome, None);
        }
        outcome.attempts += 1;
        let started = Instant::now();
        let limit = crate::api::audio_body_limit(
            request.text.chars().count(),
            job.output_format.bytes_per_second(),
            runner.settings.timestamps,
        );
        let result = runner
            .client
            .text_to_speech(
                &segment.voice_id,
                &format,
                segment.enable_logging,
                &body,
                runner.settings.timestamps,
                limit,
                estimate,
            )
            .await
            .and_then(
                |response| match check_audio(&response.audio, job.output_format) {
                    Ok(()) => Ok(response),
                    Err(error) => Err(crate::api::TtsFailure {
                        error,
                        charged: Some(response.character_cost.unwrap_or(estimate)),
                    }),
                },
            );
        let slot = if result.is_ok() {
            Some(slot)
        } else {
            drop(slot);
            None
        };
        let charged = match &result {
            Ok(response) => response.character_cost.unwrap_or(estimate),
            Err(failure) => failure.charged.unwrap_or(0.0),
        };
        runner.settle(estimate, charged);
        if let Err(failure) = &result
            && let Some(c) = failure.charged
        {
            outcome.charged_undelivered += c;
            runner.progress.charged(c);
        }
        let result = result.map_err(|failure| failure.error);
        match result {
            Ok(response) => {
                runner.failures_in_a_row.store(0, Ordering::SeqCst);
                outcome.statuses.push(200);
                outcome.latency_ms = Some(started.elapsed().as_millis() as u64);
                runner.slots.on_success(response.max_concurrency);
                let meta = Meta {
                    request_id: response.request_id.clone(),
                    issued_unix: runner
                        .now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64()),
                    credits: response.character_cost,
                    characters: request.text.chars().count(),
                    bytes: response.audio.len() as u64,
                    output_format: format.clone(),
                    synthetic: runner.settings.synthetic,
                    previous_request_ids: body.previous_request_ids.clone(),
                    next_request_ids: body.next_request_ids.clone(),
                    used_previous_text: body.previous_text.is_some(),
                    used_next_text: body.next_text.is_some(),
                    alignment: response.alignment.is_some(),
                    sha256: None,
                };
                // Writing and syncing the files blocks: it runs on the blocking pool while the
                // chain moves on (the next request needs only this one's id), and is awaited
                // before assembly.
                let write = {
                    let (cache, key, audio, alignment, meta) = (
                        cache.clone(),
                        key.clone(),
                        response.audio.clone(),
                        response.alignment.clone(),
                        meta.clone(),
                    );
                    tokio::task::spawn_blocking(move || {
                        cache.put(&key, &audio, alignment.as_ref(), &meta)
                    })
                };
                outcome.audio = Some(cache.audio_path(&key));
                outcome.alignment = meta.alignment.then(|| cache.alignment_path(&key));
                outcome.meta = Some(meta);
                outcome.write = Some(PendingWrite(Arc::new(Mutex::new(Some(write)))));
                return (outcome, slot);
            }
            Err(error) => {
                outcome.statuses.push(error.status().unwrap_or(0));
                let disposition = error.disposition();
                tracing::debug!(segment = %segment.id, attempt = outcome.attempts, %error, "request failed");
                match disposition {
                    Disposition::Fatal => {
                        runner.stop(error.to_string());
                        outcome.error = Some(error.to_string());
                        return (outcome, None);
                    }
                    Disposition::Fail
                        if error.status() == Some(400)
                            && (!body.previous_request_ids.is_empty()
                                || !body.next_request_ids.is_empty()) =>
                    {
                        // The API refused the ids (expired, unknown...): the same request with
                        // text context instead.
                        tracing::warn!(segment = %segment.id, %error, "request ids refused; retrying with text context");
                        outcome.context = plan::text_context(plan, r);
                        body = body_for(job, plan, r, &outcome.context);
                    }
                    Disposition::Fail => {
                        outcome.error = Some(error.to_string());
                        return (outcome, None);
                    }
                    Disposition::Retry | Disposition::RetryLessConcurrency => {
                        let in_a_row = runner.failures_in_a_row.fetch_add(1, Ordering::SeqCst) + 1;
                        if in_a_row >= runner.settings.breaker_threshold {
                            runner.stop(format!(
                                "the API failed {in_a_row} attempts in a row, last: {error}; stopping instead of hammering it"
                            ));
                        }
                        if runner.stopped.load(Ordering::SeqCst) {
                            outcome.error = Some(format!(
                                "{error} (the run was stopped: {})",
                                runner.stop_reason().unwrap_or_default()
                            ));
                            return (outcome, None);
                        }
                        if outcome.attempts > runner.settings.max_retries {
                            outcome.error = Some(format!(
                                "{error} (gave up after {} attempts)",
                                outcome.attempts
                            ));
                            return (outcome, None);
                        }
                        if disposition == Disposition::RetryLessConcurrency {
                            runner.slots.on_too_many();
                        }
                        runner.progress.retried();
                        let wait = backoff(&runner.settings, outcome.attempts, &error);
                        tracing::info!(segment = %segment.id, attempt = outcome.attempts, wait_ms = wait.as_millis() as u64, %error, "retrying");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    }
}

/// Characters left in request `r`'s chain from `r` on: its scheduling priority.
fn remaining_work(plan: &Plan, r: usize) -> u64 {
    let request = &plan.requests[r];
    plan.chains[request.chain].requests[request.pos..]
        .iter()
        .map(|&q| plan.requests[q].text.len() as u64)
        .sum()
}

/// Checks that a response is audio of the expected format; a failure is retried.
fn check_audio(data: &[u8], format: OutputFormat) -> Result<(), ApiError> {
    let bad = |e: audio::AudioError| ApiError::BadAudio(e.to_string());
    match format.codec {
        Codec::Mp3 { .. } => audio::mp3_frames(data).map(|_| ()).map_err(bad),
        Codec::Pcm if !data.len().is_multiple_of(2) => {
            Err(ApiError::BadAudio("odd number of PCM bytes".into()))
        }
        Codec::Wav => audio::decode(data, format).map(|_| ()).map_err(bad),
        _ if data.is_empty() => Err(ApiError::BadAudio("empty body".into())),
        _ => Ok(()),
    }
}

/// The wait before the next attempt: `Retry-After` when given, else full-jitter exponential.
fn backoff(settings: &Settings, attempt: u32, error: &ApiError) -> Duration {
    if let Some(wait) = error.requested_wait() {
        return wait.min(settings.retry_cap);
    }
    let exp = settings
        .retry_base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(settings.retry_cap);
    exp.mul_f64(jitter())
}

/// A number in [0, 1) from the clock's low bits and a counter: enough for jitter.
fn jitter() -> f64 {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let mut x = COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}
