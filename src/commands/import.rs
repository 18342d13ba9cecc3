//! `narrate import`: a book into a manifest and its chapter texts, and what was found and
//! skipped, on stdout.
//!
//! Not responsible for reading books (see `import`).

use crate::cli::args::ImportArgs;
use crate::error::UsageError;
use crate::import::{self, ImportOptions};

/// The largest pause after a title (the manifest's own limit).
const MAX_TITLE_PAUSE_MS: u64 = crate::manifest::MAX_PAUSE_MS;

pub(crate) fn run(args: &ImportArgs) -> anyhow::Result<u8> {
    if args.title_pause_ms > MAX_TITLE_PAUSE_MS {
        return Err(UsageError(format!(
            "--title-pause-ms {} is more than ten minutes",
            args.title_pause_ms
        ))
        .into());
    }
    if let Some(f) = &args.output_format {
        f.parse::<crate::format::OutputFormat>()
            .map_err(|e| UsageError(format!("--output-format: {e}")))?;
    }
    let options = ImportOptions {
        voice: args.voice.clone(),
        model: args.model.clone(),
        output_format: args.output_format.clone(),
        audio_output: args.audio_output.clone(),
        chapter_pattern: args.chapter_pattern.clone(),
        choice: crate::import::Choice {
            all: args.keep_all,
            kinds: args.keep.clone(),
            toc_depth: args.toc_depth.map(usize::from),
        },
        alt_text: args.alt_text,
        title_pause_ms: args.title_pause_ms,
        force: args.force,
    };
    let manifest = args
        .output
        .clone()
        .unwrap_or_else(|| args.book.with_extension("yaml"));
    let book = import::read_book(&args.book, &options)?;
    let imported = import::write(&book, &args.book, &manifest, &options)?;
    println!(
        "{}",
        import::summary(&book, &imported, options.model.as_deref())
    );
    Ok(crate::EXIT_OK)
}
