//! Continuity context: what request k of a chain sends, from the results of the chain so far
//! (`previous_request_ids` while fresh, `previous_text` otherwise) and its neighbours' texts
//! (`next_text`), or the cached requests after it (`next_request_ids`) when it is re-rendered.
//!
//! Not responsible for splitting (see `split`).

use std::time::{Duration, SystemTime};

use super::Plan;

/// How long a request id stays usable for stitching: two hours less a safety margin.
pub const STITCH_MAX_AGE: Duration = Duration::from_secs(2 * 3600 - 10 * 60);

/// What a finished request left for its successors.
#[derive(Clone, Debug)]
pub struct Done {
    /// The `request-id` header, when the request succeeded.
    pub request_id: Option<String>,
    /// When the id was issued (ids older than [`STITCH_MAX_AGE`] are not sent).
    pub issued: SystemTime,
}

/// The continuity fields of one request body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    pub previous_request_ids: Vec<String>,
    pub previous_text: Option<String>,
    pub next_text: Option<String>,
    /// Sent when regenerating a request whose successors are cached (`--only`).
    pub next_request_ids: Vec<String>,
}

/// The context of request `index`, given what the earlier requests of its chain left
/// (`done[p]` for chain position `p`, `None` when not finished) and, when regenerating, what the
/// cache holds for the requests after it (`ahead[p]`). `now` decides id freshness.
pub fn context_for(
    plan: &Plan,
    index: usize,
    done: &[Option<Done>],
    ahead: &[Option<Done>],
    now: SystemTime,
) -> Context {
    let request = &plan.requests[index];
    let chain = &plan.chains[request.chain];
    let pos = request.pos;
    let text_at = |p: usize| plan.requests[chain.requests[p]].text.clone();
    let usable_id = |p: usize, d: Option<&Done>| -> Option<String> {
        match d {
            Some(Done {
                request_id: Some(id),
                issued,
            }) if plan.requests[chain.requests[p]].stitchable && fresh(*issued, now) => {
                Some(id.clone())
            }
            _ => None,
        }
    };
    let mut ids = Vec::new();
    if request.stitchable {
        for p in (pos.saturating_sub(3)..pos).rev() {
            match usable_id(p, done.get(p).and_then(|d| d.as_ref())) {
                Some(id) => ids.push(id),
                None => break,
            }
        }
        ids.reverse();
    }
    let mut next_ids = Vec::new();
    let successor_cached =
        pos + 1 < chain.requests.len() && !plan.regenerate[chain.requests[pos + 1]];
    if request.stitchable && plan.regenerate[index] && successor_cached {
        for p in pos + 1..(pos + 4).min(chain.requests.len()) {
            if plan.regenerate[chain.requests[p]] {
                break;
            }
            match usable_id(p, ahead.get(p).and_then(|d| d.as_ref())) {
                Some(id) => next_ids.push(id),
                None => break,
            }
        }
    }
    let previous_text = (ids.is_empty() && pos > 0).then(|| text_at(pos - 1));
    let next_text =
        (next_ids.is_empty() && pos + 1 < chain.requests.len()).then(|| text_at(pos + 1));
    Context {
        previous_request_ids: ids,
        previous_text,
        next_text,
        next_request_ids: next_ids,
    }
}

/// The context to use after the API refused a request's ids: texts instead.
pub fn text_context(plan: &Plan, index: usize) -> Context {
    let request = &plan.requests[index];
    let chain = &plan.chains[request.chain];
    let text_at = |p: usize| plan.requests[chain.requests[p]].text.clone();
    Context {
        previous_request_ids: Vec::new(),
        previous_text: (request.pos > 0).then(|| text_at(request.pos - 1)),
        next_text: (request.pos + 1 < chain.requests.len()).then(|| text_at(request.pos + 1)),
        next_request_ids: Vec::new(),
    }
}

pub(crate) fn fresh(issued: SystemTime, now: SystemTime) -> bool {
    now.duration_since(issued)
        .map_or(true, |age| age < STITCH_MAX_AGE)
}
