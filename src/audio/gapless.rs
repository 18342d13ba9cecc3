//! `.mp3` output encoded once from the joined samples (`--gapless`, `trim_silence`,
//! `--loudness-target`): responses meet sample-exactly and LAME's Info tag tells decoders the
//! file's delay and padding.
//!
//! Not responsible for the join itself (see `pcm`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::loudness::normalizing_gain;
use super::pcm::{Sink, join_pcm};
use super::tags::id3_tag;
use super::{AudioError, Options, Piece, Placement};
use crate::codec::frame_header;
use crate::format::{Codec, OutputFormat};

/// MP3 output encoded once from the joined samples: an ID3 tag, LAME's tag frame, the frames.
pub(crate) struct LameSink<'a> {
    pub(crate) encoder: crate::codec::lame::Mp3Encoder,
    pub(crate) out: BufWriter<&'a File>,
    pub(crate) buf: Vec<u8>,
    pub(crate) output: &'a Path,
}

impl LameSink<'_> {
    pub(crate) fn io(&self, source: std::io::Error) -> AudioError {
        AudioError::Io {
            path: self.output.to_path_buf(),
            source,
        }
    }
}

impl Sink for LameSink<'_> {
    fn samples(&mut self, samples: &[i16]) -> Result<(), AudioError> {
        for chunk in samples.chunks(1 << 16) {
            self.encoder
                .encode(chunk, &mut self.buf)
                .map_err(AudioError::Encode)?;
            let r = self.out.write_all(&self.buf);
            r.map_err(|e| self.io(e))?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// The bitrate of an `.mp3` output: its responses must be MP3.
pub(crate) fn mp3_kbps(format: OutputFormat) -> Result<u32, AudioError> {
    match format.codec {
        Codec::Mp3 { kbps } => Ok(kbps),
        _ => Err(AudioError::Unsupported(format!(
            "{format} as .mp3 output (the responses must be MP3)"
        ))),
    }
}

/// The gain that brings the output to `--loudness-target`: normalizing needs the loudness
/// first, so a measuring pass runs before the encoding pass applies the gain to every sample.
fn target_gain(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    options: &Options,
) -> Result<Option<f64>, AudioError> {
    let Some(target) = options.loudness_target else {
        return Ok(None);
    };
    struct Nothing;
    impl Sink for Nothing {
        fn samples(&mut self, _: &[i16]) -> Result<(), AudioError> {
            Ok(())
        }
    }
    let first = join_pcm(
        pieces,
        format,
        &mut Nothing,
        true,
        options.trim_silence,
        0.0,
        options,
    )?;
    Ok(first
        .loudness
        .and_then(|m| normalizing_gain(target, &m.whole)))
}

/// The join of an output encoded from samples (`.mp3`, `.m4b`): the gain that meets the
/// loudness target measured first, then every sample scaled by it on its way to `sink`.
pub(crate) fn join_encoded(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    sink: &mut dyn Sink,
    options: &Options,
    measure: bool,
) -> Result<Placement, AudioError> {
    let gain = target_gain(pieces, format, options)?;
    let mut placement = join_pcm(
        pieces,
        format,
        sink,
        measure,
        options.trim_silence,
        gain.unwrap_or(0.0),
        options,
    )?;
    if let Some(m) = &mut placement.loudness {
        m.gain_db = gain;
    }
    placement.method = super::Assembly::Encode;
    Ok(placement)
}

/// `.mp3` output encoded once from the joined, gapless samples.
pub(crate) fn write_mp3_encoded(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    file: &File,
    output: &Path,
    options: &Options,
    measure: bool,
) -> Result<Placement, AudioError> {
    use std::io::{Read, Seek, SeekFrom};

    let io = |source: std::io::Error| AudioError::Io {
        path: output.to_path_buf(),
        source,
    };
    let kbps = mp3_kbps(format)?;
    let spec = &options.tags;
    let rate = format.sample_rate;
    let tag = id3_tag(spec, rate, &Placement::default());
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(&tag).map_err(io)?;
    let mut sink = LameSink {
        encoder: crate::codec::lame::Mp3Encoder::new(rate, kbps).map_err(AudioError::Encode)?,
        out,
        buf: Vec::new(),
        output,
    };
    let placement = join_encoded(pieces, format, &mut sink, options, measure)?;
    let LameSink {
        encoder,
        mut out,
        mut buf,
        ..
    } = sink;
    buf.clear();
    let lame_tag = encoder.finish(&mut buf).map_err(AudioError::Encode)?;
    out.write_all(&buf).map_err(io)?;
    out.flush().map_err(io)?;
    let mut file = out.into_inner().map_err(|e| io(e.into_error()))?;
    // The stream's first frame is LAME's placeholder for its tag: put the tag in its place.
    let mut head = [0u8; 4];
    file.seek(SeekFrom::Start(tag.len() as u64)).map_err(io)?;
    file.read_exact(&mut head).map_err(io)?;
    if frame_header(&head).is_some_and(|h| h.len == lame_tag.len()) {
        file.seek(SeekFrom::Start(tag.len() as u64)).map_err(io)?;
        file.write_all(&lame_tag).map_err(io)?;
    }
    let final_tag = id3_tag(spec, rate, &placement);
    debug_assert_eq!(final_tag.len(), tag.len());
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&final_tag).map_err(io)?;
    Ok(placement)
}
