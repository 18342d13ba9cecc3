//! Assembly: rendered responses decoded (or, for `.mp3` output, their frames copied) and written
//! in manifest order with the lead-in, pauses and tail, one response in memory at a time, to a
//! temporary file renamed into place when complete.
//!
//! - `pcm`: joining decoded responses sample by sample, with `edit` trimming and fading them.
//! - `wav`: WAV (or RF64) output; `gapless`: `.mp3` encoded once; `mp3copy`: `.mp3` by
//!   frame copy; `m4b`: AAC with chapters, tags and cover, through ffmpeg.
//! - `loudness`: EBU R128 measurement and normalization; `tags`: ID3 with chapters.
//!
//! Not responsible for fetching audio (see `execute`), for which pieces go into which file (see
//! `publish`) or for codecs (see `codec`).

use std::ops::Range;
use std::path::Path;

pub use crate::codec::AudioError;
use crate::format::OutputFormat;

pub(crate) mod aac;
pub(crate) mod edit;
pub(crate) mod ffmpeg;
pub(crate) mod gapless;
pub(crate) mod loudness;
pub(crate) mod m4b;
pub(crate) mod mp3copy;
pub(crate) mod pcm;
pub(crate) mod tags;
pub(crate) mod wav;

pub use edit::Edit;
use gapless::write_mp3_encoded;
pub use loudness::{Loudness, Measured};
use loudness::{apply_gain, normalizing_gain};
use mp3copy::write_mp3;
pub use tags::TagSpec;
use wav::write_wav;

/// One item of the output, in order.
#[derive(Clone, Debug)]
pub enum Piece<'a> {
    Silence {
        ms: u64,
    },
    /// A rendered response stored at this path, part of this segment (an index the caller
    /// chooses; consecutive pieces of one segment are measured together).
    Audio {
        path: &'a Path,
        segment: usize,
    },
}

/// What assembly does besides joining: MP3 tags, loudness measurement and normalization.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub tags: crate::audio::tags::TagSpec,
    /// Measure loudness into the placement.
    pub measure: bool,
    /// Scale a WAV output to this integrated loudness (LUFS), never above -1 dBTP.
    pub loudness_target: Option<f64>,
    /// The highest true peak the loudness target may bring the output to (dBTP); `None` is
    /// -1 dBTP.
    pub peak_ceiling_dbtp: Option<f64>,
    /// Trim each response's leading and trailing silence.
    pub trim_silence: bool,
    /// For `.mp3` output: decode, join sample by sample and encode once, instead of copying
    /// the responses' frames. Implied by `trim_silence`.
    pub encode_mp3: bool,
    /// WAV data size above which the file is written as RF64; `None` is RIFF's limit (4 GiB).
    pub rf64_above_bytes: Option<u64>,
    /// Set by a signal: assembly stops at the next response and the output is left as it was.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Compute each piece's waveform ([`Placement::peaks`]) even where that costs a decode
    /// (MP3 frame copy); where the samples are at hand it is always computed.
    pub waveform: bool,
    /// Threads decoding responses at once for this file; `None` is one per core (up to 8).
    /// Several files assembled at once take one each.
    pub decode_threads: Option<usize>,
    /// The loudness of these very samples (before any gain), measured when they were last
    /// joined: with a loudness target, the gain is known and the measuring pass is skipped.
    pub known_loudness: Option<loudness::Measured>,
}

pub(crate) fn cancelled(cancel: Option<&std::sync::atomic::AtomicBool>) -> Result<(), AudioError> {
    match cancel {
        Some(c) if c.load(std::sync::atomic::Ordering::SeqCst) => Err(AudioError::Interrupted),
        _ => Ok(()),
    }
}

/// How an output file was made, as the report names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Assembly {
    /// WAV from decoded responses.
    #[default]
    #[serde(rename = "decode")]
    Decode,
    /// WAV past 4 GiB, written as RF64.
    #[serde(rename = "decode (RF64)")]
    DecodeRf64,
    /// MP3 frames copied from the responses.
    #[serde(rename = "copy")]
    Copy,
    /// MP3 encoded once from the joined samples.
    #[serde(rename = "encode")]
    Encode,
}

/// Where each piece landed in the output, in samples from the start.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Placement {
    pub spans: Vec<Range<u64>>,
    /// For each piece, what was trimmed from it.
    pub edits: Vec<Edit>,
    /// How the file was made.
    pub method: Assembly,
    pub sample_rate: u32,
    pub total_samples: u64,
    /// Loudness, when it was measured.
    pub loudness: Option<Measured>,
    /// For each piece, its waveform: the peak of every [`PEAKS_PER_SECOND`]th of a second,
    /// 0–255 (empty for silences), for the review page.
    pub peaks: Vec<Vec<u8>>,
    /// The file was already there, made from the same inputs, and was kept (see
    /// `output::published`).
    #[serde(skip)]
    pub reused: bool,
}

/// Where one request's audio landed among a job's files.
#[derive(Clone, Debug, Default)]
pub struct RequestSpan {
    /// The index of its file among the job's files.
    pub file: usize,
    /// Its samples in that file.
    pub samples: Range<u64>,
    /// What `trim_silence` cut from it.
    pub edit: Edit,
}

/// How many peaks a second of audio gets in [`Placement::peaks`].
pub const PEAKS_PER_SECOND: u32 = 20;

/// The waveform of `samples`: the loudest sample of each 1/[`PEAKS_PER_SECOND`] s, 0–255.
pub(crate) fn peaks(samples: &[i16], rate: u32) -> Vec<u8> {
    let bucket = usize::try_from((rate / PEAKS_PER_SECOND).max(1)).unwrap_or(1);
    samples
        .chunks(bucket)
        .map(|c| {
            let peak = c.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
            u8::try_from(u32::from(peak) * 255 / 32_768).unwrap_or(u8::MAX)
        })
        .collect()
}

impl Placement {
    /// A sample position in seconds.
    pub fn seconds(&self, sample: u64) -> f64 {
        sample as f64 / f64::from(self.sample_rate)
    }
}

/// Writes `pieces` to `output` (`.wav`, `.mp3` or `.m4b`): via a temporary file in the same directory,
/// renamed into place only when complete.
pub fn assemble(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    output: &Path,
    options: &Options,
) -> Result<Placement, AudioError> {
    let io = |source: std::io::Error| AudioError::Io {
        path: output.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(crate::files::parent_dir(output)).map_err(io)?;
    let temp = crate::files::temp_beside(output).map_err(io)?;
    let ext = output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let mp3_out = ext.as_deref() == Some("mp3");
    let m4b_out = ext.as_deref() == Some("m4b");
    let measure = options.measure || options.loudness_target.is_some();
    let encode = options.encode_mp3 || options.trim_silence || options.loudness_target.is_some();
    let mut placement = if m4b_out {
        m4b::write_m4b(pieces, format, temp.path(), output, options, measure)?
    } else if mp3_out && encode {
        write_mp3_encoded(pieces, format, temp.as_file(), output, options, measure)?
    } else if mp3_out {
        write_mp3(pieces, format, temp.as_file(), output, options, measure)?
    } else {
        write_wav(pieces, format, temp.as_file(), output, options)?
    };
    if let (Some(target), false, Some(m)) = (
        options.loudness_target,
        mp3_out || m4b_out,
        placement.loudness.as_mut(),
    ) && let Some(gain) = normalizing_gain(target, options.peak_ceiling_dbtp, &m.whole)
    {
        apply_gain(temp.as_file(), gain).map_err(io)?;
        *m = Measured {
            gain_db: Some(gain),
            ..m.gained(gain)
        };
    }
    cancelled(options.cancel.as_deref())?;
    crate::files::commit(temp, output).map_err(io)?;
    Ok(placement)
}

pub(crate) fn silence_samples(ms: u64, rate: u32) -> u64 {
    (ms * u64::from(rate) + 500) / 1000
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, AudioError> {
    std::fs::read(path).map_err(|source| AudioError::Io {
        path: path.to_path_buf(),
        source,
    })
}
