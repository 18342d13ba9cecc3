//! The audiobook (ACX-style) checks of an output: RMS, peak, noise floor, room tone, format and
//! length, each pass or fail, per file when split; and their one-line summary.
//!
//! Not responsible for measuring (see `audio::loudness`).

use super::report::{Audiobook, AudiobookCheck, Report};
use crate::manifest::Job;

/// Checks a rendered output against ACX's requirements (their numbers are ACX's row in
/// `stores`): RMS -23 to -18 dB, true peak at most -3 dB, noise floor at most -60 dB, 0.5-1 s
/// of room tone at the head and 1-5 s at the tail, a 44.1 kHz constant-bitrate MP3 of at least
/// 192 kbps, at most 120 minutes per file. A split output is checked file by file, each result
/// in `outputs`; the whole passes when every file does.
pub(crate) fn audiobook(job: &Job, report: &mut Report) {
    if report.outputs.is_empty() {
        let Some(loudness) = report.loudness else {
            return;
        };
        report.audiobook = Some(audiobook_checks(
            job,
            &loudness,
            report.totals.audio_seconds,
        ));
        return;
    }
    let mut pass = true;
    for output in &mut report.outputs {
        if let Some(loudness) = output.loudness {
            let checks = audiobook_checks(job, &loudness, output.audio_seconds);
            pass &= checks.pass;
            output.audiobook = Some(checks);
        }
    }
    report.audiobook = Some(Audiobook {
        pass,
        checks: Vec::new(),
    });
}

/// One line on the audiobook checks: `audiobook: pass`, or which checks failed (and in which
/// chapter file).
pub(crate) fn audiobook_summary(report: &Report) -> Option<String> {
    let whole = report.audiobook.as_ref()?;
    if whole.pass {
        return Some("audiobook: pass".into());
    }
    let failed = |a: &Audiobook| {
        a.checks
            .iter()
            .filter(|c| !c.pass)
            .map(|c| format!("{} {} (want {})", c.check, c.value, c.want))
            .collect::<Vec<_>>()
    };
    let mut lines = failed(whole);
    for o in &report.outputs {
        if let Some(a) = &o.audiobook {
            lines.extend(failed(a).into_iter().map(|f| format!("{}: {f}", o.path)));
        }
    }
    Some(format!("audiobook: fail: {}", lines.join("; ")))
}

pub(crate) fn audiobook_checks(
    job: &Job,
    loudness: &crate::audio::Loudness,
    seconds: f64,
) -> Audiobook {
    use serde_json::json;
    let mp3 = job
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mp3"));
    let (rate, kbps) = match job.output_format.codec {
        crate::format::Codec::Mp3 { kbps } => (job.output_format.sample_rate, kbps),
        _ => (job.output_format.sample_rate, 0),
    };
    use crate::stores::{ACX, ACX_MAX_MINUTES, ACX_NOISE_FLOOR_DB, ACX_RMS_DB};
    let db = |v: f64| json!((v * 10.0).round() / 10.0);
    let rules = &ACX.checks;
    let within = |(low, high): (f64, f64), v: f64| (low..=high).contains(&v);
    let checks = vec![
        AudiobookCheck {
            check: "rms",
            value: db(loudness.rms_db),
            want: format!("{} to {} dB", ACX_RMS_DB.0, ACX_RMS_DB.1),
            pass: within(ACX_RMS_DB, loudness.rms_db),
        },
        AudiobookCheck {
            check: "peak",
            value: db(loudness.true_peak_dbtp),
            want: format!("at most {} dB", rules.peak_max_dbtp),
            pass: loudness.true_peak_dbtp <= rules.peak_max_dbtp,
        },
        AudiobookCheck {
            check: "noise_floor",
            value: db(loudness.noise_floor_db),
            want: format!("at most {ACX_NOISE_FLOOR_DB} dB"),
            pass: loudness.noise_floor_db <= ACX_NOISE_FLOOR_DB,
        },
        AudiobookCheck {
            check: "head_room_tone",
            value: json!(job.lead_in_ms as f64 / 1000.0),
            want: format!("{} to {} s (lead_in_ms)", rules.head_s.0, rules.head_s.1),
            pass: within(rules.head_s, job.lead_in_ms as f64 / 1000.0),
        },
        AudiobookCheck {
            check: "tail_room_tone",
            value: json!(job.tail_ms as f64 / 1000.0),
            want: format!("{} to {} s (tail_ms)", rules.tail_s.0, rules.tail_s.1),
            pass: within(rules.tail_s, job.tail_ms as f64 / 1000.0),
        },
        AudiobookCheck {
            check: "format",
            value: json!(format!(
                "{}{}",
                job.output_format,
                if mp3 { " as .mp3" } else { " as .wav" }
            )),
            want: format!(
                "constant-bitrate MP3, {} kHz, at least {} kbps",
                f64::from(ACX.sample_rate) / 1000.0,
                rules.min_kbps
            ),
            pass: mp3 && rate == ACX.sample_rate && kbps >= rules.min_kbps,
        },
        AudiobookCheck {
            check: "length",
            value: json!(((seconds / 60.0) * 10.0).round() / 10.0),
            want: format!("at most {ACX_MAX_MINUTES} minutes per file"),
            pass: seconds <= ACX_MAX_MINUTES * 60.0,
        },
    ];
    Audiobook {
        pass: checks.iter().all(|c| c.pass),
        checks,
    }
}
