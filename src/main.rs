//! The `narrate` binary: parses the command line, sets up logging and the runtime, runs the
//! library and maps the result to an exit status. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match narrate::cli::Cli::try_parse() {
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
    use narrate::cli::{Command, LogFormat};
    let (verbose, quiet, format) = match &cli.command {
        Some(Command::Render(a)) => (a.api.verbose, a.api.quiet, a.api.log_format),
        Some(Command::Plan(a)) => (a.api.verbose, a.api.quiet, a.api.log_format),
        Some(Command::Check(a)) => (a.api.verbose, a.api.quiet, a.api.log_format),
        Some(Command::Voices(a)) => (a.api.verbose, a.api.quiet, a.api.log_format),
        Some(Command::Models(a)) => (a.api.verbose, a.api.quiet, a.api.log_format),
        Some(Command::Emulate(a)) => (a.verbose, false, a.log_format),
        None => (
            cli.render.api.verbose,
            cli.render.api.quiet,
            cli.render.api.log_format,
        ),
    };
    let level = match (quiet, verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::WARN,
        (false, 1) => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    // Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_ansi(colour)
        .with_target(false);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
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
