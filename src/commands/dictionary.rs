//! The pronunciation dictionary narrate keeps on the account for a manifest: created once from
//! the manifest's rules, its id and version remembered in the state directory
//! (`dictionaries/<manifest>.json`), reused while the rules stay the same and given new rules
//! (a new version, pinned) when they change. Never a new dictionary per run.
//!
//! Not responsible for which requests carry it (see `execute::estimate::body_for`).

use serde::{Deserialize, Serialize};

use crate::api::Client;
use crate::manifest::{DictionaryLocator, Job};
use crate::state::StateDir;

/// What the state directory remembers of a manifest's dictionary.
#[derive(Debug, Deserialize, Serialize)]
struct Remembered {
    id: String,
    version_id: String,
    /// The rules of that version, in the API's form.
    rules: Vec<serde_json::Value>,
}

fn remembered_path(state: &StateDir, job: &Job) -> std::path::PathBuf {
    let name = job
        .manifest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A slug keeps ASCII letters and digits only: a name with others (`книга.yaml`, `本.yaml`)
    // is told apart from its neighbours by a hash of the whole name.
    let slug = crate::output::names::slug(&name);
    let file = if name.is_ascii() {
        format!("{slug}.json")
    } else {
        let hash = crate::state::cache::sha256_hex(name.as_bytes());
        format!("{slug}-{}.json", &hash[..16])
    };
    state.path().join("dictionaries").join(file)
}

/// Makes sure the account has a dictionary with exactly the job's rules and sets
/// `job.dictionary` to its current version. One `GET` when nothing changed; one `set-rules` when
/// the rules did; one `add-from-rules` the first time (or when the remembered dictionary is gone).
pub(crate) async fn ensure(client: &Client, state: &StateDir, job: &mut Job) -> anyhow::Result<()> {
    if job.pronunciations.is_empty() {
        return Ok(());
    }
    let rules: Vec<serde_json::Value> = job.pronunciations.iter().map(|r| r.api()).collect();
    let path = remembered_path(state, job);
    // An id goes into a URL path: only the letters, digits, `-` and `_` the API's ids use.
    let remembered: Option<Remembered> =
        crate::files::read_bytes(&path, crate::files::MAX_STATE_JSON_BYTES)
            .ok()
            .and_then(|b| serde_json::from_slice::<Remembered>(&b).ok())
            .filter(|r| crate::api::plain_id(&r.id));
    let manifest = job.manifest.display().to_string();
    let version = match remembered {
        Some(r) => match client.dictionary(&r.id).await? {
            Some(latest) if r.rules == rules && latest.version_id == r.version_id => {
                tracing::info!(dictionary = %r.id, "pronunciation dictionary unchanged");
                latest
            }
            Some(_) => {
                let v = client
                    .set_dictionary_rules(&r.id, &job.pronunciations)
                    .await?;
                tracing::info!(dictionary = %v.id, version = %v.version_id, "pronunciation rules replaced");
                v
            }
            None => {
                tracing::warn!(
                    "{manifest}: the pronunciation dictionary {} is no longer on the account; creating it again",
                    r.id
                );
                create(client, job).await?
            }
        },
        None => create(client, job).await?,
    };
    let record = Remembered {
        id: version.id.clone(),
        version_id: version.version_id.clone(),
        rules,
    };
    std::fs::create_dir_all(crate::files::parent_dir(&path))?;
    crate::files::write_atomic(&path, &serde_json::to_vec_pretty(&record)?)?;
    job.dictionary = Some(DictionaryLocator {
        pronunciation_dictionary_id: version.id,
        version_id: Some(version.version_id),
    });
    Ok(())
}

async fn create(client: &Client, job: &Job) -> anyhow::Result<crate::api::dictionaries::Version> {
    let stem = job
        .manifest
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = format!("narrate {}", job.book.title.as_deref().unwrap_or(&stem));
    let v = client.create_dictionary(&name, &job.pronunciations).await?;
    if !crate::api::plain_id(&v.id) {
        anyhow::bail!(
            "the API answered a dictionary id narrate will not use: {:?}",
            v.id
        );
    }
    tracing::info!(dictionary = %v.id, version = %v.version_id, "pronunciation dictionary created");
    Ok(v)
}

/// For a run that sends nothing (`assemble`): the dictionary this state directory remembers
/// for exactly the job's rules. An error when there is none (the machine that rendered the job
/// kept it in its own state directory: pass that one with --state-dir).
pub(crate) fn remembered(state: &StateDir, job: &mut Job) -> anyhow::Result<()> {
    if job.pronunciations.is_empty() {
        return Ok(());
    }
    let rules: Vec<serde_json::Value> = job.pronunciations.iter().map(|r| r.api()).collect();
    let path = remembered_path(state, job);
    let found = crate::files::read_bytes(&path, crate::files::MAX_STATE_JSON_BYTES)
        .ok()
        .and_then(|b| serde_json::from_slice::<Remembered>(&b).ok())
        .filter(|r| crate::api::plain_id(&r.id) && r.rules == rules);
    let Some(r) = found else {
        return Err(crate::error::usage(format!(
            "{}: its pronunciation rules need the account's dictionary, and {} remembers none with these rules; assemble where the job was rendered, or copy that state directory's dictionaries/ here",
            job.manifest.display(),
            state.path().display()
        )));
    };
    job.dictionary = Some(DictionaryLocator {
        pronunciation_dictionary_id: r.id,
        version_id: Some(r.version_id),
    });
    Ok(())
}
