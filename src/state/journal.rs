//! The send journal: before each attempt is sent, a line saying what (the request's cache key,
//! voice, model, format and a hash of its text) and when, synced to disk; and which history
//! items were taken to recover a request. A request sent without a cached answer — by a run
//! killed or cut off — is then looked for in the speech history instead of being paid again.
//!
//! One JSON object a line in `journal.jsonl` beside the cache entries; a line cut by a crash is
//! skipped. Compacted when a run ends: entries whose answer is cached are dropped. Not
//! responsible for the recovery itself (see `execute`).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::files;

/// How long a used history item is remembered: past this, the two-hour rule and the send
/// times keep another request from matching it anyway.
const USED_KEPT_SECS: f64 = 2.0 * 86_400.0;

/// One line of the journal.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Entry {
    /// An attempt about to be sent.
    Sent {
        key: String,
        voice_id: String,
        model_id: String,
        output_format: String,
        text_sha256: String,
        sent_unix: f64,
    },
    /// A history item taken to recover the request `key`.
    Used {
        key: String,
        history_item_id: String,
        at_unix: f64,
    },
}

/// The journal of one cache, read at open and appended to as requests are sent.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
    /// Entries read and written, for compaction.
    entries: Mutex<Vec<Entry>>,
    /// For each key sent by an earlier run: when it was first sent. Sends of this run are
    /// not added: a request of this run knows its own, and another request with the same key
    /// must not take it for a lost send.
    sent: HashMap<String, f64>,
    /// History items taken, with the key of the request that took each.
    used: Mutex<HashMap<String, String>>,
}

impl Journal {
    /// Reads the journal at `path` (missing is empty; unreadable lines are skipped).
    pub fn open(path: &Path) -> Self {
        let entries: Vec<Entry> = files::read_text(path, files::MAX_INPUT_BYTES)
            .map(|text| {
                text.lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect()
            })
            .unwrap_or_default();
        let mut sent = HashMap::new();
        let mut used = HashMap::new();
        for e in &entries {
            match e {
                Entry::Sent { key, sent_unix, .. } => {
                    let first = sent.entry(key.clone()).or_insert(*sent_unix);
                    *first = f64::min(*first, *sent_unix);
                }
                Entry::Used {
                    key,
                    history_item_id,
                    ..
                } => {
                    used.insert(history_item_id.clone(), key.clone());
                }
            }
        }
        Journal {
            path: path.to_path_buf(),
            file: Mutex::new(None),
            entries: Mutex::new(entries),
            sent,
            used: Mutex::new(used),
        }
    }

    /// Appends `entry` and syncs it to disk before returning.
    pub fn append(&self, entry: Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
        line.push('\n');
        {
            let mut file = self
                .file
                .lock()
                .map_err(|_| std::io::Error::other("journal lock"))?;
            if file.is_none() {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                *file = Some(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&self.path)?,
                );
            }
            if let Some(f) = file.as_mut() {
                f.write_all(line.as_bytes())?;
                f.sync_data()?;
            }
        }
        if let Entry::Used {
            key,
            history_item_id,
            ..
        } = &entry
            && let Ok(mut used) = self.used.lock()
        {
            used.insert(history_item_id.clone(), key.clone());
        }
        if let Ok(mut entries) = self.entries.lock() {
            entries.push(entry);
        }
        Ok(())
    }

    /// When an earlier run first sent `key`, if it did.
    pub fn first_sent(&self, key: &str) -> Option<f64> {
        self.sent.get(key).copied()
    }

    /// The request (by key) that already took a history item, if one of this state directory
    /// did. A run killed before storing what it recovered takes it again for the same request.
    pub fn used_by(&self, history_item_id: &str) -> Option<String> {
        self.used.lock().ok()?.get(history_item_id).cloned()
    }

    /// Rewrites the journal without the sends whose answer is now cached (`answered`) and
    /// without used items older than two days. Atomic; a failure leaves the journal as it was.
    pub fn compact(&self, answered: impl Fn(&str) -> bool, now_unix: f64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        entries.retain(|e| match e {
            Entry::Sent { key, .. } => !answered(key),
            Entry::Used { at_unix, .. } => now_unix - at_unix < USED_KEPT_SECS,
        });
        if let Ok(mut file) = self.file.lock() {
            *file = None;
        }
        if entries.is_empty() {
            let _ = std::fs::remove_file(&self.path);
            return;
        }
        let mut text = String::new();
        for e in entries.iter() {
            if let Ok(line) = serde_json::to_string(e) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        if let Err(e) = files::write_atomic(&self.path, text.as_bytes()) {
            tracing::warn!("{}: cannot compact the journal: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(key: &str, at: f64) -> Entry {
        Entry::Sent {
            key: key.into(),
            voice_id: "v".into(),
            model_id: "m".into(),
            output_format: "mp3_44100_128".into(),
            text_sha256: "00".into(),
            sent_unix: at,
        }
    }

    #[test]
    fn sends_survive_a_reopen_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let journal = Journal::open(&path);
        journal.append(sent("a", 100.0)).unwrap();
        journal.append(sent("a", 120.0)).unwrap();
        journal.append(sent("b", 130.0)).unwrap();
        journal
            .append(Entry::Used {
                key: "a".into(),
                history_item_id: "H1".into(),
                at_unix: 140.0,
            })
            .unwrap();
        // A crash while appending leaves half a line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"kind\":\"sent\",\"key\":\"c\",\"vo")
            .unwrap();
        let again = Journal::open(&path);
        assert_eq!(again.first_sent("a"), Some(100.0));
        assert_eq!(again.first_sent("b"), Some(130.0));
        assert_eq!(again.first_sent("c"), None);
        assert_eq!(again.used_by("H1").as_deref(), Some("a"));
        // This run's own sends are not taken for an earlier run's.
        again.append(sent("d", 145.0)).unwrap();
        assert_eq!(again.first_sent("d"), None);
        again.compact(|k| k == "a", 150.0);
        let compacted = Journal::open(&path);
        assert_eq!(compacted.first_sent("a"), None);
        assert_eq!(compacted.first_sent("b"), Some(130.0));
        assert_eq!(compacted.used_by("H1").as_deref(), Some("a"));
        compacted.compact(|_| true, 150.0 + USED_KEPT_SECS);
        assert!(!path.exists(), "an empty journal is removed");
    }
}
