//! Assembly: rendered responses decoded (or, for `.mp3` output, their frames copied) and written
//! in manifest order with the lead-in, pauses and tail, one response in memory at a time, to a
//! temporary file renamed into place when complete.
//!
//! Also the small codecs this needs: MP3 frame parsing and silent frames, G.711 decoding.
//! Not responsible for fetching audio (see `execute`) or for the emulator's encoder.

use std::fs::File;
use std::io::{BufWriter, Cursor, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::format::{Codec, OutputFormat};

/// Audio that cannot be decoded or written.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("not an MP3 stream: {0}")]
    BadMp3(String),
    #[error("MP3 decoding failed: {0}")]
    Decode(String),
    #[error("bad WAV data: {0}")]
    BadWav(String),
    #[error("{0} audio has a sample rate of {1} Hz, expected {2} Hz")]
    RateMismatch(&'static str, u32, u32),
    #[error("cannot decode {0} audio")]
    Unsupported(String),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One MP3 frame header, as far as assembly needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub sample_rate: u32,
    pub kbps: u32,
    /// 1152 for MPEG-1, 576 for MPEG-2/2.5 Layer III.
    pub samples: u32,
    pub len: usize,
}

const MPEG1_KBPS: [u32; 15] = [
    0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
const MPEG2_KBPS: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

/// Parses a Layer III frame header at the start of `b`.
pub fn frame_header(b: &[u8]) -> Option<FrameHeader> {
    if b.len() < 4 || b[0] != 0xFF || b[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (b[1] >> 3) & 0b11; // 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
    let layer = (b[1] >> 1) & 0b11; // 1 = Layer III
    if version == 1 || layer != 1 {
        return None;
    }
    let bitrate_index = (b[2] >> 4) as usize;
    let rate_index = ((b[2] >> 2) & 0b11) as usize;
    let padding = ((b[2] >> 1) & 1) as usize;
    if bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    let (kbps, sample_rate, samples, coeff) = match version {
        3 => (
            MPEG1_KBPS[bitrate_index],
            [44_100, 48_000, 32_000][rate_index],
            1152,
            144_000,
        ),
        2 => (
            MPEG2_KBPS[bitrate_index],
            [22_050, 24_000, 16_000][rate_index],
            576,
            72_000,
        ),
        _ => (
            MPEG2_KBPS[bitrate_index],
            [11_025, 12_000, 8_000][rate_index],
            576,
            72_000,
        ),
    };
    let len = (coeff * kbps / sample_rate) as usize + padding;
    Some(FrameHeader {
        sample_rate,
        kbps,
        samples,
        len,
    })
}

/// The byte ranges of the audio frames of an MP3 stream: an ID3v2 tag, a Xing/Info/VBRI frame
/// and a trailing ID3v1 tag are skipped. Errors when no frame is found.
pub fn mp3_frames(data: &[u8]) -> Result<(Vec<Range<usize>>, FrameHeader), AudioError> {
    let mut pos = 0;
    if data.len() >= 10 && &data[..3] == b"ID3" {
        let size = data[6..10]
            .iter()
            .fold(0usize, |acc, &b| (acc << 7) | (b & 0x7F) as usize);
        let footer = if data[5] & 0x10 != 0 { 10 } else { 0 };
        pos = 10 + size + footer;
    }
    let mut frames = Vec::new();
    let mut first: Option<FrameHeader> = None;
    while pos < data.len() {
        if data.len() - pos >= 3 && &data[pos..pos + 3] == b"TAG" && data.len() - pos == 128 {
            break;
        }
        let Some(h) = frame_header(&data[pos..]) else {
            if frames.is_empty() && pos < data.len().min(4096) {
                pos += 1; // resynchronise within the first bytes
                continue;
            }
            return Err(AudioError::BadMp3(format!("no frame sync at byte {pos}")));
        };
        if pos + h.len > data.len() {
            return Err(AudioError::BadMp3(format!(
                "last frame cut short at byte {pos} ({} of {} bytes)",
                data.len() - pos,
                h.len
            )));
        }
        let frame = &data[pos..pos + h.len];
        if frames.is_empty() && first.is_none() && is_info_frame(frame) {
            first = Some(h);
            pos += h.len;
            continue;
        }
        if let Some(f) = first
            && (f.sample_rate != h.sample_rate)
        {
            return Err(AudioError::BadMp3("sample rate changes mid-stream".into()));
        }
        first = Some(h);
        frames.push(pos..pos + h.len);
        pos += h.len;
    }
    match (frames.is_empty(), first) {
        (false, Some(h)) => Ok((frames, h)),
        _ => Err(AudioError::BadMp3("no MP3 frames".into())),
    }
}

fn is_info_frame(frame: &[u8]) -> bool {
    let window = &frame[..frame.len().min(64)];
    window
        .windows(4)
        .any(|w| w == b"Xing" || w == b"Info" || w == b"VBRI")
}

/// One mono Layer III frame that decodes to silence: a header and all-zero side information
/// (no main data), as long as a frame of `kbps` at `sample_rate`.
pub fn silent_frame(sample_rate: u32, kbps: u32) -> Result<Vec<u8>, AudioError> {
    let (mpeg1, rates, table, coeff) = if sample_rate >= 32_000 {
        (true, [44_100, 48_000, 32_000], &MPEG1_KBPS, 144_000)
    } else {
        (false, [22_050, 24_000, 16_000], &MPEG2_KBPS, 72_000)
    };
    let rate_index = rates
        .iter()
        .position(|&r| r == sample_rate)
        .ok_or_else(|| AudioError::BadMp3(format!("no MP3 frame at {sample_rate} Hz")))?;
    let bitrate_index = table
        .iter()
        .position(|&k| k == kbps && k != 0)
        .ok_or_else(|| AudioError::BadMp3(format!("no MP3 bitrate of {kbps} kbps")))?;
    let len = (coeff * kbps / sample_rate) as usize;
    let mut frame = vec![0u8; len];
    frame[0] = 0xFF;
    frame[1] = if mpeg1 { 0xFB } else { 0xF3 };
    frame[2] = ((bitrate_index as u8) << 4) | ((rate_index as u8) << 2);
    frame[3] = 0xC0; // mono
    Ok(frame)
}

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

fn decode_mp3(data: &[u8], expected_rate: u32) -> Result<Vec<i16>, AudioError> {
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::formats::{FormatOptions, TrackType};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;

    // Validate framing first: symphonia skips junk silently, narrate wants to know.
    let (_, header) = mp3_frames(data)?;
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
    Ok(out)
}

/// G.711 mu-law to 16-bit linear.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0F;
    let magnitude = ((((mantissa as i32) << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// G.711 A-law to 16-bit linear.
pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let sign = a & 0x80;
    let exponent = (a >> 4) & 0x07;
    let mantissa = (a & 0x0F) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

/// One item of the output, in order.
#[derive(Clone, Debug)]
pub enum Piece<'a> {
    Silence {
        ms: u64,
    },
    /// A rendered response stored at this path.
    Audio {
        path: &'a Path,
    },
}

/// Where each piece landed in the output, in samples from the start.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    pub spans: Vec<Range<u64>>,
    pub sample_rate: u32,
    pub total_samples: u64,
}

impl Placement {
    pub fn seconds(&self, sample: u64) -> f64 {
        sample as f64 / f64::from(self.sample_rate)
    }
}

/// Writes `pieces` to `output` (`.wav` or `.mp3`): via a temporary file in the same directory,
/// renamed into place only when complete.
pub fn assemble(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    output: &Path,
) -> Result<Placement, AudioError> {
    let io = |source: std::io::Error| AudioError::Io {
        path: output.to_path_buf(),
        source,
    };
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let temp = tempfile::Builder::new()
        .prefix(".narrate-")
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(io)?;
    let mp3_out = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mp3"));
    let placement = if mp3_out {
        write_mp3(pieces, format, temp.as_file(), output)?
    } else {
        write_wav(pieces, format, temp.as_file(), output)?
    };
    temp.as_file().sync_all().map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Temporary files are private; the output is an ordinary file.
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(io)?;
    }
    temp.persist(output).map_err(|e| io(e.error))?;
    Ok(placement)
}

fn silence_samples(ms: u64, rate: u32) -> u64 {
    (ms * u64::from(rate) + 500) / 1000
}

fn read(path: &Path) -> Result<Vec<u8>, AudioError> {
    std::fs::read(path).map_err(|source| AudioError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_wav(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    file: &File,
    output: &Path,
) -> Result<Placement, AudioError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: format.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let werr = |e: hound::Error| AudioError::Io {
        path: output.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    };
    let mut writer = hound::WavWriter::new(BufWriter::new(file), spec).map_err(werr)?;
    let mut placement = Placement {
        sample_rate: format.sample_rate,
        ..Placement::default()
    };
    let mut at = 0u64;
    for piece in pieces {
        let start = at;
        match piece {
            Piece::Silence { ms } => {
                let n = silence_samples(*ms, format.sample_rate);
                let mut zeros = writer.get_i16_writer(n as u32);
                for _ in 0..n {
                    zeros.write_sample(0);
                }
                zeros.flush().map_err(werr)?;
                at += n;
            }
            Piece::Audio { path } => {
                let samples = decode(&read(path)?, format)?;
                let mut w = writer.get_i16_writer(samples.len() as u32);
                for s in &samples {
                    w.write_sample(*s);
                }
                w.flush().map_err(werr)?;
                at += samples.len() as u64;
            }
        }
        placement.spans.push(start..at);
    }
    writer.finalize().map_err(werr)?;
    placement.total_samples = at;
    Ok(placement)
}

fn write_mp3(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    file: &File,
    output: &Path,
) -> Result<Placement, AudioError> {
    let Codec::Mp3 { kbps } = format.codec else {
        return Err(AudioError::Unsupported(format!(
            "{format} as .mp3 output (frames are copied, so the responses must be MP3)"
        )));
    };
    let io = |source: std::io::Error| AudioError::Io {
        path: output.to_path_buf(),
        source,
    };
    let silent = silent_frame(format.sample_rate, kbps)?;
    let spf = u64::from(frame_header(&silent).map_or(1152, |h| h.samples));
    let mut out = BufWriter::new(file);
    let mut placement = Placement {
        sample_rate: format.sample_rate,
        ..Placement::default()
    };
    let mut at = 0u64;
    for piece in pieces {
        let start = at;
        match piece {
            Piece::Silence { ms } => {
                let frames = (silence_samples(*ms, format.sample_rate) + spf / 2) / spf;
                for _ in 0..frames {
                    out.write_all(&silent).map_err(io)?;
                }
                at += frames * spf;
            }
            Piece::Audio { path } => {
                let data = read(path)?;
                let (frames, header) = mp3_frames(&data)?;
                if header.sample_rate != format.sample_rate {
                    return Err(AudioError::RateMismatch(
                        "MP3",
                        header.sample_rate,
                        format.sample_rate,
                    ));
                }
                for range in &frames {
                    out.write_all(&data[range.clone()]).map_err(io)?;
                }
                at += frames.len() as u64 * u64::from(header.samples);
            }
        }
        placement.spans.push(start..at);
    }
    out.flush().map_err(io)?;
    placement.total_samples = at;
    Ok(placement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_frames_parse_as_frames() {
        for (rate, kbps, spf) in [
            (44_100, 128, 1152),
            (22_050, 32, 576),
            (24_000, 48, 576),
            (44_100, 192, 1152),
        ] {
            let f = silent_frame(rate, kbps).unwrap();
            let h = frame_header(&f).unwrap();
            assert_eq!(
                (h.sample_rate, h.kbps, h.samples, h.len),
                (rate, kbps, spf, f.len())
            );
        }
    }

    #[test]
    fn g711_known_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }
}
