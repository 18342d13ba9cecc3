//! Incremental re-publish: each assembled file leaves a record in the cache of what it was made
//! from (every piece's take and hash, the format, the assembly settings and tags, the cover's
//! hash, narrate's assembly version) and of the file itself (size, SHA-256, placement). A later
//! run whose inputs are the same, finding the file intact, reuses it instead of building it
//! again; reports and side files are written from the stored placement.
//!
//! Not responsible for assembling (see `audio`) or for which pieces a file has (see
//! `publish::layout`).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audio::{Measured, Options, Piece, Placement};
use crate::execute::Outcome;
use crate::format::OutputFormat;

/// Changes whenever assembly would write different bytes for the same inputs; records of
/// another version are never reused.
pub(crate) const ASSEMBLY_VERSION: u32 = 1;

/// The largest record read back (a 16-hour file's waveform is about 4 MB of JSON).
const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;

/// One piece as the record knows it.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PieceId {
    Silence {
        ms: u64,
    },
    /// A rendered response: its cache file, the request id of its take (a take rendered again
    /// with `--only` is a new one), the SHA-256 of its audio, and its segment index.
    Audio {
        file: String,
        request_id: Option<String>,
        sha256: String,
        segment: usize,
    },
}

/// What a file was made from, hashed into its fingerprint.
#[derive(Serialize)]
struct Inputs<'a> {
    assembly_version: u32,
    narrate: &'a str,
    extension: String,
    format: String,
    pieces: &'a [PieceId],
    tags: &'a crate::audio::TagSpec,
    cover_sha256: Option<String>,
    measure: bool,
    loudness_target: Option<f64>,
    /// Absent (as before it existed) unless a store's ceiling was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_ceiling_dbtp: Option<f64>,
    trim_silence: bool,
    encode_mp3: bool,
    waveform: bool,
    rf64_above_bytes: Option<u64>,
}

/// What each piece of a file is made from, for its record; `None` when a response's audio has
/// no recorded hash (a cache entry from before narrate stored one). `requests` pairs each
/// request's index with its piece's.
pub(crate) fn piece_ids(
    pieces: &[Piece<'_>],
    requests: &[(usize, usize)],
    outcomes: &[Outcome],
) -> Option<Vec<PieceId>> {
    let mut request_of = vec![None; pieces.len()];
    for &(r, i) in requests {
        if let Some(slot) = request_of.get_mut(i) {
            *slot = Some(r);
        }
    }
    pieces
        .iter()
        .zip(request_of)
        .map(|(piece, r)| match piece {
            Piece::Silence { ms } => Some(PieceId::Silence { ms: *ms }),
            Piece::Audio { path, segment } => {
                let meta = outcomes.get(r?)?.meta.as_ref()?;
                Some(PieceId::Audio {
                    file: path.file_name()?.to_string_lossy().into_owned(),
                    request_id: meta.request_id.clone(),
                    sha256: meta.sha256.clone()?,
                    segment: *segment,
                })
            }
        })
        .collect()
}

/// The record of a published file.
#[derive(Serialize, Deserialize)]
struct Record {
    assembly_version: u32,
    output: String,
    fingerprint: String,
    bytes: u64,
    sha256: String,
    placement: Placement,
}

/// The fingerprint of a file made of `pieces` with `options`; `None` when an input cannot be
/// identified (a cache entry without a hash, an unreadable cover), so the file is always built.
pub(crate) fn fingerprint(
    output: &Path,
    format: OutputFormat,
    options: &Options,
    pieces: Option<&[PieceId]>,
) -> Option<String> {
    let cover_sha256 = match &options.tags.book.cover {
        Some(cover) => Some(hash_file(cover).ok()?),
        None => None,
    };
    let inputs = Inputs {
        assembly_version: ASSEMBLY_VERSION,
        narrate: env!("CARGO_PKG_VERSION"),
        extension: output
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default(),
        format: format.to_string(),
        pieces: pieces?,
        tags: &options.tags,
        cover_sha256,
        measure: options.measure,
        loudness_target: options.loudness_target,
        peak_ceiling_dbtp: options.peak_ceiling_dbtp,
        trim_silence: options.trim_silence,
        encode_mp3: options.encode_mp3,
        waveform: options.waveform,
        rf64_above_bytes: options.rf64_above_bytes,
    };
    let json = serde_json::to_vec(&inputs).ok()?;
    Some(crate::state::cache::sha256_hex(&json))
}

/// Where the record of `output` is kept in `dir`.
fn record_path(dir: &Path, output: &Path) -> PathBuf {
    let absolute = std::path::absolute(output).unwrap_or_else(|_| output.to_path_buf());
    let name = crate::state::cache::sha256_hex(absolute.as_os_str().as_encoded_bytes());
    dir.join(format!("{}.json", &name[..32]))
}

/// The SHA-256 of a file, read in pieces.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(crate::state::cache::hex(&hasher.finalize()))
}

/// The placement of `output` as its record has it, when the record is of this version, was
/// made from the same inputs (`fingerprint`), and the file on disk is a regular file of the
/// recorded size and hash. Anything else (no record, a damaged one, an edited or missing file)
/// is `None`: the file is built again.
pub(crate) fn reusable(dir: &Path, output: &Path, fingerprint: &str) -> Option<Placement> {
    let bytes = crate::files::read_bytes(&record_path(dir, output), MAX_RECORD_BYTES).ok()?;
    let record: Record = serde_json::from_slice(&bytes).ok()?;
    if record.assembly_version != ASSEMBLY_VERSION || record.fingerprint != fingerprint {
        return None;
    }
    let meta = std::fs::symlink_metadata(output).ok()?;
    if !meta.file_type().is_file() || meta.len() != record.bytes {
        return None;
    }
    if hash_file(output).ok()? != record.sha256 {
        tracing::info!(output = %output.display(), "the file was changed since it was published; building it again");
        return None;
    }
    let mut placement = record.placement;
    placement.reused = true;
    Some(placement)
}

/// Records what `output`, just written, was made from. A record that cannot be written only
/// costs a rebuild next time.
pub(crate) fn remember(dir: &Path, output: &Path, fingerprint: &str, placement: &Placement) {
    let write = || -> std::io::Result<()> {
        let meta = std::fs::metadata(output)?;
        let record = Record {
            assembly_version: ASSEMBLY_VERSION,
            output: output.display().to_string(),
            fingerprint: fingerprint.to_string(),
            bytes: meta.len(),
            sha256: hash_file(output)?,
            placement: placement.clone(),
        };
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        crate::files::write_atomic(&record_path(dir, output), &json)
    };
    if let Err(e) = write() {
        tracing::warn!(output = %output.display(), error = %e, "cannot record what the file was made from; the next run builds it again");
    }
}

/// What a file's joined samples are made from (whatever the file's format, tags or gain),
/// hashed: the key of their remembered loudness.
#[derive(Serialize)]
struct Samples<'a> {
    assembly_version: u32,
    narrate: &'a str,
    format: String,
    pieces: &'a [PieceId],
    trim_silence: bool,
}

/// The key of the loudness of the samples joined from `pieces`; `None` as for [`fingerprint`].
pub(crate) fn samples_fingerprint(
    format: OutputFormat,
    trim_silence: bool,
    pieces: Option<&[PieceId]>,
) -> Option<String> {
    let samples = Samples {
        assembly_version: ASSEMBLY_VERSION,
        narrate: env!("CARGO_PKG_VERSION"),
        format: format.to_string(),
        pieces: pieces?,
        trim_silence,
    };
    let json = serde_json::to_vec(&samples).ok()?;
    Some(crate::state::cache::sha256_hex(&json))
}

/// The remembered loudness of some joined samples, before any gain.
#[derive(Serialize, Deserialize)]
struct LoudnessRecord {
    assembly_version: u32,
    samples: String,
    loudness: Measured,
}

fn loudness_path(dir: &Path, samples: &str) -> PathBuf {
    dir.join(format!(
        "loudness-{}.json",
        &samples[..samples.len().min(32)]
    ))
}

/// The loudness measured when the same samples were last joined (for any output), before
/// any gain; `None` when there is no such record or it cannot be read.
pub(crate) fn remembered_loudness(dir: &Path, samples: &str) -> Option<Measured> {
    let bytes = crate::files::read_bytes(&loudness_path(dir, samples), MAX_RECORD_BYTES).ok()?;
    let record: LoudnessRecord = serde_json::from_slice(&bytes).ok()?;
    (record.assembly_version == ASSEMBLY_VERSION && record.samples == samples)
        .then_some(record.loudness)
}

/// Remembers the loudness `placement` measured (its gain taken off again). A record that
/// cannot be written only costs a measuring pass.
pub(crate) fn remember_loudness(dir: &Path, samples: &str, placement: &Placement) {
    let Some(m) = placement.loudness.as_ref().filter(|_| !placement.reused) else {
        return;
    };
    let loudness = Measured {
        gain_db: None,
        ..m.gained(-m.gain_db.unwrap_or(0.0))
    };
    let record = LoudnessRecord {
        assembly_version: ASSEMBLY_VERSION,
        samples: samples.to_string(),
        loudness,
    };
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        crate::files::write_atomic(&loudness_path(dir, samples), &json)
    };
    if let Err(e) = write() {
        tracing::warn!(error = %e, "cannot remember the loudness measured; the next run measures it again");
    }
}
