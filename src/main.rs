//! The `narrate` binary: parses the command line, sets up logging and the runtime, runs the
//! library and maps the result to an exit status. Everything else lives in the library.

#![deny(clippy::too_many_lines)]

use std::process::ExitCode;

use clap::Parser;
use narrate::cli::{Cli, Command, LogArgs, LogFormat};
use tracing_subscriber::EnvFilter;

/// The log filter: `RUST_LOG` when set; otherwise warnings from everything, and with `-v`
/// (`-vv`) narrate's own info (debug) events but not its dependencies'.
fn filter(log: &LogArgs) -> EnvFilter {
    if let Ok(filter) = EnvFilter::try_from_default_env() {
        return filter;
    }
    let directives = match (log.quiet, log.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,narrate=info",
        _ => "warn,narrate=debug",
    };
    EnvFilter::new(directives)
}

fn init_logging(log: &LogArgs) {
    // Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter(log))
        .with_ansi(colour)
        .with_target(false);
    match log.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                narrate::EXIT_USAGE
            } else {
                0
            });
        }
    };
    let log = match &cli.command {
        Some(Command::Render(a) | Command::Assemble(a)) => &a.api.log,
        Some(Command::Audition(a)) => &a.render.api.log,
        Some(Command::Plan(a)) => &a.api.log,
        Some(Command::Check(a)) => &a.api.log,
        Some(Command::Voices(a)) => &a.api.log,
        Some(Command::Models(a)) => &a.api.log,
        Some(Command::Emulate(a)) => &a.log,
        Some(Command::Review(a)) => &a.log,
        Some(Command::Import(a)) => &a.log,
        Some(Command::Completions(a)) => &a.log,
        Some(Command::Retry(a)) => &a.log,
        Some(Command::Feed(a)) => &a.log,
        Some(Command::Man(a)) => &a.log,
        None => &cli.render.api.log,
    };
    init_logging(log);
    limit_malloc_arenas();
    let env_key = std::env::var("ELEVENLABS_API_KEY").ok();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(narrate::EXIT_FAILED);
        }
    };
    match runtime.block_on(narrate::run(cli, env_key)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(narrate::exit_code_for(&e))
        }
    }
}

/// Caps glibc's malloc at two arenas, the pools threads allocate from. By default it makes up
/// to eight per core as threads come and go (the runtime's blocking threads), and each keeps
/// the pages freed in it: a long render's resident memory crept up with the hours (a content
/// job of 10,000 rows: 46 MB, 35 MB with two arenas; see the rows benchmark).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` takes no pointer; it is called before the runtime starts any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
