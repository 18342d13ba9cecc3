//! The command line as clap parses it: one struct per command, the flags exactly as typed.
//!
//! Not responsible for what the flags mean together (see `config`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
/// The whole command line: a command, or the flags of `render` (the default command).
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub render: RenderArgs,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render each manifest (the default command)
    Render(Box<RenderArgs>),
    /// Build every output from the cache alone (after shards rendered it): sends nothing, needs no key
    Assemble(Box<RenderArgs>),
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
    /// Write the review page of a render again, beside its report
    Review(ReviewArgs),
    /// Turn a book (EPUB, Markdown, text, HTML) into a manifest and one text file per chapter
    Import(ImportArgs),
    /// Render again only the segments a report lists as failed (the others from the cache), with the render flags after the report
    Retry(RetryArgs),
    /// Add the episodes of finished renders to a podcast feed (RSS 2.0, Apple and Podcasting 2.0 tags), or update them
    Feed(FeedArgs),
    /// Render the book's opening passage with each candidate voice, side by side on one page, the cost said first (the chosen voice's takes are the book's)
    Audition(Box<AuditionArgs>),
    /// Print a shell's completion script for narrate (bash, zsh, fish, powershell, elvish)
    Completions(CompletionsArgs),
    /// Print narrate's manual page (roff), for man -l or a man directory
    Man(ManArgs),
}

#[derive(Debug, Args, Clone)]
pub struct RetryArgs {
    /// The report of a render, such as out/book.report.json
    #[arg(value_name = "REPORT")]
    pub report: PathBuf,
    /// Render flags, as the first run had them (such as --state-dir DIR, --base-url URL)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "FLAGS"
    )]
    pub flags: Vec<String>,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args, Clone)]
pub struct FeedArgs {
    /// The feed to write or update, such as out/feed.xml (its episodes are kept beside it in FEED.narrate.json)
    #[arg(value_name = "FEED")]
    pub feed: PathBuf,
    /// Reports of finished renders: each output file becomes an episode
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,
    /// Where the feed's folder is served: an episode's URL is this and its path from the feed
    #[arg(long, value_name = "URL")]
    pub feed_base_url: String,
    /// The podcast's title (needed for a new feed)
    #[arg(long)]
    pub title: Option<String>,
    /// The podcast's cover image URL, 1400 to 3000 pixels square (needed for a new feed)
    #[arg(long, value_name = "URL")]
    pub image: Option<String>,
    /// The podcast's description (default: its title)
    #[arg(long)]
    pub description: Option<String>,
    /// The podcast's author
    #[arg(long)]
    pub author: Option<String>,
    /// The podcast's language (default en)
    #[arg(long)]
    pub language: Option<String>,
    /// The podcast's Apple category (default "Society & Culture")
    #[arg(long)]
    pub category: Option<String>,
    /// The podcast's web page (default: the base URL)
    #[arg(long, value_name = "URL")]
    pub link: Option<String>,
    /// Whether the podcast is explicit (default false)
    #[arg(long, value_name = "true|false")]
    pub explicit: Option<bool>,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args, Clone)]
pub struct ManArgs {
    #[command(flatten)]
    pub log: LogArgs,
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
    #[command(flatten)]
    pub log: LogArgs,
}

/// How much narrate logs on stderr, and in which form; `RUST_LOG` overrides the level.
#[derive(Debug, Args, Clone)]
pub struct LogArgs {
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

pub use crate::output::names::Split;

/// `--other-chapters`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OtherChapters {
    /// Left out of the output.
    Omit,
    /// Taken from the cache into the whole output; the listed chapters are rendered again.
    Cached,
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
    /// continuity for manifests that state none: chapter (chain a chapter's segments) or none
    /// (every segment on its own, all in parallel)
    #[arg(long, value_name = "chapter|none")]
    pub continuity: Option<crate::manifest::Continuity>,
}

#[derive(Debug, Args, Clone)]
pub struct RenderArgs {
    /// Manifests to render (.yaml, .yml or .csv), or books (.epub, .md, .txt, .html) imported in memory
    #[arg(required = true, value_name = "MANIFEST")]
    pub manifests: Vec<PathBuf>,
    /// Output file (.wav, .mp3 or .m4b); one manifest only
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
    /// Like --only, with the ids in a file: one a line, `#` starts a comment (the review page saves one)
    #[arg(long, value_name = "FILE")]
    pub only_file: Option<PathBuf>,
    /// Only these chapters, by number (as --split chapters numbers them) or title: 2,5-7,"Pig and Pepper"
    #[arg(long, value_name = "LIST")]
    pub chapters: Option<String>,
    /// With --chapters, the other chapters: left out (omit; the output is OUTPUT-STEM.chapters-N.EXT) or taken from the cache into the whole output while the listed ones are rendered again (cached)
    #[arg(long, value_enum, default_value = "omit", value_name = "omit|cached")]
    pub other_chapters: OtherChapters,
    /// Files assembled at once with --split (default: the core count)
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Write the output where Audiobookshelf finds it: DIR/<Author>/<Title>/, with cover.jpg, desc.txt and reader.txt
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub library: Option<PathBuf>,
    /// Seconds added to the clock when judging request-id ages (for tests)
    #[arg(long, default_value_t = 0, value_name = "SECS", hide = true)]
    pub clock_offset_secs: u64,
    /// Refuse to start above this many estimated credits, and stop sending before spending more
    #[arg(long, value_name = "N")]
    pub max_credits: Option<f64>,
    /// Stop sending at this deadline (90s, 45m, 2h, 1h30m): requests in flight finish, the report is written, exit status 4
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::duration::parse)]
    pub max_duration: Option<std::time::Duration>,
    /// Exit with this status when there was nothing to do: every request cached and every output unchanged (default 0)
    #[arg(long, value_name = "N")]
    pub exit_nothing_to_do: Option<u8>,
    /// Write the run's summary (exit status, counts, credits, seconds, reports) to this file as one JSON object
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,
    /// Write the run's metrics in the Prometheus text format to this file (for node_exporter's textfile collector)
    #[arg(long, value_name = "PATH")]
    pub metrics_textfile: Option<PathBuf>,
    /// Ping a dead-man's switch: URL/start at the start, URL on success, URL/<exit status> otherwise, the summary as the body
    #[arg(long, value_name = "URL")]
    pub notify_url: Option<String>,
    /// Measure loudness (EBU R128, true peak, RMS) of each segment and the whole output
    #[arg(long)]
    pub loudness: bool,
    /// Scale the output to this integrated loudness (LUFS), keeping the true peak under -1 dBTP (.mp3 output is then re-encoded)
    #[arg(long, value_name = "LUFS", allow_negative_numbers = true)]
    pub loudness_target: Option<f64>,
    /// Check the output against audiobook (ACX-style) requirements, pass or fail each, in the report
    #[arg(long)]
    pub audiobook: bool,
    /// Also deliver the book to a store, into OUTPUT-FOLDER/NAME/: its format, room tone, loudness,
    /// credits and file naming, each file measured and checked (repeatable: acx, inaudio,
    /// google-play, apple, podcast)
    #[arg(long = "profile", value_name = "NAME", value_parser = crate::stores::profile_name, conflicts_with_all = ["chapters", "shard"])]
    pub profiles: Vec<String>,
    /// With --profile, also write each store's retail sample (one to five minutes of the first
    /// chapter after the credits)
    #[arg(long, requires = "profiles")]
    pub sample: bool,
    /// One output file, one per chapter (OUTPUT-STEM-01-chapter-title.EXT) or one per segment (OUTPUT-STEM/ID.EXT)
    #[arg(long, value_enum, default_value = "none")]
    pub split: Split,
    /// Join .mp3 output sample-exactly and encode it once, instead of copying the responses' frames
    #[arg(long)]
    pub gapless: bool,
    /// Render through /with-timestamps and write word-timed captions (.srt, .vtt)
    #[arg(long)]
    pub timestamps: bool,
    /// With --timestamps, render again (and pay again for) the audio cached without character timings
    #[arg(long, requires = "timestamps")]
    pub retime: bool,
    /// Also write OUTPUT-STEM.read-along.epub: the text read along with the chapter files' audio
    /// (EPUB 3 Media Overlays; needs --split chapters; sentence by sentence with --timestamps)
    #[arg(long)]
    pub read_along: bool,
    /// Progress bar on stderr: auto (when stderr is a terminal), always, never
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: crate::progress::ProgressMode,
    /// First retry delay in milliseconds (doubles each retry, with jitter)
    #[arg(long, default_value_t = 500, value_name = "MS", hide = true)]
    pub retry_base_ms: u64,
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub defaults: DefaultArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

impl RenderArgs {
    /// Whether these flags are `assemble`'s (which needs no key).
    pub fn assemble_only(&self) -> bool {
        self.fleet.assembling
    }
}

/// Several machines on one job: the shared cache and the shards.
#[derive(Debug, Args, Clone, Default)]
pub struct FleetArgs {
    /// A cache shared by every machine of a job: s3://BUCKET/PREFIX, gs://..., az://... or file:///DIR (credentials from the store's own environment variables)
    #[arg(
        long,
        env = "NARRATE_CACHE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub cache_url: Option<String>,
    /// When the shared cache cannot be reached: error (nothing is sent) or local (a warning, then this machine's cache alone)
    #[arg(long, value_enum, default_value = "error", value_name = "error|local")]
    pub cache_fallback: CacheFallback,
    /// With assemble: how many shards rendered the job, to name the shard of a missing request
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Set for `assemble` (not a flag).
    #[arg(skip)]
    pub assembling: bool,
}

/// `--shard` and `--shard-by`, for render and plan.
#[derive(Debug, Args, Clone, Default)]
pub struct ShardArgs {
    /// Render only this share of the run: I/N (I from 1), or auto/N with a Kubernetes Indexed Job's JOB_COMPLETION_INDEX; writes the share's report, no book
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// What --shard divides: chain (the chapters of the books, balanced by characters) or manifest (whole books)
    #[arg(
        long,
        value_enum,
        default_value = "chain",
        value_name = "chain|manifest"
    )]
    pub shard_by: crate::manifest::shard::ShardBy,
}

impl ShardArgs {
    /// `--shard`, checked; `auto/N` reads `JOB_COMPLETION_INDEX` from the environment.
    pub fn parsed(
        &self,
    ) -> Result<Option<crate::manifest::shard::Shard>, crate::error::UsageError> {
        let job_index = std::env::var("JOB_COMPLETION_INDEX").ok();
        self.shard
            .as_deref()
            .map(|s| crate::manifest::shard::Shard::parse(s, job_index.as_deref()))
            .transpose()
    }
}

/// `--cache-fallback`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheFallback {
    /// A shared cache that cannot be reached stops the run before anything is sent.
    #[default]
    Error,
    /// A shared cache that cannot be reached is a warning; the run uses the local cache.
    Local,
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
    /// Count audio cached without character timings as rendered again, as render --timestamps --retime does
    #[arg(long)]
    pub retime: bool,
    /// Plan as render --profile NAME would: with the credits the store wants (repeatable)
    #[arg(long = "profile", value_name = "NAME", value_parser = crate::stores::profile_name)]
    pub profiles: Vec<String>,
    /// Show the requests the retail sample is cut from, and what they cost
    #[arg(long)]
    pub sample: bool,
    #[command(flatten)]
    pub shard: ShardArgs,
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
pub struct ReviewArgs {
    /// The report of a render, such as out/book.report.json
    #[arg(value_name = "REPORT")]
    pub report: PathBuf,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args, Clone)]
pub struct ImportArgs {
    /// The book: .epub (EPUB 2 or 3), .md, .txt or .html
    #[arg(value_name = "BOOK")]
    pub book: PathBuf,
    /// The manifest to write (default: <book>.yaml beside the book); its chapter texts go in a
    /// directory named after it
    #[arg(short, long, value_name = "MANIFEST")]
    pub output: Option<PathBuf>,
    /// Voice for every segment: an id, or a name resolved when rendering
    #[arg(long, value_name = "NAME|ID")]
    pub voice: Option<String>,
    /// Model for every segment
    #[arg(long, value_name = "ID")]
    pub model: Option<String>,
    /// output_format of the responses
    #[arg(long, value_name = "FORMAT")]
    pub output_format: Option<String>,
    /// The audio file the manifest renders to (.mp3, .wav or .m4b)
    #[arg(long, value_name = "PATH")]
    pub audio_output: Option<PathBuf>,
    /// Plain text: a line matching this regular expression starts a chapter
    #[arg(long, value_name = "REGEX")]
    pub chapter_pattern: Option<String>,
    /// Keep front and back matter (cover, contents, copyright, licence, index)
    #[arg(long)]
    pub keep_all: bool,
    /// Keep this kind of front or back matter (repeat, or separate with commas)
    #[arg(long, value_name = "KIND", value_delimiter = ',',
          value_parser = clap::builder::PossibleValuesParser::new(crate::import::MATTER.iter().map(|(k, _)| *k)))]
    pub keep: Vec<String>,
    /// Chapters at this level of a nested table of contents (1 = the top level); the levels
    /// above name them as parts [default: the entries that hold the text]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=9))]
    pub toc_depth: Option<u8>,
    /// Read images' alt text aloud
    #[arg(long)]
    pub alt_text: bool,
    /// Pause after each chapter title
    #[arg(long, default_value_t = crate::import::DEFAULT_TITLE_PAUSE_MS, value_name = "MS")]
    pub title_pause_ms: u64,
    /// Replace an existing manifest and its chapter files
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub log: LogArgs,
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
    /// Seconds a request's body may take to arrive once its headers have
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub body_timeout: f64,
    /// MiB of answers held for clients that have not read them; past it, requests wait
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub undelivered_mib: u32,
    /// Serve no speech history (every /v1/history path answers 404)
    #[arg(long)]
    pub no_history: bool,
    /// Serve the history's audio in this output format, whatever each request's was
    #[arg(long, value_name = "FORMAT")]
    pub history_format: Option<String>,
    #[command(flatten)]
    pub log: LogArgs,
}

/// `narrate audition`: the opening passage in several voices.
#[derive(Debug, clap::Args)]
pub struct AuditionArgs {
    /// The candidate voices, by id or by name: A,B,C
    #[arg(long, value_delimiter = ',', required = true, value_name = "VOICES")]
    pub voices: Vec<String>,
    /// Read with this model instead of the manifest's
    #[arg(long, value_name = "MODEL_ID")]
    pub model: Option<String>,
    /// How long a passage (minutes of speech, about 15 characters a second)
    #[arg(long, default_value_t = 2.0, value_name = "MINUTES")]
    pub minutes: f64,
    #[command(flatten)]
    pub render: RenderArgs,
}
