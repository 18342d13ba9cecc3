//! The sample book (`samples/alice`, twelve chapters, 2.7 hours) as a read-along book, judged
//! whole: epubcheck for the book; the book's own text files for the words; the emulator's
//! record of where it spoke each word in each answer's audio (its request log) for the clips'
//! times; ffmpeg's decoding of the audio packed in the book for where each answer was placed
//! and for what is heard outside any clip.

use std::path::Path;

use serde_json::Value;

use crate::readalong::{entry, epubcheck, pars, spans};
use crate::util::*;

/// How far a clip's time may be from where the emulator spoke its words.
const WITHIN: f64 = 0.020;

/// A word the emulator spoke, placed in its chapter's file (seconds).
struct Heard {
    text: String,
    begin: f64,
    end: f64,
}

/// The audiobook manifest of the repository, its paths made to point at the sample book and
/// at `out/alice.mp3`.
fn manifest(dir: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("manifests/alice-audiobook.yaml")).unwrap();
    let yaml = yaml
        .replace(
            "../samples/alice",
            &root.join("samples/alice").to_string_lossy(),
        )
        .replace("../out/alice/alice.mp3", "out/alice.mp3");
    write(dir, "alice.yaml", &yaml);
    yaml
}

/// Each chapter's words, as the manifest gives its segments' texts (a title, then a file).
fn chapter_words(yaml: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for line in yaml.lines().map(str::trim) {
        if let Some(text) = line.strip_prefix("text: ") {
            let text: String = serde_json::from_str(text).unwrap();
            out.push(text.split_whitespace().map(str::to_string).collect());
        } else if let Some(path) = line.strip_prefix("text_file: ") {
            let text = std::fs::read_to_string(path).unwrap();
            let last = out.last_mut().unwrap();
            last.extend(text.split_whitespace().map(str::to_string));
        }
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The index of the paragraph (`<p>` or `<h1>`) each `span` with an id is in.
fn paragraph_of_spans(xhtml: &str) -> Vec<usize> {
    let mut seen = 0;
    let mut out = Vec::new();
    for (n, chunk) in xhtml.split("<span id=\"").enumerate() {
        if n > 0 {
            out.push(seen);
        }
        seen += chunk.matches("<p>").count() + chunk.matches("<h1>").count();
    }
    out
}

/// The words the emulator spoke for the requests placed in `file`, in order, each placed
/// where its request's audio starts there (before `trim_silence` cut its head) and kept
/// within the span the request kept.
fn heard_in(report: &Value, log: &[Value], file: &str) -> Vec<Heard> {
    let by_id = by_request_id(log);
    let mut out = Vec::new();
    for segment in report["segments"].as_array().unwrap() {
        if segment["file"] != file {
            continue;
        }
        for request in segment["requests"].as_array().unwrap() {
            let (start, end) = (
                request["start_seconds"].as_f64().unwrap(),
                request["end_seconds"].as_f64().unwrap(),
            );
            let origin = start - request["trimmed_ms"][0].as_f64().unwrap_or(0.0) / 1000.0;
            let id = request["request_id"].as_str().unwrap();
            let (_, line) = &by_id[id];
            for w in line["words"]
                .as_array()
                .expect("the emulator logs its words")
            {
                let at = |i: usize| (origin + w[i].as_f64().unwrap()).clamp(start, end);
                out.push(Heard {
                    text: w[0].as_str().unwrap().to_string(),
                    begin: at(1),
                    end: at(2),
                });
            }
        }
    }
    out
}

/// The loudest sample (0..1) of `pcm` between two times.
fn peak(pcm: &[i16], rate: f64, from: f64, to: f64) -> f64 {
    let a = ((from.max(0.0) * rate) as usize).min(pcm.len());
    let b = ((to.max(0.0) * rate) as usize).min(pcm.len());
    pcm[a..b.max(a)]
        .iter()
        .map(|s| f64::from(s.unsigned_abs()) / 32768.0)
        .fold(0.0, f64::max)
}

/// The share of words that begin with a letter or digit whose sound, in the decoded audio,
/// starts where they are placed: quiet up to 3 ms before, voiced from 3 ms after.
fn onsets_where_placed(pcm: &[i16], rate: f64, heard: &[Heard]) -> (usize, usize) {
    let starts_voiced = |w: &Heard| w.text.chars().next().is_some_and(char::is_alphanumeric);
    let mut judged = 0;
    let mut agree = 0;
    for w in heard
        .iter()
        .filter(|w| starts_voiced(w) && w.end - w.begin > 0.06)
    {
        judged += 1;
        let before = peak(pcm, rate, w.begin - 0.015, w.begin - 0.003);
        let after = peak(pcm, rate, w.begin + 0.003, w.begin + 0.015);
        if before < 0.02 && after > 0.04 {
            agree += 1;
        }
    }
    (agree, judged)
}

/// Sentence ends and clause marks, as a reader sees them.
fn ends_sentence(word: &str) -> bool {
    word.trim_end_matches(['\'', '"', ')', '\u{2019}', '\u{201D}'])
        .ends_with(['.', '!', '?'])
}

fn ends_clause(word: &str) -> bool {
    word.ends_with([',', ';', ':'])
}

/// Every sentence is one clip, or several phrases cut at its clauses when it is long; a clip
/// ends where its sentence or its paragraph does, or at a clause of a long sentence.
fn clips_are_sentences(chapter: usize, texts: &[String], paragraphs: &[usize]) {
    let words: Vec<Vec<&str>> = texts
        .iter()
        .map(|t| t.split_whitespace().collect())
        .collect();
    // Each clip's sentence length: from the last sentence end before it to the next after.
    let mut sentence: Vec<usize> = Vec::new();
    let mut open = 0;
    for (n, text) in texts.iter().enumerate() {
        open += text.chars().count() + 1;
        sentence.push(0);
        let last = *words[n].last().unwrap();
        if ends_sentence(last) || paragraphs.get(n + 1) != Some(&paragraphs[n]) {
            for s in sentence.iter_mut().rev().take_while(|s| **s == 0) {
                *s = open;
            }
            open = 0;
        }
    }
    for (n, w) in words.iter().enumerate() {
        let inner = &w[..w.len() - 1];
        assert!(
            !inner.iter().any(|x| ends_sentence(x)),
            "chapter {chapter}: a sentence ends inside {:?}",
            texts[n]
        );
        let last = w[w.len() - 1];
        let paragraph_ends = paragraphs.get(n + 1) != Some(&paragraphs[n]);
        let phrase = ends_clause(last) && sentence[n] > 200;
        assert!(
            ends_sentence(last) || paragraph_ends || phrase,
            "chapter {chapter}: {:?} ends neither a sentence, nor a paragraph, nor a phrase of a long sentence",
            texts[n]
        );
    }
}

/// Every stretch of sound in the chapter's audio is inside a clip.
fn sound_is_in_clips(chapter: usize, pcm: &[i16], rate: f64, clips: &[(String, f64, f64)]) {
    let window = 0.010;
    let mut c = 0;
    let mut t = 0.0;
    while t * rate < pcm.len() as f64 {
        if peak(pcm, rate, t, t + window) > 0.05 {
            while c < clips.len() && clips[c].2 + WITHIN < t {
                c += 1;
            }
            let inside = clips
                .get(c)
                .is_some_and(|k| k.1 - WITHIN <= t + window && t <= k.2 + WITHIN);
            assert!(inside, "chapter {chapter}: sound at {t:.3} s is in no clip");
        }
        t += window;
    }
}

/// One chapter of the book, judged: its words are the manifest's and the emulator's, its clips
/// are its sentences, in order, where the emulator spoke them, over all that is heard.
fn judge_chapter(
    k: usize,
    book: &mut zip::ZipArchive<std::fs::File>,
    expected: &[String],
    heard: &[Heard],
    dir: &Path,
) {
    let xhtml = String::from_utf8(entry(book, &format!("EPUB/text/ch{k:03}.xhtml"))).unwrap();
    let smil = String::from_utf8(entry(book, &format!("EPUB/smil/ch{k:03}.smil"))).unwrap();
    let texts: Vec<String> = spans(&xhtml)
        .into_iter()
        .map(|(_, t)| unescape(&t))
        .collect();
    let clips = pars(&smil);
    assert_eq!(texts.len(), clips.len(), "chapter {k}");
    let read: Vec<&str> = texts.iter().flat_map(|t| t.split_whitespace()).collect();
    let spoken: Vec<&str> = heard.iter().map(|w| w.text.as_str()).collect();
    assert_eq!(
        read, expected,
        "chapter {k}: the book's text is not the manifest's"
    );
    assert_eq!(
        read, spoken,
        "chapter {k}: the book's text is not what was spoken"
    );
    clips_are_sentences(k, &texts, &paragraph_of_spans(&xhtml));
    // In order, none overlapping; each where the emulator spoke its first and last word.
    let mut at = 0;
    for (n, (id, begin, end)) in clips.iter().enumerate() {
        assert!(begin < end, "chapter {k} {id}: {begin}..{end}");
        if n > 0 {
            assert!(
                *begin >= clips[n - 1].2,
                "chapter {k} {id} overlaps the clip before"
            );
        }
        let count = texts[n].split_whitespace().count();
        let (first, last) = (&heard[at], &heard[at + count - 1]);
        at += count;
        assert!(
            (begin - first.begin).abs() <= WITHIN && (end - last.end).abs() <= WITHIN,
            "chapter {k} {id} {:?}: clip {begin}..{end}, spoken {}..{}",
            texts[n],
            first.begin,
            last.end
        );
    }
    // Where the emulator's words are placed is where ffmpeg hears them begin.
    let audio = dir.join(format!("ch{k:03}.mp3"));
    std::fs::write(&audio, entry(book, &format!("EPUB/audio/ch{k:03}.mp3"))).unwrap();
    let pcm = ffmpeg_pcm(&audio);
    let rate = 44_100.0;
    let (agree, judged) = onsets_where_placed(&pcm, rate, heard);
    assert!(
        judged > 100 && agree * 100 >= judged * 99,
        "chapter {k}: {agree} of {judged} words begin where they are placed"
    );
    sound_is_in_clips(k, &pcm, rate, &clips);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_book_reads_along_a_clip_a_sentence_where_each_word_was_spoken() {
    let fx = Fixture::default().await;
    let d = fx.path();
    let yaml = manifest(d);
    let args = [
        "alice.yaml",
        "--split",
        "chapters",
        "--timestamps",
        "--read-along",
    ];
    let out = fx.run(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let epub = d.join("out/alice.read-along.epub");
    epubcheck(&epub).unwrap();
    let report = read_json(&d.join("out/alice.report.json"));
    assert_eq!(report["read_along"]["paragraphs"], 0);
    let log = fx.tts_log();
    let words = chapter_words(&yaml);
    assert_eq!(words.len(), 12);
    let mut book = zip::ZipArchive::new(std::fs::File::open(&epub).unwrap()).unwrap();
    let outputs = report["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 12);
    for (k, output) in outputs.iter().enumerate() {
        let heard = heard_in(&report, &log, output["path"].as_str().unwrap());
        judge_chapter(k + 1, &mut book, &words[k], &heard, d);
    }
}
