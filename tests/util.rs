//! Helpers shared by the integration tests: a running emulator, the binary run as a user
//! would (cleared environment, temporary directories), and readers for outputs and logs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use narrate::emulator;
use serde_json::Value;

/// The key tests use; it must never show up in any output.
pub const SECRET_KEY: &str = "sk_test_9f8e7d6c5b4a_DO_NOT_LEAK";

/// Voices of the emulator's catalogue (premade voices of the real API), in one place.
pub const NARRATOR: &str = "JBFqnCBsd6RMkjVDRZzb";
pub const ALICE: &str = "Xb7hH8MSUJpSbSDYk0k2";
pub const RABBIT: &str = "TX3LPaxmHKxFdv7VOQHJ";

/// A test's world: a temporary directory and an emulator on `127.0.0.1:0` that logs its
/// requests there. Both go away when it is dropped (the emulator stops with its handle).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub emu: emulator::Running,
}

impl Fixture {
    pub async fn new(config: emulator::Config) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let emu = emulator_in(dir.path(), config).await;
        Fixture { dir, emu }
    }

    /// With the emulator's defaults.
    pub async fn default() -> Self {
        Fixture::new(emulator::Config::default()).await
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn base(&self) -> String {
        self.emu.base_url()
    }

    /// Writes a file under the directory (creating its parents).
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        write(self.path(), name, text)
    }

    /// Runs narrate in the directory against the emulator, with the test key and a short
    /// retry base.
    pub async fn run(&self, args: &[&str]) -> Output {
        run_against(self.path(), &self.base(), args).await
    }

    /// A file under the directory, parsed as JSON (a report).
    pub fn json(&self, name: &str) -> Value {
        read_json(&self.path().join(name))
    }

    /// A file under the directory, as bytes.
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The emulator's request log.
    pub fn log(&self) -> Vec<Value> {
        request_log(self.path())
    }

    /// The emulator's text-to-speech requests.
    pub fn tts_log(&self) -> Vec<Value> {
        tts_log(self.path())
    }

    /// Stops the emulator and waits for it (dropping the fixture stops it too).
    pub async fn stop(self) {
        self.emu.stop().await;
    }
}

/// An emulator on `127.0.0.1:0` that logs requests to `dir/requests.jsonl`.
pub async fn emulator_in(dir: &Path, mut config: emulator::Config) -> emulator::Running {
    config.request_log = Some(dir.join("requests.jsonl"));
    emulator::start(config).await.expect("emulator starts")
}

/// The emulator's request log.
pub fn request_log(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("requests.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("log lines are JSON"))
        .collect()
}

/// Logged text-to-speech requests.
pub fn tts_log(dir: &Path) -> Vec<Value> {
    request_log(dir)
        .into_iter()
        .filter(|e| {
            e["method"] == "POST"
                && e["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/v1/text-to-speech/"))
        })
        .collect()
}

/// Runs narrate in `dir` against the API at `base`, with the test key and a short retry base:
/// the one run helper (a [`Fixture`] runs against its own emulator).
pub async fn run_against(dir: &Path, base: &str, args: &[&str]) -> Output {
    let mut all = vec!["--base-url", base, "--retry-base-ms", "5"];
    all.extend_from_slice(args);
    narrate(dir, &all, &[("ELEVENLABS_API_KEY", SECRET_KEY)]).await
}

/// Runs the binary in `dir` with a cleared environment plus `env`, off the async runtime.
pub async fn narrate(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("narrate"));
    cmd.current_dir(dir).env_clear().env("HOME", dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("narrate runs"))
        .await
        .expect("join")
}

/// Starts the binary in `dir` with a cleared environment and the test key, for tests that
/// watch or stop it while it runs (the others use [`narrate`]).
pub fn spawn_narrate(
    dir: &Path,
    args: &[&str],
    stdout: std::process::Stdio,
    stderr: std::process::Stdio,
) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin!("narrate"))
        .current_dir(dir)
        .env_clear()
        .env("ELEVENLABS_API_KEY", SECRET_KEY)
        .args(args)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("narrate starts")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a refusal before anything is sent (exit status 2) whose message holds `says`.
pub fn refused(out: &Output, says: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", stderr(out));
    assert!(stderr(out).contains(says), "{says}: {}", stderr(out));
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// Samples and spec of a WAV file.
pub fn read_wav(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let samples = r.samples::<i16>().map(Result::unwrap).collect();
    (spec, samples)
}

/// POSTs a logged request body again and returns the audio bytes: the emulator is
/// deterministic, so this is the audio as served.
pub async fn refetch(base_url: &str, entry: &Value) -> Vec<u8> {
    let query: Vec<(String, String)> = entry["query"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut body = entry["body"].clone();
    // Context ids would have to be fresh and known; they do not change the audio.
    body.as_object_mut().unwrap().remove("previous_request_ids");
    let mut url =
        reqwest::Url::parse(&format!("{base_url}{}", entry["path"].as_str().unwrap())).unwrap();
    for (k, v) in &query {
        url.query_pairs_mut().append_pair(k, v);
    }
    let response = reqwest::Client::new()
        .post(url)
        .header("xi-api-key", "refetch")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

/// The HTTP status of every attempt of every request in a report (0 for no answer).
pub fn all_statuses(report: &Value) -> Vec<u64> {
    report["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["requests"].as_array().into_iter().flatten())
        .flat_map(|r| r["statuses"].as_array().into_iter().flatten())
        .filter_map(Value::as_u64)
        .collect()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The TTS request log keyed by the request id each answer carried: (log index, entry).
pub fn by_request_id(log: &[Value]) -> std::collections::HashMap<String, (usize, Value)> {
    log.iter()
        .enumerate()
        .filter_map(|(i, e)| {
            e["request_id"]
                .as_str()
                .map(|id| (id.to_string(), (i, e.clone())))
        })
        .collect()
}

/// 16-bit little-endian PCM bytes as samples.
pub fn pcm_samples(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// Runs narrate as a child and returns its output with its peak resident memory in MB,
/// sampled from /proc while it runs.
pub async fn run_measured(dir: &Path, args: Vec<String>) -> (Output, f64) {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("narrate"))
            .current_dir(&dir)
            .env_clear()
            .env("ELEVENLABS_API_KEY", SECRET_KEY)
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let status_path = format!("/proc/{}/status", child.id());
        let mut peak_kb = 0f64;
        for _ in 0..3000 {
            if let Ok(status) = std::fs::read_to_string(&status_path)
                && let Some(kb) = status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = child.kill();
        (child.wait_with_output().unwrap(), peak_kb / 1024.0)
    })
    .await
    .unwrap()
}

/// The temporary files (`.part`) anywhere under `dir`.
pub fn part_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect()
}

/// What ffmpeg logs when it runs a file's audio through `filter`, such as `volumedetect`: its
/// measurements (ffmpeg is required).
pub fn ffmpeg_filter_log(path: &Path, filter: &str) -> String {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-af", filter, "-f", "null", "-"])
        .output()
        .expect("ffmpeg is required by the tests: apt-get install ffmpeg");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The overall RMS level (dB) in a log of ffmpeg's `astats` filter.
pub fn astats_rms_db(log: &str) -> f64 {
    let line = log
        .lines()
        .find(|l| l.contains("RMS level dB:"))
        .expect("astats prints the RMS level");
    line.rsplit(':').next().unwrap().trim().parse().unwrap()
}

/// ffprobe's JSON about a file, with `args` such as `-show_format` (ffprobe is required).
pub fn ffprobe_json(path: &Path, args: &[&str]) -> Value {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe is required by the tests: apt-get install ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe writes JSON")
}

/// A number ffprobe writes as a string (or a number), such as a duration in seconds.
pub fn secs(v: &Value) -> f64 {
    v.as_str()
        .map_or_else(|| v.as_f64().unwrap(), |s| s.parse().unwrap())
}

/// A file decoded by ffmpeg to mono 16-bit samples at its own rate.
pub fn ffmpeg_pcm(path: &Path) -> Vec<i16> {
    ffmpeg_decode_file(path, &[])
}

/// A file decoded by ffmpeg to mono 16-bit samples; `input` says what it is when the file does
/// not (raw G.711).
pub fn ffmpeg_decode_file(path: &Path, input: &[&str]) -> Vec<i16> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error"])
        .args(input)
        .arg("-i")
        .arg(path)
        .args(["-f", "s16le", "-ac", "1", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pcm_samples(&out.stdout)
}

/// An MP3 file's frames as ffprobe reads them (its Info/Xing frame is not one of them): each
/// frame's byte range in the file, the samples per frame, and the samples ffmpeg's gapless
/// decoding skips at the start (the decoder's delay plus LAME's encoder delay, when its tag says
/// so) and discards at the end (LAME's padding less the decoder's delay).
pub struct Mp3Frames {
    pub frames: Vec<std::ops::Range<usize>>,
    pub samples_per_frame: usize,
    pub sample_rate: usize,
    pub skip: usize,
    pub discard: usize,
}

pub fn mp3_frames_by_ffprobe(path: &Path) -> Mp3Frames {
    let probe = ffprobe_json(
        path,
        &[
            "-show_streams",
            "-show_packets",
            "-show_entries",
            "stream=sample_rate,time_base:packet=pos,size,duration:packet_side_data",
        ],
    );
    let stream = &probe["streams"][0];
    let sample_rate: usize = stream["sample_rate"].as_str().unwrap().parse().unwrap();
    let (num, den) = stream["time_base"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap();
    let (num, den): (f64, f64) = (num.parse().unwrap(), den.parse().unwrap());
    let packets = probe["packets"].as_array().unwrap();
    let number = |v: &Value| -> usize {
        v.as_str()
            .map_or_else(|| v.as_u64().unwrap() as usize, |s| s.parse().unwrap())
    };
    let frames = packets
        .iter()
        .map(|p| {
            let pos = number(&p["pos"]);
            pos..pos + number(&p["size"])
        })
        .collect();
    let durations: std::collections::BTreeSet<u64> = packets
        .iter()
        .map(|p| p["duration"].as_u64().unwrap())
        .collect();
    assert_eq!(durations.len(), 1, "frames of one length: {durations:?}");
    let duration = *durations.first().unwrap() as f64 * num / den;
    let side = |p: &Value, field: &str| -> usize {
        p["side_data_list"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["side_data_type"] == "Skip Samples")
            .map_or(0, |s| s[field].as_u64().unwrap() as usize)
    };
    Mp3Frames {
        frames,
        samples_per_frame: (duration * sample_rate as f64).round() as usize,
        sample_rate,
        skip: side(&packets[0], "skip_samples"),
        discard: side(packets.last().unwrap(), "discard_padding"),
    }
}
