//! Planning: each segment's text split into request-sized pieces (`split`), and the pieces
//! grouped into continuity chains (one per chapter, voice and model, in manifest order).
//!
//! The plan is static: which request ids a request sends is only known while executing, so the
//! plan records each request's place in its chain and its neighbours' texts, and
//! [`context::context_for`] turns the chain's results so far into the context of the next
//! request. Not responsible for sending anything (see `execute`).

use std::sync::Arc;

use crate::manifest::{Job, Segment};
use crate::models;

pub(crate) mod context;
pub(crate) mod split;

pub use context::{Context, Done, STITCH_MAX_AGE, context_for, text_context};
pub use split::split_text;

/// One text-to-speech request of the plan.
#[derive(Clone, Debug)]
pub struct PlannedRequest {
    /// Index of the segment in the job.
    pub segment: usize,
    /// Index of this piece within its segment.
    pub piece: usize,
    pub text: String,
    /// Index of the chain in [`Plan::chains`].
    pub chain: usize,
    /// Position within the chain.
    pub pos: usize,
    /// Whether request ids may be sent (false for `eleven_v3` and `enable_logging: false`).
    pub stitchable: bool,
}

/// The requests of one chapter with one voice and model, in manifest order.
#[derive(Clone, Debug)]
pub struct Chain {
    /// Shared by the chains of a job (a content job has a chain a row, all of one voice).
    pub chapter: Option<Arc<str>>,
    pub voice_id: Arc<str>,
    pub model_id: Arc<str>,
    /// Indices into [`Plan::requests`].
    pub requests: Vec<usize>,
}

impl Chain {
    /// Whether requests must run in order: some request wants its predecessor's id.
    pub fn sequential(&self, plan: &Plan) -> bool {
        self.requests.iter().any(|&r| plan.requests[r].stitchable)
    }
}

/// The requests of a job, in manifest order, and their chains.
#[derive(Clone, Debug)]
pub struct Plan {
    pub requests: Vec<PlannedRequest>,
    pub chains: Vec<Chain>,
    /// For each segment, the indices of its requests.
    pub segment_requests: Vec<Vec<usize>>,
    /// Requests to render again although cached (`--only`).
    pub regenerate: Vec<bool>,
    /// Requests planned for their neighbours' context but not sent this run: a chain stops
    /// at its first (an audition sends a chapter's opening requests exactly as the whole
    /// book's render would).
    pub deferred: Vec<bool>,
}

impl Plan {
    /// Total characters that would be sent as `text`.
    pub fn characters(&self) -> usize {
        self.requests.iter().map(|r| r.text.chars().count()).sum()
    }

    /// How many ask the scheduler for slots: a chain that stitches asks as one, the others
    /// once per request.
    pub fn slot_participants(&self) -> usize {
        self.chains
            .iter()
            .map(|c| {
                if c.sequential(self) {
                    1
                } else {
                    c.requests.len()
                }
            })
            .sum()
    }

    /// The plan of `segments` alone, as if they were the whole job (their requests, chains
    /// and flags, renumbered from 0), when no chain of theirs reaches a segment outside them;
    /// else `None` (a chain is never cut).
    pub fn window(&self, segments: std::ops::Range<usize>) -> Option<Plan> {
        let first = segments.start;
        let old: Vec<usize> = self.segment_requests[segments.clone()]
            .iter()
            .flatten()
            .copied()
            .collect();
        let mut new_index = std::collections::HashMap::with_capacity(old.len());
        for (i, &r) in old.iter().enumerate() {
            new_index.insert(r, i);
        }
        let mut chain_index = std::collections::HashMap::new();
        let mut chains: Vec<Chain> = Vec::new();
        let mut requests = Vec::with_capacity(old.len());
        for &r in &old {
            let request = &self.requests[r];
            let chain = *chain_index.entry(request.chain).or_insert_with(|| {
                let c = &self.chains[request.chain];
                chains.push(Chain {
                    requests: Vec::with_capacity(c.requests.len()),
                    ..c.clone()
                });
                chains.len() - 1
            });
            requests.push(PlannedRequest {
                segment: request.segment - first,
                chain,
                ..request.clone()
            });
        }
        for (&was, &now) in &chain_index {
            let members = &self.chains[was].requests;
            chains[now].requests = members
                .iter()
                .map(|r| new_index.get(r).copied())
                .collect::<Option<_>>()?;
        }
        Some(Plan {
            requests,
            chains,
            segment_requests: self.segment_requests[segments]
                .iter()
                .map(|rs| rs.iter().map(|r| new_index[r]).collect())
                .collect(),
            regenerate: old.iter().map(|&r| self.regenerate[r]).collect(),
            deferred: old.iter().map(|&r| self.deferred[r]).collect(),
        })
    }
}

/// Rows without a chapter chained one to the next past which `check` and `plan` warn.
pub const LONG_IMPLICIT_CHAIN: usize = 300;

/// What `check` and `plan` say of a job's continuity: which applies when it is `none`, and a
/// warning when many segments without a chapter are chained one to the next (unrelated rows
/// of a CSV conditioning each other's voice, one request at a time).
pub fn continuity_note(job: &Job, plan: &Plan) -> Option<String> {
    if job.continuity == Continuity::Independent {
        return Some(format!(
            "continuity none: {} chains, one per segment, with no ids or neighbouring text",
            plan.chains.len()
        ));
    }
    let longest = plan
        .chains
        .iter()
        .filter(|c| c.chapter.is_none())
        .map(|c| c.requests.len())
        .max()?;
    (longest > LONG_IMPLICIT_CHAIN).then(|| {
        format!(
            "warning: {longest} requests without a chapter are chained one to the next (each sends its neighbours' ids and text, one at a time); for unrelated items set `continuity: none` in the manifest, or --continuity none"
        )
    })
}

/// Builds the plan of a job: linear in its segments, however many chains.
pub fn plan(job: &Job) -> Plan {
    plan_limited(job, request_limit)
}

/// Builds the plan of a job, each segment cut under `limit(segment)` characters a request.
fn plan_limited(job: &Job, limit: impl Fn(&Segment) -> usize) -> Plan {
    let mut requests = Vec::new();
    let mut chains: Vec<Chain> = Vec::new();
    let mut chain_of: std::collections::HashMap<(Option<&str>, &str, &str, usize), usize> =
        std::collections::HashMap::new();
    let mut segment_requests = Vec::with_capacity(job.segments.len());
    let mut shared_text: std::collections::HashMap<String, Arc<str>> = Default::default();
    for (si, segment) in job.segments.iter().enumerate() {
        // With no continuity, a segment's own index keeps it apart from every other.
        let alone = if job.continuity == Continuity::Independent {
            si
        } else {
            0
        };
        let wanted = (
            segment.chapter.as_deref(),
            segment.voice_id.as_str(),
            segment.model_id.as_str(),
            alone,
        );
        let chain = *chain_of.entry(wanted).or_insert_with(|| {
            let mut shared = |s: &str| -> Arc<str> {
                shared_text
                    .entry(s.to_string())
                    .or_insert_with(|| s.into())
                    .clone()
            };
            chains.push(Chain {
                chapter: segment.chapter.as_deref().map(&mut shared),
                voice_id: shared(&segment.voice_id),
                model_id: shared(&segment.model_id),
                requests: Vec::new(),
            });
            chains.len() - 1
        });
        let mut mine = Vec::new();
        for (piece, text) in split_text(&segment.text, limit(segment))
            .into_iter()
            .enumerate()
        {
            let index = requests.len();
            requests.push(PlannedRequest {
                segment: si,
                piece,
                text,
                chain,
                pos: chains[chain].requests.len(),
                stitchable: stitchable(segment),
            });
            chains[chain].requests.push(index);
            mine.push(index);
        }
        segment_requests.push(mine);
    }
    let regenerate = vec![false; requests.len()];
    Plan {
        deferred: regenerate.clone(),
        requests,
        chains,
        segment_requests,
        regenerate,
    }
}

pub use crate::manifest::Continuity;
pub use crate::models::{Limits, plausible_limits};

/// Builds the plan of a job with the API's model limits.
pub fn plan_with_limits(job: &Job, limits: &Limits) -> Plan {
    plan_limited(job, |segment| {
        let max = limits.get(&segment.model_id).copied();
        request_limit(segment).min(max.unwrap_or(usize::MAX))
    })
}

/// Marks the requests of these segments for regeneration (`--only`).
pub fn mark_regenerate(plan: &mut Plan, job: &Job, ids: &[String]) {
    // A set: `--only-file` may list tens of thousands of ids.
    let ids: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    for (si, segment) in job.segments.iter().enumerate() {
        if ids.contains(segment.id.as_str()) {
            for &r in &plan.segment_requests[si] {
                plan.regenerate[r] = true;
            }
        }
    }
}

/// The most characters one request of this segment may carry.
pub fn request_limit(segment: &Segment) -> usize {
    let model = models::find(&segment.model_id).map_or(usize::MAX, |m| m.max_chars);
    segment.max_request_chars.min(model)
}

pub(crate) fn stitchable(segment: &Segment) -> bool {
    segment.enable_logging && models::find(&segment.model_id).is_some_and(|m| m.stitching)
}

#[cfg(test)]
mod tests {
    /// Three chapters of `per` segments each (one voice, one chain a chapter).
    fn job(dir: &std::path::Path, per: usize) -> crate::manifest::Job {
        let lines: Vec<String> = (0..3)
            .flat_map(|c| (0..per).map(move |k| (c, k)))
            .map(|(c, k)| {
                format!("{{id: c{c}-{k}, chapter: C{c}, text: \"Chapter {c}, line {k}.\"}}")
            })
            .collect();
        rows(dir, &lines)
    }

    /// A manifest of these segment lines (`{id: .., text: ..}` and any other fields).
    fn rows(dir: &std::path::Path, lines: &[String]) -> crate::manifest::Job {
        let mut yaml = String::from(
            "output: out/w.mp3\ndefaults: {voice_id: JBFqnCBsd6RMkjVDRZzb}\nsegments:\n",
        );
        for line in lines {
            yaml.push_str(&format!("  - {line}\n"));
        }
        crate::manifest::from_yaml(&dir.join("w.yaml"), &yaml)
    }

    #[test]
    fn the_characters_to_be_sent_are_counted_in_characters_not_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let job = rows(
            dir.path(),
            &[
                "{id: a, text: \"Café crème.\"}".into(),
                "{id: b, text: \"  Naïve.  \"}".into(),
            ],
        );
        // 11 and 6 characters (15 and 7 bytes), the second sent trimmed.
        assert_eq!(super::plan(&job).characters(), 17);
    }

    #[test]
    fn a_chain_that_stitches_asks_for_slots_once_and_one_that_does_not_once_a_request() {
        let dir = tempfile::tempdir().unwrap();
        let mut lines: Vec<String> = (0..3)
            .map(|k| format!("{{id: a{k}, chapter: A, text: \"Line {k}.\"}}"))
            .collect();
        lines.extend((0..2).map(|k| {
            format!("{{id: b{k}, chapter: B, model_id: eleven_v3, text: \"Line {k}.\"}}")
        }));
        let plan = super::plan(&rows(dir.path(), &lines));
        // Chapter A's three requests wait for each other's ids: one participant. eleven_v3
        // takes no ids, so chapter B's two run on their own: two.
        assert_eq!(plan.slot_participants(), 3);
    }

    #[test]
    fn more_than_three_hundred_rows_chained_without_a_chapter_are_warned_of() {
        let dir = tempfile::tempdir().unwrap();
        let lines = |n: usize| -> Vec<String> {
            (0..n)
                .map(|k| format!("{{id: r{k}, text: \"Row {k}.\"}}"))
                .collect()
        };
        let note = |n: usize| {
            let job = rows(dir.path(), &lines(n));
            super::continuity_note(&job, &super::plan(&job))
        };
        assert_eq!(note(300), None);
        let warning = note(301).expect("a warning at 301");
        assert!(
            warning.starts_with("warning: 301 requests without a chapter are chained"),
            "{warning}"
        );
    }

    #[test]
    fn a_window_is_its_segments_as_a_job_of_their_own_and_never_cuts_a_chain() {
        let dir = tempfile::tempdir().unwrap();
        let plan = super::plan(&job(dir.path(), 2));
        assert!(plan.window(1..3).is_none(), "C0's chain would be cut");
        let window = plan.window(2..6).expect("chapters C1 and C2 whole");
        let texts: Vec<&str> = window.requests.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Chapter 1, line 0.",
                "Chapter 1, line 1.",
                "Chapter 2, line 0.",
                "Chapter 2, line 1."
            ]
        );
        assert_eq!(window.chains.len(), 2);
        for (i, request) in window.requests.iter().enumerate() {
            assert_eq!(
                request.segment, i,
                "segments numbered from the window's first"
            );
            let chain = &window.chains[request.chain];
            assert_eq!(
                chain.requests[request.pos], i,
                "request {i} is where its chain says"
            );
            let chapter = format!("C{}", 1 + i / 2);
            assert_eq!(chain.chapter.as_deref(), Some(chapter.as_str()));
        }
        assert_eq!(window.segment_requests, [[0], [1], [2], [3]]);
    }

    #[test]
    fn an_id_is_sent_until_ten_minutes_before_the_apis_two_hours() {
        let dir = tempfile::tempdir().unwrap();
        let plan = super::plan(&job(dir.path(), 2));
        let now = std::time::SystemTime::now();
        let minutes = |m: u64| std::time::Duration::from_secs(60 * m);
        let issued = |age| {
            [Some(super::Done {
                request_id: Some("first".into()),
                issued: now - age,
            })]
        };
        // An hour and 49 minutes old: still fresh.
        let context = super::context_for(&plan, 1, &issued(minutes(109)), &[], now);
        assert_eq!(context.previous_request_ids, ["first"]);
        assert_eq!(context.previous_text, None);
        // An hour and 51 minutes old: the text instead.
        let context = super::context_for(&plan, 1, &issued(minutes(111)), &[], now);
        assert!(context.previous_request_ids.is_empty());
        assert_eq!(context.previous_text.as_deref(), Some("Chapter 0, line 0."));
    }

    #[test]
    fn a_chains_first_request_resent_without_ids_carries_only_the_next_text() {
        // `--only` the first request: it sends the next takes' ids, and when the API refuses
        // them it is sent again with its neighbour's text; it has no previous one.
        let dir = tempfile::tempdir().unwrap();
        let plan = super::plan(&job(dir.path(), 2));
        let context = super::text_context(&plan, 0);
        assert_eq!(context.previous_text, None);
        assert_eq!(context.next_text.as_deref(), Some("Chapter 0, line 1."));
        let last = super::text_context(&plan, 1);
        assert_eq!(last.previous_text.as_deref(), Some("Chapter 0, line 0."));
        assert_eq!(last.next_text, None);
    }

    #[test]
    fn only_a_request_rendered_again_sends_the_ids_of_the_takes_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = super::plan(&job(dir.path(), 3));
        // `--only` the chapter's first request; the cache holds takes for all three.
        plan.regenerate[0] = true;
        let now = std::time::SystemTime::now();
        let take = |id: &str| {
            Some(super::Done {
                request_id: Some(id.into()),
                issued: now,
            })
        };
        let ahead = [take("zero"), take("one"), take("two")];
        let again = super::context_for(&plan, 0, &[], &ahead, now);
        assert_eq!(again.next_request_ids, ["one", "two"]);
        assert_eq!(again.next_text, None);
        // The second, rendered (its take lost, say) but not asked for again: its next text.
        let first_time = super::context_for(&plan, 1, &[take("zero")], &ahead, now);
        assert!(first_time.next_request_ids.is_empty(), "{first_time:?}");
        assert_eq!(first_time.next_text.as_deref(), Some("Chapter 0, line 2."));
    }
}
