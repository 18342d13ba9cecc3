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

use super::AudioError;
use super::ffmpeg::{finish, spawn, words};
use super::pcm::{Sink, write_le};

/// Samples in an AAC frame, and the encoder's priming.
pub(crate) const FRAME: u64 = 1024;
/// How long a silence a span may be cut in, in frames: a frame of priming after the cut, and
/// the encoders' overlapping windows on both sides (two frames each).
const GAP_FRAMES: u64 = 6;
/// The least a span holds before it is cut at the next silence: long enough that the joins
/// are few, short enough that the encoders start soon after the join does.
const SPAN_SECONDS: u64 = 120;
/// A sample this close to zero is silence (narrate's pauses are zeros).
const QUIET: u16 = 1;

/// The spans handed to the encoders: (index, samples).
type Spans = std::sync::mpsc::Sender<(usize, Range<u64>)>;

/// The samples written to a file as 16-bit little-endian PCM and cut into spans in their
/// silences as they come, each span handed to the encoders once it is in the file.
pub(crate) struct SpanSink {
    out: BufWriter<std::fs::File>,
    bytes: Vec<u8>,
    /// Samples written, where the current span starts, where the current silence starts.
    at: u64,
    span_start: u64,
    quiet_since: Option<u64>,
    min_span: u64,
    spans: Spans,
    count: usize,
}

impl SpanSink {
    fn send(&mut self, span: Range<u64>) -> Result<(), AudioError> {
        self.out
            .flush()
            .map_err(|e| AudioError::Encode(format!("spilling the samples: {e}")))?;
        self.spans
            .send((self.count, span))
            .map_err(|_| AudioError::Encode("the AAC encoders stopped".into()))?;
        self.count += 1;
        Ok(())
    }

    /// The last span, to the end: how many spans there are.
    fn close(mut self) -> Result<usize, AudioError> {
        let last = self.span_start..self.at.max(self.span_start);
        self.send(last)?;
        Ok(self.count)
    }
}

impl Sink for SpanSink {
    fn samples(&mut self, samples: &[i16]) -> Result<(), AudioError> {
        write_le(&mut self.out, samples, &mut self.bytes)
            .map_err(|e| AudioError::Encode(format!("spilling the samples: {e}")))?;
        for s in samples {
            if s.unsigned_abs() > QUIET {
                self.quiet_since = None;
            } else if self.quiet_since.is_none() {
                self.quiet_since = Some(self.at);
            }
            self.at += 1;
            // Quiet for long enough, in a span long enough: cut two frames into the silence
            // (at a whole frame), and start the next span a frame later.
            if let Some(q) = self.quiet_since
                && self.at - q == GAP_FRAMES * FRAME
                && q - self.span_start >= self.min_span
            {
                let cut = (q + 2 * FRAME).div_ceil(FRAME) * FRAME;
                self.send(self.span_start..cut)?;
                self.span_start = cut + FRAME;
                self.quiet_since = None;
            }
        }
        Ok(())
    }
}

fn failed() -> AudioError {
    AudioError::Encode("an AAC encoder failed".into())
}

/// Joins the samples with `join` into `raw` while `n` encoders turn each span into ADTS as it
/// is cut; the streams joined end to end into `out`. `join` is given the sink. The spans'
/// streams are temporary files beside `output`.
pub(crate) fn encode<T: Send>(
    raw: &tempfile::NamedTempFile,
    (rate, kbps, n): (u32, u32, usize),
    out: &mut std::fs::File,
    output: &Path,
    join: impl FnOnce(&mut dyn Sink) -> Result<T, AudioError>,
) -> Result<T, AudioError> {
    let io = |e: std::io::Error| AudioError::Encode(format!("AAC encoding: {e}"));
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Range<u64>)>();
    let rx = std::sync::Mutex::new(rx);
    let parts = std::sync::Mutex::new(Vec::<(usize, tempfile::NamedTempFile)>::new());
    let mut sink = SpanSink {
        out: BufWriter::with_capacity(1 << 20, raw.reopen().map_err(io)?),
        bytes: Vec::new(),
        at: 0,
        span_start: 0,
        quiet_since: None,
        min_span: SPAN_SECONDS * u64::from(rate),
        spans: tx,
        count: 0,
    };
    let (joined, encoded) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..n.max(1))
            .map(|_| scope.spawn(|| encoder(raw.path(), (rate, kbps), output, &rx, &parts)))
            .collect();
        let joined = join(&mut sink).and_then(|t| sink.close().map(|count| (t, count)));
        // The sender is gone: the encoders finish what they hold and stop.
        // (The scope joins every encoder whatever the first one's result.)
        let encoded = workers
            .into_iter()
            .try_for_each(|w| w.join().unwrap_or_else(|_| Err(failed())));
        (joined, encoded)
    });
    let (value, count) = joined?;
    encoded?;
    let mut parts = parts.into_inner().map_err(|_| failed())?;
    parts.sort_by_key(|(i, _)| *i);
    if parts.len() != count {
        return Err(AudioError::Encode(format!(
            "{} of {count} spans encoded",
            parts.len()
        )));
    }
    for (_, part) in &parts {
        std::io::copy(&mut std::fs::File::open(part.path()).map_err(io)?, out).map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(value)
}

/// One encoder: spans taken in turn until there are no more.
fn encoder(
    raw: &Path,
    how: (u32, u32),
    output: &Path,
    spans: &std::sync::Mutex<std::sync::mpsc::Receiver<(usize, Range<u64>)>>,
    parts: &std::sync::Mutex<Vec<(usize, tempfile::NamedTempFile)>>,
) -> Result<(), AudioError> {
    loop {
        let next = spans.lock().map_err(|_| failed())?.recv();
        let Ok((index, span)) = next else {
            return Ok(());
        };
        let part = crate::files::temp_beside(output)
            .map_err(|e| AudioError::Encode(format!("AAC encoding: {e}")))?;
        encode_span(raw, span, how, part.path())?;
        parts.lock().map_err(|_| failed())?.push((index, part));
    }
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
    match (finish(child, log, "AAC encoding"), fed) {
        // ffmpeg's own word on why it stopped reading, when it failed.
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(io(e)),
        (Ok(()), Ok(())) => Ok(()),
    }
}
