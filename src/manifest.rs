//! Reading a manifest (YAML with `segments` or `segments_csv`, or a bare CSV) into a validated
//! [`Job`]: defaults applied, `text_file`s read, every field checked before anything is sent.
//!
//! Every error names the file, the line and the field. Not responsible for splitting texts into
//! requests (see `plan`).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::format::{DEFAULT_FORMAT, OutputFormat};
use crate::models;

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

/// Values from the command line that a manifest may leave out (a bare CSV has no `defaults`).
#[derive(Clone, Debug, Default)]
pub struct FlagDefaults {
    pub voice_id: Option<String>,
    pub model_id: Option<String>,
    pub output_format: Option<String>,
}

/// Voice settings sent with a request; unset fields are omitted from the body.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stability: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity_boost: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_speaker_boost: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
}

impl VoiceSettings {
    /// Fields of `self` override those of `base`.
    fn over(&self, base: &VoiceSettings) -> VoiceSettings {
        VoiceSettings {
            stability: self.stability.or(base.stability),
            similarity_boost: self.similarity_boost.or(base.similarity_boost),
            style: self.style.or(base.style),
            use_speaker_boost: self.use_speaker_boost.or(base.use_speaker_boost),
            speed: self.speed.or(base.speed),
        }
    }

    fn is_empty(&self) -> bool {
        *self == VoiceSettings::default()
    }
}

/// One pronunciation dictionary applied to a request.
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DictionaryLocator {
    pub pronunciation_dictionary_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

/// A validated segment with every default resolved.
#[derive(Clone, Debug)]
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
    pub title: Option<String>,
    /// Written to the MP3's ID3 tag (TPE1) and the chapter side files.
    pub author: Option<String>,
    /// Written to the MP3's ID3 tag (TALB).
    pub album: Option<String>,
    pub output: PathBuf,
    pub output_format: OutputFormat,
    pub lead_in_ms: u64,
    pub tail_ms: u64,
    /// Trim each response's leading and trailing silence, so pauses are the manifest's.
    pub trim_silence: bool,
    pub segments: Vec<Segment>,
    /// Every file this job was read from (the manifest, its CSV, its `text_file`s): no output
    /// may be one of them.
    pub inputs: Vec<PathBuf>,
}

/// The default of `max_request_chars`.
pub const DEFAULT_MAX_REQUEST_CHARS: usize = 2_500;
const DEFAULT_PAUSE_MS: u64 = 400;
const DEFAULT_CHAPTER_PAUSE_MS: u64 = 2_000;
/// The longest pause, lead-in or tail: ten minutes. A larger number is a typo (seconds written
/// as milliseconds, or worse) and would write silence until the disk is full.
pub const MAX_PAUSE_MS: u64 = 600_000;
/// The longest voice id: real ones are 20 characters.
const MAX_VOICE_ID_LEN: usize = 64;

/// Reads a manifest input (the manifest, a CSV, a `text_file`): a regular UTF-8 file of at
/// most [`crate::files::MAX_INPUT_BYTES`].
fn read_input(path: &Path) -> Result<String, String> {
    crate::files::read_text(path, crate::files::MAX_INPUT_BYTES)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Whether `text` has nothing to say once control characters are removed.
fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || c.is_control())
}

/// The YAML reader's options: unknown tags (`!include`, `!env`) are refused rather than read
/// as their plain text, and the node budget fits 100,000 segments (the 64 MB input cap bounds
/// the work).
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 20_000_000;
    budget.max_nodes = 10_000_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.reject_unsupported_tags = true;
    options
}

/// Segment fields, as written in YAML (also the shape of `defaults`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSegment {
    id: Option<String>,
    chapter: Option<String>,
    text: Option<String>,
    text_file: Option<String>,
    voice_id: Option<String>,
    /// A voice name, resolved to an id through `GET /v2/voices`.
    voice: Option<String>,
    model_id: Option<String>,
    output_format: Option<String>,
    language_code: Option<String>,
    voice_settings: Option<VoiceSettings>,
    pronunciation_dictionary_locators: Option<Vec<DictionaryLocator>>,
    seed: Option<u32>,
    apply_text_normalization: Option<String>,
    enable_logging: Option<bool>,
    max_request_chars: Option<usize>,
    pause_after_ms: Option<u64>,
    chapter_pause_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    title: Option<String>,
    author: Option<String>,
    album: Option<String>,
    output: Option<String>,
    lead_in_ms: Option<u64>,
    tail_ms: Option<u64>,
    trim_silence: Option<bool>,
    defaults: Option<Spanned<RawSegment>>,
    segments: Option<Vec<Spanned<RawSegment>>>,
    segments_csv: Option<String>,
}

/// The CSV columns a segment row may have.
const CSV_COLUMNS: &[&str] = &[
    "id",
    "chapter",
    "text",
    "text_file",
    "voice_id",
    "voice",
    "model_id",
    "output_format",
    "language_code",
    "stability",
    "similarity_boost",
    "style",
    "speed",
    "use_speaker_boost",
    "pronunciation_dictionary_locators",
    "seed",
    "apply_text_normalization",
    "enable_logging",
    "max_request_chars",
    "pause_after_ms",
    "chapter_pause_ms",
];

struct Ctx<'a> {
    file: &'a Path,
}

impl Ctx<'_> {
    fn err(
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

/// Loads and validates a manifest. `output_override` is `-o`, relative to the working directory.
pub fn load(
    path: &Path,
    flags: &FlagDefaults,
    output_override: Option<&Path>,
) -> Result<Job, ManifestError> {
    let ctx = Ctx { file: path };
    let source = crate::files::read_text(path, crate::files::MAX_INPUT_BYTES)
        .map_err(|e| ctx.err(None, None, format!("cannot read manifest: {e}")))?;
    let mut inputs = vec![path.to_path_buf()];
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));

    let (raw_segments, defaults, header) = if is_csv {
        (read_csv(&ctx, &source)?, RawSegment::default(), None)
    } else {
        let raw: RawManifest = serde_saphyr::from_str_with_options(&source, yaml_options())
            .map_err(|e| yaml_error(&ctx, &source, &e))?;
        let defaults = match raw.defaults {
            Some(d) => {
                let line = d.referenced.line();
                let d = d.value;
                for (name, set) in [
                    ("id", d.id.is_some()),
                    ("text", d.text.is_some()),
                    ("text_file", d.text_file.is_some()),
                ] {
                    if set {
                        return Err(ctx.err(
                            Some(line),
                            Some(format!("defaults.{name}")),
                            "only allowed on a segment",
                        ));
                    }
                }
                d
            }
            None => RawSegment::default(),
        };
        let segments = match (raw.segments, &raw.segments_csv) {
            (Some(_), Some(_)) => {
                return Err(ctx.err(
                    None,
                    Some("segments_csv".into()),
                    "give either `segments` or `segments_csv`, not both",
                ));
            }
            (Some(list), None) => list
                .into_iter()
                .map(|s| (s.referenced.line(), s.value))
                .collect::<Vec<_>>(),
            (None, Some(csv_path)) => {
                let csv_file = base.join(csv_path);
                let csv_source = read_input(&csv_file)
                    .map_err(|e| ctx.err(None, Some("segments_csv".into()), e))?;
                inputs.push(csv_file.clone());
                let csv_ctx = Ctx { file: &csv_file };
                read_csv(&csv_ctx, &csv_source)?
            }
            (None, None) => {
                return Err(ctx.err(
                    None,
                    Some("segments".into()),
                    "the manifest has no segments",
                ));
            }
        };
        let header = Header {
            author: raw.author,
            album: raw.album,
            title: raw.title,
            output: raw.output,
            lead_in_ms: raw.lead_in_ms,
            tail_ms: raw.tail_ms,
            trim_silence: raw.trim_silence,
        };
        (segments, defaults, Some(header))
    };

    if raw_segments.is_empty() {
        return Err(ctx.err(
            None,
            Some("segments".into()),
            "the manifest has no segments",
        ));
    }

    let mut ids = HashSet::new();
    let mut segments = Vec::with_capacity(raw_segments.len());
    let mut output_format: Option<(String, u64, String)> = None;
    for (index, (line, raw)) in raw_segments.into_iter().enumerate() {
        let field = |name: &str| Some(format!("segments[{index}].{name}"));
        let id = raw
            .id
            .clone()
            .ok_or_else(|| ctx.err(Some(line), field("id"), "every segment needs an id"))?;
        if id.is_empty()
            || id == "."
            || id == ".."
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(ctx.err(
                Some(line),
                field("id"),
                format!("{id:?} is not a valid id (use letters, digits, '.', '_' and '-')"),
            ));
        }
        if !ids.insert(id.clone()) {
            return Err(ctx.err(Some(line), field("id"), format!("duplicate id {id:?}")));
        }
        let seg_field = |name: &str| Some(format!("segment {id:?} field {name}"));
        let seg = |name: &str, message: String| ctx.err(Some(line), seg_field(name), message);

        let text = match (&raw.text, &raw.text_file) {
            (Some(_), Some(_)) => {
                return Err(seg(
                    "text_file",
                    "give either `text` or `text_file`, not both".into(),
                ));
            }
            (Some(t), None) => t.clone(),
            (None, Some(file)) => {
                let full = base.join(file);
                let text = read_input(&full).map_err(|e| seg("text_file", e))?;
                inputs.push(full);
                text
            }
            (None, None) => {
                return Err(seg("text", "a segment needs `text` or `text_file`".into()));
            }
        };
        if is_blank(&text) {
            return Err(seg(
                "text",
                "the text is empty (or only control characters)".into(),
            ));
        }

        if raw.voice_id.is_some() && raw.voice.is_some() {
            return Err(seg(
                "voice",
                "give either `voice` (a name) or `voice_id`, not both".into(),
            ));
        }
        // The segment's own choice wins over the defaults'; an id over a name at the same level.
        let choice = match (&raw.voice_id, &raw.voice) {
            (Some(id), _) => Some((Some(id.clone()), None)),
            (None, Some(name)) => Some((None, Some(name.clone()))),
            (None, None) => match (&defaults.voice_id, &defaults.voice) {
                (Some(id), _) => Some((Some(id.clone()), None)),
                (None, Some(name)) => Some((None, Some(name.clone()))),
                (None, None) => flags.voice_id.clone().map(|id| (Some(id), None)),
            },
        };
        let Some((voice_id, voice_name)) = choice else {
            return Err(seg(
                "voice_id",
                "no voice_id or voice (set it on the segment, in defaults, or with --voice-id)"
                    .into(),
            ));
        };
        if let Some(name) = &voice_name
            && name.trim().is_empty()
        {
            return Err(seg("voice", "the voice name is empty".into()));
        }
        let voice_id = voice_id.unwrap_or_default();
        if voice_name.is_none()
            && (voice_id.is_empty()
                || voice_id.len() > MAX_VOICE_ID_LEN
                || !voice_id.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(seg(
                "voice_id",
                format!(
                    "{voice_id:?} is not a voice id (letters and digits, as `narrate voices` lists them)"
                ),
            ));
        }
        let model_id = raw
            .model_id
            .clone()
            .or_else(|| defaults.model_id.clone())
            .or_else(|| flags.model_id.clone())
            .unwrap_or_else(|| models::DEFAULT_MODEL.to_string());
        let Some(model) = models::find(&model_id) else {
            let known: Vec<_> = models::MODELS.iter().map(|m| m.model_id).collect();
            return Err(seg(
                "model_id",
                format!("unknown model {model_id:?} (known: {})", known.join(", ")),
            ));
        };
        let format_name = raw
            .output_format
            .clone()
            .or_else(|| defaults.output_format.clone())
            .or_else(|| flags.output_format.clone())
            .unwrap_or_else(|| DEFAULT_FORMAT.to_string());
        format_name
            .parse::<OutputFormat>()
            .map_err(|e| seg("output_format", e.to_string()))?;
        match &output_format {
            None => output_format = Some((format_name.clone(), line, id.clone())),
            Some((first, _, first_id)) if *first != format_name => {
                return Err(seg(
                    "output_format",
                    format!(
                        "{format_name} differs from {first} of segment {first_id:?}; all segments of a manifest share one output_format"
                    ),
                ));
            }
            Some(_) => {}
        }

        let settings = match (&raw.voice_settings, &defaults.voice_settings) {
            (Some(s), Some(d)) => Some(s.over(d)),
            (Some(s), None) => Some(s.clone()),
            (None, d) => d.clone(),
        }
        .filter(|s| !s.is_empty());
        if let Some(s) = &settings {
            for (name, value, lo, hi) in [
                ("stability", s.stability, 0.0, 1.0),
                ("similarity_boost", s.similarity_boost, 0.0, 1.0),
                ("style", s.style, 0.0, 1.0),
                ("speed", s.speed, 0.7, 1.2),
            ] {
                if let Some(v) = value
                    && !(lo..=hi).contains(&v)
                {
                    return Err(seg(
                        &format!("voice_settings.{name}"),
                        format!("{v} is outside {lo}..={hi}"),
                    ));
                }
            }
        }

        let language_code = raw
            .language_code
            .clone()
            .or_else(|| defaults.language_code.clone());
        if let Some(code) = &language_code
            && !(code.len() == 2 && code.chars().all(|c| c.is_ascii_lowercase()))
        {
            return Err(seg(
                "language_code",
                format!("{code:?} is not an ISO 639-1 code (two lowercase letters, such as en)"),
            ));
        }
        let locators = raw
            .pronunciation_dictionary_locators
            .clone()
            .or_else(|| defaults.pronunciation_dictionary_locators.clone())
            .unwrap_or_default();
        if locators.len() > 3 {
            return Err(seg(
                "pronunciation_dictionary_locators",
                format!(
                    "{} locators given; the API accepts at most 3",
                    locators.len()
                ),
            ));
        }
        let normalization = raw
            .apply_text_normalization
            .clone()
            .or_else(|| defaults.apply_text_normalization.clone());
        if let Some(n) = &normalization
            && !matches!(n.as_str(), "auto" | "on" | "off")
        {
            return Err(seg(
                "apply_text_normalization",
                format!("{n:?} is not one of auto, on, off"),
            ));
        }
        let max_request_chars = raw
            .max_request_chars
            .or(defaults.max_request_chars)
            .unwrap_or(DEFAULT_MAX_REQUEST_CHARS);
        if !(50..=model.max_chars).contains(&max_request_chars) {
            return Err(seg(
                "max_request_chars",
                format!(
                    "{max_request_chars} is outside 50..={} (the limit of {model_id})",
                    model.max_chars
                ),
            ));
        }

        let pause_after_ms = raw
            .pause_after_ms
            .or(defaults.pause_after_ms)
            .unwrap_or(DEFAULT_PAUSE_MS);
        let chapter_pause_ms = raw
            .chapter_pause_ms
            .or(defaults.chapter_pause_ms)
            .unwrap_or(DEFAULT_CHAPTER_PAUSE_MS);
        for (name, ms) in [
            ("pause_after_ms", pause_after_ms),
            ("chapter_pause_ms", chapter_pause_ms),
        ] {
            if ms > MAX_PAUSE_MS {
                return Err(seg(name, pause_message(ms)));
            }
        }

        segments.push(Segment {
            voice_name,
            id: id.clone(),
            chapter: raw.chapter.clone().or_else(|| defaults.chapter.clone()),
            text,
            voice_id,
            model_id,
            language_code,
            voice_settings: settings,
            pronunciation_dictionary_locators: locators,
            seed: raw.seed.or(defaults.seed),
            apply_text_normalization: normalization,
            enable_logging: raw
                .enable_logging
                .or(defaults.enable_logging)
                .unwrap_or(true),
            max_request_chars,
            pause_after_ms,
            chapter_pause_ms,
            line,
        });
    }

    let Some(output_format) = output_format.and_then(|(name, _, _)| name.parse().ok()) else {
        return Err(ctx.err(
            None,
            Some("segments".into()),
            "the manifest has no segments",
        ));
    };
    let output_format: OutputFormat = output_format;
    let header = header.unwrap_or_default();
    for (name, ms) in [
        ("lead_in_ms", header.lead_in_ms),
        ("tail_ms", header.tail_ms),
    ] {
        if let Some(ms) = ms
            && ms > MAX_PAUSE_MS
        {
            return Err(ctx.err(None, Some(name.into()), pause_message(ms)));
        }
    }
    let output = match (output_override, &header.output) {
        (Some(o), _) => o.to_path_buf(),
        (None, Some(o)) => normalize(&base.join(o)),
        (None, None) => {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            base.join(format!("{stem}.wav"))
        }
    };
    let ext = output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("wav") => {}
        Some("mp3") if output_format.is_mp3() => {}
        Some("mp3") => {
            return Err(ctx.err(
                None,
                Some("output".into()),
                format!(
                    "{} is an .mp3 output but the output_format is {output_format}; use an mp3_* format or a .wav output",
                    output.display()
                ),
            ));
        }
        _ => {
            return Err(ctx.err(
                None,
                Some("output".into()),
                format!("{} must end in .wav or .mp3", output.display()),
            ));
        }
    }
    if matches!(output_format.codec, crate::format::Codec::Opus { .. }) {
        return Err(ctx.err(
            None,
            Some("output_format".into()),
            "opus responses cannot be decoded by narrate; choose an mp3, pcm, wav, ulaw or alaw format",
        ));
    }

    Ok(Job {
        manifest: path.to_path_buf(),
        title: header.title,
        author: header.author,
        album: header.album,
        output,
        output_format,
        lead_in_ms: header.lead_in_ms.unwrap_or(0),
        tail_ms: header.tail_ms.unwrap_or(0),
        trim_silence: header.trim_silence.unwrap_or(false),
        segments,
        inputs,
    })
}

fn pause_message(ms: u64) -> String {
    format!(
        "{ms} ms is more than the longest pause narrate writes ({MAX_PAUSE_MS} ms, ten minutes)"
    )
}

/// Removes `.` and `name/..` components without touching the file system, so messages and
/// reports show `out/demo.mp3` rather than `manifests/../out/demo.mp3`.
fn normalize(path: &Path) -> PathBuf {
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

/// Fills in the `voice_id` of segments that named a voice, from `(voice_id, name)` pairs of
/// the account's voices. A name matches case-insensitively; an unknown or ambiguous name is an
/// error that lists the candidates.
pub fn resolve_voice_names(
    job: &mut Job,
    voices: &[(String, String)],
) -> Result<(), ManifestError> {
    for segment in &mut job.segments {
        let Some(name) = &segment.voice_name else {
            continue;
        };
        if !segment.voice_id.is_empty() {
            continue;
        }
        let wanted = name.trim().to_lowercase();
        let exact: Vec<&(String, String)> = voices
            .iter()
            .filter(|(_, n)| n.to_lowercase() == wanted)
            .collect();
        let err = |message: String| ManifestError {
            file: job.manifest.clone(),
            line: Some(segment.line),
            field: Some(format!("segment {:?} field voice", segment.id)),
            message,
        };
        let list = |v: &[&(String, String)]| {
            v.iter()
                .map(|(id, n)| format!("{n} ({id})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match exact.as_slice() {
            [(id, _)] => segment.voice_id = id.clone(),
            [] => {
                let similar: Vec<&(String, String)> = voices
                    .iter()
                    .filter(|(_, n)| {
                        n.to_lowercase().contains(&wanted) || wanted.contains(&n.to_lowercase())
                    })
                    .collect();
                let shown = if similar.is_empty() {
                    voices.iter().collect::<Vec<_>>()
                } else {
                    similar
                };
                return Err(err(format!(
                    "no voice is named {name:?}; candidates: {}",
                    list(&shown)
                )));
            }
            many => {
                return Err(err(format!(
                    "{} voices are named {name:?}: {}; use voice_id to pick one",
                    many.len(),
                    list(many)
                )));
            }
        }
    }
    Ok(())
}

/// Whether any segment still names a voice that is not resolved to an id.
pub fn has_voice_names(job: &Job) -> bool {
    job.segments.iter().any(|s| s.voice_id.is_empty())
}

#[derive(Default)]
struct Header {
    title: Option<String>,
    author: Option<String>,
    album: Option<String>,
    output: Option<String>,
    lead_in_ms: Option<u64>,
    tail_ms: Option<u64>,
    trim_silence: Option<bool>,
}

/// A serde-saphyr error as a located manifest error: its message without the rendered snippet
/// or the repeated location, and the key written on the offending line as the field.
fn yaml_error(ctx: &Ctx<'_>, source: &str, e: &serde_saphyr::Error) -> ManifestError {
    let text = e.to_string();
    let mut message = text.lines().next().unwrap_or("malformed YAML").trim();
    message = message.strip_prefix("error: ").unwrap_or(message);
    if message.starts_with("line ")
        && let Some((_, rest)) = message.split_once(": ")
    {
        message = rest;
    }
    let line = e.location().map(|l| l.line());
    let field = line
        .and_then(|l| source.lines().nth(l.saturating_sub(1) as usize))
        .and_then(|l| {
            let l = l.trim_start().trim_start_matches("- ").trim_start();
            let (key, _) = l.split_once(':')?;
            let ok = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            ok.then(|| key.to_string())
        });
    ctx.err(line, field, format!("malformed manifest: {message}"))
}

/// Reads segment rows from CSV text, with the line of each row.
fn read_csv(ctx: &Ctx<'_>, source: &str) -> Result<Vec<(u64, RawSegment)>, ManifestError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .from_reader(source.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| ctx.err(Some(1), None, format!("malformed CSV header: {e}")))?
        .clone();
    let mut seen = HashSet::new();
    for h in headers.iter() {
        if !seen.insert(h) {
            return Err(ctx.err(
                Some(1),
                Some(h.to_string()),
                "duplicate column: each column may appear once",
            ));
        }
        if !CSV_COLUMNS.contains(&h) {
            return Err(ctx.err(
                Some(1),
                Some(h.to_string()),
                format!("unknown column (known: {})", CSV_COLUMNS.join(", ")),
            ));
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line());
            ctx.err(line, None, format!("malformed CSV: {e}"))
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let cells: BTreeMap<&str, &str> = headers
            .iter()
            .zip(record.iter())
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        rows.push((line, csv_row(ctx, line, &cells)?));
    }
    Ok(rows)
}

fn csv_row(
    ctx: &Ctx<'_>,
    line: u64,
    cells: &BTreeMap<&str, &str>,
) -> Result<RawSegment, ManifestError> {
    fn parse<T: std::str::FromStr>(
        ctx: &Ctx<'_>,
        line: u64,
        cells: &BTreeMap<&str, &str>,
        name: &str,
    ) -> Result<Option<T>, ManifestError>
    where
        T::Err: fmt::Display,
    {
        match cells.get(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|e| ctx.err(Some(line), Some(name.to_string()), format!("{v:?}: {e}"))),
        }
    }
    let s = |name: &str| cells.get(name).map(|v| v.to_string());
    let settings = VoiceSettings {
        stability: parse(ctx, line, cells, "stability")?,
        similarity_boost: parse(ctx, line, cells, "similarity_boost")?,
        style: parse(ctx, line, cells, "style")?,
        use_speaker_boost: parse(ctx, line, cells, "use_speaker_boost")?,
        speed: parse(ctx, line, cells, "speed")?,
    };
    let locators = cells.get("pronunciation_dictionary_locators").map(|v| {
        v.split_whitespace()
            .map(|item| {
                let (id, version) = match item.split_once(':') {
                    Some((id, version)) => (id, Some(version.to_string())),
                    None => (item, None),
                };
                DictionaryLocator {
                    pronunciation_dictionary_id: id.to_string(),
                    version_id: version,
                }
            })
            .collect()
    });
    Ok(RawSegment {
        id: s("id"),
        chapter: s("chapter"),
        text: s("text"),
        text_file: s("text_file"),
        voice_id: s("voice_id"),
        voice: s("voice"),
        model_id: s("model_id"),
        output_format: s("output_format"),
        language_code: s("language_code"),
        voice_settings: (!settings.is_empty()).then_some(settings),
        pronunciation_dictionary_locators: locators,
        seed: parse(ctx, line, cells, "seed")?,
        apply_text_normalization: s("apply_text_normalization"),
        enable_logging: parse(ctx, line, cells, "enable_logging")?,
        max_request_chars: parse(ctx, line, cells, "max_request_chars")?,
        pause_after_ms: parse(ctx, line, cells, "pause_after_ms")?,
        chapter_pause_ms: parse(ctx, line, cells, "chapter_pause_ms")?,
    })
}
