//! Editing one response's samples: trimming leading and trailing silence (`trim_silence`) and
//! short fades where a response would start or stop with a click.
//!
//! Not responsible for where the samples go (see `pcm`).

/// Level under which trimming counts audio as silence: -50 dBFS.
pub(crate) const TRIM_LEVEL: u16 = 104;

/// Level over which an edge of a response would click without a fade: -60 dBFS.
pub(crate) const CLICK_LEVEL: u16 = 33;

/// The length of a fade at a join.
pub(crate) const FADE_MS: u64 = 5;

/// What was done to one response's samples at assembly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Edit {
    /// Samples trimmed from the head (silence before the first audible sample).
    pub head: u64,
    /// Samples trimmed from the tail.
    pub tail: u64,
}

/// Trims a response's leading and trailing silence (keeping a fade's length around the
/// audible part) when `trim`, and fades in and out where an edge would otherwise click.
pub(crate) fn edit(samples: &mut Vec<i16>, rate: u32, trim: bool) -> Edit {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
