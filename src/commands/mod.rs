//! The commands: one module each, and what several of them share (loading manifests, resolving
//! voice names).
//!
//! Not responsible for parsing flags (see `cli`) or the stages (see `manifest`, `plan`,
//! `execute`, `audio`, `output`).

use std::path::{Path, PathBuf};

use crate::api::Client;
use crate::error::UsageError;
use crate::manifest::{self, Job};

pub(crate) mod audition;
pub(crate) mod budget;
pub(crate) mod check;
pub(crate) mod dictionary;
pub(crate) mod emulate;
pub(crate) mod feed;
pub(crate) mod fleet;
pub(crate) mod import;
pub(crate) mod models;
pub(crate) mod outcome;
pub(crate) mod plan;
pub(crate) mod render;
pub(crate) mod retry;
pub(crate) mod summary;
pub(crate) mod voices;
pub(crate) mod windowed;

/// Loads every manifest (or book, imported in memory) before anything is sent. `writes` says
/// whether the command may write (a render; `check` and `plan` write nothing, so a book's
/// cover is left where it is).
pub(crate) fn load_jobs(
    manifests: &[PathBuf],
    defaults: &manifest::FlagDefaults,
    output: Option<&Path>,
    writes: bool,
) -> anyhow::Result<Vec<Job>> {
    manifests
        .iter()
        .map(|m| {
            if !crate::import::is_book(m) {
                return Ok(manifest::load(m, defaults, output).map_err(UsageError::from)?);
            }
            // A book: imported in memory, with the flags as the manifest's defaults.
            let options = crate::import::ImportOptions {
                voice: defaults.voice_id.clone(),
                model: defaults.model_id.clone(),
                output_format: defaults.output_format.clone(),
                title_pause_ms: crate::import::DEFAULT_TITLE_PAUSE_MS,
                ..Default::default()
            };
            let source = crate::import::manifest_in_memory(m, &options, writes)?;
            Ok(manifest::load_source(m, &source, defaults, output).map_err(UsageError::from)?)
        })
        .collect()
}

/// Resolves `voice` names in every job through `GET /v2/voices`, once for all of them.
pub(crate) async fn resolve_voices(client: &Client, jobs: &mut [Job]) -> anyhow::Result<()> {
    if !jobs.iter().any(manifest::has_voice_names) {
        return Ok(());
    }
    let voices = match client.voices(None).await {
        Ok(v) => crate::api::account::id_and_name(&v),
        Err(e) => {
            let refused = e.status() == Some(401);
            let message = format!("cannot resolve voice names: GET /v2/voices: {e}");
            return Err(if refused {
                UsageError(message).into()
            } else {
                anyhow::anyhow!(message)
            });
        }
    };
    for job in jobs.iter_mut() {
        manifest::resolve_voice_names(job, &voices).map_err(UsageError::from)?;
    }
    Ok(())
}

/// A report a render wrote, read back (bounded) into the fields `T` needs of it (`retry`,
/// `feed`).
pub(crate) fn read_report<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, UsageError> {
    let text = crate::files::read_text(path, crate::files::MAX_INPUT_BYTES)
        .map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        UsageError(format!(
            "{}: not a narrate report ({e}); give the .report.json a render wrote",
            path.display()
        ))
    })
}
