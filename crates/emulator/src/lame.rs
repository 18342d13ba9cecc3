//! The emulator's MP3s, made with LAME through `mp3lame-encoder`: mono, constant bitrate, and
//! opened by LAME's Info tag (frame count, delay, padding) as the API's MP3s are. The emulator
//! keeps its own encoder so that the client's code it tests makes none of its audio.
//!
//! Not responsible for choosing what to say (see `synth`).

use std::num::NonZeroU32;

use mp3lame_encoder::{Bitrate, Builder, Encoder, FlushGap, MonoPcm, Quality};

/// One MP3 stream being encoded.
pub(crate) struct Lame {
    encoder: Encoder,
}

/// Why an MP3 could not be made: LAME's words.
#[derive(Debug)]
pub(crate) struct LameError(pub(crate) String);

impl Lame {
    /// A stream at `sample_rate` and `kbps` (a documented MP3 bitrate).
    pub(crate) fn start(sample_rate: u32, kbps: u32) -> Result<Self, LameError> {
        let rate = match kbps {
            32 => Bitrate::Kbps32,
            48 => Bitrate::Kbps48,
            64 => Bitrate::Kbps64,
            96 => Bitrate::Kbps96,
            128 => Bitrate::Kbps128,
            192 => Bitrate::Kbps192,
            other => {
                return Err(LameError(format!(
                    "the emulator makes no MP3 at {other} kbps"
                )));
            }
        };
        let err = |e: mp3lame_encoder::BuildError| LameError(e.to_string());
        let mut b = Builder::new().ok_or(LameError("LAME would not start".into()))?;
        b.set_num_channels(1).map_err(err)?;
        b.set_sample_rate(sample_rate).map_err(err)?;
        b.set_output_sample_rate(NonZeroU32::new(sample_rate))
            .map_err(err)?;
        b.set_brate(rate).map_err(err)?;
        b.set_quality(Quality::Decent).map_err(err)?;
        b.set_to_write_vbr_tag(true).map_err(err)?;
        Ok(Lame {
            encoder: b.build().map_err(err)?,
        })
    }

    /// Appends the frames `samples` complete to `out`.
    pub(crate) fn feed(&mut self, samples: &[i16], out: &mut Vec<u8>) -> Result<(), LameError> {
        out.reserve(mp3lame_encoder::max_required_buffer_size(samples.len()) + 7200);
        self.encoder
            .encode_to_vec(MonoPcm(samples), out)
            .map(drop)
            .map_err(|e| LameError(e.to_string()))
    }

    /// Appends the last frames to `out` and writes LAME's Info tag over the placeholder frame
    /// the stream opens with (LAME makes that frame the tag's size).
    pub(crate) fn end(mut self, out: &mut Vec<u8>) -> Result<(), LameError> {
        out.reserve(7200);
        self.encoder
            .flush_to_vec::<FlushGap>(out)
            .map_err(|e| LameError(e.to_string()))?;
        // The tag is written into spare capacity: it must be reserved first.
        let mut tag = Vec::with_capacity(self.encoder.lame_tag_size().max(1));
        self.encoder.lame_tag_encode_to_vec(&mut tag);
        let synced = out.len() >= 2 && out[0] == 0xFF && out[1] & 0xE0 == 0xE0;
        if !tag.is_empty() && out.len() >= tag.len() && synced {
            out[..tag.len()].copy_from_slice(&tag);
        }
        Ok(())
    }
}

/// A whole MP3 of `samples`, in one go.
#[cfg(test)]
pub(crate) fn mp3(samples: &[i16], sample_rate: u32, kbps: u32) -> Result<Vec<u8>, LameError> {
    let mut lame = Lame::start(sample_rate, kbps)?;
    let mut out = Vec::new();
    lame.feed(samples, &mut out)?;
    lame.end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::mp3;

    #[test]
    fn the_stream_opens_with_lames_info_tag() {
        let samples: Vec<i16> = (0..44_100)
            .map(|i| ((f64::from(i) * 0.05).sin() * 8000.0) as i16)
            .collect();
        // (At 22.05 kHz and 32 kbps a frame is too small for the tag, and LAME writes none.)
        for (rate, kbps) in [(44_100, 64), (44_100, 128), (44_100, 192)] {
            let out = mp3(&samples, rate, kbps).unwrap();
            let head = &out[..out.len().min(600)];
            assert!(
                head.windows(4).any(|w| w == b"Info") && head.windows(4).any(|w| w == b"LAME"),
                "{rate}/{kbps}: the first frame carries the Info/LAME tag"
            );
        }
    }
}
