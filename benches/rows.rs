//! A nightly content job's size: `check` and `plan` of a bare CSV of 10,000 and 100,000 rows,
//! chained (`continuity: chapter`, one chain) and independent (`--continuity none`, a chain a
//! row), run as the binary is run, with their wall time and peak resident memory (read from
//! /proc while the child runs, every 5 ms). `plan` asks an in-process emulator (`--emulate`) for
//! the account and the model limits. Then the throughput at the account's cap: 1,000 and 10,000
//! independent rows rendered against `narrate emulate` with 15 slots and 300 ms of latency, one
//! file per row, against the bound (requests / 15 x latency).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Writes `rows` announcements as a bare CSV.
fn csv(dir: &Path, rows: usize) -> std::path::PathBuf {
    let path = dir.join(format!("rows-{rows}.csv"));
    let mut text = String::from("id,text,voice_id\n");
    for i in 0..rows {
        text.push_str(&format!(
            "r{i},Announcement {i}: the train to platform {} is delayed.,{}\n",
            i % 12,
            super::NARRATOR
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the binary with `args` in `dir`: (wall seconds, peak RSS in MB).
fn measured(dir: &Path, args: &[&str]) -> (f64, f64) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_narrate"))
        .current_dir(dir)
        .args(args)
        .env("ELEVENLABS_API_KEY", "bench")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the narrate binary runs");
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0.0f64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Ok(Some(exit)) = child.try_wait() {
            assert!(exit.success(), "narrate {args:?} failed");
            return (started.elapsed().as_secs_f64(), peak_kb / 1024.0);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub(crate) fn rows(quick: bool) {
    let sizes: &[usize] = if quick { &[10_000] } else { &[10_000, 100_000] };
    println!();
    println!(
        "a bare CSV of independent rows: check and plan (goals at 100,000: check 1 s, plan 3 s and 200 MB)"
    );
    println!(
        "{:>8}  {:<10} {:>9} {:>8} {:>9} {:>8}",
        "rows", "continuity", "check s", "MB", "plan s", "MB"
    );
    let dir = tempfile::tempdir().unwrap();
    for &rows in sizes {
        let path = csv(dir.path(), rows);
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        for continuity in ["chapter", "none"] {
            let flag = ["--continuity", continuity];
            let mut check = vec!["check", name.as_str()];
            check.extend(flag);
            let mut plan = vec!["plan", name.as_str(), "--emulate"];
            plan.extend(flag);
            let (check_s, check_mb) = measured(dir.path(), &check);
            let (plan_s, plan_mb) = measured(dir.path(), &plan);
            println!(
                "{rows:>8}  {continuity:<10} {check_s:>9.2} {check_mb:>8.1} {plan_s:>9.2} {plan_mb:>8.1}"
            );
        }
    }
}

/// Renders independent rows at the cap: wall time against the bound, and peak memory.
pub(crate) fn throughput(quick: bool) {
    let (latency_ms, sizes): (u64, &[usize]) = if quick {
        (30, &[100, 1_000])
    } else {
        (300, &[1_000, 10_000])
    };
    let slots = super::SLOTS;
    let emulator = super::start_emulator(latency_ms);
    println!();
    println!(
        "independent rows at the cap: {slots} slots, emulator latency {latency_ms} ms, --split segments (goals: within 1.1x of the bound, peak memory of the largest within 1.3x of the smallest)"
    );
    println!(
        "{:>8} {:>9} {:>9} {:>7} {:>8}",
        "rows", "wall s", "bound s", "ratio", "MB"
    );
    for &rows in sizes {
        // A folder, and so a cache, of its own: nothing comes from an earlier size's run.
        let dir = tempfile::tempdir().unwrap();
        let path = csv(dir.path(), rows);
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let output = format!("out-{rows}/rows.wav");
        let (wall, mb) = measured(
            dir.path(),
            &[
                "render",
                &name,
                "--continuity",
                "none",
                "--split",
                "segments",
                "-o",
                &output,
                "--output-format",
                "pcm_16000",
                "--concurrency",
                &slots.to_string(),
                // The default (10 a second) would be the bound instead of the cap.
                "--rate",
                "1000",
                "--base-url",
                &emulator.base,
                "--progress",
                "never",
            ],
        );
        let bound = rows.div_ceil(slots) as f64 * latency_ms as f64 / 1000.0;
        println!(
            "{rows:>8} {wall:>9.2} {bound:>9.2} {:>7.3} {mb:>8.1}",
            wall / bound
        );
    }
}
