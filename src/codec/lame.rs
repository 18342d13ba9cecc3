//! MP3 encoding with LAME, streamed: the emulator's responses, and `.mp3` output assembled
//! sample by sample (`--gapless`, `trim_silence`).
//!
//! The stream starts with a placeholder frame that [`Mp3Encoder::finish`] fills with LAME's
//! Info tag (frame count, encoder delay and padding), so decoders give back exactly the samples
//! encoded. Not responsible for decoding (see `decode`).

use std::num::NonZeroU32;

use mp3lame_encoder::{Bitrate, Builder, Encoder, FlushGap, MonoPcm, Quality};

/// A mono constant-bitrate LAME encoder.
pub(crate) struct Mp3Encoder {
    encoder: Encoder,
}

pub(crate) fn bitrate(kbps: u32) -> Result<Bitrate, String> {
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
        other => return Err(format!("no MP3 bitrate of {other} kbps")),
    })
}

impl Mp3Encoder {
    pub(crate) fn new(sample_rate: u32, kbps: u32) -> Result<Self, String> {
        let mut builder = Builder::new().ok_or("cannot create the MP3 encoder")?;
        builder.set_num_channels(1).map_err(|e| e.to_string())?;
        builder
            .set_sample_rate(sample_rate)
            .map_err(|e| e.to_string())?;
        builder
            .set_output_sample_rate(NonZeroU32::new(sample_rate))
            .map_err(|e| e.to_string())?;
        builder
            .set_brate(bitrate(kbps)?)
            .map_err(|e| e.to_string())?;
        builder
            .set_quality(Quality::Decent)
            .map_err(|e| e.to_string())?;
        builder
            .set_to_write_vbr_tag(true)
            .map_err(|e| e.to_string())?;
        Ok(Mp3Encoder {
            encoder: builder.build().map_err(|e| e.to_string())?,
        })
    }

    /// Encodes `samples`, appending whatever frames are complete to `out`.
    pub(crate) fn encode(&mut self, samples: &[i16], out: &mut Vec<u8>) -> Result<(), String> {
        // The encoder writes into spare capacity: it must be reserved first.
        out.reserve(mp3lame_encoder::max_required_buffer_size(samples.len()) + 7200);
        self.encoder
            .encode_to_vec(MonoPcm(samples), out)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Flushes the last frames (every sample, padded to a frame) into `out` and returns the
    /// Info/LAME tag frame that replaces the stream's first frame.
    pub(crate) fn finish(mut self, out: &mut Vec<u8>) -> Result<Vec<u8>, String> {
        out.reserve(7200);
        self.encoder
            .flush_to_vec::<FlushGap>(out)
            .map_err(|e| e.to_string())?;
        let mut tag = Vec::with_capacity(self.encoder.lame_tag_size().max(1));
        self.encoder.lame_tag_encode_to_vec(&mut tag);
        Ok(tag)
    }
}

/// A whole MP3 stream of `samples`, with its Info/LAME tag in the first frame.
pub(crate) fn mp3(samples: &[i16], sample_rate: u32, kbps: u32) -> Result<Vec<u8>, String> {
    let mut encoder = Mp3Encoder::new(sample_rate, kbps)?;
    let mut out = Vec::new();
    encoder.encode(samples, &mut out)?;
    let tag = encoder.finish(&mut out)?;
    if let Some(first) = super::mp3::frame_header(&out)
        && first.len == tag.len()
    {
        out[..tag.len()].copy_from_slice(&tag);
    }
    Ok(out)
}
