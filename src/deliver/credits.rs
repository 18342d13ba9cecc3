//! Opening and closing credits for the stores that want them as files of their own: two
//! segments added to the job before it is planned, each a chapter of its own (so a chain of
//! its own: the book's requests and their context are as without them), rendered, cached and
//! reported like any segment. Their text is the manifest's (`opening_credits`,
//! `closing_credits`) or written from the title, author and narrator.
//!
//! Not responsible for the files they go into (see `deliver`).

use std::ops::Range;

use crate::error::UsageError;
use crate::manifest::{Job, Segment};
use crate::output::report::Role;
use crate::stores::Store;

/// The ids and chapter titles of the credits' segments.
pub(crate) const OPENING_ID: &str = "opening-credits";
pub(crate) const CLOSING_ID: &str = "closing-credits";
const OPENING_TITLE: &str = "Opening Credits";
const CLOSING_TITLE: &str = "Closing Credits";

/// Said in generated credits when a store asks for a digital voice to be disclosed.
const DISCLOSURE: &str = "This audiobook is narrated by a digital voice.";

/// What a run of segments is in a delivery.
pub(crate) fn role(job: &Job, segments: Range<usize>) -> Role {
    let ids = || job.segments[segments.clone()].iter().map(|s| s.id.as_str());
    if ids().all(|id| id == OPENING_ID) {
        Role::OpeningCredits
    } else if ids().all(|id| id == CLOSING_ID) {
        Role::ClosingCredits
    } else {
        Role::Chapter
    }
}

/// Adds the credits' segments to `job` when one of `stores` wants them: the opening credits
/// first, the closing credits last, each with the voice and settings of the book's first
/// segment. Refused when the book has no title to credit or an id is taken.
pub(crate) fn add(job: &mut Job, stores: &[&Store]) -> Result<(), UsageError> {
    let Some(store) = stores.iter().find(|s| s.credits) else {
        return Ok(());
    };
    let where_ = job.manifest.display().to_string();
    if let Some(s) = job
        .segments
        .iter()
        .find(|s| s.id == OPENING_ID || s.id == CLOSING_ID)
    {
        return Err(UsageError(format!(
            "{where_}: line {}: segment id {} is the one narrate gives the credits --profile {} adds; rename the segment",
            s.line, s.id, store.name
        )));
    }
    let disclose = stores.iter().any(|s| s.credits && s.disclose_digital_voice);
    let (opening, closing) = texts(job, disclose).ok_or_else(|| {
        UsageError(format!(
            "{where_}: --profile {} adds opening and closing credits, which name the book: set `title` (and `author`, `narrator`), or write `opening_credits` and `closing_credits`",
            store.name
        ))
    })?;
    let first =
        job.segments.first().cloned().ok_or_else(|| {
            UsageError(format!("{where_}: the manifest has no segments to credit"))
        })?;
    let credit = |id: &str, chapter: &str, text: String| Segment {
        id: id.to_string(),
        chapter: Some(chapter.to_string()),
        text,
        // No request of theirs carries another's context (a chain of their own).
        ..first.clone()
    };
    job.segments
        .insert(0, credit(OPENING_ID, OPENING_TITLE, opening));
    job.segments
        .push(credit(CLOSING_ID, CLOSING_TITLE, closing));
    Ok(())
}

/// The credits' texts: the manifest's, else written from the book's title, author and
/// narrator (with the digital-voice disclosure when asked); `None` with neither.
fn texts(job: &Job, disclose: bool) -> Option<(String, String)> {
    let given = &job.credits;
    let book = &job.book;
    let clean = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let title = book.title.as_deref().map(clean);
    let by = book
        .author
        .as_deref()
        .map(|a| format!(", written by {}", clean(a)))
        .unwrap_or_default();
    let read = book
        .narrator
        .as_deref()
        .map(|n| format!(", narrated by {}", clean(n)))
        .unwrap_or_default();
    let disclosure = if disclose {
        format!(" {DISCLOSURE}")
    } else {
        String::new()
    };
    let opening = match (&given.opening, &title) {
        (Some(text), _) => text.clone(),
        (None, Some(title)) => format!("This is {title}{by}{read}.{disclosure}"),
        (None, None) => return None,
    };
    let closing = match (&given.closing, &title) {
        (Some(text), _) => text.clone(),
        (None, Some(title)) => {
            format!("You have been listening to {title}{by}{read}.{disclosure} The End.")
        }
        (None, None) => return None,
    };
    Some((opening, closing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(title: Option<&str>) -> Job {
        let dir = tempfile::tempdir().unwrap();
        let mut job = crate::manifest::from_yaml(
            &dir.path().join("b.yaml"),
            "output: b.mp3\ndefaults: {voice_id: JBFqnCBsd6RMkjVDRZzb}\nsegments:\n  - {id: one, chapter: One, text: Hello there.}\n",
        );
        job.book.title = title.map(str::to_string);
        job.book.author = Some("Lewis\nCarroll".into());
        job
    }

    #[test]
    fn generated_credits_name_the_book_and_end_it() {
        let mut j = job(Some("Alice"));
        add(&mut j, &[crate::stores::store("inaudio").unwrap()]).unwrap();
        let ids: Vec<&str> = j.segments.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, [OPENING_ID, "one", CLOSING_ID]);
        assert_eq!(
            j.segments[0].text,
            "This is Alice, written by Lewis Carroll. This audiobook is narrated by a digital voice."
        );
        assert!(j.segments[2].text.ends_with("The End."));
        assert_eq!(role(&j, 0..1), Role::OpeningCredits);
        assert_eq!(role(&j, 1..2), Role::Chapter);
        assert_eq!(role(&j, 2..3), Role::ClosingCredits);
    }

    #[test]
    fn no_title_and_no_credits_is_refused_and_stores_without_credits_add_none() {
        let mut j = job(None);
        let e = add(&mut j, &[crate::stores::store("acx").unwrap()]).unwrap_err();
        assert!(e.0.contains("set `title`"), "{e}");
        add(&mut j, &[crate::stores::store("podcast").unwrap()]).unwrap();
        assert_eq!(j.segments.len(), 1);
    }
}
