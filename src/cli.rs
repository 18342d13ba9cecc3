//! The command line: raw flags as clap parses them ([`Cli`]), resolved into a validated
//! [`RenderConfig`] (environment, defaults and paths) before anything runs.
//!
//! Not responsible for doing the work (see `lib.rs`).

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::api::ApiKey;
use crate::execute::Concurrency;
use crate::manifest::FlagDefaults;

/// The default API.
pub const DEFAULT_BASE_URL: &str = "https://api.elevenlabs.io";

#[derive(Debug, Parser)]
#[command(
    name = "narrate",
    version,
    about = "Render manifests of text into narrated audio with the ElevenLabs text-to-speech API",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub render: RenderArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render each manifest (the default command)
    Render(RenderArgs),
    /// Show the requests, characters and estimated credits of each manifest; sends no TTS request
    Plan(PlanArgs),
    /// Validate manifests without sending anything
    Check(CheckArgs),
    /// List the account's voices (GET /v2/voices, every page)
    Voices(VoicesArgs),
    /// List the models and their per-request character limits (GET /v1/models)
    Models(ModelsArgs),
    /// Run the built-in ElevenLabs-compatible API server
    Emulate(EmulateArgs),
}

/// Where the API is and how to authenticate.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// Read the API key from this file (otherwise ELEVENLABS_API_KEY)
    #[arg(long, value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,
    /// The API's base URL
    #[arg(long, env = "ELEVENLABS_BASE_URL", value_name = "URL", default_value = DEFAULT_BASE_URL)]
    pub base_url: String,
    /// Use the built-in emulator on a loopback port: no key, no network, synthetic audio
    #[arg(long)]
    pub emulate: bool,
    /// More logging on stderr (-v info, -vv debug)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log lines as text or as JSON objects (for nightly jobs)
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
}

/// `--split`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    /// One output file.
    None,
    /// One file per chapter.
    Chapters,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Values a manifest may leave out (a bare CSV has no defaults of its own).
#[derive(Debug, Args, Clone)]
pub struct DefaultArgs {
    /// Voice for segments that name none
    #[arg(long, value_name = "ID")]
    pub voice_id: Option<String>,
    /// Model for segments that name none
    #[arg(long, value_name = "ID")]
    pub model_id: Option<String>,
    /// output_format for manifests that name none
    #[arg(long, value_name = "FORMAT")]
    pub output_format: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct RenderArgs {
    /// Manifests to render (.yaml, .yml or .csv)
    #[arg(required = true, value_name = "MANIFEST")]
    pub manifests: Vec<PathBuf>,
    /// Output file (.wav or .mp3); one manifest only
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Requests in flight at once: a number, or auto (follow the account's limit)
    #[arg(long, default_value = "auto", value_name = "N|auto")]
    pub concurrency: String,
    /// Requests per second, every attempt counted
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub rate: u32,
    /// Retries of one request after a retryable error
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_retries: u32,
    /// Seconds before one attempt times out
    #[arg(long, default_value_t = 240.0, value_name = "SECS")]
    pub request_timeout: f64,
    /// Cache and run state (default: .narrate/ beside each manifest)
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Neither read nor write the cache
    #[arg(long)]
    pub no_cache: bool,
    /// Render these segments again (all others must be cached), with the cached neighbours as context
    #[arg(long, value_name = "ID", num_args = 1.., value_delimiter = ',')]
    pub only: Vec<String>,
    /// Seconds added to the clock when judging request-id ages (for tests)
    #[arg(long, default_value_t = 0, value_name = "SECS", hide = true)]
    pub clock_offset_secs: u64,
    /// Refuse to start above this many estimated credits, and stop sending before spending more
    #[arg(long, value_name = "N")]
    pub max_credits: Option<f64>,
    /// Measure loudness (EBU R128, true peak, RMS) of each segment and the whole output
    #[arg(long)]
    pub loudness: bool,
    /// Scale the output to this integrated loudness (LUFS), keeping the true peak under -1 dBTP (.mp3 output is then re-encoded)
    #[arg(long, value_name = "LUFS", allow_negative_numbers = true)]
    pub loudness_target: Option<f64>,
    /// Check the output against audiobook (ACX-style) requirements, pass or fail each, in the report
    #[arg(long)]
    pub audiobook: bool,
    /// One output file per chapter, named after it: OUTPUT-STEM-01-chapter-title.EXT
    #[arg(long, value_enum, default_value = "none")]
    pub split: Split,
    /// Join .mp3 output sample-exactly and encode it once, instead of copying the responses' frames
    #[arg(long)]
    pub gapless: bool,
    /// Render through /with-timestamps and write word-timed captions (.srt, .vtt)
    #[arg(long)]
    pub timestamps: bool,
    /// Progress bar on stderr: auto (when stderr is a terminal), always, never
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: crate::progress::ProgressMode,
    /// First retry delay in milliseconds (doubles each retry, with jitter)
    #[arg(long, default_value_t = 500, value_name = "MS", hide = true)]
    pub retry_base_ms: u64,
    #[command(flatten)]
    pub defaults: DefaultArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args, Clone)]
pub struct PlanArgs {
    #[arg(required = true, value_name = "MANIFEST")]
    pub manifests: Vec<PathBuf>,
    /// One JSON document on stdout instead of text
    #[arg(long)]
    pub json: bool,
    /// Cache to count hits in (default: .narrate/ beside each manifest)
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub defaults: DefaultArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args, Clone)]
pub struct CheckArgs {
    #[arg(required = true, value_name = "MANIFEST")]
    pub manifests: Vec<PathBuf>,
    #[command(flatten)]
    pub defaults: DefaultArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args, Clone)]
pub struct ModelsArgs {
    /// The API's JSON instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args, Clone)]
pub struct VoicesArgs {
    /// Only voices whose name, description or labels contain this
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// JSON (every voice of every page) instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args, Clone)]
pub struct EmulateArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub listen: String,
    /// Accept only this key (default: any non-empty key)
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Subscription tier: free, starter, creator, pro, scale, business
    #[arg(long, default_value = "pro")]
    pub tier: String,
    /// Credits available (the subscription's character_limit)
    #[arg(long, default_value_t = 10_000_000)]
    pub quota: u64,
    /// Latency added to every TTS response
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Latency added per character of text
    #[arg(long, default_value_t = 0.0)]
    pub latency_per_char_ms: f64,
    /// Append one JSON line per request to this file
    #[arg(long, value_name = "FILE")]
    pub request_log: Option<PathBuf>,
    /// Faults to inject into TTS requests, comma-separated: busy, busy-retry-after, 500, 503
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    pub faults: Vec<String>,
    /// Probability that a TTS request fails with one of --faults
    #[arg(long, default_value_t = 0.1, value_name = "P")]
    pub fault_rate: f64,
    /// Seed of the fault draws (same seed, same faults)
    #[arg(long, default_value_t = 1)]
    pub fault_seed: u64,
    /// Connections served at once; more are closed when accepted
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub max_connections: usize,
    /// Seconds a connection may take to send a request's headers (idle keep-alive included)
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub header_timeout: f64,
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log lines as text or as JSON objects
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// A usage or configuration problem: exit status 2, nothing sent.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// Where requests go and with which key.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub emulate: bool,
    pub base_url: String,
    pub key: Option<ApiKey>,
    /// `--api-key-file`, an input no output may overwrite.
    pub key_file: Option<PathBuf>,
}

/// Resolves the key and base URL. `need_key` is false for commands that can run without one.
pub fn endpoint(
    api: &ApiArgs,
    env_key: Option<String>,
    need_key: bool,
) -> anyhow::Result<Endpoint> {
    if api.emulate {
        return Ok(Endpoint {
            emulate: true,
            base_url: String::new(),
            key: Some(ApiKey::new("emulator")),
            key_file: None,
        });
    }
    let key = match &api.api_key_file {
        Some(path) => {
            let origin = format!("--api-key-file {}", path.display());
            let text = crate::files::read_text(path, crate::files::MAX_KEY_FILE_BYTES)
                .map_err(|e| usage(format!("{origin}: {e}")))?;
            if let Some(mode) = crate::files::readable_by_others(path) {
                tracing::warn!(
                    "{origin}: the key file has mode {mode:03o}, readable by other users; chmod 600 it"
                );
            }
            Some(checked_key(&text, &origin, "the key file")?)
        }
        None => match env_key.filter(|k| !k.trim().is_empty()) {
            Some(k) => Some(checked_key(&k, "ELEVENLABS_API_KEY", "the key")?),
            None => None,
        },
    };
    if key.is_none() && need_key {
        return Err(usage(
            "no API key: set ELEVENLABS_API_KEY or pass --api-key-file PATH (or try --emulate for the built-in emulator)",
        ));
    }
    let base_url = checked_base_url(&api.base_url)?;
    Ok(Endpoint {
        emulate: false,
        base_url,
        key,
        key_file: api.api_key_file.clone(),
    })
}

/// An API key as given, checked without ever showing it: one line, no spaces or control
/// characters inside (surrounding whitespace, such as the file's final newline, is dropped).
fn checked_key(text: &str, origin: &str, what: &str) -> anyhow::Result<ApiKey> {
    let key = text.trim();
    if key.is_empty() {
        return Err(usage(format!("{origin}: {what} is empty")));
    }
    let lines = key.lines().count();
    if lines > 1 {
        return Err(usage(format!(
            "{origin}: {what} has {lines} lines; it must hold the key alone on one line"
        )));
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(usage(format!(
            "{origin}: {what} has a space or a control character inside; it must hold the key alone"
        )));
    }
    Ok(ApiKey::new(key))
}

/// The base URL, parsed: `http` or `https`, a host, no credentials, query or fragment. Returned
/// without a trailing slash, so endpoints join to it.
pub fn checked_base_url(raw: &str) -> anyhow::Result<String> {
    let trimmed = raw.trim();
    let bad = |why: &str| usage(format!("--base-url {trimmed:?}: {why}"));
    let url = url::Url::parse(trimmed).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not carry credentials; the key goes in ELEVENLABS_API_KEY",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or a fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// A validated `render`.
#[derive(Clone, Debug)]
pub struct RenderConfig {
    pub manifests: Vec<PathBuf>,
    pub output: Option<PathBuf>,
    pub concurrency: Concurrency,
    pub rate: Option<NonZeroU32>,
    pub max_retries: u32,
    pub request_timeout: Duration,
    pub retry_base: Duration,
    pub state_dir: Option<PathBuf>,
    pub no_cache: bool,
    pub max_credits: Option<f64>,
    /// Segment ids to render again (`--only`).
    pub only: Vec<String>,
    pub clock_offset: Duration,
    pub progress: crate::progress::ProgressMode,
    pub loudness: bool,
    pub loudness_target: Option<f64>,
    pub audiobook: bool,
    pub split: Split,
    pub gapless: bool,
    pub timestamps: bool,
    pub defaults: FlagDefaults,
    pub endpoint: Endpoint,
}

impl RenderConfig {
    pub fn from_args(args: &RenderArgs, env_key: Option<String>) -> anyhow::Result<Self> {
        if args.output.is_some() && args.manifests.len() > 1 {
            return Err(usage(
                "-o/--output takes one manifest; each of several manifests names its own output",
            ));
        }
        let concurrency = match args.concurrency.as_str() {
            "auto" => Concurrency::Auto,
            n => match n.parse::<usize>() {
                Ok(n) if n >= 1 => Concurrency::Fixed(n),
                _ => {
                    return Err(usage(format!(
                        "--concurrency {n:?}: expected a number of at least 1, or auto"
                    )));
                }
            },
        };
        if !args.only.is_empty() && args.no_cache {
            return Err(usage(
                "--only re-renders some segments and takes the rest from the cache; it cannot be used with --no-cache",
            ));
        }
        if let Some(max) = args.max_credits
            && !(max.is_finite() && max >= 0.0)
        {
            return Err(usage("--max-credits must be a number of at least 0"));
        }
        if let Some(target) = args.loudness_target
            && !(-70.0..=-5.0).contains(&target)
        {
            return Err(usage(format!(
                "--loudness-target {target}: expected LUFS between -70 and -5, such as -19"
            )));
        }
        if !(args.request_timeout.is_finite() && args.request_timeout > 0.0) {
            return Err(usage(
                "--request-timeout must be a positive number of seconds",
            ));
        }
        Ok(RenderConfig {
            manifests: args.manifests.clone(),
            output: args.output.clone(),
            concurrency,
            rate: NonZeroU32::new(args.rate),
            max_retries: args.max_retries,
            request_timeout: Duration::from_secs_f64(args.request_timeout),
            retry_base: Duration::from_millis(args.retry_base_ms),
            state_dir: args.state_dir.clone(),
            no_cache: args.no_cache,
            max_credits: args.max_credits,
            only: args.only.clone(),
            clock_offset: Duration::from_secs(args.clock_offset_secs),
            progress: args.progress,
            loudness: args.loudness,
            loudness_target: args.loudness_target,
            audiobook: args.audiobook,
            split: args.split,
            gapless: args.gapless,
            timestamps: args.timestamps,
            defaults: flag_defaults(&args.defaults),
            endpoint: endpoint(&args.api, env_key, true)?,
        })
    }

    /// The state directory of one manifest.
    pub fn state_dir_for(&self, manifest: &Path) -> PathBuf {
        state_dir_for(self.state_dir.as_deref(), manifest)
    }
}

/// `--state-dir`, or `.narrate/` beside the manifest.
pub fn state_dir_for(state_dir: Option<&Path>, manifest: &Path) -> PathBuf {
    match state_dir {
        Some(dir) => dir.to_path_buf(),
        None => manifest.parent().unwrap_or(Path::new(".")).join(".narrate"),
    }
}

pub fn flag_defaults(args: &DefaultArgs) -> FlagDefaults {
    FlagDefaults {
        voice_id: args.voice_id.clone(),
        model_id: args.model_id.clone(),
        output_format: args.output_format.clone(),
    }
}
