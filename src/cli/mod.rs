//! The command line: raw flags as clap parses them (`args`), resolved into validated
//! configuration (`config`) before anything runs.
//!
//! Not responsible for doing the work (see `commands`).

pub(crate) mod args;
pub(crate) mod config;
pub(crate) mod duration;

pub use args::{Cli, Command, DEFAULT_BASE_URL, LogArgs, LogFormat, Split};
pub use config::{Endpoint, RenderConfig};
