//! The render cache: every successful response stored at once, atomically, under a key of
//! everything that determines its audio, with its request id, issue time and credits.
//!
//! Reruns and resumed crashes read from here and pay nothing twice. Not responsible for deciding
//! what to render (see `execute`); never stores the API key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::TtsBody;

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
}

impl Meta {
    pub fn issued(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs_f64(self.issued_unix.max(0.0))
    }
}

/// A directory of cached responses.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

/// Everything that determines a request's audio, hashed into its key. Context fields
/// (`previous_*`, `next_*`) are left out: they shape prosody, not which audio is asked for.
#[derive(Serialize)]
struct KeyFields<'a> {
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
pub fn key(voice_id: &str, output_format: &str, body: &TtsBody, source: &str) -> String {
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
    let json = serde_json::to_vec(&fields).expect("key fields serialize");
    let digest = Sha256::digest(&json);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Cache {
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Cache {
            dir: dir.to_path_buf(),
        })
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

    /// The cached entry for `key`, if complete.
    pub fn get(&self, key: &str) -> Option<(Meta, PathBuf)> {
        let (audio, meta) = self.paths(key);
        let meta: Meta = serde_json::from_slice(&std::fs::read(meta).ok()?).ok()?;
        let len = std::fs::metadata(&audio).ok()?.len();
        (len == meta.bytes).then_some((meta, audio))
    }

    /// Stores a response: audio and timings first, then its metadata, each written to a
    /// temporary file, synced and renamed, so a crash leaves either a complete entry or none.
    pub fn put(
        &self,
        key: &str,
        audio: &[u8],
        alignment: Option<&crate::api::Alignment>,
        meta: &Meta,
    ) -> std::io::Result<PathBuf> {
        let (audio_path, meta_path) = self.paths(key);
        let dir = audio_path.parent().expect("cache paths have a parent");
        std::fs::create_dir_all(dir)?;
        write_atomic(dir, &audio_path, audio)?;
        if let Some(alignment) = alignment {
            let json = serde_json::to_vec(alignment).map_err(std::io::Error::other)?;
            write_atomic(dir, &self.alignment_path(key), &json)?;
        }
        let json = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
        write_atomic(dir, &meta_path, &json)?;
        Ok(audio_path)
    }
}

/// Takes the state directory's lock for this process's lifetime, so two runs never share a
/// cache at once. The operating system releases it when the process ends, even by `kill -9`.
pub fn lock_state_dir(dir: &Path) -> Result<std::fs::File, crate::cli::UsageError> {
    let fail = |e: std::io::Error| {
        crate::cli::UsageError(format!(
            "cannot use the state directory {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(fail)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(crate::cli::UsageError(format!(
            "another narrate run is using the state directory {}; wait for it to finish, or give this run its own --state-dir",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(fail(e)),
    }
}

/// Writes `data` to `path` through a synced temporary file in `dir`, renamed into place.
pub fn write_atomic(dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut temp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    temp.write_all(data)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
