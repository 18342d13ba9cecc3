//! The shared cache (`--cache-url`): the same entries as the local cache, kept in object
//! storage (S3 and any S3-compatible store, Google Cloud Storage, Azure Blob Storage, or a
//! folder by `file://`) so that every machine of a job pays for a request at most once.
//!
//! The local cache stays the working copy: an entry missing here is looked for on the shelf
//! before it is sent, and every answer stored here is put on the shelf, create-only. Two
//! machines that rendered the same request keep one object; the one that lost the race takes
//! the winner's audio, so every machine's book is the same. An object is read with the local
//! cache's checks (its key, its metadata, the audio's length and SHA-256): a torn or foreign
//! object is a miss with a warning, never audio in a book. Not responsible for the object
//! store's protocol (the `object_store` crate) or for what is cached (see `execute`).

use futures::StreamExt as _;

use super::cache::{Cache, Meta, sha256_hex};
use super::shelf::{Created, Shelf};
use crate::api::Alignment;

/// The first line of every entry on the shelf.
const MAGIC: &[u8] = b"narrate-cache-entry 1\n";
/// The most an entry's header (metadata and timings, as JSON) may hold.
const MAX_HEADER_BYTES: usize = 64 * 1024 * 1024;
/// Lookups and puts at once when a run's entries are matched with the shelf.
const AT_ONCE: usize = 16;

/// One entry as the shelf holds it: the key it was stored under, its metadata, its character
/// timings and its audio.
#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    key: String,
    meta: Meta,
    #[serde(default)]
    alignment: Option<Alignment>,
}

/// The bytes of an entry: the magic line, the header as one line of JSON, the audio.
pub(crate) fn encode(
    key: &str,
    meta: &Meta,
    alignment: Option<Alignment>,
    audio: &[u8],
) -> Result<Vec<u8>, String> {
    let header = Header {
        key: key.to_string(),
        meta: meta.clone(),
        alignment,
    };
    let json = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(MAGIC.len() + json.len() + 1 + audio.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&json);
    out.push(b'\n');
    out.extend_from_slice(audio);
    Ok(out)
}

/// An entry read back, checked as the local cache checks its own: it must be narrate's, be the
/// entry of `key`, hold plausible metadata, and audio of the length and SHA-256 it states.
pub(crate) fn decode(
    key: &str,
    bytes: &[u8],
) -> Result<(Meta, Option<Alignment>, Vec<u8>), String> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or("not a narrate cache entry")?;
    let end = rest
        .iter()
        .take(MAX_HEADER_BYTES)
        .position(|&b| b == b'\n')
        .ok_or("the entry's header is cut or too long")?;
    let header: Header =
        serde_json::from_slice(&rest[..end]).map_err(|e| format!("unreadable header: {e}"))?;
    if header.key != key {
        return Err(format!(
            "it is the entry of another request ({})",
            header.key
        ));
    }
    if let Some(why) = header.meta.implausible() {
        return Err(why);
    }
    let audio = &rest[end + 1..];
    if audio.len() as u64 != header.meta.bytes {
        return Err(format!(
            "{} bytes of audio, the entry says {} (a torn write)",
            audio.len(),
            header.meta.bytes
        ));
    }
    let Some(expected) = &header.meta.sha256 else {
        return Err("no SHA-256 of its audio".to_string());
    };
    if sha256_hex(audio) != expected.to_ascii_lowercase() {
        return Err("its audio does not match its SHA-256".to_string());
    }
    Ok((header.meta, header.alignment, audio.to_vec()))
}

/// Keys whose object on the shelf was found unusable in this process: not read again, and
/// said once.
static BAD: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<String>>> =
    std::sync::LazyLock::new(Default::default);

fn known_bad(key: &str) -> bool {
    BAD.lock().is_ok_and(|bad| bad.contains(key))
}

/// Says once that `key`'s object is not used, and why.
fn reject(shelf: &dyn Shelf, key: &str, why: &str) {
    if BAD.lock().is_ok_and(|mut bad| bad.insert(key.to_string())) {
        tracing::warn!(
            "shared cache {}: the object of {key} is not used ({why}); a miss (delete the object to share this request again)",
            shelf.describe()
        );
    }
}

/// Whether `key` is a request key (64 lowercase hex digits): the only names put on a shelf.
fn is_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Takes `key`'s entry from the shelf into the local cache when the local cache has none.
/// Whether the local cache has it now. A shelf that fails or holds a bad entry is a miss,
/// with a warning.
pub(crate) async fn pull(cache: &Cache, key: &str) -> bool {
    if cache.has(key) {
        return true;
    }
    let Some(shelf) = cache.shelf() else {
        return false;
    };
    if !is_key(key) || known_bad(key) {
        return false;
    }
    let bytes = match shelf.read(key).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return false,
        Err(why) => {
            tracing::warn!("shared cache {}: {why}; a miss", shelf.describe());
            return false;
        }
    };
    let (meta, alignment, audio) = match decode(key, &bytes) {
        Ok(entry) => entry,
        Err(why) => {
            reject(shelf.as_ref(), key, &why);
            return false;
        }
    };
    let local = cache.clone();
    let key = key.to_string();
    let stored =
        tokio::task::spawn_blocking(move || local.put(&key, &audio, alignment.as_ref(), &meta))
            .await;
    matches!(stored, Ok(Ok(_)))
}

/// The local entry of `key`, as the shelf holds entries.
fn local_entry(cache: &Cache, key: &str) -> Result<Vec<u8>, String> {
    let (meta, audio_path) = cache.get(key).ok_or("not in the local cache")?;
    let audio = crate::files::read_bytes(&audio_path, meta.bytes).map_err(|e| e.to_string())?;
    let alignment = if meta.alignment {
        let path = cache.alignment_path(key);
        let json =
            crate::files::read_bytes(&path, MAX_HEADER_BYTES as u64).map_err(|e| e.to_string())?;
        Some(serde_json::from_slice(&json).map_err(|e| e.to_string())?)
    } else {
        None
    };
    encode(key, &meta, alignment, &audio)
}

/// Puts the local entry of `key` on the shelf, create-only. When another machine's entry is
/// there first, it replaces the local one (the loser uses the winner's audio). Failures are
/// warnings: the local cache still has the answer, and the next run puts it again.
pub(crate) async fn push(cache: &Cache, key: &str) {
    let Some(shelf) = cache.shelf() else {
        return;
    };
    let local = cache.clone();
    let owned = key.to_string();
    let entry = match tokio::task::spawn_blocking(move || local_entry(&local, &owned)).await {
        Ok(Ok(entry)) => entry,
        Ok(Err(why)) => return tracing::warn!("shared cache: {key} is not put: {why}"),
        Err(e) => return tracing::warn!("shared cache: {key} is not put: {e}"),
    };
    match shelf.create(key, entry).await {
        Ok(Created::New) => {}
        Ok(Created::Exists) => take_winner(cache, shelf.as_ref(), key).await,
        Err(why) => tracing::warn!(
            "shared cache {}: {key} could not be put ({why}); the next run puts it again",
            shelf.describe()
        ),
    }
}

/// After losing a race: the winner's entry replaces the local one, when it is sound.
async fn take_winner(cache: &Cache, shelf: &dyn Shelf, key: &str) {
    if known_bad(key) {
        return;
    }
    let Ok(Some(bytes)) = shelf.read(key).await else {
        return;
    };
    match decode(key, &bytes) {
        Ok((meta, alignment, audio)) => {
            let local = cache.clone();
            let key = key.to_string();
            let _ = tokio::task::spawn_blocking(move || {
                local.put(&key, &audio, alignment.as_ref(), &meta)
            })
            .await;
        }
        Err(why) => reject(shelf, key, &why),
    }
}

/// What matching a run's entries with the shelf did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Synced {
    /// Entries taken from the shelf.
    pub pulled: usize,
    /// Local entries the shelf did not have (a run killed before putting them), put now.
    pub pushed: usize,
}

/// Matches the entries of `keys` with the shelf before anything is sent: each one missing
/// locally is taken from the shelf, and each one only the local cache has is put there.
pub(crate) async fn sync(cache: &Cache, keys: Vec<String>) -> Synced {
    let Some(shelf) = cache.shelf() else {
        return Synced::default();
    };
    let results: Vec<(bool, bool)> = futures::stream::iter(keys)
        .map(|key| {
            let shelf = shelf.clone();
            async move {
                if !cache.has(&key) {
                    return (pull(cache, &key).await, false);
                }
                if shelf.contains(&key).await == Ok(false) {
                    push(cache, &key).await;
                    return (false, true);
                }
                (false, false)
            }
        })
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    Synced {
        pulled: results.iter().filter(|r| r.0).count(),
        pushed: results.iter().filter(|r| r.1).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::{decode, encode, pull};
    use crate::state::bucket::Bucket;
    use crate::state::cache::{Cache, Meta, sha256_hex};
    use crate::state::shelf::{Created, SharedShelf};

    fn meta(audio: &[u8]) -> Meta {
        Meta {
            request_id: Some("req_1".into()),
            issued_unix: 1_700_000_000.0,
            credits: Some(12.0),
            characters: 12,
            bytes: audio.len() as u64,
            output_format: "mp3_44100_128".into(),
            synthetic: true,
            previous_request_ids: vec!["req_0".into()],
            next_request_ids: Vec::new(),
            used_previous_text: false,
            used_next_text: true,
            alignment: false,
            recovered_from: None,
            sha256: Some(sha256_hex(audio)),
        }
    }

    #[test]
    fn an_entry_whose_timings_take_megabytes_reads_back() {
        // A long text's character timings: a header of about 3 MiB, under the 64 MiB bound.
        let key = "ef".repeat(32);
        let audio = b"audio".to_vec();
        let n = 150_000;
        let alignment = crate::api::Alignment {
            characters: vec!["a".to_string(); n],
            character_start_times_seconds: (0..n).map(|i| i as f64 / 10.0).collect(),
            character_end_times_seconds: (0..n).map(|i| i as f64 / 10.0 + 0.05).collect(),
        };
        let bytes = encode(&key, &meta(&audio), Some(alignment), &audio).unwrap();
        assert!(bytes.len() > 3 << 20, "{} bytes", bytes.len());
        let (_, read, back) = decode(&key, &bytes).unwrap();
        assert_eq!(read.unwrap().characters.len(), n);
        assert_eq!(back, audio);
    }

    #[tokio::test]
    async fn only_a_request_keys_object_is_taken_from_the_shelf() {
        // Other objects in the same place (a short hex name, one in capitals, a name that
        // would lead out of the cache) are never read into it, whatever they hold.
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/shelf", dir.path().display());
        let shelf: SharedShelf = std::sync::Arc::new(Bucket::open(&url).unwrap());
        let cache = Cache::open(&dir.path().join("cache"))
            .unwrap()
            .with_shelf(Some(shelf.clone()));
        let audio = b"audio".to_vec();
        let key = "0a".repeat(32);
        let capitals = "AB".repeat(32);
        let others = ["abc123", capitals.as_str(), ".."];
        for name in others.iter().copied().chain([key.as_str()]) {
            let entry = encode(name, &meta(&audio), None, &audio).unwrap();
            assert_eq!(shelf.create(name, entry).await, Ok(Created::New), "{name}");
        }
        for name in others {
            assert!(!pull(&cache, name).await, "{name} was taken");
            assert!(!cache.has(name), "{name}");
        }
        assert!(pull(&cache, &key).await, "a request key's entry is taken");
        assert_eq!(std::fs::read(cache.audio_path(&key)).unwrap(), audio);
    }

    #[test]
    fn an_entry_reads_back_as_written_and_a_damaged_one_never_does() {
        let key = "ab".repeat(32);
        let audio = b"ID3 some audio \n with a newline".to_vec();
        let bytes = encode(&key, &meta(&audio), None, &audio).unwrap();
        let (read, alignment, back) = decode(&key, &bytes).unwrap();
        assert_eq!(back, audio);
        assert!(alignment.is_none());
        assert_eq!(read.request_id.as_deref(), Some("req_1"));
        assert_eq!(read.previous_request_ids, ["req_0"]);
        let refused = |bytes: &[u8], key: &str, says: &str| {
            let why = decode(key, bytes).unwrap_err();
            assert!(why.contains(says), "{says}: {why}");
        };
        refused(&bytes[..bytes.len() - 1], &key, "torn");
        refused(&bytes, &"cd".repeat(32), "another request");
        refused(b"<html>403</html>", &key, "not a narrate cache entry");
        refused(b"narrate-cache-entry 1\n{\"key\":", &key, "cut");
        refused(b"narrate-cache-entry 1\n{}\n", &key, "unreadable");
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        refused(&flipped, &key, "SHA-256");
        let mut unhashed = meta(&audio);
        unhashed.sha256 = None;
        refused(
            &encode(&key, &unhashed, None, &audio).unwrap(),
            &key,
            "no SHA-256",
        );
        let mut implausible = meta(&audio);
        implausible.credits = Some(-3.0);
        refused(
            &encode(&key, &implausible, None, &audio).unwrap(),
            &key,
            "credits",
        );
    }
}
