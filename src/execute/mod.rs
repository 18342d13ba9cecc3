//! Execution: the plan's requests sent through the cache, a shared rate limiter and concurrency
//! cap, with retries by cause. Chains run concurrently, longest first; within a chain that
//! stitches, each request waits for its predecessor's body.
//!
//! - `slots`: the concurrency cap, handing freed slots to the chain with the most work left.
//! - `request`: one request: cache, budget, attempt, and what each failure means.
//! - [`estimate`]: a request's cache key and cost ([`RequestKey`]), and what a plan would cost.
//!
//! Not responsible for splitting (see `plan`) or assembling audio (see `audio`).

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::api::{ApiError, Client};
use crate::codec::{self, AudioError};
use crate::format::{Codec, OutputFormat};
use crate::manifest::Job;
use crate::plan::{self, Context, Done, Plan};
use crate::state::cache::{Cache, Meta};

pub(crate) mod estimate;
mod recover;
mod request;
pub(crate) mod slots;
mod stopping;
mod take;

pub use estimate::{Estimate, RequestKey, body_for, estimate};
use request::remaining_work;
pub use slots::{Slot, Slots};

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
    /// Render through `/with-timestamps` and keep the character timings (`--timestamps`).
    pub timestamps: bool,
    /// Audio cached without character timings is a miss, rendered again (`--retime`).
    pub retime: bool,
    /// Nothing is sent: a request not in the cache fails (`assemble`).
    pub cache_only: bool,
}

/// What a request being rendered needs at hand.
pub(crate) struct Request<'a> {
    pub(crate) runner: &'a Runner,
    pub(crate) job: &'a Job,
    pub(crate) plan: &'a Plan,
    pub(crate) cache: &'a Cache,
    /// Its index in the plan.
    pub(crate) r: usize,
    /// Its chain's (or its own) number among the run's participants for slots.
    pub(crate) participant: u64,
}

/// Checks that a response is audio of the expected format; a failure is retried.
pub(crate) fn check_audio(data: &[u8], format: OutputFormat) -> Result<(), ApiError> {
    let bad = |e: AudioError| ApiError::BadAudio(e.to_string());
    match format.codec {
        Codec::Mp3 { .. } => codec::mp3_frames(data).map(|_| ()).map_err(bad),
        Codec::Pcm if !data.len().is_multiple_of(2) => {
            Err(ApiError::BadAudio("odd number of PCM bytes".into()))
        }
        Codec::Wav => codec::decode(data, format).map(|_| ()).map_err(bad),
        _ if data.is_empty() => Err(ApiError::BadAudio("empty body".into())),
        _ => Ok(()),
    }
}

/// What a run tells as it goes, for whoever shows it (the progress bar); every method is a
/// notice, never a question.
pub trait Observer: Send + Sync {
    /// A request finished (rendered, cached or failed): its characters and the credits it cost.
    fn request_done(&self, characters: usize, credits: f64);
    /// Credits charged for an attempt whose audio did not arrive whole.
    fn charged(&self, credits: f64);
    /// An attempt failed and will be retried.
    fn retried(&self);
}

/// What one run shares across manifests: client, limiter, cap, and the stop flag.
pub struct Runner {
    pub client: Client,
    pub settings: Settings,
    pub slots: Slots,
    limiter: Option<DefaultDirectRateLimiter>,
    /// Hears of each request done, credit charged and retry (the progress bar, in a render).
    pub(crate) observer: Arc<dyn Observer>,
    /// Running, stopped (nothing more sent) or abandoned (nothing more waited for).
    pub(crate) stopping: stopping::Stop,
    stop_reason: Mutex<Option<String>>,
    /// The limit that ended the run early, if one did (the first reached).
    limit: Mutex<Option<Limit>>,
    interrupted: AtomicBool,
    /// Set with `interrupted`: assembly in progress stops and leaves the previous output.
    pub cancel: Arc<AtomicBool>,
    /// Retryable failures since the last success (the circuit breaker).
    failures_in_a_row: AtomicU32,
    budget: Mutex<Budget>,
    /// The history cannot be read with this key (403/404): recovery is off for the run.
    history_unavailable: AtomicBool,
    /// History items taken by requests of this run, so no two take the same.
    used_history: Mutex<std::collections::HashSet<String>>,
}

/// A limit that ends a run before everything is sent; each has its exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// `--max-credits`, or the account's quota (`quota_exceeded`).
    Budget,
    /// `--max-duration`.
    Deadline,
}

/// Credits charged and reserved for requests in flight, against `--max-credits`.
#[derive(Default)]
pub(crate) struct Budget {
    spent: f64,
    reserved: f64,
}

impl Runner {
    /// The runner of one run: the client, the rate limiter and the concurrency cap.
    pub fn new(client: Client, settings: Settings, observer: Arc<dyn Observer>) -> Self {
        let limiter = settings
            .rate
            .map(|r| RateLimiter::direct(Quota::per_second(r)));
        Runner {
            client,
            slots: Slots::new(settings.concurrency),
            settings,
            limiter,
            observer,
            stopping: stopping::Stop::new(),
            stop_reason: Mutex::new(None),
            limit: Mutex::new(None),
            interrupted: AtomicBool::new(false),
            cancel: Arc::new(AtomicBool::new(false)),
            failures_in_a_row: AtomicU32::new(0),
            budget: Mutex::new(Budget::default()),
            history_unavailable: AtomicBool::new(false),
            used_history: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// The time used for request-id ages and cache records.
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + self.settings.clock_offset
    }

    /// Gives up the requests still in flight (a second signal, or the grace after the first):
    /// the run ends with its report. What they may have cost is looked for in the speech
    /// history by the next run, which finds their sends in the journal.
    pub fn abandon(&self) {
        self.interrupt();
        self.stopping.abandon();
    }

    /// Stops sending (SIGINT, SIGTERM): requests in flight finish and are cached.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        self.cancel.store(true, Ordering::SeqCst);
        self.stop("interrupted".into());
    }

    /// The limit that ended the run early, if one did.
    pub fn limit_reached(&self) -> Option<Limit> {
        *self.limit.lock().expect("limit lock")
    }

    /// A limit was reached; with `stop`, nothing more is sent (`reason` says why).
    pub(crate) fn reach_limit(&self, limit: Limit, stop: Option<String>) {
        self.limit.lock().expect("limit lock").get_or_insert(limit);
        if let Some(reason) = stop {
            self.stop(reason);
        }
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
            self.reach_limit(Limit::Budget, None);
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
        self.stopping.stop();
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
    /// The speech-history item its audio was recovered from, instead of paying again.
    pub recovered_from: Option<String>,
    /// Why a request that was sent without an answer could not be recovered, when it could not.
    pub recovery: Option<String>,
    /// Credits charged for attempts whose audio never arrived whole (a 200 whose body was cut,
    /// too long or undecodable): generated and billed, but unusable.
    pub charged_undelivered: f64,
    /// The cache write still in progress, awaited at the end of [`execute`].
    write: Option<PendingWrite>,
}

/// A cache write running on the blocking pool.
#[derive(Clone)]
pub(crate) struct PendingWrite(
    Arc<Mutex<Option<tokio::task::JoinHandle<std::io::Result<PathBuf>>>>>,
);

impl std::fmt::Debug for PendingWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingWrite")
    }
}

/// When a chain has requests to regenerate, what the cache holds for each of its positions:
/// the ids a regenerated request may send as `next_request_ids`.
pub(crate) fn cached_ahead(
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
    requests
        .iter()
        .map(|&r| {
            let key = RequestKey::of(job, plan, r, &runner.settings.source);
            cache.get(&key.key).map(|(meta, _)| Done {
                request_id: meta.request_id.clone(),
                issued: meta.issued(),
            })
        })
        .collect()
}

/// Everything a chain's tasks share.
#[derive(Clone)]
pub(crate) struct Shared {
    runner: Arc<Runner>,
    job: Arc<Job>,
    plan: Arc<Plan>,
    cache: Arc<Cache>,
}

impl Shared {
    fn request(&self, r: usize, participant: u64) -> Request<'_> {
        Request {
            runner: &self.runner,
            job: &self.job,
            plan: &self.plan,
            cache: &self.cache,
            r,
            participant,
        }
    }
}

/// Renders every request of `plan`, returning one outcome per request in plan order.
pub async fn execute(
    runner: Arc<Runner>,
    job: Arc<Job>,
    plan: Arc<Plan>,
    cache: Arc<Cache>,
) -> Vec<Outcome> {
    let shared = Shared {
        runner,
        job,
        plan: plan.clone(),
        cache,
    };
    let work = |c: usize| -> usize {
        plan.chains[c]
            .requests
            .iter()
            .map(|&r| plan.requests[r].text.len())
            .sum()
    };
    // Longest chain first: it bounds the run's length.
    let mut order: Vec<usize> = (0..plan.chains.len()).collect();
    order.sort_by_key(|&c| std::cmp::Reverse(work(c)));
    // A stitching chain is one task; each request of a chain that does not stitch is its own.
    let units: Vec<Unit> = order
        .into_iter()
        .flat_map(|c| -> Vec<Unit> {
            if plan.chains[c].sequential(&plan) {
                vec![Unit::Chain(c)]
            } else {
                plan.chains[c]
                    .requests
                    .iter()
                    .filter(|&&r| !plan.deferred[r])
                    .map(|&r| Unit::Request(r))
                    .collect()
            }
        })
        .collect();
    let mut units = units.into_iter();
    let mut tasks = tokio::task::JoinSet::new();
    let mut outcomes = vec![Outcome::default(); plan.requests.len()];
    loop {
        // At most TASK_WINDOW tasks exist at once, so memory stays flat in the number of
        // requests; the window is far above any concurrency cap, so no slot waits for one.
        while tasks.len() < TASK_WINDOW
            && let Some(unit) = units.next()
        {
            let participant = shared.runner.slots.participant();
            tasks.spawn(run_unit(shared.clone(), unit, participant));
        }
        let Some(result) = tasks.join_next().await else {
            break;
        };
        for (r, outcome) in result.expect("render task panicked") {
            outcomes[r] = outcome;
        }
    }
    outcomes
}

/// The most render tasks one job has at once (the first slots wait for as many, see
/// `Slots::expect`).
pub(crate) const TASK_WINDOW: usize = 1024;

/// What one render task does: a chain that stitches, or one request on its own.
#[derive(Clone, Copy)]
enum Unit {
    Chain(usize),
    Request(usize),
}

/// Runs one unit, then waits for its cache writes (its slot already given back), so a finished
/// task holds no write in progress.
async fn run_unit(shared: Shared, unit: Unit, participant: u64) -> Vec<(usize, Outcome)> {
    let mut out = match unit {
        Unit::Chain(c) => run_chain(shared, c, participant).await,
        Unit::Request(r) => {
            let context = plan::context_for(&shared.plan, r, &[], &[], shared.runner.now());
            let outcome = request::render(shared.request(r, participant), context, None)
                .await
                .0;
            shared.runner.slots.arrive(participant);
            vec![(r, outcome)]
        }
    };
    for (_, outcome) in &mut out {
        settle_write(outcome).await;
    }
    out
}

/// The requests of a chain that stitches, in order: each sends its predecessors' ids.
pub(crate) async fn run_chain(shared: Shared, c: usize, participant: u64) -> Vec<(usize, Outcome)> {
    let (runner, plan) = (&shared.runner, &shared.plan);
    let chain = &plan.chains[c];
    let ahead = cached_ahead(runner, &shared.job, plan, &shared.cache, c);
    let mut done: Vec<Option<Done>> = vec![None; chain.requests.len()];
    let mut out = Vec::new();
    // The slot of a request that succeeded passes to the chain's next request, so a chain never
    // queues behind others between its own requests.
    let mut held: Option<Slot<'_>> = None;
    for (pos, &r) in chain.requests.iter().enumerate() {
        if plan.deferred[r] {
            break;
        }
        let context = plan::context_for(plan, r, &done, &ahead, runner.now());
        let (outcome, slot) =
            request::render(shared.request(r, participant), context, held.take()).await;
        // Keep the slot for the next request unless another chain with more work left is
        // waiting: longest remaining work first.
        held = slot.filter(|_| {
            let next = chain
                .requests
                .get(pos + 1)
                .map_or(0, |&n| remaining_work(plan, n));
            next > 0 && runner.slots.best_waiting().is_none_or(|best| best <= next)
        });
        done[pos] = Some(Done {
            request_id: outcome.meta.as_ref().and_then(|m| m.request_id.clone()),
            issued: outcome.meta.as_ref().map_or(runner.now(), Meta::issued),
        });
        out.push((r, outcome));
    }
    drop(held);
    runner.slots.arrive(participant);
    out
}

/// Waits for one outcome's cache write, if it has one in progress; a response that could not be
/// stored fails its request.
async fn settle_write(outcome: &mut Outcome) {
    let Some(write) = outcome.write.take() else {
        return;
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

/// Seconds since the Unix epoch, by this machine's clock (the journal's and the history's time).
pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
