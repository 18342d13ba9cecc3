//! The read-along EPUB's documents and container: `mimetype` stored first, the container, the
//! package document (metadata with each overlay's and the whole book's `media:duration` and
//! the `media:active-class`), the navigation document, a style sheet that shows the sentence
//! being read, and per chapter its XHTML, its SMIL and its audio. Every entry is stored (the
//! audio is compressed already); the file is written beside its place and renamed into it.
//!
//! Not responsible for the clips (see `clips`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use super::Chapter;
use crate::manifest::Job;

/// The class a reading system puts on the element being read.
pub(super) const ACTIVE_CLASS: &str = "-epub-media-overlay-active";
/// The largest cover put in the book.
const MAX_COVER_BYTES: u64 = 16 * 1024 * 1024;

/// Text for XML: markup escaped, characters XML does not allow dropped, newlines kept.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A title on one line.
fn line(s: &str) -> String {
    esc(&s.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A SMIL clock value: `h:mm:ss.fff`.
pub(super) fn clock(seconds: f64) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// The audio's name in the book and its media type.
pub(super) fn audio_name(k: usize, audio: &Path) -> (String, &'static str) {
    let mp3 = audio
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mp3"));
    if mp3 {
        (format!("audio/ch{:03}.mp3", k + 1), "audio/mpeg")
    } else {
        (format!("audio/ch{:03}.m4a", k + 1), "audio/mp4")
    }
}

fn language(job: &Job) -> String {
    job.book
        .language
        .clone()
        .or_else(|| job.segments.iter().find_map(|s| s.language_code.clone()))
        .unwrap_or_else(|| "und".into())
}

/// One chapter's XHTML: its paragraphs, each clip a `span` with an id (`c1`, `c2`...).
fn xhtml(chapter: &Chapter, lang: &str) -> String {
    let mut x = String::new();
    let _ = write!(
        x,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xmlns:epub=\"http://www.idpf.org/2007/ops\" lang=\"{l}\" xml:lang=\"{l}\">\n<head><meta charset=\"UTF-8\"/><title>{t}</title><link rel=\"stylesheet\" type=\"text/css\" href=\"../style.css\"/></head>\n<body><section epub:type=\"chapter\" id=\"chapter\">\n",
        l = esc(lang),
        t = line(&chapter.title)
    );
    if !chapter.paragraphs.first().is_some_and(|p| p.heading) {
        let _ = writeln!(x, "<h1>{}</h1>", line(&chapter.title));
    }
    let mut n = 0;
    for p in &chapter.paragraphs {
        let tag = if p.heading { "h1" } else { "p" };
        let _ = write!(x, "<{tag}>");
        for (i, clip) in p.clips.iter().enumerate() {
            n += 1;
            let text = esc(&clip.text).replace('\n', "<br/>");
            let space = if i > 0 { " " } else { "" };
            let _ = write!(x, "{space}<span id=\"c{n}\">{text}</span>");
        }
        let _ = writeln!(x, "</{tag}>");
    }
    x.push_str("</section></body>\n</html>\n");
    x
}

/// One chapter's SMIL: a `par` per clip, its text's id and its span in the chapter's audio.
fn smil(chapter: &Chapter, text: &str, audio: &str) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<smil xmlns=\"http://www.w3.org/ns/SMIL\" xmlns:epub=\"http://www.idpf.org/2007/ops\" version=\"3.0\">\n<body>\n",
    );
    let _ = writeln!(
        s,
        "<seq id=\"seq1\" epub:textref=\"../{text}#chapter\" epub:type=\"chapter\">"
    );
    let clips = chapter.paragraphs.iter().flat_map(|p| &p.clips);
    for (n, clip) in clips.enumerate() {
        let end = clip.end.max(clip.begin + 0.001);
        let _ = writeln!(
            s,
            "<par id=\"p{i}\"><text src=\"../{text}#c{i}\"/><audio src=\"../{audio}\" clipBegin=\"{:.3}s\" clipEnd=\"{:.3}s\"/></par>",
            clip.begin,
            end,
            i = n + 1
        );
    }
    s.push_str("</seq>\n</body>\n</smil>\n");
    s
}

/// The navigation document: the chapters, nested under their parts where their names give
/// them ("Part One: Chapter I", as `narrate import` names a book's chapters in parts).
fn nav(chapters: &[Chapter], lang: &str, title: &str) -> String {
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xmlns:epub=\"http://www.idpf.org/2007/ops\" lang=\"{l}\" xml:lang=\"{l}\">\n<head><meta charset=\"UTF-8\"/><title>{t}</title></head>\n<body><nav epub:type=\"toc\" id=\"toc\"><h1>{t}</h1><ol>\n",
        l = esc(lang),
        t = line(title)
    );
    let mut k = 0;
    while k < chapters.len() {
        let link = |k: usize, label: &str| {
            format!(
                "<li><a href=\"text/ch{:03}.xhtml\">{}</a></li>",
                k + 1,
                line(label)
            )
        };
        // Chapters named "Part: Chapter" in a run of two or more are nested under their part.
        let part = chapters[k].title.split_once(": ").map(|(p, _)| p);
        let run = chapters[k..]
            .iter()
            .take_while(|c| part.is_some() && c.title.split_once(": ").map(|(p, _)| p) == part)
            .count();
        match part {
            Some(name) if run >= 2 => {
                let _ = writeln!(x, "<li><span>{}</span><ol>", line(name));
                for (j, c) in chapters[k..k + run].iter().enumerate() {
                    let own = c
                        .title
                        .split_once(": ")
                        .map_or(c.title.as_str(), |(_, o)| o);
                    let _ = writeln!(x, "{}", link(k + j, own));
                }
                x.push_str("</ol></li>\n");
                k += run;
            }
            _ => {
                let _ = writeln!(x, "{}", link(k, &chapters[k].title));
                k += 1;
            }
        }
    }
    x.push_str("</ol></nav></body>\n</html>\n");
    x
}

/// The cover, if the manifest names one narrate can read: (name in the book, media type,
/// bytes).
fn cover(job: &Job) -> Option<(String, &'static str, Vec<u8>)> {
    let path = job.book.cover.as_ref()?;
    let bytes = crate::files::read_bytes(path, MAX_COVER_BYTES).ok()?;
    let png = bytes.starts_with(b"\x89PNG");
    let (name, kind) = if png {
        ("cover.png", "image/png")
    } else {
        ("cover.jpg", "image/jpeg")
    };
    Some((name.to_string(), kind, bytes))
}

/// The package document.
fn opf(job: &Job, chapters: &[Chapter], cover: Option<(&str, &str)>, lang: &str) -> String {
    let title = job.book.title.clone().unwrap_or_else(|| "Untitled".into());
    let seed: String = chapters.iter().map(|c| format!("{}\n", c.title)).collect();
    let id = crate::state::cache::sha256_hex(format!("{title}\n{seed}").as_bytes());
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &id[..8],
        &id[8..12],
        &id[12..16],
        &id[16..20],
        &id[20..32]
    );
    let modified = crate::output::time::rfc3339(std::time::SystemTime::now());
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<package xmlns=\"http://www.idpf.org/2007/opf\" version=\"3.0\" unique-identifier=\"uid\" xml:lang=\"{l}\">\n<metadata xmlns:dc=\"http://purl.org/dc/elements/1.1/\">\n<dc:identifier id=\"uid\">urn:uuid:{uuid}</dc:identifier>\n<dc:title>{t}</dc:title>\n<dc:language>{l}</dc:language>\n<meta property=\"dcterms:modified\">{m}Z</meta>\n",
        l = esc(lang),
        t = line(&title),
        m = &modified[..19]
    );
    if let Some(a) = &job.book.author {
        let _ = writeln!(x, "<dc:creator>{}</dc:creator>", line(a));
    }
    if let Some(d) = &job.book.description {
        let _ = writeln!(x, "<dc:description>{}</dc:description>", esc(d));
    }
    if let Some(n) = &job.book.narrator {
        let _ = writeln!(x, "<meta property=\"media:narrator\">{}</meta>", line(n));
    }
    let mut total_ms = 0u64;
    for (k, c) in chapters.iter().enumerate() {
        let ms = (c.seconds.max(0.0) * 1000.0).round() as u64;
        total_ms += ms;
        let _ = writeln!(
            x,
            "<meta property=\"media:duration\" refines=\"#o{}\">{}</meta>",
            k + 1,
            clock(ms as f64 / 1000.0)
        );
    }
    let _ = write!(
        x,
        "<meta property=\"media:duration\">{}</meta>\n<meta property=\"media:active-class\">{ACTIVE_CLASS}</meta>\n</metadata>\n<manifest>\n<item id=\"nav\" href=\"nav.xhtml\" media-type=\"application/xhtml+xml\" properties=\"nav\"/>\n<item id=\"css\" href=\"style.css\" media-type=\"text/css\"/>\n",
        clock(total_ms as f64 / 1000.0)
    );
    if let Some((name, kind)) = cover {
        let _ = writeln!(
            x,
            "<item id=\"cover\" href=\"{name}\" media-type=\"{kind}\" properties=\"cover-image\"/>"
        );
    }
    for (k, c) in chapters.iter().enumerate() {
        let (audio, kind) = audio_name(k, &c.audio);
        let _ = write!(
            x,
            "<item id=\"t{n}\" href=\"text/ch{n:03}.xhtml\" media-type=\"application/xhtml+xml\" media-overlay=\"o{n}\"/>\n<item id=\"o{n}\" href=\"smil/ch{n:03}.smil\" media-type=\"application/smil+xml\"/>\n<item id=\"a{n}\" href=\"{audio}\" media-type=\"{kind}\"/>\n",
            n = k + 1
        );
    }
    x.push_str("</manifest>\n<spine>\n");
    for k in 0..chapters.len() {
        let _ = writeln!(x, "<itemref idref=\"t{}\"/>", k + 1);
    }
    x.push_str("</spine>\n</package>\n");
    x
}

const CONTAINER: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container version=\"1.0\" xmlns=\"urn:oasis:names:tc:opendocument:xmlns:container\"><rootfiles><rootfile full-path=\"EPUB/package.opf\" media-type=\"application/oebps-package+xml\"/></rootfiles></container>\n";

/// Writes the book at `path` (atomically).
pub(super) fn write(job: &Job, chapters: &[Chapter], path: &Path) -> std::io::Result<()> {
    let lang = language(job);
    let title = job.book.title.clone().unwrap_or_else(|| "Untitled".into());
    let cover = cover(job);
    let temp = crate::files::temp_beside(path)?;
    let mut zip = zip::ZipWriter::new(temp.as_file());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let entry = |zip: &mut zip::ZipWriter<&std::fs::File>, name: &str, data: &[u8]| {
        zip.start_file(name, stored)?;
        zip.write_all(data)
    };
    entry(&mut zip, "mimetype", b"application/epub+zip")?;
    entry(&mut zip, "META-INF/container.xml", CONTAINER.as_bytes())?;
    let cover_ref = cover.as_ref().map(|(n, k, _)| (n.as_str(), *k));
    entry(
        &mut zip,
        "EPUB/package.opf",
        opf(job, chapters, cover_ref, &lang).as_bytes(),
    )?;
    entry(
        &mut zip,
        "EPUB/nav.xhtml",
        nav(chapters, &lang, &title).as_bytes(),
    )?;
    let css = format!(".{ACTIVE_CLASS} {{ background-color: #ffe58a; color: inherit; }}\n");
    entry(&mut zip, "EPUB/style.css", css.as_bytes())?;
    if let Some((name, _, bytes)) = &cover {
        entry(&mut zip, &format!("EPUB/{name}"), bytes)?;
    }
    for (k, c) in chapters.iter().enumerate() {
        let text = format!("text/ch{:03}.xhtml", k + 1);
        let (audio, _) = audio_name(k, &c.audio);
        entry(
            &mut zip,
            &format!("EPUB/{text}"),
            xhtml(c, &lang).as_bytes(),
        )?;
        let overlay = smil(c, &text, &audio);
        entry(
            &mut zip,
            &format!("EPUB/smil/ch{:03}.smil", k + 1),
            overlay.as_bytes(),
        )?;
        zip.start_file(format!("EPUB/{audio}"), stored)?;
        std::io::copy(&mut std::fs::File::open(&c.audio)?, &mut zip)?;
    }
    zip.finish()?;
    crate::files::commit(temp, path)
}
