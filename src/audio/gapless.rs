//! `.mp3` output encoded once from the joined samples (`--gapless`, `trim_silence`,
//! `--loudness-target`): responses meet sample-exactly and LAME's Info tag tells decoders the
//! file's delay and padding.
//!
//! Not responsible for the join itself (see `pcm`).

use std::fs::File;
use std::io::{BufWriter, Read as _, Seek as _, SeekFrom, Write};
use std::path::Path;

use super::loudness::{normalizing_gain, scaled};
use super::pcm::{Sink, join_pcm, write_le};
use super::tags::id3_tag;
use super::{AudioError, Measured, Options, Piece, Placement};
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
            self.encoder.encode(chunk, &mut self.buf)?;
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

/// The first pass of a normalized output: the joined samples, decoded and edited once, spilled
/// to an unnamed temporary file (memory stays flat), while their loudness is measured.
struct Spill<'a> {
    out: BufWriter<File>,
    bytes: Vec<u8>,
    scratch: &'a Path,
}

impl Sink for Spill<'_> {
    fn samples(&mut self, samples: &[i16]) -> Result<(), AudioError> {
        write_le(&mut self.out, samples, &mut self.bytes).map_err(|source| AudioError::Io {
            path: self.scratch.to_path_buf(),
            source,
        })
    }
}

/// The join of an output encoded from samples (`.mp3`, `.m4b`). Without a loudness target, one
/// pass into `sink`. With one, normalizing needs the loudness first: the first pass decodes,
/// edits and measures every response once, keeping the joined samples in a temporary file in
/// `scratch`; the second reads them back, scales them by the gain that meets the target and
/// hands them to `sink`. The figures reported are the first pass's with the gain added.
pub(crate) fn join_encoded(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    sink: &mut dyn Sink,
    options: &Options,
    measure: bool,
    scratch: &Path,
) -> Result<Placement, AudioError> {
    let trim = options.trim_silence;
    let Some(target) = options.loudness_target else {
        let mut placement = join_pcm(pieces, format, sink, measure, trim, 0.0, options)?;
        placement.method = super::Assembly::Encode;
        return Ok(placement);
    };
    if let Some(known) = &options.known_loudness {
        return join_known(pieces, format, sink, options, (target, known));
    }
    let io = |source: std::io::Error| AudioError::Io {
        path: scratch.to_path_buf(),
        source,
    };
    let mut spill = Spill {
        out: BufWriter::with_capacity(1 << 20, tempfile::tempfile_in(scratch).map_err(io)?),
        bytes: Vec::new(),
        scratch,
    };
    let mut placement = join_pcm(pieces, format, &mut spill, true, trim, 0.0, options)?;
    let mut file = spill.out.into_inner().map_err(|e| io(e.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let gain = placement
        .loudness
        .as_ref()
        .and_then(|m| normalizing_gain(target, options.peak_ceiling_dbtp, &m.whole));
    let factor = gain.map(|g| 10f64.powf(g / 20.0));
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    replay(
        reader,
        pieces,
        format,
        &mut placement,
        factor,
        sink,
        options,
    )
    .map_err(|e| match e {
        Replay::Io(source) => io(source),
        Replay::Audio(e) => e,
    })?;
    if let Some(m) = &mut placement.loudness {
        *m = Measured {
            gain_db: gain,
            ..m.gained(gain.unwrap_or(0.0))
        };
    }
    if !measure {
        placement.loudness = None;
    }
    placement.method = super::Assembly::Encode;
    Ok(placement)
}

/// The join of a normalized output whose loudness is known (see `Options::known_loudness`):
/// one pass, the gain applied as each response is decoded, the figures the known ones with
/// the gain added.
fn join_known(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    sink: &mut dyn Sink,
    options: &Options,
    (target, known): (f64, &Measured),
) -> Result<Placement, AudioError> {
    tracing::info!("loudness remembered from an earlier assembly of the same takes: one pass");
    let gain = normalizing_gain(target, options.peak_ceiling_dbtp, &known.whole);
    let trim = options.trim_silence;
    let mut placement = join_pcm(
        pieces,
        format,
        sink,
        false,
        trim,
        gain.unwrap_or(0.0),
        options,
    )?;
    placement.loudness = Some(Measured {
        gain_db: gain,
        ..known.gained(gain.unwrap_or(0.0))
    });
    placement.method = super::Assembly::Encode;
    Ok(placement)
}

/// Why the second pass stopped.
enum Replay {
    Io(std::io::Error),
    Audio(AudioError),
}

/// The second pass: the joined samples read back from `reader`, scaled by `factor`, handed to
/// `sink`, with each audio piece's waveform taken from the scaled samples.
fn replay(
    mut reader: impl std::io::Read,
    pieces: &[Piece<'_>],
    format: OutputFormat,
    placement: &mut Placement,
    factor: Option<f64>,
    sink: &mut dyn Sink,
    options: &Options,
) -> Result<(), Replay> {
    // Whole waveform buckets at a time, so the peaks are those of the piece at once.
    let bucket =
        usize::try_from((format.sample_rate / super::PEAKS_PER_SECOND).max(1)).unwrap_or(1);
    let chunk = bucket * 32;
    let mut bytes = vec![0u8; chunk * 2];
    let mut samples: Vec<i16> = Vec::with_capacity(chunk);
    for (i, span) in placement.spans.iter().enumerate() {
        super::cancelled(options.cancel.as_deref()).map_err(Replay::Audio)?;
        let audio = matches!(pieces.get(i), Some(Piece::Audio { .. }));
        let mut left = span.end - span.start;
        let mut peaks = Vec::new();
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(chunk).min(chunk);
            reader.read_exact(&mut bytes[..n * 2]).map_err(Replay::Io)?;
            samples.clear();
            samples.extend(
                bytes[..n * 2]
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]])),
            );
            if let Some(f) = factor {
                for s in &mut samples {
                    *s = scaled(*s, f);
                }
            }
            if audio {
                peaks.extend(super::peaks(&samples, format.sample_rate));
            }
            sink.samples(&samples).map_err(Replay::Audio)?;
            left -= n as u64;
        }
        if audio {
            placement.peaks[i] = peaks;
        }
    }
    Ok(())
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
        encoder: crate::codec::lame::Mp3Encoder::new(rate, kbps)?,
        out,
        buf: Vec::new(),
        output,
    };
    let scratch = crate::files::parent_dir(output);
    let placement = join_encoded(pieces, format, &mut sink, options, measure, scratch)?;
    let LameSink {
        encoder,
        mut out,
        mut buf,
        ..
    } = sink;
    buf.clear();
    let lame_tag = encoder.finish(&mut buf)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Capture(Vec<i16>);
    impl Sink for Capture {
        fn samples(&mut self, samples: &[i16]) -> Result<(), AudioError> {
            self.0.extend_from_slice(samples);
            Ok(())
        }
    }

    #[test]
    fn one_decoding_pass_gives_what_decoding_again_with_the_gain_gives() {
        let dir = tempfile::tempdir().unwrap();
        let format: OutputFormat = "mp3_44100_128".parse().unwrap();
        let texts = [
            "Chapter One.",
            "Alice was beginning to get very tired of sitting by her sister on the bank.",
            "Curiouser and curiouser!",
        ];
        let paths: Vec<std::path::PathBuf> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let (bytes, _) = crate::emulator::synth::render(
                    t,
                    "voice",
                    1.0,
                    format.to_string().parse().unwrap(),
                )
                .unwrap();
                let path = dir.path().join(format!("{i}.mp3"));
                std::fs::write(&path, bytes).unwrap();
                path
            })
            .collect();
        let pieces = vec![
            Piece::Silence { ms: 700 },
            Piece::Audio {
                path: &paths[0],
                segment: 0,
            },
            Piece::Silence { ms: 400 },
            Piece::Audio {
                path: &paths[1],
                segment: 1,
            },
            Piece::Audio {
                path: &paths[2],
                segment: 1,
            },
            Piece::Silence { ms: 1200 },
        ];
        for target in [-16.0, -30.0] {
            let options = Options {
                loudness_target: Some(target),
                trim_silence: true,
                ..Options::default()
            };
            let mut once = Capture(Vec::new());
            let got = join_encoded(&pieces, format, &mut once, &options, true, dir.path()).unwrap();
            let gain = got.loudness.as_ref().unwrap().gain_db.unwrap();
            // The way it was done before: every response decoded again, scaled on the way.
            let mut again = Capture(Vec::new());
            let want = join_pcm(&pieces, format, &mut again, true, true, gain, &options).unwrap();
            assert_eq!(once.0, again.0, "{target}: the same samples");
            assert_eq!(got.spans, want.spans);
            assert_eq!(got.edits, want.edits);
            assert_eq!(got.peaks, want.peaks);
            let (a, b) = (got.loudness.unwrap(), want.loudness.unwrap());
            let lufs = |l: &super::super::Loudness| l.integrated_lufs.unwrap();
            assert!(
                (lufs(&a.whole) - lufs(&b.whole)).abs() < 0.1,
                "{target}: {a:?} {b:?}"
            );
            assert!((a.whole.true_peak_dbtp - b.whole.true_peak_dbtp).abs() < 0.1);
            for ((sa, la), (sb, lb)) in a.segments.iter().zip(&b.segments) {
                assert_eq!(sa, sb);
                if let (Some(x), Some(y)) = (la.integrated_lufs, lb.integrated_lufs) {
                    assert!((x - y).abs() < 0.1, "segment {sa}");
                }
            }
            // No temporary file is left behind.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
        }
    }
}
