//! The render cache: every successful response stored at once, atomically, under a key of
//! everything that determines its audio, with its request id, issue time, credits and the
//! SHA-256 of its audio, which is checked on every read.
//!
//! Reruns and resumed crashes read from here and pay nothing twice. Not responsible for deciding
//! what to render (see `execute`); never stores the API key.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::TtsBody;
use crate::files::write_atomic;

/// What is stored beside each cached response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    pub request_id: Option<String>,
    /// Unix seconds when the API issued the response (request ids expire two hours later).
    pub issued_unix: f64,
    pub credits: Option<f64>,
    pub characters: usize,
    pub bytes: u64,
    pub output_format: String,
    /// Whether the audio came from the built-in emulator (synthetic).
    pub synthetic: bool,
    /// The context sent when this audio was rendered, for reports of later cached runs.
    #[serde(default)]
    pub previous_request_ids: Vec<String>,
    #[serde(default)]
    pub next_request_ids: Vec<String>,
    #[serde(default)]
    pub used_previous_text: bool,
    #[serde(default)]
    pub used_next_text: bool,
    /// Whether the character timings of `/with-timestamps` are stored beside the audio.
    #[serde(default)]
    pub alignment: bool,
    /// The speech-history item this audio was recovered from (it was generated and paid for by
    /// an attempt whose answer never arrived whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_from: Option<String>,
    /// SHA-256 of the audio file, checked on every read: a damaged entry is a miss. Entries
    /// written before narrate stored it have none and are used unchecked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The latest plausible issue time: 2100-01-01 (a later one is damaged metadata).
pub(crate) const LATEST_ISSUED_UNIX: f64 = 4_102_444_800.0;

impl Meta {
    /// When the API issued the response (its request id expires two hours later).
    pub fn issued(&self) -> SystemTime {
        let secs = if self.issued_unix.is_finite() {
            self.issued_unix.clamp(0.0, LATEST_ISSUED_UNIX)
        } else {
            0.0
        };
        UNIX_EPOCH + Duration::from_secs_f64(secs)
    }

    /// Why these values cannot be a response narrate stored, if they cannot.
    pub(crate) fn implausible(&self) -> Option<String> {
        if !(self.issued_unix.is_finite() && (0.0..=LATEST_ISSUED_UNIX).contains(&self.issued_unix))
        {
            return Some(format!("issued_unix {} is not a time", self.issued_unix));
        }
        if let Some(c) = self.credits
            && !(c.is_finite() && (0.0..=1e9).contains(&c))
        {
            return Some(format!("credits {c} is not a credit count"));
        }
        if let Some(id) = &self.request_id
            && (id.is_empty()
                || id.len() > 256
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Some("request_id is not an id".to_string());
        }
        if let Some(h) = &self.sha256
            && !(h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Some("sha256 is not a SHA-256 digest".to_string());
        }
        None
    }
}

/// A directory of cached responses.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
    /// Entries already judged in this run (by key): whether each was sound. Hashing is done
    /// once per entry and a damaged one is reported once.
    judged: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, bool>>>,
    /// What was sent without an answer (see [`super::Journal`]).
    journal: std::sync::Arc<super::Journal>,
    /// The shared cache other machines use too (`--cache-url`), if any.
    shelf: Option<super::shelf::SharedShelf>,
}

/// The SHA-256 of `data` in lowercase hex.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Bytes in lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything that determines a request's audio, hashed into its key. Context fields
/// (`previous_*`, `next_*`) are left out: they shape prosody, not which audio is asked for.
#[derive(Serialize)]
pub(crate) struct KeyFields<'a> {
    v: u32,
    voice_id: &'a str,
    output_format: &'a str,
    text: &'a str,
    model_id: &'a str,
    language_code: &'a Option<String>,
    voice_settings: &'a Option<crate::manifest::VoiceSettings>,
    pronunciation_dictionary_locators: &'a [crate::manifest::DictionaryLocator],
    seed: Option<u32>,
    apply_text_normalization: &'a Option<String>,
    source: &'a str,
}

/// The cache key of a request. `source` (`emulator` or the base URL) keeps synthetic audio apart from the real API's.
pub(crate) fn key(voice_id: &str, output_format: &str, body: &TtsBody, source: &str) -> String {
    let fields = KeyFields {
        v: 1,
        voice_id,
        output_format,
        text: &body.text,
        model_id: &body.model_id,
        language_code: &body.language_code,
        voice_settings: &body.voice_settings,
        pronunciation_dictionary_locators: &body.pronunciation_dictionary_locators,
        seed: body.seed,
        apply_text_normalization: &body.apply_text_normalization,
        source,
    };
    // Strings, numbers and options of them always serialize.
    let json = serde_json::to_vec(&fields).unwrap_or_default();
    sha256_hex(&json)
}

impl Cache {
    /// The cache in `dir`, created if missing.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Cache {
            dir: dir.to_path_buf(),
            judged: Default::default(),
            journal: std::sync::Arc::new(super::Journal::open(&dir.join("journal.jsonl"))),
            shelf: None,
        })
    }

    /// This cache with a shared one behind it (see `shelf`).
    pub(crate) fn with_shelf(mut self, shelf: Option<super::shelf::SharedShelf>) -> Self {
        self.shelf = shelf;
        self
    }

    /// The shared cache behind this one, if any.
    pub(crate) fn shelf(&self) -> Option<&super::shelf::SharedShelf> {
        self.shelf.as_ref()
    }

    /// The folder of the cache.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes the temporary files of writes a killed run left unfinished (the state lock is
    /// held, so no other run is writing). Returns how many.
    pub fn remove_leftovers(&self) -> usize {
        let mut removed = 0;
        let Ok(subdirs) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        for sub in subdirs.flatten() {
            if !sub.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            for entry in std::fs::read_dir(sub.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.')
                    && name.contains(".narrate-")
                    && name.ends_with(".part")
                    && std::fs::remove_file(entry.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Where the records of published files are kept (see `output::published`).
    pub(crate) fn published_dir(&self) -> PathBuf {
        self.dir.join("published")
    }

    /// The send journal of this cache.
    pub fn journal(&self) -> &super::Journal {
        &self.journal
    }

    /// Whether `key` has a stored answer (without checking it).
    pub fn has(&self, key: &str) -> bool {
        self.paths(key).1.exists()
    }

    /// Compacts the journal: sends whose answer is cached are dropped.
    pub fn compact_journal(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.journal.compact(|key| self.has(key), now);
    }

    /// Forgets which entries were judged this run: a content job rendered a window of rows at
    /// a time has no use for the judgements of the windows done.
    pub fn forget_judged(&self) {
        if let Ok(mut judged) = self.judged.lock() {
            *judged = Default::default();
        }
    }

    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        let sub = self.dir.join(&key[..2]);
        (
            sub.join(format!("{key}.audio")),
            sub.join(format!("{key}.json")),
        )
    }

    /// Where the character timings of `key` are (or will be) stored.
    pub fn alignment_path(&self, key: &str) -> PathBuf {
        self.dir
            .join(&key[..2])
            .join(format!("{key}.alignment.json"))
    }

    /// Where the audio of `key` is (or will be) stored.
    pub fn audio_path(&self, key: &str) -> PathBuf {
        self.paths(key).0
    }

    /// A file of `key`'s entry that could never be written because something else is in its
    /// place (a directory, a FIFO, a link): an answer paid for could not be kept.
    pub(crate) fn blocked(&self, key: &str) -> Option<PathBuf> {
        let (audio, meta) = self.paths(key);
        let sub = audio.parent().map(Path::to_path_buf);
        sub.into_iter()
            .filter(|dir| std::fs::symlink_metadata(dir).is_ok_and(|m| !m.is_dir()))
            .chain(
                [audio, meta, self.alignment_path(key)]
                    .into_iter()
                    .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| !m.is_file())),
            )
            .next()
    }

    /// The cached entry for `key`, if complete and sound. A damaged entry (metadata that does
    /// not parse or holds impossible values, audio of the wrong length or hash) is a miss, with a
    /// warning naming the file, so the request is rendered again.
    pub fn get(&self, key: &str) -> Option<(Meta, PathBuf)> {
        let (audio, meta_path) = self.paths(key);
        if !meta_path.exists() {
            return None;
        }
        let judged = self.judged.lock().ok()?.get(key).copied();
        let warn = judged.is_none();
        match self.check(&audio, &meta_path, judged == Some(true)) {
            Ok(meta) => {
                if let Ok(mut j) = self.judged.lock() {
                    j.insert(key.to_string(), true);
                }
                Some((meta, audio))
            }
            Err(why) => {
                if warn {
                    tracing::warn!(
                        "damaged cache entry {}: {why}; the request is rendered again",
                        meta_path.display()
                    );
                }
                if let Ok(mut j) = self.judged.lock() {
                    j.insert(key.to_string(), false);
                }
                None
            }
        }
    }

    /// Reads and checks an entry; `hashed` skips the audio hash when this run already checked it.
    fn check(&self, audio: &Path, meta_path: &Path, hashed: bool) -> Result<Meta, String> {
        let bytes = crate::files::read_bytes(meta_path, crate::files::MAX_STATE_JSON_BYTES)
            .map_err(|e| e.to_string())?;
        let meta: Meta =
            serde_json::from_slice(&bytes).map_err(|e| format!("unreadable metadata: {e}"))?;
        if let Some(why) = meta.implausible() {
            return Err(why);
        }
        let len = std::fs::metadata(audio)
            .map_err(|e| format!("{}: {e}", audio.display()))?
            .len();
        if len != meta.bytes {
            return Err(format!(
                "{} has {len} bytes, the entry says {}",
                audio.display(),
                meta.bytes
            ));
        }
        if let Some(expected) = &meta.sha256
            && !hashed
        {
            let data = crate::files::read_bytes(audio, meta.bytes).map_err(|e| e.to_string())?;
            if sha256_hex(&data) != expected.to_ascii_lowercase() {
                return Err(format!(
                    "{} does not match its SHA-256 (bit rot or an edited file)",
                    audio.display()
                ));
            }
        }
        Ok(meta)
    }

    /// Stores a response: audio and timings first, then its metadata (with the audio's SHA-256),
    /// each written to a temporary file, synced and renamed, so a crash leaves either a complete
    /// entry or none.
    pub fn put(
        &self,
        key: &str,
        audio: &[u8],
        alignment: Option<&crate::api::Alignment>,
        meta: &Meta,
    ) -> std::io::Result<PathBuf> {
        let (audio_path, meta_path) = self.paths(key);
        std::fs::create_dir_all(crate::files::parent_dir(&audio_path))?;
        write_atomic(&audio_path, audio)?;
        if let Some(alignment) = alignment {
            let json = serde_json::to_vec(alignment).map_err(std::io::Error::other)?;
            write_atomic(&self.alignment_path(key), &json)?;
        }
        // The hash the caller computed from these bytes is kept; without one, it is made here.
        let mut meta = meta.clone();
        debug_assert!(meta.sha256.as_ref().is_none_or(|h| *h == sha256_hex(audio)));
        if meta.sha256.is_none() {
            meta.sha256 = Some(sha256_hex(audio));
        }
        let json = serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)?;
        write_atomic(&meta_path, &json)?;
        if let Ok(mut j) = self.judged.lock() {
            j.insert(key.to_string(), true);
        }
        Ok(audio_path)
    }
}

#[cfg(test)]
mod tests {
    use super::Cache;
    use crate::state::journal::Entry;

    #[test]
    fn compacting_the_journal_keeps_every_send_whose_answer_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let lost = "ab".repeat(32);
        cache
            .journal()
            .append(Entry::Sent {
                key: lost.clone(),
                voice_id: "v".into(),
                model_id: "m".into(),
                output_format: "mp3_44100_128".into(),
                text_sha256: "00".into(),
                sent_unix: 1.0,
            })
            .unwrap();
        // The answer never came back (a crash, a lost connection): nothing is stored.
        cache.compact_journal();
        let again = Cache::open(dir.path()).unwrap();
        assert_eq!(again.journal().first_sent(&lost), Some(1.0));
    }

    /// The metadata of a sound 3-byte answer of 42 characters.
    fn sound_meta() -> super::Meta {
        super::Meta {
            request_id: Some("req_0123-ABC.x".into()),
            issued_unix: 1_700_000_000.0,
            credits: Some(42.0),
            characters: 42,
            bytes: 3,
            output_format: "mp3_44100_128".into(),
            synthetic: true,
            previous_request_ids: Vec::new(),
            next_request_ids: Vec::new(),
            used_previous_text: false,
            used_next_text: false,
            alignment: false,
            recovered_from: None,
            sha256: None,
        }
    }

    #[test]
    fn a_digest_that_is_not_one_is_named_as_the_reason() {
        let meta = |sha256: String| super::Meta {
            sha256: Some(sha256),
            ..sound_meta()
        };
        let why = Some("sha256 is not a SHA-256 digest".to_string());
        // The length of a digest but not hex, and hex but not the length.
        assert_eq!(meta("z".repeat(64)).implausible(), why);
        assert_eq!(meta("ab".repeat(31)).implausible(), why);
        assert_eq!(meta("ab".repeat(32)).implausible(), None);
    }

    #[test]
    fn an_entry_whose_metadata_no_answer_could_have_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let key = "cd".repeat(32);
        let meta = sound_meta();
        Cache::open(dir.path())
            .unwrap()
            .put(&key, b"abc", None, &meta)
            .unwrap();
        let meta_path = dir.path().join(&key[..2]).join(format!("{key}.json"));
        let sound: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
        // A fresh cache each time: nothing judged before.
        let read = |value: &serde_json::Value| {
            std::fs::write(&meta_path, value.to_string()).unwrap();
            Cache::open(dir.path()).unwrap().get(&key).is_some()
        };
        assert!(read(&sound), "the sound entry is a hit");
        let bad: [(&str, serde_json::Value); 9] = [
            ("credits", serde_json::json!(-1.0)),
            ("credits", serde_json::json!(2e9)),
            ("request_id", serde_json::json!("")),
            ("request_id", serde_json::json!("r".repeat(257))),
            ("request_id", serde_json::json!("../../etc/passwd")),
            ("issued_unix", serde_json::json!(5e9)),
            ("sha256", serde_json::json!("not a digest")),
            // The length of a digest but not hex, and hex but not the length.
            ("sha256", serde_json::json!("z".repeat(64))),
            ("sha256", serde_json::json!("ab".repeat(31))),
        ];
        for (field, value) in bad {
            let mut damaged = sound.clone();
            damaged[field] = value.clone();
            assert!(!read(&damaged), "{field} = {value} is used");
        }
        // The limits themselves are plausible.
        for (field, value) in [
            ("credits", serde_json::json!(1e9)),
            ("request_id", serde_json::json!("r".repeat(256))),
        ] {
            let mut edge = sound.clone();
            edge[field] = value.clone();
            assert!(read(&edge), "{field} = {value} is refused");
        }
    }
}
