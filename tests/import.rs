//! `narrate import`: the sample book as EPUB 3 and EPUB 2 (made by pandoc), Markdown and
//! Gutenberg-style text gives the same twelve chapters; small hand-made EPUBs for the table of
//! contents' shapes, front matter and footnotes; broken books refused; and the round trip to a
//! chaptered `.m4b` read back with ffprobe.
//!
//! The oracle is the sample book itself (`samples/alice`: its chapter list and texts), pandoc's
//! EPUBs, and ffprobe. These tests need pandoc, ffmpeg and ffprobe (the README's test command
//! installs them) and fail without them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::*;

/// The sample book: (heading, title, body) of each chapter, from `samples/alice`; with
/// `paragraphs`, only the first few paragraphs of each body.
pub(crate) fn alice(paragraphs: Option<usize>) -> Vec<(String, String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/alice");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut out = Vec::new();
    for line in readme.lines() {
        let Some(rest) = line.strip_prefix("- ch") else {
            continue;
        };
        let (file, heading) = rest.split_once(".txt: ").unwrap();
        let (number, title) = heading.split_once(". ").unwrap();
        let body = std::fs::read_to_string(root.join(format!("ch{file}.txt"))).unwrap();
        let body = match paragraphs {
            Some(n) => body.split("\n\n").take(n).collect::<Vec<_>>().join("\n\n"),
            None => body.trim().to_string(),
        };
        out.push((format!("{number}."), title.to_string(), body));
    }
    assert_eq!(out.len(), 12, "the sample book lists twelve chapters");
    out
}

fn markdown(chapters: &[(String, String, String)]) -> String {
    let mut md = String::from(
        "---\ntitle: \"Alice's Adventures in Wonderland\"\nauthor: Lewis Carroll\nlang: en-GB\ndate: \"1865\"\n---\n\n",
    );
    for (number, title, body) in chapters {
        md.push_str(&format!("# {number} {title}\n\n{body}\n\n"));
    }
    md
}

fn gutenberg(chapters: &[(String, String, String)]) -> String {
    let mut txt = String::from(
        "The Project Gutenberg eBook of Alice's Adventures in Wonderland\n\nTitle: Alice's Adventures in Wonderland\nAuthor: Lewis Carroll\nLanguage: English\n\n*** START OF THE PROJECT GUTENBERG EBOOK ALICE'S ADVENTURES IN WONDERLAND ***\n\nContents\n\n",
    );
    for (number, title, _) in chapters {
        txt.push_str(&format!(" {number}     {title}\n"));
    }
    txt.push('\n');
    for (number, title, body) in chapters {
        txt.push_str(&format!("\n\n\n{number}\n{title}\n\n\n{body}\n"));
    }
    txt.push_str("\n\n*** END OF THE PROJECT GUTENBERG EBOOK ALICE'S ADVENTURES IN WONDERLAND ***\n\nSection 1. General Terms of Use and Redistributing Project Gutenberg electronic works\n");
    txt
}

/// pandoc is one of the judges: required, never skipped.
pub(crate) fn pandoc(dir: &Path, args: &[&str]) {
    let out = Command::new("pandoc")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("pandoc is required by the tests: apt-get install pandoc");
    assert!(
        out.status.success(),
        "pandoc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Typographic punctuation (pandoc's smart quotes and dashes) as the plain text writes it.
pub(crate) fn plain(s: &str) -> String {
    s.replace(['\u{2018}', '\u{2019}'], "'")
        .replace(['\u{201c}', '\u{201d}'], "\"")
        .replace('\u{2014}', "---")
        .replace('\u{2013}', "--")
        .replace('\u{2026}', "...")
}

/// The chapters of an imported manifest: (chapter, heading read aloud, text of its file).
pub(crate) fn chapters_of(dir: &Path, manifest: &str) -> Vec<(String, String, String)> {
    let yaml = std::fs::read_to_string(dir.join(manifest)).unwrap();
    let m: Value = serde_saphyr::from_str(&yaml).unwrap();
    let segments = m["segments"].as_array().unwrap();
    segments
        .chunks(2)
        .map(|pair| {
            assert!(pair[0]["id"].as_str().unwrap().ends_with("-title"));
            assert!(pair[1]["id"].as_str().unwrap().ends_with("-body"));
            assert_eq!(pair[0]["chapter"], pair[1]["chapter"]);
            let text =
                std::fs::read_to_string(dir.join(pair[1]["text_file"].as_str().unwrap())).unwrap();
            (
                pair[0]["chapter"].as_str().unwrap().to_string(),
                pair[0]["text"].as_str().unwrap().to_string(),
                text,
            )
        })
        .collect()
}

fn first_and_last_words(text: &str) -> (String, String) {
    let t = plain(text);
    let words: Vec<&str> = t.split_whitespace().collect();
    (
        words.first().unwrap().to_string(),
        words.last().unwrap().to_string(),
    )
}

pub(crate) async fn import(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    narrate(
        dir,
        &all,
        &[("PATH", &std::env::var("PATH").unwrap_or_default())],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_book_as_epub_3_epub_2_markdown_and_text_gives_the_same_chapters() {
    let dir = tempfile::tempdir().unwrap();
    let book = alice(None);
    write(dir.path(), "alice.md", &markdown(&book));
    write(dir.path(), "alice.txt", &gutenberg(&book));
    pandoc(dir.path(), &["alice.md", "-o", "alice3.epub"]);
    pandoc(
        dir.path(),
        &["alice.md", "-t", "epub2", "-o", "alice2.epub"],
    );
    let mut forms = Vec::new();
    for (file, manifest, skipped) in [
        (
            "alice3.epub",
            "epub3.yaml",
            "before the first table-of-contents entry",
        ),
        ("alice2.epub", "epub2.yaml", "title page"),
        ("alice.md", "md.yaml", ""),
        (
            "alice.txt",
            "txt.yaml",
            "skipped: Project Gutenberg's licence (licence, ",
        ),
    ] {
        let out = import(dir.path(), &[file, "-o", manifest]).await;
        assert_eq!(out.status.code(), Some(0), "{file}: {}", stderr(&out));
        let said = stdout(&out);
        assert!(said.contains("12 chapters"), "{file}: {said}");
        if !skipped.is_empty() {
            assert!(
                said.contains("skipped: ") && said.contains(skipped),
                "{file}: {said}"
            );
        }
        let got = chapters_of(dir.path(), manifest);
        assert_eq!(got.len(), 12, "{file}");
        for ((number, title, body), (chapter, heading, text)) in book.iter().zip(&got) {
            let want = format!("{number} {title}");
            assert_eq!(plain(chapter), want, "{file}");
            assert_eq!(plain(heading), want, "{file}");
            assert_eq!(
                first_and_last_words(text),
                first_and_last_words(body),
                "{file}: {want}"
            );
        }
        forms.push(got);
    }
    // The same chapters, word for word, whatever the form (quotes and dashes aside).
    let words = |c: &[(String, String, String)]| -> Vec<Vec<String>> {
        c.iter()
            .map(|(_, _, t)| plain(t).split_whitespace().map(String::from).collect())
            .collect()
    };
    let text = words(&forms[3]);
    for (form, name) in forms.iter().zip(["EPUB 3", "EPUB 2", "Markdown"]) {
        assert_eq!(words(form), text, "{name} against the Gutenberg text");
    }
    // The manifest carries the book's metadata, and it validates.
    let m: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.path().join("epub3.yaml")).unwrap())
            .unwrap();
    assert_eq!(m["author"], "Lewis Carroll");
    assert_eq!(m["year"], "1865");
    assert_eq!(
        plain(m["title"].as_str().unwrap()),
        "Alice's Adventures in Wonderland"
    );
    let check = narrate(dir.path(), &["check", "epub3.yaml", "txt.yaml"], &[]).await;
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
}

/// A small EPUB written by hand: `files` are (path, content); the container and mimetype are
/// added.
pub(crate) fn epub(path: &Path, files: &[(&str, &str)]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/epub+zip").unwrap();
    for (name, content) in files {
        zip.start_file(*name, stored).unwrap();
        zip.write_all(content.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
}

pub(crate) const CONTAINER: (&str, &str) = (
    "META-INF/container.xml",
    r#"<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#,
);

pub(crate) fn page(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><head><title>p</title></head>{body}</html>"#
    )
}

fn opf(version: &str, nav: bool, ncx: bool) -> String {
    let nav_item = if nav {
        r#"<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>"#
    } else {
        ""
    };
    let ncx_item = if ncx {
        r#"<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>"#
    } else {
        ""
    };
    let toc = if ncx { r#" toc="ncx""# } else { "" };
    format!(
        r#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="{version}"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Small &amp; Made</dc:title><dc:creator>A. Writer</dc:creator><dc:language>en</dc:language><dc:description>A &lt;b&gt;test&lt;/b&gt; book.</dc:description></metadata>
        <manifest>{nav_item}{ncx_item}
        <item id="cover" href="text/cover.xhtml" media-type="application/xhtml+xml"/>
        <item id="copy" href="text/copyright.xhtml" media-type="application/xhtml+xml"/>
        <item id="one" href="text/one.xhtml" media-type="application/xhtml+xml"/>
        <item id="threea" href="text/three-a.xhtml" media-type="application/xhtml+xml"/>
        <item id="threeb" href="text/three%20b.xhtml" media-type="application/xhtml+xml"/>
        <item id="notes" href="text/notes.xhtml" media-type="application/xhtml+xml"/>
        </manifest><spine{toc}><itemref idref="cover"/><itemref idref="copy"/><itemref idref="one"/><itemref idref="threea"/><itemref idref="threeb"/><itemref idref="notes" linear="no"/></spine></package>"#
    )
}

/// The pages of the small book: a cover, a copyright page, two chapters in one file (the
/// second at an anchor, with a footnote and a page number), a third over two files.
fn small_book_pages() -> Vec<(&'static str, String)> {
    vec![
        (
            "OEBPS/text/cover.xhtml",
            page(r#"<body epub:type="cover"><p>Small &amp; Made, a cover.</p></body>"#),
        ),
        (
            "OEBPS/text/copyright.xhtml",
            page(r#"<body><h1>Copyright</h1><p>All rights reserved.</p></body>"#),
        ),
        (
            "OEBPS/text/one.xhtml",
            page(
                r##"<body><section><h1 id="c1">Chapter One</h1><p>The first words<a epub:type="noteref" href="notes.xhtml#n1">1</a> of one.</p><span epub:type="pagebreak" id="p7">7</span><p>Last of one&#160;here.</p></section>
                <section><h1 id="c2">Chapter Two</h1><p>Two begins with&#173;out trouble.</p><table><tr><td>skip me</td></tr></table><p>Two ends.</p></section></body>"##,
            ),
        ),
        (
            "OEBPS/text/three-a.xhtml",
            page(r#"<body><h1>Chapter Three</h1><p>Three starts here.</p></body>"#),
        ),
        (
            "OEBPS/text/three b.xhtml",
            page(r#"<body><p>Three goes on in a second file.</p><p>Three ends.</p></body>"#),
        ),
        (
            "OEBPS/text/notes.xhtml",
            page(
                r#"<body><aside epub:type="footnote" id="n1"><p>A note never read.</p></aside></body>"#,
            ),
        ),
    ]
}

const NAV: &str = r##"<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><head><title>Contents</title></head><body>
<nav epub:type="toc"><h1>Contents</h1><ol>
<li><a href="text/cover.xhtml">Cover</a></li>
<li><a href="text/copyright.xhtml">Copyright</a></li>
<li><a href="text/one.xhtml#c1">One (nav)</a></li>
<li><a href="text/one.xhtml#c2">Two (nav)</a></li>
<li><a href="text/three-a.xhtml">Three (nav)</a></li>
</ol></nav>
<nav epub:type="landmarks"><ol><li><a epub:type="copyright-page" href="text/copyright.xhtml">Copyright</a></li></ol></nav></body></html>"##;

const NCX: &str = r#"<?xml version="1.0"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1"><navMap>
<navPoint id="a"><navLabel><text>Cover</text></navLabel><content src="text/cover.xhtml"/></navPoint>
<navPoint id="b"><navLabel><text>One (ncx)</text></navLabel><content src="text/one.xhtml#c1"/></navPoint>
<navPoint id="c"><navLabel><text>Two (ncx)</text></navLabel><content src="text/one.xhtml#c2"/></navPoint>
<navPoint id="d"><navLabel><text>Three (ncx)</text></navLabel><content src="text/three-a.xhtml"/></navPoint>
</navMap></ncx>"#;

fn small_book(path: &Path, version: &str, nav: bool, ncx: bool) {
    let opf = opf(version, nav, ncx);
    let pages = small_book_pages();
    let mut files: Vec<(&str, &str)> = vec![CONTAINER, ("OEBPS/content.opf", &opf)];
    files.extend(pages.iter().map(|(n, c)| (*n, c.as_str())));
    if nav {
        files.push(("OEBPS/nav.xhtml", NAV));
    }
    if ncx {
        files.push(("OEBPS/toc.ncx", NCX));
    }
    epub(path, &files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_epubs_nav_ncx_anchors_files_front_matter_and_footnotes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bodies = [
        "The first words of one.\n\nLast of one here.\n",
        "Two begins without trouble.\n\nTwo ends.\n",
        "Three starts here.\n\nThree goes on in a second file.\n\nThree ends.\n",
    ];
    for (name, version, nav, ncx, suffix) in [
        ("nav.epub", "3.0", true, false, "(nav)"),
        ("both.epub", "3.0", true, true, "(nav)"),
        ("ncx.epub", "2.0", false, true, "(ncx)"),
    ] {
        small_book(&d.join(name), version, nav, ncx);
        let manifest = name.replace(".epub", ".yaml");
        let out = import(d, &[name, "-o", &manifest]).await;
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        let got = chapters_of(d, &manifest);
        let titles: Vec<&str> = got.iter().map(|(c, _, _)| c.as_str()).collect();
        assert_eq!(
            titles,
            [
                format!("One {suffix}"),
                format!("Two {suffix}"),
                format!("Three {suffix}")
            ],
            "{name}"
        );
        let headings: Vec<&str> = got.iter().map(|(_, h, _)| h.as_str()).collect();
        assert_eq!(
            headings,
            ["Chapter One", "Chapter Two", "Chapter Three"],
            "{name}"
        );
        let texts: Vec<&str> = got.iter().map(|(_, _, t)| t.as_str()).collect();
        assert_eq!(texts, bodies, "{name}");
        let said = stdout(&out);
        assert!(
            said.contains("skipped: Cover (cover page, "),
            "{name}: {said}"
        );
        if nav {
            assert!(
                said.contains("skipped: Copyright (copyright page, "),
                "{name}: {said}"
            );
        }
        assert!(
            said.contains("1 footnote marker")
                && said.contains("1 page number")
                && said.contains("1 table"),
            "{name}: {said}"
        );
        let yaml = std::fs::read_to_string(d.join(&manifest)).unwrap();
        assert!(
            yaml.contains("title: \"Small & Made\"") && yaml.contains("author: \"A. Writer\""),
            "{yaml}"
        );
    }

    // No table of contents: a chapter at each top heading of the reading order, a file
    // without headings going on with the chapter before it; the non-linear notes stay out.
    small_book(&d.join("none.epub"), "3.0", false, false);
    let out = import(d, &["none.epub", "-o", "none.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = chapters_of(d, "none.yaml");
    let titles: Vec<&str> = got.iter().map(|(c, _, _)| c.as_str()).collect();
    assert_eq!(titles, ["Chapter One", "Chapter Two", "Chapter Three"]);
    let texts: Vec<&str> = got.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(texts, bodies);
    assert!(
        !std::fs::read_to_string(d.join("none.yaml"))
            .unwrap()
            .contains("never read")
    );

    // The chapter texts go in a directory named after the manifest: here, the book.
    let out = import(d, &["nav.epub", "-o", "nav.epub.yaml"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("nav.epub, which exists and is not a directory"),
        "{}",
        stderr(&out)
    );

    // --keep-all keeps the cover and the copyright page.
    let out = import(d, &["nav.epub", "-o", "all.yaml", "--keep-all"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = chapters_of(d, "all.yaml");
    let titles: Vec<&str> = got.iter().map(|(c, _, _)| c.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Cover",
            "Copyright",
            "One (nav)",
            "Two (nav)",
            "Three (nav)"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_books_are_refused_naming_the_file_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "broken.epub", "PK\u{3}\u{4} this is not a zip");
    epub(
        &d.join("no-container.epub"),
        &[("OEBPS/content.opf", "<package/>")],
    );
    epub(&d.join("no-opf.epub"), &[CONTAINER]);
    let opf = opf("3.0", false, false);
    let mut bad_xhtml: Vec<(&str, &str)> = vec![CONTAINER, ("OEBPS/content.opf", &opf)];
    let pages = small_book_pages();
    for (n, c) in &pages {
        bad_xhtml.push((
            n,
            if n.ends_with("one.xhtml") {
                "<html><body><p>unclosed <b attr=\"x>text</p>"
            } else {
                c.as_str()
            },
        ));
    }
    epub(&d.join("bad-xhtml.epub"), &bad_xhtml);
    let drm = r#"<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/><enc:CipherData><enc:CipherReference URI="OEBPS/text/one.xhtml"/></enc:CipherData></enc:EncryptedData></encryption>"#;
    let mut drm_files = vec![
        ("META-INF/encryption.xml", drm),
        CONTAINER,
        ("OEBPS/content.opf", opf.as_str()),
    ];
    drm_files.extend(pages.iter().map(|(n, c)| (*n, c.as_str())));
    epub(&d.join("drm.epub"), &drm_files);
    let empty_opf = r#"<package xmlns="http://www.idpf.org/2007/opf" version="3.0"><manifest><item id="a" href="a.xhtml" media-type="application/xhtml+xml"/></manifest><spine><itemref idref="a"/></spine></package>"#;
    let empty_page = page("<body><p> </p><img src=\"x.png\"/></body>");
    epub(
        &d.join("empty.epub"),
        &[
            CONTAINER,
            ("OEBPS/content.opf", empty_opf),
            ("OEBPS/a.xhtml", &empty_page),
        ],
    );
    // A ZIP bomb: one page that inflates to 80 MB of spaces from a few kilobytes.
    {
        let file = std::fs::File::create(d.join("bomb.epub")).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file(CONTAINER.0, deflated).unwrap();
        zip.write_all(CONTAINER.1.as_bytes()).unwrap();
        zip.start_file("OEBPS/content.opf", deflated).unwrap();
        zip.write_all(empty_opf.as_bytes()).unwrap();
        zip.start_file("OEBPS/a.xhtml", deflated).unwrap();
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..80 {
            zip.write_all(&chunk).unwrap();
        }
        zip.finish().unwrap();
    }
    assert!(std::fs::metadata(d.join("bomb.epub")).unwrap().len() < 1 << 20);
    std::fs::write(d.join("empty.md"), "\n\n").unwrap();
    for (book, says) in [
        ("broken.epub", "not a ZIP archive"),
        ("no-container.epub", "META-INF/container.xml is missing"),
        (
            "no-opf.epub",
            "OEBPS/content.opf named in META-INF/container.xml is missing",
        ),
        (
            "bad-xhtml.epub",
            "OEBPS/text/one.xhtml: the XHTML does not parse",
        ),
        ("drm.epub", "DRM-protected"),
        ("empty.epub", "no text to narrate"),
        ("bomb.epub", "more than narrate reads"),
        ("empty.md", "no text to narrate"),
        ("book.pdf", "not a book narrate can import"),
    ] {
        if book.ends_with(".pdf") {
            write(d, book, "%PDF-1.4");
        }
        let out = import(d, &[book, "-o", "out.yaml"]).await;
        assert_eq!(out.status.code(), Some(2), "{book}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(book) && err.contains(says), "{book}: {err}");
        assert!(
            !d.join("out.yaml").exists() && !d.join("out").exists(),
            "{book}"
        );
    }

    // An existing manifest is never replaced without --force; the book is never an output.
    let md = "# One\n\nText of one.\n";
    write(d, "book.md", md);
    write(d, "keep.yaml", "kept: true\n");
    let out = import(d, &["book.md", "-o", "keep.yaml"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("already exists"));
    assert_eq!(
        std::fs::read_to_string(d.join("keep.yaml")).unwrap(),
        "kept: true\n"
    );
    let out = import(d, &["book.md", "-o", "keep.yaml", "--force"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Nor a file already where a chapter text would go.
    write(d, "notes/01-one.txt", "my own notes");
    let out = import(d, &["book.md", "-o", "notes.yaml"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("01-one.txt already exists"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(d.join("notes/01-one.txt")).unwrap(),
        "my own notes"
    );
    assert!(!d.join("notes.yaml").exists());
    let out = import(d, &["book.md", "-o", "book.md", "--force"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is the book being imported"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(d.join("book.md")).unwrap(), md);
}

/// A 16x16 JPEG made by ffmpeg.
pub(crate) fn cover_jpeg(dir: &Path) -> PathBuf {
    let path = dir.join("cover.jpg");
    let ok = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=16x16",
            "-frames:v",
            "1",
        ])
        .arg(&path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epub_to_m4b_round_trip_read_back_with_ffprobe() {
    let fx = Fixture::default().await;
    let d = fx.path();
    // The sample book's twelve chapters, two paragraphs each (the whole book takes minutes
    // to encode), with a cover, made into an EPUB 3 by pandoc.
    let book = alice(Some(2));
    write(d, "alice.md", &markdown(&book));
    cover_jpeg(d);
    pandoc(
        d,
        &[
            "alice.md",
            "--epub-cover-image=cover.jpg",
            "-o",
            "alice.epub",
        ],
    );
    let out = import(
        d,
        &[
            "alice.epub",
            "-o",
            "alice.yaml",
            "--audio-output",
            "out/alice.m4b",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("cover: alice/cover.jpg"),
        "{}",
        stdout(&out)
    );
    let yaml = std::fs::read_to_string(d.join("alice.yaml")).unwrap();
    std::fs::write(
        d.join("alice.yaml"),
        yaml.replacen("output:", "narrator: \"A. Reader\"\noutput:", 1),
    )
    .unwrap();

    // ffmpeg from the PATH.
    let path = std::env::var("PATH").unwrap_or_default();
    let out = narrate(
        d,
        &[
            "alice.yaml",
            "--base-url",
            &fx.base(),
            "--loudness-target",
            "-20",
        ],
        &[("ELEVENLABS_API_KEY", SECRET_KEY), ("PATH", &path)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let m4b = d.join("out/alice.m4b");
    let report = read_json(&d.join("out/alice.report.json"));
    let total = report["totals"]["audio_seconds"].as_f64().unwrap();
    let segments = report["segments"].as_array().unwrap();
    let probe = ffprobe_json(&m4b, &["-show_format", "-show_chapters", "-show_streams"]);

    // One AAC frame is 1024 samples.
    let frame = 1024.0 / 44_100.0;
    let duration = secs(&probe["format"]["duration"]);
    assert!(
        (duration - total).abs() <= frame,
        "ffprobe {duration} s, report {total} s"
    );
    let chapters = probe["chapters"].as_array().unwrap();
    assert_eq!(chapters.len(), 12);
    for (k, ((number, title, _), c)) in book.iter().zip(chapters).enumerate() {
        assert_eq!(
            plain(c["tags"]["title"].as_str().unwrap()),
            format!("{number} {title}")
        );
        // A chapter starts where its title segment does (the first at zero).
        let seg = &segments[2 * k];
        assert_eq!(seg["id"], format!("ch{:02}-title", k + 1));
        let want = if k == 0 {
            0.0
        } else {
            seg["start_seconds"].as_f64().unwrap()
        };
        let start = secs(&c["start_time"]);
        assert!(
            (start - want).abs() <= frame,
            "chapter {k}: {start} s, report {want} s"
        );
    }
    let tags = &probe["format"]["tags"];
    assert_eq!(tags["artist"], "Lewis Carroll");
    assert_eq!(tags["composer"], "A. Reader");
    assert_eq!(tags["genre"], "Audiobook");
    assert_eq!(tags["date"], "1865");
    assert_eq!(
        plain(tags["title"].as_str().unwrap()),
        "Alice's Adventures in Wonderland"
    );
    let streams = probe["streams"].as_array().unwrap();
    assert!(streams.iter().any(|s| s["codec_name"] == "aac"));
    assert!(
        streams
            .iter()
            .any(|s| s["codec_type"] == "video" && s["disposition"]["attached_pic"] == 1),
        "the cover is the artwork: {streams:?}"
    );
    assert_eq!(
        probe["format"]["format_name"]
            .as_str()
            .map(|f| f.contains("mp4")),
        Some(true)
    );
    // The loudness target holds through the AAC encoding, as ffmpeg measures it.
    let value = crate::publish::ffmpeg_ebur128(&m4b);
    let (loudness, peak) = (value("I:"), value("Peak:"));
    assert!((loudness + 20.0).abs() <= 0.5, "ffmpeg: {loudness} LUFS");
    assert!(peak <= -0.5, "ffmpeg: true peak {peak} dBFS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp3_output_carries_the_cover_and_m4b_without_ffmpeg_is_refused_before_sending() {
    let fx = Fixture::default().await;
    let d = fx.path();
    cover_jpeg(d);
    let manifest = |output: &str| {
        format!(
            "title: Small\nauthor: A. Writer\nnarrator: A. Reader\nyear: 1865\ncover: cover.jpg\noutput: {output}\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_44100_128}}\nsegments:\n  - {{id: a, chapter: One, text: \"Hello there.\"}}\n"
        )
    };
    write(d, "mp3.yaml", &manifest("out/small.mp3"));
    let out = fx.run(&["mp3.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let probe = ffprobe_json(&d.join("out/small.mp3"), &["-show_format", "-show_streams"]);
    let streams = probe["streams"].as_array().unwrap();
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "mjpeg" && s["disposition"]["attached_pic"] == 1),
        "ID3 APIC: {streams:?}"
    );
    assert_eq!(probe["format"]["tags"]["composer"], "A. Reader");

    // --library: where Audiobookshelf looks, with the files its scanner reads.
    write(
        d,
        "lib.yaml",
        &manifest("out/small.mp3").replace(
            "title: Small",
            "title: \"Small: a Test/Book\"\ndescription: A short book.",
        ),
    );
    let out = fx.run(&["lib.yaml", "--library", "library"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let folder = d.join("library/A. Writer/Small a Test Book");
    assert!(
        folder.join("Small a Test Book.mp3").is_file(),
        "{:?}",
        files_under(&d.join("library"))
    );
    assert_eq!(
        std::fs::read(folder.join("cover.jpg")).unwrap(),
        std::fs::read(d.join("cover.jpg")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(folder.join("desc.txt")).unwrap(),
        "A short book.\n"
    );
    assert_eq!(
        std::fs::read_to_string(folder.join("reader.txt")).unwrap(),
        "A. Reader\n"
    );
    assert!(folder.join("Small a Test Book.report.json").is_file());

    write(d, "m4b.yaml", &manifest("out/small.m4b"));
    let before = fx.tts_log().len();
    let out = narrate(
        d,
        &["m4b.yaml", "--base-url", &fx.base()],
        &[
            ("ELEVENLABS_API_KEY", SECRET_KEY),
            ("NARRATE_FFMPEG", "/nonexistent/ffmpeg"),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("needs ffmpeg") && stderr(&out).contains("apt-get install ffmpeg")
    );
    assert_eq!(fx.tts_log().len(), before, "nothing was sent");

    // A cover that is not an image, and a year that is not one, are manifest errors.
    write(d, "notimage.jpg", "hello");
    write(
        d,
        "bad.yaml",
        &manifest("out/x.mp3").replace("cover.jpg", "notimage.jpg"),
    );
    let out = narrate(d, &["check", "bad.yaml"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cover: ") && stderr(&out).contains("not a JPEG or PNG"),
        "{}",
        stderr(&out)
    );
    write(
        d,
        "bad2.yaml",
        &manifest("out/x.mp3").replace("year: 1865", "year: 18650"),
    );
    let out = narrate(d, &["check", "bad2.yaml"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("year: "), "{}", stderr(&out));
}

fn sha(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_renders_directly_and_chapters_render_alone_or_again() {
    let fx = Fixture::default().await;
    let d = fx.path();
    let mut md = String::from("% Four Parts\n% A. Writer\n\n");
    for (title, text) in [
        ("One", "The first part begins. It has two sentences."),
        (
            "Two",
            "The second part is here, a little longer than the first one.",
        ),
        ("Three", "The third part says something else entirely."),
        ("Four", "And the fourth part closes the book."),
    ] {
        md.push_str(&format!("# {title}\n\n{text}\n\n"));
    }
    write(d, "book.md", &md);

    // The book itself, imported in memory: its output and state directory beside it.
    let out = fx.run(&["book.md", "--voice-id", ALICE]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(d.join(".narrate").is_dir());
    let sent = fx.tts_log();
    assert_eq!(
        sent.len(),
        8,
        "a title and a body for each of four chapters"
    );
    assert!(
        sent.iter()
            .all(|e| e["path"].as_str().unwrap().contains(ALICE)),
        "--voice-id is the default voice"
    );
    let whole = d.join("book.mp3");
    let before = sha(&whole);
    let probe = ffprobe_json(&whole, &["-show_chapters"]);
    assert_eq!(probe["chapters"].as_array().unwrap().len(), 4);

    // Chapters 2 and 4 alone: from the cache, into their own file; the book is left as it was.
    let out = fx
        .run(&["book.md", "--voice-id", ALICE, "--chapters", "2, four"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        fx.tts_log().len(),
        8,
        "nothing sent: both chapters are cached"
    );
    let part = d.join("book.chapters-2-4.mp3");
    let probe = ffprobe_json(&part, &["-show_chapters"]);
    let titles: Vec<&str> = probe["chapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tags"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Two", "Four"]);
    assert_eq!(sha(&whole), before);
    let report = read_json(&d.join("book.chapters-2-4.report.json"));
    let ids: Vec<&str> = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ch02-title", "ch02-body", "ch04-title", "ch04-body"]);

    // Chapter 3 again, the others from the cache, into the whole book.
    let out = fx
        .run(&[
            "book.md",
            "--voice-id",
            ALICE,
            "--chapters",
            "3",
            "--other-chapters",
            "cached",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let again: Vec<String> = fx.tts_log()[8..]
        .iter()
        .map(|e| e["body"]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        again,
        ["Three", "The third part says something else entirely."]
    );
    assert_eq!(
        ffprobe_json(&whole, &["-show_chapters"])["chapters"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // With --split chapters, only the chosen chapter's file, under its own number.
    let out = fx
        .run(&[
            "book.md",
            "--voice-id",
            ALICE,
            "--chapters",
            "2",
            "--split",
            "chapters",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let files: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("book-"))
        .collect();
    assert_eq!(
        files
            .iter()
            .filter(|n| n.ends_with(".mp3"))
            .collect::<Vec<_>>(),
        ["book-02-two.mp3"]
    );

    // Chapters that do not exist are refused, listing the ones that do.
    for list in ["9", "Five", "3-1"] {
        let out = fx.run(&["book.md", "--chapters", list]).await;
        assert_eq!(out.status.code(), Some(2), "{list}");
        assert!(
            stderr(&out).contains("has 4 chapters: 1 One; 2 Two; 3 Three; 4 Four"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(fx.tts_log().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_by_a_chapter_pattern_html_headings_and_voice_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "notes.txt",
        "A preface nobody reads.\n\n~~ Morning ~~\n\nThe sun came up over the hill.\n\n~~ Evening ~~\n\nIt went down again, slowly.\nVery slowly.\n",
    );
    let out = import(
        d,
        &[
            "notes.txt",
            "--chapter-pattern",
            "^~~ .* ~~$",
            "--voice",
            "Rachel",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = chapters_of(d, "notes.yaml");
    assert_eq!(
        got,
        [
            (
                "~~ Morning ~~".to_string(),
                "~~ Morning ~~".to_string(),
                "The sun came up over the hill.\n".to_string()
            ),
            (
                "~~ Evening ~~".to_string(),
                "~~ Evening ~~".to_string(),
                "It went down again, slowly. Very slowly.\n".to_string()
            ),
        ]
    );
    let yaml = std::fs::read_to_string(d.join("notes.yaml")).unwrap();
    assert!(
        yaml.contains("  voice: \"Rachel\"\n") && !yaml.contains("voice_id"),
        "{yaml}"
    );
    assert!(stdout(&out).contains("skipped: Front matter (before the first chapter heading, "));
    let out = import(
        d,
        &[
            "notes.txt",
            "-o",
            "bad.yaml",
            "--chapter-pattern",
            "(unclosed",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--chapter-pattern"),
        "{}",
        stderr(&out)
    );

    write(
        d,
        "page.html",
        "<html><head><title>A Page</title></head><body><h1>First</h1><p>One<br>line.<p>Two.<h1>Second</h1><p>Three &amp; four.</body></html>",
    );
    let out = import(d, &["page.html", "--voice", ALICE]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = chapters_of(d, "page.yaml");
    let texts: Vec<(&str, &str)> = got
        .iter()
        .map(|(c, _, t)| (c.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            ("First", "One line.\n\nTwo.\n"),
            ("Second", "Three & four.\n")
        ]
    );
    let yaml = std::fs::read_to_string(d.join("page.yaml")).unwrap();
    assert!(
        yaml.contains(&format!("  voice_id: {ALICE}\n")) && yaml.contains("title: \"A Page\""),
        "{yaml}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checking_a_book_writes_nothing_and_its_cover_never_goes_through_a_link() {
    let fx = Fixture::default().await;
    let d = fx.path();
    let jpeg = std::fs::read(cover_jpeg(d)).unwrap();
    std::fs::remove_file(d.join("cover.jpg")).unwrap();
    let opf = r#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Covered</dc:title><dc:language>en</dc:language></metadata><manifest><item id="c" href="cover.jpg" media-type="image/jpeg" properties="cover-image"/><item id="one" href="one.xhtml" media-type="application/xhtml+xml"/></manifest><spine><itemref idref="one"/></spine></package>"#;
    let book = d.join("book.epub");
    let one = page("<body><h1>One</h1><p>A chapter with a cover.</p></body>");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&book).unwrap());
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let entries: [(&str, &[u8]); 5] = [
            ("mimetype", b"application/epub+zip"),
            (CONTAINER.0, CONTAINER.1.as_bytes()),
            ("OEBPS/content.opf", opf.as_bytes()),
            ("OEBPS/one.xhtml", one.as_bytes()),
            ("OEBPS/cover.jpg", &jpeg),
        ];
        for (name, bytes) in entries {
            zip.start_file(name, stored).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }
    let before = files_under(d);
    let out = narrate(d, &["check", "book.epub"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(files_under(d), before, "check writes nothing");

    // A state directory that leads elsewhere: the cover is not written through it.
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), d.join(".narrate")).unwrap();
    let out = fx.run(&["book.epub"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    assert!(fx.tts_log().is_empty());
}
