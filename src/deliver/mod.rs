//! Deliveries to stores (`--profile`): after a render, each store's files written into a folder
//! of its own from the same takes (nothing is sent again), a file a chapter (and the credits
//! and the retail sample where the store wants them), numbered in play order, joined with the
//! store's room tone, scaled to its loudness, encoded by ffmpeg to its format, then read back
//! and measured, each rule passed or failed. A chapter longer than the store's longest file is
//! cut at segment boundaries into parts.
//!
//! Not responsible for the stores' numbers (see `stores`), for joining takes (see `publish`)
//! or for writing the report (see `output::report`).

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::manifest::Job;
use crate::output::report::{DeliveredFile, Delivery, Role};
use crate::publish::{self, Inputs, Split};
use crate::stores::Store;

pub(crate) mod checks;
pub(crate) mod credits;
mod encode;
mod kept;
mod measure;
mod sample;

pub(crate) use encode::check_encoders;

/// A file of a delivery before it is built: what it holds.
#[derive(Clone, Debug)]
struct Planned {
    role: Role,
    title: Option<String>,
    segments: Range<usize>,
}

/// Every store's delivery of a rendered job, in the order asked: up to `jobs` stores at once
/// (each joins on one thread and runs one ffmpeg at a time).
pub(crate) fn deliver_all(
    stores: &[&'static Store],
    (sample, jobs): (bool, usize),
    inputs: &Inputs<'_>,
) -> Vec<Delivery> {
    let threads = jobs.clamp(1, stores.len().max(1));
    let done = publish::pool::run(stores.len(), threads, |k| {
        let delivery = deliver(stores[k], sample, inputs);
        let (pass, files) = (delivery.pass, delivery.files.len());
        tracing::info!(profile = stores[k].name, pass, files, "delivered");
        Ok::<_, std::convert::Infallible>(delivery)
    });
    done.into_iter()
        .zip(stores)
        .map(|(d, store)| match d {
            Some(Ok(delivery)) => delivery,
            _ => Delivery {
                profile: store.name,
                store: store.title,
                rules: store.source,
                folder: folder(inputs.job, store).display().to_string(),
                pass: false,
                files: Vec::new(),
                error: Some("interrupted".into()),
            },
        })
        .collect()
}

/// The folder of a store's delivery, beside the output.
pub(crate) fn folder(job: &Job, store: &Store) -> PathBuf {
    crate::files::parent_dir(&job.output).join(store.name)
}

/// One store's delivery: every file built, encoded and measured, or the first reason one
/// could not be.
fn deliver(store: &'static Store, sample: bool, inputs: &Inputs<'_>) -> Delivery {
    let folder = folder(inputs.job, store);
    let mut delivery = Delivery {
        profile: store.name,
        store: store.title,
        rules: store.source,
        folder: folder.display().to_string(),
        pass: false,
        files: Vec::new(),
        error: None,
    };
    if let Err(e) = std::fs::create_dir_all(&folder) {
        delivery.error = Some(format!("creating {}: {e}", folder.display()));
        return delivery;
    }
    remove_leftovers(&folder);
    // The store's room tone around every file; the rest of the job as it was rendered.
    let job = Job {
        lead_in_ms: store.head_ms,
        tail_ms: store.tail_ms,
        ..inputs.job.clone()
    };
    let inputs = Inputs {
        job: &job,
        cancel: inputs.cancel.clone(),
        ..*inputs
    };
    let planned = plan_files(&job, store);
    let width = (job.segments.len() + 3).to_string().len().max(2);
    let builder = Builder {
        store,
        inputs: &inputs,
        folder: &folder,
        width,
    };
    let mut number = 0;
    for file in &planned {
        match builder.build(file, &mut number) {
            Ok(files) => delivery.files.extend(files),
            Err(why) => {
                delivery.error = Some(why);
                break;
            }
        }
    }
    if sample && store.sample && delivery.error.is_none() {
        match sample::build(&builder, &planned) {
            Ok(file) => delivery.files.push(file),
            Err(why) => delivery.error = Some(why),
        }
    }
    delivery.pass = delivery.error.is_none() && delivery.files.iter().all(|f| f.pass);
    delivery
}

/// Removes what a killed delivery left in its folder: the joined WAVs (`.narrate-*.wav`) and
/// the files being written (`.NAME.narrate-*.part`); regular files only.
fn remove_leftovers(folder: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with(".narrate-") && name.ends_with(".wav")
            || name.starts_with('.') && name.contains(".narrate-") && name.ends_with(".part");
        if ours && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The files of a store's delivery in play order: the opening credits, each chapter, the
/// closing credits (the credits only where the store wants them).
fn plan_files(job: &Job, store: &Store) -> Vec<Planned> {
    crate::manifest::chapters::runs(job)
        .into_iter()
        .filter_map(|(title, segments)| {
            let role = credits::role(job, segments.clone());
            (role == Role::Chapter || store.credits).then_some(Planned {
                role,
                title,
                segments,
            })
        })
        .collect()
}

/// A joined file's placement, and for each of its requests the request's index and its
/// piece's.
type Placed = (crate::audio::Placement, Vec<(usize, usize)>);

/// What builds the files of one store's delivery.
pub(crate) struct Builder<'a> {
    store: &'static Store,
    inputs: &'a Inputs<'a>,
    folder: &'a Path,
    width: usize,
}

impl Builder<'_> {
    /// Builds one planned file, or keeps it as an earlier delivery wrote it from the same
    /// takes and settings (see `kept`).
    fn build(&self, file: &Planned, number: &mut usize) -> Result<Vec<DeliveredFile>, String> {
        let (first, what) = (file.segments.start, "file");
        let inputs = kept::inputs(self, file.segments.clone(), *number, what);
        if let Some(files) = inputs
            .as_deref()
            .and_then(|i| kept::kept(self, first, what, i))
        {
            tracing::info!(
                profile = self.store.name,
                files = files.len(),
                "unchanged since delivered; kept"
            );
            *number += files.len();
            return Ok(files);
        }
        let files = self.build_new(file, number)?;
        if let Some(i) = &inputs {
            kept::remember(self, (first, what), i, &files);
        }
        Ok(files)
    }

    /// Builds one planned file: joined as WAV, cut into parts when longer than the store's
    /// longest file, each part encoded and measured.
    fn build_new(&self, file: &Planned, number: &mut usize) -> Result<Vec<DeliveredFile>, String> {
        let (wav, placement) = self.join(file.segments.clone(), *number)?;
        let longest = longest_file(self.store);
        let seconds = placement.0.seconds(placement.0.total_samples);
        if longest.is_none_or(|max| seconds <= max) {
            *number += 1;
            return Ok(vec![self.finish(file, &wav, *number)?]);
        }
        let _ = std::fs::remove_file(&wav);
        let parts = self.parts(file, &placement, longest.unwrap_or(f64::MAX))?;
        let mut out = Vec::new();
        for (k, range) in parts.iter().enumerate() {
            let part = Planned {
                title: Some(format!(
                    "{} (part {} of {})",
                    file.title.as_deref().unwrap_or("Part"),
                    k + 1,
                    parts.len()
                )),
                segments: range.clone(),
                ..file.clone()
            };
            let (wav, placement) = self.join(range.clone(), *number)?;
            let seconds = placement.0.seconds(placement.0.total_samples);
            if longest.is_some_and(|max| seconds > max) {
                let _ = std::fs::remove_file(&wav);
                return Err(self.too_long(&part, seconds));
            }
            *number += 1;
            out.push(self.finish(&part, &wav, *number)?);
        }
        Ok(out)
    }

    /// Joins `segments` into a WAV in the delivery's folder, with the store's room tone and
    /// loudness: the file and where each request landed in it. A file whose RMS, room tone
    /// counted, falls under the store's window at its loudness target (short credits are mostly
    /// room tone) is joined again that much louder, its true peak still under the ceiling.
    fn join(&self, segments: Range<usize>, number: usize) -> Result<(PathBuf, Placed), String> {
        let target = self.store.loudness_target;
        let joined = self.join_at(segments.clone(), number, target)?;
        let rms = joined.1.0.loudness.as_ref().map(|m| m.whole.rms_db);
        match (self.store.checks.rms_db, rms) {
            (Some((low, _)), Some(rms)) if rms < low + 0.5 => {
                let _ = std::fs::remove_file(&joined.0);
                self.join_at(segments, number, target + (low + 1.0 - rms))
            }
            _ => Ok(joined),
        }
    }

    fn join_at(
        &self,
        segments: Range<usize>,
        number: usize,
        target: f64,
    ) -> Result<(PathBuf, Placed), String> {
        let wav = self
            .folder
            .join(format!(".narrate-{}-{number}.wav", self.store.name));
        let options = publish::Options {
            loudness: true,
            loudness_target: Some(target),
            peak_ceiling_dbtp: Some(self.store.peak_ceiling_dbtp),
            split: Split::Chapters,
            jobs: 1,
            ..Default::default()
        };
        let output = crate::output::names::OutputFile {
            path: wav.clone(),
            segments,
            chapter: None,
        };
        let placed = publish::publish_file(&options, self.inputs, &output, false)
            .map_err(|e| format!("joining {}: {e}", wav.display()))?;
        Ok((wav, placed))
    }

    /// The segment runs of a chapter too long for one file, each as long as it may be:
    /// cut where a segment ends (its pause after it goes with it).
    fn parts(
        &self,
        file: &Planned,
        (placement, index): &Placed,
        longest: f64,
    ) -> Result<Vec<Range<usize>>, String> {
        let plan = self.inputs.plan;
        let rate = f64::from(placement.sample_rate.max(1));
        let room = (self.store.head_ms + self.store.tail_ms) as f64 / 1000.0;
        // Where each segment's audio ends, in seconds from the file's start.
        let ends: Vec<f64> = file
            .segments
            .clone()
            .map(|si| {
                let last = plan.segment_requests[si].last().copied();
                let piece = index
                    .iter()
                    .find(|(r, _)| Some(*r) == last)
                    .map(|(_, p)| *p);
                piece.map_or(0.0, |p| placement.spans[p].end as f64 / rate)
            })
            .collect();
        let mut parts = Vec::new();
        let mut start = file.segments.start;
        let mut began = self.store.head_ms as f64 / 1000.0;
        for (k, &end) in ends.iter().enumerate() {
            let si = file.segments.start + k;
            if end - began + room > longest && si > start {
                parts.push(start..si);
                start = si;
                began = ends[k - 1];
            }
            if end - began + room > longest {
                let seconds = end - began + room;
                let part = Planned {
                    segments: si..si + 1,
                    ..file.clone()
                };
                return Err(self.too_long(&part, seconds));
            }
        }
        parts.push(start..file.segments.end);
        Ok(parts)
    }

    fn too_long(&self, file: &Planned, seconds: f64) -> String {
        let id = &self.inputs.job.segments[file.segments.start].id;
        format!(
            "segment {id} alone is {:.1} minutes with its room tone, longer than {}'s longest file ({:.0} minutes): no file over it is written; cut its text into several segments so narrate can split the chapter between them",
            seconds / 60.0,
            self.store.name,
            longest_file(self.store).unwrap_or(0.0) / 60.0
        )
    }

    /// Encodes a joined WAV into the store's format under its numbered name, removes the WAV,
    /// and measures and checks the encoded file.
    fn finish(&self, file: &Planned, wav: &Path, number: usize) -> Result<DeliveredFile, String> {
        let title = file.title.clone();
        let ext = self.store.container.extension();
        let name = match file.role {
            Role::Sample => format!("retail-sample.{ext}"),
            _ => format!(
                "{:0width$}-{}.{ext}",
                number,
                crate::files::slug(title.as_deref().unwrap_or("part")),
                width = self.width
            ),
        };
        let path = self.folder.join(name);
        let tags = encode::Tags::of(self.inputs.job, title.as_deref(), number);
        let encoded = encode::encode(self.store, wav, &path, &tags);
        let _ = std::fs::remove_file(wav);
        encoded?;
        let measured = measure::measure(&path, self.store.container)
            .map_err(|e| format!("measuring {}: {e}", path.display()))?;
        let checks = checks::checks(self.store, &measured);
        let segments = &self.inputs.job.segments;
        Ok(DeliveredFile {
            path: path.display().to_string(),
            kept: false,
            role: file.role,
            title,
            segments: (
                segments[file.segments.start].id.clone(),
                segments[file.segments.end - 1].id.clone(),
            ),
            pass: checks.iter().all(|c| c.pass),
            measured,
            checks,
        })
    }
}

/// Characters a second of narration (ElevenLabs' voices read about this fast), for judging a
/// segment's length before anything is sent.
pub(crate) const CHARS_PER_SECOND: f64 = 15.0;

/// The characters a retail sample is taken from, at most (five minutes at
/// [`CHARS_PER_SECOND`]).
pub(crate) const SAMPLE_CHARACTERS: usize = 300 * CHARS_PER_SECOND as usize;

/// The longest file a store takes (seconds): `NARRATE_MAX_FILE_MINUTES` when set (a stricter
/// limit of one's own), else the store's.
fn longest_file(store: &Store) -> Option<f64> {
    let own = std::env::var("NARRATE_MAX_FILE_MINUTES")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|m| m.is_finite() && *m > 0.0);
    own.or(store.checks.max_minutes).map(|m| m * 60.0)
}

/// Refuses, before anything is sent, a segment that alone would read longer than a store's
/// longest file: a chapter is cut between segments, never inside one.
pub(crate) fn check_lengths(job: &Job, stores: &[&Store]) -> Result<(), crate::error::UsageError> {
    for store in stores {
        let Some(longest) = longest_file(store) else {
            continue;
        };
        let room = (store.head_ms + store.tail_ms) as f64 / 1000.0;
        for s in &job.segments {
            let seconds = s.text.chars().count() as f64 / CHARS_PER_SECOND + room;
            if seconds > longest {
                return Err(crate::error::UsageError(format!(
                    "{}: line {}: segment {} reads for about {:.0} minutes, longer than {}'s longest file ({:.0} minutes), and a chapter is only cut between segments: cut its text into several segments (a paragraph or a scene each); nothing was sent",
                    job.manifest.display(),
                    s.line,
                    s.id,
                    seconds / 60.0,
                    store.name,
                    longest / 60.0
                )));
            }
        }
    }
    Ok(())
}

/// One line per store: `acx: pass, 14 files in out/acx`, or what failed, file by file.
pub(crate) fn summary(delivery: &Delivery) -> String {
    if let Some(why) = &delivery.error {
        return format!("{}: fail: {why}", delivery.profile);
    }
    if delivery.pass {
        return format!(
            "{}: pass, {} files in {}",
            delivery.profile,
            delivery.files.len(),
            delivery.folder
        );
    }
    let failed: Vec<String> = delivery
        .files
        .iter()
        .flat_map(|f| {
            let name = Path::new(&f.path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            f.checks
                .iter()
                .filter(|c| !c.pass)
                .map(move |c| format!("{name}: {} {} (want {})", c.check, c.value, c.want))
        })
        .collect();
    format!("{}: fail: {}", delivery.profile, failed.join("; "))
}
