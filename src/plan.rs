//! Planning: each segment's text split into request-sized pieces, and the pieces grouped into
//! continuity chains (one per chapter, voice and model, in manifest order).
//!
//! The plan is static: which request ids a request sends is only known while executing, so the
//! plan records each request's place in its chain and its neighbours' texts, and
//! [`context_for`] turns the chain's results so far into the context of the next request.
//! Not responsible for sending anything (see `execute`).

use std::time::{Duration, SystemTime};

use crate::manifest::{Job, Segment};
use crate::models;

/// How long a request id stays usable for stitching: two hours less a safety margin.
pub const STITCH_MAX_AGE: Duration = Duration::from_secs(2 * 3600 - 10 * 60);

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
    pub chapter: Option<String>,
    pub voice_id: String,
    pub model_id: String,
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
}

impl Plan {
    /// Total characters that would be sent as `text`.
    pub fn characters(&self) -> usize {
        self.requests.iter().map(|r| r.text.chars().count()).sum()
    }
}

/// Builds the plan of a job.
pub fn plan(job: &Job) -> Plan {
    let mut requests = Vec::new();
    let mut chains: Vec<Chain> = Vec::new();
    let mut segment_requests = Vec::with_capacity(job.segments.len());
    for (si, segment) in job.segments.iter().enumerate() {
        let chain = match chains.iter().position(|c| {
            c.chapter == segment.chapter
                && c.voice_id == segment.voice_id
                && c.model_id == segment.model_id
        }) {
            Some(c) => c,
            None => {
                chains.push(Chain {
                    chapter: segment.chapter.clone(),
                    voice_id: segment.voice_id.clone(),
                    model_id: segment.model_id.clone(),
                    requests: Vec::new(),
                });
                chains.len() - 1
            }
        };
        let mut mine = Vec::new();
        for (piece, text) in split_text(&segment.text, request_limit(segment))
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
    Plan {
        requests,
        chains,
        segment_requests,
    }
}

/// The most characters one request of this segment may carry.
pub fn request_limit(segment: &Segment) -> usize {
    let model = models::find(&segment.model_id).map_or(usize::MAX, |m| m.max_chars);
    segment.max_request_chars.min(model)
}

fn stitchable(segment: &Segment) -> bool {
    segment.enable_logging && models::find(&segment.model_id).is_some_and(|m| m.stitching)
}

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
}

/// The context of request `index`, given what the earlier requests of its chain left
/// (`done[p]` for chain position `p`, `None` when not finished). `now` decides id freshness.
pub fn context_for(plan: &Plan, index: usize, done: &[Option<Done>], now: SystemTime) -> Context {
    let request = &plan.requests[index];
    let chain = &plan.chains[request.chain];
    let pos = request.pos;
    let text_at = |p: usize| plan.requests[chain.requests[p]].text.clone();
    let next_text = (pos + 1 < chain.requests.len()).then(|| text_at(pos + 1));
    let mut ids = Vec::new();
    if request.stitchable {
        for p in (pos.saturating_sub(3)..pos).rev() {
            let usable = plan.requests[chain.requests[p]].stitchable;
            match done.get(p).and_then(|d| d.as_ref()) {
                Some(Done {
                    request_id: Some(id),
                    issued,
                }) if usable && fresh(*issued, now) => ids.push(id.clone()),
                _ => break,
            }
        }
        ids.reverse();
    }
    let previous_text = (ids.is_empty() && pos > 0).then(|| text_at(pos - 1));
    Context {
        previous_request_ids: ids,
        previous_text,
        next_text,
    }
}

fn fresh(issued: SystemTime, now: SystemTime) -> bool {
    now.duration_since(issued)
        .map_or(true, |age| age < STITCH_MAX_AGE)
}

/// Where a boundary between two pieces of text falls, from strongest to weakest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Boundary {
    Paragraph,
    Sentence,
    Clause,
    Word,
}

const LEVELS: [Boundary; 4] = [
    Boundary::Paragraph,
    Boundary::Sentence,
    Boundary::Clause,
    Boundary::Word,
];

/// Words that end in a period without ending a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "mt", "vs", "e.g", "i.e", "u.s", "u.k",
    "no", "fig", "rev", "gen", "col", "capt", "lt", "sgt", "hon",
];

/// Splits `text` into pieces of at most `limit` characters, cutting at the strongest boundary
/// that fits: paragraph, then sentence, then clause, then whitespace. A single word longer than
/// the limit is the only thing ever cut inside. Pieces are trimmed; joining them with whitespace
/// gives back the text.
pub fn split_text(text: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    split_at_level(text.trim(), limit.max(1), 0, &mut out);
    out
}

fn split_at_level(text: &str, limit: usize, level: usize, out: &mut Vec<String>) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    if text.chars().count() <= limit {
        out.push(text.to_string());
        return;
    }
    let Some(&kind) = LEVELS.get(level) else {
        // One word longer than the limit: cut between characters.
        let chars: Vec<char> = text.chars().collect();
        for chunk in chars.chunks(limit) {
            out.push(chunk.iter().collect());
        }
        return;
    };
    let cuts = cut_points(text, kind);
    let mut start = 0;
    let mut end = 0;
    for &cut in cuts.iter().chain(std::iter::once(&text.len())) {
        if cut <= end {
            continue;
        }
        if text[start..cut].trim().chars().count() <= limit {
            end = cut;
            continue;
        }
        // `start..end` is full; flush it, then place the unit `end..cut`.
        if end > start {
            out.push(text[start..end].trim().to_string());
            start = end;
        }
        if text[start..cut].trim().chars().count() > limit {
            split_at_level(&text[start..cut], limit, level + 1, out);
            start = cut;
        }
        end = cut;
    }
    if end > start && !text[start..end].trim().is_empty() {
        out.push(text[start..end].trim().to_string());
    }
}

/// Byte offsets where a piece may start, for boundaries at least as strong as `kind`.
fn cut_points(text: &str, kind: Boundary) -> Vec<usize> {
    let mut cuts = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if matches!(c, '。' | '！' | '？') && kind >= Boundary::Sentence {
            let next = chars.get(i + 1).map_or(text.len(), |&(b, _)| b);
            if chars.get(i + 1).is_some_and(|&(_, n)| !n.is_whitespace()) {
                cuts.push(next);
            }
        }
        if !c.is_whitespace() {
            i += 1;
            continue;
        }
        let run_start = i;
        let mut newlines = 0;
        while i < chars.len() && chars[i].1.is_whitespace() {
            newlines += usize::from(chars[i].1 == '\n');
            i += 1;
        }
        let after = chars.get(i).map_or(text.len(), |&(b, _)| b);
        let boundary = if newlines >= 2 {
            Boundary::Paragraph
        } else {
            classify(&text[..at], run_start)
        };
        if boundary <= kind {
            cuts.push(after);
        }
    }
    cuts
}

/// The kind of boundary at the end of `before` (the text up to a whitespace run).
fn classify(before: &str, _run_start: usize) -> Boundary {
    let trimmed = before.trim_end_matches(['"', '\'', '”', '’', ')', ']', '»']);
    let Some(last) = trimmed.chars().last() else {
        return Boundary::Word;
    };
    match last {
        '!' | '?' | '…' | '。' | '！' | '？' => Boundary::Sentence,
        '.' => {
            let word = trimmed[..trimmed.len() - 1]
                .rsplit(char::is_whitespace)
                .next()
                .unwrap_or("")
                .trim_start_matches(['"', '\'', '“', '‘', '(', '[', '«']);
            let lower = word.to_lowercase();
            let initial = word.chars().count() == 1 && word.chars().all(char::is_uppercase);
            if initial || ABBREVIATIONS.contains(&lower.as_str()) {
                Boundary::Word
            } else {
                Boundary::Sentence
            }
        }
        ',' | ';' | ':' | '—' | '–' => Boundary::Clause,
        _ => Boundary::Word,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn squash(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(split_text("  Hello there.  ", 100), vec!["Hello there."]);
    }

    #[test]
    fn prefers_paragraphs_then_sentences() {
        let text = "One two three. Four five six.\n\nSeven eight nine. Ten eleven.";
        let pieces = split_text(text, 40);
        assert_eq!(
            pieces,
            vec![
                "One two three. Four five six.",
                "Seven eight nine. Ten eleven."
            ]
        );
        let pieces = split_text(text, 20);
        assert_eq!(
            pieces,
            vec![
                "One two three.",
                "Four five six.",
                "Seven eight nine.",
                "Ten eleven."
            ]
        );
    }

    #[test]
    fn abbreviations_do_not_end_sentences() {
        let text = "Mr. Dodgson met Dr. Liddell at St. Mary's. Then J. R. left.";
        let pieces = split_text(text, 45);
        assert_eq!(pieces[0], "Mr. Dodgson met Dr. Liddell at St. Mary's.");
    }

    #[test]
    fn falls_back_to_clauses_and_words_and_loses_nothing() {
        let text =
            "alpha beta gamma, delta epsilon zeta; eta theta iota kappa lambda mu nu xi omicron";
        for limit in [9, 17, 25, 40] {
            let pieces = split_text(text, limit);
            assert!(
                pieces.iter().all(|p| p.chars().count() <= limit),
                "{pieces:?}"
            );
            assert_eq!(squash(&pieces.join(" ")), squash(text));
        }
        assert_eq!(
            split_text(text, 40)[0],
            "alpha beta gamma, delta epsilon zeta;"
        );
    }

    #[test]
    fn never_cuts_inside_a_word_that_fits() {
        let text = "supercalifragilistic expialidocious words here";
        for piece in split_text(text, 21) {
            assert!(text.split_whitespace().any(|w| piece.contains(w)));
            assert!(!piece.starts_with("ilistic"));
        }
    }
}
