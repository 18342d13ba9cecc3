//! The YAML manifest read with serde-saphyr: unknown tags refused, a node budget sized for
//! 100,000 segments, and its errors turned into located manifest errors.
//!
//! Not responsible for what the fields mean (see `resolve`).

use std::path::Path;

use super::raw::{Header, RawManifest, RawSegment};
use super::{Ctx, ManifestError, read_input};

/// The YAML reader's options: unknown tags (`!include`, `!env`) are refused rather than read
/// as their plain text, and the node budget fits 100,000 segments (the 64 MB input cap bounds
/// the work).
pub(crate) fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 20_000_000;
    budget.max_nodes = 10_000_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.reject_unsupported_tags = true;
    options
}

/// A serde-saphyr error as a located manifest error: its message without the rendered snippet
/// or the repeated location, and the key written on the offending line as the field.
pub(crate) fn yaml_error(ctx: &Ctx<'_>, source: &str, e: &serde_saphyr::Error) -> ManifestError {
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

/// Segment rows with the line each starts on.
pub(crate) type Rows = Vec<(u64, RawSegment)>;

/// A YAML manifest's defaults, segments (with the line of each) and header fields. A
/// `segments_csv` is read from `base`, and its path added to `inputs`.
pub(super) fn read_yaml(
    ctx: &Ctx<'_>,
    source: &str,
    base: &Path,
    inputs: &mut Vec<std::path::PathBuf>,
) -> Result<(Rows, RawSegment, Header), ManifestError> {
    let raw: RawManifest = serde_saphyr::from_str_with_options(source, yaml_options())
        .map_err(|e| yaml_error(ctx, source, &e))?;
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
                .map_err(|e| ctx.err(None, Some("segments_csv".into()), e.to_string()))?;
            inputs.push(csv_file.clone());
            let csv_ctx = Ctx { file: &csv_file };
            super::csv::read_csv(&csv_ctx, &csv_source)?
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
        narrator: raw.narrator,
        description: raw.description,
        year: raw.year,
        cover: raw.cover,
        source: raw.source,
        opening_credits: raw.opening_credits,
        closing_credits: raw.closing_credits,
        pronunciations: raw.pronunciations,
        pronunciation_file: raw.pronunciation_file,
        title: raw.title,
        output: raw.output,
        lead_in_ms: raw.lead_in_ms,
        tail_ms: raw.tail_ms,
        trim_silence: raw.trim_silence,
        continuity: raw.continuity,
    };
    Ok((segments, defaults, header))
}
