//! The emulator's audio: deterministic, speech-like tones whose length follows the text (about
//! 15 characters a second at speed 1.0), encoded in every non-Opus `output_format`.
//!
//! Voiced bursts per word at a pitch chosen by the voice id, short rests between words, longer
//! rests at punctuation. Not responsible for HTTP (see the parent module).

use serde_json::{Value, json};

use crate::format::{Codec, OutputFormat};

/// Characters per second at speed 1.0.
pub const CHARS_PER_SECOND: f64 = 15.0;

/// A stable 64-bit hash (FNV-1a) for choosing per-voice parameters.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How many samples `text` lasts at `speed`.
pub fn sample_count(text: &str, speed: f64, sample_rate: u32) -> usize {
    let seconds = text.chars().count() as f64 / CHARS_PER_SECOND / speed.clamp(0.25, 4.0);
    (seconds * f64::from(sample_rate)).round().max(1.0) as usize
}

/// The samples of a generation are produced and encoded this many at a time, so a long one
/// never holds its whole clip decoded.
const CHUNK: usize = 16 * 1024;

/// Why the emulator could not make an answer's audio.
#[derive(Debug)]
pub enum SynthError {
    /// A format the emulator does not encode.
    Unsupported(&'static str),
    /// More samples than a WAV header can state.
    TooLong,
    /// LAME refused.
    Encode(String),
}

impl std::fmt::Display for SynthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SynthError::Unsupported(codec) => write!(f, "{codec} is not supported"),
            SynthError::TooLong => f.write_str("too long for a WAV"),
            SynthError::Encode(why) => write!(f, "MP3 encoding failed: {why}"),
        }
    }
}

impl std::error::Error for SynthError {}

impl From<crate::lame::LameError> for SynthError {
    fn from(e: crate::lame::LameError) -> Self {
        SynthError::Encode(e.0)
    }
}

/// Mono 16-bit samples for `text` spoken by `voice_id` at `speed`, given to `sink` a chunk at a
/// time ([`sample_count`] in all).
pub fn speak_chunks(
    text: &str,
    voice_id: &str,
    speed: f64,
    sample_rate: u32,
    sink: &mut dyn FnMut(&[i16]) -> Result<(), SynthError>,
) -> Result<(), SynthError> {
    let chars: Vec<char> = text.chars().collect();
    let total = sample_count(text, speed, sample_rate);
    let per_char = total as f64 / chars.len().max(1) as f64;
    let h = fnv(voice_id.as_bytes());
    let f0 = 95.0 + (h % 130) as f64; // 95..225 Hz
    let vibrato = 4.0 + ((h >> 8) % 30) as f64 / 10.0;
    let mut buf: Vec<i16> = Vec::with_capacity(CHUNK);
    let mut written = 0usize;
    let mut phase = 0.0f64;
    let rate = f64::from(sample_rate);
    for (i, &c) in chars.iter().enumerate() {
        let (start, end) = char_span(i, per_char, total);
        let voiced = c.is_alphanumeric();
        // Position within the word shapes the envelope: rise at its start, fall at its end.
        let word_start = i == 0 || !chars[i - 1].is_alphanumeric();
        let word_end = i + 1 == chars.len() || !chars[i + 1].is_alphanumeric();
        let pitch = f0 * (1.0 + 0.08 * (((c as u32 % 7) as f64) - 3.0) / 3.0);
        for n in start..end {
            let t = n as f64 / rate;
            let local = (n - start) as f64 / (end - start).max(1) as f64;
            let sample = if voiced {
                let mut env = 1.0;
                if word_start {
                    env *= local.min(0.3) / 0.3;
                }
                if word_end {
                    env *= (1.0 - local).min(0.3) / 0.3;
                }
                let f = pitch * (1.0 + 0.01 * (2.0 * std::f64::consts::PI * vibrato * t).sin());
                phase += 2.0 * std::f64::consts::PI * f / rate;
                let s = phase.sin() + 0.5 * (2.0 * phase).sin() + 0.25 * (3.0 * phase).sin();
                0.3 * env * s / 1.75
            } else {
                0.0
            };
            buf.push((sample * f64::from(i16::MAX)) as i16);
            if buf.len() == CHUNK {
                written += buf.len();
                sink(&buf)?;
                buf.clear();
            }
        }
    }
    // Exactly `total` samples, whatever the rounding of the characters' spans.
    buf.resize(total.saturating_sub(written), 0);
    if !buf.is_empty() {
        sink(&buf)?;
    }
    Ok(())
}

/// The samples character `i` takes, each character an equal share of `total`.
fn char_span(i: usize, per_char: f64, total: usize) -> (usize, usize) {
    let start = (i as f64 * per_char).round() as usize;
    let end = (((i + 1) as f64) * per_char).round() as usize;
    (start.min(total), end.min(total))
}

/// Where each word of `text` (a run without white space) is in the `total` samples
/// [`speak_chunks`] makes of it: from its first character's first sample to its last character's last, in
/// seconds. The emulator's own record, logged with each request, for judging a client's
/// timings against the audio rather than against the timings it was served.
pub fn words(text: &str, total: usize, sample_rate: u32) -> Vec<(String, f64, f64)> {
    let chars: Vec<char> = text.chars().collect();
    let per_char = total as f64 / chars.len().max(1) as f64;
    let rate = f64::from(sample_rate.max(1));
    let mut out = Vec::new();
    let mut word: Option<(usize, usize)> = None;
    for i in 0..=chars.len() {
        match (chars.get(i).is_some_and(|c| !c.is_whitespace()), word) {
            (true, None) => word = Some((i, i)),
            (true, Some((first, _))) => word = Some((first, i)),
            (false, Some((first, last))) => {
                let text: String = chars[first..=last].iter().collect();
                let begin = char_span(first, per_char, total).0 as f64 / rate;
                let end = char_span(last, per_char, total).1 as f64 / rate;
                out.push((text, begin, end));
                word = None;
            }
            (false, None) => {}
        }
    }
    out
}

/// Mono 16-bit samples for `text` spoken by `voice_id` at `speed`, all at once.
pub fn speak(text: &str, voice_id: &str, speed: f64, sample_rate: u32) -> Vec<i16> {
    let mut out = Vec::with_capacity(sample_count(text, speed, sample_rate));
    let _ = speak_chunks(text, voice_id, speed, sample_rate, &mut |c| {
        out.extend_from_slice(c);
        Ok(())
    });
    out
}

/// The encoded audio of `text` spoken by `voice_id` at `speed` in `format`, and its length in
/// samples: synthesized and encoded a chunk at a time, so only the encoded bytes are held.
pub fn render(
    text: &str,
    voice_id: &str,
    speed: f64,
    format: OutputFormat,
) -> Result<(Vec<u8>, usize), SynthError> {
    let total = sample_count(text, speed, format.sample_rate);
    let mut encoder = Encoder::new(format, total)?;
    speak_chunks(text, voice_id, speed, format.sample_rate, &mut |c| {
        encoder.push(c)
    })?;
    Ok((encoder.finish()?, total))
}

/// Encodes samples in `format`. Opus is not supported (the caller refuses it first).
pub fn encode(samples: &[i16], format: OutputFormat) -> Result<Vec<u8>, SynthError> {
    let mut encoder = Encoder::new(format, samples.len())?;
    encoder.push(samples)?;
    encoder.finish()
}

/// An encoder in any non-Opus format, fed samples a chunk at a time.
struct Encoder {
    format: OutputFormat,
    out: Vec<u8>,
    mp3: Option<crate::lame::Lame>,
}

impl Encoder {
    /// An encoder for `total` samples (a WAV header states its length first).
    fn new(format: OutputFormat, total: usize) -> Result<Self, SynthError> {
        let mut out = Vec::new();
        let mut mp3 = None;
        match format.codec {
            Codec::Pcm => out.reserve(total * 2),
            Codec::Ulaw | Codec::Alaw => out.reserve(total),
            Codec::Wav => {
                let data = u32::try_from(total * 2).map_err(|_| SynthError::TooLong)?;
                out.reserve(44 + total * 2);
                out.extend_from_slice(b"RIFF");
                out.extend_from_slice(&(36 + data).to_le_bytes());
                out.extend_from_slice(b"WAVEfmt ");
                out.extend_from_slice(&16u32.to_le_bytes());
                out.extend_from_slice(&1u16.to_le_bytes()); // PCM
                out.extend_from_slice(&1u16.to_le_bytes()); // mono
                out.extend_from_slice(&format.sample_rate.to_le_bytes());
                out.extend_from_slice(&(format.sample_rate * 2).to_le_bytes());
                out.extend_from_slice(&2u16.to_le_bytes());
                out.extend_from_slice(&16u16.to_le_bytes());
                out.extend_from_slice(b"data");
                out.extend_from_slice(&data.to_le_bytes());
            }
            // As LAME writes files: a first frame with the Info/LAME tag, which carries the
            // encoder delay and padding a decoder needs to give back exactly the samples encoded.
            Codec::Mp3 { kbps } => {
                mp3 = Some(crate::lame::Lame::start(format.sample_rate, kbps)?);
            }
            Codec::Opus { .. } => return Err(SynthError::Unsupported("opus")),
        }
        Ok(Encoder { format, out, mp3 })
    }

    fn push(&mut self, samples: &[i16]) -> Result<(), SynthError> {
        if let Some(mp3) = &mut self.mp3 {
            return Ok(mp3.feed(samples, &mut self.out)?);
        }
        match self.format.codec {
            Codec::Ulaw => self.out.extend(samples.iter().map(|&s| linear_to_ulaw(s))),
            Codec::Alaw => self.out.extend(samples.iter().map(|&s| linear_to_alaw(s))),
            _ => self
                .out
                .extend(samples.iter().flat_map(|s| s.to_le_bytes())),
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<u8>, SynthError> {
        if let Some(mp3) = self.mp3 {
            mp3.end(&mut self.out)?;
        }
        Ok(self.out)
    }
}

/// 16-bit linear to G.711 mu-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let mut s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s;
    }
    s = s.min(CLIP) + BIAS;
    let exponent = (7 - (s.leading_zeros() as i32 - 17)).clamp(0, 7);
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// 16-bit linear to G.711 A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s >= 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s - 1;
    }
    s = s.min(32_767);
    let byte = if s < 256 {
        (s >> 4) as u8
    } else {
        let exponent = (31 - s.leading_zeros() as i32 - 7).clamp(1, 7);
        let mantissa = (s >> (exponent + 3)) & 0x0F;
        ((exponent << 4) as u8) | mantissa as u8
    };
    (sign | byte) ^ 0x55
}

/// Character timings of `text` spoken over `seconds`: each character gets an equal share, as
/// the synthetic voice gives it.
pub(crate) fn alignment(chars: &[char], from: usize, per_char: f64) -> Value {
    let starts: Vec<f64> = (0..chars.len())
        .map(|i| round3((from + i) as f64 * per_char))
        .collect();
    let ends: Vec<f64> = (0..chars.len())
        .map(|i| round3((from + i + 1) as f64 * per_char))
        .collect();
    json!({
        "characters": chars.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "character_start_times_seconds": starts,
        "character_end_times_seconds": ends,
    })
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_follows_text_and_speed() {
        let text = "a".repeat(150);
        assert_eq!(speak(&text, "v", 1.0, 16_000).len(), 160_000);
        assert_eq!(speak(&text, "v", 1.25, 16_000).len(), 128_000);
        assert_eq!(
            speak(&text, "v", 1.0, 16_000),
            speak(&text, "v", 1.0, 16_000)
        );
    }

    #[test]
    fn each_word_is_heard_where_the_record_puts_it_and_silence_is_between() {
        let text = "Down, down, down. \u{201C}Would the fall never come to an end?\u{201D}";
        let rate = 22_050;
        let samples = speak(text, "v", 1.2, rate);
        let record = words(text, samples.len(), rate);
        let said: Vec<&str> = record.iter().map(|w| w.0.as_str()).collect();
        assert_eq!(said, text.split_whitespace().collect::<Vec<_>>());
        let loud = |a: f64, b: f64| {
            let (a, b) = ((a * 22_050.0) as usize, (b * 22_050.0) as usize);
            samples[a..b.min(samples.len())]
                .iter()
                .any(|s| s.unsigned_abs() > 300)
        };
        for (n, (word, begin, end)) in record.iter().enumerate() {
            assert!(begin < end && loud(*begin, *end), "{word}");
            if let Some(next) = record.get(n + 1) {
                // The space between two words is silent, and ends where the next begins.
                assert!(!loud(*end, next.1), "after {word}");
                assert!(next.1 > *end);
            }
        }
        assert!((record.last().unwrap().2 - samples.len() as f64 / 22_050.0).abs() < 1e-9);
    }

    #[test]
    fn audio_made_a_chunk_at_a_time_is_the_audio_made_at_once() {
        // Long enough for many chunks, and a last one that is partial.
        let text = "The rabbit ran past the hedge, and Alice after it. ".repeat(12);
        let samples = speak(&text, "v", 1.1, 16_000);
        assert!(samples.len() > 5 * CHUNK && !samples.len().is_multiple_of(CHUNK));
        for name in [
            "mp3_22050_32",
            "mp3_44100_128",
            "pcm_16000",
            "wav_22050",
            "ulaw_8000",
        ] {
            let format: OutputFormat = name.parse().unwrap();
            let whole = speak(&text, "v", 1.1, format.sample_rate);
            let (bytes, count) = render(&text, "v", 1.1, format).unwrap();
            assert_eq!(count, whole.len(), "{name}");
            match format.codec {
                // LAME given the clip at once.
                Codec::Mp3 { kbps } => assert_eq!(
                    bytes,
                    crate::lame::mp3(&whole, format.sample_rate, kbps).unwrap(),
                    "{name}"
                ),
                // hound reads the header and gives back the samples.
                Codec::Wav => {
                    let reader = hound::WavReader::new(std::io::Cursor::new(&bytes)).unwrap();
                    assert_eq!(reader.spec().sample_rate, format.sample_rate);
                    assert_eq!(reader.spec().channels, 1);
                    let back: Vec<i16> = reader.into_samples().map(Result::unwrap).collect();
                    assert_eq!(back, whole, "{name}");
                }
                Codec::Pcm => {
                    let back: Vec<i16> = bytes
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]]))
                        .collect();
                    assert_eq!(back, whole, "{name}");
                }
                _ => {
                    let each: Vec<u8> = whole.iter().map(|&s| linear_to_ulaw(s)).collect();
                    assert_eq!(bytes, each, "{name}");
                }
            }
        }
    }
}
