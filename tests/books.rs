//! Real books' shapes through `narrate import`: a book in parts (pandoc's nested EPUB 3 nav and
//! EPUB 2 NCX) to a chaptered `.m4b` read back with ffprobe; back matter the book marks itself
//! (a bibliography inside the last chapter's file, an index) never sent, as the emulator's
//! request log shows; file names as IRIs (percent-encoded, decomposed, CP437); the book's own
//! pronunciations (a PLS lexicon and `ssml:ph`).
//!
//! The judges are pandoc (which writes the nested tables of contents), ffprobe, the
//! emulator's log and the manifest loader (`narrate check`).

use std::path::Path;

use serde_json::Value;

use crate::import::{CONTAINER, alice, chapters_of, epub, import, page, pandoc, plain};
use crate::util::*;

/// The sample book's first four chapters (the first `paragraphs` of each, or all) in two
/// parts, as Markdown for pandoc.
pub(crate) fn in_parts(paragraphs: Option<usize>) -> (String, Vec<(String, String)>) {
    let book = alice(paragraphs);
    let mut md =
        String::from("---\ntitle: A Book in Parts\nauthor: Lewis Carroll\nlang: en\n---\n\n");
    let mut want = Vec::new();
    for (k, (number, title, body)) in book.iter().take(4).enumerate() {
        if k % 2 == 0 {
            md.push_str(&format!("# Part {}\n\n", ["One", "Two"][k / 2]));
        }
        md.push_str(&format!("## {number} {title}\n\n{body}\n\n"));
        want.push((
            format!("Part {}", ["One", "Two"][k / 2]),
            format!("{number} {title}"),
        ));
    }
    (md, want)
}

/// A package document titled `title` whose spine is the XHTML files at `hrefs`, in order.
fn package(title: &str, hrefs: &[impl AsRef<str>]) -> String {
    let items: String = hrefs
        .iter()
        .enumerate()
        .map(|(k, h)| {
            let h = h.as_ref();
            format!(r#"<item id="c{k}" href="{h}" media-type="application/xhtml+xml"/>"#)
        })
        .collect();
    let refs: String = (0..hrefs.len())
        .map(|k| format!(r#"<itemref idref="c{k}"/>"#))
        .collect();
    format!(
        r#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{title}</dc:title></metadata><manifest>{items}</manifest><spine>{refs}</spine></package>"#
    )
}

/// The same book as an EPUB without a table of contents: a file a part (its `h1`), a file a
/// chapter (its `h2`).
fn headings_only(path: &Path) {
    let mut pages = Vec::new();
    for (k, (number, title, body)) in alice(None).iter().take(4).enumerate() {
        if k % 2 == 0 {
            let part = ["One", "Two"][k / 2];
            pages.push(page(&format!("<body><h1>Part {part}</h1></body>")));
        }
        let paragraphs: String = body
            .split("\n\n")
            .map(|p| format!("<p>{}</p>", p.replace('&', "&amp;").replace('<', "&lt;")))
            .collect();
        pages.push(page(&format!(
            "<body><h2>{number} {title}</h2>{paragraphs}</body>"
        )));
    }
    let hrefs: Vec<String> = (0..pages.len()).map(|k| format!("p{k}.xhtml")).collect();
    let opf = package("A Book in Parts", &hrefs);
    let names: Vec<String> = (0..pages.len())
        .map(|k| format!("OEBPS/p{k}.xhtml"))
        .collect();
    let mut files = vec![CONTAINER, ("OEBPS/content.opf", opf.as_str())];
    files.extend(
        names
            .iter()
            .zip(&pages)
            .map(|(n, p)| (n.as_str(), p.as_str())),
    );
    epub(path, &files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_in_parts_imports_as_its_chapters_named_by_their_parts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (md, want) = in_parts(None);
    write(d, "parts.md", &md);
    pandoc(d, &["parts.md", "--toc", "-o", "parts3.epub"]);
    pandoc(
        d,
        &["parts.md", "--toc", "-t", "epub2", "-o", "parts2.epub"],
    );
    headings_only(&d.join("headings.epub"));
    for (book, manifest) in [
        ("parts3.epub", "p3.yaml"),
        ("parts2.epub", "p2.yaml"),
        ("headings.epub", "ph.yaml"),
        ("parts.md", "pmd.yaml"),
    ] {
        let out = import(d, &[book, "-o", manifest]).await;
        assert_eq!(out.status.code(), Some(0), "{book}: {}", stderr(&out));
        let said = stdout(&out);
        assert!(said.contains("4 chapters"), "{book}: {said}");
        // The tree: each part on its own line, its chapters under it.
        assert!(
            said.contains("\n  Part One\n     1. CHAPTER I. Down the Rabbit-Hole  ("),
            "{book}: {said}"
        );
        let got = chapters_of(d, manifest);
        let names: Vec<String> = got.iter().map(|(c, _, _)| plain(c)).collect();
        let expected: Vec<String> = want.iter().map(|(p, c)| format!("{p}: {c}")).collect();
        assert_eq!(names, expected, "{book}");
        // A part's heading is read before its first chapter's.
        assert_eq!(
            plain(&got[0].1),
            "Part One\n\nCHAPTER I. Down the Rabbit-Hole"
        );
        assert_eq!(plain(&got[1].1), "CHAPTER II. The Pool of Tears");
        // --toc-depth 1: the parts are the chapters.
        let out = import(d, &[book, "-o", "top.yaml", "--toc-depth", "1", "--force"]).await;
        assert_eq!(out.status.code(), Some(0), "{book}: {}", stderr(&out));
        let top: Vec<String> = chapters_of(d, "top.yaml")
            .into_iter()
            .map(|(c, _, _)| c)
            .collect();
        assert_eq!(top, ["Part One", "Part Two"], "{book}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_in_parts_to_m4b_carries_the_parts_in_its_chapter_marks() {
    let fx = Fixture::default().await;
    let d = fx.path();
    let (md, want) = in_parts(Some(2));
    write(d, "parts.md", &md);
    pandoc(d, &["parts.md", "--toc", "-o", "parts.epub"]);
    // Two short paragraphs a chapter are sections by the automatic choice; the level is
    // chosen here.
    let args = ["parts.epub", "-o", "parts.yaml", "--toc-depth", "2"];
    let out = import(
        d,
        &[&args[..], &["--audio-output", "out/parts.m4b"]].concat(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let path = std::env::var("PATH").unwrap_or_default();
    let out = narrate(
        d,
        &["parts.yaml", "--base-url", &fx.base()],
        &[("ELEVENLABS_API_KEY", SECRET_KEY), ("PATH", &path)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = read_json(&d.join("out/parts.report.json"));
    let segments = report["segments"].as_array().unwrap();
    let probe = ffprobe_json(&d.join("out/parts.m4b"), &["-show_chapters"]);
    let chapters = probe["chapters"].as_array().unwrap();
    assert_eq!(chapters.len(), 4, "{probe}");
    let frame = 1024.0 / 44_100.0;
    for (k, (c, (part, chapter))) in chapters.iter().zip(&want).enumerate() {
        let title = plain(c["tags"]["title"].as_str().unwrap());
        assert_eq!(title, format!("{part}: {chapter}"));
        let seg = &segments[2 * k];
        assert_eq!(seg["chapter"].as_str().map(plain), Some(title));
        let at = if k == 0 {
            0.0
        } else {
            seg["start_seconds"].as_f64().unwrap()
        };
        let start = secs(&c["start_time"]);
        assert!(
            (start - at).abs() <= frame,
            "chapter {k}: {start} s, report {at} s"
        );
    }
}

/// A book with a bibliography at the end of its last chapter's file and an index of its own,
/// both marked by `epub:type` and both in its table of contents.
fn with_back_matter(path: &Path) {
    let opf = r#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Notes on Birds</dc:title><dc:language>en</dc:language></metadata><manifest><item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/><item id="a" href="a.xhtml" media-type="application/xhtml+xml"/><item id="b" href="b.xhtml" media-type="application/xhtml+xml"/><item id="i" href="index.xhtml" media-type="application/xhtml+xml"/></manifest><spine><itemref idref="a"/><itemref idref="b"/><itemref idref="i"/></spine></package>"#;
    let nav = page(
        r#"<body><nav epub:type="toc"><ol><li><a href="a.xhtml">Wrens</a></li><li><a href="b.xhtml">Robins</a></li><li><a href="index.xhtml">Index</a></li></ol></nav></body>"#,
    );
    let a = page(
        r#"<body><h1>Wrens</h1><p>The wren sings loudly for so small a bird.</p><section id="pg-footer"><h2>The Full Project Gutenberg License</h2><p>Redistribution is subject to the trademark license.</p></section></body>"#,
    );
    let b = page(
        r#"<body><section><h1>Robins</h1><p>The robin follows the gardener's spade.</p></section><section epub:type="bibliography"><h2>Works Cited</h2><p>Gilbert White, The Natural History of Selborne, 1789.</p><p>Thomas Bewick, A History of British Birds, 1797.</p></section></body>"#,
    );
    let index =
        page(r#"<body epub:type="index"><h1>Index</h1><p>robin, 2; spade, 2; wren, 1.</p></body>"#);
    epub(
        path,
        &[
            CONTAINER,
            ("OEBPS/content.opf", opf),
            ("OEBPS/nav.xhtml", &nav),
            ("OEBPS/a.xhtml", &a),
            ("OEBPS/b.xhtml", &b),
            ("OEBPS/index.xhtml", &index),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_matter_the_book_marks_is_never_sent_and_can_be_kept() {
    let fx = Fixture::default().await;
    let d = fx.path();
    with_back_matter(&d.join("birds.epub"));
    let out = import(d, &["birds.epub", "-o", "birds.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stdout(&out);
    let licence = "The Full Project Gutenberg License".len()
        + "Redistribution is subject to the trademark license.".len();
    let cited = "Gilbert White, The Natural History of Selborne, 1789.Thomas Bewick, A History of British Birds, 1797.";
    let bibliography = "Works Cited".len() + cited.len();
    let index = "Index".len() + "robin, 2; spade, 2; wren, 1.".len();
    assert!(
        said.contains(&format!(
            "skipped: Works Cited (bibliography, {bibliography} characters, about {bibliography} credits)"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "skipped: Index (index, {index} characters, about {index} credits)"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "not narrated: {} characters, about {} credits with eleven_multilingual_v2",
            bibliography + index + licence,
            bibliography + index + licence
        )),
        "{said}"
    );
    assert!(
        said.contains("skipped: The Full Project Gutenberg License (licence, "),
        "{said}"
    );
    let out = narrate(
        d,
        &["birds.yaml", "--base-url", &fx.base()],
        &[("ELEVENLABS_API_KEY", SECRET_KEY)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sent: Vec<String> = fx
        .tts_log()
        .iter()
        .map(|e| e["body"]["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        sent.iter().any(|t| t.contains("gardener's spade")),
        "{sent:?}"
    );
    for never in ["Selborne", "Works Cited", "wren, 1", "Redistribution"] {
        assert!(
            !sent.iter().any(|t| t.contains(never)),
            "{never} was sent: {sent:?}"
        );
    }
    // --keep bibliography: the bibliography is a chapter; the index is still left out.
    let out = import(
        d,
        &["birds.epub", "-o", "kept.yaml", "--keep", "bibliography"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let chapters: Vec<String> = chapters_of(d, "kept.yaml")
        .into_iter()
        .map(|(c, _, _)| c)
        .collect();
    assert_eq!(chapters, ["Wrens", "Robins", "Works Cited"]);
    let out = import(
        d,
        &["birds.epub", "-o", "bad.yaml", "--keep", "bibliographies"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("bibliography"), "{}", stderr(&out));
}

/// Replaces `from` with `to` (the same length) everywhere in a file: a ZIP's name in its local
/// and central headers, to write a name in CP437 that no ZIP library here writes.
fn patch(path: &Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(path).unwrap();
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            n += 1;
        }
        i += 1;
    }
    assert_eq!(n, 2, "the name is in the local and the central header");
    std::fs::write(path, bytes).unwrap();
}

fn named_book(path: &Path, spine_hrefs: &[&str], entries: &[&str]) {
    let opf = package("Names", spine_hrefs);
    let pages: Vec<String> = (0..entries.len())
        .map(|k| {
            page(&format!(
                "<body><h1>Chapter {k}</h1><p>Text of chapter {k}.</p></body>"
            ))
        })
        .collect();
    let mut files = vec![CONTAINER, ("OEBPS/content.opf", opf.as_str())];
    files.extend(entries.iter().zip(&pages).map(|(e, p)| (*e, p.as_str())));
    epub(path, &files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_names_are_found_as_iris_in_any_normal_form_and_cp437() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // "Über" percent-encoded and composed in the package, decomposed in the ZIP; "café" as
    // written in the package, in CP437 (0x82 is "é") in the ZIP.
    named_book(
        &d.join("names.epub"),
        &["text/%C3%9Cber.xhtml", "text/caf\u{e9}.xhtml"],
        &["OEBPS/text/U\u{308}ber.xhtml", "OEBPS/text/cafX.xhtml"],
    );
    patch(
        &d.join("names.epub"),
        b"OEBPS/text/cafX",
        b"OEBPS/text/caf\x82",
    );
    let out = import(d, &["names.epub", "-o", "names.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let texts: Vec<String> = chapters_of(d, "names.yaml")
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    assert_eq!(texts, ["Text of chapter 0.\n", "Text of chapter 1.\n"]);
    // A name that is nowhere: exit 2, naming it and the nearest file.
    named_book(
        &d.join("missing.epub"),
        &["text/chapter-1.xhtml"],
        &["OEBPS/text/chapter-01.xhtml"],
    );
    let out = import(d, &["missing.epub", "-o", "missing.yaml"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "OEBPS/text/chapter-1.xhtml: in the spine but not in the book (the nearest file in it is OEBPS/text/chapter-01.xhtml)"
        ),
        "{}",
        stderr(&out)
    );
    assert!(!d.join("missing.yaml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_books_lexicon_and_inline_phonemes_become_the_manifests_pronunciations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pls = r#"<?xml version="1.0" encoding="UTF-8"?><lexicon version="1.0" xmlns="http://www.w3.org/2005/01/pronunciation-lexicon" alphabet="ipa" xml:lang="en"><lexeme><grapheme>Savannah</grapheme><phoneme>səˈvænə</phoneme></lexeme></lexicon>"#;
    let opf = r#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>A Sketch of Georgia</dc:title><dc:language>en</dc:language></metadata><manifest><item id="pls" href="lexicon/en.pls" media-type="application/pls+xml"/><item id="g" href="g.xhtml" media-type="application/xhtml+xml"/></manifest><spine><itemref idref="g"/></spine></package>"#;
    let g = page(
        r#"<body ssml:alphabet="ipa" xmlns:ssml="http://www.w3.org/2001/10/synthesis"><h1>Georgia</h1><p>The river runs <span ssml:ph="ˌsaʊθˈist">S.E.</span> to Savannah, then <span ssml:ph="saʊθ">S.</span> and again <span ssml:ph="saʊθ">S.</span></p><p><span ssml:ph="x" ssml:alphabet="x-sampa">Macon</span> lies inland.</p></body>"#,
    );
    epub(
        &d.join("georgia.epub"),
        &[
            CONTAINER,
            ("OEBPS/content.opf", opf),
            ("OEBPS/lexicon/en.pls", pls),
            ("OEBPS/g.xhtml", &g),
        ],
    );
    let out = import(d, &["georgia.epub", "-o", "georgia.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("1 words from the book's lexicon OEBPS/lexicon/en.pls"),
        "{said}"
    );
    assert!(
        said.contains("2 words from the text's own phonemes"),
        "{said}"
    );
    assert!(
        said.contains("1 inline pronunciations (ssml:ph) left out"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("georgia/lexicon.pls")).unwrap(),
        pls
    );
    let yaml = std::fs::read_to_string(d.join("georgia.yaml")).unwrap();
    let m: Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(m["pronunciation_file"], "georgia/lexicon.pls");
    let rules: Vec<(String, String, String)> = m["pronunciations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("word"), s("phoneme"), s("alphabet"))
        })
        .collect();
    let rule = |w: &str, p: &str| (w.to_string(), p.to_string(), "ipa".to_string());
    assert_eq!(rules, [rule("S.E.", "ˌsaʊθˈist"), rule("S.", "saʊθ")]);
    // The manifest loads as written: the loader checks the lexicon and the rules.
    let out = narrate(
        d,
        &["check", "georgia.yaml", "--model-id", "eleven_flash_v2"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
