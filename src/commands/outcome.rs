//! What a nightly job's scheduler and monitoring read of a render: the run's summary (one JSON
//! object, the last line of a `--log-format json` log and `--summary-json PATH`), the
//! Prometheus text exposition for node_exporter's textfile collector (`--metrics-textfile
//! PATH`), and the pings of a dead-man's switch (`--notify-url URL`).
//!
//! Not responsible for the reports (see `output::report`) or the exit statuses (see `error`).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::summary::Rendered;
use crate::cli::config::Outcomes;
use crate::error;
use crate::output::report::{self, Status};

/// How long a ping may take; it never holds the exit longer.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest earlier summary or metrics file read back (to know it is one, and for the
/// last success times a metrics file keeps).
const MAX_RUN_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The name of an exit status, for the summary and the pings.
fn status_name(code: u8, nothing_to_do: Option<u8>) -> &'static str {
    match code {
        error::EXIT_OK => "ok",
        c if Some(c) == nothing_to_do => "nothing_to_do",
        error::EXIT_FAILED => "failed",
        error::EXIT_USAGE => "usage",
        error::EXIT_BUDGET => "budget",
        error::EXIT_DEADLINE => "deadline",
        error::EXIT_LOCKED => "locked",
        error::EXIT_INTERRUPTED => "interrupted",
        _ => "failed",
    }
}

/// The run's summary: its exit status, what each manifest did and the totals.
pub(crate) fn summary(
    rendered: &[Rendered],
    code: u8,
    nothing_to_do: Option<u8>,
    error: Option<&anyhow::Error>,
    started: SystemTime,
) -> Value {
    let manifests: Vec<Value> = rendered
        .iter()
        .map(|r| {
            let t = &r.report.totals;
            json!({
                "manifest": r.report.manifest,
                "output": r.report.output,
                "report": r.report_paths.0.display().to_string(),
                "status": r.report.status,
                "stopped_by": r.report.stopped_by,
                "interrupted": r.report.interrupted,
                "segments": t.segments,
                "failed": r.report.failed_segments(),
                "requests": t.requests,
                "cache_hits": t.cache_hits,
                "retries": t.retries,
                "recovered": t.recovered,
                "characters": t.characters,
                "credits": t.credits,
                "audio_seconds": t.audio_seconds,
                "wall_seconds": r.report.wall_seconds,
            })
        })
        .collect();
    let count = |f: fn(&Rendered) -> usize| rendered.iter().map(f).sum::<usize>();
    let finished = SystemTime::now();
    json!({
        "event": "summary",
        "exit_status": code,
        "status": status_name(code, nothing_to_do),
        "error": error.map(|e| format!("{e:#}")),
        "started_at": crate::output::time::rfc3339(started),
        "finished_at": crate::output::time::rfc3339(finished),
        "seconds": finished.duration_since(started).map_or(0.0, |d| d.as_secs_f64()),
        "segments": count(|r| r.report.totals.segments),
        "failed": count(|r| r.report.failed_segments()),
        "requests": count(|r| r.report.totals.requests),
        "credits": rendered.iter().fold(0.0, |sum, r| sum + r.report.totals.credits),
        "manifests": manifests,
    })
}

/// A label value in the exposition format: backslash, double quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The last success time of each manifest in an earlier metrics file, by escaped label.
fn earlier_successes(path: &Path) -> Vec<(String, String)> {
    let Ok(text) = crate::files::read_text(path, MAX_RUN_FILE_BYTES) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.strip_prefix("narrate_last_success_timestamp_seconds{manifest=\""))
        .filter_map(|rest| {
            let (name, value) = rest.rsplit_once("\"} ")?;
            value.trim().parse::<f64>().ok()?;
            Some((name.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// The metrics of a run in the Prometheus text exposition format (all gauges: the values of
/// the last run), with each manifest's last success time kept from `earlier` when this run did
/// not succeed.
pub(crate) fn metrics(rendered: &[Rendered], code: u8, earlier: &[(String, String)]) -> String {
    let now = crate::execute::unix_now();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    gauge(
        "narrate_exit_status",
        "The exit status of the last run.",
        vec![(String::new(), code.to_string())],
    );
    gauge(
        "narrate_last_run_timestamp_seconds",
        "When the last run ended, in seconds since the Unix epoch.",
        vec![(String::new(), format!("{now:.3}"))],
    );
    let m = |r: &Rendered| format!("manifest=\"{}\"", label(&r.report.manifest));
    let mut successes: Vec<(String, String)> = earlier
        .iter()
        .filter(|(name, _)| {
            !rendered
                .iter()
                .any(|r| r.report.status == Status::Ok && label(&r.report.manifest) == *name)
        })
        .map(|(name, value)| (format!("{{manifest=\"{name}\"}}"), value.clone()))
        .collect();
    successes.extend(
        rendered
            .iter()
            .filter(|r| r.report.status == Status::Ok)
            .map(|r| (format!("{{{}}}", m(r)), format!("{now:.3}"))),
    );
    gauge(
        "narrate_last_success_timestamp_seconds",
        "When a run last rendered the manifest whole, in seconds since the Unix epoch.",
        successes,
    );
    let segments = rendered
        .iter()
        .flat_map(|r| {
            let failed = r.report.failed_segments();
            let ok = r.report.totals.segments - failed;
            [
                (format!("{{{},status=\"ok\"}}", m(r)), ok.to_string()),
                (
                    format!("{{{},status=\"failed\"}}", m(r)),
                    failed.to_string(),
                ),
            ]
        })
        .collect();
    gauge(
        "narrate_segments",
        "Segments of the last run, by status.",
        segments,
    );
    for (name, help, figure) in FIGURES {
        let rows = rendered
            .iter()
            .map(|r| (format!("{{{}}}", m(r)), figure(&r.report)))
            .collect();
        gauge(name, help, rows);
    }
    out
}

/// A figure of a manifest's report, as the exposition writes it.
type Figure = fn(&report::Report) -> String;

/// The per-manifest gauges besides the segments: name, help, figure.
const FIGURES: [(&str, &str, Figure); 8] = [
    ("narrate_requests", "Requests of the last run.", |r| {
        r.totals.requests.to_string()
    }),
    (
        "narrate_cache_hits",
        "Requests of the last run served from the cache.",
        |r| r.totals.cache_hits.to_string(),
    ),
    (
        "narrate_retries",
        "Retried attempts in the last run.",
        |r| r.totals.retries.to_string(),
    ),
    (
        "narrate_recovered",
        "Requests of the last run whose audio was recovered from the speech history.",
        |r| r.totals.recovered.to_string(),
    ),
    ("narrate_credits", "Credits charged in the last run.", |r| {
        r.totals.credits.to_string()
    }),
    (
        "narrate_characters",
        "Characters sent in the last run.",
        |r| r.totals.characters.to_string(),
    ),
    (
        "narrate_audio_seconds",
        "Seconds of audio in the last run's output.",
        |r| r.totals.audio_seconds.to_string(),
    ),
    ("narrate_wall_seconds", "How long the last run took.", |r| {
        r.wall_seconds.to_string()
    }),
];

impl Outcomes {
    /// Pings `URL/start` when the job starts.
    pub(crate) async fn started(&self) {
        if let Some(url) = &self.notify_url {
            ping(&format!("{url}/start"), String::new()).await;
        }
    }

    /// Writes the summary and the metrics, and pings the end: `URL` on success (or nothing to
    /// do), `URL/<status>` otherwise. A file that cannot be written is a warning: the exit
    /// status stays the render's.
    pub(crate) async fn finished(&self, rendered: &[Rendered], code: u8, summary: &Value) {
        let line = summary.to_string();
        if let Some(path) = &self.summary_json {
            let earlier_summary = |text: &str| {
                serde_json::from_str::<Value>(text).is_ok_and(|v| v["event"] == "summary")
            };
            replace_own(
                path,
                "summary",
                earlier_summary,
                format!("{line}\n").as_bytes(),
            );
        }
        if let Some(path) = &self.metrics_textfile {
            let text = metrics(rendered, code, &earlier_successes(path));
            let earlier_metrics = |text: &str| text.starts_with("# HELP narrate_");
            replace_own(path, "metrics", earlier_metrics, text.as_bytes());
        }
        if let Some(url) = &self.notify_url {
            let ok = matches!(summary["status"].as_str(), Some("ok" | "nothing_to_do"));
            let target = if ok {
                url.clone()
            } else {
                format!("{url}/{code}")
            };
            ping(&target, line.clone()).await;
        }
        if self.summary_line {
            eprintln!("{line}");
        }
    }
}

/// Writes a run file (`what`: the summary, the metrics) where nothing is, or over what an
/// earlier run wrote there (`ours` recognises it). Anything else is left as it is, with a
/// warning: a run that ended before its files were checked (a bad manifest, or that very file
/// refused as one of the inputs) must not write over an input.
fn replace_own(path: &Path, what: &str, ours: impl Fn(&str) -> bool, data: &[u8]) {
    let free = std::fs::symlink_metadata(path).is_err()
        || crate::files::read_text(path, MAX_RUN_FILE_BYTES).is_ok_and(|t| ours(&t));
    if !free {
        tracing::warn!(
            "{} holds something narrate did not write there; the {what} is not written over it",
            path.display()
        );
        return;
    }
    if let Err(e) = crate::files::write_atomic(path, data) {
        tracing::warn!("cannot write the {what} {}: {e}", path.display());
    }
}

/// POSTs `body` to `url` within [`PING_TIMEOUT`], following a redirect only to the same
/// origin; a failure is a warning. Nothing but the body is sent: no key, no cookie.
async fn ping(url: &str, body: String) {
    let Ok(origin) = url::Url::parse(url).map(|u| u.origin()) else {
        return;
    };
    let shown = origin.ascii_serialization();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() < 3 && attempt.url().origin() == origin {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    let client = match reqwest::Client::builder()
        .redirect(policy)
        .timeout(PING_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot ping {shown}: {e}");
            return;
        }
    };
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => tracing::warn!("the ping to {shown} was answered {}", r.status()),
        Err(e) => tracing::warn!("the ping to {shown} failed: {}", e.without_url()),
    }
}
