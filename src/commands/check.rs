//! `narrate check`: validate manifests (and resolve voice names when a key is at hand) without
//! sending any text-to-speech request.

use crate::cli::args::CheckArgs;
use crate::cli::config::flag_defaults;
use crate::error::EXIT_OK;
use crate::plan;
use crate::session::Session;

pub(crate) async fn run(args: &CheckArgs, env_key: Option<String>) -> anyhow::Result<u8> {
    let defaults = flag_defaults(&args.defaults);
    let mut jobs = super::load_jobs(&args.manifests, &defaults, None, false)?;
    let names_checked = match Session::optional(&args.api, env_key).await? {
        Some(session) => {
            let result = super::resolve_voices(&session.client, &mut jobs).await;
            session.close().await;
            result?;
            true
        }
        None => false,
    };
    for job in &jobs {
        let plan = plan::plan(job);
        let names = job
            .segments
            .iter()
            .filter(|s| s.voice_name.is_some())
            .count();
        println!(
            "ok {}: {} segments, {} requests in {} chains, {} characters, {} → {}{}",
            job.manifest.display(),
            job.segments.len(),
            plan.requests.len(),
            plan.chains.len(),
            plan.characters(),
            job.output_format,
            job.output.display(),
            match (names, names_checked) {
                (0, _) => String::new(),
                (_, true) => format!("; {names} voice names resolved"),
                (_, false) => format!("; {names} voice names not checked (no key)"),
            }
        );
        if let Some(note) = plan::continuity_note(job, &plan) {
            eprintln!("{}: {note}", job.manifest.display());
        }
    }
    Ok(EXIT_OK)
}
