//! `.mp3` output by frame copy (the default): the responses' frames as they are, never
//! re-encoded, and pauses as silent frames placed so the heard gaps are the manifest's.
//!
//! Not responsible for sample-exact joins (see `gapless`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::Path;

use super::Edit;
use super::gapless::mp3_kbps;
use super::loudness::Measure;
use super::tags::id3_tag;
use super::{AudioError, Piece, Placement, cancelled, read, silence_samples};
use crate::codec::{DECODER_DELAY, decode, frame_header, gapless_info, mp3_frames, silent_frame};
use crate::format::OutputFormat;

/// A response read for frame copying.
pub(crate) struct Frames {
    pub(crate) data: Vec<u8>,
    pub(crate) frames: Vec<Range<usize>>,
    pub(crate) samples_per_frame: u64,
    /// Where its own audio starts after its first frame's first sample, and how many samples
    /// of its last frames are not its audio, in the frame timeline (see [`write_mp3`]).
    pub(crate) delay: u64,
    pub(crate) padding: u64,
}

pub(crate) fn load_frames(path: &Path, format: OutputFormat) -> Result<Frames, AudioError> {
    let data = read(path)?;
    let (frames, header) = mp3_frames(&data)?;
    if header.sample_rate != format.sample_rate {
        return Err(AudioError::RateMismatch(
            "MP3",
            header.sample_rate,
            format.sample_rate,
        ));
    }
    let (delay, padding) = frames
        .first()
        .and_then(|f| gapless_info(&data[..f.start]))
        .unwrap_or((0, 0));
    Ok(Frames {
        samples_per_frame: u64::from(header.samples),
        delay,
        padding,
        frames,
        data,
    })
}

/// `.mp3` output by frame copy: the responses' frames as they are, pauses as silent frames.
///
/// In the frame timeline (frame `k` starts at sample `k × 1152`), a decoder gives out each
/// sample 529 samples late, and a LAME-tagged response's audio starts `delay` samples into its
/// frames and ends `padding` samples before their end. Its span in the placement is where its
/// audio is heard, and each pause is made of as many silent frames as bring the heard gap
/// (padding + silence + delay) nearest to the manifest's.
pub(crate) fn write_mp3(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    file: &File,
    output: &Path,
    options: &super::Options,
    measure: bool,
) -> Result<Placement, AudioError> {
    let (spec, cancel) = (&options.tags, options.cancel.as_deref());
    let kbps = mp3_kbps(format)?;
    let io = |source: std::io::Error| AudioError::Io {
        path: output.to_path_buf(),
        source,
    };
    let rate = format.sample_rate;
    let silent = silent_frame(rate, kbps)?;
    let mpeg1 = rate >= 32_000;
    // The tag's size does not depend on the times: write it now, rewrite it at the end.
    let tag = id3_tag(spec, rate, &Placement::default());
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(&tag).map_err(io)?;
    out.write_all(&crate::codec::mp3::info_frame(&silent, mpeg1, 0, 0))
        .map_err(io)?;
    let mut copier = Copier::new(out, output, format, silent, measure);
    copier.waveform = options.waveform;
    let mut ahead: Option<Frames> = None;
    for (i, piece) in pieces.iter().enumerate() {
        cancelled(cancel)?;
        match piece {
            Piece::Silence { ms } => {
                // How late the next piece's audio starts after its first frame starts.
                let next_delay = match pieces.get(i + 1) {
                    Some(Piece::Audio { path, .. }) => {
                        let next = load_frames(path, format)?;
                        let d = next.delay as i64 + DECODER_DELAY as i64;
                        ahead = Some(next);
                        d
                    }
                    // At the end, the decoder's last samples are heard too.
                    _ => 0,
                };
                copier.silence(*ms, next_delay)?;
            }
            Piece::Audio { path, segment } => {
                let response = match ahead.take() {
                    Some(r) => r,
                    None => load_frames(path, format)?,
                };
                copier.audio(&response, *segment)?;
            }
        }
        copier.placement.edits.push(Edit::default());
    }
    copier.finish(spec, tag.len(), mpeg1)
}

/// The state of a frame copy in progress: where it is in the frame timeline, what has been
/// written, and where the pieces landed.
struct Copier<'a> {
    out: BufWriter<&'a File>,
    output: &'a Path,
    format: OutputFormat,
    silent: Vec<u8>,
    /// Samples per frame.
    spf: u64,
    meter: Option<Measure>,
    placement: Placement,
    /// The frame timeline's position, in samples.
    at: u64,
    /// How far the previous piece's audio is heard past the end of its frames (negative: how
    /// long before their end it stops).
    overhang: i64,
    frames_written: u64,
    bytes_written: u64,
    /// Decode each response for its waveform too (otherwise only to measure it).
    waveform: bool,
}

impl<'a> Copier<'a> {
    fn new(
        out: BufWriter<&'a File>,
        output: &'a Path,
        format: OutputFormat,
        silent: Vec<u8>,
        measure: bool,
    ) -> Self {
        Copier {
            out,
            output,
            format,
            spf: u64::from(frame_header(&silent).map_or(1152, |h| h.samples)),
            bytes_written: silent.len() as u64,
            silent,
            meter: measure.then(|| Measure::new(format.sample_rate)),
            placement: Placement {
                sample_rate: format.sample_rate,
                method: super::Assembly::Copy,
                ..Placement::default()
            },
            at: 0,
            overhang: 0,
            frames_written: 0,
            waveform: false,
        }
    }

    fn io(&self, source: std::io::Error) -> AudioError {
        AudioError::Io {
            path: self.output.to_path_buf(),
            source,
        }
    }

    /// A pause of `ms` as silent frames; the next piece's audio starts `next_delay` samples
    /// after its first frame.
    fn silence(&mut self, ms: u64, next_delay: i64) -> Result<(), AudioError> {
        let spf = self.spf;
        let want = silence_samples(ms, self.format.sample_rate) as i64;
        let frames = ((want + self.overhang - next_delay + spf as i64 / 2).max(0) as u64) / spf;
        for _ in 0..frames {
            if let Err(e) = self.out.write_all(&self.silent) {
                return Err(self.io(e));
            }
        }
        if let Some(m) = &mut self.meter {
            m.silence(frames * spf);
        }
        self.placement.spans.push(self.at..self.at + frames * spf);
        self.placement.peaks.push(Vec::new());
        self.frames_written += frames;
        self.bytes_written += frames * self.silent.len() as u64;
        self.at += frames * spf;
        self.overhang = 0;
        Ok(())
    }

    /// Flushes the frames and rewrites the tag and the Info frame with the final times and
    /// counts (the tag keeps the `tag_len` it was written with).
    fn finish(
        self,
        spec: &crate::audio::tags::TagSpec,
        tag_len: usize,
        mpeg1: bool,
    ) -> Result<Placement, AudioError> {
        use std::io::{Seek, SeekFrom};
        let io = |source: std::io::Error| AudioError::Io {
            path: self.output.to_path_buf(),
            source,
        };
        let Copier {
            mut out,
            silent,
            mut placement,
            meter,
            at,
            frames_written,
            bytes_written,
            format,
            ..
        } = self;
        out.flush().map_err(io)?;
        let mut file = out.into_inner().map_err(|e| io(e.into_error()))?;
        placement.total_samples = at;
        placement.loudness = meter.map(Measure::finish);
        let final_tag = id3_tag(spec, format.sample_rate, &placement);
        debug_assert_eq!(final_tag.len(), tag_len);
        let info = crate::codec::mp3::info_frame(
            &silent,
            mpeg1,
            u32::try_from(frames_written).unwrap_or(u32::MAX),
            u32::try_from(bytes_written).unwrap_or(u32::MAX),
        );
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&final_tag).map_err(io)?;
        file.write_all(&info).map_err(io)?;
        Ok(placement)
    }

    /// A response's frames as they are; its span is where its audio is heard.
    fn audio(&mut self, response: &Frames, segment: usize) -> Result<(), AudioError> {
        // Decoded only for its waveform or its loudness: the frames themselves are copied.
        if self.waveform || self.meter.is_some() {
            let samples = decode(&response.data, self.format)?;
            let peaks = if self.waveform {
                super::peaks(&samples, self.format.sample_rate)
            } else {
                Vec::new()
            };
            self.placement.peaks.push(peaks);
            if let Some(m) = &mut self.meter {
                m.audio(segment, &samples);
            }
        } else {
            self.placement.peaks.push(Vec::new());
        }
        for range in &response.frames {
            if let Err(e) = self.out.write_all(&response.data[range.clone()]) {
                return Err(self.io(e));
            }
            self.bytes_written += range.len() as u64;
        }
        let length = response.frames.len() as u64 * response.samples_per_frame;
        let start = self.at + response.delay + DECODER_DELAY as u64;
        let end = (self.at + length + DECODER_DELAY as u64)
            .saturating_sub(response.padding)
            .max(start);
        self.placement.spans.push(start..end);
        self.frames_written += response.frames.len() as u64;
        self.at += length;
        self.overhang = end as i64 - self.at as i64;
        Ok(())
    }
}
