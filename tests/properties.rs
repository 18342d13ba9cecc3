//! Property tests of the planner: splitting loses and reorders nothing and respects limits.

use narrate::plan::split_text;
use proptest::prelude::*;

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z]{1,12}",
        Just("Mr.".to_string()),
        Just("Dr.".to_string()),
        Just("e.g.".to_string()),
        Just("3.14".to_string()),
        Just("'Oh".to_string()),
        Just("dear!'".to_string()),
        Just("(so".to_string()),
        Just("it)".to_string()),
        Just("—".to_string()),
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
    fn splitting_keeps_every_word_in_order_within_the_limit(text in prose(), limit in 16usize..400) {
        let pieces = split_text(&text, limit);
        for p in &pieces {
            prop_assert!(p.chars().count() <= limit, "{} > {limit}: {p:?}", p.chars().count());
            prop_assert!(!p.is_empty());
            prop_assert_eq!(p.trim(), p.as_str());
        }
        prop_assert_eq!(squash(&pieces.join(" ")), squash(&text));
    }

    #[test]
    fn words_that_fit_are_never_cut(text in prose(), limit in 16usize..400) {
        let words: std::collections::HashSet<&str> = text.split_whitespace().collect();
        for p in split_text(&text, limit) {
            for w in p.split_whitespace() {
                prop_assert!(words.contains(w), "{w:?} is not a word of the text");
            }
        }
    }
}
