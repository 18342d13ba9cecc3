//! The report of a store's delivery (`--profile`): each file written into the store's folder,
//! what was measured on the encoded file, and each of the store's checks passed or failed.
//!
//! Not responsible for building or measuring the files (see `deliver`).

use serde::{Deserialize, Serialize};

/// One store's delivery.
#[derive(Debug, Serialize)]
pub struct Delivery {
    /// The `--profile` name.
    pub profile: &'static str,
    /// The store, and where it publishes the rules the files are checked against.
    pub store: &'static str,
    pub rules: &'static str,
    /// The folder the files are in.
    pub folder: String,
    /// Every check of every file passed, and no file was left out.
    pub pass: bool,
    pub files: Vec<DeliveredFile>,
    /// Why the delivery is incomplete (a file that could not be built or would break a rule
    /// that no check can mend, such as a segment longer than the store's longest file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a delivered file is in the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    OpeningCredits,
    Chapter,
    ClosingCredits,
    Sample,
}

/// One file of a delivery, measured on its encoded bytes.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeliveredFile {
    pub path: String,
    /// Made from the same takes and settings as a file already there, unchanged, and kept.
    #[serde(default)]
    pub kept: bool,
    pub role: Role,
    /// The chapter's title (with `(part N)` when a long chapter is cut at segment boundaries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The ids of the segments it holds, first and last.
    pub segments: (String, String),
    pub measured: Measured,
    pub pass: bool,
    pub checks: Vec<Check>,
}

/// The figures of an encoded file, read back from it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Measured {
    pub seconds: f64,
    pub sample_rate: u32,
    pub channels: u16,
    /// The bitrate (kbps): every frame's for MP3, the average for AAC.
    pub kbps: f64,
    /// Every audio frame at the same bitrate (MP3).
    pub constant_bitrate: bool,
    pub rms_db: f64,
    pub true_peak_dbtp: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrated_lufs: Option<f64>,
    pub noise_floor_db: f64,
    /// Silence before the first sound above -60 dBFS, and after the last.
    pub head_seconds: f64,
    pub tail_seconds: f64,
}

/// One rule of the store and whether the file meets it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Check {
    pub check: String,
    pub value: serde_json::Value,
    pub want: String,
    pub pass: bool,
}
