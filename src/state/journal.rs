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
    /// The journal could not be read whole: it is never rewritten or removed, so no send it
    /// records is forgotten.
    frozen: bool,
}

/// The longest journal line read; a longer one is damage and is skipped.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Every entry of the journal at `path`, read a line at a time (however long the journal
/// grew); a line that does not parse (a torn last line) is skipped. `Err` when the file is
/// there but cannot be read to its end.
fn read_entries(path: &Path) -> std::io::Result<Vec<Entry>> {
    use std::io::{BufRead as _, Read as _};
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut reader = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut entries = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(entries);
        }
        if line.len() > MAX_LINE_BYTES && !line.ends_with(b"\n") {
            // The rest of an over-long line.
            let mut rest = Vec::new();
            reader.read_until(b'\n', &mut rest)?;
            continue;
        }
        if let Ok(entry) = serde_json::from_slice(&line) {
            entries.push(entry);
        }
    }
}

impl Journal {
    /// Reads the journal at `path` (missing is empty; unreadable lines are skipped). A journal
    /// that cannot be read to its end is said, and kept as it is.
    pub fn open(path: &Path) -> Self {
        let (entries, frozen) = match read_entries(path) {
            Ok(entries) => (entries, false),
            Err(e) => {
                tracing::warn!(
                    "{}: cannot read the send journal ({e}); sends an earlier run made cannot be looked for, and the journal is kept as it is",
                    path.display()
                );
                (Vec::new(), true)
            }
        };
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
            frozen,
        }
    }

    /// Appends `entry` and syncs it to disk before returning.
    pub fn append(&self, entry: Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
        line.push('\n');
        // The entries are held from the write to the push, as `compact` holds them from its
        // read to its rewrite: a line is never written to a file a compaction then replaces
        // without it (compaction may run while other requests are in flight).
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| std::io::Error::other("journal lock"))?;
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
        entries.push(entry);
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
        if self.frozen {
            return;
        }
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

    /// `entry` as a journal line of exactly `len` bytes (spaces before its closing brace).
    fn padded(entry: &Entry, len: usize) -> String {
        let line = serde_json::to_string(entry).unwrap();
        let body = line.strip_suffix('}').unwrap();
        format!("{body}{}}}", " ".repeat(len - line.len()))
    }

    #[test]
    fn a_line_of_the_longest_size_is_read_and_a_longer_ones_tail_is_never_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        // The limit is 64 KiB (written out here: the test pins it, not the constant).
        let limit = 65_536;
        let longest = padded(&sent("longest", 1.0), limit);
        // An over-long line whose tail, past the limit, would parse as a send of its own.
        let tail = serde_json::to_string(&sent("tail", 2.0)).unwrap();
        let over = format!("{}{tail}", "z".repeat(limit + 1));
        // An over-long line whose first 64 KiB are a whole send: still one damaged line.
        let glued = format!("{}x", padded(&sent("glued", 4.0), limit));
        // The last line, complete but without its newline (a crash before it was written).
        let last = padded(&sent("last", 3.0), limit);
        let text = format!("{longest}\n{over}\n{glued}\n{last}");
        std::fs::write(&path, text).unwrap();
        let journal = Journal::open(&path);
        assert_eq!(journal.first_sent("longest"), Some(1.0));
        assert_eq!(journal.first_sent("tail"), None);
        assert_eq!(journal.first_sent("glued"), None);
        assert_eq!(journal.first_sent("last"), Some(3.0));
        // A journal that cannot be looked at (its folder is a file) is an error, not empty.
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(read_entries(&file.join("journal.jsonl")).is_err());
    }

    #[test]
    fn a_used_history_item_is_remembered_for_two_days_and_no_longer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let journal = Journal::open(&path);
        let hour = 3600.0;
        let now = 100.0 * hour;
        for (item, hours_ago) in [("H47", 47.0), ("H48", 48.0), ("H49", 49.0)] {
            journal
                .append(Entry::Used {
                    key: "a".into(),
                    history_item_id: item.into(),
                    at_unix: now - hours_ago * hour,
                })
                .unwrap();
        }
        journal.compact(|_| false, now);
        let again = Journal::open(&path);
        assert_eq!(again.used_by("H47").as_deref(), Some("a"));
        assert_eq!(again.used_by("H48"), None, "two days to the second is past");
        assert_eq!(again.used_by("H49"), None);
    }

    #[test]
    fn a_journal_past_any_input_limit_is_read_whole_and_an_unreadable_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut text = String::new();
        let line = serde_json::to_string(&sent("old", 10.0)).unwrap();
        // Far past the 64 MB a manifest input may be: one early send, then filler.
        text.push_str(&line);
        text.push('\n');
        let filler = serde_json::to_string(&sent(&"x".repeat(200), 20.0)).unwrap();
        while text.len() < (files::MAX_INPUT_BYTES as usize) + 1024 {
            text.push_str(&filler);
            text.push('\n');
        }
        text.push_str(&"y".repeat(MAX_LINE_BYTES * 2));
        text.push('\n');
        text.push_str(&serde_json::to_string(&sent("late", 30.0)).unwrap());
        text.push('\n');
        std::fs::write(&path, &text).unwrap();
        let journal = Journal::open(&path);
        assert_eq!(journal.first_sent("old"), Some(10.0));
        assert_eq!(journal.first_sent("late"), Some(30.0));

        // A FIFO where the journal should be: never read (it would block), never removed.
        let fifo = dir.path().join("fifo.jsonl");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo runs");
        let frozen = Journal::open(&fifo);
        frozen.compact(|_| true, 0.0);
        assert!(fifo.exists(), "an unreadable journal is never removed");
    }
}
