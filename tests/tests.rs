//! The integration tests: one binary, modules by subject. Every test runs offline against the
//! built-in emulator through real HTTP on loopback.

mod util;
mod weed;

mod aac_spans;
mod books;
mod cli;
mod continuity;
mod emulator;
mod fleet;
mod fleet_examples;
mod hostile;
mod import;
mod manifest_errors;
mod nightly;
mod oracles;
mod profiles;
mod promises;
mod pronounce;
mod properties;
mod publish;
mod readalong;
mod readalong_pages;
mod recovery;
mod recovery_claims;
mod render;
mod resilience;
mod review;
mod sample_book;
mod surfaces;
mod windows;
