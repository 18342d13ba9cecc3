//! Measuring a delivered file as the store will: its encoded bytes decoded by ffmpeg (as WAV
//! on a pipe, read a block at a time), then RMS, true peak, integrated loudness and the noise
//! floor over every channel, the silence at its head and tail, its length, sample rate and
//! channels; for MP3 every frame's bitrate read from its headers.
//!
//! Not responsible for what the figures must be (see `checks`).

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::output::report::Measured;
use crate::stores::Container;

/// A sample above this magnitude (-60 dBFS) is sound; below it, silence.
const SOUND: u16 = 33;

/// The figures of the file at `path`.
pub(super) fn measure(path: &Path, container: Container) -> Result<Measured, String> {
    let mut child = Command::new(crate::audio::ffmpeg::ffmpeg())
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-c:a", "pcm_s16le", "-f", "wav", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    let stdout = child.stdout.take().ok_or("ffmpeg gave no output")?;
    let read = read_all(BufReader::with_capacity(1 << 16, stdout));
    let status = child.wait().map_err(|e| e.to_string())?;
    let mut measured = read?;
    if !status.success() {
        return Err(format!("ffmpeg could not decode it ({status})"));
    }
    let (kbps, constant) = match container {
        Container::Mp3 => mp3_rates(path).map_err(|e| e.to_string())?,
        Container::M4a => {
            let bytes = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
            (
                bytes as f64 * 8.0 / measured.seconds.max(1e-9) / 1000.0,
                false,
            )
        }
    };
    measured.kbps = (kbps * 10.0).round() / 10.0;
    measured.constant_bitrate = constant;
    Ok(measured)
}

/// Reads a WAV stream's format and every sample into the meter.
fn read_all(mut input: impl Read) -> Result<Measured, String> {
    let (rate, channels) = wav_header(&mut input).map_err(|e| format!("decoded WAV: {e}"))?;
    let mut meter = Meter::new(rate, channels)?;
    let mut block = vec![0u8; 1 << 16];
    let mut carry: Vec<u8> = Vec::new();
    let frame_bytes = 2 * usize::from(channels);
    loop {
        let n = input.read(&mut block).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        carry.extend_from_slice(&block[..n]);
        let whole = carry.len() - carry.len() % frame_bytes;
        let samples: Vec<i16> = carry[..whole]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        meter.add(&samples);
        carry.drain(..whole);
    }
    Ok(meter.finish())
}

/// The sample rate and channels of a 16-bit PCM WAV stream, read up to its `data` chunk.
fn wav_header(input: &mut impl Read) -> Result<(u32, u16), String> {
    let mut riff = [0u8; 12];
    input.read_exact(&mut riff).map_err(|e| e.to_string())?;
    if &riff[..4] != b"RIFF" || &riff[8..] != b"WAVE" {
        return Err("not a RIFF WAVE stream".into());
    }
    let mut format = None;
    for _ in 0..16 {
        let mut head = [0u8; 8];
        input.read_exact(&mut head).map_err(|e| e.to_string())?;
        let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if &head[..4] == b"data" {
            return format.ok_or_else(|| "no fmt chunk before the data".to_string());
        }
        if size > 1 << 20 {
            return Err(format!("a {size}-byte chunk before the data"));
        }
        let mut body = vec![0u8; size as usize + (size as usize & 1)];
        input.read_exact(&mut body).map_err(|e| e.to_string())?;
        if &head[..4] == b"fmt " && body.len() >= 16 {
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            if bits != 16 || channels == 0 || rate == 0 {
                return Err(format!("{bits}-bit, {channels} channels at {rate} Hz"));
            }
            format = Some((rate, channels));
        }
    }
    Err("no data chunk among the first 16".into())
}

/// The meters of one file, over all its channels: the assembly's level meter (integrated
/// loudness, RMS, noise floor) with true peaks, and where sound starts and ends.
struct Meter {
    level: crate::audio::loudness::Meter,
    rate: u32,
    channels: usize,
    frames: u64,
    first_sound: Option<u64>,
    last_sound: Option<u64>,
}

impl Meter {
    fn new(rate: u32, channels: u16) -> Result<Meter, String> {
        use ebur128::Mode;
        let level = crate::audio::loudness::Meter::new(channels, rate, Mode::I | Mode::TRUE_PEAK)
            .map_err(|e| format!("{channels} channels at {rate} Hz: {e}"))?;
        Ok(Meter {
            level,
            rate,
            channels: usize::from(channels),
            frames: 0,
            first_sound: None,
            last_sound: None,
        })
    }

    /// Whole frames of interleaved samples.
    fn add(&mut self, samples: &[i16]) {
        self.level.add(samples);
        for frame in samples.chunks_exact(self.channels) {
            if frame.iter().any(|s| s.unsigned_abs() > SOUND) {
                self.first_sound.get_or_insert(self.frames);
                self.last_sound = Some(self.frames);
            }
            self.frames += 1;
        }
    }

    fn finish(&self) -> Measured {
        let round = |db: f64| (db * 100.0).round() / 100.0;
        let level = self.level.finish();
        let peak = (0..self.channels as u32)
            .filter_map(|c| self.level.ebu.true_peak(c).ok())
            .fold(0.0, f64::max);
        let rate = f64::from(self.rate);
        let seconds = self.frames as f64 / rate;
        let (head, tail) = match (self.first_sound, self.last_sound) {
            (Some(first), Some(last)) => {
                (first as f64 / rate, (self.frames - 1 - last) as f64 / rate)
            }
            _ => (seconds, seconds),
        };
        let round3 = |s: f64| (s * 1000.0).round() / 1000.0;
        Measured {
            seconds: round3(seconds),
            sample_rate: self.rate,
            channels: self.channels as u16,
            kbps: 0.0,
            constant_bitrate: false,
            rms_db: round(level.rms_db),
            true_peak_dbtp: round((20.0 * peak.max(1e-10).log10()).max(-200.0)),
            integrated_lufs: level.integrated_lufs.map(round),
            noise_floor_db: round(level.noise_floor_db),
            head_seconds: round3(head),
            tail_seconds: round3(tail),
        }
    }
}

/// The bitrate of an MP3's audio frames (its first if they differ) and whether every one
/// has it, the Xing/Info frame and the tags left out; read header by header.
fn mp3_rates(path: &Path) -> std::io::Result<(f64, bool)> {
    let mut file = BufReader::new(std::fs::File::open(path)?);
    let mut id3 = [0u8; 10];
    file.read_exact(&mut id3)?;
    if &id3[..3] == b"ID3" {
        let size = id3[6..10]
            .iter()
            .fold(0u64, |n, &b| (n << 7) | u64::from(b & 0x7f));
        let footer = if id3[5] & 0x10 != 0 { 10 } else { 0 };
        file.seek(SeekFrom::Start(10 + size + footer))?;
    } else {
        file.seek(SeekFrom::Start(0))?;
    }
    let (mut first, mut constant, mut frames) = (None, true, 0u64);
    loop {
        let mut head = [0u8; 4];
        if file.read_exact(&mut head).is_err() {
            break;
        }
        // Anything else (an ID3v1 tag at the end) ends the audio.
        let Some(header) = crate::codec::frame_header(&head) else {
            break;
        };
        let mut body = vec![0u8; header.len.saturating_sub(4)];
        if file.read_exact(&mut body).is_err() {
            break;
        }
        if frames == 0 && first.is_none() && is_info(&head, &body) {
            continue;
        }
        frames += 1;
        match first {
            None => first = Some(header.kbps),
            Some(k) if k != header.kbps => constant = false,
            Some(_) => {}
        }
    }
    Ok((f64::from(first.unwrap_or(0)), constant && frames > 0))
}

fn is_info(head: &[u8; 4], body: &[u8]) -> bool {
    let mut frame = head.to_vec();
    frame.extend_from_slice(&body[..body.len().min(60)]);
    crate::codec::mp3::is_info_frame(&frame)
}
