//! The output formats the API documents, as the emulator serves them: one row per format, with
//! its codec, sample rate and the MIME type of the answer, written from the API reference's
//! list. The emulator keeps this table of its own (as it keeps its own model table), so the
//! client's format parser is judged by it and never reads itself; a unit test compares its
//! names with the OpenAPI description's.
//!
//! Not responsible for encoding (see `synth`, `lame`).

use std::fmt;
use std::str::FromStr;

/// The format of an answer when the request names none.
pub const DEFAULT_FORMAT: &str = "mp3_44100_128";

/// How an answer's audio is coded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Mp3 { kbps: u32 },
    Pcm,
    Wav,
    Ulaw,
    Alaw,
    Opus { kbps: u32 },
}

/// One documented `output_format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputFormat {
    pub codec: Codec,
    pub sample_rate: u32,
}

/// Every documented format: its name, how it is coded, its rate and its MIME type.
const FORMATS: &[(&str, Codec, u32, &str)] = &[
    (
        "mp3_22050_32",
        Codec::Mp3 { kbps: 32 },
        22_050,
        "audio/mpeg",
    ),
    (
        "mp3_24000_48",
        Codec::Mp3 { kbps: 48 },
        24_000,
        "audio/mpeg",
    ),
    (
        "mp3_44100_32",
        Codec::Mp3 { kbps: 32 },
        44_100,
        "audio/mpeg",
    ),
    (
        "mp3_44100_64",
        Codec::Mp3 { kbps: 64 },
        44_100,
        "audio/mpeg",
    ),
    (
        "mp3_44100_96",
        Codec::Mp3 { kbps: 96 },
        44_100,
        "audio/mpeg",
    ),
    (
        "mp3_44100_128",
        Codec::Mp3 { kbps: 128 },
        44_100,
        "audio/mpeg",
    ),
    (
        "mp3_44100_192",
        Codec::Mp3 { kbps: 192 },
        44_100,
        "audio/mpeg",
    ),
    ("pcm_8000", Codec::Pcm, 8_000, "audio/pcm"),
    ("pcm_16000", Codec::Pcm, 16_000, "audio/pcm"),
    ("pcm_22050", Codec::Pcm, 22_050, "audio/pcm"),
    ("pcm_24000", Codec::Pcm, 24_000, "audio/pcm"),
    ("pcm_32000", Codec::Pcm, 32_000, "audio/pcm"),
    ("pcm_44100", Codec::Pcm, 44_100, "audio/pcm"),
    ("pcm_48000", Codec::Pcm, 48_000, "audio/pcm"),
    ("wav_8000", Codec::Wav, 8_000, "audio/wav"),
    ("wav_16000", Codec::Wav, 16_000, "audio/wav"),
    ("wav_22050", Codec::Wav, 22_050, "audio/wav"),
    ("wav_24000", Codec::Wav, 24_000, "audio/wav"),
    ("wav_32000", Codec::Wav, 32_000, "audio/wav"),
    ("wav_44100", Codec::Wav, 44_100, "audio/wav"),
    ("wav_48000", Codec::Wav, 48_000, "audio/wav"),
    ("ulaw_8000", Codec::Ulaw, 8_000, "audio/basic"),
    ("alaw_8000", Codec::Alaw, 8_000, "audio/alaw"),
    (
        "opus_48000_32",
        Codec::Opus { kbps: 32 },
        48_000,
        "audio/ogg",
    ),
    (
        "opus_48000_64",
        Codec::Opus { kbps: 64 },
        48_000,
        "audio/ogg",
    ),
    (
        "opus_48000_96",
        Codec::Opus { kbps: 96 },
        48_000,
        "audio/ogg",
    ),
    (
        "opus_48000_128",
        Codec::Opus { kbps: 128 },
        48_000,
        "audio/ogg",
    ),
    (
        "opus_48000_192",
        Codec::Opus { kbps: 192 },
        48_000,
        "audio/ogg",
    ),
];

fn row(f: &OutputFormat) -> Option<&'static (&'static str, Codec, u32, &'static str)> {
    FORMATS
        .iter()
        .find(|(_, codec, rate, _)| *codec == f.codec && *rate == f.sample_rate)
}

/// A name that is not a documented format.
#[derive(Debug)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = FORMATS.iter().map(|r| r.0).collect();
        write!(
            f,
            "unknown output_format {:?} (expected one of: {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for OutputFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, UnknownFormat> {
        FORMATS
            .iter()
            .find(|(name, ..)| *name == s)
            .map(|&(_, codec, sample_rate, _)| OutputFormat { codec, sample_rate })
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(row(self).map_or("unknown", |r| r.0))
    }
}

impl OutputFormat {
    /// The `content-type` of an answer in this format.
    pub fn mime(&self) -> &'static str {
        row(self).map_or("application/octet-stream", |r| r.3)
    }

    /// Bytes a second of audio takes.
    pub fn bytes_per_second(&self) -> u64 {
        let rate = u64::from(self.sample_rate);
        match self.codec {
            Codec::Mp3 { kbps } | Codec::Opus { kbps } => u64::from(kbps) * 125,
            Codec::Pcm | Codec::Wav => rate * 2,
            Codec::Ulaw | Codec::Alaw => rate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_the_descriptions_list_and_names_round_trip() {
        let spec: serde_json::Value =
            serde_json::from_str(crate::pydantic::OPENAPI).expect("the description parses");
        let text = spec.to_string();
        for (name, ..) in FORMATS {
            let f: OutputFormat = name.parse().unwrap();
            assert_eq!(f.to_string(), *name);
            assert!(
                text.contains(&format!("\"{name}\"")),
                "{name} is in the description"
            );
        }
        let mut listed = std::collections::BTreeSet::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("\"mp3_").or_else(|| rest.find("\"pcm_")) {
            let name: String = rest[at + 1..].chars().take_while(|c| *c != '"').collect();
            listed.insert(name);
            rest = &rest[at + 1..];
        }
        for name in listed {
            assert!(
                name.parse::<OutputFormat>().is_ok(),
                "{name} is in the table"
            );
        }
        assert!("mp3_44100_1000".parse::<OutputFormat>().is_err());
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_names_that_exist() {
        let error = "mp3_44100_1000".parse::<OutputFormat>().unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"mp3_44100_1000\""), "{message}");
        for name in ["mp3_44100_128", "pcm_16000", "ulaw_8000", "opus_48000_64"] {
            assert!(message.contains(name), "{name} is offered: {message}");
        }
    }

    #[test]
    fn a_second_of_audio_takes_the_formats_bytes() {
        // By the names: kilobits a second over 8, or 16-bit mono samples, or 8-bit ones.
        for (name, bytes) in [
            ("mp3_44100_128", 16_000),
            ("mp3_22050_32", 4_000),
            ("opus_48000_64", 8_000),
            ("pcm_44100", 88_200),
            ("pcm_16000", 32_000),
            ("wav_24000", 48_000),
            ("ulaw_8000", 8_000),
            ("alaw_8000", 8_000),
        ] {
            let format: OutputFormat = name.parse().unwrap();
            assert_eq!(format.bytes_per_second(), bytes, "{name}");
        }
    }
}
