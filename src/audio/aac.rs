//! AAC on every core: the joined samples spilled to a file, cut in the silences between the
//! pieces at whole AAC frames, each span encoded by its own ffmpeg into ADTS at the same time,
//! and the streams joined end to end.
//!
//! The encoder's priming: every AAC stream starts with one frame (1024 samples) of encoder
//! delay. The first span's is skipped by the MP4's edit list (the mux pass starts the audio one
//! frame in); each later span starts one frame after its cut, so that its priming stands in the
//! frame of silence left out, and the samples after a join are where the report puts them.
//! A cut lies in a silence long enough that the frames on either side of it are silent too, so
//! a join is never heard. Not responsible for the join of the responses (see `gapless`) or the
//! chapters and tags (see `m4b`).

use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;
use std::process::Stdio;

use super::m4b::{finish, spawn, words};
use super::pcm::Sink;
use super::{AudioError, Piece, Placement};

/// Samples in an AAC frame, and the encoder's priming.
pub(crate) const FRAME: u64 = 1024;
/// The shortest silence a span may be cut in: room for a frame of priming after the cut and
/// the encoders' overlapping windows on both sides (two frames each).
const MIN_GAP: u64 = 8 * FRAME;

/// Samples written to a file as 16-bit little-endian PCM.
pub(crate) struct RawSink {
    pub(crate) out: BufWriter<std::fs::File>,
    bytes: Vec<u8>,
}

impl RawSink {
    pub(crate) fn new(file: std::fs::File) -> Self {
        RawSink {
            out: BufWriter::with_capacity(1 << 20, file),
            bytes: Vec::new(),
        }
    }
}

impl Sink for RawSink {
    fn samples(&mut self, samples: &[i16]) -> Result<(), AudioError> {
        self.bytes.clear();
        for s in samples {
            self.bytes.extend_from_slice(&s.to_le_bytes());
        }
        self.out
            .write_all(&self.bytes)
            .map_err(|e| AudioError::Encode(format!("spilling the samples: {e}")))
    }
}

/// The silences between the pieces' audio that a span may be cut in: for each, the whole
/// frame nearest its middle.
fn cut_points(pieces: &[Piece<'_>], placement: &Placement) -> Vec<u64> {
    let mut sound: Vec<&Range<u64>> = pieces
        .iter()
        .zip(&placement.spans)
        .filter(|(p, s)| matches!(p, Piece::Audio { .. }) && s.end > s.start)
        .map(|(_, s)| s)
        .collect();
    sound.sort_by_key(|s| s.start);
    sound
        .windows(2)
        .filter_map(|w| {
            let (end, start) = (w[0].end, w[1].start);
            let cut = (end + start) / 2 / FRAME * FRAME;
            (start > end + MIN_GAP && cut >= end + 2 * FRAME && cut + 3 * FRAME <= start)
                .then_some(cut)
        })
        .collect()
}

/// The spans of `total` samples for `n` encoders: cut where the silences are nearest equal
/// shares, each span after the first starting one frame after its cut.
pub(crate) fn spans(pieces: &[Piece<'_>], placement: &Placement, n: usize) -> Vec<Range<u64>> {
    let total = placement.total_samples;
    let candidates = cut_points(pieces, placement);
    let mut cuts: Vec<u64> = Vec::new();
    for k in 1..n.max(1) as u64 {
        let share = total * k / n as u64;
        let best = candidates
            .iter()
            .copied()
            .filter(|&c| cuts.last().is_none_or(|&l| c > l))
            .min_by_key(|&c| c.abs_diff(share));
        cuts.extend(best);
    }
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for cut in cuts {
        out.push(from..cut);
        from = cut + FRAME;
    }
    out.push(from..total);
    out
}

/// Encodes each span of the samples in `raw` (16-bit mono at `rate`) into ADTS at once, each
/// by its own ffmpeg, and joins the streams into `out`.
pub(crate) fn encode(
    raw: &Path,
    spans: &[Range<u64>],
    (rate, kbps): (u32, u32),
    out: &mut std::fs::File,
    scratch: &Path,
) -> Result<(), AudioError> {
    let io = |e: std::io::Error| AudioError::Encode(format!("AAC encoding: {e}"));
    let parts: Vec<tempfile::NamedTempFile> = spans
        .iter()
        .map(|_| tempfile::Builder::new().suffix(".aac").tempfile_in(scratch))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    std::thread::scope(|scope| {
        let jobs: Vec<_> = spans
            .iter()
            .zip(&parts)
            .map(|(span, part)| {
                scope.spawn(move || encode_span(raw, span.clone(), (rate, kbps), part.path()))
            })
            .collect();
        jobs.into_iter()
            .map(|j| {
                j.join()
                    .unwrap_or_else(|_| Err(AudioError::Encode("an encoder thread failed".into())))
            })
            .collect::<Result<Vec<()>, AudioError>>()
    })?;
    for part in &parts {
        std::io::copy(&mut std::fs::File::open(part.path()).map_err(io)?, out).map_err(io)?;
    }
    out.flush().map_err(io)
}

/// One span into ADTS: ffmpeg fed from the file by this thread.
fn encode_span(
    raw: &Path,
    span: Range<u64>,
    (rate, kbps): (u32, u32),
    out: &Path,
) -> Result<(), AudioError> {
    let io = |e: std::io::Error| AudioError::Encode(format!("AAC encoding: {e}"));
    let rate_arg = rate.to_string();
    let kbps_arg = format!("{kbps}k");
    let mut args = words(&["-f", "s16le", "-ar", &rate_arg, "-ac", "1", "-i", "pipe:0"]);
    args.extend(words(&["-c:a", "aac", "-b:a", &kbps_arg, "-f", "adts"]));
    args.push(out.into());
    let (mut child, log) = spawn(&args, Stdio::piped())?;
    let fed = (|| {
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no standard input"))?;
        let mut file = std::fs::File::open(raw)?;
        file.seek(SeekFrom::Start(span.start * 2))?;
        std::io::copy(&mut file.take((span.end - span.start) * 2), &mut stdin)?;
        stdin.flush()
    })();
    if let Err(e) = fed {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io(e));
    }
    finish(child, log, "AAC encoding")
}
