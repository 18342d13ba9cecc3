//! A store's rules held against the figures measured on one delivered file: each rule the
//! store has, passed or failed, with the figure and what the store wants.
//!
//! Not responsible for measuring (see `measure`) or for the rules' numbers (see `stores`).

use serde_json::json;

use crate::output::report::{Check, Measured};
use crate::stores::{Store, Window};

/// Every rule of `store` on the file measured as `m`.
pub(crate) fn checks(store: &Store, m: &Measured) -> Vec<Check> {
    let rules = &store.checks;
    let mut out = Vec::new();
    let within = |(low, high): Window, v: f64| (low..=high).contains(&v);
    if let Some(w) = rules.rms_db {
        out.push(check(
            "rms",
            json!(m.rms_db),
            db_window(w, "dB"),
            within(w, m.rms_db),
        ));
    }
    if let Some(w) = rules.lufs {
        let pass = m.integrated_lufs.is_some_and(|l| within(w, l));
        out.push(check(
            "loudness",
            json!(m.integrated_lufs),
            db_window(w, "LUFS"),
            pass,
        ));
    }
    out.push(check(
        "peak",
        json!(m.true_peak_dbtp),
        format!("at most {} dBTP", rules.peak_max_dbtp),
        m.true_peak_dbtp <= rules.peak_max_dbtp,
    ));
    if let Some(max) = rules.noise_floor_max_db {
        out.push(check(
            "noise_floor",
            json!(m.noise_floor_db),
            format!("at most {max} dB"),
            m.noise_floor_db <= max,
        ));
    }
    let seconds = |(low, high): Window| format!("{low} to {high} s");
    out.push(check(
        "head_room_tone",
        json!(m.head_seconds),
        seconds(rules.head_s),
        within(rules.head_s, m.head_seconds),
    ));
    out.push(check(
        "tail_room_tone",
        json!(m.tail_seconds),
        seconds(rules.tail_s),
        within(rules.tail_s, m.tail_seconds),
    ));
    if let Some(max) = rules.max_minutes {
        let minutes = (m.seconds / 60.0 * 100.0).round() / 100.0;
        out.push(check(
            "length",
            json!(minutes),
            format!("at most {max} minutes"),
            m.seconds <= max * 60.0,
        ));
    }
    out.extend(format_checks(store, m));
    out
}

/// The rules on what the file is: sample rate, channels, bitrate and its mode.
fn format_checks(store: &Store, m: &Measured) -> Vec<Check> {
    let rules = &store.checks;
    let mut out = vec![
        check(
            "sample_rate",
            json!(m.sample_rate),
            format!("{} Hz", store.sample_rate),
            m.sample_rate == store.sample_rate,
        ),
        check(
            "channels",
            json!(m.channels),
            format!("{}", store.channels),
            m.channels == store.channels,
        ),
        check(
            "bitrate",
            json!(m.kbps),
            format!("at least {} kbps", rules.min_kbps),
            m.kbps >= f64::from(rules.min_kbps),
        ),
    ];
    if rules.constant_bitrate {
        out.push(check(
            "constant_bitrate",
            json!(m.constant_bitrate),
            "every frame at one bitrate".into(),
            m.constant_bitrate,
        ));
    }
    out
}

fn check(check: &str, value: serde_json::Value, want: String, pass: bool) -> Check {
    Check {
        check: check.to_string(),
        value,
        want,
        pass,
    }
}

fn db_window((low, high): Window, unit: &str) -> String {
    format!("{low} to {high} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passing() -> Measured {
        Measured {
            seconds: 600.0,
            sample_rate: 44_100,
            channels: 1,
            kbps: 192.0,
            constant_bitrate: true,
            rms_db: -20.0,
            true_peak_dbtp: -4.0,
            integrated_lufs: Some(-19.0),
            noise_floor_db: -90.0,
            head_seconds: 0.7,
            tail_seconds: 2.5,
        }
    }

    fn failed(m: &Measured) -> Vec<String> {
        let acx = crate::stores::store("acx").unwrap();
        checks(acx, m)
            .into_iter()
            .filter(|c| !c.pass)
            .map(|c| c.check)
            .collect()
    }

    #[test]
    fn each_acx_rule_fails_alone_at_its_edge() {
        assert!(failed(&passing()).is_empty());
        type Change = fn(&mut Measured);
        let cases: [(&str, Change); 11] = [
            ("rms", |m| m.rms_db = -23.1),
            ("rms", |m| m.rms_db = -17.9),
            ("peak", |m| m.true_peak_dbtp = -2.9),
            ("noise_floor", |m| m.noise_floor_db = -59.9),
            ("head_room_tone", |m| m.head_seconds = 0.4),
            ("tail_room_tone", |m| m.tail_seconds = 5.1),
            ("length", |m| m.seconds = 7200.5),
            ("sample_rate", |m| m.sample_rate = 48_000),
            ("channels", |m| m.channels = 2),
            ("bitrate", |m| m.kbps = 160.0),
            ("constant_bitrate", |m| m.constant_bitrate = false),
        ];
        for (rule, change) in cases {
            let mut m = passing();
            change(&mut m);
            assert_eq!(failed(&m), [rule], "{rule}");
        }
        // The edges themselves pass.
        let edges = Measured {
            rms_db: -18.0,
            true_peak_dbtp: -3.0,
            noise_floor_db: -60.0,
            head_seconds: 1.0,
            tail_seconds: 1.0,
            seconds: 7200.0,
            ..passing()
        };
        assert!(failed(&edges).is_empty());
    }

    #[test]
    fn the_podcast_is_held_to_loudness_not_rms() {
        let podcast = crate::stores::store("podcast").unwrap();
        let m = Measured {
            rms_db: -30.0,
            integrated_lufs: Some(-16.2),
            true_peak_dbtp: -1.2,
            kbps: 128.0,
            ..passing()
        };
        assert!(checks(podcast, &m).iter().all(|c| c.pass));
        let quiet = Measured {
            integrated_lufs: Some(-17.5),
            ..m
        };
        let failed: Vec<_> = checks(podcast, &quiet)
            .into_iter()
            .filter(|c| !c.pass)
            .collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].check, "loudness");
    }
}
