//! The read-along book's clips: the text narrated, cut into sentences (long ones into phrases
//! at their clauses), each with where it is heard in its chapter's audio. From the API's
//! character timings when a request has them; else a request's text is one clip over its
//! place in the file (paragraph level).
//!
//! Not responsible for the EPUB's documents (see `epub`).

use crate::api::Alignment;

/// A sentence longer than this is cut into phrases at its clauses (`,` `;` `:` `—`).
pub(crate) const PHRASE_CHARS: usize = 200;

/// A piece of narrated text and where it is heard, in seconds from its file's start.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Clip {
    pub(crate) text: String,
    pub(crate) begin: f64,
    pub(crate) end: f64,
}

/// A paragraph (or a heading: a chapter's title segment): its clips, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Paragraph {
    pub(crate) heading: bool,
    pub(crate) clips: Vec<Clip>,
}

/// Clips being gathered over a chapter's requests: a sentence split over two requests stays
/// one clip.
#[derive(Default)]
pub(crate) struct Gatherer {
    pub(crate) paragraphs: Vec<Paragraph>,
    /// The clip still open (its sentence not ended).
    open: Option<Clip>,
    /// Clips timed from character timings, and clips from a request's place alone.
    pub(crate) timed: usize,
    pub(crate) placed: usize,
}

fn ends_sentence(text: &str) -> bool {
    text.trim_end_matches(['"', '\'', '\u{2019}', '\u{201D}', ')', '\u{300D}'])
        .ends_with([
            '.', '!', '?', '\u{2026}', '\u{3002}', '\u{FF01}', '\u{FF1F}',
        ])
}

fn ends_clause(text: &str) -> bool {
    text.ends_with([',', ';', ':', '\u{2014}', '\u{3001}', '\u{FF0C}'])
}

impl Gatherer {
    /// Starts a new paragraph (a segment's start; a heading for a title segment): an open
    /// clip ends where it is.
    pub(crate) fn paragraph(&mut self, heading: bool) {
        self.close();
        if self.paragraphs.last().is_none_or(|p| !p.clips.is_empty()) {
            self.paragraphs.push(Paragraph::default());
        }
        if let Some(p) = self.paragraphs.last_mut() {
            p.heading = heading;
        }
    }

    fn close(&mut self) {
        if let Some(clip) = self.open.take() {
            self.push(clip);
        }
    }

    fn push(&mut self, clip: Clip) {
        if self.paragraphs.is_empty() {
            self.paragraphs.push(Paragraph::default());
        }
        if let Some(p) = self.paragraphs.last_mut() {
            p.clips.push(clip);
        }
    }

    /// A word heard from `begin` to `end`; `gap` when a blank line came before it.
    fn word(&mut self, word: &str, begin: f64, end: f64, gap: bool) {
        if gap {
            self.paragraph(false);
        }
        match &mut self.open {
            Some(c) => {
                c.text.push(' ');
                c.text.push_str(word);
                c.end = c.end.max(end);
            }
            None => {
                self.timed += 1;
                self.open = Some(Clip {
                    text: word.to_string(),
                    begin,
                    end,
                });
            }
        }
        let text = &self
            .open
            .as_ref()
            .map(|c| c.text.clone())
            .unwrap_or_default();
        if ends_sentence(text) || (ends_clause(text) && text.chars().count() >= PHRASE_CHARS) {
            self.close();
        }
    }

    /// A request's clips from its character timings; `place` maps a time in the request's
    /// audio to its file's time. `new_paragraph` when a blank line of the segment's text is
    /// before it (the planner cut there, so its timings do not show it).
    pub(crate) fn timed(
        &mut self,
        alignment: &Alignment,
        place: &dyn Fn(f64) -> f64,
        new_paragraph: bool,
    ) {
        let n = alignment
            .characters
            .len()
            .min(alignment.character_start_times_seconds.len())
            .min(alignment.character_end_times_seconds.len());
        let mut word: Option<(String, f64, f64)> = None;
        let mut newlines = 0usize;
        let mut gap = new_paragraph;
        for i in 0..n {
            let c = &alignment.characters[i];
            let (a, b) = (
                place(alignment.character_start_times_seconds[i]),
                place(alignment.character_end_times_seconds[i]),
            );
            if c.chars().all(char::is_whitespace) {
                if let Some((w, from, to)) = word.take() {
                    self.word(&w, from, to, gap);
                    gap = false;
                }
                newlines += c.matches('\n').count();
                continue;
            }
            if word.is_none() {
                gap = gap || newlines >= 2;
                newlines = 0;
            }
            match &mut word {
                Some((w, _, to)) => {
                    w.push_str(c);
                    *to = b;
                }
                None => word = Some((c.clone(), a, b)),
            }
        }
        if let Some((w, from, to)) = word {
            self.word(&w, from, to, gap);
        }
    }

    /// A request without timings: its text is one clip over its place, its paragraphs kept
    /// as lines of that clip.
    pub(crate) fn placed(&mut self, text: &str, begin: f64, end: f64) {
        self.close();
        self.placed += 1;
        let text = text
            .split("\n\n")
            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        self.push(Clip { text, begin, end });
    }

    /// The paragraphs gathered, the last clip closed.
    pub(crate) fn finish(mut self) -> (Vec<Paragraph>, usize, usize) {
        self.close();
        self.paragraphs.retain(|p| !p.clips.is_empty());
        (self.paragraphs, self.timed, self.placed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(text: &str, from: f64) -> Alignment {
        let n = text.chars().count();
        Alignment {
            characters: text.chars().map(String::from).collect(),
            character_start_times_seconds: (0..n).map(|i| from + i as f64 * 0.1).collect(),
            character_end_times_seconds: (0..n).map(|i| from + (i + 1) as f64 * 0.1).collect(),
        }
    }

    #[test]
    fn sentences_are_clips_and_one_split_over_two_requests_is_one() {
        let mut g = Gatherer::default();
        g.paragraph(false);
        g.timed(
            &timed("Down, down. Would the fall", 0.0),
            &|t| t + 10.0,
            false,
        );
        // The second request's audio starts at 20 s in the file.
        g.timed(
            &timed("never end? It went\n\nOn.", 0.0),
            &|t| t + 20.0,
            false,
        );
        let (paragraphs, timed_clips, placed) = g.finish();
        let texts: Vec<Vec<&str>> = paragraphs
            .iter()
            .map(|p| p.clips.iter().map(|c| c.text.as_str()).collect())
            .collect();
        assert_eq!(
            texts,
            vec![
                vec!["Down, down.", "Would the fall never end?", "It went"],
                vec!["On."]
            ]
        );
        let would = &paragraphs[0].clips[1];
        assert!((would.begin - 11.2).abs() < 1e-9, "{would:?}");
        assert!((would.end - 21.0).abs() < 1e-9, "{would:?}");
        assert_eq!((timed_clips, placed), (4, 0));
    }

    #[test]
    fn a_long_sentence_is_cut_at_a_clause_and_a_request_without_timings_is_one_clip() {
        let long = format!("{}, and then the rest.", "word ".repeat(45).trim_end());
        let mut g = Gatherer::default();
        g.timed(&timed(&long, 0.0), &|t| t, false);
        g.placed("First paragraph.\n\nSecond  one.", 30.0, 41.5);
        let (paragraphs, timed_clips, placed) = g.finish();
        let clips = &paragraphs[0].clips;
        assert_eq!(clips.len(), 3);
        assert!(clips[0].text.ends_with("word,"));
        assert_eq!(clips[1].text, "and then the rest.");
        assert_eq!(
            clips[2],
            Clip {
                text: "First paragraph.\nSecond one.".into(),
                begin: 30.0,
                end: 41.5
            }
        );
        assert_eq!((timed_clips, placed), (2, 1));
    }
}
