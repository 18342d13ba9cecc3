//! `cargo bench`: how close narrate's scheduling gets to the lower bound the API allows, its CPU
//! time per request, and how fast and how lean assembly is, beside ffmpeg when it is installed.
//!
//! Rendering time is bound by the API: with latency L per request and C slots, no scheduler
//! beats max(longest chain × L, ⌈requests ÷ C⌉ × L). L is the mean latency the requests saw
//! (the emulator's fixed sleep plus its own work), never below the nominal one; the wall time
//! is the whole `render` call, start-up, assembly and reports included. The emulator runs as a separate process
//! (`narrate emulate` with a fixed latency and the Scale tier's 15 slots) so narrate's own CPU
//! time can be read from this process. Assembly runs in a child process each, so its peak RSS is
//! its own. `NARRATE_BENCH_QUICK=1` runs a seconds-long version (CI uses it to keep this
//! compiling and running); `NARRATE_BENCH_ONLY=scheduling`, `=assembly`, `=publish`, `=rows`
//! (check and plan of a bare CSV of 10,000 and 100,000 rows) or `=shards` (the sample book
//! rendered by 1, 2 and 4 shard processes, then assembled) runs one part, and `=rf64` writes a 16-hour WAV past 4 GiB (RF64) and reads it back. The figures are
//! not pass/fail.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use narrate::cli::{Endpoint, RenderConfig};

#[path = "rows.rs"]
mod rows;
#[path = "shards.rs"]
mod shards;
use narrate::execute::Concurrency;
use narrate::format::OutputFormat;

const NARRATOR: &str = "JBFqnCBsd6RMkjVDRZzb";
const VOICES: [&str; 3] = [NARRATOR, "Xb7hH8MSUJpSbSDYk0k2", "TX3LPaxmHKxFdv7VOQHJ"];
const SLOTS: usize = 15;

/// Chains of a synthetic manifest: (chapter, voice, requests).
type Chains = Vec<(String, &'static str, usize)>;

fn main() {
    if let Ok(task) = std::env::var("NARRATE_BENCH_CHILD") {
        child(&task);
        return;
    }
    let quick = std::env::var_os("NARRATE_BENCH_QUICK").is_some();
    println!("narrate benchmarks{}", if quick { " (quick)" } else { "" });
    println!("machine: {} cores, {}", cores(), cpu_model());
    // NARRATE_BENCH_ONLY=scheduling or =assembly runs one half.
    let only = std::env::var("NARRATE_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "scheduling" {
        scheduling(quick);
    }
    if !["scheduling", "rf64", "publish", "rows", "shards"].contains(&only.as_str()) {
        assembly(quick);
    }
    if only.is_empty() || only == "publish" {
        publish(quick);
    }
    if only.is_empty() || only == "rows" {
        rows::rows(quick);
        rows::throughput(quick);
    }
    if only.is_empty() || only == "shards" {
        shards::shards(quick);
    }
    // Not part of a default run: it writes a 5 GB file.
    if only == "rf64" {
        rf64();
    }
}

/// A 16-hour WAV (5.1 GB, past RIFF's 4 GiB): written as RF64, read back by ffprobe.
fn rf64() {
    let dir = tempfile::tempdir().unwrap();
    let response = response_mp3(dir.path(), 60);
    let output = dir.path().join("book.wav");
    let (seconds, rss, audio) = run_child(&response, 900, &output, "copy");
    let mut magic = [0u8; 4];
    std::io::Read::read_exact(&mut std::fs::File::open(&output).unwrap(), &mut magic).unwrap();
    let size = std::fs::metadata(&output).unwrap().len();
    let probed = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&output)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    println!();
    println!(
        "rf64: {:.1} h of audio, {:.2} GB, header {}, written in {seconds:.1} s, peak RSS {rss:.1} MB, ffprobe duration {} s (narrate {audio:.3} s)",
        audio / 3600.0,
        size as f64 / 1e9,
        String::from_utf8_lossy(&magic),
        probed.unwrap_or_else(|| "n/a".into()),
    );
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// User plus system CPU seconds of this process, from /proc (Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// User plus system CPU seconds of this process's waited-for children, from /proc (Linux).
fn children_cpu_seconds() -> f64 {
    let read = || -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let after = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 =
            fields.get(13)?.parse::<f64>().ok()? + fields.get(14)?.parse::<f64>().ok()?;
        Some(ticks / 100.0)
    };
    read().unwrap_or(f64::NAN)
}

/// Peak resident memory of this process in MB, from /proc (Linux).
/// Runs `cmd` to its end, watching its peak resident memory (`VmHWM`, narrate's own, not its
/// ffmpeg's): (wall seconds, peak MB).
fn run_watched(cmd: &mut Command) -> (f64, f64) {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0.0f64;
    let code = loop {
        if let Some(kb) = std::fs::read_to_string(&status).ok().and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        }) {
            peak = peak.max(kb / 1024.0);
        }
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
    assert!(code.success(), "{err}");
    (started.elapsed().as_secs_f64(), peak)
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

struct Emulator {
    child: Child,
    base: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `narrate emulate` on a port of its own choosing and reads the address it prints:
/// no port is bound, released and handed over (another process could take it meanwhile), and
/// an emulator that never listens fails the bench instead of leaving it to time out.
fn start_emulator(latency_ms: u64) -> Emulator {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_narrate"))
        .args([
            "emulate",
            "--listen",
            "127.0.0.1:0",
            "--tier",
            "scale",
            "--latency-ms",
            &latency_ms.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the narrate binary runs");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the emulator says where it listens");
    let base = line
        .trim()
        .strip_prefix("narrate emulator listening on ")
        .unwrap_or_else(|| panic!("the emulator did not start: {line:?}"))
        .to_string();
    Emulator { child, base }
}

/// A manifest of chains: `(chapter, voice, requests)` in listed order, each request one segment.
fn manifest(dir: &Path, name: &str, chains: &[(String, &str, usize)], interleave: bool) -> PathBuf {
    let mut lines = Vec::new();
    if interleave {
        let longest = chains.iter().map(|c| c.2).max().unwrap_or(0);
        for i in 0..longest {
            for (chapter, voice, n) in chains {
                if i < *n {
                    lines.push((chapter.clone(), *voice, i));
                }
            }
        }
    } else {
        for (chapter, voice, n) in chains {
            for i in 0..*n {
                lines.push((chapter.clone(), *voice, i));
            }
        }
    }
    let mut yaml = format!(
        "output: {name}.wav\ndefaults: {{output_format: pcm_16000, pause_after_ms: 0, chapter_pause_ms: 0}}\nsegments:\n"
    );
    for (k, (chapter, voice, i)) in lines.iter().enumerate() {
        yaml.push_str(&format!(
            "  - {{id: s{k}, chapter: \"{chapter}\", voice_id: {voice}, text: \"{chapter}, line {i}, voice {}.\"}}\n",
            &voice[..4]
        ));
    }
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

fn scheduling(quick: bool) {
    let latency_ms: u64 = if quick { 10 } else { 50 };
    let emulator = start_emulator(latency_ms);
    let l = latency_ms as f64 / 1000.0;
    let scale = if quick { 4 } else { 1 };
    let short = |n: usize, len: usize| -> Chains {
        (0..n)
            .map(|c| (format!("Chapter {c}"), NARRATOR, len))
            .collect()
    };
    let mut long_last = short(60 / scale, 2);
    long_last.push(("The long chapter".into(), NARRATOR, 40 / scale));
    let dialogue: Chains = VOICES
        .iter()
        .map(|v| ("Dialogue".to_string(), *v, 60 / scale))
        .collect();
    let scenarios: Vec<(&str, Chains, bool)> = vec![
        ("many short chains", short(120 / scale, 2), false),
        ("one long chain listed last", long_last, false),
        ("interleaved dialogue", dialogue, true),
        ("1,000+ requests", short(50 / scale, 22), false),
    ];
    println!();
    println!("scheduling: emulator latency {latency_ms} ms, {SLOTS} slots");
    println!(
        "{:<28} {:>8} {:>6} {:>9} {:>9} {:>7} {:>12} {:>11}",
        "scenario", "requests", "L ms", "wall s", "bound s", "ratio", "concurrency", "CPU ms/req"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (name, chains, interleave) in scenarios {
        let dir = tempfile::tempdir().unwrap();
        let path = manifest(dir.path(), "book", &chains, interleave);
        let requests: usize = chains.iter().map(|c| c.2).sum();
        let longest = chains.iter().map(|c| c.2).max().unwrap_or(0);
        let config = RenderConfig {
            manifests: vec![path.clone()],
            output: None,
            concurrency: Concurrency::Fixed(SLOTS),
            rate: None,
            max_retries: 3,
            request_timeout: Duration::from_secs(30),
            retry_base: Duration::from_millis(20),
            state_dir: Some(dir.path().join("state")),
            no_cache: false,
            max_credits: None,
            max_duration: None,
            exit_nothing_to_do: None,
            outcomes: Default::default(),
            only: Vec::new(),
            clock_offset: Duration::ZERO,
            progress: narrate::progress::ProgressMode::Never,
            publish: narrate::publish::Options {
                jobs: 1,
                ..Default::default()
            },
            chapters: None,
            library: None,
            timestamps: false,
            retime: false,
            defaults: Default::default(),
            endpoint: Endpoint {
                emulate: false,
                base_url: emulator.base.clone(),
                key: Some(narrate::api::ApiKey::new("bench")),
                key_file: None,
            },
            fleet: Default::default(),
        };
        let job = narrate::manifest::load(&path, &Default::default(), None).unwrap();
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        let rendered = runtime
            .block_on(narrate::render_jobs(&config, vec![job]))
            .unwrap();
        let wall = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds().zip(cpu_before).map(|(a, b)| a - b);
        let report = &rendered[0].report;
        assert_eq!(report.status.as_str(), "ok", "{name}: the render failed");
        let busy: f64 = report
            .segments
            .iter()
            .flat_map(|s| s.requests.iter())
            .map(|r| r.latency_ms.unwrap_or(0) as f64 / 1000.0)
            .sum();
        // The bound with the latency the emulator actually gave (its sleep plus its own work),
        // never below the nominal one.
        let measured = (busy / requests as f64).max(l);
        let bound = (longest as f64 * measured).max(requests.div_ceil(SLOTS) as f64 * measured);
        println!(
            "{:<28} {:>8} {:>6.1} {:>9.3} {:>9.3} {:>7.3} {:>12.1} {:>11}",
            name,
            requests,
            measured * 1000.0,
            wall,
            bound,
            wall / bound,
            busy / wall,
            cpu.map_or("n/a".into(), |c| format!(
                "{:.3}",
                c * 1000.0 / requests as f64
            )),
        );
    }
}

/// One MP3 response of about `seconds` of speech, as the emulator serves it.
fn response_mp3(dir: &Path, seconds: usize) -> PathBuf {
    let format: OutputFormat = "mp3_44100_128".parse().unwrap();
    let text = "Alice was beginning to get very tired of sitting by her sister. "
        .repeat(seconds * 15 / 64 + 1);
    let samples = narrate::emulator::synth::speak(&text, NARRATOR, 1.0, format.sample_rate);
    let bytes =
        narrate::emulator::synth::encode(&samples, format.to_string().parse().unwrap()).unwrap();
    let path = dir.join("response.mp3");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// In a child process: assemble `count` copies of `response` into `output`; print the time
/// and peak RSS.
fn child(task: &str) {
    let mut parts = task.split('|');
    let (response, count, output, mode) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let count: usize = count.parse().unwrap();
    let response = PathBuf::from(response);
    let pieces: Vec<narrate::audio::Piece<'_>> = (0..count)
        .map(|_| narrate::audio::Piece::Audio {
            path: &response,
            segment: 0,
        })
        .collect();
    let format: OutputFormat = "mp3_44100_128".parse().unwrap();
    let started = Instant::now();
    let options = narrate::audio::Options {
        encode_mp3: mode == "encode",
        ..Default::default()
    };
    let placement = narrate::audio::assemble(&pieces, format, Path::new(output), &options).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{seconds} {} {}",
        peak_rss_mb().unwrap_or(f64::NAN),
        placement.seconds(placement.total_samples)
    );
}

fn run_child(response: &Path, count: usize, output: &Path, mode: &str) -> (f64, f64, f64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(
            "NARRATE_BENCH_CHILD",
            format!("{}|{count}|{}|{mode}", response.display(), output.display()),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1], v[2])
}

fn ffmpeg(args: &[&str]) -> Option<f64> {
    let started = Instant::now();
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    ok.then(|| started.elapsed().as_secs_f64())
}

fn assembly(quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let seconds_per_response = 60;
    let response = response_mp3(dir.path(), seconds_per_response);
    let books: Vec<(&str, usize)> = if quick {
        vec![("2-minute book", 2)]
    } else {
        vec![
            ("10-minute book", 10),
            ("2-hour book", 120),
            ("10-hour book", 600),
        ]
    };
    let has_ffmpeg = Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    println!();
    println!(
        "assembly: {seconds_per_response}-second MP3 responses (mp3_44100_128) joined into one file"
    );
    println!(
        "{:<16} {:<13} {:>9} {:>11} {:>12} {:>11} {:>13}",
        "book", "to", "seconds", "x realtime", "peak RSS MB", "ffmpeg s", "narrate/ffmpeg"
    );
    for (name, count) in books {
        let list = dir.path().join("list.txt");
        let mut f = std::fs::File::create(&list).unwrap();
        for _ in 0..count {
            writeln!(f, "file '{}'", response.display()).unwrap();
        }
        for (ext, mode, ffmpeg_args) in [
            ("wav", "copy", vec!["-c:a", "pcm_s16le"]),
            ("mp3", "copy", vec!["-c:a", "libmp3lame", "-b:a", "128k"]),
            ("mp3", "encode", vec!["-c:a", "libmp3lame", "-b:a", "128k"]),
        ] {
            // Encoding a 10-hour book takes minutes on both sides: shorter books show the rate.
            if mode == "encode" && count > 120 {
                continue;
            }
            let output = dir.path().join(format!("book.{ext}"));
            let (seconds, rss, audio) = run_child(&response, count, &output, mode);
            let _ = std::fs::remove_file(&output);
            let theirs = if has_ffmpeg {
                let out = dir.path().join(format!("ffmpeg.{ext}"));
                let mut args = vec!["-f", "concat", "-safe", "0", "-i", list.to_str().unwrap()];
                args.extend(ffmpeg_args.iter().copied());
                args.push(out.to_str().unwrap());
                let t = ffmpeg(&args);
                let _ = std::fs::remove_file(&out);
                t
            } else {
                None
            };
            println!(
                "{:<16} {:<13} {:>9.2} {:>11.0} {:>12.1} {:>11} {:>13}",
                name,
                if mode == "encode" {
                    "mp3 (gapless)"
                } else {
                    ext
                },
                seconds,
                audio / seconds,
                rss,
                theirs.map_or("n/a".into(), |t| format!("{t:.2}")),
                theirs.map_or("n/a".into(), |t| format!("{:.2}x faster", t / seconds)),
            );
        }
    }
    if !has_ffmpeg {
        println!("(ffmpeg is not installed: no comparison)");
    }
}

/// Publishing the sample book as the audiobook preset (`--split chapters --audiobook
/// --loudness-target -20`, one MP3 a chapter at 192 kbps) through `narrate` as a child
/// process: the first render through the built-in emulator, a re-publish of every file from the
/// cache, a run with nothing changed, a run after `--only` one chapter's segment, and ffmpeg
/// decoding and encoding the same audio once with LAME. The quick run takes two chapters.
/// The sample book (`manifests/alice-audiobook.yaml` and its texts) copied into a temporary
/// directory; with `quick`, its first two chapters.
fn sample_book(quick: bool) -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::create_dir_all(dir.path().join("samples/alice")).unwrap();
    for entry in std::fs::read_dir(root.join("samples/alice")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            dir.path().join("samples/alice").join(entry.file_name()),
        )
        .unwrap();
    }
    let mut yaml = std::fs::read_to_string(root.join("manifests/alice-audiobook.yaml")).unwrap();
    if quick {
        let cut = yaml.find("  - id: ch03-title").unwrap();
        yaml.truncate(cut);
    }
    let manifest = dir.path().join("manifests/alice-audiobook.yaml");
    std::fs::write(&manifest, yaml).unwrap();
    dir
}

fn publish(quick: bool) {
    let dir = sample_book(quick);
    let out_dir = dir.path().join("out/alice");
    let run = |extra: &[&str]| -> (f64, f64) {
        let cpu = children_cpu_seconds();
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_narrate"))
            .current_dir(dir.path())
            .args([
                "manifests/alice-audiobook.yaml",
                "--emulate",
                "--split",
                "chapters",
                "--audiobook",
                "--loudness-target",
                "-20",
                "--progress",
                "never",
            ])
            .args(extra)
            .output()
            .unwrap();
        let wall = started.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (wall, children_cpu_seconds() - cpu)
    };
    let chapter_files = || -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "mp3"))
            .collect();
        files.sort();
        files
    };
    println!();
    println!(
        "publish: the sample book{} as the audiobook preset, {} cores",
        if quick { " (two chapters)" } else { "" },
        cores()
    );
    println!("{:<44} {:>9} {:>9}", "run", "wall s", "CPU s");
    let first = run(&[]);
    println!(
        "{:<44} {:>9.1} {:>9.1}",
        "first render (emulator in-process)", first.0, first.1
    );
    let files = chapter_files();
    for f in &files {
        std::fs::remove_file(f).unwrap();
    }
    let full = run(&[]);
    println!(
        "{:<44} {:>9.1} {:>9.1}",
        format!("re-publish from the cache ({} files)", files.len()),
        full.0,
        full.1
    );
    let same = run(&[]);
    println!(
        "{:<44} {:>9.1} {:>9.1}",
        "again, nothing changed", same.0, same.1
    );
    let only = run(&["--only", "ch02"]);
    println!(
        "{:<44} {:>9.1} {:>9.1}   {:.2} x the full re-publish",
        "after --only ch02 (one chapter)",
        only.0,
        only.1,
        only.0 / full.0
    );
    let list = dir.path().join("list.txt");
    let mut f = std::fs::File::create(&list).unwrap();
    for file in chapter_files() {
        writeln!(f, "file '{}'", file.display()).unwrap();
    }
    let encoded = dir.path().join("ffmpeg.mp3");
    let args = [
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        list.to_str().unwrap(),
        "-c:a",
        "libmp3lame",
        "-b:a",
        "192k",
        encoded.to_str().unwrap(),
    ];
    match ffmpeg(&args) {
        Some(t) => println!(
            "{:<44} {:>9.1} {:>9}   full re-publish {:.2} x ffmpeg",
            "ffmpeg: decode and encode it once (LAME)",
            t,
            "",
            full.0 / t
        ),
        None => println!("(ffmpeg is not installed: no comparison)"),
    }
    publish_m4b(dir.path());
}

/// The same book re-published from the cache as one chaptered `.m4b` and as `.m4b` chapter
/// files (`--loudness-target -20`; AAC at 192 kbps, the responses' MP3 rate), beside ffmpeg
/// encoding the same audio (narrate's WAV of it) to AAC once at the same rate.
fn publish_m4b(dir: &Path) {
    let run = |extra: &[&str]| -> (f64, f64, f64) {
        let cpu = children_cpu_seconds();
        let (wall, peak) = run_watched(
            Command::new(env!("CARGO_BIN_EXE_narrate"))
                .current_dir(dir)
                .args(["manifests/alice-audiobook.yaml", "--emulate"])
                .args(["--loudness-target", "-20", "--progress", "never"])
                .args(extra),
        );
        (wall, children_cpu_seconds() - cpu, peak)
    };
    let one = run(&["-o", "out/m4b/alice.m4b"]);
    // The same takes again: their loudness is remembered, so one pass and no measuring.
    let again = run(&["-o", "out/m4b-again/alice.m4b"]);
    let split = run(&["-o", "out/m4b-split/alice.m4b", "--split", "chapters"]);
    run(&["-o", "out/wav/alice.wav"]);
    let wav = dir.join("out/wav/alice.wav");
    let reference = dir.join("reference.m4a");
    let args = [
        "-i",
        wav.to_str().unwrap(),
        "-c:a",
        "aac",
        "-b:a",
        "192k",
        reference.to_str().unwrap(),
    ];
    let Some(t) = ffmpeg(&args) else {
        println!("(ffmpeg is not installed: no M4B comparison)");
        return;
    };
    for (what, (wall, cpu, rss)) in [
        ("re-publish as one .m4b (measuring)", one),
        ("again, loudness remembered", again),
        ("re-publish as .m4b chapter files", split),
    ] {
        println!(
            "{what:<44} {wall:>9.1} {cpu:>9.1}   {:.2} x ffmpeg's one AAC encode, narrate's peak RSS {rss:.0} MB",
            wall / t
        );
    }
    println!(
        "{:<44} {t:>9.1} {:>9}",
        "ffmpeg: encode it once to AAC at 192 kbps", ""
    );
}
