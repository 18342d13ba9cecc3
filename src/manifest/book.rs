//! The manifest's book-wide fields, validated: pronunciation rules (inline and from a PLS
//! file), the year and the cover, and the output path and its format.
//!
//! Each check returns an error naming the file and the field. Not responsible for segments
//! (see `resolve`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::raw::{Header, RawRule};
use super::{Ctx, ManifestError, normalize};
use crate::format::{Codec, OutputFormat};
use crate::pronounce::{ALPHABETS, Rule, Spoken};

/// The manifest's pronunciation rules: `pronunciations` in order, then those of
/// `pronunciation_file` (a PLS lexicon, an input like a `text_file`). A word may have one rule;
/// an alias or a phoneme in a known alphabet, never both.
pub(super) fn pronunciations(
    ctx: &Ctx<'_>,
    base: &Path,
    header: &Header,
    inputs: &mut Vec<PathBuf>,
) -> Result<Vec<Rule>, ManifestError> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut words: HashSet<String> = HashSet::new();
    for (i, raw) in header.pronunciations.iter().flatten().enumerate() {
        let line = Some(raw.referenced.line());
        let at = |field: &str| Some(format!("pronunciations[{i}]{field}"));
        let raw = &raw.value;
        let word = raw.word.as_deref().map(str::trim).unwrap_or_default();
        if word.is_empty() {
            return Err(ctx.err(line, at(".word"), "a rule needs a word"));
        }
        let spoken = spoken(raw).map_err(|(field, why)| ctx.err(line, at(field), why))?;
        if let Some(why) = crate::pronounce::unspeakable(word, &spoken) {
            return Err(ctx.err(line, at(""), why));
        }
        if !words.insert(word.to_string()) {
            return Err(ctx.err(line, at(".word"), format!("{word:?} has a rule already")));
        }
        rules.push(Rule {
            word: word.to_string(),
            spoken,
        });
    }
    if let Some(file) = &header.pronunciation_file {
        let path = normalize(&base.join(file));
        let source = super::read_input(&path)
            .map_err(|e| ctx.err(None, Some("pronunciation_file".into()), e.to_string()))?;
        let from_file = crate::pronounce::parse_pls(&source).map_err(|e| ManifestError {
            file: path.clone(),
            line: Some(e.line),
            field: None,
            message: e.message,
        })?;
        let refuse = |why: String| {
            let message = format!("{}: {why}", path.display());
            ctx.err(None, Some("pronunciation_file".into()), message)
        };
        for rule in from_file {
            if let Some(why) = crate::pronounce::unspeakable(&rule.word, &rule.spoken) {
                return Err(refuse(why));
            }
            if let Spoken::Phoneme { alphabet, .. } = &rule.spoken
                && !ALPHABETS.contains(&alphabet.as_str())
            {
                return Err(refuse(format!(
                    "{:?} is in the alphabet {alphabet:?}; the API takes ipa or cmu-arpabet",
                    rule.word
                )));
            }
            if !words.insert(rule.word.clone()) {
                return Err(refuse(format!("{:?} has a rule already", rule.word)));
            }
            rules.push(rule);
        }
        inputs.push(path);
    }
    Ok(rules)
}

/// How a manifest rule is spoken, or the field at fault (`.alias`, `.alphabet`, ...) and why.
fn spoken(raw: &RawRule) -> Result<Spoken, (&'static str, String)> {
    match (&raw.alias, &raw.phoneme, &raw.alphabet) {
        (Some(alias), None, None) if !alias.trim().is_empty() => Ok(Spoken::Alias {
            alias: alias.trim().to_string(),
        }),
        (Some(_), None, None) => Err((".alias", "the alias is empty".into())),
        (None, Some(phoneme), alphabet) if !phoneme.trim().is_empty() => {
            let alphabet = alphabet.as_deref().unwrap_or("");
            if !ALPHABETS.contains(&alphabet) {
                return Err((
                    ".alphabet",
                    format!("{alphabet:?} is not an alphabet the API takes: ipa or cmu-arpabet"),
                ));
            }
            Ok(Spoken::Phoneme {
                phoneme: phoneme.trim().to_string(),
                alphabet: alphabet.to_string(),
            })
        }
        (None, Some(_), _) => Err((".phoneme", "the phoneme is empty".into())),
        _ => Err((
            "",
            "give either alias, or phoneme with alphabet (ipa or cmu-arpabet)".into(),
        )),
    }
}

/// The largest cover image.
pub(super) const MAX_COVER_BYTES: u64 = 16 * 1024 * 1024;

/// `year` (four digits) and `cover` (a JPEG or PNG of at most [`MAX_COVER_BYTES`], relative to
/// the manifest, an input like a `text_file`).
pub(super) fn book_fields(
    ctx: &Ctx<'_>,
    base: &Path,
    header: &Header,
    inputs: &mut Vec<PathBuf>,
) -> Result<(Option<String>, Option<PathBuf>), ManifestError> {
    let year = match &header.year {
        None => None,
        Some(super::raw::Year::Number(n)) => Some(n.to_string()),
        Some(super::raw::Year::Text(t)) => Some(t.trim().to_string()),
    };
    if let Some(y) = &year
        && !(y.len() == 4 && y.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(ctx.err(
            None,
            Some("year".into()),
            format!("{y:?} is not a year (four digits, such as 1865)"),
        ));
    }
    let Some(cover) = &header.cover else {
        return Ok((year, None));
    };
    let path = normalize(&base.join(cover));
    let bytes = crate::files::read_bytes(&path, MAX_COVER_BYTES).map_err(|e| {
        ctx.err(
            None,
            Some("cover".into()),
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    if !(bytes.starts_with(&[0xFF, 0xD8, 0xFF]) || bytes.starts_with(b"\x89PNG\r\n\x1a\n")) {
        return Err(ctx.err(
            None,
            Some("cover".into()),
            format!("{} is not a JPEG or PNG image", path.display()),
        ));
    }
    inputs.push(path.clone());
    Ok((year, Some(path)))
}

/// `source`: the EPUB the manifest was imported from, relative to it; an input (no output
/// may be it), read only for a read-along book.
pub(super) fn source(
    ctx: &Ctx<'_>,
    base: &Path,
    header: &Header,
    inputs: &mut Vec<PathBuf>,
) -> Result<Option<PathBuf>, ManifestError> {
    let Some(source) = &header.source else {
        return Ok(None);
    };
    let path = normalize(&base.join(source));
    let epub = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("epub"));
    if !epub {
        return Err(ctx.err(
            None,
            Some("source".into()),
            format!(
                "{} is not an .epub (source names the EPUB the manifest was imported from)",
                path.display()
            ),
        ));
    }
    inputs.push(path.clone());
    Ok(Some(path))
}

/// The output path: `-o`, the manifest's `output` (relative to it), or `<stem>.wav` beside it;
/// `.wav`, or `.mp3` for an mp3 format; never Opus, which narrate cannot decode.
pub(super) fn output(
    ctx: &Ctx<'_>,
    path: &Path,
    base: &Path,
    header: &Header,
    output_override: Option<&Path>,
    format: OutputFormat,
) -> Result<PathBuf, ManifestError> {
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
    let wrong = match ext.as_deref() {
        Some("wav" | "m4b") => None,
        Some("mp3") if format.is_mp3() => None,
        Some("mp3") => Some(format!(
            "{} is an .mp3 output but the output_format is {format}; use an mp3_* format or a .wav output",
            output.display()
        )),
        _ => Some(format!(
            "{} must end in .wav, .mp3 or .m4b",
            output.display()
        )),
    };
    if let Some(message) = wrong {
        return Err(ctx.err(None, Some("output".into()), message));
    }
    if matches!(format.codec, Codec::Opus { .. }) {
        return Err(ctx.err(
            None,
            Some("output_format".into()),
            "opus responses cannot be decoded by narrate; choose an mp3, pcm, wav, ulaw or alaw format",
        ));
    }
    Ok(output)
}
