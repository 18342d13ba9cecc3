//! The read-along book made from the EPUB a manifest was imported from: every file of the
//! source book as it is, but for the narrated sentences wrapped in spans with ids in its own
//! XHTML (see `wrap`), a link to a small style sheet for the sentence being read, and its
//! package document given the overlays: a SMIL document per XHTML document read, the chapter
//! audio, `media-overlay` on the documents' items, `media:duration` and `media:active-class`.
//! New files go under `narrate/` beside the package document.
//!
//! Not responsible for the clips' times (see `clips`) or a book written from scratch (see
//! `package`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use quick_xml::Reader;
use quick_xml::events::Event;

use super::clips::Clip;
use super::package::{ACTIVE_CLASS, audio_name, clock, esc};
use super::{Chapter, wrap};
use crate::import::epub::SourceBook;
use crate::manifest::Job;

/// What was kept of the source book.
pub(super) struct Kept {
    /// Clips whose words were not found in it, or could not be wrapped (not highlighted).
    pub(super) unfound: usize,
}

/// A clip placed in a source document: its span's id, its chapter and times.
struct Par {
    id: String,
    chapter: usize,
    begin: f64,
    end: f64,
}

/// Each document's spans and pars, and the clips left out.
struct Placed {
    spans: Vec<Vec<(usize, usize, String)>>,
    pars: Vec<Vec<Par>>,
    unfound: usize,
}

/// The clips placed among the documents' words. A clip whose ends are in different elements
/// (a sentence that ends inside emphasis it did not start in, or runs over two paragraphs of
/// the book) is wrapped in pieces, each the longest run of its words one span can hold, timed
/// in proportion to their characters.
fn place(chapters: &[Chapter], words: &[Vec<wrap::Word>]) -> Placed {
    let clips: Vec<(usize, &Clip)> = chapters
        .iter()
        .enumerate()
        .flat_map(|(k, c)| {
            c.paragraphs
                .iter()
                .flat_map(move |p| p.clips.iter().map(move |x| (k, x)))
        })
        .collect();
    let narrated: Vec<&str> = clips
        .iter()
        .flat_map(|(_, c)| c.text.split_whitespace())
        .collect();
    let found = wrap::align(&narrated, words);
    let mut out = Placed {
        spans: words.iter().map(|_| Vec::new()).collect(),
        pars: words.iter().map(|_| Vec::new()).collect(),
        unfound: 0,
    };
    let (mut at, mut count) = (0, 0);
    for (chapter, clip) in clips {
        let said: Vec<&str> = clip.text.split_whitespace().collect();
        let mine = &found[at..at + said.len()];
        at += said.len();
        let pieces = pieces(clip, &said, mine, words);
        out.unfound += usize::from(pieces.is_empty());
        for (doc, open, close, begin, end) in pieces {
            count += 1;
            let id = format!("narrate-s{count}");
            out.spans[doc].push((open, close, id.clone()));
            out.pars[doc].push(Par {
                id,
                chapter,
                begin,
                end,
            });
        }
    }
    out
}

/// A clip's pieces: (document, where its span opens and closes, its times).
fn pieces(
    clip: &Clip,
    said: &[&str],
    found: &[Option<(usize, usize)>],
    words: &[Vec<wrap::Word>],
) -> Vec<(usize, usize, usize, f64, f64)> {
    // Each narrated word's characters before it, for the pieces' times.
    let mut before = Vec::with_capacity(said.len() + 1);
    let mut n = 0;
    for w in said {
        before.push(n);
        n += w.chars().count() + 1;
    }
    before.push(n);
    let time = |i: usize| clip.begin + (clip.end - clip.begin) * before[i] as f64 / n.max(1) as f64;
    // The found words, in runs within one document: (document, narrated index, word).
    let mut out = Vec::new();
    let hits: Vec<(usize, usize, usize)> = found
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.map(|(d, w)| (d, i, w)))
        .collect();
    for group in hits.chunk_by(|a, b| a.0 == b.0) {
        let doc = group[0].0;
        for (first, last, (open, close)) in
            wrap::runs(&words[doc], group[0].2, group[group.len() - 1].2)
        {
            // The narrated words this piece holds.
            let inside = group.iter().filter(|h| (first..=last).contains(&h.2));
            let (Some(a), Some(b)) = (inside.clone().map(|h| h.1).min(), inside.map(|h| h.1).max())
            else {
                continue;
            };
            out.push((doc, open, close, time(a), time(b + 1)));
        }
    }
    // One piece for the whole clip keeps its times as they are.
    if let [one] = out.as_mut_slice() {
        one.3 = clip.begin;
        one.4 = clip.end;
    }
    out
}

/// `to` as an href from the file `from` (both paths in the book).
fn relative(from: &str, to: &str) -> String {
    let from_dirs: Vec<&str> = from.split('/').collect::<Vec<_>>();
    let from_dirs = &from_dirs[..from_dirs.len() - 1];
    let to_parts: Vec<&str> = to.split('/').collect();
    let common = from_dirs
        .iter()
        .zip(&to_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<&str> = vec![".."; from_dirs.len() - common];
    parts.extend(&to_parts[common..]);
    let mut out = String::new();
    for c in parts.join("/").chars() {
        match c {
            ' ' | '%' | '#' | '?' | '"' | '<' | '>' => {
                let mut b = [0; 4];
                for byte in c.encode_utf8(&mut b).bytes() {
                    let _ = write!(out, "%{byte:02X}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The directory of the package document, with its slash (`OEBPS/`, or nothing).
fn base(opf_path: &str) -> &str {
    opf_path.rfind('/').map_or("", |i| &opf_path[..=i])
}

/// One document's SMIL: a `par` per clip.
fn smil(smil_path: &str, doc: &str, pars: &[Par], audio: &[String]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<smil xmlns=\"http://www.w3.org/ns/SMIL\" xmlns:epub=\"http://www.idpf.org/2007/ops\" version=\"3.0\">\n<body>\n",
    );
    let text = esc(&relative(smil_path, doc));
    for (n, p) in pars.iter().enumerate() {
        let src = esc(&relative(smil_path, &audio[p.chapter]));
        let _ = writeln!(
            s,
            "<par id=\"p{}\"><text src=\"{text}#{}\"/><audio src=\"{src}\" clipBegin=\"{:.3}s\" clipEnd=\"{:.3}s\"/></par>",
            n + 1,
            p.id,
            p.begin,
            p.end.max(p.begin + 0.001)
        );
    }
    s.push_str("</body>\n</smil>\n");
    s
}

/// Where, in the package document, its metadata and manifest end, and where each item's
/// start tag has room for an attribute (after `<item`), by id.
struct OpfPlaces {
    metadata: usize,
    manifest: usize,
    items: Vec<(String, usize)>,
}

fn opf_places(opf: &str) -> Result<OpfPlaces, String> {
    let mut reader = Reader::from_str(opf);
    let (mut metadata, mut manifest, mut items) = (None, None, Vec::new());
    loop {
        let at = reader.buffer_position() as usize;
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "item" => {
                let id = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.as_ref() == "id")
                    .map(|a| a.value.to_string());
                if let Some(id) = id {
                    items.push((id, at + 1 + e.name().as_ref().len()));
                }
            }
            Event::End(e) if e.local_name().as_ref() == "metadata" => metadata = Some(at),
            Event::End(e) if e.local_name().as_ref() == "manifest" => manifest = Some(at),
            Event::Eof => break,
            _ => {}
        }
    }
    match (metadata, manifest) {
        (Some(metadata), Some(manifest)) => Ok(OpfPlaces {
            metadata,
            manifest,
            items,
        }),
        _ => Err("its package document has no metadata or manifest".into()),
    }
}

/// The new files' names, and the package document given them.
struct Added {
    /// Per document read: its SMIL's path in the book and manifest id.
    smil: Vec<Option<(String, String)>>,
    /// Per chapter: its audio's path in the book and media type.
    audio: Vec<(String, &'static str)>,
    css: String,
}

fn added(book: &SourceBook, chapters: &[Chapter], pars: &[Vec<Par>]) -> Added {
    let dir = format!("{}narrate/", base(&book.opf_path));
    let audio = chapters
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let (name, kind) = audio_name(k, &c.audio);
            (format!("{dir}{name}"), kind)
        })
        .collect();
    let smil = pars
        .iter()
        .enumerate()
        .map(|(d, p)| {
            (!p.is_empty()).then(|| {
                (
                    format!("{dir}smil/doc{:03}.smil", d + 1),
                    format!("narrate-o{}", d + 1),
                )
            })
        })
        .collect();
    Added {
        smil,
        audio,
        css: format!("{dir}read-along.css"),
    }
}

/// The package document with the overlays: `media-overlay` on the items of the documents
/// read, the new files in the manifest, the durations and the active class in the metadata.
fn opf(job: &Job, book: &SourceBook, pars: &[Vec<Par>], new: &Added) -> Result<String, String> {
    let OpfPlaces {
        metadata,
        manifest,
        items,
    } = opf_places(&book.opf)?;
    let mut inserts: Vec<(usize, String)> = Vec::new();
    let mut meta = String::from("\n");
    let mut total_ms = 0u64;
    for (d, smil) in new.smil.iter().enumerate() {
        let Some((_, id)) = smil else { continue };
        let ms: u64 = pars[d]
            .iter()
            .map(|p| ((p.end - p.begin).max(0.0) * 1000.0).round() as u64)
            .sum();
        total_ms += ms;
        let _ = writeln!(
            meta,
            "<meta property=\"media:duration\" refines=\"#{id}\">{}</meta>",
            clock(ms as f64 / 1000.0)
        );
        let doc_id = &book.documents[d].1;
        let at = items
            .iter()
            .find(|(i, _)| i == doc_id)
            .map(|(_, at)| *at)
            .ok_or_else(|| format!("the manifest has no item {doc_id}"))?;
        inserts.push((at, format!(" media-overlay=\"{id}\"")));
    }
    let _ = writeln!(
        meta,
        "<meta property=\"media:duration\">{}</meta>\n<meta property=\"media:active-class\">{ACTIVE_CLASS}</meta>",
        clock(total_ms as f64 / 1000.0)
    );
    if let Some(n) = job
        .book
        .narrator
        .as_ref()
        .filter(|_| !book.opf.contains("media:narrator"))
    {
        let _ = writeln!(meta, "<meta property=\"media:narrator\">{}</meta>", esc(n));
    }
    inserts.push((metadata, meta));
    let opf_path = &book.opf_path;
    let mut items = String::from("\n");
    for (path, id) in new.smil.iter().flatten() {
        let _ = writeln!(
            items,
            "<item id=\"{id}\" href=\"{}\" media-type=\"application/smil+xml\"/>",
            esc(&relative(opf_path, path))
        );
    }
    for (k, (path, kind)) in new.audio.iter().enumerate() {
        let _ = writeln!(
            items,
            "<item id=\"narrate-a{}\" href=\"{}\" media-type=\"{kind}\"/>",
            k + 1,
            esc(&relative(opf_path, path))
        );
    }
    let _ = writeln!(
        items,
        "<item id=\"narrate-css\" href=\"{}\" media-type=\"text/css\"/>",
        esc(&relative(opf_path, &new.css))
    );
    inserts.push((manifest, items));
    inserts.sort_by_key(|(at, _)| *at);
    let mut out = String::with_capacity(book.opf.len() + 4096);
    let mut from = 0;
    for (at, text) in inserts {
        out.push_str(&book.opf[from..at]);
        out.push_str(&text);
        from = at;
    }
    out.push_str(&book.opf[from..]);
    Ok(out)
}

/// A document with its spans, and a link to the read-along style sheet in its head.
fn wrapped(text: &str, doc: &str, spans: &[(usize, usize, String)], css: &str) -> String {
    let link = text.find("</head>").map(|head| {
        let href = esc(&relative(doc, css));
        (
            head,
            format!("<link rel=\"stylesheet\" type=\"text/css\" href=\"{href}\"/>"),
        )
    });
    wrap::insert_spans(text, spans, link)
}

/// Writes the read-along book of `chapters` made from the source book at `source`, at
/// `path` (atomically); an error says why the source cannot be kept.
pub(super) fn write(
    job: &Job,
    chapters: &[Chapter],
    source: &Path,
    path: &Path,
) -> Result<Kept, String> {
    let bytes = crate::files::read_bytes(source, crate::import::MAX_BOOK_BYTES)
        .map_err(|e| format!("cannot read it: {e}"))?;
    let mut book = SourceBook::open(bytes)?;
    if !book.version.starts_with('3') {
        return Err(format!(
            "it is an EPUB {} book, and overlays need EPUB 3",
            book.version
        ));
    }
    if book.opf.contains("media-overlay")
        || book
            .names
            .iter()
            .any(|n| n.starts_with(&format!("{}narrate/", base(&book.opf_path))))
    {
        return Err("it has media overlays (or narrate's files) of its own".into());
    }
    let mut texts = Vec::with_capacity(book.documents.len());
    let mut words = Vec::with_capacity(book.documents.len());
    for (doc, _) in book.documents.clone() {
        let text = book.text(&doc)?;
        if text.contains("id=\"narrate-") {
            return Err(format!("{doc} has ids that narrate's spans would repeat"));
        }
        words.push(wrap::words(&text).map_err(|e| format!("{doc}: {e}"))?);
        texts.push(text);
    }
    let placed = place(chapters, &words);
    let clips: usize = placed.pars.iter().map(Vec::len).sum();
    if clips == 0 {
        return Err("none of the narrated text was found in it".into());
    }
    let new = added(&book, chapters, &placed.pars);
    let opf = opf(job, &book, &placed.pars, &new)?;
    pack(&mut book, (&texts, &placed, &new, &opf), chapters, path).map_err(|e| e.to_string())?;
    Ok(Kept {
        unfound: placed.unfound,
    })
}

/// Writes the zip: `mimetype` first and stored, the source's files (its package document and
/// the documents read replaced), then narrate's.
fn pack(
    book: &mut SourceBook,
    (texts, placed, new, opf): (&[String], &Placed, &Added, &str),
    chapters: &[Chapter],
    path: &Path,
) -> std::io::Result<()> {
    let temp = crate::files::temp_beside(path)?;
    let mut zip = zip::ZipWriter::new(temp.as_file());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("mimetype", stored)?;
    zip.write_all(b"application/epub+zip")?;
    let docs: Vec<String> = book.documents.iter().map(|(d, _)| d.clone()).collect();
    for name in book.names.clone() {
        if name == "mimetype" || name.ends_with('/') {
            continue;
        }
        let data = if name == book.opf_path {
            opf.as_bytes().to_vec()
        } else if let Some(d) = docs
            .iter()
            .position(|d| *d == name)
            .filter(|&d| !placed.pars[d].is_empty())
        {
            wrapped(&texts[d], &name, &placed.spans[d], &new.css).into_bytes()
        } else {
            book.bytes(&name).map_err(std::io::Error::other)?
        };
        let text = [
            ".xhtml", ".html", ".htm", ".opf", ".css", ".ncx", ".xml", ".svg",
        ]
        .iter()
        .any(|x| name.to_ascii_lowercase().ends_with(x));
        zip.start_file(name.as_str(), if text { deflated } else { stored })?;
        zip.write_all(&data)?;
    }
    let audio: Vec<String> = new.audio.iter().map(|(p, _)| p.clone()).collect();
    for (d, smil_at) in new.smil.iter().enumerate() {
        let Some((smil_path, _)) = smil_at else {
            continue;
        };
        zip.start_file(smil_path.as_str(), deflated)?;
        zip.write_all(smil(smil_path, &docs[d], &placed.pars[d], &audio).as_bytes())?;
    }
    for (k, (audio, _)) in new.audio.iter().enumerate() {
        zip.start_file(audio.as_str(), stored)?;
        std::io::copy(&mut std::fs::File::open(&chapters[k].audio)?, &mut zip)?;
    }
    zip.start_file(new.css.as_str(), deflated)?;
    zip.write_all(
        format!(".{ACTIVE_CLASS} {{ background-color: #ffe58a; color: inherit; }}\n").as_bytes(),
    )?;
    zip.finish()?;
    crate::files::commit(temp, path)
}
