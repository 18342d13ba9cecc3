//! Deliveries kept: each file (or run of parts) a store's delivery wrote leaves a record beside
//! the published files' records, of what it was made from (every take, the store's row, its
//! number, title and narrate's version) and of the files themselves (size and SHA-256) with
//! what was measured on them. A later delivery that would build the same from the same, and
//! finds the files on disk unchanged, keeps them: nothing is joined, encoded or measured.
//!
//! Not responsible for building the files (see `deliver`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::output::report::DeliveredFile;
use crate::publish::{layout, published};

/// Bumped when what a delivered file is made of changes for the same inputs.
const DELIVERY_VERSION: u32 = 1;

/// One delivered file as the record knows it.
#[derive(Serialize, Deserialize)]
struct Kept {
    size: u64,
    sha256: String,
    file: DeliveredFile,
}

#[derive(Serialize, Deserialize)]
struct Record {
    inputs: String,
    files: Vec<Kept>,
}

/// The fingerprint of what the files of `segments` would be made from in `builder`'s store,
/// numbered from `number` (`what` tells a chapter from a sample); `None` when a take has no
/// recorded hash.
pub(super) fn inputs(
    builder: &super::Builder<'_>,
    segments: std::ops::Range<usize>,
    number: usize,
    what: &str,
) -> Option<String> {
    let inputs = builder.inputs;
    let pieces = layout::pieces(inputs.job, inputs.plan, inputs.outcomes, segments);
    let ids = published::piece_ids(&pieces.pieces, &pieces.requests, inputs.outcomes)?;
    let job = inputs.job;
    let value = serde_json::json!({
        "version": DELIVERY_VERSION,
        "narrate": env!("CARGO_PKG_VERSION"),
        "store": format!("{:?}", builder.store),
        "longest": super::longest_file(builder.store),
        "what": what,
        "number": number,
        "width": builder.width,
        "trim": job.trim_silence,
        "format": job.output_format.to_string(),
        "book": job.book,
        "album": job.album,
        "pieces": ids,
    });
    Some(crate::state::cache::sha256_hex(
        value.to_string().as_bytes(),
    ))
}

/// Where the record of the files starting at segment `first` of a store's delivery is kept.
fn record_path(records: &Path, folder: &Path, first: usize, what: &str) -> PathBuf {
    let absolute = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
    let key = format!("{}|{first}|{what}", absolute.display());
    let name = crate::state::cache::sha256_hex(key.as_bytes());
    records.join(format!("delivery-{}.json", &name[..32]))
}

/// The files recorded for these inputs, when every one is on disk as it was written.
pub(super) fn kept(
    builder: &super::Builder<'_>,
    first: usize,
    what: &str,
    inputs: &str,
) -> Option<Vec<DeliveredFile>> {
    let path = record_path(builder.inputs.records, builder.folder, first, what);
    let bytes = crate::files::read_bytes(&path, crate::files::MAX_STATE_JSON_BYTES).ok()?;
    let record: Record = serde_json::from_slice(&bytes).ok()?;
    if record.inputs != inputs {
        return None;
    }
    for k in &record.files {
        let file = Path::new(&k.file.path);
        let meta = std::fs::symlink_metadata(file).ok()?;
        if !meta.is_file() || meta.len() != k.size || published::hash_file(file).ok()? != k.sha256 {
            return None;
        }
    }
    let kept = record.files.into_iter().map(|k| DeliveredFile {
        kept: true,
        ..k.file
    });
    Some(kept.collect())
}

/// Records the files just written for these inputs (a record that cannot be written only
/// means they are built again next time).
pub(super) fn remember(
    builder: &super::Builder<'_>,
    (first, what): (usize, &str),
    inputs: &str,
    files: &[DeliveredFile],
) {
    let mut kept = Vec::with_capacity(files.len());
    for f in files {
        let path = Path::new(&f.path);
        let (Ok(meta), Ok(sha256)) = (std::fs::metadata(path), published::hash_file(path)) else {
            return;
        };
        let file: DeliveredFile = match serde_json::to_value(f).and_then(serde_json::from_value) {
            Ok(file) => file,
            Err(_) => return,
        };
        kept.push(Kept {
            size: meta.len(),
            sha256,
            file,
        });
    }
    let record = Record {
        inputs: inputs.to_string(),
        files: kept,
    };
    let path = record_path(builder.inputs.records, builder.folder, first, what);
    if let Ok(json) = serde_json::to_vec(&record) {
        let _ = std::fs::create_dir_all(builder.inputs.records);
        let _ = crate::files::write_atomic(&path, &json);
    }
}
