//! `narrate audition MANIFEST --voices A,B,C [--model M] --minutes 2`: the book's opening
//! passage (the first chapter's first requests, about the minutes asked for) rendered with
//! each candidate voice, exactly as the whole book's render would send it (the same pieces,
//! the same context), so the chosen voice's takes are the book's from the cache. The cost is
//! said before anything is sent; each voice's passage is written beside the output and a page
//! puts them side by side.
//!
//! Not responsible for rendering the book (see `render`).

use std::path::PathBuf;
use std::sync::Arc;

use crate::audio::Piece;
use crate::cli::config::RenderConfig;
use crate::error::UsageError;
use crate::execute::{Outcome, Runner, estimate};
use crate::manifest::Job;
use crate::plan::{Plan, plan_with_limits};

/// One candidate: a voice (an id, or a name resolved on the account) and a model.
struct Candidate {
    job: Job,
    label: String,
}

/// Runs the audition; the exit status.
pub(crate) async fn audition(
    voices: &[String],
    model: Option<&str>,
    minutes: f64,
    config: RenderConfig,
) -> anyhow::Result<u8> {
    if !(minutes.is_finite() && (0.1..=30.0).contains(&minutes)) {
        return Err(UsageError(format!("--minutes {minutes}: give 0.1 to 30 minutes")).into());
    }
    let manifests = super::render::distinct_manifests(&config.manifests);
    let [manifest] = manifests.as_slice() else {
        return Err(UsageError("narrate audition takes one manifest".into()).into());
    };
    let job = super::load_jobs(
        std::slice::from_ref(manifest),
        &config.defaults,
        config.output.as_deref(),
        true,
    )?
    .remove(0);
    let mut candidates: Vec<Candidate> = voices.iter().map(|v| candidate(&job, v, model)).collect();
    let mut jobs: Vec<Job> = candidates.iter().map(|c| c.job.clone()).collect();
    let caches = super::render::check_offline(&config, &jobs)?;
    let (session, client) = super::render::connect(&config).await?;
    if let Some(session) = &session {
        super::resolve_voices(&session.client, &mut jobs).await?;
    }
    for (c, j) in candidates.iter_mut().zip(jobs) {
        c.job = j;
    }
    let limits = client.limits().await.unwrap_or_default();
    let plans: Vec<Plan> = candidates
        .iter()
        .map(|c| passage(plan_with_limits(&c.job, &limits), minutes))
        .collect();
    let source = config.endpoint.source();
    let total = cost(&config, (&candidates, &plans), caches.caches(), &source)?;
    if total.requests > 0 {
        super::budget::check_balance(&client, &total).await?;
    }
    let progress = Arc::new(crate::progress::Progress::new(
        total.requests as u64,
        config.progress,
    ));
    let runner = Arc::new(Runner::new(
        client,
        config.execute_settings(source),
        progress,
    ));
    let mut heard = Vec::new();
    for ((c, plan), cache) in candidates.iter().zip(plans).zip(caches.caches()) {
        let job = Arc::new(c.job.clone());
        let plan = Arc::new(plan);
        let outcomes = crate::execute::execute(
            runner.clone(),
            job.clone(),
            plan.clone(),
            Arc::new(cache.clone()),
        )
        .await;
        heard.push(write_passage(c, &plan, &outcomes)?);
    }
    if let Some(session) = session {
        session.close().await;
    }
    let page = write_page(&job, &candidates, &heard, &total)?;
    println!("audition page {}", page.display());
    Ok(if heard.iter().all(Result::is_ok) {
        0
    } else {
        1
    })
}

/// What each candidate would send, said before anything is; refused over `--max-credits`.
fn cost(
    config: &RenderConfig,
    (candidates, plans): (&[Candidate], &[Plan]),
    caches: &[crate::state::cache::Cache],
    source: &str,
) -> anyhow::Result<crate::execute::Estimate> {
    let mut total = crate::execute::Estimate::default();
    for ((c, plan), cache) in candidates.iter().zip(plans).zip(caches) {
        let e = estimate(&c.job, plan, Some(cache), (source, false));
        println!(
            "audition {}: {} requests to send ({} characters, about {} credits), {} from the cache",
            c.label, e.requests, e.characters, e.credits, e.cached
        );
        total.add(&e);
    }
    println!(
        "audition: {} voices, {} requests to send, about {} credits in all",
        candidates.len(),
        total.requests,
        total.credits
    );
    if let Some(max) = config.max_credits
        && total.credits > max
    {
        return Err(UsageError(format!(
            "this audition needs about {} credits, more than --max-credits {max}; nothing was sent",
            total.credits
        ))
        .into());
    }
    Ok(total)
}

/// The job with every segment read by `voice` (an id, or a name to resolve) and `model`.
fn candidate(job: &Job, voice: &str, model: Option<&str>) -> Candidate {
    let id_like = voice.len() == 20 && voice.chars().all(|c| c.is_ascii_alphanumeric());
    let mut job = job.clone();
    for s in &mut job.segments {
        if id_like {
            s.voice_id = voice.to_string();
            s.voice_name = None;
        } else {
            s.voice_id = String::new();
            s.voice_name = Some(voice.to_string());
        }
        if let Some(m) = model {
            s.model_id = m.to_string();
        }
    }
    let label = match model {
        Some(m) => format!("{voice} ({m})"),
        None => voice.to_string(),
    };
    Candidate { job, label }
}

/// The plan with only the opening passage to send: the first chain's first requests, as many
/// as make about `minutes` (at least one); every other request planned (for its neighbours'
/// context) and deferred.
fn passage(mut plan: Plan, minutes: f64) -> Plan {
    let want = (minutes * 60.0 * crate::deliver::CHARS_PER_SECOND) as usize;
    plan.deferred = vec![true; plan.requests.len()];
    let first = plan.requests.first().map_or(0, |r| r.chain);
    let mut chars = 0;
    if let Some(chain) = plan.chains.get(first) {
        for &r in &chain.requests {
            if chars >= want {
                break;
            }
            chars += plan.requests[r].text.chars().count();
            plan.deferred[r] = false;
        }
    }
    plan
}

/// One voice's passage joined into `<output stem>.audition/<voice>.<ext>`, or why not.
fn write_passage(
    c: &Candidate,
    plan: &Plan,
    outcomes: &[Outcome],
) -> anyhow::Result<Result<PathBuf, String>> {
    let mut pieces = Vec::new();
    let sent: Vec<usize> = (0..plan.requests.len())
        .filter(|&r| !plan.deferred[r])
        .collect();
    for (k, &r) in sent.iter().enumerate() {
        let Some(path) = outcomes[r].audio.as_deref() else {
            let why = outcomes[r]
                .error
                .clone()
                .unwrap_or_else(|| "not rendered".into());
            return Ok(Err(why));
        };
        let segment = plan.requests[r].segment;
        pieces.push(Piece::Audio { path, segment });
        if sent
            .get(k + 1)
            .is_some_and(|&n| plan.requests[n].segment != segment)
        {
            let ms = c.job.segments[segment].pause_after_ms;
            pieces.push(Piece::Silence { ms });
        }
    }
    let path = folder(&c.job).join(format!(
        "{}.{}",
        crate::files::slug(&c.label),
        extension(&c.job)
    ));
    std::fs::create_dir_all(folder(&c.job))?;
    let options = crate::audio::Options {
        trim_silence: c.job.trim_silence,
        ..Default::default()
    };
    Ok(
        crate::audio::assemble(&pieces, c.job.output_format, &path, &options)
            .map(|_| path)
            .map_err(|e| e.to_string()),
    )
}

/// `.mp3` for MP3 responses, `.wav` for the others.
fn extension(job: &Job) -> &'static str {
    match job.output_format.codec {
        crate::format::Codec::Mp3 { .. } => "mp3",
        _ => "wav",
    }
}

/// Where the passages go: `<output stem>.audition/` beside the output.
fn folder(job: &Job) -> PathBuf {
    let stem = job.output.file_stem().unwrap_or_default().to_string_lossy();
    crate::files::parent_dir(&job.output).join(format!("{stem}.audition"))
}

/// The page that puts the passages side by side, with the cost first.
fn write_page(
    job: &Job,
    candidates: &[Candidate],
    heard: &[Result<PathBuf, String>],
    total: &crate::execute::Estimate,
) -> anyhow::Result<PathBuf> {
    use quick_xml::escape::escape;
    let dir = folder(job);
    let page = dir.join("index.html");
    let title = job.book.title.as_deref().unwrap_or("the book");
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Audition: {t}</title></head><body>\n<h1>Audition: {t}</h1>\n<p class=\"cost\">{n} voices; this audition sent {r} requests, about {c} credits.</p>\n<ul>\n",
        t = escape(title),
        n = candidates.len(),
        r = total.requests,
        c = total.credits
    );
    for (c, h) in candidates.iter().zip(heard) {
        let item = match h {
            Ok(path) => {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                format!(
                    "<audio controls preload=\"none\" src=\"{}\"></audio>",
                    escape(name.as_ref())
                )
            }
            Err(why) => format!(
                "<span class=\"failed\">not rendered: {}</span>",
                escape(why)
            ),
        };
        html.push_str(&format!(
            "<li><h2>{}</h2>{item}</li>\n",
            escape(c.label.as_str())
        ));
    }
    html.push_str("</ul>\n</body></html>\n");
    crate::files::write_atomic(&page, html.as_bytes())?;
    Ok(page)
}
