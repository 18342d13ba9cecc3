//! WAV output: a 16-bit mono RIFF file written as it streams, which becomes RF64 (with the
//! `ds64` chunk in the room a JUNK chunk kept for it) past 4 GiB.
//!
//! Not responsible for the samples (see `pcm`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::pcm::{Sink, join_pcm, write_le};
use super::{AudioError, Options, Piece, Placement};
use crate::format::OutputFormat;

/// A 16-bit mono WAV written as it streams: a RIFF header with room for RF64's `ds64` chunk
/// (a `JUNK` chunk until then, as EBU Tech 3306 recommends), turned into RF64 at the end when
/// the data passes what RIFF's 32-bit sizes can hold.
pub(crate) struct WavSink<'a> {
    pub(crate) out: BufWriter<&'a File>,
    pub(crate) output: &'a Path,
    pub(crate) sample_rate: u32,
    pub(crate) data_bytes: u64,
    /// Data bytes above which the file becomes RF64.
    pub(crate) rf64_above: u64,
    /// The samples of one call as little-endian bytes, reused.
    pub(crate) bytes: Vec<u8>,
}

/// The header's length: RIFF/WAVE, the 28-byte JUNK (later ds64) chunk, fmt, data.
pub(crate) const WAV_HEADER_LEN: u64 = 12 + 8 + 28 + 8 + 16 + 8;

/// The most data a RIFF file holds: its size field (the file's length less 8) is 32 bits.
pub(crate) const RIFF_MAX_DATA: u64 = u32::MAX as u64 - WAV_HEADER_LEN;

impl<'a> WavSink<'a> {
    pub(crate) fn new(file: &'a File, output: &'a Path, sample_rate: u32, rf64_above: u64) -> Self {
        WavSink {
            out: BufWriter::with_capacity(1 << 20, file),
            output,
            sample_rate,
            data_bytes: 0,
            rf64_above,
            bytes: Vec::new(),
        }
    }

    pub(crate) fn io(&self, source: std::io::Error) -> AudioError {
        AudioError::Io {
            path: self.output.to_path_buf(),
            source,
        }
    }

    /// The header for `data_bytes` of samples: RIFF, or RF64 when it passes the limit.
    pub(crate) fn header(&self) -> Vec<u8> {
        let rf64 = self.data_bytes > self.rf64_above;
        let riff_size = WAV_HEADER_LEN - 8 + self.data_bytes;
        let mut h = Vec::with_capacity(WAV_HEADER_LEN as usize);
        let size32 = |n: u64| if rf64 { u32::MAX } else { n as u32 };
        h.extend_from_slice(if rf64 { b"RF64" } else { b"RIFF" });
        h.extend_from_slice(&size32(riff_size).to_le_bytes());
        h.extend_from_slice(b"WAVE");
        h.extend_from_slice(if rf64 { b"ds64" } else { b"JUNK" });
        h.extend_from_slice(&28u32.to_le_bytes());
        if rf64 {
            h.extend_from_slice(&riff_size.to_le_bytes());
            h.extend_from_slice(&self.data_bytes.to_le_bytes());
            h.extend_from_slice(&(self.data_bytes / 2).to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes()); // no table of other chunk sizes
        } else {
            h.extend_from_slice(&[0; 28]);
        }
        h.extend_from_slice(b"fmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes()); // PCM
        h.extend_from_slice(&1u16.to_le_bytes()); // mono
        h.extend_from_slice(&self.sample_rate.to_le_bytes());
        h.extend_from_slice(&(self.sample_rate * 2).to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes()); // block align
        h.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
        h.extend_from_slice(b"data");
        h.extend_from_slice(&size32(self.data_bytes).to_le_bytes());
        h
    }

    pub(crate) fn start(&mut self) -> Result<(), AudioError> {
        let header = self.header();
        let r = self.out.write_all(&header);
        r.map_err(|e| self.io(e))
    }

    /// Writes the final sizes into the header.
    pub(crate) fn finish(self) -> Result<bool, AudioError> {
        use std::io::{Seek, SeekFrom};
        let header = self.header();
        let rf64 = self.data_bytes > self.rf64_above;
        let output = self.output;
        let io = |source| AudioError::Io {
            path: output.to_path_buf(),
            source,
        };
        let mut file = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&header).map_err(io)?;
        Ok(rf64)
    }
}

impl Sink for WavSink<'_> {
    fn samples(&mut self, samples: &[i16]) -> Result<(), AudioError> {
        let r = write_le(&mut self.out, samples, &mut self.bytes);
        r.map_err(|e| self.io(e))?;
        self.data_bytes += 2 * samples.len() as u64;
        Ok(())
    }
}

pub(crate) fn write_wav(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    file: &File,
    output: &Path,
    options: &Options,
) -> Result<Placement, AudioError> {
    let limit = options.rf64_above_bytes.unwrap_or(RIFF_MAX_DATA);
    let mut sink = WavSink::new(file, output, format.sample_rate, limit);
    sink.start()?;
    let mut placement = join_pcm(
        pieces,
        format,
        &mut sink,
        options.measure || options.loudness_target.is_some(),
        options.trim_silence,
        0.0,
        options,
    )?;
    if sink.finish()? {
        placement.method = super::Assembly::DecodeRf64;
    }
    Ok(placement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(h: &[u8], at: usize) -> u64 {
        u64::from(u32::from_le_bytes(h[at..at + 4].try_into().unwrap()))
    }

    fn u64_at(h: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(h[at..at + 8].try_into().unwrap())
    }

    /// The real threshold, judged by the layouts of RIFF (sizes in 32 bits: the RIFF size is the
    /// file's length less 8) and of RF64 (EBU Tech 3306: 0xFFFFFFFF in those fields, the true
    /// sizes in `ds64`), not by writing 4 GiB.
    #[test]
    fn riff_up_to_four_gib_and_rf64_past_it() {
        let file = tempfile::tempfile().unwrap();
        let path = Path::new("x.wav");
        let mut sink = WavSink::new(&file, path, 44_100, RIFF_MAX_DATA);
        sink.data_bytes = RIFF_MAX_DATA;
        let h = sink.header();
        assert_eq!(h.len() as u64, WAV_HEADER_LEN);
        assert_eq!(&h[..4], b"RIFF");
        assert_eq!(u32_at(&h, 4), WAV_HEADER_LEN + RIFF_MAX_DATA - 8);
        assert_eq!(
            u32_at(&h, 4),
            u64::from(u32::MAX) - 8,
            "the largest RIFF file"
        );
        assert_eq!(u32_at(&h, h.len() - 4), RIFF_MAX_DATA);

        for data in [RIFF_MAX_DATA + 2, 5_000_000_000, 40_000_000_000] {
            sink.data_bytes = data;
            let h = sink.header();
            assert_eq!(&h[..4], b"RF64");
            assert_eq!(u32_at(&h, 4), u64::from(u32::MAX));
            assert_eq!(&h[12..16], b"ds64");
            assert_eq!(u64_at(&h, 20), WAV_HEADER_LEN + data - 8, "RIFF size");
            assert_eq!(u64_at(&h, 28), data, "data size");
            assert_eq!(u64_at(&h, 36), data / 2, "samples");
            assert_eq!(u32_at(&h, h.len() - 4), u64::from(u32::MAX));
        }
    }
}
