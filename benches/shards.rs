//! The sample book rendered by several machines' worth of processes on this one: one process
//! rendering and assembling it, then 1, 2 and 4 shard processes at once (`--shard I/N`, a
//! shared cache in a folder by `file://`, each its own state directory) followed by `narrate
//! assemble`, all against one `narrate emulate` with the Scale tier's 15 slots. Each run starts
//! from empty caches, so every run generates the whole book. The span is from the first shard's
//! start to the last one's end.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// Starts narrate in `dir` with `args` against the emulator.
fn spawn(dir: &Path, base: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_narrate"))
        .current_dir(dir)
        .args(args)
        .args(["--base-url", base, "--progress", "never"])
        .env("ELEVENLABS_API_KEY", "bench")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the narrate binary runs")
}

/// Waits for every child; panics with the stderr of one that failed.
fn wait_all(children: Vec<Child>) {
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

pub(crate) fn shards(quick: bool) {
    let book = super::sample_book(quick);
    let dir = book.path();
    let emulator = super::start_emulator(if quick { 20 } else { 300 });
    let base = emulator.base.as_str();
    let manifest = "manifests/alice-audiobook.yaml";
    println!();
    println!(
        "shards: the sample book{}, {} cores, one emulator with {} slots",
        if quick { " (two chapters)" } else { "" },
        super::cores(),
        super::SLOTS
    );
    println!(
        "{:<34} {:>10} {:>12} {:>9} {:>14}",
        "run", "render s", "assemble s", "total s", "× one process"
    );
    let started = Instant::now();
    let args = [manifest, "--state-dir", "single", "-o", "single/book.mp3"];
    wait_all(vec![spawn(dir, base, &args)]);
    let single = started.elapsed().as_secs_f64();
    println!(
        "{:<34} {:>10.1} {:>12} {:>9.1} {:>14.2}",
        "one process, no shards", single, "(in it)", single, 1.0
    );
    let counts: &[usize] = if quick { &[1, 2] } else { &[1, 2, 4] };
    for &n in counts {
        let shelf = format!("file://{}/shelf-{n}", dir.display());
        let started = Instant::now();
        let children = (1..=n)
            .map(|i| {
                let (shard, state) = (format!("{i}/{n}"), format!("state-{n}-{i}"));
                let args = [manifest, "--shard", &shard, "--cache-url", &shelf];
                spawn(dir, base, &[&args[..], &["--state-dir", &state]].concat())
            })
            .collect();
        wait_all(children);
        let span = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let out = format!("assembled-{n}/book.mp3");
        let args = ["assemble", manifest, "--cache-url", &shelf, "-o", &out];
        let state = format!("assemble-{n}");
        wait_all(vec![spawn(
            dir,
            base,
            &[&args[..], &["--state-dir", &state]].concat(),
        )]);
        let assembly = started.elapsed().as_secs_f64();
        println!(
            "{:<34} {:>10.1} {:>12.1} {:>9.1} {:>14.2}",
            format!("{n} shard process(es), then assemble"),
            span,
            assembly,
            span + assembly,
            (span + assembly) / single
        );
    }
}
