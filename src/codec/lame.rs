//! MP3 encoding with LAME, streamed: `.mp3` output assembled sample by sample (`--gapless`,
//! `trim_silence`). The emulator has an encoder of its own.
//!
//! The stream starts with a placeholder frame that [`Mp3Encoder::finish`] fills with LAME's
//! Info tag (frame count, encoder delay and padding), so decoders give back exactly the samples
//! encoded. Not responsible for decoding (see `decode`).

use std::num::NonZeroU32;

use mp3lame_encoder::{Bitrate, Builder, Encoder, FlushGap, MonoPcm, Quality};

use super::AudioError;

/// LAME's refusal, as an encoding failure.
fn encode_error(e: impl std::fmt::Display) -> AudioError {
    AudioError::Encode(format!("LAME: {e}"))
}

/// A mono constant-bitrate LAME encoder.
pub(crate) struct Mp3Encoder {
    encoder: Encoder,
}

pub(crate) fn bitrate(kbps: u32) -> Result<Bitrate, AudioError> {
    Ok(match kbps {
        8 => Bitrate::Kbps8,
        16 => Bitrate::Kbps16,
        24 => Bitrate::Kbps24,
        32 => Bitrate::Kbps32,
        40 => Bitrate::Kbps40,
        48 => Bitrate::Kbps48,
        64 => Bitrate::Kbps64,
        80 => Bitrate::Kbps80,
        96 => Bitrate::Kbps96,
        112 => Bitrate::Kbps112,
        128 => Bitrate::Kbps128,
        160 => Bitrate::Kbps160,
        192 => Bitrate::Kbps192,
        224 => Bitrate::Kbps224,
        256 => Bitrate::Kbps256,
        320 => Bitrate::Kbps320,
        other => {
            return Err(AudioError::Encode(format!(
                "no MP3 bitrate of {other} kbps"
            )));
        }
    })
}

impl Mp3Encoder {
    pub(crate) fn new(sample_rate: u32, kbps: u32) -> Result<Self, AudioError> {
        let mut builder =
            Builder::new().ok_or(AudioError::Encode("cannot create the MP3 encoder".into()))?;
        builder.set_num_channels(1).map_err(encode_error)?;
        builder.set_sample_rate(sample_rate).map_err(encode_error)?;
        builder
            .set_output_sample_rate(NonZeroU32::new(sample_rate))
            .map_err(encode_error)?;
        builder.set_brate(bitrate(kbps)?).map_err(encode_error)?;
        builder.set_quality(Quality::Decent).map_err(encode_error)?;
        builder.set_to_write_vbr_tag(true).map_err(encode_error)?;
        Ok(Mp3Encoder {
            encoder: builder.build().map_err(encode_error)?,
        })
    }

    /// Encodes `samples`, appending whatever frames are complete to `out`.
    pub(crate) fn encode(&mut self, samples: &[i16], out: &mut Vec<u8>) -> Result<(), AudioError> {
        // The encoder writes into spare capacity: it must be reserved first.
        out.reserve(mp3lame_encoder::max_required_buffer_size(samples.len()) + 7200);
        self.encoder
            .encode_to_vec(MonoPcm(samples), out)
            .map(|_| ())
            .map_err(encode_error)
    }

    /// Flushes the last frames (every sample, padded to a frame) into `out` and returns the
    /// Info/LAME tag frame that replaces the stream's first frame.
    pub(crate) fn finish(mut self, out: &mut Vec<u8>) -> Result<Vec<u8>, AudioError> {
        out.reserve(7200);
        self.encoder
            .flush_to_vec::<FlushGap>(out)
            .map_err(encode_error)?;
        let mut tag = Vec::with_capacity(self.encoder.lame_tag_size().max(1));
        self.encoder.lame_tag_encode_to_vec(&mut tag);
        Ok(tag)
    }
}

/// A whole MP3 stream of `samples`, with its Info/LAME tag in the first frame.
#[cfg(test)]
pub(crate) fn mp3(samples: &[i16], sample_rate: u32, kbps: u32) -> Result<Vec<u8>, AudioError> {
    let mut encoder = Mp3Encoder::new(sample_rate, kbps)?;
    let mut out = Vec::new();
    encoder.encode(samples, &mut out)?;
    let tag = encoder.finish(&mut out)?;
    place_tag(&mut out, &tag);
    Ok(out)
}

/// Puts the Info/LAME `tag` in place of the stream's first frame. LAME's stream opens with a
/// placeholder frame as long as its tag (it says so by the tag's size).
#[cfg(test)]
pub(crate) fn place_tag(out: &mut [u8], tag: &[u8]) {
    let starts_with_sync = out.len() >= 2 && out[0] == 0xFF && out[1] & 0xE0 == 0xE0;
    if !tag.is_empty() && out.len() >= tag.len() && starts_with_sync {
        out[..tag.len()].copy_from_slice(tag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_replaces_a_placeholder_frame_of_its_own_length_and_nothing_else() {
        let samples: Vec<i16> = (0..48_000)
            .map(|i| ((i as f64 * 0.05).sin() * 8000.0) as i16)
            .collect();
        for (rate, kbps) in [
            (22_050, 32),
            (24_000, 48),
            (44_100, 64),
            (44_100, 128),
            (44_100, 192),
        ] {
            let mut encoder = Mp3Encoder::new(rate, kbps).unwrap();
            let mut raw = Vec::new();
            encoder.encode(&samples, &mut raw).unwrap();
            let tag = encoder.finish(&mut raw).unwrap();
            let tagged = mp3(&samples, rate, kbps).unwrap();
            let first = super::super::mp3::frame_header(&raw).unwrap();
            if tag.is_empty() {
                assert_eq!(tagged, raw, "{rate}/{kbps}: untouched without a tag");
            } else {
                assert_eq!(
                    first.len,
                    tag.len(),
                    "{rate}/{kbps}: the placeholder is the tag's size"
                );
                assert_eq!(&tagged[..tag.len()], &tag[..]);
                assert_eq!(&tagged[tag.len()..], &raw[tag.len()..]);
            }
        }
    }
}
