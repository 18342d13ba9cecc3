//! Exit statuses and the usage error: what a failure means to the shell.
//!
//! Below everything: every module may return a [`UsageError`] (exit 2, nothing sent) without
//! importing the command line, and a module's own error type converts into it at the command. Not responsible for printing (see `main.rs`).

/// Exit status: every segment rendered and the output written.
pub const EXIT_OK: u8 = 0;

/// Exit status: at least one segment failed.
pub const EXIT_FAILED: u8 = 1;

/// Exit status: usage, manifest or configuration error; nothing sent.
pub const EXIT_USAGE: u8 = 2;

/// Exit status: the budget was reached mid-run (`--max-credits`, or the account's quota); the
/// report is written, and a later run resumes from the cache.
pub const EXIT_BUDGET: u8 = 3;

/// Exit status: the `--max-duration` deadline was reached; the report is written, and a later
/// run resumes from the cache.
pub const EXIT_DEADLINE: u8 = 4;

/// Exit status: another run holds the state directory's lock; nothing sent.
pub const EXIT_LOCKED: u8 = 5;

/// Exit status: stopped by SIGINT or SIGTERM (128 + 2, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Another run holds the state directory: exit status [`EXIT_LOCKED`], nothing sent.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct LockHeld(pub(crate) String);

/// A usage or configuration problem: exit status 2, nothing sent.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A [`UsageError`] as an `anyhow::Error`.
pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// The exit status for an error that ended a command.
pub fn exit_code_for(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<UsageError>().is_some() {
        EXIT_USAGE
    } else if error.downcast_ref::<LockHeld>().is_some() {
        EXIT_LOCKED
    } else {
        EXIT_FAILED
    }
}
