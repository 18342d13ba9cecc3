//! Loudness: EBU R128 integrated loudness, true peak and RMS of each segment and of the whole
//! output (through `ebur128`), and the gain that brings an output to a target.
//!
//! Not responsible for the audiobook checks built on these numbers (see `output::audiobook`).

use std::fs::File;
use std::io::Write;

/// Loudness figures of a stretch of audio.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
pub(crate) struct Meter {
    pub(crate) ebu: ebur128::EbuR128,
    pub(crate) sum_squares: f64,
    pub(crate) count: u64,
    /// The current half-second window: its sum of squares and length, and the quietest
    /// complete window's mean square so far.
    pub(crate) window_sum: f64,
    pub(crate) window_len: u64,
    pub(crate) window_size: u64,
    pub(crate) quietest: Option<f64>,
}

impl Meter {
    /// Integrated loudness and levels, no true peak (it reads as -200 dBTP; see `true_peaks`).
    fn without_true_peak(rate: u32) -> Self {
        use ebur128::Mode;
        Meter::new(1, rate, Mode::I | Mode::HISTOGRAM)
            .expect("mono at an API sample rate is a valid meter")
    }

    /// A meter of `channels` interleaved channels measuring `mode` with `ebu` (its RMS and
    /// noise floor over every channel: a half-second window is half a second of frames).
    pub(crate) fn new(
        channels: u16,
        rate: u32,
        mode: ebur128::Mode,
    ) -> Result<Self, ebur128::Error> {
        Ok(Meter {
            ebu: ebur128::EbuR128::new(u32::from(channels), rate, mode)?,
            sum_squares: 0.0,
            count: 0,
            window_sum: 0.0,
            window_len: 0,
            window_size: (u64::from(rate / 2) * u64::from(channels)).max(1),
            quietest: None,
        })
    }

    pub(crate) fn close_window(&mut self) {
        let mean = self.window_sum / self.window_size as f64;
        self.quietest = Some(self.quietest.map_or(mean, |q| q.min(mean)));
        self.window_sum = 0.0;
        self.window_len = 0;
    }

    pub(crate) fn add(&mut self, samples: &[i16]) {
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

    pub(crate) fn add_silence(&mut self, n: u64) {
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

    pub(crate) fn finish(&self) -> Loudness {
        let rms = (self.sum_squares / self.count.max(1) as f64).sqrt() / 32_768.0;
        // Audio shorter than one window: its own level is the floor.
        let quietest = self
            .quietest
            .unwrap_or(self.sum_squares / self.count.max(1) as f64);
        Loudness {
            integrated_lufs: self.ebu.loudness_global().ok().filter(|l| l.is_finite()),
            // The true-peak scanner's (see `true_peaks`).
            true_peak_dbtp: -200.0,
            rms_db: db(rms),
            noise_floor_db: db(quietest.sqrt() / 32_768.0),
        }
    }
}

/// What a meter thread is fed: audio (with the segment it belongs to) or silence.
enum Feed {
    Audio(usize, std::sync::Arc<[i16]>),
    Silence(u64),
}

/// A meter fed on a thread of its own through a short queue (a few chunks in hand at most:
/// memory stays flat), so that decoding, the segments' meters and the whole output's meter
/// run at once. The figures are the same as measured in line.
struct MeterThread<T> {
    feed: Option<std::sync::mpsc::SyncSender<Feed>>,
    worker: Option<std::thread::JoinHandle<T>>,
}

impl<T: Send + Default + 'static> MeterThread<T> {
    fn spawn(work: impl FnOnce(std::sync::mpsc::Receiver<Feed>) -> T + Send + 'static) -> Self {
        let (feed, fed) = std::sync::mpsc::sync_channel::<Feed>(8);
        MeterThread {
            feed: Some(feed),
            worker: Some(std::thread::spawn(move || work(fed))),
        }
    }

    fn send(&self, f: Feed) {
        if let Some(feed) = &self.feed {
            let _ = feed.send(f);
        }
    }

    fn finish(mut self) -> T {
        drop(self.feed.take());
        self.worker
            .take()
            .and_then(|w| w.join().ok())
            .unwrap_or_default()
    }
}

/// The whole output's meter: integrated loudness, RMS and noise floor (its true peak is the
/// peak thread's).
fn whole_meter(rate: u32, fed: std::sync::mpsc::Receiver<Feed>) -> Loudness {
    let mut meter = Meter::without_true_peak(rate);
    for f in fed {
        match f {
            Feed::Audio(_, samples) => meter.add(&samples),
            Feed::Silence(n) => meter.add_silence(n),
        }
    }
    meter.finish()
}

/// Each segment's meter in turn (a segment's audio comes in one or more chunks in a row),
/// without true peak (the peak thread's).
fn segment_meters(rate: u32, fed: std::sync::mpsc::Receiver<Feed>) -> Vec<(usize, Loudness)> {
    let mut done = Vec::new();
    let mut current: Option<(usize, Meter)> = None;
    for f in fed {
        let Feed::Audio(segment, samples) = f else {
            continue;
        };
        if current.as_ref().is_none_or(|(s, _)| *s != segment) {
            done.extend(current.take().map(|(s, m)| (s, m.finish())));
            current = Some((segment, Meter::without_true_peak(rate)));
        }
        if let Some((_, m)) = &mut current {
            m.add(&samples);
        }
    }
    done.extend(current.map(|(s, m)| (s, m.finish())));
    done
}

/// True peaks (the 4x oversampling costs as much as both loudness meters): one interpolator
/// over the whole output, each chunk's peak given to the segment it belongs to. A silence's is
/// the interpolator's tail of the audio before it, so it goes to that audio's segment.
#[derive(Default)]
struct Peaks {
    whole: f64,
    segments: Vec<(usize, f64)>,
}

fn true_peaks(rate: u32, fed: std::sync::mpsc::Receiver<Feed>) -> Peaks {
    const ZEROS: [i16; 4096] = [0; 4096];
    let Ok(mut meter) = ebur128::EbuR128::new(1, rate, ebur128::Mode::TRUE_PEAK) else {
        return Peaks::default();
    };
    let mut segments: Vec<(usize, f64)> = Vec::new();
    for f in fed {
        let segment = match &f {
            // The interpolator's memory is a few samples: a longer silence adds nothing more.
            Feed::Silence(n) => meter
                .add_frames_i16(&ZEROS[..usize::try_from(*n).unwrap_or(4096).min(4096)])
                .ok()
                .and(segments.last().map(|(s, _)| *s)),
            Feed::Audio(segment, samples) => meter.add_frames_i16(samples).ok().map(|()| *segment),
        };
        let (Some(segment), Ok(peak)) = (segment, meter.prev_true_peak(0)) else {
            continue;
        };
        match segments.last_mut() {
            Some((s, p)) if *s == segment => *p = p.max(peak),
            _ => segments.push((segment, peak)),
        }
    }
    Peaks {
        whole: meter.true_peak(0).unwrap_or(0.0),
        segments,
    }
}

/// Loudness measurement during assembly: the whole output, each segment and the true peaks,
/// each on a thread of its own.
pub(crate) struct Measure {
    whole: MeterThread<Loudness>,
    segments: MeterThread<Vec<(usize, Loudness)>>,
    peaks: MeterThread<Peaks>,
}

/// A linear level (of full scale) in dB, -200 for silence.
fn db(linear: f64) -> f64 {
    if linear > 0.0 {
        (20.0 * linear.log10()).max(-200.0)
    } else {
        -200.0
    }
}

impl Measure {
    pub(crate) fn new(rate: u32) -> Self {
        Measure {
            whole: MeterThread::spawn(move |fed| whole_meter(rate, fed)),
            segments: MeterThread::spawn(move |fed| segment_meters(rate, fed)),
            peaks: MeterThread::spawn(move |fed| true_peaks(rate, fed)),
        }
    }

    /// `samples` of `segment`, handed on in chunks of a few seconds: the queues hold little.
    pub(crate) fn audio(&mut self, segment: usize, samples: &[i16]) {
        for chunk in samples.chunks(1 << 16) {
            let shared: std::sync::Arc<[i16]> = chunk.into();
            self.whole.send(Feed::Audio(segment, shared.clone()));
            self.segments.send(Feed::Audio(segment, shared.clone()));
            self.peaks.send(Feed::Audio(segment, shared));
        }
    }

    pub(crate) fn silence(&mut self, n: u64) {
        self.whole.send(Feed::Silence(n));
        self.peaks.send(Feed::Silence(n));
    }

    pub(crate) fn finish(self) -> Measured {
        let mut segments = self.segments.finish();
        let peaks = self.peaks.finish();
        let mut whole = self.whole.finish();
        whole.true_peak_dbtp = db(peaks.whole);
        let by_segment: std::collections::HashMap<usize, f64> =
            peaks.segments.into_iter().collect();
        for (s, l) in &mut segments {
            l.true_peak_dbtp = by_segment.get(s).map_or(-200.0, |p| db(*p));
        }
        Measured {
            whole,
            segments,
            gain_db: None,
        }
    }
}

/// The loudness of an assembled output.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Measured {
    pub whole: Loudness,
    /// By the segment index given in `Piece::Audio`.
    pub segments: Vec<(usize, Loudness)>,
    /// The gain applied to reach `--loudness-target` (dB), figures above include it.
    pub gain_db: Option<f64>,
}

impl Measured {
    /// The same figures after a gain of `db` (the gain itself is the caller's to record).
    pub(crate) fn gained(&self, db: f64) -> Measured {
        Measured {
            whole: self.whole.gained(db),
            segments: self
                .segments
                .iter()
                .map(|(s, l)| (*s, l.gained(db)))
                .collect(),
            gain_db: self.gain_db,
        }
    }
}

impl Loudness {
    /// The same audio after a gain of `db`.
    pub(crate) fn gained(self, db: f64) -> Loudness {
        let up = |v: f64| if v <= -200.0 { v } else { v + db };
        Loudness {
            integrated_lufs: self.integrated_lufs.map(|l| l + db),
            true_peak_dbtp: up(self.true_peak_dbtp),
            rms_db: up(self.rms_db),
            noise_floor_db: up(self.noise_floor_db),
        }
    }
}

/// The highest true peak a normalized output may reach.
pub(crate) const NORMALIZE_CEILING_DBTP: f64 = -1.0;

/// The gain (dB) towards `target` LUFS that keeps the true peak under the ceiling.
pub(crate) fn normalizing_gain(target: f64, ceiling: Option<f64>, whole: &Loudness) -> Option<f64> {
    let integrated = whole.integrated_lufs?;
    let ceiling = ceiling.unwrap_or(NORMALIZE_CEILING_DBTP);
    Some((target - integrated).min(ceiling - whole.true_peak_dbtp))
}

/// `sample × factor`, rounded and clipped to 16 bits.
pub(crate) fn scaled(sample: i16, factor: f64) -> i16 {
    (f64::from(sample) * factor)
        .round()
        .clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
}

/// Multiplies every sample of a finished WAV file by `10^(db/20)`, in place.
pub(crate) fn apply_gain(file: &File, db: f64) -> std::io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_equal_channels_measure_as_one_and_a_window_is_half_a_second_of_frames() {
        let rate = 16_000;
        // A quarter second quiet, a quarter loud, over and over: every half second holds both,
        // so a shorter window would find a quieter floor.
        let mono: Vec<i16> = (0..3 * rate)
            .map(|i| {
                let amplitude = if (i / (rate / 4)) % 2 == 0 {
                    10.0
                } else {
                    3000.0
                };
                (amplitude * (f64::from(i) * 0.3).sin()) as i16
            })
            .collect();
        let stereo: Vec<i16> = mono.iter().flat_map(|&s| [s, s]).collect();
        let mut one = Meter::new(1, rate, ebur128::Mode::I).unwrap();
        one.add(&mono);
        let mut two = Meter::new(2, rate, ebur128::Mode::I).unwrap();
        two.add(&stereo);
        let (one, two) = (one.finish(), two.finish());
        assert!((one.rms_db - two.rms_db).abs() < 1e-9);
        assert!((one.noise_floor_db - two.noise_floor_db).abs() < 1e-9);
        assert!(one.noise_floor_db > one.rms_db - 4.0, "{one:?}");
    }

    #[test]
    fn the_noise_floor_is_the_quietest_half_second_of_the_audio() {
        let rate = 16_000;
        // Loud, quiet, loud, a second each: two half-second windows hold only the quiet sine.
        let mut samples = sine(rate, 1.0, 440.0, 0.5);
        samples.extend(sine(rate, 1.0, 440.0, 0.002));
        samples.extend(sine(rate, 1.0, 440.0, 0.5));
        let mut meter = Meter::new(1, rate, ebur128::Mode::I).unwrap();
        meter.add(&samples);
        let heard = meter.finish();
        let quiet = sine_db(0.002);
        assert!(
            (heard.noise_floor_db - quiet).abs() < 0.5,
            "noise floor {} dB, the quiet sine's {quiet}",
            heard.noise_floor_db
        );
        // Shorter than one window: its own level is the floor.
        let mut short = Meter::new(1, rate, ebur128::Mode::I).unwrap();
        short.add(&sine(rate, 0.25, 440.0, 0.5));
        let heard = short.finish();
        let level = sine_db(0.5);
        assert!(
            (heard.noise_floor_db - level).abs() < 0.05,
            "noise floor {} dB of a quarter second at {level}",
            heard.noise_floor_db
        );
    }

    #[test]
    fn silence_halves_the_mean_square_and_is_the_floor() {
        let rate = 16_000;
        let mut meter = Meter::new(1, rate, ebur128::Mode::I).unwrap();
        meter.add(&sine(rate, 1.0, 440.0, 0.5));
        meter.add_silence(u64::from(rate));
        let heard = meter.finish();
        // As many silent samples as sounding ones: half the sine's mean square, 3 dB down.
        let expected = sine_db(0.5) - 10.0 * 2f64.log10();
        assert!(
            (heard.rms_db - expected).abs() < 0.05,
            "RMS {} dB, expected {expected}",
            heard.rms_db
        );
        assert_eq!(
            heard.noise_floor_db, -200.0,
            "a silent half second is the floor"
        );
    }

    /// The RMS level (dB) of a sine of `amplitude`: its amplitude over the square root of two.
    fn sine_db(amplitude: f64) -> f64 {
        20.0 * (amplitude / std::f64::consts::SQRT_2).log10()
    }

    /// `seconds` of a sine at `freq` Hz and `amplitude` (of full scale).
    fn sine(rate: u32, seconds: f64, freq: f64, amplitude: f64) -> Vec<i16> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (amplitude * 32_767.0 * (std::f64::consts::TAU * freq * t).sin()).round() as i16
            })
            .collect()
    }

    /// The true peak of `samples` alone, by a meter of their own (dBTP).
    fn alone(rate: u32, samples: &[i16]) -> f64 {
        let mut m = ebur128::EbuR128::new(1, rate, ebur128::Mode::TRUE_PEAK).unwrap();
        m.add_frames_i16(samples).unwrap();
        20.0 * m.true_peak(0).unwrap().log10()
    }

    #[test]
    fn each_segment_has_its_own_true_peak_and_the_whole_the_highest() {
        let rate = 44_100;
        // Loud, quiet, loudest: each longer than a chunk, with pauses between.
        let segments = [
            sine(rate, 3.0, 997.0, 0.5),
            sine(rate, 2.0, 440.0, 0.05),
            sine(rate, 1.5, 5_512.5, 0.9),
        ];
        let mut measure = Measure::new(rate);
        for (i, s) in segments.iter().enumerate() {
            measure.audio(i, s);
            measure.silence(u64::from(rate));
        }
        let measured = measure.finish();
        assert_eq!(measured.segments.len(), 3);
        for (i, s) in segments.iter().enumerate() {
            let (index, l) = measured.segments[i];
            assert_eq!(index, i);
            let theirs = alone(rate, s);
            assert!(
                (l.true_peak_dbtp - theirs).abs() < 0.05,
                "segment {i}: {} dBTP, alone {theirs}",
                l.true_peak_dbtp
            );
        }
        for (i, amplitude) in [0.5, 0.05, 0.9].into_iter().enumerate() {
            let expected = sine_db(amplitude);
            let rms = measured.segments[i].1.rms_db;
            assert!(
                (rms - expected).abs() < 0.05,
                "segment {i}: RMS {rms} dB, a sine's {expected}"
            );
        }
        let highest = segments
            .iter()
            .map(|s| alone(rate, s))
            .fold(f64::MIN, f64::max);
        assert!((measured.whole.true_peak_dbtp - highest).abs() < 0.05);
        // The loudness meters are the same as measuring each segment alone.
        let mut quiet = Meter::without_true_peak(rate);
        quiet.add(&segments[1]);
        assert_eq!(
            measured.segments[1].1.integrated_lufs,
            quiet.finish().integrated_lufs
        );
    }
}
