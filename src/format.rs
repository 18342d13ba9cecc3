//! The `output_format` values of the text-to-speech API: parsing, validation and the facts
//! derived from a name (codec, sample rate, bitrate, MIME type).
//!
//! Not responsible for decoding or encoding audio (see `audio` and `emulator::synth`).

use std::fmt;
use std::str::FromStr;

/// Every `output_format` the non-streaming endpoint accepts, as listed in the OpenAPI spec.
pub const ALL_FORMATS: &[&str] = &[
    "alaw_8000",
    "mp3_22050_32",
    "mp3_24000_48",
    "mp3_44100_32",
    "mp3_44100_64",
    "mp3_44100_96",
    "mp3_44100_128",
    "mp3_44100_192",
    "opus_48000_32",
    "opus_48000_64",
    "opus_48000_96",
    "opus_48000_128",
    "opus_48000_192",
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_32000",
    "pcm_44100",
    "pcm_48000",
    "ulaw_8000",
    "wav_8000",
    "wav_16000",
    "wav_22050",
    "wav_24000",
    "wav_32000",
    "wav_44100",
    "wav_48000",
];

/// The default format of the API when none is named.
pub const DEFAULT_FORMAT: &str = "mp3_44100_128";

/// The codec part of an output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// MPEG-1/2 Layer III, constant bitrate (kbps).
    Mp3 { kbps: u32 },
    /// Raw signed 16-bit little-endian mono samples.
    Pcm,
    /// A RIFF/WAVE file holding 16-bit PCM.
    Wav,
    /// G.711 mu-law, 8 kHz.
    Ulaw,
    /// G.711 A-law, 8 kHz.
    Alaw,
    /// Opus in Ogg; narrate cannot decode it.
    Opus { kbps: u32 },
}

/// A validated `output_format`, such as `mp3_44100_128` or `pcm_24000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputFormat {
    pub codec: Codec,
    pub sample_rate: u32,
}

/// An `output_format` that is not one of the API's values.
#[derive(Debug, thiserror::Error)]
#[error("unknown output_format {0:?} (expected one of: {list})", list = ALL_FORMATS.join(", "))]
pub struct UnknownFormat(pub String);

impl FromStr for OutputFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !ALL_FORMATS.contains(&s) {
            return Err(UnknownFormat(s.to_string()));
        }
        let mut parts = s.split('_');
        let codec = parts.next().unwrap_or_default();
        let rate: u32 = parts.next().and_then(|r| r.parse().ok()).unwrap_or(0);
        let kbps: u32 = parts.next().and_then(|r| r.parse().ok()).unwrap_or(0);
        let codec = match codec {
            "mp3" => Codec::Mp3 { kbps },
            "pcm" => Codec::Pcm,
            "wav" => Codec::Wav,
            "ulaw" => Codec::Ulaw,
            "alaw" => Codec::Alaw,
            _ => Codec::Opus { kbps },
        };
        Ok(OutputFormat {
            codec,
            sample_rate: rate,
        })
    }
}

impl OutputFormat {
    /// Bytes of audio a second of speech takes in this format (the bitrate for compressed
    /// codecs, 16-bit samples for PCM and WAV, one byte a sample for G.711).
    pub fn bytes_per_second(&self) -> u64 {
        let rate = u64::from(self.sample_rate);
        match self.codec {
            Codec::Mp3 { kbps } | Codec::Opus { kbps } => u64::from(kbps) * 1000 / 8,
            Codec::Pcm | Codec::Wav => rate * 2,
            Codec::Ulaw | Codec::Alaw => rate,
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.codec {
            Codec::Mp3 { kbps } => write!(f, "mp3_{}_{}", self.sample_rate, kbps),
            Codec::Opus { kbps } => write!(f, "opus_{}_{}", self.sample_rate, kbps),
            Codec::Pcm => write!(f, "pcm_{}", self.sample_rate),
            Codec::Wav => write!(f, "wav_{}", self.sample_rate),
            Codec::Ulaw => write!(f, "ulaw_{}", self.sample_rate),
            Codec::Alaw => write!(f, "alaw_{}", self.sample_rate),
        }
    }
}

impl OutputFormat {
    /// The `content-type` the API answers with for this format.
    pub fn mime(&self) -> &'static str {
        match self.codec {
            Codec::Mp3 { .. } => "audio/mpeg",
            Codec::Pcm => "audio/pcm",
            Codec::Wav => "audio/wav",
            Codec::Ulaw => "audio/basic",
            Codec::Alaw => "audio/alaw",
            Codec::Opus { .. } => "audio/ogg",
        }
    }

    /// Whether this is an MP3 format (the only kind that can become an `.mp3` output).
    pub fn is_mp3(&self) -> bool {
        matches!(self.codec, Codec::Mp3 { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_format_round_trips() {
        for name in ALL_FORMATS {
            let f: OutputFormat = name.parse().unwrap();
            assert_eq!(f.to_string(), *name);
        }
        assert!("mp3_44100_100".parse::<OutputFormat>().is_err());
        assert!("wav".parse::<OutputFormat>().is_err());
    }
}
