//! An ElevenLabs-compatible API server: the subset narrate uses, strict where the API is
//! strict, with the documented status codes, bodies and headers. Used by `narrate emulate`, by
//! `--emulate`, and by narrate's tests, which judge the client by it.
//!
//! - `state`: issued request ids, credits, the clock and the request log.
//! - `auth`: the key check, error shapes and the log of reads, shared by every endpoint.
//! - `tts`: the four text-to-speech endpoints; `validate`: their 422s; `faults`: injected
//!   faults and body delivery.
//! - `account`: voices, models and subscription; [`data`]: the voice catalogue.
//! - `history`: the speech history; `dictionaries`: pronunciation dictionaries, the locators'
//!   checks and their aliases applied before synthesis.
//! - [`synth`]: the synthetic voice.
//!
//! The server takes its listener and a shutdown future, so tests bind `127.0.0.1:0`, and runs
//! hyper's HTTP/1 connections itself (header timeout, connection cap) under axum's router.
//!
//! A crate of its own, so the compiler holds what the tests rely on: it imports nothing of the
//! client. It keeps its own tables of formats (`format`) and models (`data`), its own MP3
//! encoder (`lame`) and PLS reader (`pls`), written from the API's documentation.

// Outside data never meets an unwrap: every failure is an error with a message.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(unreachable_pub)]
// The house: no function over 80 lines (the workspace's clippy.toml sets the threshold).
#![deny(clippy::too_many_lines)]

pub(crate) mod account;
mod aliases;
mod auth;
pub mod data;
mod dictionaries;
mod faults;
pub mod format;
pub(crate) mod history;
mod lame;
mod pls;
mod pydantic;
mod rules;
pub(crate) mod state;
pub mod synth;
mod tts;
mod validate;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use format::OutputFormat;

use axum::Router;
use axum::routing::{get, post};

pub use state::Emulator;

/// A subscription tier: its concurrency and which formats it may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Free,
    Starter,
    Creator,
    Pro,
    Scale,
    Business,
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "free" => Tier::Free,
            "starter" => Tier::Starter,
            "creator" => Tier::Creator,
            "pro" => Tier::Pro,
            "scale" => Tier::Scale,
            "business" => Tier::Business,
            other => {
                return Err(format!(
                    "unknown tier {other:?} (free, starter, creator, pro, scale, business)"
                ));
            }
        })
    }
}

impl Tier {
    fn name(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Starter => "starter",
            Tier::Creator => "creator",
            Tier::Pro => "pro",
            Tier::Scale => "scale",
            Tier::Business => "business",
        }
    }

    /// Concurrent requests allowed; Flash and Turbo models get twice as many.
    pub fn concurrency(self, fast: bool) -> usize {
        let base = match self {
            Tier::Free => 2,
            Tier::Starter => 3,
            Tier::Creator => 5,
            Tier::Pro => 10,
            Tier::Scale | Tier::Business => 15,
        };
        if fast { base * 2 } else { base }
    }
}

/// An injected failure of a TTS request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 `system_busy` without `Retry-After`.
    Busy,
    /// 429 `system_busy` with `Retry-After: 1`.
    BusyRetryAfter,
    /// 500 with a JSON body.
    Internal,
    /// 503 with an HTML body, as a load balancer sends.
    UnavailableHtml,
    /// The connection is dropped before any audio arrives.
    Reset,
    /// `content-length` promises the whole audio, half of it arrives, then the connection drops.
    Truncated,
    /// The audio arrives in small chunks with pauses between them (about a second in all).
    Slow,
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "busy" => Fault::Busy,
            "busy-retry-after" => Fault::BusyRetryAfter,
            "500" => Fault::Internal,
            "503" => Fault::UnavailableHtml,
            "reset" => Fault::Reset,
            "truncated" => Fault::Truncated,
            "slow" => Fault::Slow,
            other => {
                return Err(format!(
                    "unknown fault {other:?} (busy, busy-retry-after, 500, 503, reset, truncated, slow)"
                ));
            }
        })
    }
}

/// Seeded fault injection: each TTS request fails with probability `rate`, with a kind drawn
/// from `kinds`, drawn from each request's content and how often it was asked for: the same seed gives
/// the same faults, however requests interleave.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub rate: f64,
    pub seed: u64,
    pub kinds: Vec<Fault>,
}

/// The emulator's knobs.
#[derive(Clone, Debug)]
pub struct Config {
    /// When set, only this key is accepted; otherwise any non-empty key.
    pub api_key: Option<String>,
    pub tier: Tier,
    /// The subscription's `character_limit` (credits).
    pub character_limit: u64,
    /// Added to every TTS response.
    pub latency_ms: u64,
    /// Added per character of text.
    pub latency_per_char_ms: f64,
    /// JSON lines, one per request.
    pub request_log: Option<PathBuf>,
    pub faults: Faults,
    /// Connections served at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers, counted from when the
    /// server starts waiting for them: a slow client, or an idle keep-alive one, is closed.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive once its headers have: a client that
    /// trickles its body is answered 408 and closed, and holds no connection past it.
    pub body_timeout: Duration,
    /// The most MiB of answers held for clients that have not read them; past it, a request
    /// waits for room, then is answered a busy 429.
    pub undelivered_mib: u32,
    /// What the speech history does (a test seam for recovery's failure paths).
    pub history: HistoryMode,
    /// Character limits that differ from the documented ones, `(model_id, limit)`: served by
    /// `GET /v1/models` and enforced, as if the API had changed them.
    pub model_limits: Vec<(String, usize)>,
    /// `GET /v1/models` answers 503.
    pub models_down: bool,
    /// `GET /v1/user/subscription` answers 503 (a balance that cannot be read).
    pub subscription_down: bool,
    /// No text-to-speech request is answered before this many have arrived (at most
    /// [`HOLD_AT_MOST`]): a test seam that makes "these requests were sent before any answer"
    /// a fact instead of a race. 0: no hold.
    pub hold_answers_until: usize,
}

/// The longest a held answer waits for the requests [`Config::hold_answers_until`] asks for:
/// a client that never sends them is answered late, not never.
pub const HOLD_AT_MOST: Duration = Duration::from_secs(10);

/// How the emulator's speech history behaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum HistoryMode {
    /// Kept and served as the API documents it.
    #[default]
    Kept,
    /// Not there: every history path answers 404, as for a key without history access.
    Absent,
    /// Kept, but its audio is served in this format whatever the request's was (as the real
    /// history may keep MP3 for a PCM request).
    Format(OutputFormat),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api_key: None,
            tier: Tier::Pro,
            character_limit: 10_000_000,
            latency_ms: 0,
            latency_per_char_ms: 0.0,
            request_log: None,
            faults: Faults::default(),
            max_connections: 512,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            undelivered_mib: 256,
            history: HistoryMode::default(),
            model_limits: Vec::new(),
            models_down: false,
            subscription_down: false,
            hold_answers_until: 0,
        }
    }
}

/// The router of the emulated API.
pub fn router(state: Arc<Emulator>) -> Router {
    speech()
        .merge(account().route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::log_reads,
        )))
        .fallback(auth::not_found)
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            auth::finish,
        ))
        .layer(axum::middleware::from_fn(auth::preflight))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::body_in_time,
        ))
        .with_state(state)
}

/// The text-to-speech endpoints, which log what they generate themselves.
fn speech() -> Router<Arc<Emulator>> {
    Router::new()
        .route("/v1/text-to-speech/{voice_id}", post(tts::tts_full))
        .route(
            "/v1/text-to-speech/{voice_id}/stream",
            post(tts::tts_stream),
        )
        .route(
            "/v1/text-to-speech/{voice_id}/with-timestamps",
            post(tts::tts_timestamps),
        )
        .route(
            "/v1/text-to-speech/{voice_id}/stream/with-timestamps",
            post(tts::tts_stream_timestamps),
        )
}

/// The account, history and dictionary endpoints, each answer logged by `auth::log_reads`.
fn account() -> Router<Arc<Emulator>> {
    Router::new()
        .route("/v2/voices", get(account::voices))
        .route("/v1/history", get(history::list))
        .route(
            "/v1/history/{history_item_id}",
            get(history::item).delete(history::delete),
        )
        .route("/v1/history/{history_item_id}/audio", get(history::audio))
        .route("/v1/voices/{voice_id}", get(account::voice))
        .route("/v1/models", get(account::list_models))
        .route("/v1/user/subscription", get(account::subscription))
        .route(
            "/v1/pronunciation-dictionaries/add-from-rules",
            post(dictionaries::add_from_rules),
        )
        .route(
            "/v1/pronunciation-dictionaries/add-from-file",
            post(dictionaries::add_from_file),
        )
        .route("/v1/pronunciation-dictionaries", get(dictionaries::list))
        .route(
            "/v1/pronunciation-dictionaries/{id}",
            get(dictionaries::get),
        )
        .route(
            "/v1/pronunciation-dictionaries/{id}/{action}",
            post(dictionaries::change),
        )
        .route(
            "/v1/pronunciation-dictionaries/{id}/{version_id}/download",
            get(dictionaries::download),
        )
}

/// Serves the emulator on `listener` until `shutdown` completes, as a server on a network must:
/// at most `max_connections` at once (one more is closed when accepted), and a connection that
/// does not send a request's headers within `header_timeout` (slow, or idle between requests)
/// is closed. On shutdown, idle connections close at once and busy ones finish (at most 5 s).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<Emulator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let header_timeout = state.config.header_timeout;
    let slots = Arc::new(tokio::sync::Semaphore::new(
        state.config.max_connections.max(1),
    ));
    let app = router(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or a connection that died in the backlog: go on.
                    tracing::warn!(error = %e, "emulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        // HTTP/1.1 only, as the API is reached over plain HTTP here: protocol detection would
        // wait for a first byte with no timeout.
        let mut builder =
            hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let _ = watcher.watch(connection).await;
            drop(permit);
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

/// An emulator running in this process on a loopback port.
pub struct Running {
    pub addr: SocketAddr,
    pub state: Arc<Emulator>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for the connections to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Starts an emulator on `127.0.0.1:0`.
pub async fn start(config: Config) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = Emulator::new(config)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state.clone(), async {
        let _ = rx.await;
    }));
    Ok(Running {
        addr,
        state,
        stop: Some(tx),
        task,
    })
}
