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
    /// Requests to render again although cached (`--only`).
    pub regenerate: Vec<bool>,
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
    let regenerate = vec![false; requests.len()];
    Plan {
        requests,
        chains,
        segment_requests,
        regenerate,
    }
}

/// Per-request character limits by model id, from `GET /v1/models` when it was reachable;
/// models missing here use the built-in table.
pub type Limits = std::collections::HashMap<String, usize>;

/// Builds the plan of a job with the API's model limits.
pub fn plan_with_limits(job: &Job, limits: &Limits) -> Plan {
    let mut limited = job.clone();
    for segment in &mut limited.segments {
        if let Some(&max) = limits.get(&segment.model_id) {
            segment.max_request_chars = segment.max_request_chars.min(max);
        }
    }
    plan(&limited)
}

/// Marks the requests of these segments for regeneration (`--only`).
pub fn mark_regenerate(plan: &mut Plan, job: &Job, ids: &[String]) {
    for (si, segment) in job.segments.iter().enumerate() {
        if ids.contains(&segment.id) {
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
    let mut bounds = vec![0];
    bounds.extend(
        cut_points(text, kind)
            .into_iter()
            .filter(|&c| c > 0 && c < text.len()),
    );
    bounds.push(text.len());
    bounds.dedup();
    let len = |r: &std::ops::Range<usize>| text[r.clone()].trim().chars().count();
    let units: Vec<std::ops::Range<usize>> = bounds.windows(2).map(|w| w[0]..w[1]).collect();

    // Greedy packing gives the fewest pieces; then the smallest cap that still gives that many
    // pieces spreads the text evenly, so no request is a three-character tail.
    let greedy = pack(&units, limit, limit, &len);
    let pieces = greedy.iter().filter(|g| !g.1).count();
    let groups = if pieces >= 2 {
        let small: Vec<usize> = units.iter().map(&len).filter(|&l| l <= limit).collect();
        let total: usize = greedy.iter().filter(|g| !g.1).map(|g| len(&g.0)).sum();
        let mut lo = small
            .iter()
            .copied()
            .max()
            .unwrap_or(1)
            .max(total.div_ceil(pieces));
        let mut hi = limit;
        while lo < hi {
            let mid = (lo + hi) / 2;
            if pack(&units, mid, limit, &len).len() == greedy.len() {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        pack(&units, lo, limit, &len)
    } else {
        greedy
    };
    for (range, oversize) in groups {
        if oversize {
            split_at_level(&text[range], limit, level + 1, out);
        } else if len(&range) > 0 {
            out.push(text[range].trim().to_string());
        }
    }
}

/// Packs consecutive units into groups of at most `cap` characters. A unit longer than `limit`
/// becomes a group of its own, marked `true`, to be split at a finer level.
fn pack(
    units: &[std::ops::Range<usize>],
    cap: usize,
    limit: usize,
    len: &dyn Fn(&std::ops::Range<usize>) -> usize,
) -> Vec<(std::ops::Range<usize>, bool)> {
    let mut groups = Vec::new();
    let mut current: Option<std::ops::Range<usize>> = None;
    for unit in units {
        if len(unit) > limit {
            if let Some(c) = current.take() {
                groups.push((c, false));
            }
            groups.push((unit.clone(), true));
            continue;
        }
        current = match current {
            Some(c) if len(&(c.start..unit.end)) <= cap => Some(c.start..unit.end),
            Some(c) => {
                groups.push((c, false));
                Some(unit.clone())
            }
            None => Some(unit.clone()),
        };
    }
    if let Some(c) = current {
        groups.push((c, false));
    }
    groups
}

/// Byte offsets where a piece may start, for boundaries at least as strong as `kind`.
fn cut_points(text: &str, kind: Boundary) -> Vec<usize> {
    let mut cuts = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    // Inside a tag such as `<break time="1.5s"/>` nothing is a boundary.
    let mut in_tag = vec![false; chars.len()];
    let mut open = None;
    for (i, &(_, c)) in chars.iter().enumerate() {
        match c {
            '<' if chars
                .get(i + 1)
                .is_some_and(|&(_, n)| n.is_ascii_alphabetic() || n == '/') =>
            {
                open = Some(i)
            }
            '>' => {
                if let Some(start) = open.take() {
                    in_tag[start..=i].iter_mut().for_each(|t| *t = true);
                }
            }
            _ => {}
        }
    }
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let next_is_text = chars.get(i + 1).is_some_and(|&(_, n)| !n.is_whitespace());
        let cjk = match c {
            '。' | '！' | '？' => Some(Boundary::Sentence),
            '，' | '、' | '；' | '：' => Some(Boundary::Clause),
            _ => None,
        };
        if let Some(level) = cjk
            && level <= kind
            && next_is_text
        {
            cuts.push(chars[i + 1].0);
        }
        if !c.is_whitespace() || in_tag[i] {
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
        ',' | ';' | ':' | '—' | '–' | '，' | '、' | '；' | '：' => Boundary::Clause,
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
    fn pieces_are_balanced() {
        let text = "Aaaa bbbb cccc dddd. ".repeat(10) + "End.";
        let pieces = split_text(&text, 120);
        assert_eq!(pieces.len(), 2);
        let (a, b) = (pieces[0].chars().count(), pieces[1].chars().count());
        assert!(a.abs_diff(b) <= 21, "{a} vs {b}");
    }

    #[test]
    fn break_tags_are_never_cut() {
        let text = r#"One two three <break time="1.5s"/> four five six seven eight nine ten"#;
        for limit in 20..40 {
            for piece in split_text(text, limit) {
                assert_eq!(
                    piece.matches('<').count(),
                    piece.matches('>').count(),
                    "{piece:?}"
                );
            }
        }
    }

    #[test]
    fn cjk_sentences_split_without_spaces() {
        let text = "今日は晴れです。明日は雨が降るでしょう。週末は曇りです。";
        let pieces = split_text(text, 12);
        assert_eq!(
            pieces,
            vec![
                "今日は晴れです。",
                "明日は雨が降るでしょう。",
                "週末は曇りです。"
            ]
        );
    }

    #[test]
    fn quotes_stay_with_their_sentence() {
        let text = "'Oh dear! Oh dear! I shall be late!' (when she thought it over afterwards.) It was all quite natural.";
        let pieces = split_text(text, 40);
        assert_eq!(pieces[0], "'Oh dear! Oh dear! I shall be late!'");
        assert!(pieces.iter().any(|p| p.starts_with("(when")));
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
