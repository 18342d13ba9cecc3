//! Defaults applied and every field validated, one segment at a time: ids, texts (read from
//! `text_file`s), voices, model, format, settings and their ranges, language, dictionaries,
//! normalization, request size and pauses; then the header and the output path.
//!
//! Each check returns an error naming the file, the segment's line and the field. Not
//! responsible for reading the syntax (see `yaml`, `csv`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::raw::{Header, RawSegment};
use super::{
    Ctx, DEFAULT_MAX_REQUEST_CHARS, DictionaryLocator, FlagDefaults, MAX_PAUSE_MS, ManifestError,
    Segment, VoiceSettings, read_input,
};
use crate::format::{DEFAULT_FORMAT, OutputFormat};
use crate::models;

pub(crate) const DEFAULT_PAUSE_MS: u64 = 400;
pub(crate) const DEFAULT_CHAPTER_PAUSE_MS: u64 = 2_000;
/// The longest voice id: real ones are 20 characters.
pub(crate) const MAX_VOICE_ID_LEN: usize = 64;

/// What every segment of one manifest is resolved against.
pub(super) struct Resolver<'a> {
    pub ctx: &'a Ctx<'a>,
    /// The manifest's directory: `text_file`s are relative to it.
    pub base: &'a Path,
    pub defaults: &'a RawSegment,
    pub flags: &'a FlagDefaults,
}

/// One segment being resolved: where it is, for messages.
pub(crate) struct At<'a> {
    ctx: &'a Ctx<'a>,
    line: u64,
    id: &'a str,
}

impl At<'_> {
    fn err(&self, name: &str, message: impl Into<String>) -> ManifestError {
        self.ctx.err(
            Some(self.line),
            Some(format!("segment {:?} field {name}", self.id)),
            message,
        )
    }
}

/// Whether `text` has nothing to say once control characters are removed.
/// Whether a text has nothing to say: only white space, control characters and characters
/// that are never seen or heard (zero-width spaces and joiners, the byte-order mark, soft
/// hyphens, direction marks, variation selectors and tags: Unicode's default-ignorable code
/// points). Such a text would be billed for silence.
pub(crate) fn is_blank(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_whitespace() || c.is_control() || is_invisible(c))
}

/// Unicode's default-ignorable code points (DerivedCoreProperties, Default_Ignorable_Code_Point).
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

pub(crate) fn pause_message(ms: u64) -> String {
    format!(
        "{ms} ms is more than the longest pause narrate writes ({MAX_PAUSE_MS} ms, ten minutes)"
    )
}

impl Resolver<'_> {
    /// Resolves every segment, checking that ids are unique and that all share one format.
    pub(super) fn segments(
        &self,
        raw_segments: Vec<(u64, RawSegment)>,
        inputs: &mut Vec<PathBuf>,
    ) -> Result<(Vec<Segment>, OutputFormat), ManifestError> {
        let mut ids = HashSet::new();
        let mut segments = Vec::with_capacity(raw_segments.len());
        // The first segment's format, line and id: every other must have the same.
        let mut first: Option<(String, String)> = None;
        for (index, (line, raw)) in raw_segments.into_iter().enumerate() {
            let id = self.id(index, line, &raw, &mut ids)?;
            let at = At {
                ctx: self.ctx,
                line,
                id: &id,
            };
            let segment = self.segment(&at, &raw, inputs, &mut first)?;
            segments.push(segment);
        }
        let format = first
            .and_then(|(name, _)| name.parse().ok())
            .ok_or_else(|| {
                self.ctx.err(
                    None,
                    Some("segments".into()),
                    "the manifest has no segments",
                )
            })?;
        Ok((segments, format))
    }

    /// The segment's id: present, well formed and not seen before.
    fn id(
        &self,
        index: usize,
        line: u64,
        raw: &RawSegment,
        ids: &mut HashSet<String>,
    ) -> Result<String, ManifestError> {
        let field = || Some(format!("segments[{index}].id"));
        let id = raw.id.clone().ok_or_else(|| {
            self.ctx
                .err(Some(line), field(), "every segment needs an id")
        })?;
        if id.is_empty()
            || id == "."
            || id == ".."
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(self.ctx.err(
                Some(line),
                field(),
                format!("{id:?} is not a valid id (use letters, digits, '.', '_' and '-')"),
            ));
        }
        if !ids.insert(id.clone()) {
            return Err(self
                .ctx
                .err(Some(line), field(), format!("duplicate id {id:?}")));
        }
        Ok(id)
    }

    /// One segment, checked in the order its fields are usually written; `first` is the first
    /// segment's format and id, which every other segment must share.
    fn segment(
        &self,
        at: &At<'_>,
        raw: &RawSegment,
        inputs: &mut Vec<PathBuf>,
        first: &mut Option<(String, String)>,
    ) -> Result<Segment, ManifestError> {
        let d = self.defaults;
        let text = self.text(at, raw, inputs)?;
        let (voice_id, voice_name) = self.voice(at, raw)?;
        let model_id = raw
            .model_id
            .clone()
            .or_else(|| d.model_id.clone())
            .or_else(|| self.flags.model_id.clone())
            .unwrap_or_else(|| models::DEFAULT_MODEL.to_string());
        let Some(model) = models::find(&model_id) else {
            let known: Vec<_> = models::MODELS.iter().map(|m| m.model_id).collect();
            return Err(at.err(
                "model_id",
                format!("unknown model {model_id:?} (known: {})", known.join(", ")),
            ));
        };
        self.same_format(at, raw, first)?;
        let voice_settings = settings(at, raw, d)?;
        let language_code = language(at, raw, d)?;
        let pronunciation_dictionary_locators = locators(at, raw, d)?;
        let apply_text_normalization = normalization(at, raw, d)?;
        let max_request_chars = raw
            .max_request_chars
            .or(d.max_request_chars)
            .unwrap_or(DEFAULT_MAX_REQUEST_CHARS);
        if !(50..=model.max_chars).contains(&max_request_chars) {
            return Err(at.err(
                "max_request_chars",
                format!(
                    "{max_request_chars} is outside 50..={} (the limit of {model_id})",
                    model.max_chars
                ),
            ));
        }
        let (pause_after_ms, chapter_pause_ms) = pauses(at, raw, d)?;
        Ok(Segment {
            voice_name,
            id: at.id.to_string(),
            chapter: raw.chapter.clone().or_else(|| d.chapter.clone()),
            text,
            voice_id,
            model_id,
            language_code,
            voice_settings,
            pronunciation_dictionary_locators,
            seed: raw.seed.or(d.seed),
            apply_text_normalization,
            enable_logging: raw.enable_logging.or(d.enable_logging).unwrap_or(true),
            max_request_chars,
            pause_after_ms,
            chapter_pause_ms,
            line: at.line,
        })
    }

    /// `text`, or the contents of `text_file` (whose path joins `inputs`); never blank.
    fn text(
        &self,
        at: &At<'_>,
        raw: &RawSegment,
        inputs: &mut Vec<PathBuf>,
    ) -> Result<String, ManifestError> {
        let text = match (&raw.text, &raw.text_file) {
            (Some(_), Some(_)) => {
                return Err(at.err("text_file", "give either `text` or `text_file`, not both"));
            }
            (Some(t), None) => t.clone(),
            (None, Some(file)) => {
                let full = self.base.join(file);
                let text = read_input(&full).map_err(|e| at.err("text_file", e.to_string()))?;
                inputs.push(full);
                text
            }
            (None, None) => return Err(at.err("text", "a segment needs `text` or `text_file`")),
        };
        if is_blank(&text) {
            return Err(at.err("text", "the text is empty (or only white space, control characters or invisible characters such as zero-width spaces)"));
        }
        Ok(text)
    }

    /// The voice as `(voice_id, voice name)`: the segment's own choice wins over the defaults',
    /// an id over a name at the same level, then `--voice-id`. A name leaves the id empty.
    fn voice(
        &self,
        at: &At<'_>,
        raw: &RawSegment,
    ) -> Result<(String, Option<String>), ManifestError> {
        if raw.voice_id.is_some() && raw.voice.is_some() {
            return Err(at.err(
                "voice",
                "give either `voice` (a name) or `voice_id`, not both",
            ));
        }
        let d = self.defaults;
        let choice = match (&raw.voice_id, &raw.voice) {
            (Some(id), _) => Some((Some(id.clone()), None)),
            (None, Some(name)) => Some((None, Some(name.clone()))),
            (None, None) => match (&d.voice_id, &d.voice) {
                (Some(id), _) => Some((Some(id.clone()), None)),
                (None, Some(name)) => Some((None, Some(name.clone()))),
                (None, None) => self.flags.voice_id.clone().map(|id| (Some(id), None)),
            },
        };
        let Some((voice_id, voice_name)) = choice else {
            return Err(at.err(
                "voice_id",
                "no voice_id or voice (set it on the segment, in defaults, or with --voice-id)",
            ));
        };
        if let Some(name) = &voice_name
            && name.trim().is_empty()
        {
            return Err(at.err("voice", "the voice name is empty"));
        }
        let voice_id = voice_id.unwrap_or_default();
        if voice_name.is_none()
            && (voice_id.is_empty()
                || voice_id.len() > MAX_VOICE_ID_LEN
                || !voice_id.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(at.err(
                "voice_id",
                format!(
                    "{voice_id:?} is not a voice id (letters and digits, as `narrate voices` lists them)"
                ),
            ));
        }
        Ok((voice_id, voice_name))
    }

    /// The segment's `output_format`: known to the API, and the same as the first segment's.
    fn same_format(
        &self,
        at: &At<'_>,
        raw: &RawSegment,
        first: &mut Option<(String, String)>,
    ) -> Result<(), ManifestError> {
        let name = raw
            .output_format
            .clone()
            .or_else(|| self.defaults.output_format.clone())
            .or_else(|| self.flags.output_format.clone())
            .unwrap_or_else(|| DEFAULT_FORMAT.to_string());
        name.parse::<OutputFormat>()
            .map_err(|e| at.err("output_format", e.to_string()))?;
        match first {
            None => *first = Some((name, at.id.to_string())),
            Some((first_name, first_id)) if *first_name != name => {
                return Err(at.err(
                    "output_format",
                    format!(
                        "{name} differs from {first_name} of segment {first_id:?}; all segments of a manifest share one output_format"
                    ),
                ));
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// Voice settings over the defaults', each within the API's documented range.
pub(crate) fn settings(
    at: &At<'_>,
    raw: &RawSegment,
    d: &RawSegment,
) -> Result<Option<VoiceSettings>, ManifestError> {
    let settings = match (&raw.voice_settings, &d.voice_settings) {
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
                return Err(at.err(
                    &format!("voice_settings.{name}"),
                    format!("{v} is outside {lo}..={hi}"),
                ));
            }
        }
    }
    Ok(settings)
}

/// `language_code`: an ISO 639-1 code.
pub(crate) fn language(
    at: &At<'_>,
    raw: &RawSegment,
    d: &RawSegment,
) -> Result<Option<String>, ManifestError> {
    let code = raw
        .language_code
        .clone()
        .or_else(|| d.language_code.clone());
    if let Some(code) = &code
        && !(code.len() == 2 && code.chars().all(|c| c.is_ascii_lowercase()))
    {
        return Err(at.err(
            "language_code",
            format!("{code:?} is not an ISO 639-1 code (two lowercase letters, such as en)"),
        ));
    }
    Ok(code)
}

/// At most three pronunciation dictionaries, as the API takes.
pub(crate) fn locators(
    at: &At<'_>,
    raw: &RawSegment,
    d: &RawSegment,
) -> Result<Vec<DictionaryLocator>, ManifestError> {
    let locators = raw
        .pronunciation_dictionary_locators
        .clone()
        .or_else(|| d.pronunciation_dictionary_locators.clone())
        .unwrap_or_default();
    if locators.len() > 3 {
        return Err(at.err(
            "pronunciation_dictionary_locators",
            format!(
                "{} locators given; the API accepts at most 3",
                locators.len()
            ),
        ));
    }
    Ok(locators)
}

/// `apply_text_normalization`: auto, on or off.
pub(crate) fn normalization(
    at: &At<'_>,
    raw: &RawSegment,
    d: &RawSegment,
) -> Result<Option<String>, ManifestError> {
    let n = raw
        .apply_text_normalization
        .clone()
        .or_else(|| d.apply_text_normalization.clone());
    if let Some(n) = &n
        && !matches!(n.as_str(), "auto" | "on" | "off")
    {
        return Err(at.err(
            "apply_text_normalization",
            format!("{n:?} is not one of auto, on, off"),
        ));
    }
    Ok(n)
}

/// `pause_after_ms` and `chapter_pause_ms`, at most [`MAX_PAUSE_MS`].
pub(crate) fn pauses(
    at: &At<'_>,
    raw: &RawSegment,
    d: &RawSegment,
) -> Result<(u64, u64), ManifestError> {
    let pause_after_ms = raw
        .pause_after_ms
        .or(d.pause_after_ms)
        .unwrap_or(DEFAULT_PAUSE_MS);
    let chapter_pause_ms = raw
        .chapter_pause_ms
        .or(d.chapter_pause_ms)
        .unwrap_or(DEFAULT_CHAPTER_PAUSE_MS);
    for (name, ms) in [
        ("pause_after_ms", pause_after_ms),
        ("chapter_pause_ms", chapter_pause_ms),
    ] {
        if ms > MAX_PAUSE_MS {
            return Err(at.err(name, pause_message(ms)));
        }
    }
    Ok((pause_after_ms, chapter_pause_ms))
}

/// The header's own numbers: `lead_in_ms` and `tail_ms`, at most [`MAX_PAUSE_MS`].
pub(super) fn check_header(ctx: &Ctx<'_>, header: &Header) -> Result<(), ManifestError> {
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
    for (name, text) in [
        ("opening_credits", &header.opening_credits),
        ("closing_credits", &header.closing_credits),
    ] {
        if text.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ctx.err(
                None,
                Some(name.into()),
                "is empty: write what the credits say, or leave the field out to have them \
                 written from the title, author and narrator",
            ));
        }
    }
    Ok(())
}
