//! Reading a manifest (YAML with `segments` or `segments_csv`, or a bare CSV) into a validated
//! [`Job`]: defaults applied, `text_file`s read, every field checked before anything is sent.
//!
//! - `raw`: the shapes serde reads; `yaml` and `csv`: the two syntaxes.
//! - `resolve`: defaults applied and each field validated, one segment at a time.
//! - `voices`: voice names resolved to ids once the account's voices are known.
//!
//! Every error names the file, the line and the field. Not responsible for splitting texts into
//! requests (see `plan`).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::format::OutputFormat;

mod book;
pub mod chapters;
mod csv;
mod raw;
mod resolve;
pub mod shard;
mod voices;
mod yaml;

pub use crate::api::types::{DictionaryLocator, VoiceSettings};
pub use voices::{has_voice_names, resolve_voice_names};

/// A manifest problem, located in its file.
#[derive(Debug, thiserror::Error)]
pub struct ManifestError {
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// The field at fault, such as `segments[3].voice_settings.stability`.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl From<ManifestError> for crate::error::UsageError {
    fn from(e: ManifestError) -> Self {
        crate::error::UsageError(e.to_string())
    }
}

/// Values from the command line that a manifest may leave out (a bare CSV has no `defaults`).
#[derive(Clone, Debug, Default)]
pub struct FlagDefaults {
    pub voice_id: Option<String>,
    pub model_id: Option<String>,
    pub output_format: Option<String>,
    /// `--continuity`, for manifests that state none (a bare CSV, a book).
    pub continuity: Option<Continuity>,
}

/// What chains requests, so each is read as the continuation of the one before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Continuity {
    /// The segments of a chapter, with one voice and model, are one chain: ids and
    /// neighbouring text are sent (a book).
    #[default]
    Chapter,
    /// Every segment is its own chain: no ids and no neighbouring text, and all of them run in
    /// parallel up to the concurrency cap (a batch of unrelated items).
    #[serde(rename = "none")]
    #[value(name = "none")]
    Independent,
}

/// A validated segment with every default resolved (serialized only to be set aside on disk
/// while a content job is rendered a window at a time).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    pub id: String,
    pub chapter: Option<String>,
    pub text: String,
    /// Empty until a `voice` name is resolved (see [`resolve_voice_names`]).
    pub voice_id: String,
    /// The `voice` name the manifest gave instead of an id.
    pub voice_name: Option<String>,
    pub model_id: String,
    pub language_code: Option<String>,
    pub voice_settings: Option<VoiceSettings>,
    pub pronunciation_dictionary_locators: Vec<DictionaryLocator>,
    pub seed: Option<u32>,
    /// `auto`, `on` or `off`; omitted from the body when unset.
    pub apply_text_normalization: Option<String>,
    /// `false` is zero-retention mode, which turns request stitching off.
    pub enable_logging: bool,
    pub max_request_chars: usize,
    pub pause_after_ms: u64,
    pub chapter_pause_ms: u64,
    /// Where the segment is defined, for messages.
    pub line: u64,
}

/// A manifest, parsed and validated.
#[derive(Clone, Debug)]
pub struct Job {
    pub manifest: PathBuf,
    /// Title, author, narrator, year, description and cover.
    pub book: crate::book::Metadata,
    /// Written to the MP3's ID3 tag (TALB).
    pub album: Option<String>,
    pub output: PathBuf,
    pub output_format: OutputFormat,
    pub lead_in_ms: u64,
    pub tail_ms: u64,
    /// What chains requests for continuity: the chapter (with voice and model), or nothing
    /// (each segment stands alone).
    pub continuity: Continuity,
    /// Trim each response's leading and trailing silence, so pauses are the manifest's.
    pub trim_silence: bool,
    pub segments: Vec<Segment>,
    /// Every file this job was read from (the manifest, its CSV, its `text_file`s): no output
    /// may be one of them.
    pub inputs: Vec<PathBuf>,
    /// Set when `--chapters` restricts the job to some of its chapters.
    pub subset: Option<chapters::Subset>,
    /// Set when `--shard` restricts the job to one shard's share: its report, and no book.
    pub shard: Option<shard::Shard>,
    /// For `assemble --shards N`: N, and the shard (from 0) that rendered each segment.
    pub shard_owners: Option<(usize, Vec<usize>)>,
    /// The EPUB the manifest was imported from (`source`): a read-along book keeps its pages.
    pub source: Option<PathBuf>,
    /// With `--library`: the book's folder there, where its metadata files go beside the audio.
    pub library_folder: Option<PathBuf>,
    /// `pronunciations` and `pronunciation_file`, in order.
    pub pronunciations: Vec<crate::pronounce::Rule>,
    /// The account's dictionary of those rules, once narrate has made sure of it: added to
    /// the requests whose text has one of the words.
    pub dictionary: Option<DictionaryLocator>,
    /// What the opening and closing credits say (`opening_credits`, `closing_credits`), for
    /// the stores that want them as files of their own (`--profile`).
    pub credits: Credits,
}

/// The manifest's own credits; when absent, a store that wants credits has them written from
/// the title, author and narrator.
#[derive(Clone, Debug, Default)]
pub struct Credits {
    pub opening: Option<String>,
    pub closing: Option<String>,
}

/// The default of `max_request_chars`.
pub const DEFAULT_MAX_REQUEST_CHARS: usize = 2_500;

/// The longest pause, lead-in or tail: ten minutes. A larger number is a typo (seconds written
/// as milliseconds, or worse) and would write silence until the disk is full.
pub const MAX_PAUSE_MS: u64 = 600_000;

/// An input of the manifest that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub(crate) struct InputError {
    path: PathBuf,
    source: crate::files::ReadError,
}

/// Reads a manifest input (the manifest, a CSV, a `text_file`): a regular UTF-8 file of at
/// most [`crate::files::MAX_INPUT_BYTES`].
pub(crate) fn read_input(path: &Path) -> Result<String, InputError> {
    crate::files::read_text(path, crate::files::MAX_INPUT_BYTES).map_err(|source| InputError {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a Path,
}

impl Ctx<'_> {
    pub(crate) fn err(
        &self,
        line: Option<u64>,
        field: Option<String>,
        message: impl Into<String>,
    ) -> ManifestError {
        ManifestError {
            file: self.file.to_path_buf(),
            line,
            field,
            message: message.into(),
        }
    }
}

/// Removes `.` and `name/..` components without touching the file system, so messages and
/// reports show `out/demo.mp3` rather than `manifests/../out/demo.mp3`.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Loads and validates a manifest. `output_override` is `-o`, relative to the working directory.
pub fn load(
    path: &Path,
    flags: &FlagDefaults,
    output_override: Option<&Path>,
) -> Result<Job, ManifestError> {
    let ctx = Ctx { file: path };
    let source = crate::files::read_text(path, crate::files::MAX_INPUT_BYTES)
        .map_err(|e| ctx.err(None, None, format!("cannot read manifest: {e}")))?;
    load_source(path, &source, flags, output_override)
}

/// A manifest's text validated as if read from `path`, with the flags' defaults: unit tests'
/// jobs.
#[cfg(test)]
pub(crate) fn from_yaml(path: &Path, yaml: &str) -> Job {
    load_source(path, yaml, &FlagDefaults::default(), None).expect("a valid test manifest")
}

/// Validates a manifest given as text, as if read from `path` (which names it in messages, is
/// its base for relative paths and its state directory, and is an input no output may be):
/// a book imported in memory.
pub fn load_source(
    path: &Path,
    source: &str,
    flags: &FlagDefaults,
    output_override: Option<&Path>,
) -> Result<Job, ManifestError> {
    let ctx = Ctx { file: path };
    let mut inputs = vec![path.to_path_buf()];
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let (raw_segments, defaults, header) = if is_csv {
        let rows = csv::read_csv(&ctx, source)?;
        (rows, raw::RawSegment::default(), raw::Header::default())
    } else {
        yaml::read_yaml(&ctx, source, &base, &mut inputs)?
    };
    if raw_segments.is_empty() {
        return Err(ctx.err(
            None,
            Some("segments".into()),
            "the manifest has no segments",
        ));
    }
    let resolver = resolve::Resolver {
        ctx: &ctx,
        base: &base,
        defaults: &defaults,
        flags,
    };
    let (segments, output_format) = resolver.segments(raw_segments, &mut inputs)?;
    resolve::check_header(&ctx, &header)?;
    let (year, cover) = book::book_fields(&ctx, &base, &header, &mut inputs)?;
    let source = book::source(&ctx, &base, &header, &mut inputs)?;
    let pronunciations = book::pronunciations(&ctx, &base, &header, &mut inputs)?;
    check_pronunciations(&ctx, &segments, &pronunciations)?;
    let output = book::output(&ctx, path, &base, &header, output_override, output_format)?;
    Ok(Job {
        manifest: path.to_path_buf(),
        book: crate::book::Metadata {
            title: header.title,
            author: header.author,
            narrator: header.narrator,
            year,
            description: header.description,
            cover,
            language: None,
        },
        album: header.album,
        output,
        output_format,
        lead_in_ms: header.lead_in_ms.unwrap_or(0),
        tail_ms: header.tail_ms.unwrap_or(0),
        trim_silence: header.trim_silence.unwrap_or(false),
        continuity: header.continuity.or(flags.continuity).unwrap_or_default(),
        segments,
        inputs,
        subset: None,
        shard: None,
        shard_owners: None,
        source,
        library_folder: None,
        pronunciations,
        dictionary: None,
        credits: Credits {
            opening: header.opening_credits,
            closing: header.closing_credits,
        },
    })
}

/// The API takes at most 3 dictionary locators a request: a segment with 3 of its own and a
/// word of the manifest's rules would need a fourth. Phoneme rules meeting a model that skips
/// them are a warning.
fn check_pronunciations(
    ctx: &Ctx<'_>,
    segments: &[Segment],
    rules: &[crate::pronounce::Rule],
) -> Result<(), ManifestError> {
    let mut warned = std::collections::HashSet::new();
    for (i, s) in segments.iter().enumerate() {
        let matched = crate::pronounce::matching(rules, &s.text);
        if matched.is_empty() {
            continue;
        }
        if s.pronunciation_dictionary_locators.len() >= 3 {
            return Err(ctx.err(
                Some(s.line),
                Some(format!("segments[{i}].pronunciation_dictionary_locators")),
                format!(
                    "segment {} has 3 dictionary locators, the API's most a request, and its text has {:?} of the manifest's pronunciations, which would need a fourth",
                    s.id, matched[0].word
                ),
            ));
        }
        if !crate::pronounce::PHONEME_MODELS.contains(&s.model_id.as_str())
            && let Some(rule) = matched.iter().find(|r| r.is_phoneme())
            && warned.insert(s.model_id.clone())
        {
            tracing::warn!(
                "{}: the phoneme rule for {:?} (segment {}) is skipped by {}: only eleven_flash_v2, eleven_turbo_v2 and eleven_monolingual_v1 honour phonemes; give it an alias instead",
                ctx.file.display(),
                rule.word,
                s.id,
                s.model_id
            );
        }
    }
    Ok(())
}
