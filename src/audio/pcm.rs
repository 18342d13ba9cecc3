//! Joining responses sample by sample: each decoded (a batch at a time, one per core), trimmed and
//! faded, scaled by a gain, and handed to a [`Sink`] (a WAV file or the MP3 encoder) with the
//! silences between them, while the loudness is measured.
//!
//! Not responsible for the file formats (see `wav`, `gapless`).

use std::path::Path;

use super::edit::{Edit, edit};
use super::loudness::{Measure, scaled};
use super::{AudioError, Piece, Placement, cancelled, read, silence_samples};
use crate::codec::decode;
use crate::format::OutputFormat;

/// Where PCM assembly puts its samples: a WAV file, or the MP3 encoder.
pub(crate) trait Sink {
    fn samples(&mut self, samples: &[i16]) -> Result<(), AudioError>;
}

/// Writes `samples` to `out` as 16-bit little-endian PCM, through `bytes` (a buffer a sink
/// keeps between calls, of 64 KiB at most whatever the length of `samples`).
pub(crate) fn write_le(
    out: &mut impl std::io::Write,
    samples: &[i16],
    bytes: &mut Vec<u8>,
) -> std::io::Result<()> {
    for chunk in samples.chunks(1 << 15) {
        bytes.clear();
        bytes.extend(chunk.iter().flat_map(|s| s.to_le_bytes()));
        out.write_all(bytes)?;
    }
    Ok(())
}

/// Joins `pieces` sample by sample into `sink`: responses decoded (a batch at a time on every
/// core), edited (see [`edit`]), measured and written in order.
pub(crate) fn join_pcm(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    sink: &mut dyn Sink,
    measure: bool,
    trim: bool,
    gain_db: f64,
    options: &super::Options,
) -> Result<Placement, AudioError> {
    let cancel = options.cancel.as_deref();
    let mut meter = measure.then(|| Measure::new(format.sample_rate));
    let mut placement = Placement {
        sample_rate: format.sample_rate,
        method: super::Assembly::Decode,
        ..Placement::default()
    };
    let mut at = 0u64;
    // Decoding is the cost of PCM assembly; the batch bounds memory (one response per core).
    let threads = options
        .decode_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 8);
    let mut index = 0;
    while index < pieces.len() {
        cancelled(cancel)?;
        if let Piece::Silence { ms } = &pieces[index] {
            let n = silence_samples(*ms, format.sample_rate);
            if let Some(m) = &mut meter {
                m.silence(n);
            }
            write_silence(sink, n)?;
            placement.spans.push(at..at + n);
            placement.peaks.push(Vec::new());
            placement.edits.push(Edit::default());
            at += n;
            index += 1;
            continue;
        }
        // The run of responses up to the next silence, at most one per core.
        let batch: Vec<(&Path, usize)> = pieces[index..]
            .iter()
            .map_while(|p| match p {
                Piece::Audio { path, segment } => Some((*path, *segment)),
                Piece::Silence { .. } => None,
            })
            .take(threads)
            .collect();
        let decoded = decode_batch(&batch, format, trim, gain_db);
        for (&(_, segment), result) in batch.iter().zip(decoded) {
            let (samples, done) = result?;
            let end = at + samples.len() as u64;
            if let Some(m) = &mut meter {
                m.audio(segment, &samples);
            }
            sink.samples(&samples)?;
            placement
                .peaks
                .push(super::peaks(&samples, format.sample_rate));
            placement.spans.push(at..end);
            placement.edits.push(done);
            at = end;
        }
        index += batch.len();
    }
    placement.total_samples = at;
    placement.loudness = meter.map(Measure::finish);
    Ok(placement)
}

/// `n` samples of silence into `sink`.
fn write_silence(sink: &mut dyn Sink, n: u64) -> Result<(), AudioError> {
    const ZEROS: [i16; 4096] = [0; 4096];
    let mut left = n;
    while left > 0 {
        let k = left.min(ZEROS.len() as u64);
        sink.samples(&ZEROS[..usize::try_from(k).unwrap_or(ZEROS.len())])?;
        left -= k;
    }
    Ok(())
}

/// Decodes a batch of responses, one thread each: each trimmed and faded (see [`edit`]) and
/// scaled by `gain_db`.
fn decode_batch(
    batch: &[(&Path, usize)],
    format: OutputFormat,
    trim: bool,
    gain_db: f64,
) -> Vec<Result<(Vec<i16>, Edit), AudioError>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = batch
            .iter()
            .map(|&(path, _)| {
                scope.spawn(move || {
                    let mut samples = decode(&read(path)?, format)?;
                    let done = edit(&mut samples, format.sample_rate, trim);
                    if gain_db != 0.0 {
                        let factor = 10f64.powf(gain_db / 20.0);
                        for s in &mut samples {
                            *s = scaled(*s, factor);
                        }
                    }
                    Ok((samples, done))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(AudioError::Decode("decoder thread panicked".into())))
            })
            .collect()
    })
}
