//! One request through the cache or the API: a slot and the rate limiter, the budget, the
//! attempt, and what each outcome means (cache it, fall back to text context, retry after a
//! backoff, give up, or stop the run).
//!
//! Not responsible for the order of requests (see `execute`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::estimate::{RequestKey, body_for};
use super::recover;
use super::slots::Slot;
use super::{Outcome, PendingWrite, Request, Runner, Settings, check_audio};
use crate::api::{
    ApiError, Disposition, TtsBody, TtsFailure, TtsRequest, TtsResponse, audio_body_limit,
};
use crate::plan::{self, Context, Plan};
use crate::state::cache::Meta;
use crate::state::journal::Entry;

/// What to do after a failed attempt.
pub(crate) enum Next {
    /// Send again (after a backoff, or at once with text context instead of ids).
    Again,
    /// The request is over: its outcome carries the error.
    Done,
}

/// Renders one request and counts it in the progress bar. `held` is a slot handed over by the
/// chain's previous request; after a success the slot is handed back for the next one.
pub(super) async fn render<'a>(
    req: Request<'a>,
    context: Context,
    held: Option<Slot<'a>>,
) -> (Outcome, Option<Slot<'a>>) {
    let (outcome, slot) = render_once(&req, context, held).await;
    let credits = match (&outcome.meta, outcome.cached) {
        (Some(m), false) => m.credits.unwrap_or(0.0),
        _ => 0.0,
    };
    req.runner
        .observer
        .request_done(req.plan.requests[req.r].text.chars().count(), credits);
    (outcome, slot)
}

/// A slot (the one handed over, or a new one) and the rate limiter's leave to send, unless
/// the run stops while waiting for them (`None`): an unsent request never waits out the
/// queue after a stop.
async fn wait_to_send<'a>(req: &Request<'a>, held: Option<Slot<'a>>) -> Option<Slot<'a>> {
    let runner = req.runner;
    let slot = match held {
        Some(slot) => slot,
        None => {
            let priority = remaining_work(req.plan, req.r);
            let acquire = runner.slots.acquire(priority, req.participant);
            runner.stopping.unless_stopped(acquire).await?
        }
    };
    if let Some(limiter) = &runner.limiter {
        runner
            .stopping
            .unless_stopped(limiter.until_ready())
            .await?;
    }
    Some(slot)
}

/// What settles a request without sending it: its answer in the cache, an earlier run's lost
/// send found in the speech history (it was paid for), or a cache entry that could never be
/// written (the request fails, unsent, naming the file in the way).
async fn settled_before_sending(
    req: &Request<'_>,
    key: &RequestKey,
    body: &TtsBody,
    outcome: &mut Outcome,
) -> bool {
    // Another machine may have rendered it since the run began (a shared cache).
    if !outcome.regenerated
        && crate::state::shared::pull(req.cache, &key.key).await
        && from_cache(req, key, outcome)
    {
        return true;
    }
    if req.runner.settings.cache_only {
        outcome.error = Some("not in the cache, and assemble sends nothing".to_string());
        return true;
    }
    // Sent by an earlier run that never got the answer: it was paid for; look for it first.
    if let Some(sent) = req.cache.journal().first_sent(&key.key)
        && recovered(req, key, body, sent, outcome, false).await
    {
        return true;
    }
    if let Some(path) = req.cache.blocked(&key.key) {
        outcome.error = Some(format!(
            "not sent: {} is in the way of its cache entry and is not a file, so an answer could not be kept; remove it",
            path.display()
        ));
        return true;
    }
    false
}

pub(crate) async fn render_once<'a>(
    req: &Request<'a>,
    context: Context,
    mut held: Option<Slot<'a>>,
) -> (Outcome, Option<Slot<'a>>) {
    let runner = req.runner;
    let key = RequestKey::of(req.job, req.plan, req.r, &runner.settings.source);
    let mut body = body_for(req.job, req.plan, req.r, &context);
    let mut outcome = Outcome {
        context,
        regenerated: req.plan.regenerate[req.r],
        ..Outcome::default()
    };
    if settled_before_sending(req, &key, &body, &mut outcome).await {
        return (outcome, held);
    }
    let mut first_sent: Option<f64> = None;
    loop {
        let Some(slot) = wait_to_send(req, held.take()).await else {
            outcome.error = may_send(runner, 0.0).err();
            return (outcome, None);
        };
        if let Err(error) = may_send(runner, key.credits) {
            outcome.error = Some(error);
            return (outcome, None);
        }
        // The journal line comes before the send: a send it could not record is not made, so
        // nothing is paid that a later run could not look for.
        let sent = match journal_send(req, &key, &body) {
            Ok(sent) => sent,
            Err(error) => {
                runner.settle(key.credits, 0.0);
                outcome.error = Some(error);
                return (outcome, None);
            }
        };
        outcome.attempts += 1;
        first_sent.get_or_insert(sent);
        let started = Instant::now();
        let counted_before = outcome.charged_undelivered;
        let Some(answer) = runner
            .stopping
            .unless_abandoned(attempt(req, &key, &body, &mut outcome))
            .await
        else {
            runner.settle(key.credits, 0.0);
            outcome.error = Some(
                "abandoned in flight when the run was stopped: it may have been generated and charged; the next run looks for it in the speech history".into(),
            );
            return (outcome, None);
        };
        match answer {
            Ok(response) => {
                outcome.latency_ms =
                    Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
                succeeded(req, &key, &body, response, &mut outcome);
                return (outcome, Some(slot));
            }
            Err(error) => {
                drop(slot);
                outcome.statuses.push(error.status().unwrap_or(0));
                // The request went out and may have been generated (and charged) although its
                // answer was lost: look for it before sending it again.
                let counted = outcome.charged_undelivered > counted_before;
                if may_be_generated(&error)
                    && let Some(sent) = first_sent
                    && recovered(req, &key, &body, sent, &mut outcome, counted).await
                {
                    return (outcome, None);
                }
                match after_failure(req, &error, &mut body, &mut outcome).await {
                    Next::Again => {}
                    Next::Done => return (outcome, None),
                }
            }
        }
    }
}

/// An attempt succeeded: the breaker and the cap hear of it, its history item is claimed (no
/// other request may recover it) and its answer is stored.
fn succeeded(
    req: &Request<'_>,
    key: &RequestKey,
    body: &TtsBody,
    response: TtsResponse,
    outcome: &mut Outcome,
) {
    let runner = req.runner;
    outcome.statuses.push(200);
    runner.failures_in_a_row.store(0, Ordering::SeqCst);
    runner.slots.on_success(response.max_concurrency);
    if let Some(id) = &response.history_item_id
        && let Ok(mut used) = runner.used_history.lock()
    {
        used.insert(id.clone());
    }
    store(req, key, body, response, outcome, None);
}

/// Takes the request's answer from the cache, if it is there (and sound).
fn from_cache(req: &Request<'_>, key: &RequestKey, outcome: &mut Outcome) -> bool {
    let Some((meta, path)) = req.cache.get(&key.key) else {
        return false;
    };
    if req.runner.settings.retime && !meta.alignment {
        return false;
    }
    outcome.audio = Some(path);
    outcome.alignment = meta.alignment.then(|| req.cache.alignment_path(&key.key));
    outcome.meta = Some(meta);
    outcome.cached = true;
    true
}

/// Whether a failed attempt may have been generated: the request went out (or may have) and
/// the answer was lost, cut, too long or spoiled.
fn may_be_generated(error: &ApiError) -> bool {
    matches!(
        error,
        ApiError::Transport(_)
            | ApiError::Truncated { .. }
            | ApiError::TooLarge { .. }
            | ApiError::BadAudio(_)
    )
}

/// Appends the attempt about to be sent to the journal (synced); returns when it was sent.
fn journal_send(req: &Request<'_>, key: &RequestKey, body: &TtsBody) -> Result<f64, String> {
    let segment = &req.job.segments[req.plan.requests[req.r].segment];
    let sent_unix = super::unix_now();
    let entry = Entry::Sent {
        key: key.key.clone(),
        voice_id: segment.voice_id.clone(),
        model_id: segment.model_id.clone(),
        output_format: req.job.output_format.to_string(),
        text_sha256: crate::state::cache::sha256_hex(body.text.as_bytes()),
        sent_unix,
    };
    req.cache.journal().append(entry).map_err(|e| {
        format!(
            "not sent: the send journal in {} cannot be written ({e})",
            req.cache.dir().display()
        )
    })?;
    Ok(sent_unix)
}

/// Looks for the request in the speech history; when found, its audio is the answer (stored
/// in the cache with the item's request id, so the chain continues from it). Otherwise the
/// outcome says why, and the request is sent again. `counted` says whether the lost attempt's
/// charge is already counted (its headers arrived); if not, the item's charge is counted now,
/// so every credit the API charged is in the report once.
async fn recovered(
    req: &Request<'_>,
    key: &RequestKey,
    body: &TtsBody,
    sent_unix: f64,
    outcome: &mut Outcome,
    counted: bool,
) -> bool {
    match recover::from_history(req, key, body, sent_unix).await {
        recover::Found::Audio { audio, item } => {
            tracing::info!(
                segment = %req.job.segments[req.plan.requests[req.r].segment].id,
                history_item_id = %item.history_item_id,
                "recovered from the speech history instead of paying again"
            );
            let response = TtsResponse {
                audio: audio.into(),
                request_id: item.request_id.clone(),
                // Paid for by the attempt that was lost, and counted there.
                character_cost: Some(0.0),
                max_concurrency: None,
                history_item_id: Some(item.history_item_id.clone()),
                alignment: item.alignments.as_ref().and_then(|a| a.alignment.clone()),
            };
            store(req, key, body, response, outcome, Some(&item));
            if !counted {
                let charge = (item.character_count_change_to - item.character_count_change_from)
                    .max(0) as f64;
                outcome.charged_undelivered += charge;
                req.runner.settle(0.0, charge);
                req.runner.observer.charged(charge);
            }
            outcome.recovered_from = Some(item.history_item_id);
            outcome.recovery = None;
            outcome.error = None;
            true
        }
        recover::Found::Missing(why) => {
            outcome.recovery = Some(why);
            false
        }
    }
}

/// Whether a request may be sent now: the run is not stopped (a 401 or a signal may have
/// stopped it while this one waited) and the budget allows `credits` more.
pub(crate) fn may_send(runner: &Runner, credits: f64) -> Result<(), String> {
    if runner.stopping.is_stopped() {
        return Err(format!(
            "not sent: the run was stopped ({})",
            runner.stop_reason().unwrap_or_default()
        ));
    }
    runner.reserve(credits)
}

/// One attempt: the request sent, the answer read (bounded) and checked. What it cost is
/// settled against the budget either way, and an answer that was charged but not usable is
/// counted in the outcome.
pub(crate) async fn attempt(
    req: &Request<'_>,
    key: &RequestKey,
    body: &TtsBody,
    outcome: &mut Outcome,
) -> Result<TtsResponse, ApiError> {
    let runner = req.runner;
    let segment = &req.job.segments[req.plan.requests[req.r].segment];
    let format = req.job.output_format;
    let format_name = format.to_string();
    let tts = TtsRequest {
        voice_id: &segment.voice_id,
        output_format: &format_name,
        enable_logging: segment.enable_logging,
        body,
        timestamps: runner.settings.timestamps,
        body_limit: audio_body_limit(
            key.characters,
            format.bytes_per_second(),
            runner.settings.timestamps,
        ),
        estimate: key.credits,
    };
    let result = runner
        .client
        .text_to_speech(tts)
        .await
        .and_then(|response| match check_audio(&response.audio, format) {
            Ok(()) => Ok(response),
            Err(error) => Err(TtsFailure {
                error,
                charged: Some(response.character_cost.unwrap_or(key.credits)),
            }),
        });
    let charged = match &result {
        Ok(response) => response.character_cost.unwrap_or(key.credits),
        Err(failure) => failure.charged.unwrap_or(0.0),
    };
    runner.settle(key.credits, charged);
    if let Err(failure) = &result
        && let Some(c) = failure.charged
    {
        outcome.charged_undelivered += c;
        runner.observer.charged(c);
    }
    result.map_err(|failure| failure.error)
}

/// Records a successful answer (or one recovered from the history `item`) and stores it in
/// the cache. Writing and syncing the files blocks: it runs on the blocking pool while the
/// chain moves on (the next request needs only this one's id), and is awaited before assembly.
pub(crate) fn store(
    req: &Request<'_>,
    key: &RequestKey,
    body: &TtsBody,
    response: TtsResponse,
    outcome: &mut Outcome,
    item: Option<&crate::api::HistoryItem>,
) {
    let runner = req.runner;
    let now = runner
        .now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let meta = Meta {
        request_id: response.request_id.clone(),
        // A recovered id ages from when the API generated it.
        issued_unix: item.map_or(now, |i| i.date_unix as f64),
        credits: response.character_cost,
        characters: key.characters,
        bytes: response.audio.len() as u64,
        output_format: req.job.output_format.to_string(),
        synthetic: runner.settings.synthetic,
        previous_request_ids: body.previous_request_ids.clone(),
        next_request_ids: body.next_request_ids.clone(),
        used_previous_text: body.previous_text.is_some(),
        used_next_text: body.next_text.is_some(),
        alignment: response.alignment.is_some(),
        // Known now: a file published from this response records it (see `output::published`).
        sha256: Some(crate::state::cache::sha256_hex(&response.audio)),
        recovered_from: item.map(|i| i.history_item_id.clone()),
    };
    // Stored here, then put on the shared cache (if any) for the other machines.
    let write = {
        let (cache, key, meta) = (req.cache.clone(), key.key.clone(), meta.clone());
        tokio::spawn(async move {
            let local = cache.clone();
            let owned = key.clone();
            let path = tokio::task::spawn_blocking(move || {
                local.put(&owned, &response.audio, response.alignment.as_ref(), &meta)
            })
            .await
            .map_err(std::io::Error::other)??;
            crate::state::shared::push(&cache, &key).await;
            Ok(path)
        })
    };
    outcome.audio = Some(req.cache.audio_path(&key.key));
    outcome.alignment = meta.alignment.then(|| req.cache.alignment_path(&key.key));
    outcome.meta = Some(meta);
    outcome.write = Some(PendingWrite(Arc::new(Mutex::new(Some(write)))));
}

/// What a failed attempt means: stop the run (401), send again with text context (ids
/// refused), give up (other 4xx, retries exhausted, the breaker tripped), or wait and retry.
pub(crate) async fn after_failure(
    req: &Request<'_>,
    error: &ApiError,
    body: &mut TtsBody,
    outcome: &mut Outcome,
) -> Next {
    let runner = req.runner;
    let segment = &req.job.segments[req.plan.requests[req.r].segment];
    let disposition = error.disposition();
    tracing::debug!(segment = %segment.id, attempt = outcome.attempts, %error, "request failed");
    match disposition {
        Disposition::Fatal => {
            if matches!(error, ApiError::Status { code: Some(c), .. } if c == "quota_exceeded") {
                runner.reach_limit(super::Limit::Budget, None);
            }
            runner.stop(error.to_string());
            outcome.error = Some(error.to_string());
            Next::Done
        }
        Disposition::Fail
            if error.status() == Some(400)
                && (!body.previous_request_ids.is_empty() || !body.next_request_ids.is_empty()) =>
        {
            // The API refused the ids (expired, unknown...): the same request with text
            // context instead.
            tracing::warn!(segment = %segment.id, %error, "request ids refused; retrying with text context");
            outcome.context = plan::text_context(req.plan, req.r);
            *body = body_for(req.job, req.plan, req.r, &outcome.context);
            Next::Again
        }
        Disposition::Fail => {
            outcome.error = Some(error.to_string());
            Next::Done
        }
        Disposition::Retry | Disposition::RetryLessConcurrency => {
            if let Some(why) = give_up(runner, error, outcome.attempts) {
                outcome.error = Some(why);
                return Next::Done;
            }
            if disposition == Disposition::RetryLessConcurrency {
                runner.slots.on_too_many();
            }
            runner.observer.retried();
            let wait = backoff(&runner.settings, outcome.attempts, error);
            tracing::info!(segment = %segment.id, attempt = outcome.attempts, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), %error, "retrying");
            // A stop ends the wait: `may_send` then says the request was not sent.
            let _ = runner
                .stopping
                .unless_stopped(tokio::time::sleep(wait))
                .await;
            Next::Again
        }
    }
}

/// Why a retryable failure is not retried, if it is not: the circuit breaker trips after too
/// many failures in a row across the run, the run was stopped, or the retries are spent.
pub(crate) fn give_up(runner: &Runner, error: &ApiError, attempts: u32) -> Option<String> {
    let in_a_row = runner.failures_in_a_row.fetch_add(1, Ordering::SeqCst) + 1;
    if in_a_row >= runner.settings.breaker_threshold {
        runner.stop(format!(
            "the API failed {in_a_row} attempts in a row, last: {error}; stopping instead of hammering it"
        ));
    }
    if runner.stopping.is_stopped() {
        return Some(format!(
            "{error} (the run was stopped: {})",
            runner.stop_reason().unwrap_or_default()
        ));
    }
    (attempts > runner.settings.max_retries)
        .then(|| format!("{error} (gave up after {attempts} attempts)"))
}

/// Characters left in request `r`'s chain from `r` on: its scheduling priority.
pub(super) fn remaining_work(plan: &Plan, r: usize) -> u64 {
    let request = &plan.requests[r];
    plan.chains[request.chain].requests[request.pos..]
        .iter()
        .map(|&q| plan.requests[q].text.len() as u64)
        .sum()
}

/// The wait before the next attempt: `Retry-After` when given, else full-jitter exponential.
pub(crate) fn backoff(settings: &Settings, attempt: u32, error: &ApiError) -> Duration {
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
pub(crate) fn jitter() -> f64 {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let mut x = COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}
