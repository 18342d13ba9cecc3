//! `--read-along` from an imported EPUB: the book's own pages, styles and figures kept, the
//! narrated sentences wrapped where they are. Judged by epubcheck, by the source book itself
//! (every file of it is in the read-along book, and each page read is the source's once
//! narrate's spans and its style-sheet link are taken out, event for event by an XML parser),
//! and by the narrated text (each span's text is a sentence narrate read).

use std::path::Path;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::readalong::{entry, epubcheck, pars};
use crate::util::*;

/// A small book with what a real one has: emphasis inside a sentence and around two, a
/// sentence that ends inside emphasis it did not start in, a figure, a style sheet.
const BOOK: &str = "---\ntitle: Own Pages\nauthor: A. Writer\nlang: en\n---\n\n# The First\n\nAlice was *very* tired of sitting by her sister on the bank. *Stop. Go.* She had peeped into the book her sister was reading.\n\n![A rabbit in a waistcoat](fig.jpg)\n\n# The Second\n\nHe said *stop. Then* he went. It was **late**, and the hall was long and low.\n";

/// A document's XML events as text, adjacent text joined; without narrate's spans and its
/// style-sheet link when `strip`.
fn events(xml: &str, strip: bool) -> Vec<String> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(false);
    let mut out: Vec<String> = Vec::new();
    let mut spans: Vec<bool> = Vec::new();
    loop {
        let event = reader.read_event().unwrap();
        let shown = match &event {
            Event::Eof => break,
            Event::Start(e) if e.name().as_ref() == "span" => {
                let ours = e
                    .try_get_attribute("id")
                    .unwrap()
                    .is_some_and(|a| a.value.starts_with("narrate-s"));
                spans.push(strip && ours);
                (!(strip && ours)).then(|| format!("{event:?}"))
            }
            Event::End(e) if e.name().as_ref() == "span" => {
                (!spans.pop().unwrap()).then(|| format!("{event:?}"))
            }
            Event::Empty(e)
                if strip
                    && e.try_get_attribute("href")
                        .unwrap()
                        .is_some_and(|a| a.value.ends_with("narrate/read-along.css")) =>
            {
                None
            }
            Event::Text(t) => Some(format!("T:{}", t.as_ref() as &str)),
            _ => Some(format!("{event:?}")),
        };
        match (shown, out.last_mut()) {
            (Some(t), Some(last)) if t.starts_with("T:") && last.starts_with("T:") => {
                last.push_str(&t[2..]);
            }
            (Some(t), _) => out.push(t),
            (None, _) => {}
        }
    }
    out
}

/// The text inside each of narrate's spans, tags taken out, white space collapsed.
fn span_texts(xhtml: &str) -> Vec<(String, String)> {
    xhtml
        .split("<span id=\"narrate-s")
        .skip(1)
        .map(|s| {
            let (id, rest) = s.split_once("\">").unwrap();
            let inner = rest.split("</span>").next().unwrap();
            let mut text = String::new();
            let mut tag = false;
            for c in inner.chars() {
                match c {
                    '<' => tag = true,
                    '>' => tag = false,
                    c if !tag => text.push(c),
                    _ => {}
                }
            }
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            (format!("narrate-s{id}"), text)
        })
        .collect()
}

fn names(zip: &zip::ZipArchive<std::fs::File>) -> Vec<String> {
    zip.file_names().map(|n| n.unwrap().into_owned()).collect()
}

async fn import_and_render(fx: &Fixture, to: &str) -> std::process::Output {
    let d = fx.path();
    let out = crate::import::import(d, &[to, "-o", "book.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let render = [
        "book.yaml",
        "--split",
        "chapters",
        "--timestamps",
        "--read-along",
    ];
    fx.run(&render).await
}

/// Each source file is in the book; a page read differs only by narrate's spans and link.
fn same_as_the_source(d: &Path, book: &mut zip::ZipArchive<std::fs::File>) -> Vec<String> {
    let mut source =
        zip::ZipArchive::new(std::fs::File::open(d.join("book.epub")).unwrap()).unwrap();
    let mut read = Vec::new();
    for name in names(&source) {
        let theirs = entry(&mut source, &name);
        let ours = entry(book, &name);
        if name.ends_with(".opf") || ours == theirs {
            continue;
        }
        let (ours, theirs) = (
            String::from_utf8(ours).unwrap(),
            String::from_utf8(theirs).unwrap(),
        );
        assert!(
            ours.contains("<span id=\"narrate-s"),
            "{name} changed without spans"
        );
        assert_eq!(events(&ours, true), events(&theirs, false), "{name}");
        read.push(name);
    }
    read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_epub_reads_along_in_its_own_pages_with_only_spans_added() {
    let fx = Fixture::default().await;
    let d = fx.path();
    write(d, "book.md", BOOK);
    crate::import::cover_jpeg(d);
    std::fs::copy(d.join("cover.jpg"), d.join("fig.jpg")).unwrap();
    crate::import::pandoc(d, &["book.md", "-o", "book.epub"]);
    let out = import_and_render(&fx, "book.epub").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let path = d.join("book.read-along.epub");
    epubcheck(&path).unwrap();
    let report = read_json(&d.join("book.report.json"));
    assert_eq!(report["read_along"]["source"], "book.epub", "{report}");
    assert_eq!(report["read_along"]["unfound"], 0);
    assert!(
        stdout(&out).contains("the pages and styles of book.epub"),
        "{}",
        stdout(&out)
    );
    let mut book = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    let read = same_as_the_source(d, &mut book);
    assert_eq!(read.len(), 2, "{read:?}");
    // The spans are the sentences, emphasis and all; a sentence that ends inside emphasis it
    // did not start in is wrapped in pieces a span each can hold.
    let all: Vec<String> = read
        .iter()
        .flat_map(|n| span_texts(&String::from_utf8(entry(&mut book, n)).unwrap()))
        .map(|(_, t)| t)
        .collect();
    for sentence in [
        "Alice was very tired of sitting by her sister on the bank.",
        "Stop.",
        "Go.",
        "He said",
        "stop.",
        "Then",
        "he went.",
        "It was late, and the hall was long and low.",
    ] {
        assert!(all.iter().any(|t| t == sentence), "{sentence:?} in {all:?}");
    }
    let first = String::from_utf8(entry(&mut book, &read[0])).unwrap();
    assert!(
        first.contains(
            "<em><span id=\"narrate-s3\">Stop.</span> <span id=\"narrate-s4\">Go.</span></em>"
        ),
        "{first}"
    );
    // Each overlay's pars point at those spans, in order, and at audio in the book.
    let smil: Vec<String> = names(&book)
        .into_iter()
        .filter(|n| n.ends_with(".smil"))
        .collect();
    assert_eq!(smil.len(), 2, "{smil:?}");
    let mut ids = Vec::new();
    for s in &smil {
        let text = String::from_utf8(entry(&mut book, s)).unwrap();
        let clips = pars(&text);
        assert!(clips.windows(2).all(|w| w[0].2 <= w[1].1), "{text}");
        ids.extend(clips.into_iter().map(|c| c.0));
        assert!(text.contains("audio src=\"../audio/ch00"), "{text}");
    }
    let spans: Vec<String> = read
        .iter()
        .flat_map(|n| span_texts(&String::from_utf8(entry(&mut book, n)).unwrap()))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, spans);
    // The pieces of one sentence follow each other in time, in proportion to their text.
    let second = String::from_utf8(entry(&mut book, &read[1])).unwrap();
    let mut piece = |text: &str| {
        let id = span_texts(&second)
            .into_iter()
            .find(|(_, t)| t == text)
            .unwrap()
            .0;
        let smil = String::from_utf8(entry(&mut book, &smil[1])).unwrap();
        pars(&smil).into_iter().find(|p| p.0 == id).unwrap()
    };
    let (said, stop) = (piece("He said"), piece("stop."));
    assert!((said.2 - stop.1).abs() < 0.002, "{said:?} {stop:?}");
    let share = (said.2 - said.1) / (stop.2 - said.1);
    assert!((share - 8.0 / 14.0).abs() < 0.02, "{share}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epub_2_source_reads_along_in_pages_written_from_the_narration_and_says_so() {
    let fx = Fixture::default().await;
    let d = fx.path();
    write(d, "book.md", BOOK);
    crate::import::cover_jpeg(d);
    std::fs::copy(d.join("cover.jpg"), d.join("fig.jpg")).unwrap();
    crate::import::pandoc(d, &["book.md", "-t", "epub2", "-o", "book.epub"]);
    let out = import_and_render(&fx, "book.epub").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let path = d.join("book.read-along.epub");
    epubcheck(&path).unwrap();
    let report = read_json(&d.join("book.report.json"));
    let why = report["read_along"]["source_not_kept"].as_str().unwrap();
    assert!(
        why.contains("EPUB 2.0") && why.contains("overlays need EPUB 3"),
        "{why}"
    );
    assert!(report["read_along"]["source"].is_null());
    assert!(
        stdout(&out).contains("not the book's own pages"),
        "{}",
        stdout(&out)
    );
    let mut book = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    assert!(names(&book).contains(&"EPUB/text/ch001.xhtml".to_string()));
    let first = String::from_utf8(entry(&mut book, "EPUB/text/ch001.xhtml")).unwrap();
    assert!(first.contains(">Stop.</span>"), "{first}");
}
