//! The examples in `deploy/` of a book rendered in shards and assembled (a Kubernetes Indexed
//! Job, a GitHub Actions matrix), run as they are written: the object store swapped for a
//! shared folder and the API for the emulator.

use std::path::Path;

use serde_json::Value;

use crate::fleet::{counts, twelve_chapters};
use crate::util::{Fixture, SECRET_KEY, narrate, stderr};

/// The arguments of the first container of a Kubernetes Job in `deploy/`.
fn job_args(name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    let job: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_and_github_examples_render_a_book_in_shards_and_assemble_it() {
    let fx = Fixture::default().await;
    twelve_chapters(&fx);
    let base = fx.base();
    let shelf = format!("file://{}", fx.path().join("shelf").display());
    let here = |args: Vec<String>| -> Vec<String> {
        let mut out: Vec<String> = args
            .into_iter()
            .map(|a| {
                a.replace("s3://narrate-cache/books", &shelf)
                    .replace("/state/$(JOB_COMPLETION_INDEX)", "state")
                    .replace("/out/", "out/")
            })
            .collect();
        out.splice(1..1, ["--base-url".to_string(), base.clone()]);
        out
    };
    // The Indexed Job: four pods, JOB_COMPLETION_INDEX 0 to 3, each its own state directory.
    let shard = here(job_args("shards-job.yaml"));
    for index in 0..4 {
        let dir = fx.path().join(format!("pod-{index}"));
        std::fs::create_dir_all(&dir).unwrap();
        let index = index.to_string();
        let args: Vec<&str> = shard
            .iter()
            .map(|a| {
                if a == "book.yaml" {
                    "../book.yaml"
                } else {
                    a.as_str()
                }
            })
            .collect();
        let env = [
            ("ELEVENLABS_API_KEY", SECRET_KEY),
            ("JOB_COMPLETION_INDEX", index.as_str()),
        ];
        let out = narrate(&dir, &args, &env).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
    let generated = counts(&fx).await;
    assert_eq!(generated.len(), 24);
    assert!(generated.values().all(|&n| n == 1), "{generated:?}");
    let sent = fx.tts_log().len();
    let assemble = here(job_args("assemble-job.yaml"));
    let args: Vec<&str> = assemble.iter().map(String::as_str).collect();
    let out = narrate(fx.path(), &args, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    assert_eq!(fx.tts_log().len(), sent, "assemble sends nothing");
    let probe = crate::util::ffprobe_json(&fx.path().join("out/book.m4b"), &["-show_chapters"]);
    assert_eq!(probe["chapters"].as_array().unwrap().len(), 12, "{probe}");

    // The GitHub workflow's commands, each matrix entry its own runner (state directory).
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/github-shards.yml");
    let workflow = std::fs::read_to_string(path).unwrap();
    let runs: Vec<&str> = workflow
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- run: narrate "))
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let shelf = format!("file://{}", fx.path().join("github-shelf").display());
    for shard in 1..=4 {
        let line = runs[0].replace("${{ matrix.shard }}", &shard.to_string());
        let state = format!("runner-{shard}");
        let mut args: Vec<&str> = vec!["--base-url", &base, "--state-dir", &state];
        args.extend(line.split_whitespace());
        let env = [
            ("ELEVENLABS_API_KEY", SECRET_KEY),
            ("NARRATE_CACHE_URL", shelf.as_str()),
        ];
        let out = narrate(fx.path(), &args, &env).await;
        assert_eq!(out.status.code(), Some(0), "{line}: {}", stderr(&out));
    }
    // Its own shelf: each text once more, by one runner.
    assert_eq!(
        fx.tts_log().len(),
        sent + 24,
        "each shard rendered only its share"
    );
    let mut args: Vec<&str> = runs[1].split_whitespace().collect();
    args.splice(
        1..1,
        ["--base-url", &base, "--state-dir", "runner-assemble"],
    );
    let out = narrate(fx.path(), &args, &[("NARRATE_CACHE_URL", shelf.as_str())]).await;
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    assert_eq!(fx.tts_log().len(), sent + 24, "assemble sends nothing");
    assert!(fx.path().join("out/book.m4b").exists());
}
