//! The emulator's audio: deterministic, speech-like tones whose length follows the text (about
//! 15 characters a second at speed 1.0), encoded in every non-Opus `output_format`.
//!
//! Voiced bursts per word at a pitch chosen by the voice id, short rests between words, longer
//! rests at punctuation. Not responsible for HTTP (see the parent module).

use std::io::Cursor;

use crate::format::{Codec, OutputFormat};

/// Characters per second at speed 1.0.
pub const CHARS_PER_SECOND: f64 = 15.0;

/// A stable 64-bit hash (FNV-1a) for choosing per-voice parameters.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Mono 16-bit samples for `text` spoken by `voice_id` at `speed`.
pub fn speak(text: &str, voice_id: &str, speed: f64, sample_rate: u32) -> Vec<i16> {
    let chars: Vec<char> = text.chars().collect();
    let seconds = chars.len() as f64 / CHARS_PER_SECOND / speed.clamp(0.25, 4.0);
    let total = (seconds * f64::from(sample_rate)).round().max(1.0) as usize;
    let per_char = total as f64 / chars.len().max(1) as f64;
    let h = fnv(voice_id.as_bytes());
    let f0 = 95.0 + (h % 130) as f64; // 95..225 Hz
    let vibrato = 4.0 + ((h >> 8) % 30) as f64 / 10.0;
    let mut out = Vec::with_capacity(total);
    let mut phase = 0.0f64;
    let rate = f64::from(sample_rate);
    for (i, &c) in chars.iter().enumerate() {
        let start = (i as f64 * per_char).round() as usize;
        let end = (((i + 1) as f64) * per_char).round() as usize;
        let end = end.min(total);
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
            out.push((sample * f64::from(i16::MAX)) as i16);
        }
    }
    out.resize(total, 0);
    out
}

/// Encodes samples in `format`. Opus is not supported (the caller refuses it first).
pub fn encode(samples: &[i16], format: OutputFormat) -> Result<Vec<u8>, String> {
    match format.codec {
        Codec::Pcm => Ok(samples.iter().flat_map(|s| s.to_le_bytes()).collect()),
        Codec::Ulaw => Ok(samples.iter().map(|&s| linear_to_ulaw(s)).collect()),
        Codec::Alaw => Ok(samples.iter().map(|&s| linear_to_alaw(s)).collect()),
        Codec::Wav => {
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: format.sample_rate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut cursor = Cursor::new(Vec::new());
            {
                let mut w = hound::WavWriter::new(&mut cursor, spec).map_err(|e| e.to_string())?;
                for &s in samples {
                    w.write_sample(s).map_err(|e| e.to_string())?;
                }
                w.finalize().map_err(|e| e.to_string())?;
            }
            Ok(cursor.into_inner())
        }
        // As LAME writes files: a first frame with the Info/LAME tag, which carries the encoder
        // delay and padding a decoder needs to give back exactly the samples encoded.
        Codec::Mp3 { kbps } => crate::codec::lame::mp3(samples, format.sample_rate, kbps),
        Codec::Opus { .. } => Err("opus is not supported".into()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::g711::{alaw_to_linear, ulaw_to_linear};

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
    fn g711_round_trips_closely() {
        for s in [-32_000i16, -1000, -5, 0, 7, 1000, 12_345, 32_000] {
            let u = ulaw_to_linear(linear_to_ulaw(s));
            let a = alaw_to_linear(linear_to_alaw(s));
            let tol = (i32::from(s).abs() / 16).max(16);
            assert!(
                (i32::from(u) - i32::from(s)).abs() <= tol,
                "ulaw {s} -> {u}"
            );
            assert!(
                (i32::from(a) - i32::from(s)).abs() <= tol,
                "alaw {s} -> {a}"
            );
        }
    }
}
