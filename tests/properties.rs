//! Property tests of the planner: splitting loses and reorders nothing and respects limits.

use narrate::plan::split_text;
use proptest::prelude::*;

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => "[a-zA-Z]{1,12}",
        // Longer than many limits: the only words a piece may cut.
        1 => "[a-z]{20,500}",
        1 => Just("Mr.".to_string()),
        1 => Just("Dr.".to_string()),
        1 => Just("e.g.".to_string()),
        1 => Just("3.14".to_string()),
        1 => Just("'Oh".to_string()),
        1 => Just("dear!'".to_string()),
        1 => Just("(so".to_string()),
        1 => Just("it)".to_string()),
        1 => Just("—".to_string()),
    ]
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(" "),
        Just(" "),
        Just(" "),
        Just(". "),
        Just(", "),
        Just("; "),
        Just("? "),
        Just("\n"),
        Just("\n\n")
    ]
}

fn prose() -> impl Strategy<Value = String> {
    prop::collection::vec((word(), separator()), 1..200).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(w, s)| format!("{w}{s}"))
            .collect::<String>()
    })
}

proptest! {
    #[test]
    fn splitting_keeps_every_character_in_order_within_the_limit(text in prose(), limit in 16usize..400) {
        let pieces = split_text(&text, limit);
        for p in &pieces {
            prop_assert!(p.chars().count() <= limit, "{} > {limit}: {p:?}", p.chars().count());
            prop_assert!(!p.is_empty());
            prop_assert_eq!(p.trim(), p.as_str());
        }
        let bare = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        prop_assert_eq!(bare(&pieces.concat()), bare(&text));
    }

    /// A word that fits the limit is never cut: it stands whole in one piece. Only a word
    /// longer than the limit is cut, into fragments that join back to it.
    #[test]
    fn words_that_fit_are_never_cut(text in prose(), limit in 16usize..400) {
        let pieces = split_text(&text, limit);
        let mut got = pieces.iter().flat_map(|p| p.split_whitespace());
        for word in text.split_whitespace() {
            if word.chars().count() <= limit {
                prop_assert_eq!(got.next(), Some(word), "a word that fits was cut or lost");
            } else {
                let mut joined = String::new();
                while joined.len() < word.len() {
                    let Some(fragment) = got.next() else { break };
                    joined.push_str(fragment);
                }
                prop_assert_eq!(joined.as_str(), word, "a long word's fragments join back to it");
            }
        }
        prop_assert_eq!(got.next(), None);
    }
}
