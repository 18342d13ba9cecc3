//! What a request is, independent of its context: its body, its cache key and its estimated
//! cost ([`RequestKey`], the one owner of these facts for render and plan alike), and what a
//! plan would still cost ([`estimate`]).
//!
//! Not responsible for sending (see `request`).

use crate::api::TtsBody;
use crate::manifest::Job;
use crate::plan::{Context, Plan};
use crate::state::cache::{self, Cache};

/// A request's identity: the cache key of its audio (everything that determines it, context
/// excluded) and what sending it costs.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestKey {
    pub key: String,
    pub characters: usize,
    /// Characters × the model's credits per character.
    pub credits: f64,
}

impl RequestKey {
    /// The key of request `r`; `source` is the cache namespace (see `cli::Endpoint::source`).
    pub fn of(job: &Job, plan: &Plan, r: usize, source: &str) -> Self {
        let request = &plan.requests[r];
        let segment = &job.segments[request.segment];
        let mut body = body_for(job, plan, r, &Context::default());
        // The managed dictionary's id and version change with every edit of any rule; what
        // the audio depends on is the rules that apply to this text, so they are the key.
        if let Some(managed) = &job.dictionary {
            body.pronunciation_dictionary_locators
                .retain(|l| l != managed);
        }
        let rules = crate::pronounce::matching(&job.pronunciations, &request.text);
        let source = if rules.is_empty() {
            source.to_string()
        } else {
            format!(
                "{source}\npronunciations:{}",
                serde_json::to_string(&rules).unwrap_or_default()
            )
        };
        let characters = request.text.chars().count();
        RequestKey {
            key: cache::key(
                &segment.voice_id,
                &job.output_format.to_string(),
                &body,
                &source,
            ),
            characters,
            credits: characters as f64
                * crate::models::find(&segment.model_id).map_or(1.0, |m| m.credits_per_char),
        }
    }
}

/// What rendering a plan would still cost: requests not in the cache and their estimated
/// credits (characters × the model's rate).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Estimate {
    pub requests: usize,
    /// The first segment with an uncached request that is not being regenerated (`--only`
    /// needs everything else cached).
    pub missing: Option<usize>,
    pub cached: usize,
    pub characters: usize,
    pub credits: f64,
}

impl Estimate {
    /// Adds another plan's estimate (several manifests in one run).
    pub fn add(&mut self, other: &Estimate) {
        self.requests += other.requests;
        self.cached += other.cached;
        self.characters += other.characters;
        self.credits += other.credits;
    }
}

/// The cache's entry for `key` when a run can take it: with `retime`, audio cached without
/// character timings is rendered again, so its entry is not.
pub(crate) fn usable(cache: Option<&Cache>, key: &str, retime: bool) -> Option<cache::Meta> {
    let (meta, _) = cache?.get(key)?;
    (meta.alignment || !retime).then_some(meta)
}

/// Estimates the uncached work of a plan.
/// With `retime`, audio cached without character timings counts as to be rendered again.
pub fn estimate(
    job: &Job,
    plan: &Plan,
    cache: Option<&Cache>,
    (source, retime): (&str, bool),
) -> Estimate {
    let mut e = Estimate::default();
    for (r, request) in plan.requests.iter().enumerate() {
        if plan.deferred[r] {
            continue;
        }
        let key = RequestKey::of(job, plan, r, source);
        let hit = usable(cache, &key.key, retime).is_some();
        if !plan.regenerate[r] && hit {
            e.cached += 1;
            continue;
        }
        if !plan.regenerate[r] {
            e.missing.get_or_insert(request.segment);
        }
        e.requests += 1;
        e.characters += key.characters;
        e.credits += key.credits;
    }
    e
}

/// The body of request `r` with its context; the manifest's dictionary goes with a text that has
/// one of its words.
pub fn body_for(job: &Job, plan: &Plan, r: usize, context: &Context) -> TtsBody {
    let request = &plan.requests[r];
    let segment = &job.segments[request.segment];
    let mut locators = segment.pronunciation_dictionary_locators.clone();
    if let Some(managed) = &job.dictionary
        && !crate::pronounce::matching(&job.pronunciations, &request.text).is_empty()
    {
        locators.push(managed.clone());
    }
    TtsBody {
        text: request.text.clone(),
        model_id: segment.model_id.clone(),
        language_code: segment.language_code.clone(),
        voice_settings: segment.voice_settings.clone(),
        pronunciation_dictionary_locators: locators,
        seed: segment.seed,
        previous_text: context.previous_text.clone(),
        next_text: context.next_text.clone(),
        previous_request_ids: context.previous_request_ids.clone(),
        next_request_ids: context.next_request_ids.clone(),
        apply_text_normalization: segment.apply_text_normalization.clone(),
    }
}
