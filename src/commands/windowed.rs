//! A job's requests executed, its files assembled and its report built: the whole job at once,
//! or, for a content job of many independent rows written a file a row (`continuity: none`
//! with `--split segments`), a window of rows at a time. Each window's outcomes, files and
//! report rows are dropped once its rows are spooled to disk; the reports, the playlists and
//! the review page are then streamed from the spools, so memory stays flat in the number of
//! rows.
//!
//! Not responsible for the stages themselves (`execute`, `publish`, `output`).

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use super::summary::Rendered;
use crate::execute::{Outcome, Runner};
use crate::manifest::{Continuity, Job};
use crate::output::names::Split;
use crate::output::report::{self, Brief, Report, Rows, Spool, Status, Totals};
use crate::output::{review, sidefiles};
use crate::plan::Plan;
use crate::publish::{self, Assembled};
use crate::state::Cache;

/// The rows in memory at once in a windowed render (`NARRATE_WINDOW_ROWS` sets another).
const WINDOW_ROWS: usize = 250;

fn window_rows() -> usize {
    std::env::var("NARRATE_WINDOW_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(WINDOW_ROWS)
}

/// The windows of `job`'s rows when it is rendered a window at a time: independent rows
/// written a file each, more than one window of them, nothing that needs them all at once
/// (a read-along book, the audiobook checks, a shard's share); else `None`.
pub(crate) fn windows(job: &Job, publishing: &publish::Options) -> Option<Vec<Range<usize>>> {
    let size = window_rows();
    let rows = job.segments.len();
    let applies = job.continuity == Continuity::Independent
        && publishing.split == Split::Segments
        && !publishing.read_along
        && !publishing.audiobook
        && publishing.profiles.is_empty()
        && job.shard.is_none()
        && rows > size;
    applies.then(|| {
        (0..rows)
            .step_by(size)
            .map(|a| a..(a + size).min(rows))
            .collect()
    })
}

/// How many of a job's render tasks ask for a slot before the first is handed out: its first
/// window's when it is rendered a window at a time.
pub(crate) fn first_participants(job: &Job, plan: &Plan, publishing: &publish::Options) -> usize {
    let first = windows(job, publishing).and_then(|w| plan.window(w[0].clone()));
    first.as_ref().unwrap_or(plan).slot_participants()
}

/// What a job, or a window of it, came to.
pub(crate) struct Window {
    pub outcomes: Vec<Outcome>,
    pub assembled: Assembled,
    pub report: Report,
}

/// Executes the requests of `job` (a whole job or a window of one), assembles its files when
/// every request succeeded (or, split and stopped by a limit, those complete) and no signal
/// came, and builds its report.
pub(crate) async fn run(
    runner: &Arc<Runner>,
    publishing: &publish::Options,
    (job, plan, cache): (&Arc<Job>, &Arc<Plan>, &Arc<Cache>),
    started: SystemTime,
) -> Window {
    let outcomes =
        crate::execute::execute(runner.clone(), job.clone(), plan.clone(), cache.clone()).await;
    finish(runner, publishing, (job, plan, cache), outcomes, started)
}

/// Assembles the files of `job` (a whole job or a window of one) from its requests'
/// `outcomes` when every request succeeded (or, split and stopped by a limit, those complete)
/// and no signal came, and builds its report.
fn finish(
    runner: &Arc<Runner>,
    publishing: &publish::Options,
    (job, plan, cache): (&Arc<Job>, &Arc<Plan>, &Arc<Cache>),
    outcomes: Vec<Outcome>,
    started: SystemTime,
) -> Window {
    let records = cache.published_dir();
    let all_ok = outcomes.iter().all(|o| o.audio.is_some());
    // A run a limit stopped (the deadline, the budget) still writes the files of a split output
    // that are complete.
    let split = publishing.split != Split::None;
    let partial = !all_ok && split && runner.limit_reached().is_some();
    let inputs = publish::Inputs {
        job,
        plan,
        outcomes: &outcomes,
        records: &records,
        cancel: runner.cancel.clone(),
    };
    let (mut assembled, assembly_error) = assemble(runner, publishing, &inputs, all_ok, partial);
    let placed = (all_ok || partial)
        && assembly_error.is_none()
        && !runner.was_interrupted()
        && job.shard.is_none();
    let request_spans = std::mem::take(&mut assembled.spans);
    let timeline = placed.then(|| report::Timeline {
        files: assembled
            .files
            .iter()
            .map(|f| (f.path.as_path(), &f.placement))
            .collect(),
        request_spans,
        split,
    });
    let mut rep = report::build(
        job,
        plan,
        &outcomes,
        timeline.as_ref(),
        started,
        SystemTime::now(),
        runner.settings.synthetic,
    );
    drop(timeline);
    settle(runner, publishing, job, &mut rep, assembly_error, all_ok);
    Window {
        outcomes,
        assembled,
        report: rep,
    }
}

/// A job's files, when every request was rendered (`all_ok`; or, with `partial`, those that
/// are complete) and no signal came: an interrupted run never replaces the previous output.
fn assemble(
    runner: &Runner,
    publishing: &publish::Options,
    inputs: &publish::Inputs<'_>,
    all_ok: bool,
    partial: bool,
) -> (Assembled, Option<crate::audio::AudioError>) {
    // A shard writes its report; the book is assembled once, from the whole cache.
    if !(all_ok || partial) || runner.was_interrupted() || inputs.job.shard.is_some() {
        return (Assembled::default(), None);
    }
    match publish::assemble(publishing, inputs, !all_ok) {
        Ok(a) => (a, None),
        Err(e) => (Assembled::default(), Some(e)),
    }
}

/// What the run's end means for a job's report: interrupted, stopped by a limit, the
/// audiobook checks, and every segment failed when the files could not be assembled.
fn settle(
    runner: &Runner,
    publishing: &publish::Options,
    job: &Job,
    rep: &mut Report,
    assembly_error: Option<crate::audio::AudioError>,
    all_ok: bool,
) {
    rep.interrupted = runner.was_interrupted();
    rep.stopped_by = runner.limit_reached();
    if publishing.audiobook {
        crate::output::audiobook::audiobook(job, rep);
    }
    let not_assembled = match assembly_error {
        Some(e) => Some(format!("assembly failed: {e}")),
        None if all_ok && runner.was_interrupted() => {
            Some("interrupted before assembly; the previous output is left as it was".to_string())
        }
        None => None,
    };
    if let Some(why) = not_assembled {
        report::fail_all(rep, &why);
    }
}

/// How a window of rows is planned on its own, as the whole job was: the model limits and the
/// segments to render again (`--only`).
#[derive(Clone, Copy)]
pub(crate) struct Replan<'a> {
    pub limits: &'a crate::plan::Limits,
    pub only: &'a [String],
}

impl Replan<'_> {
    /// The plan of a window's rows: the whole job's plan of them (independent rows are
    /// planned each on its own), renumbered.
    fn plan(&self, part: &Job) -> Plan {
        let mut plan = crate::plan::plan_with_limits(part, self.limits);
        crate::plan::mark_regenerate(&mut plan, part, self.only);
        plan
    }
}

/// Renders `job` a window of rows at a time (see [`windows`]), each window planned alone, then
/// writes its reports, its playlists and its review page from the spooled rows.
pub(crate) async fn render(
    (runner, publishing): (Arc<Runner>, Arc<publish::Options>),
    mut job: Job,
    (cache, replan): (Cache, Replan<'_>),
    windows: Vec<Range<usize>>,
) -> anyhow::Result<Rendered> {
    use anyhow::Context as _;
    let started = SystemTime::now();
    let cache = Arc::new(cache);
    let spooling = || format!("spooling the rows of {}", job.output.display());
    let mut spooled = Spooled::new(&job.output).with_context(spooling)?;
    let segments = std::mem::take(&mut job.segments);
    let rows = set_aside(segments, &job.output).with_context(spooling)?;
    let mut stored = rows.values::<crate::manifest::Segment>()?;
    // What planning the whole job took is free now (the plan was dropped).
    release_freed_memory();
    // Two windows are sent at once: while one's last requests finish and its files are
    // written, the next one's keep the slots busy.
    let mut windows = windows.into_iter();
    let mut ahead = std::collections::VecDeque::new();
    loop {
        while ahead.len() < 2
            && let Some(range) = windows.next()
        {
            let mut part = job.clone();
            part.segments = (&mut stored)
                .take(range.len())
                .collect::<std::io::Result<_>>()
                .with_context(spooling)?;
            let part_plan = Arc::new(replan.plan(&part));
            let part = Arc::new(part);
            let sent = (
                runner.clone(),
                part.clone(),
                part_plan.clone(),
                cache.clone(),
            );
            let sent = tokio::spawn(crate::execute::execute(sent.0, sent.1, sent.2, sent.3));
            ahead.push_back((part, part_plan, Sending(sent)));
        }
        let Some((part, part_plan, mut sent)) = ahead.pop_front() else {
            break;
        };
        let outcomes = (&mut sent.0).await.context("a window's requests stopped")?;
        let window = tokio::task::block_in_place(|| {
            finish(
                &runner,
                &publishing,
                (&part, &part_plan, &cache),
                outcomes,
                started,
            )
        });
        spooled
            .add(&part, &part_plan, window)
            .with_context(|| format!("spooling the report of {}", job.output.display()))?;
        // What this window sent is answered and cached: its journal lines go now, not at
        // the end (compaction is safe with requests in flight).
        cache.compact_journal();
        cache.forget_judged();
        release_freed_memory();
    }
    // The job as loaded, for what comes after the render (a library's metadata files).
    job.segments = rows
        .values()?
        .collect::<std::io::Result<_>>()
        .with_context(spooling)?;
    let (report, lists) = spooled.report(&job, &runner, started)?;
    let report_paths = report::write(&report, &job.output)?;
    if report.status == Status::Ok {
        lists.write(&job, &report, &report_paths.0, runner.settings.timestamps)?;
    }
    Ok(Rendered {
        job,
        report,
        report_paths,
    })
}

/// Moves a job's rows to a spool beside its `output`: they wait on disk, read back a window at
/// a time.
fn set_aside(segments: Vec<crate::manifest::Segment>, output: &Path) -> std::io::Result<Spool> {
    let mut rows = Spool::new_in(crate::files::parent_dir(output))?;
    for segment in segments {
        rows.push(&segment)?;
    }
    rows.flush()?;
    Ok(rows)
}

/// Gives back to the system what a window freed: glibc's allocator keeps the freed pages of
/// its per-thread arenas resident, so a run of many windows would creep up without this.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and only returns free pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A window's requests being sent; stopped if the render returns before it is awaited (an
/// error spooling the window before it), so nothing is sent for a render that failed.
struct Sending(tokio::task::JoinHandle<Vec<Outcome>>);

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The rows of a windowed render spooled so far, and what the report says of them all.
struct Spooled {
    segments: Spool,
    outputs: Spool,
    lists: Lists,
    totals: Totals,
    brief: Brief,
    ok: bool,
    assembly: Option<crate::audio::Assembly>,
}

/// What the side files and the review page of a windowed render are made from.
struct Lists {
    /// Each file's path, title and length (see `sidefiles::Listed`).
    listed: Spool,
    /// Each segment's review data, in the report's order.
    data: Spool,
    /// Requests whose audio came without character timings.
    missing_timings: usize,
}

impl Spooled {
    fn new(output: &Path) -> std::io::Result<Self> {
        let dir = crate::files::parent_dir(output);
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Spooled {
            segments: Spool::new_in(dir)?,
            outputs: Spool::new_in(dir)?,
            lists: Lists {
                listed: Spool::new_in(dir)?,
                data: Spool::new_in(dir)?,
                missing_timings: 0,
            },
            totals: Totals::default(),
            brief: Brief::default(),
            ok: true,
            assembly: None,
        })
    }

    /// Spools a window's rows and adds up its figures; the window is dropped.
    fn add(&mut self, job: &Job, plan: &Plan, window: Window) -> std::io::Result<()> {
        let rep = &window.report;
        let (t, all) = (&rep.totals, &mut self.totals);
        all.segments += t.segments;
        all.requests += t.requests;
        all.attempts += t.attempts;
        all.retries += t.retries;
        all.cache_hits += t.cache_hits;
        all.recovered += t.recovered;
        all.characters += t.characters;
        all.credits += t.credits;
        // Unrounded, as the whole job's total is the rounded sum of its files' lengths.
        all.audio_seconds += (window.assembled.files.iter())
            .map(|f| f.placement.seconds(f.placement.total_samples))
            .sum::<f64>();
        self.ok &= rep.status == Status::Ok;
        self.assembly = self.assembly.or(rep.assembly);
        let outcomes = window.outcomes.as_slice();
        self.lists.missing_timings += outcomes
            .iter()
            .filter(|o| o.audio.is_some() && o.alignment.is_none())
            .count();
        let peaks = &window.assembled.peaks;
        for data in publish::finish::review_segments((job, plan, outcomes), rep, peaks) {
            self.lists.data.push(&data)?;
        }
        let mut titles = std::collections::HashMap::new();
        for s in rep.segments.iter() {
            if let Some(file) = &s.file {
                titles.entry(file.as_str()).or_insert(s.id.as_str());
            }
        }
        for o in rep.outputs.iter() {
            self.brief
                .first_output
                .get_or_insert_with(|| o.path.clone());
            self.brief.last_output = Some(o.path.clone());
            self.brief.outputs_reused += usize::from(o.published == report::Published::Reused);
            self.outputs.push(o)?;
            let title = titles.get(o.path.as_str()).copied().unwrap_or("");
            self.lists.listed.push(&(&o.path, title, o.audio_seconds))?;
        }
        for s in rep.segments.iter() {
            if s.status != Status::Ok {
                self.brief.failed += 1;
                let error = s.error.as_deref().unwrap_or("failed");
                self.brief.errors.push(error.to_string());
            }
            self.segments.push(s)?;
        }
        Ok(())
    }

    /// The report of every window, its rows streamed from the spools.
    fn report(
        self,
        job: &Job,
        runner: &Runner,
        started: SystemTime,
    ) -> std::io::Result<(Report, Lists)> {
        let finished = SystemTime::now();
        let mut totals = self.totals;
        totals.audio_seconds = report::round(totals.audio_seconds);
        let report = Report {
            status: if self.ok { Status::Ok } else { Status::Failed },
            manifest: job.manifest.display().to_string(),
            output: job.output.display().to_string(),
            synthetic: runner.settings.synthetic,
            interrupted: runner.was_interrupted(),
            stopped_by: runner.limit_reached(),
            started_at: crate::output::time::rfc3339(started),
            finished_at: crate::output::time::rfc3339(finished),
            wall_seconds: report::round(
                finished
                    .duration_since(started)
                    .map_or(0.0, |d| d.as_secs_f64()),
            ),
            totals,
            assembly: self.assembly,
            published: None,
            outputs: Rows::spooled(self.outputs)?,
            loudness: None,
            loudness_gain_db: None,
            audiobook: None,
            deliveries: Vec::new(),
            read_along: None,
            shard: None,
            segments: Rows::spooled(self.segments)?,
            brief: Some(self.brief),
        };
        Ok((report, self.lists))
    }
}

impl Lists {
    /// The CUE sheet and playlist of a successful windowed render, and its review page.
    fn write(
        mut self,
        job: &Job,
        report: &Report,
        report_path: &Path,
        timestamps: bool,
    ) -> anyhow::Result<()> {
        use anyhow::Context as _;
        if timestamps && self.missing_timings > 0 {
            tracing::warn!(
                "{}: {} request(s) came from the cache without character timings (--retime renders them again with timings; `plan --retime` shows the cost)",
                job.manifest.display(),
                self.missing_timings
            );
        }
        self.listed.flush()?;
        self.data.flush()?;
        sidefiles::write_lists(job, || self.listed.values::<sidefiles::Listed>())
            .with_context(|| format!("writing the side files of {}", job.output.display()))?;
        review::write_streamed(report, report_path, &job.book.title, &self.data)
            .with_context(|| format!("writing the review page of {}", job.output.display()))?;
        Ok(())
    }
}
