//! Flags resolved into validated configuration: the key (checked, never shown), the base URL
//! (parsed), and a [`RenderConfig`] whose values are known to make sense together.
//!
//! Not responsible for doing the work (see `commands`).

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::args::{ApiArgs, DefaultArgs, RenderArgs};
use crate::api::ApiKey;
use crate::error::usage;
use crate::execute::Concurrency;
use crate::manifest::FlagDefaults;
use crate::state::StateDir;

/// Where requests go and with which key.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub emulate: bool,
    pub base_url: String,
    pub key: Option<ApiKey>,
    /// `--api-key-file`, an input no output may overwrite.
    pub key_file: Option<PathBuf>,
}

impl Endpoint {
    /// The cache's namespace for audio from this endpoint: `emulator` (synthetic audio) or the
    /// normalized base URL, so audio from different services never mixes. The one place this
    /// is decided, for render and plan alike.
    pub fn source(&self) -> String {
        if self.emulate {
            "emulator".to_string()
        } else {
            self.base_url.clone()
        }
    }
}

/// Resolves the key and base URL. `need_key` is false for commands that can run without one.
pub(crate) fn endpoint(
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
pub(crate) fn checked_base_url(raw: &str) -> anyhow::Result<String> {
    checked_url("--base-url", raw)
}

/// A URL a flag names: http or https, with a host, without credentials, a query or a fragment;
/// without its trailing '/'.
pub(crate) fn checked_url(flag: &str, raw: &str) -> anyhow::Result<String> {
    let trimmed = raw.trim();
    let shown = without_credentials(trimmed);
    let bad = |why: &str| usage(format!("{flag} {shown:?}: {why}"));
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

/// A URL as it may be shown: whatever stands before an `@` in its authority (a user name and a
/// password) replaced by `***`, even when the rest does not parse.
fn without_credentials(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_string(),
    }
}

/// The segment ids of an `--only-file`: one a line; `#` starts a comment, blank lines are
/// skipped. An id that cannot be one is refused with its line.
fn only_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = crate::files::read_text(path, crate::files::MAX_INPUT_BYTES)
        .map_err(|e| usage(format!("--only-file {}: {e}", path.display())))?;
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let id = line.split('#').next().unwrap_or("").trim();
        if id.is_empty() {
            continue;
        }
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(usage(format!(
                "--only-file {}:{}: {id:?} is not a segment id",
                path.display(),
                n + 1
            )));
        }
        ids.push(id.to_string());
    }
    if ids.is_empty() {
        return Err(usage(format!(
            "--only-file {}: no segment ids in it",
            path.display()
        )));
    }
    Ok(ids)
}

/// Where a run's outcome goes besides stdout: set from the command line (see
/// `commands::outcome`).
#[derive(Clone, Debug, Default)]
pub struct Outcomes {
    /// `--summary-json PATH`.
    pub summary_json: Option<PathBuf>,
    /// `--metrics-textfile PATH`.
    pub metrics_textfile: Option<PathBuf>,
    /// `--notify-url URL` (checked: http or https, no credentials).
    pub notify_url: Option<String>,
    /// The summary as the last line of the log (`--log-format json`).
    pub summary_line: bool,
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
    /// `--max-duration`: nothing more is sent after it.
    pub max_duration: Option<Duration>,
    /// `--exit-nothing-to-do`.
    pub exit_nothing_to_do: Option<u8>,
    /// The summary, metrics and pings of the run.
    pub outcomes: Outcomes,
    /// Segment ids to render again (`--only`).
    pub only: Vec<String>,
    /// `--library`: the Audiobookshelf library the outputs go into.
    pub library: Option<PathBuf>,
    /// `--chapters` and what becomes of the others.
    pub chapters: Option<(String, crate::cli::args::OtherChapters)>,
    pub clock_offset: Duration,
    pub progress: crate::progress::ProgressMode,
    /// How the files are published: `--loudness`, `--loudness-target`, `--audiobook`,
    /// `--split`, `--gapless`, `--jobs`.
    pub publish: crate::publish::Options,
    pub timestamps: bool,
    /// `--retime`: audio cached without character timings is rendered again.
    pub retime: bool,
    pub defaults: FlagDefaults,
    pub endpoint: Endpoint,
    /// The shared cache and the shards.
    pub fleet: Fleet,
}

/// Several machines on one job: `--cache-url`, `--shard`, and what `assemble` needs.
#[derive(Clone, Debug, Default)]
pub struct Fleet {
    pub cache_url: Option<String>,
    pub cache_fallback: crate::cli::args::CacheFallback,
    pub shard: Option<crate::manifest::shard::Shard>,
    pub shard_by: crate::manifest::shard::ShardBy,
    /// `--shards`: how many shards rendered the job (named for a missing request).
    pub shards: Option<usize>,
    /// `assemble`: every request comes from the cache; nothing is sent.
    pub cache_only: bool,
}

/// The fleet flags of a render, checked.
fn fleet(args: &RenderArgs) -> anyhow::Result<Fleet> {
    let flags = &args.fleet;
    let shard = flags.shard.parsed()?;
    if args.no_cache && (shard.is_some() || flags.cache_url.is_some()) {
        return Err(usage(
            "--shard and --cache-url keep what is rendered in the cache for the assembly; they cannot be used with --no-cache",
        ));
    }
    if let Some(n) = flags.shards
        && !(1..=crate::manifest::shard::MAX_SHARDS).contains(&n)
    {
        return Err(usage(format!(
            "--shards {n}: expected 1 to {}",
            crate::manifest::shard::MAX_SHARDS
        )));
    }
    Ok(Fleet {
        cache_url: flags.cache_url.clone().filter(|u| !u.trim().is_empty()),
        cache_fallback: flags.cache_fallback,
        shard,
        shard_by: flags.shard.shard_by,
        shards: flags.shards,
        cache_only: false,
    })
}

/// `--concurrency`: a number of at least 1, or `auto`.
fn concurrency(value: &str) -> anyhow::Result<Concurrency> {
    match value {
        "auto" => Ok(Concurrency::Auto),
        n => match n.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Concurrency::Fixed(n)),
            _ => Err(usage(format!(
                "--concurrency {n:?}: expected a number of at least 1, or auto"
            ))),
        },
    }
}

/// `--jobs`: at least 1 (at most 256); by default the core count.
fn jobs(value: Option<usize>) -> anyhow::Result<usize> {
    match value {
        Some(0) => Err(usage(
            "--jobs 0: at least one file must be assembled at a time",
        )),
        Some(n) => Ok(n.min(256)),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// The numeric flags' ranges: `--max-credits`, `--loudness-target`, `--request-timeout`.
fn check_numbers(args: &RenderArgs) -> anyhow::Result<()> {
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
    Ok(())
}

impl RenderConfig {
    /// Validates `render`'s flags; `env_key` is `ELEVENLABS_API_KEY`.
    pub fn from_args(args: &RenderArgs, env_key: Option<String>) -> anyhow::Result<Self> {
        if args.output.is_some() && args.manifests.len() > 1 {
            return Err(usage(
                "-o/--output takes one manifest; each of several manifests names its own output",
            ));
        }
        let concurrency = concurrency(&args.concurrency)?;
        if args.chapters.is_some() && args.manifests.len() > 1 {
            return Err(usage(
                "--chapters takes one manifest: chapter numbers and titles belong to one book",
            ));
        }
        let cached_chapters = args.chapters.is_some()
            && args.other_chapters == crate::cli::args::OtherChapters::Cached;
        if cached_chapters && args.no_cache {
            return Err(usage(
                "--other-chapters cached takes the other chapters from the cache; it cannot be used with --no-cache",
            ));
        }
        let mut only = args.only.clone();
        if let Some(file) = &args.only_file {
            only.extend(only_file(file)?);
        }
        if !only.is_empty() && args.no_cache {
            return Err(usage(
                "--only re-renders some segments and takes the rest from the cache; it cannot be used with --no-cache",
            ));
        }
        check_numbers(args)?;
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
            max_duration: args.max_duration,
            exit_nothing_to_do: args.exit_nothing_to_do,
            outcomes: Outcomes {
                summary_json: args.summary_json.clone(),
                metrics_textfile: args.metrics_textfile.clone(),
                notify_url: args
                    .notify_url
                    .as_deref()
                    .map(|u| checked_url("--notify-url", u))
                    .transpose()?,
                summary_line: args.api.log.log_format == super::args::LogFormat::Json,
            },
            only,
            clock_offset: Duration::from_secs(args.clock_offset_secs),
            progress: args.progress,
            publish: crate::publish::Options {
                loudness: args.loudness || args.audiobook,
                loudness_target: args.loudness_target,
                audiobook: args.audiobook,
                split: args.split,
                gapless: args.gapless,
                jobs: jobs(args.jobs)?,
                read_along: read_along(args)?,
                profiles: crate::stores::chosen(&args.profiles),
                sample: args.sample,
                peak_ceiling_dbtp: None,
            },
            library: args.library.clone(),
            chapters: args
                .chapters
                .clone()
                .map(|list| (list, args.other_chapters)),
            timestamps: args.timestamps,
            retime: args.retime,
            defaults: flag_defaults(&args.defaults),
            endpoint: endpoint(&args.api, env_key, !args.assemble_only())?,
            fleet: fleet(args)?,
        })
    }

    /// `assemble`: the render of every output from the cache alone.
    pub fn for_assembly(mut self) -> anyhow::Result<Self> {
        if self.fleet.shard.is_some() {
            return Err(usage(
                "assemble builds the whole job; --shard is for render (use --shards N to name the shard of a missing request)",
            ));
        }
        if self.no_cache {
            return Err(usage(
                "assemble builds from the cache; it cannot be used with --no-cache",
            ));
        }
        self.fleet.cache_only = true;
        Ok(self)
    }

    /// The execution settings of a render.
    pub(crate) fn execute_settings(&self, source: String) -> crate::execute::Settings {
        crate::execute::Settings {
            concurrency: self.concurrency,
            rate: self.rate,
            max_retries: self.max_retries,
            retry_base: self.retry_base,
            retry_cap: std::time::Duration::from_secs(60),
            source,
            synthetic: self.endpoint.emulate,
            max_credits: self.max_credits,
            breaker_threshold: 20,
            clock_offset: self.clock_offset,
            timestamps: self.timestamps,
            retime: self.retime,
            cache_only: self.fleet.cache_only,
        }
    }

    /// The state directory of one manifest.
    pub fn state_dir_for(&self, manifest: &Path) -> StateDir {
        StateDir::for_manifest(self.state_dir.as_deref(), manifest)
    }
}

pub(crate) fn flag_defaults(args: &DefaultArgs) -> FlagDefaults {
    FlagDefaults {
        voice_id: args.voice_id.clone(),
        model_id: args.model_id.clone(),
        output_format: args.output_format.clone(),
        continuity: args.continuity,
    }
}

/// `--read-along`, refused without `--split chapters`: the book's audio is its chapter files.
fn read_along(args: &super::args::RenderArgs) -> Result<bool, crate::error::UsageError> {
    if args.read_along && args.split != crate::output::names::Split::Chapters {
        return Err(crate::error::UsageError(
            "--read-along needs --split chapters: the read-along book's audio is one file a chapter".into(),
        ));
    }
    Ok(args.read_along)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_base_url_are_never_shown() {
        for raw in [
            "https://user:hunter2@api.example.com/v1",
            "http://hunter2@[::1",
            "https://a:hunter2@b@host?x=1",
        ] {
            let e = checked_base_url(raw).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains("***"), "{e}");
        }
        assert_eq!(
            without_credentials("https://api.example.com/a@b"),
            "https://api.example.com/a@b"
        );
    }
}
