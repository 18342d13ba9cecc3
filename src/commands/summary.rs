//! The lines a render prints: one per manifest on stdout (`ok ...`, `failed ...` or
//! `interrupted ...`), the audiobook verdict, and each failed segment's error on stderr.
//!
//! Not responsible for the reports (see `output::report`).

use std::path::PathBuf;

use crate::error::{EXIT_BUDGET, EXIT_DEADLINE, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK};
use crate::execute::Limit;
use crate::manifest::Job;
use crate::output::audiobook::audiobook_summary;
use crate::output::report::{Published, Report, Status};

/// What rendering one manifest produced.
pub struct Rendered {
    pub job: Job,
    pub report: Report,
    pub report_paths: (PathBuf, PathBuf),
}

/// Prints the summary of every rendered manifest and gives the exit status: 0 only if all
/// succeeded (or `nothing_to_do` when asked for and nothing was), else the most telling of
/// interrupted (130), deadline (4), budget (3) and failed (1).
pub(crate) fn print(rendered: &[Rendered], nothing_to_do: Option<u8>) -> u8 {
    let mut status = EXIT_OK;
    for r in rendered {
        let rep = &r.report;
        if rep.status == Status::Ok {
            print_ok(r);
            // A store's delivery that failed a rule, or could not be built, fails the run.
            if rep.deliveries.iter().any(|d| !d.pass) {
                status = status.max(EXIT_FAILED);
            }
            continue;
        }
        print_failed(r);
        let this = if rep.interrupted {
            EXIT_INTERRUPTED
        } else {
            match rep.stopped_by {
                Some(Limit::Deadline) => EXIT_DEADLINE,
                Some(Limit::Budget) => EXIT_BUDGET,
                None => EXIT_FAILED,
            }
        };
        status = status.max(this);
    }
    match nothing_to_do {
        Some(code) if status == EXIT_OK && rendered.iter().all(|r| idle(&r.report)) => code,
        _ => status,
    }
}

/// Whether a successful render did nothing: every request came from the cache and every
/// output was kept as it was.
fn idle(report: &Report) -> bool {
    let reused = match &report.published {
        Some(p) => *p == Published::Reused,
        None => {
            !report.outputs.is_empty()
                && match &report.brief {
                    Some(brief) => brief.outputs_reused == report.outputs.len(),
                    None => report
                        .outputs
                        .iter()
                        .all(|o| o.published == Published::Reused),
                }
        }
    };
    report.totals.cache_hits == report.totals.requests && reused
}

/// The output as the summary shows it: the file, or for a split output the first file and the
/// last one's name (the report lists them all).
pub(crate) fn shown(r: &Rendered) -> String {
    if let Some(shard) = &r.report.shard {
        return format!(
            "shard {shard} of {} (no book: narrate assemble builds it)",
            r.job.manifest.display()
        );
    }
    let outputs = &r.report.outputs;
    let (first, last) = match &r.report.brief {
        Some(brief) => (brief.first_output.as_deref(), brief.last_output.as_deref()),
        None => (
            outputs.first().map(|o| o.path.as_str()),
            outputs.last().map(|o| o.path.as_str()),
        ),
    };
    let (Some(first), Some(last)) = (first, last) else {
        return r.job.output.display().to_string();
    };
    let last = std::path::Path::new(last)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(last);
    match outputs.len() {
        1 => format!("{first} (1 chapter file)"),
        n => format!("{first} ... {last} ({n} files)"),
    }
}

pub(crate) fn print_ok(r: &Rendered) {
    let t = &r.report.totals;
    if r.report.shard.is_some() {
        // A shard places no audio: its share of the requests, and where its report is.
        println!(
            "ok {}: {} segments ok, 0 failed, {} credits, {} requests ({} from cache), {:.1} s; report {}",
            shown(r),
            t.segments,
            t.credits,
            t.requests,
            t.cache_hits,
            r.report.wall_seconds,
            r.report_paths.0.display()
        );
        return;
    }
    println!(
        "ok {}: {} segments ok, 0 failed, {} credits, {:.1} s of audio, {} requests ({} from cache), {:.1} s; report {}",
        shown(r),
        t.segments,
        t.credits,
        t.audio_seconds,
        t.requests,
        t.cache_hits,
        r.report.wall_seconds,
        r.report_paths.0.display()
    );
    if let Some(line) = audiobook_summary(&r.report) {
        println!("{line}");
    }
    for delivery in &r.report.deliveries {
        println!("{}", crate::deliver::summary(delivery));
    }
    if let Some(book) = &r.report.read_along {
        println!(
            "read-along {}: {} sentences timed from the API's character timings, {} paragraphs placed at their request (no timings)",
            book.path, book.sentences, book.paragraphs
        );
        if let Some(source) = &book.source {
            println!(
                "read-along {}: the pages and styles of {source}, {} clips not found in its text (heard, not highlighted)",
                book.path, book.unfound
            );
        }
        if let Some(why) = &book.source_not_kept {
            println!(
                "read-along {}: written from the narrated text, not the book's own pages ({why})",
                book.path
            );
        }
    }
}

pub(crate) fn print_failed(r: &Rendered) {
    let t = &r.report.totals;
    let failed = r.report.failed_segments();
    let written = match r.report.outputs.len() {
        0 => "output not written".to_string(),
        n => format!("the {n} complete files written"),
    };
    println!(
        "{} {}: {} segments ok, {failed} failed, {} credits, {:.1} s; {written}; report {}",
        if r.report.interrupted {
            "interrupted"
        } else {
            "failed"
        },
        r.job.output.display(),
        t.segments - failed,
        t.credits,
        r.report.wall_seconds,
        r.report_paths.0.display()
    );
    if let Some(brief) = &r.report.brief {
        for error in &brief.errors {
            eprintln!("error: {error}");
        }
    }
    for s in r.report.segments.iter().filter(|s| s.status != Status::Ok) {
        eprintln!("error: {}", s.error.as_deref().unwrap_or("failed"));
    }
}
