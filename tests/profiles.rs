//! Store deliveries (`--profile`): the sample book's first two chapters delivered to every
//! store from one cache, each file judged by ffmpeg (`ebur128`, `astats`, `silencedetect`,
//! ffprobe) against the report's figures and against the store's published numbers, written
//! out here again; credits that cost only their own requests; a retail sample cut where a
//! sentence ends (judged by the emulator's record of the words it spoke); a chapter too long
//! for one file cut between segments, and a segment too long refused before anything is sent.

use std::path::Path;

use serde_json::Value;

use crate::publish::ffmpeg_ebur128;
use crate::util::*;

/// A store's published numbers, as the tests hold them (independently of narrate's table).
struct Rules {
    name: &'static str,
    ext: &'static str,
    rate: u64,
    channels: u64,
    min_kbps: f64,
    credits: bool,
}

const STORES: [Rules; 5] = [
    Rules {
        name: "acx",
        ext: "mp3",
        rate: 44_100,
        channels: 1,
        min_kbps: 192.0,
        credits: true,
    },
    Rules {
        name: "inaudio",
        ext: "mp3",
        rate: 44_100,
        channels: 1,
        min_kbps: 192.0,
        credits: true,
    },
    Rules {
        name: "google-play",
        ext: "mp3",
        rate: 44_100,
        channels: 1,
        min_kbps: 128.0,
        credits: false,
    },
    Rules {
        name: "apple",
        ext: "m4a",
        rate: 44_100,
        channels: 2,
        min_kbps: 128.0,
        credits: false,
    },
    Rules {
        name: "podcast",
        ext: "mp3",
        rate: 44_100,
        channels: 1,
        min_kbps: 96.0,
        credits: false,
    },
];

/// The opening of a chapter of the sample book, cut after the sentence that ends past
/// `chars` characters (about `chars / 15` seconds of the emulator's speech).
fn opening(name: &str, chars: usize, dir: &Path) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/alice");
    let text = std::fs::read_to_string(root.join(name)).unwrap();
    let end = text[chars..]
        .find(". ")
        .map_or(text.len(), |i| chars + i + 1);
    write(dir, name, &text[..end])
}

/// The openings of the sample book's first two chapters (about four and two minutes), each
/// a title and its text.
fn two_chapters(dir: &Path) {
    let (one, two) = (
        opening("ch01.txt", 3500, dir),
        opening("ch02.txt", 1800, dir),
    );
    let yaml = format!(
        "title: \"Alice's Adventures in Wonderland\"\nauthor: Lewis Carroll\nnarrator: A Digital Voice\n\
         output: out/alice.mp3\nlead_in_ms: 700\ntail_ms: 2500\ntrim_silence: true\n\
         defaults: {{voice_id: {NARRATOR}, model_id: eleven_multilingual_v2, output_format: mp3_44100_192, pause_after_ms: 1200}}\n\
         segments:\n\
         \x20 - {{id: ch01-title, chapter: Down the Rabbit-Hole, text: \"Chapter One. Down the Rabbit-Hole\"}}\n\
         \x20 - {{id: ch01, chapter: Down the Rabbit-Hole, text_file: {}}}\n\
         \x20 - {{id: ch02-title, chapter: The Pool of Tears, text: \"Chapter Two. The Pool of Tears\"}}\n\
         \x20 - {{id: ch02, chapter: The Pool of Tears, text_file: {}}}\n",
        one.display(),
        two.display()
    );
    write(dir, "alice.yaml", &yaml);
}

/// ffmpeg's own figures of a file: RMS (astats), integrated loudness and true peak
/// (ebur128), and the silence before the first sound and after the last at -60 dB
/// (silencedetect).
struct Heard {
    rms: f64,
    lufs: f64,
    peak: f64,
    head: f64,
    tail: f64,
    seconds: f64,
}

fn ffmpeg_figures(path: &Path, rate: f64) -> Heard {
    let ebu = ffmpeg_ebur128(path);
    let log = ffmpeg_filter_log(
        path,
        "astats=measure_perchannel=none,silencedetect=noise=-60dB:d=0.05",
    );
    let number = |line: &str, key: &str| -> f64 {
        line[line.find(key).unwrap() + key.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let rms = astats_rms_db(&log);
    let starts: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("silence_start:"))
        .map(|l| number(l, "silence_start:"))
        .collect();
    let ends: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("silence_end:"))
        .map(|l| number(l, "silence_end:"))
        .collect();
    // What the decoder gives (without the encoder's delay and padding, which the
    // container's duration counts).
    let samples = log
        .lines()
        .find(|l| l.contains("Number of samples:"))
        .map(|l| number(l, "Number of samples:"))
        .expect("astats counts the samples");
    let seconds = samples / rate;
    // The head: a silence starting at 0; the tail: the last silence, when it runs to the end.
    let head = if starts.first().is_some_and(|s| *s < 0.01) {
        ends[0]
    } else {
        0.0
    };
    let last = *starts.last().unwrap();
    let tail =
        if ends.len() < starts.len() || ends.last().is_some_and(|e| (e - seconds).abs() < 0.01) {
            seconds - last
        } else {
            0.0
        };
    Heard {
        rms,
        lufs: ebu("I:"),
        peak: ebu("Peak:"),
        head,
        tail,
        seconds,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_from_one_cache_measured_by_ffmpeg() {
    let fx = Fixture::default().await;
    two_chapters(fx.path());
    let first = fx
        .run(&["alice.yaml", "--split", "chapters", "--timestamps"])
        .await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let book_requests = fx.tts_log().len();
    let mut args = vec![
        "alice.yaml",
        "--split",
        "chapters",
        "--timestamps",
        "--sample",
    ];
    for s in &STORES {
        args.extend(["--profile", s.name]);
    }
    let out = fx.run(&args).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    // Only the credits were sent: two requests, of the credits' own texts.
    let sent: Vec<Value> = fx.tts_log().into_iter().skip(book_requests).collect();
    let mut texts: Vec<&str> = sent
        .iter()
        .map(|e| e["body"]["text"].as_str().unwrap())
        .collect();
    texts.sort();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[0].starts_with("This is Alice's Adventures in Wonderland, written by Lewis Carroll, narrated by A Digital Voice."), "{texts:?}");
    assert!(
        texts
            .iter()
            .all(|t| t.contains("narrated by a digital voice")),
        "INaudio's disclosure: {texts:?}"
    );
    assert!(texts[1].starts_with("You have been listening to") && texts[1].ends_with("The End."));

    let report = fx.json("out/alice.report.json");
    let deliveries = report["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), STORES.len());
    let said = stdout(&out);
    for (rules, delivery) in STORES.iter().zip(deliveries) {
        assert_eq!(delivery["profile"], rules.name);
        assert!(said.contains(&format!("{}: pass", rules.name)), "{said}");
        judge_delivery(fx.path(), rules, delivery);
    }
    // What a killed delivery leaves is cleared by the next; nothing else there is touched.
    let acx = fx.path().join("out/acx");
    std::fs::write(acx.join(".narrate-acx-3.wav"), b"left").unwrap();
    std::fs::write(acx.join(".02-x.mp3.narrate-AbC123.part"), b"left").unwrap();
    std::fs::write(acx.join("notes.txt"), b"mine").unwrap();
    // A delivered file changed since: built again (the others kept).
    let changed = acx.join("02-down-the-rabbit-hole.mp3");
    let mut bytes = std::fs::read(&changed).unwrap();
    bytes.truncate(bytes.len() - 1000);
    std::fs::write(&changed, &bytes).unwrap();
    // Once more: nothing sent at all.
    let again = fx.run(&args).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(fx.tts_log().len(), book_requests + 2);
    // Every file kept as the last delivery wrote it (nothing joined, encoded or measured) but
    // the one changed on disk, built again whole.
    let report = fx.json("out/alice.report.json");
    for delivery in report["deliveries"].as_array().unwrap() {
        for file in delivery["files"].as_array().unwrap() {
            let rebuilt = file["path"]
                .as_str()
                .unwrap()
                .ends_with("acx/02-down-the-rabbit-hole.mp3");
            assert_eq!(file["kept"], !rebuilt, "{}", file["path"]);
        }
    }
    let mut left: Vec<String> = std::fs::read_dir(&acx)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n == "notes.txt")
        .collect();
    left.sort();
    assert_eq!(left, ["notes.txt"]);
    assert!(std::fs::read(&changed).unwrap().len() > bytes.len());
}

/// Every file of one delivery, in play order, by ffprobe and ffmpeg's filters.
fn judge_delivery(dir: &Path, rules: &Rules, delivery: &Value) {
    let files = delivery["files"].as_array().unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            Path::new(f["path"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut want = Vec::new();
    if rules.credits {
        want.push(format!("01-opening-credits.{}", rules.ext));
    }
    let n = want.len();
    want.push(format!("{:02}-down-the-rabbit-hole.{}", n + 1, rules.ext));
    want.push(format!("{:02}-the-pool-of-tears.{}", n + 2, rules.ext));
    if rules.credits {
        want.push(format!("04-closing-credits.{}", rules.ext));
    }
    if rules.name != "podcast" {
        want.push(format!("retail-sample.{}", rules.ext));
    }
    assert_eq!(names, want, "{}", rules.name);
    let on_disk: Vec<_> = std::fs::read_dir(dir.join("out").join(rules.name))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(on_disk.len(), want.len(), "no file left over: {on_disk:?}");
    for file in files {
        let path = dir.join(file["path"].as_str().unwrap());
        let name = path.display().to_string();
        let probe = ffprobe_json(&path, &["-show_streams", "-show_format"]);
        let stream = &probe["streams"][0];
        let seconds = secs(&probe["format"]["duration"]);
        assert_eq!(secs(&stream["sample_rate"]) as u64, rules.rate, "{name}");
        assert_eq!(stream["channels"].as_u64(), Some(rules.channels), "{name}");
        let kbps = secs(&probe["format"]["bit_rate"]) / 1000.0;
        assert!(kbps >= rules.min_kbps, "{name}: {kbps} kbps");
        let m = &file["measured"];
        assert!(
            (m["seconds"].as_f64().unwrap() - seconds).abs() < 0.1,
            "{name}: {seconds} s"
        );
        let heard = ffmpeg_figures(&path, rules.rate as f64);
        assert!(
            (m["seconds"].as_f64().unwrap() - heard.seconds).abs() < 0.002,
            "{name}: {m} vs {}",
            heard.seconds
        );
        let near = |ours: &str, theirs: f64| {
            let v = m[ours].as_f64().unwrap();
            assert!(
                (v - theirs).abs() <= 0.5,
                "{name}: {ours} {v}, ffmpeg {theirs}"
            );
        };
        near("rms_db", heard.rms);
        near("true_peak_dbtp", heard.peak);
        near("integrated_lufs", heard.lufs);
        assert!(
            (m["head_seconds"].as_f64().unwrap() - heard.head).abs() < 0.1,
            "{name}: head {m} vs {}",
            heard.head
        );
        assert!(
            (m["tail_seconds"].as_f64().unwrap() - heard.tail).abs() < 0.1,
            "{name}: tail {m} vs {}",
            heard.tail
        );
        // The store's published numbers, on ffmpeg's figures.
        if rules.name == "podcast" {
            assert!(
                (-17.0..=-15.0).contains(&heard.lufs) && heard.peak <= -1.0,
                "{name}"
            );
        } else {
            assert!(
                (-23.0..=-18.0).contains(&heard.rms) && heard.peak <= -3.0,
                "{name}: {} {}",
                heard.rms,
                heard.peak
            );
            assert!(
                (0.5..=1.0).contains(&heard.head) && (1.0..=5.0).contains(&heard.tail),
                "{name}: {} {}",
                heard.head,
                heard.tail
            );
        }
        if file["role"] == "sample" {
            assert!((60.0..=300.0).contains(&seconds), "{name}: {seconds} s");
        }
        assert_eq!(file["pass"], true, "{name}: {}", file["checks"]);
        assert_eq!(file["kept"], false, "{name}: built this run");
    }
}

/// The retail sample ends where a sentence ends: its speech is the chapter's opening up to the
/// end of a word the emulator spoke last before a sentence mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retail_sample_ends_at_a_sentence_end() {
    let fx = Fixture::default().await;
    two_chapters(fx.path());
    // What the sample costs, before: its requests are the first chapter's opening, to send.
    let base = fx.base();
    let env = [("ELEVENLABS_API_KEY", SECRET_KEY)];
    let plan_args = [
        "plan",
        "alice.yaml",
        "--sample",
        "--profile",
        "google-play",
        "--json",
        "--base-url",
        &base,
    ];
    let plan = narrate(fx.path(), &plan_args, &env).await;
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let before: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let sample = &before["manifests"][0]["sample"];
    assert_eq!(sample["chapter"], "Down the Rabbit-Hole", "{sample}");
    assert_eq!(sample["requests"][0], "ch01-title#1");
    assert_eq!(sample["cached"], 0);
    assert_eq!(
        sample["estimated_credits"].as_f64(),
        sample["characters"].as_f64()
    );
    let out = fx
        .run(&[
            "alice.yaml",
            "--split",
            "chapters",
            "--timestamps",
            "--sample",
            "--profile",
            "google-play",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = fx.json("out/alice.report.json");
    let files = report["deliveries"][0]["files"].as_array().unwrap();
    let sample = files.iter().find(|f| f["role"] == "sample").unwrap();
    let speech_end = sample["measured"]["seconds"].as_f64().unwrap() - 2.5;
    // The chapter file of the render itself has the same head (700 ms), pauses and takes:
    // the sample's cut is a time in it, placed by the report's request offsets.
    let chapter = report["outputs"][0]["path"].as_str().unwrap().to_string();
    let mut words: Vec<(String, f64, f64)> = Vec::new();
    let log = fx.tts_log();
    for segment in report["segments"].as_array().unwrap() {
        if segment["file"].as_str() != Some(chapter.as_str()) {
            continue;
        }
        for request in segment["requests"].as_array().unwrap() {
            let id = request["request_id"].as_str().unwrap();
            let entry = log.iter().find(|e| e["request_id"] == id).unwrap();
            let start = request["start_seconds"].as_f64().unwrap()
                - request["trimmed_ms"][0].as_f64().unwrap_or(0.0) / 1000.0;
            for w in entry["words"].as_array().unwrap() {
                let at = |i: usize| start + w[i].as_f64().unwrap();
                words.push((w[0].as_str().unwrap().to_string(), at(1), at(2)));
            }
        }
    }
    assert!(!words.is_empty());
    // The last word begun before the cut ends a sentence, the cut comes after its last
    // letter (its mark may be cut: trimming keeps only what is heard), and the next word
    // begins after the cut.
    let near: Vec<_> = words
        .iter()
        .filter(|w| (w.2 - speech_end).abs() < 3.0)
        .collect();
    let last = words.iter().rfind(|w| w.1 < speech_end).unwrap();
    let (text, begin, end) = last;
    assert!(
        text.trim_end_matches(['\'', '"'])
            .ends_with(['.', '!', '?']),
        "{last:?} at {speech_end}: {near:?}"
    );
    let chars = text.chars().count() as f64;
    let letters = text
        .chars()
        .collect::<Vec<_>>()
        .iter()
        .rposition(|c| c.is_alphanumeric())
        .unwrap() as f64
        + 1.0;
    let letters_end = begin + (end - begin) * letters / chars;
    assert!(
        speech_end >= letters_end - 0.01,
        "cut at {speech_end} inside {last:?}"
    );
    if let Some(next) = words.iter().find(|w| w.1 > *begin) {
        assert!(
            next.1 >= speech_end,
            "{next:?} begins before the cut at {speech_end}"
        );
    }
    assert!((60.0..=300.0).contains(&(speech_end + 2.5)));
    // After the book: the sample's requests are cached, it costs nothing more.
    let plan = narrate(fx.path(), &plan_args, &env).await;
    let after: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let sample = &after["manifests"][0]["sample"];
    let requests = sample["requests"].as_array().unwrap().len() as u64;
    assert_eq!(sample["cached"].as_u64(), Some(requests), "{sample}");
    assert_eq!(sample["estimated_credits"].as_f64(), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chapter_too_long_for_one_file_is_cut_between_segments() {
    let fx = Fixture::default().await;
    // About 150 minutes in one segment: refused before anything is sent.
    let long = "The rabbit ran on and on. ".repeat(5200);
    fx.write("one.yaml", &format!(
        "title: Long\noutput: out/one.mp3\ndefaults: {{voice_id: {NARRATOR}, max_request_chars: 10000}}\nsegments:\n  - {{id: whole, chapter: Long, text: \"{long}\"}}\n"
    ));
    let out = fx.run(&["one.yaml", "--profile", "acx"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("segment whole") && said.contains("cut its text into several segments"),
        "{said}"
    );
    assert!(fx.tts_log().is_empty());

    // Ten segments of about 40 seconds under a 2-minute limit of one's own: parts of whole
    // segments, none over it. (The credits, "This is Parts.", are mostly room tone: joined
    // louder so that ACX's RMS, silence counted, is in its window.)
    let mut yaml = format!(
        "title: Parts\noutput: out/parts.mp3\ntail_ms: 1000\ndefaults: {{voice_id: {NARRATOR}, output_format: mp3_44100_128}}\nsegments:\n"
    );
    for k in 0..10 {
        let text = format!("Part {k} begins here. ") + &"Alice sat by the river bank. ".repeat(21);
        yaml.push_str(&format!(
            "  - {{id: s{k}, chapter: Long Chapter, text: \"{text}\"}}\n"
        ));
    }
    fx.write("parts.yaml", &yaml);
    let env = [
        ("ELEVENLABS_API_KEY", SECRET_KEY),
        ("NARRATE_MAX_FILE_MINUTES", "2"),
    ];
    let out = narrate(
        fx.path(),
        &[
            "--base-url",
            &fx.base(),
            "parts.yaml",
            "--profile",
            "google-play",
            "--profile",
            "acx",
        ],
        &env,
    )
    .await;
    let report = fx.json("out/parts.report.json");
    for delivery in report["deliveries"].as_array().unwrap() {
        let files = delivery["files"].as_array().unwrap();
        let chapters: Vec<&Value> = files.iter().filter(|f| f["role"] == "chapter").collect();
        assert!(chapters.len() >= 4, "{}", delivery);
        let mut next = 0;
        for f in &chapters {
            let path = fx.path().join(f["path"].as_str().unwrap());
            let seconds = secs(&ffprobe_json(&path, &["-show_format"])["format"]["duration"]);
            assert!(seconds <= 120.0, "{}: {seconds} s", path.display());
            // Whole segments, in order, none left out.
            let (a, b) = (
                f["segments"][0].as_str().unwrap(),
                f["segments"][1].as_str().unwrap(),
            );
            assert_eq!(a, format!("s{next}"));
            next = b[1..].parse::<usize>().unwrap() + 1;
            assert!(
                f["title"]
                    .as_str()
                    .unwrap()
                    .starts_with("Long Chapter (part ")
            );
        }
        assert_eq!(next, 10);
        for f in files.iter().filter(|f| f["role"] != "chapter") {
            let path = fx.path().join(f["path"].as_str().unwrap());
            let rms = ffmpeg_figures(&path, 44_100.0).rms;
            if delivery["profile"] == "acx" {
                assert!((-23.0..=-18.0).contains(&rms), "{}: {rms}", path.display());
            }
        }
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Three voices audition the opening; the cost is said before anything is sent; the book's
/// render afterwards with the manifest's voice sends none of the auditioned requests again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audition_of_three_voices_then_the_book_from_its_takes() {
    let fx = Fixture::default().await;
    two_chapters(fx.path());
    let voices = format!("{NARRATOR},{ALICE},{RABBIT}");
    let base = fx.base();
    let env = [("ELEVENLABS_API_KEY", SECRET_KEY)];
    let args = [
        "audition",
        "alice.yaml",
        "--voices",
        &voices,
        "--minutes",
        "1",
        "--base-url",
        &base,
    ];
    let out = narrate(fx.path(), &args, &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stdout(&out);
    let lines: Vec<&str> = said.lines().collect();
    assert!(
        lines[0].starts_with(&format!("audition {NARRATOR}: ")) && lines[0].contains("credits"),
        "{said}"
    );
    assert!(
        lines[3].starts_with("audition: 3 voices, ") && lines[3].contains("credits in all"),
        "{said}"
    );
    // The same texts, once a voice.
    let log = fx.tts_log();
    let texts_of = |voice: &str| -> Vec<String> {
        log.iter()
            .filter(|e| e["voice_id"] == voice)
            .map(|e| e["body"]["text"].as_str().unwrap().to_string())
            .collect()
    };
    let auditioned = texts_of(NARRATOR);
    assert!(!auditioned.is_empty());
    assert_eq!(texts_of(ALICE), auditioned);
    assert_eq!(texts_of(RABBIT), auditioned);
    assert_eq!(log.len(), 3 * auditioned.len());
    let chars: usize = auditioned.iter().map(|t| t.chars().count()).sum();
    assert!(chars >= 900, "about a minute of text: {chars}");
    let page = std::fs::read_to_string(fx.path().join("out/alice.audition/index.html")).unwrap();
    assert_eq!(page.matches("<audio").count(), 3, "{page}");
    for voice in [NARRATOR, ALICE, RABBIT] {
        let file = fx
            .path()
            .join(format!("out/alice.audition/{}.mp3", voice.to_lowercase()));
        let seconds = secs(&ffprobe_json(&file, &["-show_format"])["format"]["duration"]);
        assert!(seconds > 50.0, "{}: {seconds} s", file.display());
    }
    // The book, read by the manifest's voice: the auditioned requests come from the cache.
    let book = fx.run(&["alice.yaml"]).await;
    assert_eq!(book.status.code(), Some(0), "{}", stderr(&book));
    let again: Vec<String> = fx.tts_log()[log.len()..]
        .iter()
        .map(|e| e["body"]["text"].as_str().unwrap().to_string())
        .collect();
    assert!(!again.is_empty());
    for text in &auditioned {
        assert!(!again.contains(text), "sent again: {text:.60}");
    }
    let report = fx.json("out/alice.report.json");
    assert_eq!(
        report["totals"]["cache_hits"].as_u64(),
        Some(auditioned.len() as u64),
        "{}",
        report["totals"]
    );
}
