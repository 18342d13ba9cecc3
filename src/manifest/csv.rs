//! Segment rows from CSV (a bare CSV manifest, or a YAML manifest's `segments_csv`): a header of
//! known, distinct columns, one segment a row, voice settings as flat columns.
//!
//! Not responsible for validating values beyond their types (see `resolve`).

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use super::raw::{CSV_COLUMNS, RawSegment};
use super::{Ctx, DictionaryLocator, ManifestError, VoiceSettings};

/// Reads segment rows from CSV text, with the line of each row.
pub(crate) fn read_csv(
    ctx: &Ctx<'_>,
    source: &str,
) -> Result<Vec<(u64, RawSegment)>, ManifestError> {
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

pub(crate) fn csv_row(
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
