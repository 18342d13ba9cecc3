//! The book's own pronunciations: its PLS lexicon (a package item of type
//! `application/pls+xml`) and the `ssml:ph` its text carries, checked as the manifest will
//! check them, so that the manifest `import` writes loads.
//!
//! Not responsible for reading PLS (see `pronounce::parse_pls`) or the XHTML (see `html`).

use std::collections::HashSet;

use super::Archive;
use super::package::Package;
use crate::import::html::Page;
use crate::import::{Book, Lexicon};
use crate::pronounce::{ALPHABETS, Rule, Spoken, parse_pls, unspeakable};

/// The first PLS lexicon of the package, if narrate can send every rule in it; one it cannot
/// is named in the book's notes.
pub(super) fn lexicon(archive: &mut Archive, package: &Package, book: &mut Book) {
    let Some(item) = package
        .items
        .values()
        .find(|i| i.media_type == "application/pls+xml")
    else {
        return;
    };
    let name = item.href.clone();
    let checked = archive.text(&name).and_then(|source| {
        let rules = parse_pls(&source).map_err(|e| format!("line {}: {}", e.line, e.message))?;
        let mut words = HashSet::new();
        for r in &rules {
            if let Some(why) = unspeakable(&r.word, &r.spoken) {
                return Err(why);
            }
            if let Spoken::Phoneme { alphabet, .. } = &r.spoken
                && !ALPHABETS.contains(&alphabet.as_str())
            {
                return Err(format!(
                    "the alphabet {alphabet:?} (the API takes ipa or cmu-arpabet)"
                ));
            }
            if !words.insert(r.word.clone()) {
                return Err(format!("{:?} has two entries", r.word));
            }
        }
        Ok((source.into_bytes(), rules))
    });
    match checked {
        Ok((bytes, rules)) => book.lexicon = Some(Lexicon { name, bytes, rules }),
        Err(why) => book
            .notes
            .push(format!("the lexicon {name} is not used: {why}")),
    }
}

/// The pages' `ssml:ph` as phoneme rules: the first for a word wins, a word the lexicon has
/// keeps the lexicon's; one in an alphabet the API does not take is left out and counted.
pub(super) fn inline(pages: &[Page], book: &mut Book) {
    let mut words: HashSet<String> = book
        .lexicon
        .iter()
        .flat_map(|l| &l.rules)
        .map(|r| r.word.clone())
        .collect();
    let (mut other_alphabet, mut differing) = (0usize, 0usize);
    for (word, phoneme, alphabet) in pages.iter().flat_map(|p| &p.phonemes) {
        let alphabet = alphabet.clone().unwrap_or_else(|| "ipa".into());
        let spoken = Spoken::Phoneme {
            phoneme: phoneme.clone(),
            alphabet: alphabet.clone(),
        };
        if word.is_empty() || phoneme.is_empty() || unspeakable(word, &spoken).is_some() {
            continue;
        }
        if !ALPHABETS.contains(&alphabet.as_str()) {
            other_alphabet += 1;
            continue;
        }
        if !words.insert(word.clone()) {
            let same = book
                .pronunciations
                .iter()
                .chain(book.lexicon.iter().flat_map(|l| &l.rules))
                .any(|r| r.word == *word && r.spoken == spoken);
            differing += usize::from(!same);
            continue;
        }
        book.pronunciations.push(Rule {
            word: word.clone(),
            spoken,
        });
    }
    if other_alphabet > 0 {
        book.notes.push(format!(
            "{other_alphabet} inline pronunciations (ssml:ph) left out: their alphabet is not ipa or cmu-arpabet"
        ));
    }
    if differing > 0 {
        book.notes.push(format!(
            "{differing} inline pronunciations (ssml:ph) say a word another way than its first; the first is kept"
        ));
    }
}
