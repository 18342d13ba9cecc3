//! The emulator's shared state: the request ids it issued (and whether their audio was delivered
//! in full), credits used, requests in flight, its clock and the request log.
//!
//! Not responsible for answering requests (see `tts`, `account`).

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Config, synth};
use crate::format::OutputFormat;

pub(crate) struct IssuedId {
    /// Emulator-clock seconds.
    pub(crate) issued: f64,
    pub(crate) complete: bool,
}

/// One generation, as the history lists it.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub(crate) id: String,
    pub(crate) request_id: String,
    pub(crate) date_unix: i64,
    pub(crate) credits_from: u64,
    pub(crate) credits_to: u64,
    pub(crate) voice_id: String,
    pub(crate) model_id: String,
    pub(crate) text: String,
    /// The request's `voice_settings`, as sent.
    pub(crate) settings: Value,
    pub(crate) format: OutputFormat,
    /// How long its audio is: the character timings are spread over it, as `/with-timestamps`
    /// does.
    pub(crate) seconds: f64,
    /// Generated to the end (`state: created`), or still `processing`.
    pub(crate) created: bool,
}

/// One dictionary: its versions' rules, oldest first.
pub(crate) struct Dictionary {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) created: i64,
    pub(crate) versions: Vec<(String, Vec<Value>)>,
}

impl Dictionary {
    /// Its latest version: (version id, rules).
    pub(crate) fn latest(&self) -> &(String, Vec<Value>) {
        self.versions.last().expect("a dictionary has a version")
    }
}

/// How long a request waits for room among the undelivered answers before it is told the
/// system is busy (429).
pub(crate) const UNDELIVERED_WAIT: Duration = Duration::from_secs(30);

/// Shared server state.
pub struct Emulator {
    pub(crate) config: Config,
    pub(crate) issued: Mutex<HashMap<String, IssuedId>>,
    pub(crate) credits_used: Mutex<f64>,
    /// The subscription's limit; tests may change it while running.
    pub(crate) character_limit: AtomicU64,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) counter: AtomicU64,
    /// Text-to-speech requests arrived, watched by held answers (`Config::hold_answers_until`).
    pub(crate) arrivals: tokio::sync::watch::Sender<usize>,
    /// Text-to-speech answers made (each counted before it is sent).
    pub(crate) answered: AtomicUsize,
    /// Seconds the emulator's clock runs ahead of the real one.
    pub(crate) clock_offset: AtomicU64,
    pub(crate) log: Mutex<Option<std::fs::File>>,
    pub(crate) started: Instant,
    /// Every generation, oldest first (see `history`).
    pub(crate) history: Mutex<Vec<Item>>,
    /// How many times each request content was asked for, for fault draws.
    pub(crate) attempts_seen: Mutex<HashMap<u64, u32>>,
    /// The account's pronunciation dictionaries, oldest first.
    pub(crate) dictionaries: Mutex<Vec<Dictionary>>,
    /// Generations synthesized at once: one per core. Requests beyond wait (still counted in
    /// flight, as on a busy server), so memory is bounded by the cores, not by the requests.
    pub(crate) synthesis: tokio::sync::Semaphore,
    /// Answers made but not yet taken by their clients, in MiB: a client that never reads its
    /// answer holds its share until it closes, and the whole stays under a bound.
    pub(crate) undelivered: Arc<tokio::sync::Semaphore>,
}

impl Emulator {
    /// The state of an emulator with `config`; opens the request log, if any.
    pub fn new(config: Config) -> std::io::Result<Arc<Self>> {
        let undelivered = config.undelivered_mib.max(1) as usize;
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
            arrivals: tokio::sync::watch::Sender::new(0),
            answered: AtomicUsize::new(0),
            clock_offset: AtomicU64::new(0),
            log: Mutex::new(log),
            started: Instant::now(),
            history: Mutex::new(Vec::new()),
            attempts_seen: Mutex::new(HashMap::new()),
            dictionaries: Mutex::new(Vec::new()),
            synthesis: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            undelivered: Arc::new(tokio::sync::Semaphore::new(undelivered)),
        }))
    }

    /// Text-to-speech requests being handled right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Moves the emulator's clock forward (request ids age with it).
    pub fn advance_clock(&self, by: Duration) {
        self.clock_offset.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    pub(crate) fn now(&self) -> f64 {
        unix_now() + self.clock_offset.load(Ordering::SeqCst) as f64
    }

    /// Changes the subscription's credit limit.
    pub fn set_character_limit(&self, limit: u64) {
        self.character_limit.store(limit, Ordering::SeqCst);
    }

    pub(crate) fn character_limit(&self) -> u64 {
        self.character_limit.load(Ordering::SeqCst)
    }

    /// Credits charged so far.
    pub fn credits_used(&self) -> f64 {
        *self.credits_used.lock().expect("credits lock")
    }

    pub(crate) fn next_id(&self, salt: &str) -> String {
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

    pub(crate) fn trace_id(&self) -> String {
        let a = synth::fnv(self.next_id("trace").as_bytes());
        let b = synth::fnv(&a.to_le_bytes());
        format!("{a:016x}{b:016x}")
    }

    /// The account's pronunciation dictionaries (a panic elsewhere does not lock them away).
    pub(crate) fn dictionaries(&self) -> std::sync::MutexGuard<'_, Vec<Dictionary>> {
        self.dictionaries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn log(&self, entry: Value) {
        if let Some(file) = self.log.lock().expect("log lock").as_mut() {
            let mut line = entry.to_string();
            line.push('\n');
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
