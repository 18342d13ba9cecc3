//! The retail sample (`--sample`): the opening of the first chapter after the credits, cut at
//! the last sentence end that keeps it within one to five minutes (a request's end, or with
//! `--timestamps` any sentence end the character timings give), faded out over half a second,
//! with the store's tail room tone, encoded, measured and checked like the book's files. Made
//! from the takes the book was joined from: nothing is sent for it.
//!
//! Not responsible for joining (see `publish`).

use std::path::Path;

use serde_json::json;

use super::{Builder, Planned};
use crate::output::report::{Check, DeliveredFile, Role};

/// A sample is one to five minutes long.
const SHORTEST: f64 = 60.0;
const LONGEST: f64 = 300.0;
const FADE_SECONDS: f64 = 0.5;

/// Builds the store's retail sample from the first chapter of `planned`.
pub(super) fn build(builder: &Builder<'_>, planned: &[Planned]) -> Result<DeliveredFile, String> {
    let chapter = planned
        .iter()
        .find(|p| p.role == Role::Chapter)
        .ok_or("no chapter to take a retail sample from")?;
    let (first, what) = (chapter.segments.start, "sample");
    let inputs = super::kept::inputs(builder, chapter.segments.clone(), 0, what);
    if let Some(mut files) = inputs
        .as_deref()
        .and_then(|i| super::kept::kept(builder, first, what, i))
        && let Some(file) = files.pop()
    {
        return Ok(file);
    }
    let file = build_new(builder, chapter)?;
    if let Some(i) = &inputs {
        super::kept::remember(builder, (first, what), i, std::slice::from_ref(&file));
    }
    Ok(file)
}

/// Builds the sample from the joined `chapter`.
fn build_new(builder: &Builder<'_>, chapter: &Planned) -> Result<DeliveredFile, String> {
    let (wav, (placement, index)) = builder.join(chapter.segments.clone(), 0)?;
    let rate = placement.sample_rate.max(1);
    let tail = builder.store.tail_ms as f64 / 1000.0;
    let cuts = cut_points(builder, &placement, &index);
    let cut = cuts
        .into_iter()
        .filter(|&c| {
            let length = c as f64 / f64::from(rate) + tail;
            (SHORTEST..=LONGEST).contains(&length)
        })
        .max();
    let Some(cut) = cut else {
        let _ = std::fs::remove_file(&wav);
        return Err(format!(
            "no sentence ends between one and five minutes into {:?} for the retail sample; render with --timestamps so narrate can cut inside a request",
            chapter.title.as_deref().unwrap_or("the first chapter")
        ));
    };
    let sample_wav = wav.with_extension("sample.wav");
    let written = write_cut(&wav, &sample_wav, cut, builder.store.tail_ms);
    let _ = std::fs::remove_file(&wav);
    written.map_err(|e| format!("cutting the retail sample: {e}"))?;
    let file = Planned {
        role: Role::Sample,
        title: Some("Retail Sample".into()),
        segments: chapter.segments.clone(),
    };
    let mut delivered = builder.finish(&file, &sample_wav, 0)?;
    let length = delivered.measured.seconds;
    delivered.checks.push(Check {
        check: "sample_length".into(),
        value: json!(length),
        want: "60 to 300 s".into(),
        pass: (SHORTEST..=LONGEST).contains(&length),
    });
    delivered.pass = delivered.checks.iter().all(|c| c.pass);
    Ok(delivered)
}

/// Where a sentence ends in the joined chapter (samples from its start): each request's end,
/// and with character timings each `.`, `!` or `?` that ends a word.
fn cut_points(
    builder: &Builder<'_>,
    placement: &crate::audio::Placement,
    index: &[(usize, usize)],
) -> Vec<u64> {
    let rate = f64::from(placement.sample_rate.max(1));
    let alignments: Vec<Option<std::path::PathBuf>> = builder
        .inputs
        .outcomes
        .iter()
        .map(|o| o.alignment.clone())
        .collect();
    let mut cuts = Vec::new();
    for &(r, p) in index {
        let span = &placement.spans[p];
        cuts.push(span.end);
        let Some(a) = crate::output::sidefiles::alignment_of(&alignments, r) else {
            continue;
        };
        let head = placement.edits.get(p).map_or(0, |e| e.head);
        for (i, c) in a.characters.iter().enumerate() {
            let next = a.characters.get(i + 1).map(String::as_str);
            let ends = matches!(c.as_str(), "." | "!" | "?")
                && next.is_none_or(|n| n.trim().is_empty() || n == "\"" || n == "'");
            if let (true, Some(&t)) = (ends, a.character_end_times_seconds.get(i)) {
                let at = (t * rate) as u64;
                let placed = (span.start + at.saturating_sub(head)).clamp(span.start, span.end);
                cuts.push(placed);
            }
        }
    }
    cuts
}

/// Writes the first `cut` samples of `from` into `to`, faded out over their last half second,
/// then `tail_ms` of silence.
fn write_cut(from: &Path, to: &Path, cut: u64, tail_ms: u64) -> Result<(), String> {
    let mut reader = hound::WavReader::open(from).map_err(|e| e.to_string())?;
    let spec = reader.spec();
    let channels = u64::from(spec.channels.max(1));
    let fade = (FADE_SECONDS * f64::from(spec.sample_rate)) as u64;
    let mut writer = hound::WavWriter::create(to, spec).map_err(|e| e.to_string())?;
    for (k, s) in reader
        .samples::<i16>()
        .take((cut * channels) as usize)
        .enumerate()
    {
        let s = s.map_err(|e| e.to_string())?;
        let frame = k as u64 / channels;
        let left = cut.saturating_sub(frame);
        let gain = if left < fade {
            left as f64 / fade as f64
        } else {
            1.0
        };
        writer
            .write_sample((f64::from(s) * gain).round() as i16)
            .map_err(|e| e.to_string())?;
    }
    let silence = u64::from(spec.sample_rate) * tail_ms / 1000 * channels;
    for _ in 0..silence {
        writer.write_sample(0i16).map_err(|e| e.to_string())?;
    }
    writer.finalize().map_err(|e| e.to_string())
}
