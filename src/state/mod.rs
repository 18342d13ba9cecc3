//! The state directory (`.narrate/` beside the manifest, or `--state-dir`): its lock, its
//! `cache` of rendered requests, and the model limits remembered from `GET /v1/models`.
//!
//! [`StateDir`] is the one owner of these paths. Not responsible for what is cached (see
//! `execute`).

use std::path::{Path, PathBuf};

use crate::error::UsageError;
use crate::files;
use crate::models::{Limits, plausible_limits};

pub(crate) mod bucket;
pub(crate) mod cache;
pub mod journal;
pub(crate) mod shared;
pub(crate) mod shelf;

pub use cache::{Cache, Meta};
pub use journal::Journal;

/// A state directory, by path; nothing is created until [`StateDir::lock`] or a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDir(PathBuf);

impl StateDir {
    /// `--state-dir`, or `.narrate/` beside the manifest.
    pub fn for_manifest(state_dir: Option<&Path>, manifest: &Path) -> Self {
        StateDir(match state_dir {
            Some(dir) => dir.to_path_buf(),
            None => manifest.parent().unwrap_or(Path::new(".")).join(".narrate"),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Where the rendered requests are kept.
    pub fn cache_dir(&self) -> PathBuf {
        self.0.join("cache")
    }

    fn models_path(&self) -> PathBuf {
        self.0.join("models.json")
    }

    /// Takes the lock for this process's lifetime (see [`lock_state_dir`]).
    pub fn lock(&self) -> anyhow::Result<std::fs::File> {
        lock_state_dir(&self.0)
    }

    /// The limits remembered by an earlier run (empty when none; implausible ones dropped).
    pub fn remembered_limits(&self) -> Limits {
        let path = self.models_path();
        let Ok(bytes) = files::read_bytes(&path, files::MAX_STATE_JSON_BYTES) else {
            return Limits::new();
        };
        match serde_json::from_slice::<std::collections::HashMap<String, u64>>(&bytes) {
            Ok(saved) => plausible_limits(saved, &path.display().to_string()),
            Err(e) => {
                tracing::warn!(
                    "{}: unreadable ({e}); using the built-in limits",
                    path.display()
                );
                Limits::new()
            }
        }
    }

    /// Remembers the API's limits for runs that cannot reach it.
    pub fn remember_limits(&self, limits: &Limits) {
        if let Ok(json) = serde_json::to_vec_pretty(limits)
            && std::fs::create_dir_all(&self.0).is_ok()
        {
            let _ = files::write_atomic(&self.models_path(), &json);
        }
    }
}

/// The places in a state directory narrate writes through: the directory, its lock and model
/// limits, its dictionaries' records, its cache with the journal, the published files'
/// records and each folder of entries.
fn written_through(dir: &Path) -> Vec<PathBuf> {
    let cache = dir.join("cache");
    let mut out = vec![
        dir.to_path_buf(),
        dir.join("lock"),
        dir.join("models.json"),
        dir.join("dictionaries"),
        cache.clone(),
        cache.join("journal.jsonl"),
        cache.join("published"),
    ];
    for folder in [
        dir.join("dictionaries"),
        cache.clone(),
        cache.join("published"),
    ] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        out.extend(
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
                .map(|e| e.path()),
        );
    }
    out
}

/// Refuses a state directory, or anything inside it narrate writes through (its `cache/`, the
/// cache's folders, `published/`, `dictionaries/`, the lock, the journal), that is a symlink
/// leading outside the state directory's parent: narrate would otherwise write (and trust)
/// files somewhere nobody chose.
pub fn check_links(dir: &Path) -> Result<(), UsageError> {
    let parent = crate::files::parent_dir(dir);
    let Ok(root) = std::fs::canonicalize(parent) else {
        return Ok(());
    };
    for path in written_through(dir) {
        let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            continue;
        }
        let inside = std::fs::canonicalize(&path).is_ok_and(|target| target.starts_with(&root));
        if !inside {
            let target = std::fs::read_link(&path).unwrap_or_default();
            return Err(UsageError(format!(
                "{} (of the state directory) is a symlink to {}, outside {}; narrate does not write its state through links that lead elsewhere (remove the link or pass --state-dir)",
                path.display(),
                target.display(),
                root.display()
            )));
        }
    }
    Ok(())
}

/// Takes the state directory's lock for this process's lifetime, so two runs never share a
/// cache at once. The operating system releases it when the process ends, even by `kill -9`.
pub fn lock_state_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let fail = |e: std::io::Error| {
        UsageError(format!(
            "cannot use the state directory {}: {e}",
            dir.display()
        ))
    };
    check_links(dir)?;
    std::fs::create_dir_all(dir).map_err(fail)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(fail)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(crate::error::LockHeld(format!(
            "another narrate run is using the state directory {}; wait for it to finish, or give this run its own --state-dir",
            dir.display()
        ))
        .into()),
        Err(std::fs::TryLockError::Error(e)) => Err(fail(e).into()),
    }
}
