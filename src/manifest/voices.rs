//! Voice names (`voice: George`) resolved to ids from the account's voices.
//!
//! Not responsible for fetching the voices (see `api::account`).

use super::{Job, ManifestError};

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
