//! Splitting a text into request-sized pieces: at paragraph breaks, then sentence ends (not after
//! abbreviations such as "Mr."), then clause punctuation, then whitespace, never inside a word
//! that fits; pieces balanced in size, and joining them gives back the text.
//!
//! Not responsible for chains or context (see `context`).

/// Where a boundary between two pieces of text falls, from strongest to weakest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Boundary {
    Paragraph,
    Sentence,
    Clause,
    Word,
}

pub(crate) const LEVELS: [Boundary; 4] = [
    Boundary::Paragraph,
    Boundary::Sentence,
    Boundary::Clause,
    Boundary::Word,
];

/// Words that end in a period without ending a sentence.
pub(crate) const ABBREVIATIONS: &[&str] = &[
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

pub(crate) fn split_at_level(text: &str, limit: usize, level: usize, out: &mut Vec<String>) {
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
pub(crate) fn pack(
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
pub(crate) fn cut_points(text: &str, kind: Boundary) -> Vec<usize> {
    let mut cuts = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    // Inside a tag such as `<break time="1.5s"/>` nothing is a boundary; a `<` that starts
    // no tag the API reads ("a<b" in prose) is text.
    let mut in_tag = vec![false; chars.len()];
    let mut open = None;
    for (i, &(at, c)) in chars.iter().enumerate() {
        match c {
            '<' => open = starts_tag(&text[at + 1..]).then_some(i),
            '>' => {
                if let Some(start) = open.take() {
                    in_tag[start..=i].iter_mut().for_each(|t| *t = true);
                }
            }
            '\n' => open = None,
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

/// The tags a request's text may hold (the API's `break` and `phoneme`, opening or closing).
const TAGS: &[&str] = &["break", "phoneme"];

/// Whether the text after a `<` is one of [`TAGS`]: its name, then a space, `/` or `>`.
fn starts_tag(after: &str) -> bool {
    let name = after.strip_prefix('/').unwrap_or(after);
    TAGS.iter().any(|t| {
        name.get(..t.len())
            .is_some_and(|n| n.eq_ignore_ascii_case(t))
            && name[t.len()..].starts_with([' ', '/', '>', '\t'])
    })
}

/// The kind of boundary at the end of `before` (the text up to a whitespace run).
pub(crate) fn classify(before: &str, _run_start: usize) -> Boundary {
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
    fn a_paragraph_break_is_cut_before_a_sentence_end() {
        // A heading without a full stop: only its paragraph break ends it.
        let text = "Chapter One\n\nIt was a dark night. The wind howled.";
        assert_eq!(
            split_text(text, 40),
            vec!["Chapter One", "It was a dark night. The wind howled."]
        );
    }

    #[test]
    fn questions_and_exclamations_end_sentences_before_any_clause() {
        let text = "Why would anyone, at this hour, go out there? Nobody, surely, would dare! And yet, somehow, she did.";
        for piece in split_text(text, 50) {
            assert!(piece.ends_with(['?', '!', '.']), "{piece:?}");
        }
    }

    #[test]
    fn initials_do_not_end_sentences() {
        let text = "The story was written by J. R. Tolkien long ago. It is loved.";
        let pieces = split_text(text, 50);
        assert_eq!(
            pieces,
            vec![
                "The story was written by J. R. Tolkien long ago.",
                "It is loved."
            ]
        );
    }

    #[test]
    fn a_word_in_capitals_or_a_lowercase_letter_before_a_full_stop_ends_the_sentence() {
        // Only a single capital ("J.") is an initial.
        let text = "The rocket was built by NASA. It flew to the moon.";
        assert_eq!(
            split_text(text, 40),
            vec!["The rocket was built by NASA.", "It flew to the moon."]
        );
        let text = "The word ends in the letter a. Then more follows.";
        assert_eq!(
            split_text(text, 40),
            vec!["The word ends in the letter a.", "Then more follows."]
        );
    }

    #[test]
    fn a_long_cjk_sentence_is_cut_after_its_clause_marks() {
        let text = "今日は天気がとても良いので，公園まで歩いて行きました，そして友達に会いました";
        let pieces = split_text(text, 16);
        assert!(pieces.len() >= 2, "{pieces:?}");
        for piece in &pieces[..pieces.len() - 1] {
            assert!(piece.ends_with('，'), "{pieces:?}");
        }
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn a_cjk_sentence_end_is_a_stronger_cut_than_a_clause_mark() {
        // The short first sentence is a piece of its own, not glued to the next one's first
        // clause, though both would fit the limit together.
        let text = "はい。今日は天気がとても良いので，公園まで歩いて行きました。";
        assert_eq!(
            split_text(text, 20),
            vec![
                "はい。",
                "今日は天気がとても良いので，",
                "公園まで歩いて行きました。"
            ]
        );
    }

    #[test]
    fn a_tag_left_open_at_a_line_end_does_not_swallow_the_paragraphs_after_it() {
        let text = "He typed <break and stopped there.\n\nA new paragraph starts here.\n\nThen 3 > 2 was said.";
        assert_eq!(
            split_text(text, 40),
            vec![
                "He typed <break and stopped there.",
                "A new paragraph starts here.",
                "Then 3 > 2 was said."
            ]
        );
    }

    #[test]
    fn greedy_packing_is_balanced_into_even_pieces() {
        // Six sentences of 20 characters under a limit of 100: greedy packing would give four
        // and two; balanced, three and three.
        let text = "Aaaa bbbb cccc ddd. ".repeat(6);
        let pieces = split_text(&text, 100);
        let sizes: Vec<usize> = pieces.iter().map(|p| p.chars().count()).collect();
        assert_eq!(sizes.len(), 2);
        assert!(sizes[0].abs_diff(sizes[1]) <= 1, "{sizes:?}");
    }

    #[test]
    fn a_bare_angle_bracket_in_prose_does_not_stop_the_cuts() {
        let text =
            "Is a<b true? It is. The rest is long prose that goes on and on. In the end c>d.";
        let pieces = split_text(text, 30);
        // Cut at sentences and words as if the brackets were not there.
        assert_eq!(pieces[0], "Is a<b true? It is.", "{pieces:?}");
        assert_eq!(pieces.last().unwrap(), "In the end c>d.", "{pieces:?}");
        assert!(pieces.iter().all(|p| p.chars().count() <= 30), "{pieces:?}");
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
