//! `narrate retry REPORT.json [FLAGS]`: the render of only the segments a report lists as
//! failed, as `--only` renders them (each with its cached neighbours' request ids as context,
//! every other segment from the cache), into the report's output. Nothing failed: nothing to
//! do, and nothing is sent.
//!
//! Not responsible for rendering (see `render`).

use std::path::PathBuf;

use clap::Parser as _;
use serde::Deserialize;

use crate::cli::args::{Cli, Command, RenderArgs, RetryArgs};
use crate::error::UsageError;

/// The fields of a report that a retry reads.
#[derive(Deserialize)]
struct Failed {
    manifest: PathBuf,
    output: PathBuf,
    segments: Vec<Segment>,
}

#[derive(Deserialize)]
struct Segment {
    id: String,
    status: String,
}

/// The render a retry makes, or `None` (said on stdout) when the report lists no failure.
pub(crate) fn render_args(args: &RetryArgs) -> anyhow::Result<Option<RenderArgs>> {
    let path = &args.report;
    let report: Failed = super::read_report(path)?;
    let failed: Vec<&str> = report
        .segments
        .iter()
        .filter(|s| s.status != "ok")
        .map(|s| s.id.as_str())
        .collect();
    if failed.is_empty() {
        println!(
            "nothing to retry: {} lists no failed segment",
            path.display()
        );
        return Ok(None);
    }
    println!(
        "retrying {} failed segment(s) of {}: {}",
        failed.len(),
        report.manifest.display(),
        failed.join(" ")
    );
    let mut argv: Vec<String> = vec!["narrate".into(), "render".into()];
    argv.push(report.manifest.display().to_string());
    let has_output = args
        .flags
        .iter()
        .any(|f| f == "-o" || f == "--output" || f.starts_with("--output="));
    if !has_output {
        argv.extend(["--output".into(), report.output.display().to_string()]);
    }
    argv.extend(args.flags.iter().cloned());
    argv.push("--only".into());
    argv.extend(failed.iter().map(|id| id.to_string()));
    let cli = Cli::try_parse_from(&argv).map_err(|e| {
        UsageError(format!(
            "narrate retry {}: {}",
            path.display(),
            e.to_string().trim()
        ))
    })?;
    match cli.command {
        Some(Command::Render(render)) => Ok(Some(*render)),
        _ => Err(UsageError(format!("narrate retry {}: not a render", path.display())).into()),
    }
}
