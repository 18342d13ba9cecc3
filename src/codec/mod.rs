//! Codecs: the audio formats narrate reads and writes, below everything else. MP3 framing
//! (frame headers, silent frames, LAME's Info tag), decoding any response to 16-bit PCM, G.711,
//! and the LAME encoder.
//!
//! A leaf: imports nothing of narrate's but [`crate::format`]. Not responsible for joining
//! audio into an output (see `audio`).

pub(crate) mod decode;
pub(crate) mod g711;
pub(crate) mod lame;
pub(crate) mod mp3;

pub use decode::decode;
pub use mp3::{DECODER_DELAY, FrameHeader, frame_header, gapless_info, mp3_frames, silent_frame};

use std::path::PathBuf;

/// Audio that cannot be decoded or written.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("not an MP3 stream: {0}")]
    BadMp3(String),
    #[error("MP3 decoding failed: {0}")]
    Decode(String),
    #[error("bad WAV data: {0}")]
    BadWav(String),
    #[error("{0} audio has a sample rate of {1} Hz, expected {2} Hz")]
    RateMismatch(&'static str, u32, u32),
    #[error("cannot decode {0} audio")]
    Unsupported(String),
    /// The encoder (LAME, or ffmpeg's AAC) refused or failed; the text says which.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// A program the output needs is not there (ffmpeg for `.m4b`); the text says how to get it.
    #[error("{0}")]
    MissingTool(&'static str),
    #[error("interrupted by a signal; the previous output is left as it was")]
    Interrupted,
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}
