//! Any response decoded to 16-bit mono PCM at its sample rate: MP3 through symphonia (gapless,
//! trimming LAME's delay and padding), raw PCM, WAV, and G.711.
//!
//! Not responsible for where the samples go (see `audio`).

use std::io::Cursor;

use super::AudioError;
use super::g711::{alaw_to_linear, ulaw_to_linear};
use super::mp3::{DECODER_DELAY, has_lame_tag, mp3_frames};
use crate::format::{Codec, OutputFormat};

/// Decodes one response into 16-bit mono samples at the format's sample rate.
pub fn decode(data: &[u8], format: OutputFormat) -> Result<Vec<i16>, AudioError> {
    match format.codec {
        Codec::Pcm => Ok(data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect()),
        Codec::Ulaw => Ok(data.iter().map(|&b| ulaw_to_linear(b)).collect()),
        Codec::Alaw => Ok(data.iter().map(|&b| alaw_to_linear(b)).collect()),
        Codec::Wav => {
            let mut reader = hound::WavReader::new(Cursor::new(data))
                .map_err(|e| AudioError::BadWav(e.to_string()))?;
            let spec = reader.spec();
            if spec.sample_rate != format.sample_rate {
                return Err(AudioError::RateMismatch(
                    "WAV",
                    spec.sample_rate,
                    format.sample_rate,
                ));
            }
            if spec.bits_per_sample != 16 || spec.channels != 1 {
                return Err(AudioError::BadWav(format!(
                    "{} channel(s) of {} bits; expected mono 16-bit",
                    spec.channels, spec.bits_per_sample
                )));
            }
            reader
                .samples::<i16>()
                .collect::<Result<_, _>>()
                .map_err(|e| AudioError::BadWav(e.to_string()))
        }
        Codec::Mp3 { .. } => decode_mp3(data, format.sample_rate),
        Codec::Opus { .. } => Err(AudioError::Unsupported(format.to_string())),
    }
}

pub(crate) fn decode_mp3(data: &[u8], expected_rate: u32) -> Result<Vec<i16>, AudioError> {
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::formats::{FormatOptions, TrackType};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;

    // Validate framing first: symphonia skips junk silently, narrate wants to know.
    let (frames, header) = mp3_frames(data)?;
    // With a LAME tag, symphonia trims the encoder delay and padding itself (gapless). Without
    // one, only the decoder's own delay is known: 529 samples, trimmed below.
    let tagged = frames
        .first()
        .is_some_and(|f| f.start > 0 && has_lame_tag(&data[..f.start]));
    if header.sample_rate != expected_rate {
        return Err(AudioError::RateMismatch(
            "MP3",
            header.sample_rate,
            expected_rate,
        ));
    }
    let source = MediaSourceStream::new(Box::new(Cursor::new(data.to_vec())), Default::default());
    let mut hint = Hint::new();
    hint.with_extension("mp3");
    let dec = |e: symphonia::core::errors::Error| AudioError::Decode(e.to_string());
    let mut reader = symphonia::default::get_probe()
        .probe(
            &hint,
            source,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(dec)?;
    let track = reader
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::Decode("no audio track".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::Decode("no audio codec parameters".into()))?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(dec)?;
    let mut out: Vec<i16> = Vec::new();
    let mut buf: Vec<i16> = Vec::new();
    while let Some(packet) = reader.next_packet().map_err(dec)? {
        if packet.track_id != track_id {
            continue;
        }
        let decoded = decoder.decode(&packet).map_err(dec)?;
        let channels = decoded.spec().channels().count().max(1);
        buf.resize(decoded.samples_interleaved(), 0);
        decoded.copy_to_slice_interleaved(&mut buf);
        // Mono output: average channels if the stream has more than one.
        if channels == 1 {
            out.extend_from_slice(&buf);
        } else {
            out.extend(
                buf.chunks_exact(channels).map(|c| {
                    (c.iter().map(|&s| i32::from(s)).sum::<i32>() / channels as i32) as i16
                }),
            );
        }
    }
    if !tagged {
        out.drain(..out.len().min(DECODER_DELAY));
    }
    Ok(out)
}
