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
    #[error("MP3 encoding failed: {0}")]
    Encode(String),
    #[error("interrupted by a signal; the previous output is left as it was")]
    Interrupted,
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

/// The delay of the MP3 synthesis filterbank, in samples: what every decoder adds in front.
pub const DECODER_DELAY: usize = 529;

/// Whether the bytes before the first audio frame hold a Xing/Info frame with LAME's
/// extension (encoder delay and padding).
fn has_lame_tag(before_audio: &[u8]) -> bool {
    let info = before_audio
        .windows(4)
        .any(|w| w == b"Info" || w == b"Xing");
    info && before_audio
        .windows(4)
        .any(|w| w == b"LAME" || w == b"Lavc")
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
    /// A rendered response stored at this path, part of this segment (an index the caller
    /// chooses; consecutive pieces of one segment are measured together).
    Audio {
        path: &'a Path,
        segment: usize,
    },
}

/// Loudness figures of a stretch of audio.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Loudness {
    /// EBU R128 integrated loudness (LUFS); `None` when too short to gate (under 0.4 s).
    pub integrated_lufs: Option<f64>,
    /// Highest true peak (dBTP, 4x oversampled).
    pub true_peak_dbtp: f64,
    /// RMS level (dBFS).
    pub rms_db: f64,
    /// RMS of the quietest half second (dBFS): the noise floor.
    pub noise_floor_db: f64,
}

impl Default for Loudness {
    fn default() -> Self {
        Loudness {
            integrated_lufs: None,
            true_peak_dbtp: -200.0,
            rms_db: -200.0,
            noise_floor_db: -200.0,
        }
    }
}

/// An EBU R128 meter with an RMS accumulator.
struct Meter {
    ebu: ebur128::EbuR128,
    sum_squares: f64,
    count: u64,
    /// The current half-second window: its sum of squares and length, and the quietest
    /// complete window's mean square so far.
    window_sum: f64,
    window_len: u64,
    window_size: u64,
    quietest: Option<f64>,
}

impl Meter {
    fn new(rate: u32) -> Self {
        use ebur128::Mode;
        Meter {
            ebu: ebur128::EbuR128::new(1, rate, Mode::I | Mode::TRUE_PEAK | Mode::HISTOGRAM)
                .expect("mono at an API sample rate is a valid meter"),
            sum_squares: 0.0,
            count: 0,
            window_sum: 0.0,
            window_len: 0,
            window_size: u64::from(rate / 2).max(1),
            quietest: None,
        }
    }

    fn close_window(&mut self) {
        let mean = self.window_sum / self.window_size as f64;
        self.quietest = Some(self.quietest.map_or(mean, |q| q.min(mean)));
        self.window_sum = 0.0;
        self.window_len = 0;
    }

    fn add(&mut self, samples: &[i16]) {
        let _ = self.ebu.add_frames_i16(samples);
        for &s in samples {
            let square = f64::from(s) * f64::from(s);
            self.sum_squares += square;
            self.window_sum += square;
            self.window_len += 1;
            if self.window_len == self.window_size {
                self.close_window();
            }
        }
        self.count += samples.len() as u64;
    }

    fn add_silence(&mut self, n: u64) {
        const ZEROS: [i16; 4096] = [0; 4096];
        let mut left = n;
        while left > 0 {
            let k = left.min(ZEROS.len() as u64) as usize;
            let _ = self.ebu.add_frames_i16(&ZEROS[..k]);
            left -= k as u64;
        }
        let mut left = n;
        while left > 0 {
            let take = left.min(self.window_size - self.window_len);
            self.window_len += take;
            left -= take;
            if self.window_len == self.window_size {
                self.close_window();
            }
        }
        self.count += n;
    }

    fn finish(&self) -> Loudness {
        let db = |linear: f64| {
            if linear > 0.0 {
                20.0 * linear.log10()
            } else {
                -200.0
            }
        };
        let rms = (self.sum_squares / self.count.max(1) as f64).sqrt() / 32_768.0;
        // Audio shorter than one window: its own level is the floor.
        let quietest = self
            .quietest
            .unwrap_or(self.sum_squares / self.count.max(1) as f64);
        Loudness {
            integrated_lufs: self.ebu.loudness_global().ok().filter(|l| l.is_finite()),
            true_peak_dbtp: self.ebu.true_peak(0).map_or(-200.0, db).max(-200.0),
            rms_db: db(rms).max(-200.0),
            noise_floor_db: db(quietest.sqrt() / 32_768.0).max(-200.0),
        }
    }
}

/// Loudness measurement during assembly: the whole output and each segment.
struct Measure {
    whole: Meter,
    current: Option<(usize, Meter)>,
    segments: Vec<(usize, Loudness)>,
    rate: u32,
}

impl Measure {
    fn new(rate: u32) -> Self {
        Measure {
            whole: Meter::new(rate),
            current: None,
            segments: Vec::new(),
            rate,
        }
    }

    fn audio(&mut self, segment: usize, samples: &[i16]) {
        self.whole.add(samples);
        if self.current.as_ref().is_none_or(|(s, _)| *s != segment) {
            self.close();
            self.current = Some((segment, Meter::new(self.rate)));
        }
        if let Some((_, m)) = &mut self.current {
            m.add(samples);
        }
    }

    fn silence(&mut self, n: u64) {
        self.whole.add_silence(n);
    }

    fn close(&mut self) {
        if let Some((s, m)) = self.current.take() {
            self.segments.push((s, m.finish()));
        }
    }

    fn finish(mut self) -> Measured {
        self.close();
        Measured {
            whole: self.whole.finish(),
            segments: self.segments,
            gain_db: None,
        }
    }
}

/// The loudness of an assembled output.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub whole: Loudness,
    /// By the segment index given in [`Piece::Audio`].
    pub segments: Vec<(usize, Loudness)>,
    /// The gain applied to reach `--loudness-target` (dB), figures above include it.
    pub gain_db: Option<f64>,
}

impl Loudness {
    /// The same audio after a gain of `db`.
    fn gained(self, db: f64) -> Loudness {
        let up = |v: f64| if v <= -200.0 { v } else { v + db };
        Loudness {
            integrated_lufs: self.integrated_lufs.map(|l| l + db),
            true_peak_dbtp: up(self.true_peak_dbtp),
            rms_db: up(self.rms_db),
            noise_floor_db: up(self.noise_floor_db),
        }
    }
}

/// What assembly does besides joining: MP3 tags, loudness measurement and normalization.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub tags: crate::tags::TagSpec,
    /// Measure loudness into the placement.
    pub measure: bool,
    /// Scale a WAV output to this integrated loudness (LUFS), never above -1 dBTP.
    pub loudness_target: Option<f64>,
    /// Trim each response's leading and trailing silence.
    pub trim_silence: bool,
    /// For `.mp3` output: decode, join sample by sample and encode once, instead of copying
    /// the responses' frames. Implied by `trim_silence`.
    pub encode_mp3: bool,
    /// WAV data size above which the file is written as RF64; `None` is RIFF's limit (4 GiB).
    pub rf64_above_bytes: Option<u64>,
    /// Set by a signal: assembly stops at the next response and the output is left as it was.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

fn cancelled(cancel: Option<&std::sync::atomic::AtomicBool>) -> Result<(), AudioError> {
    match cancel {
        Some(c) if c.load(std::sync::atomic::Ordering::SeqCst) => Err(AudioError::Interrupted),
        _ => Ok(()),
    }
}

/// The highest true peak a normalized output may reach.
pub const NORMALIZE_CEILING_DBTP: f64 = -1.0;

/// The gain (dB) towards `target` LUFS that keeps the true peak under the ceiling.
fn normalizing_gain(target: f64, whole: &Loudness) -> Option<f64> {
    let integrated = whole.integrated_lufs?;
    Some((target - integrated).min(NORMALIZE_CEILING_DBTP - whole.true_peak_dbtp))
}

/// `sample × factor`, rounded and clipped to 16 bits.
fn scaled(sample: i16, factor: f64) -> i16 {
    (f64::from(sample) * factor)
        .round()
        .clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
}

/// Multiplies every sample of a finished WAV file by `10^(db/20)`, in place.
fn apply_gain(file: &File, db: f64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = file;
    let mut head = [0u8; 512];
    file.seek(SeekFrom::Start(0))?;
    let n = file.read(&mut head)?;
    let at = head[..n]
        .windows(4)
        .position(|w| w == b"data")
        .ok_or_else(|| std::io::Error::other("no data chunk"))?;
    // The data chunk is the file's last: its samples run to the end (RF64 or not).
    let start = (at + 8) as u64;
    let len = file.metadata()?.len().saturating_sub(start);
    let factor = 10f64.powf(db / 20.0);
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < len {
        let k = ((len - done) as usize).min(buf.len()) & !1;
        if k == 0 {
            break;
        }
        file.seek(SeekFrom::Start(start + done))?;
        file.read_exact(&mut buf[..k])?;
        for pair in buf[..k].chunks_exact_mut(2) {
            let s = scaled(i16::from_le_bytes([pair[0], pair[1]]), factor);
            pair.copy_from_slice(&s.to_le_bytes());
        }
        file.seek(SeekFrom::Start(start + done))?;
        file.write_all(&buf[..k])?;
        done += k as u64;
    }
    Ok(())
}

/// Where each piece landed in the output, in samples from the start.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    pub spans: Vec<Range<u64>>,
    /// For each piece, what was trimmed from it.
    pub edits: Vec<Edit>,
    /// How the file was made: `decode` (WAV), `copy` (MP3 frames copied) or `encode` (MP3
    /// encoded from the joined samples).
    pub method: &'static str,
    pub sample_rate: u32,
    pub total_samples: u64,
    /// Loudness, when it was measured.
    pub loudness: Option<Measured>,
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
    options: &Options,
) -> Result<Placement, AudioError> {
    let io = |source: std::io::Error| AudioError::Io {
        path: output.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(crate::files::parent_dir(output)).map_err(io)?;
    let temp = crate::files::temp_beside(output).map_err(io)?;
    let mp3_out = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mp3"));
    let measure = options.measure || options.loudness_target.is_some();
    let encode = options.encode_mp3 || options.trim_silence || options.loudness_target.is_some();
    let mut placement = if mp3_out && encode {
        write_mp3_encoded(pieces, format, temp.as_file(), output, options, measure)?
    } else if mp3_out {
        write_mp3(
            pieces,
            format,
            temp.as_file(),
            output,
            &options.tags,
            measure,
            options.cancel.as_deref(),
        )?
    } else {
        write_wav(pieces, format, temp.as_file(), output, options)?
    };
    if let (Some(target), false, Some(m)) = (
        options.loudness_target,
        mp3_out,
        placement.loudness.as_mut(),
    ) && let Some(gain) = normalizing_gain(target, &m.whole)
    {
        apply_gain(temp.as_file(), gain).map_err(io)?;
        m.whole = m.whole.gained(gain);
        for (_, l) in &mut m.segments {
            *l = l.gained(gain);
        }
        m.gain_db = Some(gain);
    }
    cancelled(options.cancel.as_deref())?;
    crate::files::commit(temp, output).map_err(io)?;
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

/// Where PCM assembly puts its samples: a WAV file, or the MP3 encoder.
trait Sink {
    fn samples(&mut self, samples: &[i16]) -> Result<(), AudioError>;
}

/// A 16-bit mono WAV written as it streams: a RIFF header with room for RF64's `ds64` chunk
/// (a `JUNK` chunk until then, as EBU Tech 3306 recommends), turned into RF64 at the end when
/// the data passes what RIFF's 32-bit sizes can hold.
struct WavSink<'a> {
    out: BufWriter<&'a File>,
    output: &'a Path,
    sample_rate: u32,
    data_bytes: u64,
    /// Data bytes above which the file becomes RF64.
    rf64_above: u64,
    /// The samples of one call as little-endian bytes, reused.
    bytes: Vec<u8>,
}

/// The header's length: RIFF/WAVE, the 28-byte JUNK (later ds64) chunk, fmt, data.
const WAV_HEADER_LEN: u64 = 12 + 8 + 28 + 8 + 16 + 8;

impl<'a> WavSink<'a> {
    fn new(file: &'a File, output: &'a Path, sample_rate: u32, rf64_above: u64) -> Self {
        WavSink {
            out: BufWriter::with_capacity(1 << 20, file),
            output,
            sample_rate,
            data_bytes: 0,
            rf64_above,
            bytes: Vec::new(),
        }
    }

    fn io(&self, source: std::io::Error) -> AudioError {
        AudioError::Io {
            path: self.output.to_path_buf(),
            source,
        }
    }

    /// The header for `data_bytes` of samples: RIFF, or RF64 when it passes the limit.
    fn header(&self) -> Vec<u8> {
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

    fn start(&mut self) -> Result<(), AudioError> {
        let header = self.header();
        let r = self.out.write_all(&header);
        r.map_err(|e| self.io(e))
    }

    /// Writes the final sizes into the header.
    fn finish(self) -> Result<bool, AudioError> {
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
        self.bytes.clear();
        self.bytes
            .extend(samples.iter().flat_map(|s| s.to_le_bytes()));
        let r = self.out.write_all(&self.bytes);
        r.map_err(|e| self.io(e))?;
        self.data_bytes += self.bytes.len() as u64;
        Ok(())
    }
}

/// MP3 output encoded once from the joined samples: an ID3 tag, LAME's tag frame, the frames.
struct LameSink<'a> {
    encoder: crate::encode::Mp3Encoder,
    out: BufWriter<&'a File>,
    buf: Vec<u8>,
    output: &'a Path,
}

impl LameSink<'_> {
    fn io(&self, source: std::io::Error) -> AudioError {
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

/// Level under which trimming counts audio as silence: -50 dBFS.
const TRIM_LEVEL: u16 = 104;
/// Level over which an edge of a response would click without a fade: -60 dBFS.
const CLICK_LEVEL: u16 = 33;
/// The length of a fade at a join.
const FADE_MS: u64 = 5;

/// What was done to one response's samples at assembly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Edit {
    /// Samples trimmed from the head (silence before the first audible sample).
    pub head: u64,
    /// Samples trimmed from the tail.
    pub tail: u64,
}

/// Trims a response's leading and trailing silence (keeping a fade's length around the
/// audible part) when `trim`, and fades in and out where an edge would otherwise click.
fn edit(samples: &mut Vec<i16>, rate: u32, trim: bool) -> Edit {
    let fade = (u64::from(rate) * FADE_MS / 1000) as usize;
    let mut done = Edit::default();
    if trim {
        let loud = |s: &i16| s.unsigned_abs() >= TRIM_LEVEL;
        match (
            samples.iter().position(loud),
            samples.iter().rposition(loud),
        ) {
            (Some(first), Some(last)) => {
                let end = (last + 1 + fade).min(samples.len());
                let start = first.saturating_sub(fade);
                done.tail = (samples.len() - end) as u64;
                done.head = start as u64;
                samples.truncate(end);
                samples.drain(..start);
            }
            _ => {
                done.head = samples.len() as u64;
                samples.clear();
            }
        }
    }
    let n = fade.min(samples.len() / 2);
    if n == 0 {
        return done;
    }
    // Next to silence, a first or last sample far from zero is a step: a click.
    let clicks = |s: i16| s.unsigned_abs() > CLICK_LEVEL;
    let gain = |i: usize| 0.5 - 0.5 * (std::f64::consts::PI * (i as f64 + 0.5) / n as f64).cos();
    let scale = |s: &mut i16, g: f64| *s = (f64::from(*s) * g).round() as i16;
    if done.head > 0 || clicks(samples[0]) {
        for (i, s) in samples[..n].iter_mut().enumerate() {
            scale(s, gain(i));
        }
    }
    let len = samples.len();
    if done.tail > 0 || clicks(samples[len - 1]) {
        for (i, s) in samples[len - n..].iter_mut().rev().enumerate() {
            scale(s, gain(i));
        }
    }
    done
}

/// Joins `pieces` sample by sample into `sink`: responses decoded (a batch at a time on every
/// core), edited (see [`edit`]), measured and written in order.
fn join_pcm(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    sink: &mut dyn Sink,
    measure: bool,
    trim: bool,
    gain_db: f64,
    cancel: Option<&std::sync::atomic::AtomicBool>,
) -> Result<Placement, AudioError> {
    let mut meter = measure.then(|| Measure::new(format.sample_rate));
    let mut placement = Placement {
        sample_rate: format.sample_rate,
        method: "decode",
        ..Placement::default()
    };
    let mut at = 0u64;
    // Decoding is the cost of PCM assembly; the batch bounds memory (one response per core).
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let mut index = 0;
    while index < pieces.len() {
        cancelled(cancel)?;
        if let Piece::Silence { ms } = &pieces[index] {
            let n = silence_samples(*ms, format.sample_rate);
            if let Some(m) = &mut meter {
                m.silence(n);
            }
            const ZEROS: [i16; 4096] = [0; 4096];
            let mut left = n;
            while left > 0 {
                let k = left.min(ZEROS.len() as u64);
                sink.samples(&ZEROS[..k as usize])?;
                left -= k;
            }
            placement.spans.push(at..at + n);
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
        let decoded: Vec<Result<(Vec<i16>, Edit), AudioError>> = std::thread::scope(|scope| {
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
                    h.join().unwrap_or_else(|_| {
                        Err(AudioError::Decode("decoder thread panicked".into()))
                    })
                })
                .collect()
        });
        for (&(_, segment), result) in batch.iter().zip(decoded) {
            let (samples, done) = result?;
            let end = at + samples.len() as u64;
            if let Some(m) = &mut meter {
                m.audio(segment, &samples);
            }
            sink.samples(&samples)?;
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

fn write_wav(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    file: &File,
    output: &Path,
    options: &Options,
) -> Result<Placement, AudioError> {
    let limit = options
        .rf64_above_bytes
        .unwrap_or(u64::from(u32::MAX) - WAV_HEADER_LEN);
    let mut sink = WavSink::new(file, output, format.sample_rate, limit);
    sink.start()?;
    let mut placement = join_pcm(
        pieces,
        format,
        &mut sink,
        options.measure || options.loudness_target.is_some(),
        options.trim_silence,
        0.0,
        options.cancel.as_deref(),
    )?;
    if sink.finish()? {
        placement.method = "decode (RF64)";
    }
    Ok(placement)
}

/// The bitrate of an `.mp3` output: its responses must be MP3.
fn mp3_kbps(format: OutputFormat) -> Result<u32, AudioError> {
    match format.codec {
        Codec::Mp3 { kbps } => Ok(kbps),
        _ => Err(AudioError::Unsupported(format!(
            "{format} as .mp3 output (the responses must be MP3)"
        ))),
    }
}

/// The ID3 tag of an MP3 output with its chapters placed by `placement`: each starts where its
/// first audio starts (the first at the very beginning) and runs to the next. Its size does
/// not depend on the times, so a tag made from an empty placement holds the place of the final
/// one while the audio is written.
fn id3_tag(spec: &crate::tags::TagSpec, rate: u32, placement: &Placement) -> Vec<u8> {
    let ms = |samples: u64| (samples * 1000 / u64::from(rate)).min(u64::from(u32::MAX)) as u32;
    let start = |i: usize| match i {
        0 => 0,
        _ => spec
            .chapters
            .get(i)
            .map_or(placement.total_samples, |(_, piece)| {
                placement
                    .spans
                    .get(*piece)
                    .map_or(placement.total_samples, |s| s.start)
            }),
    };
    let times: Vec<crate::tags::ChapterTime> = spec
        .chapters
        .iter()
        .enumerate()
        .map(|(i, (title, _))| crate::tags::ChapterTime {
            title: title.clone(),
            start_ms: ms(start(i)),
            end_ms: ms(start(i + 1)),
        })
        .collect();
    crate::tags::id3v2(spec, &times)
}

/// `.mp3` output encoded once from the joined, gapless samples.
fn write_mp3_encoded(
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
        encoder: crate::encode::Mp3Encoder::new(rate, kbps).map_err(AudioError::Encode)?,
        out,
        buf: Vec::new(),
        output,
    };
    // Normalizing needs the loudness first: a measuring pass, then the encoding pass with the
    // gain applied to every sample.
    let gain = match options.loudness_target {
        Some(target) => {
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
                options.cancel.as_deref(),
            )?;
            first
                .loudness
                .and_then(|m| normalizing_gain(target, &m.whole))
        }
        None => None,
    };
    let mut placement = join_pcm(
        pieces,
        format,
        &mut sink,
        measure,
        options.trim_silence,
        gain.unwrap_or(0.0),
        options.cancel.as_deref(),
    )?;
    if let Some(m) = &mut placement.loudness {
        m.gain_db = gain;
    }
    placement.method = "encode";
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

/// The encoder delay and padding LAME (or libavcodec) wrote into a stream's Info/Xing frame,
/// from the bytes before its first audio frame.
pub fn gapless_info(before_audio: &[u8]) -> Option<(u64, u64)> {
    let at = before_audio
        .windows(4)
        .position(|w| w == b"LAME" || w == b"Lavc")?;
    let b = before_audio.get(at + 21..at + 24)?;
    let delay = (u64::from(b[0]) << 4) | (u64::from(b[1]) >> 4);
    let padding = (u64::from(b[1] & 0x0F) << 8) | u64::from(b[2]);
    has_lame_tag(before_audio).then_some((delay, padding))
}

/// A response read for frame copying.
struct Frames {
    data: Vec<u8>,
    frames: Vec<Range<usize>>,
    samples_per_frame: u64,
    /// Where its own audio starts after its first frame's first sample, and how many samples
    /// of its last frames are not its audio, in the frame timeline (see [`write_mp3`]).
    delay: u64,
    padding: u64,
}

fn load_frames(path: &Path, format: OutputFormat) -> Result<Frames, AudioError> {
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
fn write_mp3(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    file: &File,
    output: &Path,
    spec: &crate::tags::TagSpec,
    measure: bool,
    cancel: Option<&std::sync::atomic::AtomicBool>,
) -> Result<Placement, AudioError> {
    use std::io::{Seek, SeekFrom};

    use crate::tags;

    let kbps = mp3_kbps(format)?;
    let io = |source: std::io::Error| AudioError::Io {
        path: output.to_path_buf(),
        source,
    };
    let rate = format.sample_rate;
    let mut meter = measure.then(|| Measure::new(rate));
    let silent = silent_frame(rate, kbps)?;
    let spf = u64::from(frame_header(&silent).map_or(1152, |h| h.samples));
    let mpeg1 = rate >= 32_000;
    // The tag's size does not depend on the times: write it now, rewrite it at the end.
    let tag = id3_tag(spec, rate, &Placement::default());
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(&tag).map_err(io)?;
    out.write_all(&tags::info_frame(&silent, mpeg1, 0, 0))
        .map_err(io)?;
    let mut frames_written = 0u64;
    let mut bytes_written = silent.len() as u64;
    let mut placement = Placement {
        sample_rate: rate,
        method: "copy",
        ..Placement::default()
    };
    let decoder_delay = DECODER_DELAY as i64;
    // How far the previous piece's audio is heard past the end of its frames (negative: how
    // long before their end it stops).
    let mut overhang = 0i64;
    let mut at = 0u64;
    let mut ahead: Option<Frames> = None;
    for (i, piece) in pieces.iter().enumerate() {
        cancelled(cancel)?;
        match piece {
            Piece::Silence { ms } => {
                // How late the next piece's audio starts after its first frame starts.
                let next_delay = match pieces.get(i + 1) {
                    Some(Piece::Audio { path, .. }) => {
                        let next = load_frames(path, format)?;
                        let d = next.delay as i64 + decoder_delay;
                        ahead = Some(next);
                        d
                    }
                    // At the end, the decoder's last samples are heard too.
                    _ => 0,
                };
                let want = silence_samples(*ms, rate) as i64;
                let frames = ((want + overhang - next_delay + spf as i64 / 2).max(0) as u64) / spf;
                for _ in 0..frames {
                    out.write_all(&silent).map_err(io)?;
                }
                if let Some(m) = &mut meter {
                    m.silence(frames * spf);
                }
                placement.spans.push(at..at + frames * spf);
                frames_written += frames;
                bytes_written += frames * silent.len() as u64;
                at += frames * spf;
                overhang = 0;
            }
            Piece::Audio { path, segment } => {
                let response = match ahead.take() {
                    Some(r) => r,
                    None => load_frames(path, format)?,
                };
                if let Some(m) = &mut meter {
                    m.audio(*segment, &decode(&response.data, format)?);
                }
                for range in &response.frames {
                    out.write_all(&response.data[range.clone()]).map_err(io)?;
                    bytes_written += range.len() as u64;
                }
                let length = response.frames.len() as u64 * response.samples_per_frame;
                let start = at + response.delay + DECODER_DELAY as u64;
                let end = (at + length + DECODER_DELAY as u64)
                    .saturating_sub(response.padding)
                    .max(start);
                placement.spans.push(start..end);
                frames_written += response.frames.len() as u64;
                at += length;
                overhang = end as i64 - at as i64;
            }
        }
        placement.edits.push(Edit::default());
    }
    out.flush().map_err(io)?;
    let mut file = out.into_inner().map_err(|e| io(e.into_error()))?;
    placement.total_samples = at;
    placement.loudness = meter.map(Measure::finish);

    let final_tag = id3_tag(spec, rate, &placement);
    debug_assert_eq!(final_tag.len(), tag.len());
    let info = tags::info_frame(
        &silent,
        mpeg1,
        frames_written.min(u64::from(u32::MAX)) as u32,
        bytes_written.min(u64::from(u32::MAX)) as u32,
    );
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&final_tag).map_err(io)?;
    file.write_all(&info).map_err(io)?;
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
    fn edits_trim_silence_and_fade_only_clicking_edges() {
        let rate = 24_000;
        let fade = 120; // 5 ms
        let tone = |n: usize| -> Vec<i16> {
            (0..n)
                .map(|i| if i % 2 == 0 { 4000 } else { -4000 })
                .collect()
        };
        // At rest at both ends: untouched.
        let mut quiet: Vec<i16> = [vec![0; 10], tone(1000), vec![0; 10]].concat();
        let before = quiet.clone();
        assert_eq!(edit(&mut quiet, rate, false), Edit::default());
        assert_eq!(quiet, before);
        // Starting and ending on a loud sample: faded in and out over 5 ms, the middle kept.
        let mut loud = tone(1000);
        edit(&mut loud, rate, false);
        assert_eq!(
            loud[0].unsigned_abs(),
            (4000.0 * gain_at(0, fade)).round() as u16
        );
        assert!(loud[999].unsigned_abs() < 100);
        assert_eq!(&loud[fade..1000 - fade], &tone(1000)[fade..1000 - fade]);
        // Trimmed: 5 ms kept before the first and after the last audible sample.
        let mut padded: Vec<i16> = [vec![3; 2400], tone(1000), vec![-5; 4800]].concat();
        let done = edit(&mut padded, rate, true);
        assert_eq!(
            done,
            Edit {
                head: 2400 - fade as u64,
                tail: 4800 - fade as u64
            }
        );
        assert_eq!(padded.len(), 1000 + 2 * fade);
        // All silence: nothing left.
        let mut silent = vec![50i16; 500];
        assert_eq!(edit(&mut silent, rate, true), Edit { head: 500, tail: 0 });
        assert!(silent.is_empty());
    }

    fn gain_at(i: usize, n: usize) -> f64 {
        0.5 - 0.5 * (std::f64::consts::PI * (i as f64 + 0.5) / n as f64).cos()
    }

    #[test]
    fn g711_known_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }
}
