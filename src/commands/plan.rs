//! `narrate plan`: the requests, characters and estimated credits of each manifest, chain by
//! chain, with what each request sends as context; no text-to-speech request is sent.
//!
//! The plan is a typed [`PlanView`]: serialized as is for `--json`, printed as text otherwise.
//! Fields are declared in alphabetical order, the order the JSON has always had.

use std::time::SystemTime;

use serde::Serialize;

use crate::cli::args::PlanArgs;
use crate::cli::config::{endpoint, flag_defaults};
use crate::error::{EXIT_OK, UsageError};
use crate::execute::{self, RequestKey};
use crate::manifest::Job;
use crate::plan::{self, Plan};
use crate::session::Session;
use crate::state::{Cache, StateDir};

/// Every manifest's plan and the account's balance (when a key or the emulator is at hand).
#[derive(Debug, Serialize)]
pub(crate) struct PlanView {
    /// With `--shard I/N`: the share this plan shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub balance: Option<Balance>,
    pub manifests: Vec<ManifestPlan>,
}

/// The account's tier and remaining credits.
#[derive(Debug, Serialize)]
pub(crate) struct Balance {
    pub remaining_credits: f64,
    pub tier: Option<String>,
}

/// One manifest's plan.
#[derive(Debug, Serialize)]
pub(crate) struct ManifestPlan {
    pub chains: Vec<ChainView>,
    pub manifest: String,
    pub output: String,
    pub output_format: String,
    /// Each pronunciation rule, the requests whose text has its word (a change of the rule
    /// renders exactly those again) and what that would cost.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pronunciations: Vec<RuleView>,
    /// With `--sample`: the requests the retail sample is cut from (part of the book).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<SampleView>,
    pub totals: PlanTotals,
}

/// The retail sample's requests: the first chapter's opening, up to five minutes of text.
#[derive(Debug, Serialize)]
pub(crate) struct SampleView {
    pub chapter: Option<String>,
    pub requests: Vec<String>,
    pub characters: usize,
    pub cached: usize,
    /// What its uncached requests cost; they are the book's own, so the sample adds nothing
    /// to the book's total.
    pub estimated_credits: f64,
}

/// What changing one pronunciation rule would render again.
#[derive(Debug, Serialize)]
pub(crate) struct RuleView {
    pub word: String,
    pub requests: Vec<String>,
    pub characters: usize,
    pub estimated_credits: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct PlanTotals {
    pub cached: usize,
    pub characters: usize,
    pub estimated_credits: f64,
    pub requests: usize,
    pub segments: usize,
}

/// One continuity chain.
#[derive(Debug, Serialize)]
pub(crate) struct ChainView {
    pub chapter: Option<String>,
    /// Whether its requests stitch by id, one after the other.
    pub in_order: bool,
    pub model_id: String,
    pub requests: Vec<RequestView>,
    pub voice_id: String,
}

/// One request: its label (`segment#piece`), size, cache state and context.
#[derive(Debug, Serialize)]
pub(crate) struct RequestView {
    pub cached: bool,
    pub characters: usize,
    pub next: ContextView,
    pub previous: ContextView,
    pub request: String,
    pub segment: String,
}

/// What a request sends as context: `ids` of earlier requests, `text` of a neighbour, or
/// `none`; `of` names the requests by label (or by id, for cached ones outside the chain).
#[derive(Debug, Serialize)]
pub(crate) struct ContextView {
    pub kind: &'static str,
    pub of: Vec<String>,
}

pub(crate) async fn run(args: &PlanArgs, env_key: Option<String>) -> anyhow::Result<u8> {
    let defaults = flag_defaults(&args.defaults);
    let mut jobs = super::load_jobs(&args.manifests, &defaults, None, false)?;
    let stores = crate::stores::chosen(&args.profiles);
    for job in &mut jobs {
        crate::deliver::credits::add(job, &stores)?;
        crate::deliver::check_lengths(job, &stores)?;
    }
    let shard = args.shard.parsed()?;
    if let Some(shard) = shard {
        jobs = crate::manifest::shard::restrict(jobs, shard, args.shard.shard_by);
    }
    let source = endpoint(&args.api, env_key.clone(), false)?.source();
    let mut balance = None;
    if let Some(session) = Session::optional(&args.api, env_key).await? {
        let resolved = super::resolve_voices(&session.client, &mut jobs).await;
        let sub = session.client.subscription().await;
        session.close().await;
        resolved?;
        match sub {
            Ok(sub) => {
                balance = sub.remaining().map(|remaining_credits| Balance {
                    remaining_credits,
                    tier: sub.tier.clone(),
                });
            }
            Err(e) if e.is_refused_key() => {
                return Err(UsageError(format!("the API refused the key: {e}")).into());
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the account balance; the plan has no balance line");
            }
        }
    }
    for job in &mut jobs {
        for s in &mut job.segments {
            if s.voice_id.is_empty() {
                s.voice_id = format!("voice:{}", s.voice_name.as_deref().unwrap_or(""));
            }
        }
    }
    let manifests = jobs
        .iter()
        .map(|job| {
            let state = StateDir::for_manifest(args.state_dir.as_deref(), &job.manifest);
            manifest_plan(job, &state, (&source, args.retime), args.sample)
        })
        .collect();
    let view = PlanView {
        shard: shard.map(|s| s.to_string()),
        balance,
        manifests,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print(&view);
    }
    Ok(EXIT_OK)
}

/// The requests a retail sample is cut from: the first chapter after the credits, its
/// requests that start within five minutes of text (15 characters a second).
fn sample_view(
    job: &Job,
    plan: &Plan,
    cache: Option<&Cache>,
    (source, retime): (&str, bool),
) -> SampleView {
    let runs = crate::manifest::chapters::runs(job);
    let chapter = runs.into_iter().find(|(_, range)| {
        crate::deliver::credits::role(job, range.clone()) == crate::output::report::Role::Chapter
    });
    let mut view = SampleView {
        chapter: chapter.as_ref().and_then(|(title, _)| title.clone()),
        requests: Vec::new(),
        characters: 0,
        cached: 0,
        estimated_credits: 0.0,
    };
    let Some((_, range)) = chapter else {
        return view;
    };
    let mut before = 0;
    for r in range.flat_map(|si| plan.segment_requests[si].iter().copied()) {
        if before >= crate::deliver::SAMPLE_CHARACTERS {
            break;
        }
        let key = RequestKey::of(job, plan, r, source);
        before += key.characters;
        view.requests.push(label(job, plan, r));
        view.characters += key.characters;
        if crate::execute::estimate::usable(cache, &key.key, retime).is_some() {
            view.cached += 1;
        } else {
            view.estimated_credits += key.credits;
        }
    }
    view
}

/// The label of request `r`: `segment#piece`.
pub(crate) fn label(job: &Job, plan: &Plan, r: usize) -> String {
    let request = &plan.requests[r];
    format!("{}#{}", job.segments[request.segment].id, request.piece + 1)
}

/// The plan of one job: chains, and for each request its size, cache state and context.
pub(crate) fn manifest_plan(
    job: &Job,
    state: &StateDir,
    (source, retime): (&str, bool),
    sample: bool,
) -> ManifestPlan {
    let plan = plan::plan_with_limits(job, &state.remembered_limits());
    if let Some(note) = plan::continuity_note(job, &plan) {
        eprintln!("{}: {note}", job.manifest.display());
    }
    let cache = Cache::open(&state.cache_dir()).ok();
    let estimate = execute::estimate(job, &plan, cache.as_ref(), (source, retime));
    let chains = (0..plan.chains.len())
        .map(|c| chain_view(job, &plan, c, cache.as_ref(), (source, retime)))
        .collect();
    let pronunciations = job
        .pronunciations
        .iter()
        .map(|rule| {
            let mut view = RuleView {
                word: rule.word.clone(),
                requests: Vec::new(),
                characters: 0,
                estimated_credits: 0.0,
            };
            for (r, request) in plan.requests.iter().enumerate() {
                if crate::pronounce::occurs_in(&rule.word, &request.text) {
                    let key = RequestKey::of(job, &plan, r, source);
                    view.requests.push(label(job, &plan, r));
                    view.characters += key.characters;
                    view.estimated_credits += key.credits;
                }
            }
            view
        })
        .collect();
    let sample = sample.then(|| sample_view(job, &plan, cache.as_ref(), (source, retime)));
    ManifestPlan {
        chains,
        pronunciations,
        sample,
        manifest: job.manifest.display().to_string(),
        output: job.output.display().to_string(),
        output_format: job.output_format.to_string(),
        totals: PlanTotals {
            cached: estimate.cached,
            characters: plan.characters(),
            estimated_credits: estimate.credits,
            requests: plan.requests.len(),
            segments: job.segments.len(),
        },
    }
}

/// One chain. Cached requests lend their stored ids (when fresh); the others the ids they will
/// have, written as labels.
pub(crate) fn chain_view(
    job: &Job,
    plan: &Plan,
    c: usize,
    cache: Option<&Cache>,
    (source, retime): (&str, bool),
) -> ChainView {
    let chain = &plan.chains[c];
    let now = SystemTime::now();
    let mut done: Vec<Option<plan::Done>> = Vec::new();
    let mut requests = Vec::new();
    for &r in &chain.requests {
        let request = &plan.requests[r];
        let context = plan::context_for(plan, r, &done, &[], now);
        let key = RequestKey::of(job, plan, r, source);
        let cached = crate::execute::estimate::usable(cache, &key.key, retime);
        let previous = if !context.previous_request_ids.is_empty() {
            ContextView {
                kind: "ids",
                // A cached request's stored id, or the label of one not yet rendered.
                of: context.previous_request_ids.clone(),
            }
        } else if context.previous_text.is_some() {
            ContextView {
                kind: "text",
                of: vec![label(job, plan, chain.requests[request.pos - 1])],
            }
        } else {
            ContextView {
                kind: "none",
                of: Vec::new(),
            }
        };
        let next = match context.next_text {
            Some(_) => ContextView {
                kind: "text",
                of: vec![label(job, plan, chain.requests[request.pos + 1])],
            },
            None => ContextView {
                kind: "none",
                of: Vec::new(),
            },
        };
        requests.push(RequestView {
            cached: cached.is_some(),
            characters: key.characters,
            next,
            previous,
            request: label(job, plan, r),
            segment: job.segments[request.segment].id.clone(),
        });
        done.push(Some(match cached {
            Some(meta) => plan::Done {
                request_id: meta.request_id.clone(),
                issued: meta.issued(),
            },
            None => plan::Done {
                request_id: Some(label(job, plan, r)),
                issued: now,
            },
        }));
    }
    ChainView {
        chapter: chain.chapter.as_deref().map(str::to_string),
        in_order: chain.sequential(plan),
        model_id: chain.model_id.to_string(),
        requests,
        voice_id: chain.voice_id.to_string(),
    }
}

pub(crate) fn print(view: &PlanView) {
    let context = |c: &ContextView| -> String {
        match c.kind {
            "ids" => format!("ids of {}", c.of.join(", ")),
            "text" => format!("text of {}", c.of.join(", ")),
            _ => "-".to_string(),
        }
    };
    if let Some(shard) = &view.shard {
        let requests: usize = view.manifests.iter().map(|m| m.totals.requests).sum();
        let characters: usize = view.manifests.iter().map(|m| m.totals.characters).sum();
        let credits: f64 = view
            .manifests
            .iter()
            .map(|m| m.totals.estimated_credits)
            .sum();
        println!(
            "shard {shard}: {} manifest(s), {requests} requests, {characters} characters, about {credits} credits to render",
            view.manifests.len()
        );
    }
    for doc in &view.manifests {
        println!("{} → {} ({})", doc.manifest, doc.output, doc.output_format);
        for (i, chain) in doc.chains.iter().enumerate() {
            println!(
                "  chain {}: chapter {:?}, voice {}, model {}: {} requests, {}",
                i + 1,
                chain.chapter.as_deref().unwrap_or("-"),
                chain.voice_id,
                chain.model_id,
                chain.requests.len(),
                if chain.in_order {
                    "request ids, in order"
                } else {
                    "text context, in parallel"
                }
            );
            for r in &chain.requests {
                println!(
                    "    {:<24} {:>6} chars  {:<7}  previous: {}; next: {}",
                    r.request,
                    r.characters,
                    if r.cached { "cached" } else { "to send" },
                    context(&r.previous),
                    context(&r.next),
                );
            }
        }
        for rule in &doc.pronunciations {
            println!(
                "  pronunciation {:?}: {} requests ({}), {} characters, about {} credits to render again if it changes",
                rule.word,
                rule.requests.len(),
                rule.requests.join(", "),
                rule.characters,
                rule.estimated_credits
            );
        }
        if let Some(sample) = &doc.sample {
            print_sample(sample);
        }
        let t = &doc.totals;
        println!(
            "  total: {} segments, {} requests, {} characters, {} cached, about {} credits to render",
            t.segments, t.requests, t.characters, t.cached, t.estimated_credits
        );
    }
    if let Some(b) = &view.balance {
        println!(
            "account: {} tier, {} credits remaining",
            b.tier.as_deref().unwrap_or("?"),
            b.remaining_credits
        );
    }
}

fn print_sample(sample: &SampleView) {
    println!(
        "  retail sample (--sample): from {:?}, cut from {} ({} characters, {} cached, about {} credits to render, all of them the book's own: the sample adds nothing)",
        sample.chapter.as_deref().unwrap_or("-"),
        sample.requests.join(", "),
        sample.characters,
        sample.cached,
        sample.estimated_credits
    );
}
