//! The built-in ElevenLabs-compatible API server: the subset narrate uses, strict where the API
//! is strict, with the documented status codes, bodies and headers (see `reference/` notes in
//! the README). Used by `narrate emulate`, by `--emulate`, and by the tests.
//!
//! The server takes its listener and a shutdown future, so tests bind `127.0.0.1:0`. Not
//! responsible for the audio itself (see [`synth`]).

pub mod data;
pub mod synth;

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::format::{Codec, OutputFormat};
use crate::models;

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
/// from `kinds`; the same seed and request order give the same faults.
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
        }
    }
}

struct IssuedId {
    /// Emulator-clock seconds.
    issued: f64,
    complete: bool,
}

/// Shared server state.
pub struct Emulator {
    config: Config,
    issued: Mutex<HashMap<String, IssuedId>>,
    credits_used: Mutex<f64>,
    /// The subscription's limit; tests may change it while running.
    character_limit: AtomicU64,
    in_flight: AtomicUsize,
    counter: AtomicU64,
    /// TTS requests seen, for fault draws.
    tts_count: AtomicU64,
    /// Seconds the emulator's clock runs ahead of the real one.
    clock_offset: AtomicU64,
    log: Mutex<Option<std::fs::File>>,
    started: Instant,
}

impl Emulator {
    pub fn new(config: Config) -> std::io::Result<Arc<Self>> {
        let log = match &config.request_log {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("request log {}: {e}", path.display()),
                        )
                    })?,
            ),
            None => None,
        };
        Ok(Arc::new(Emulator {
            character_limit: AtomicU64::new(config.character_limit),
            config,
            issued: Mutex::new(HashMap::new()),
            credits_used: Mutex::new(0.0),
            in_flight: AtomicUsize::new(0),
            counter: AtomicU64::new(0),
            tts_count: AtomicU64::new(0),
            clock_offset: AtomicU64::new(0),
            log: Mutex::new(log),
            started: Instant::now(),
        }))
    }

    /// Moves the emulator's clock forward (request ids age with it).
    pub fn advance_clock(&self, by: Duration) {
        self.clock_offset.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    fn now(&self) -> f64 {
        crate::cache::unix_now() + self.clock_offset.load(Ordering::SeqCst) as f64
    }

    /// Changes the subscription's credit limit.
    pub fn set_character_limit(&self, limit: u64) {
        self.character_limit.store(limit, Ordering::SeqCst);
    }

    fn character_limit(&self) -> u64 {
        self.character_limit.load(Ordering::SeqCst)
    }

    /// Credits charged so far.
    pub fn credits_used(&self) -> f64 {
        *self.credits_used.lock().expect("credits lock")
    }

    fn next_id(&self, salt: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let mut h = synth::fnv(format!("{salt}:{n}:{:?}", self.started.elapsed()).as_bytes());
        (0..20)
            .map(|_| {
                h = h
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ALPHABET[(h >> 33) as usize % ALPHABET.len()] as char
            })
            .collect()
    }

    fn trace_id(&self) -> String {
        let a = synth::fnv(self.next_id("trace").as_bytes());
        let b = synth::fnv(&a.to_le_bytes());
        format!("{a:016x}{b:016x}")
    }

    fn log(&self, entry: Value) {
        if let Some(file) = self.log.lock().expect("log lock").as_mut() {
            let mut line = entry.to_string();
            line.push('\n');
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// The router of the emulated API.
pub fn router(state: Arc<Emulator>) -> Router {
    Router::new()
        .route("/v1/text-to-speech/{voice_id}", post(tts_full))
        .route("/v1/text-to-speech/{voice_id}/stream", post(tts_stream))
        .route(
            "/v1/text-to-speech/{voice_id}/with-timestamps",
            post(tts_timestamps),
        )
        .route(
            "/v1/text-to-speech/{voice_id}/stream/with-timestamps",
            post(tts_stream_timestamps),
        )
        .route("/v2/voices", get(voices))
        .route("/v1/voices/{voice_id}", get(voice))
        .route("/v1/models", get(list_models))
        .route("/v1/user/subscription", get(subscription))
        .fallback(not_found)
        .with_state(state)
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

/// An error in the API's `{"detail":{...}}` shape, with legacy `status` and newer fields.
fn api_error(
    state: &Emulator,
    status: StatusCode,
    kind: &str,
    code: &str,
    message: &str,
) -> Response {
    let trace = state.trace_id();
    let body = json!({"detail": {
        "type": kind,
        "code": code,
        "status": code,
        "message": message,
        "request_id": trace,
    }});
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        "x-trace-id",
        HeaderValue::from_str(&trace).expect("hex is a valid header"),
    );
    response
}

/// A 422 in FastAPI's list shape.
fn validation_error(items: Vec<Value>) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({"detail": items})),
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"detail": "Not Found"})),
    )
        .into_response()
}

/// Checks `xi-api-key`; `Err` is the 401 to send.
fn authorize(state: &Emulator, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let key = headers
        .get("xi-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    if key.is_empty() {
        return Err(Box::new(api_error(
            state,
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "needs_authorization",
            "Neither authorization header nor xi-api-key received, please provide one.",
        )));
    }
    if let Some(expected) = &state.config.api_key
        && key != expected
    {
        return Err(Box::new(api_error(
            state,
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            "Invalid API key",
        )));
    }
    Ok(())
}

fn query_pairs(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The four text-to-speech endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Full,
    Stream,
    Timestamps,
    StreamTimestamps,
}

impl Variant {
    fn streams(self) -> bool {
        matches!(self, Variant::Stream | Variant::StreamTimestamps)
    }

    fn path(self, voice_id: &str) -> String {
        let suffix = match self {
            Variant::Full => "",
            Variant::Stream => "/stream",
            Variant::Timestamps => "/with-timestamps",
            Variant::StreamTimestamps => "/stream/with-timestamps",
        };
        format!("/v1/text-to-speech/{voice_id}{suffix}")
    }
}

macro_rules! tts_handler {
    ($name:ident, $variant:expr) => {
        async fn $name(
            State(state): State<Arc<Emulator>>,
            Path(voice_id): Path<String>,
            RawQuery(query): RawQuery,
            headers: HeaderMap,
            body: Bytes,
        ) -> Response {
            tts(state, voice_id, query, headers, body, $variant).await
        }
    };
}

tts_handler!(tts_full, Variant::Full);
tts_handler!(tts_stream, Variant::Stream);
tts_handler!(tts_timestamps, Variant::Timestamps);
tts_handler!(tts_stream_timestamps, Variant::StreamTimestamps);

/// Releases an in-flight slot when dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn tts(
    state: Arc<Emulator>,
    voice_id: String,
    query: Option<String>,
    headers: HeaderMap,
    raw_body: Bytes,
    variant: Variant,
) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&raw_body).ok();
    let pairs = query_pairs(&query);
    let response = tts_response(
        &state,
        &voice_id,
        &pairs,
        &headers,
        &raw_body,
        parsed.as_ref(),
        variant,
    )
    .await;
    let path = variant.path(&voice_id);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    state.log(json!({
        "time": state.now(),
        "method": "POST",
        "path": path,
        "voice_id": voice_id,
        "query": pairs.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "key_present": headers.contains_key("xi-api-key"),
        "body": parsed,
        "status": response.status().as_u16(),
        "fault": response.extensions().get::<Fault>().map(|f| format!("{f:?}").to_lowercase()),
        "request_id": header("request-id"),
        "character_cost": header("character-cost"),
        "concurrent": header("current-concurrent-requests").and_then(|v| v.parse::<u64>().ok()),
    }));
    response
}

fn range_error(loc: &[&str], value: f64, bound: f64, upper: bool) -> Value {
    let (kind, msg, ctx) = if upper {
        (
            "less_than_equal",
            format!("Input should be less than or equal to {bound:?}"),
            json!({"le": bound}),
        )
    } else {
        (
            "greater_than_equal",
            format!("Input should be greater than or equal to {bound:?}"),
            json!({"ge": bound}),
        )
    };
    json!({"type": kind, "loc": loc, "msg": msg, "input": value, "ctx": ctx})
}

/// The 422 items for a TTS request, empty when it is well formed.
fn validate(body: Option<&Value>, raw: &[u8], format: Option<&str>, stream: bool) -> Vec<Value> {
    let mut errors = Vec::new();
    if let Some(format) = format {
        let ok = format.parse::<OutputFormat>().is_ok() && !(stream && format.starts_with("wav_"));
        if !ok {
            errors.push(json!({"type": "enum", "loc": ["query", "output_format"],
                "msg": "Input should be a valid output format", "input": format}));
        }
    }
    let Some(body) = body else {
        errors.push(
            json!({"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error",
            "input": {}, "ctx": {"error": String::from_utf8_lossy(&raw[..raw.len().min(80)])}}),
        );
        return errors;
    };
    if !body.is_object() {
        errors.push(json!({"type": "model_attributes_type", "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from", "input": body}));
        return errors;
    }
    match body.get("text") {
        None | Some(Value::Null) => errors.push(json!({"type": "missing", "loc": ["body", "text"], "msg": "Field required", "input": null})),
        Some(Value::String(_)) => {}
        Some(other) => errors.push(json!({"type": "string_type", "loc": ["body", "text"], "msg": "Input should be a valid string", "input": other})),
    }
    if let Some(settings) = body.get("voice_settings").filter(|v| !v.is_null()) {
        for name in ["stability", "similarity_boost", "style", "speed"] {
            let Some(v) = settings.get(name) else {
                continue;
            };
            let loc = ["body", "voice_settings", name];
            match v.as_f64() {
                None => errors.push(json!({"type": "float_type", "loc": loc, "msg": "Input should be a valid number", "input": v})),
                Some(x) if matches!(name, "stability" | "similarity_boost") && x > 1.0 => errors.push(range_error(&loc, x, 1.0, true)),
                Some(x) if matches!(name, "stability" | "similarity_boost") && x < 0.0 => errors.push(range_error(&loc, x, 0.0, false)),
                // The documented range of speed; it also bounds the audio one request produces.
                Some(x) if name == "speed" && x > 1.2 => errors.push(range_error(&loc, x, 1.2, true)),
                Some(x) if name == "speed" && x < 0.7 => errors.push(range_error(&loc, x, 0.7, false)),
                Some(_) => {}
            }
        }
    }
    if let Some(n) = body
        .get("apply_text_normalization")
        .filter(|v| !v.is_null())
        && !matches!(n.as_str(), Some("auto" | "on" | "off"))
    {
        errors.push(json!({"type": "enum", "loc": ["body", "apply_text_normalization"],
            "msg": "Input should be 'auto', 'on' or 'off'", "input": n, "ctx": {"expected": "'auto', 'on' or 'off'"}}));
    }
    errors
}

/// A well-mixed 64-bit hash of a counter (SplitMix64's finaliser).
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// What an injected fault does: answer at once, or spoil the delivery of the audio.
enum Injected {
    Answer(Response),
    Delivery(Fault),
}

/// Draws this request's fault, if any.
fn inject_fault(state: &Emulator) -> Option<Injected> {
    let faults = &state.config.faults;
    let n = state.tts_count.fetch_add(1, Ordering::SeqCst);
    if faults.kinds.is_empty() || faults.rate <= 0.0 {
        return None;
    }
    let h = splitmix64(faults.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let draw = (h >> 11) as f64 / (1u64 << 53) as f64;
    if draw >= faults.rate {
        return None;
    }
    let kind = faults.kinds[(h % faults.kinds.len() as u64) as usize];
    let busy = "We are sorry, the system is experiencing heavy traffic, please try again. Higher subscriptions have higher priority.";
    Some(Injected::Answer(match kind {
        Fault::Reset | Fault::Truncated | Fault::Slow => return Some(Injected::Delivery(kind)),
        Fault::Busy => api_error(
            state,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "system_busy",
            busy,
        ),
        Fault::BusyRetryAfter => {
            let mut r = api_error(
                state,
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "system_busy",
                busy,
            );
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            r
        }
        Fault::Internal => api_error(
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal_error",
            "An internal server error occurred.",
        ),
        Fault::UnavailableHtml => {
            let html = "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>";
            let mut r = (StatusCode::SERVICE_UNAVAILABLE, html).into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/html"));
            r
        }
    }))
}

/// Character timings of `text` spoken over `seconds`: each character gets an equal share, as
/// the synthetic voice gives it.
fn alignment(chars: &[char], from: usize, per_char: f64) -> Value {
    let starts: Vec<f64> = (0..chars.len())
        .map(|i| round3((from + i) as f64 * per_char))
        .collect();
    let ends: Vec<f64> = (0..chars.len())
        .map(|i| round3((from + i + 1) as f64 * per_char))
        .collect();
    json!({
        "characters": chars.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "character_start_times_seconds": starts,
        "character_end_times_seconds": ends,
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The body of a `/with-timestamps` answer: one JSON object, or NDJSON lines of chunks when
/// streaming.
fn with_timestamps(text: &str, audio: &[u8], seconds: f64, variant: Variant) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let chars: Vec<char> = text.chars().collect();
    let per_char = seconds / chars.len().max(1) as f64;
    if variant == Variant::Timestamps {
        let all = alignment(&chars, 0, per_char);
        let body =
            json!({"audio_base64": b64(audio), "alignment": all, "normalized_alignment": all});
        return body.to_string().into_bytes();
    }
    // About 40 characters a chunk, with the audio bytes in proportion.
    let mut lines = String::new();
    for from in (0..chars.len()).step_by(40) {
        let to = (from + 40).min(chars.len());
        let a = audio.len() * from / chars.len().max(1);
        let b = if to == chars.len() {
            audio.len()
        } else {
            audio.len() * to / chars.len().max(1)
        };
        let piece = alignment(&chars[from..to], from, per_char);
        let line = json!({"audio_base64": b64(&audio[a..b]), "alignment": piece, "normalized_alignment": piece});
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    lines.into_bytes()
}

/// How the audio of a successful request is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// One body with `content-length`.
    Whole,
    /// Chunked transfer (`/stream`).
    Chunked,
    Fault(Fault),
}

/// The response body for `audio` (or a `/with-timestamps` answer). The request id counts as
/// complete once its last byte is handed to the connection; cut deliveries never complete it.
fn deliver(
    state: &Arc<Emulator>,
    audio: Vec<u8>,
    request_id: &str,
    delivery: Delivery,
) -> Response {
    let complete = {
        let state = state.clone();
        let id = request_id.to_string();
        move || {
            if let Some(entry) = state.issued.lock().expect("issued lock").get_mut(&id) {
                entry.complete = true;
            }
        }
    };
    let total_len = audio.len();
    let chunk_size = match delivery {
        Delivery::Fault(Fault::Slow) => total_len.div_ceil(20).max(1),
        _ => 4096,
    };
    let chunks: Vec<Bytes> = match delivery {
        Delivery::Whole => {
            complete();
            return Response::new(Body::from(audio));
        }
        Delivery::Fault(Fault::Reset) => Vec::new(),
        Delivery::Fault(Fault::Truncated) => audio[..total_len / 2]
            .chunks(4096)
            .map(Bytes::copy_from_slice)
            .collect(),
        _ => audio
            .chunks(chunk_size)
            .map(Bytes::copy_from_slice)
            .collect(),
    };
    let cut = matches!(delivery, Delivery::Fault(Fault::Reset | Fault::Truncated));
    let slow = delivery == Delivery::Fault(Fault::Slow);
    let count = chunks.len();
    let stream = futures::stream::unfold(
        (chunks.into_iter().enumerate(), Some(complete)),
        move |(mut iter, mut complete)| async move {
            match iter.next() {
                Some((i, chunk)) => {
                    if slow {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    if i + 1 == count
                        && !cut
                        && let Some(done) = complete.take()
                    {
                        done();
                    }
                    Some((Ok(chunk), (iter, complete)))
                }
                None if cut => {
                    // Let the headers and the first half reach the client before the drop; a
                    // reset with nothing sent drops before any answer.
                    if count > 0 {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                    let error =
                        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected fault");
                    Some((Err(error), (iter, None)))
                }
                None => None,
            }
        },
    );
    let mut response = Response::new(Body::from_stream(stream));
    if delivery != Delivery::Chunked {
        response.headers_mut().insert(
            "content-length",
            HeaderValue::from_str(&total_len.to_string()).expect("a number is a valid header"),
        );
    }
    response
}

fn id_list(body: &Value, field: &str) -> Vec<String> {
    body.get(field)
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn tts_response(
    state: &Arc<Emulator>,
    voice_id: &str,
    pairs: &[(String, String)],
    headers: &HeaderMap,
    raw: &[u8],
    body: Option<&Value>,
    variant: Variant,
) -> Response {
    let stream = variant.streams();
    let query = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let errors = validate(body, raw, query("output_format"), stream);
    if !errors.is_empty() {
        return validation_error(errors);
    }
    let body = body.expect("validated");
    if let Err(response) = authorize(state, headers) {
        return *response;
    }
    let bad = |code: &str, message: &str| {
        api_error(
            state,
            StatusCode::BAD_REQUEST,
            "validation_error",
            code,
            message,
        )
    };
    if !data::voice_exists(voice_id) {
        return api_error(
            state,
            StatusCode::NOT_FOUND,
            "not_found",
            "voice_not_found",
            &format!("A voice with the voice_id {voice_id} was not found."),
        );
    }
    let model_id = body
        .get("model_id")
        .and_then(|v| v.as_str())
        .unwrap_or(models::DEFAULT_MODEL);
    let Some(model) = models::find(model_id) else {
        return api_error(
            state,
            StatusCode::BAD_REQUEST,
            "validation_error",
            "model_not_found",
            &format!("A model with model ID {model_id} does not exist."),
        );
    };
    let text = body
        .get("text")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let chars = text.chars().count();
    if text.trim().is_empty() {
        return bad(
            "empty_text",
            "The text is empty. Please provide some text to convert to speech.",
        );
    }
    if chars > model.max_chars {
        return bad(
            "max_character_limit_exceeded",
            &format!(
                "This request's text has {chars} characters and exceeds the character limit of {} characters for {model_id}.",
                model.max_chars
            ),
        );
    }
    let format: OutputFormat = query("output_format")
        .unwrap_or(crate::format::DEFAULT_FORMAT)
        .parse()
        .expect("validated");
    if let Codec::Opus { .. } = format.codec {
        return bad(
            "invalid_output_format",
            &format!(
                "The emulator cannot produce {format}: Opus encoding is not supported. Use an mp3, pcm, wav, ulaw or alaw format."
            ),
        );
    }
    let tier = state.config.tier;
    let gated = match format.codec {
        Codec::Mp3 { kbps: 192 } => (tier < Tier::Creator).then_some("Creator"),
        Codec::Pcm | Codec::Wav if format.sample_rate == 44_100 => {
            (tier < Tier::Pro).then_some("Pro")
        }
        _ => None,
    };
    if let Some(needed) = gated {
        return api_error(
            state,
            StatusCode::FORBIDDEN,
            "authorization_error",
            "output_format_not_allowed",
            &format!(
                "Requested output format {format} is only allowed for {needed} tier and above."
            ),
        );
    }
    let enable_logging = query("enable_logging").is_none_or(|v| v != "false");
    let previous_ids = id_list(body, "previous_request_ids");
    let next_ids = id_list(body, "next_request_ids");
    for (field, ids) in [
        ("previous_request_ids", &previous_ids),
        ("next_request_ids", &next_ids),
    ] {
        if ids.len() > 3 {
            return bad(
                "invalid_request_ids",
                &format!(
                    "A maximum of 3 request_ids can be sent in {field}; got {}.",
                    ids.len()
                ),
            );
        }
        if ids.is_empty() {
            continue;
        }
        if !model.stitching {
            return bad(
                "unsupported_model",
                &format!("Request stitching is not available for the {model_id} model."),
            );
        }
        if !enable_logging {
            return bad(
                "invalid_request_ids",
                "Request stitching is unavailable with enable_logging=false (zero retention mode).",
            );
        }
        let now = state.now();
        let issued = state.issued.lock().expect("issued lock");
        for id in ids {
            match issued.get(id) {
                None => {
                    return bad(
                        "invalid_request_ids",
                        &format!("The request id {id} in {field} is unknown."),
                    );
                }
                Some(i) if !i.complete => {
                    return bad(
                        "invalid_request_ids",
                        &format!(
                            "The request id {id} in {field} has not finished generating; read its audio to the end first."
                        ),
                    );
                }
                Some(i) if now - i.issued > 2.0 * 3600.0 => {
                    return bad(
                        "invalid_request_ids",
                        &format!("The request id {id} in {field} is older than two hours."),
                    );
                }
                Some(_) => {}
            }
        }
    }
    let mut delivery = if stream {
        Delivery::Chunked
    } else {
        Delivery::Whole
    };
    match inject_fault(state) {
        Some(Injected::Answer(response)) => return response,
        Some(Injected::Delivery(fault)) => delivery = Delivery::Fault(fault),
        None => {}
    }
    let cost = (chars as f64 * model.credits_per_char).ceil();
    {
        let mut used = state.credits_used.lock().expect("credits lock");
        let limit = state.character_limit() as f64;
        if *used + cost > limit {
            return api_error(
                state,
                StatusCode::UNAUTHORIZED,
                "payment_required",
                "quota_exceeded",
                &format!(
                    "This request exceeds your quota of {limit}. You have {} credits remaining, while {cost} credits are required for this request.",
                    (limit - *used).max(0.0)
                ),
            );
        }
        *used += cost;
    }
    let limit = tier.concurrency(model.fast);
    let now_in_flight = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _slot = InFlight(&state.in_flight);
    if now_in_flight > limit {
        *state.credits_used.lock().expect("credits lock") -= cost;
        return api_error(
            state,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "too_many_concurrent_requests",
            &format!(
                "Too many concurrent requests. Your current subscription is associated with a maximum of {limit} concurrent requests (running in parallel). This is done such that a single user does not overwhelm our systems and affect other users negatively. Please upgrade your subscription or contact sales if you want to increase this limit."
            ),
        );
    }
    let started = Instant::now();
    let delay = state.config.latency_ms as f64 + state.config.latency_per_char_ms * chars as f64;
    if delay > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(delay / 1000.0)).await;
    }
    let speed = body
        .get("voice_settings")
        .and_then(|s| s.get("speed"))
        .and_then(|s| s.as_f64())
        .unwrap_or(1.0);
    let audio = {
        let text = text.to_string();
        let voice = voice_id.to_string();
        tokio::task::spawn_blocking(move || {
            let samples = synth::speak(&text, &voice, speed, format.sample_rate);
            synth::encode(&samples, format).map(|bytes| (bytes, samples.len()))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
    };
    let (audio, sample_count) = match audio {
        Ok(a) => a,
        Err(e) => {
            return api_error(
                state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal_error",
                &e,
            );
        }
    };
    let request_id = state.next_id("request");
    let history_id = state.next_id("history");
    state.issued.lock().expect("issued lock").insert(
        request_id.clone(),
        IssuedId {
            issued: state.now(),
            complete: false,
        },
    );
    let seconds = sample_count as f64 / f64::from(format.sample_rate);
    // Faults in the body (reset, truncated, slow) hit every variant alike.
    let body = match variant {
        Variant::Full | Variant::Stream => audio,
        Variant::Timestamps | Variant::StreamTimestamps => {
            with_timestamps(text, &audio, seconds, variant)
        }
    };
    let mut response = deliver(state, body, &request_id, delivery);
    if let Delivery::Fault(fault) = delivery {
        response.extensions_mut().insert(fault);
    }
    let h = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    if matches!(variant, Variant::Full | Variant::Stream) {
        set("content-type", format.mime().to_string());
    } else {
        set("content-type", "application/json".to_string());
    }
    set("request-id", request_id);
    set("history-item-id", history_id);
    set("character-cost", format!("{cost}"));
    set("current-concurrent-requests", now_in_flight.to_string());
    set("maximum-concurrent-requests", limit.to_string());
    set("tts-latency-ms", started.elapsed().as_millis().to_string());
    set(
        "access-control-expose-headers",
        "request-id, history-item-id, character-cost, current-concurrent-requests, maximum-concurrent-requests".into(),
    );
    response
}

async fn voices(
    State(state): State<Arc<Emulator>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Response {
    let response = voices_response(&state, &query_pairs(&query), &headers);
    log_get(&state, &method, &uri, &headers, &response);
    response
}

fn log_get(state: &Emulator, method: &Method, uri: &Uri, headers: &HeaderMap, response: &Response) {
    state.log(json!({
        "time": state.now(),
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "key_present": headers.contains_key("xi-api-key"),
        "status": response.status().as_u16(),
    }));
}

fn voices_response(state: &Emulator, pairs: &[(String, String)], headers: &HeaderMap) -> Response {
    let get_one = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let page_size = match get_one("page_size").map(|v| v.parse::<i64>()) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n as usize,
        Some(Ok(n)) => {
            return validation_error(vec![
                json!({"type": "less_than_equal", "loc": ["query", "page_size"],
                "msg": "Input should be between 1 and 100", "input": n.to_string()}),
            ]);
        }
        Some(Err(_)) => {
            return validation_error(vec![
                json!({"type": "int_parsing", "loc": ["query", "page_size"],
                "msg": "Input should be a valid integer, unable to parse string as an integer", "input": get_one("page_size")}),
            ]);
        }
    };
    if let Err(response) = authorize(state, headers) {
        return *response;
    }
    let search = get_one("search").map(|s| s.to_lowercase());
    let ids: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "voice_ids")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut matching: Vec<usize> = (0..data::VOICES.len())
        .filter(|&i| {
            let (id, name, gender, accent, description) = data::VOICES[i];
            let hit = search.as_ref().is_none_or(|s| {
                [name, gender, accent, description, "premade"]
                    .iter()
                    .any(|f| f.to_lowercase().contains(s.as_str()))
            });
            hit && (ids.is_empty() || ids.contains(&id))
        })
        .collect();
    if get_one("sort").as_deref() == Some("name") {
        matching.sort_by_key(|&i| data::VOICES[i].1);
    }
    if get_one("sort_direction").as_deref() == Some("desc") {
        matching.reverse();
    }
    let start: usize = get_one("next_page_token")
        .and_then(|t| t.strip_prefix("p").and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let end = (start + page_size).min(matching.len());
    let page: Vec<Value> = matching[start.min(end)..end]
        .iter()
        .map(|&i| data::voice_json(i))
        .collect();
    let has_more = end < matching.len();
    axum::Json(json!({
        "voices": page,
        "has_more": has_more,
        "total_count": matching.len(),
        "next_page_token": if has_more { Some(format!("p{end}")) } else { None },
    }))
    .into_response()
}

async fn voice(
    State(state): State<Arc<Emulator>>,
    Path(voice_id): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Response {
    let response = match authorize(&state, &headers) {
        Err(r) => *r,
        Ok(()) => match data::VOICES.iter().position(|v| v.0 == voice_id) {
            Some(i) => axum::Json(data::voice_json(i)).into_response(),
            None => api_error(
                &state,
                StatusCode::NOT_FOUND,
                "not_found",
                "voice_not_found",
                &format!("A voice with the voice_id {voice_id} was not found."),
            ),
        },
    };
    log_get(&state, &method, &uri, &headers, &response);
    response
}

async fn list_models(
    State(state): State<Arc<Emulator>>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Response {
    let response = match authorize(&state, &headers) {
        Err(r) => *r,
        Ok(()) => axum::Json(data::models_json()).into_response(),
    };
    log_get(&state, &method, &uri, &headers, &response);
    response
}

async fn subscription(
    State(state): State<Arc<Emulator>>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Response {
    let response = match authorize(&state, &headers) {
        Err(r) => *r,
        Ok(()) => {
            let used = state.credits_used().ceil() as u64;
            let tier = state.config.tier;
            axum::Json(json!({
                "tier": tier.name(),
                "character_count": used,
                "character_limit": state.character_limit(),
                "max_character_limit_extension": 0,
                "max_credit_limit_extension": 0,
                "can_extend_character_limit": false,
                "allowed_to_extend_character_limit": false,
                "next_character_count_reset_unix": (state.now() as i64 / 86_400 + 30) * 86_400,
                "voice_slots_used": 0,
                "professional_voice_slots_used": 0,
                "professional_voice_slots_used_in_workspace": 0,
                "voice_limit": 30,
                "voice_add_edit_counter": 0,
                "professional_voice_limit": 1,
                "can_extend_voice_limit": false,
                "can_use_instant_voice_cloning": true,
                "can_use_professional_voice_cloning": tier >= Tier::Creator,
                "currency": "usd",
                "current_overage": {"amount": "0.00", "currency": "usd"},
                "status": if tier == Tier::Free { "free" } else { "active" },
                "billing_period": "monthly_period",
                "character_refresh_period": "monthly_period",
                "open_invoices": [],
                "has_open_invoices": false,
            }))
            .into_response()
        }
    };
    log_get(&state, &method, &uri, &headers, &response);
    response
}
