//! narrate: a batch narration pipeline for the ElevenLabs text-to-speech API.
//!
//! A YAML or CSV manifest of text segments is planned into requests that chain
//! `previous_request_ids` and `next_text` for continuity, executed under a rate limiter, a
//! concurrency cap and retries through a cache, and stitched into one `.wav` or `.mp3` with
//! JSON and CSV reports.
//!
//! # Layout
//!
//! The modules follow the data flow:
//!
//! ```text
//! cli ─▶ commands ─▶ manifest ─▶ plan ─▶ execute (api, state) ─▶ publish ─▶ audio (codec)
//!                                                                        └──▶ output
//! ```
//!
//! - [`cli`]: flags (`cli::args`), resolved into validated configuration (`cli::config`).
//! - `commands`: one module per command; `session`: the client and optional emulator.
//! - `import`: a book (EPUB, Markdown, text, HTML) into a manifest and chapter texts.
//! - [`manifest`]: YAML/CSV parsing and validation into a [`manifest::Job`].
//! - [`plan`]: text splitting and continuity chains.
//! - [`api`]: the HTTP client, typed bodies and replies, the API's error shapes.
//! - [`execute`]: scheduling, rate limit, concurrency cap, retries, request keys.
//! - [`state`]: the state directory, its lock and the cache of rendered requests.
//! - `publish`: the publishing stage: which pieces go into which file, reuse or rebuild, files
//!   assembled at once, then side files and the review page.
//! - [`audio`]: streaming assembly into WAV or MP3; [`codec`]: MP3 framing, decoding, LAME.
//! - `output`: the reports, audiobook checks and side files.
//! - [`emulator`]: the built-in ElevenLabs-compatible API server, the `narrate-emulator` crate
//!   (`crates/emulator`), which imports nothing of this one.
//! - [`files`]: bounded reads of inputs, atomic link-safe writes, file identity.
//! - [`book`]: the book's metadata, one type from the manifest to the tags and the library.
//! - `pronounce`: pronunciation rules (manifest or PLS), where they apply; `xml`: the general
//!   references of the XML files narrate reads.
//! - `error`, `signals`, [`progress`]; [`mod@format`], [`models`]: facts about formats and
//!   models.
//!
//! Dependencies point down this list and never back (`.ci/house.py` refuses an import cycle):
//! `codec`, `files`, `error`, `format` and `models` import nothing above them, and the emulator
//! cannot import anything of this crate. This file only declares the modules and dispatches a
//! command.

// Outside data never meets an unwrap: every failure is an error with a message.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(unreachable_pub)]
// The house: no function over 80 lines (clippy.toml sets the threshold; `.ci/house.py` also
// counts comments and blank lines). A declarative table may carry an
// `#[allow(clippy::too_many_lines)]` with a comment saying why.
#![deny(clippy::too_many_lines)]

pub mod api;
pub mod audio;
pub mod book;
pub mod cli;
pub mod codec;
mod commands;
pub use narrate_emulator as emulator;
pub(crate) mod deliver;
pub(crate) mod error;
pub mod execute;
pub mod files;
pub mod format;
pub(crate) mod import;
pub mod manifest;
pub mod models;
pub(crate) mod output;
pub mod plan;
pub mod progress;
pub(crate) mod pronounce;
pub mod publish;
mod session;
mod signals;
pub mod state;
pub(crate) mod stores;
pub(crate) mod xml;

pub use commands::render::{render, render_jobs};
pub use commands::summary::Rendered;
pub use error::{
    EXIT_BUDGET, EXIT_DEADLINE, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_OK, EXIT_USAGE,
    exit_code_for,
};

use cli::{Cli, Command, RenderConfig};

/// Runs one command line. `env_key` is `ELEVENLABS_API_KEY`.
pub async fn run(cli: Cli, env_key: Option<String>) -> anyhow::Result<u8> {
    match cli.command {
        None => render(RenderConfig::from_args(&cli.render, env_key)?).await,
        Some(Command::Render(args)) => render(RenderConfig::from_args(&args, env_key)?).await,
        Some(Command::Assemble(mut args)) => {
            args.fleet.assembling = true;
            render(RenderConfig::from_args(&args, env_key)?.for_assembly()?).await
        }
        Some(Command::Plan(args)) => commands::plan::run(&args, env_key).await,
        Some(Command::Check(args)) => commands::check::run(&args, env_key).await,
        Some(Command::Voices(args)) => commands::voices::run(&args, env_key).await,
        Some(Command::Models(args)) => commands::models::run(&args, env_key).await,
        Some(Command::Emulate(args)) => commands::emulate::run(&args).await,
        Some(Command::Review(args)) => {
            let page = output::review::rewrite(&args.report)
                .map_err(|e| error::UsageError(e.to_string()))?;
            println!("review page {}", page.display());
            Ok(EXIT_OK)
        }
        Some(Command::Import(args)) => commands::import::run(&args),
        Some(Command::Feed(args)) => commands::feed::run(&args),
        Some(Command::Audition(args)) => {
            let config = RenderConfig::from_args(&args.render, env_key)?;
            commands::audition::audition(&args.voices, args.model.as_deref(), args.minutes, config)
                .await
        }
        Some(Command::Retry(args)) => match commands::retry::render_args(&args)? {
            Some(render_args) => render(RenderConfig::from_args(&render_args, env_key)?).await,
            None => Ok(EXIT_OK),
        },
        Some(Command::Completions(args)) => {
            use clap::CommandFactory as _;
            let mut out = std::io::stdout().lock();
            clap_complete::generate(args.shell, &mut Cli::command(), "narrate", &mut out);
            Ok(EXIT_OK)
        }
        Some(Command::Man(_)) => {
            use clap::CommandFactory as _;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout().lock())?;
            Ok(EXIT_OK)
        }
    }
}
