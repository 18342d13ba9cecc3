//! Progress on stderr while rendering: requests done of total, characters, credits spent,
//! retries and an ETA, drawn with indicatif. Hidden when stderr is not a terminal (unless
//! `--progress always`) or with `--progress never`.
//!
//! It is the render's [`crate::execute::Observer`]: execute tells it what happens and never
//! draws anything itself. Not responsible for the final summary (see `commands::summary`) or
//! for logs (tracing).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `--progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// When stderr is a terminal.
    Auto,
    Always,
    Never,
}

/// The progress bar of one run.
pub struct Progress {
    bar: ProgressBar,
    characters: AtomicU64,
    retries: AtomicU64,
    credits: Mutex<f64>,
}

impl Progress {
    /// A bar over `total` requests.
    pub fn new(total: u64, mode: ProgressMode) -> Self {
        let show = match mode {
            ProgressMode::Always => true,
            ProgressMode::Never => false,
            ProgressMode::Auto => std::io::stderr().is_terminal(),
        };
        let bar = if show {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} requests  {msg}  ETA {eta}",
            )
            .expect("a valid template");
            bar.set_style(style);
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress {
            bar,
            characters: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            credits: Mutex::new(0.0),
        }
    }

    /// A progress that draws nothing.
    pub fn hidden() -> Self {
        Progress::new(0, ProgressMode::Never)
    }

    fn redraw(&self) {
        if self.bar.is_hidden() {
            return;
        }
        self.bar.set_message(format!(
            "{} chars, {} credits, {} retries",
            self.characters.load(Ordering::Relaxed),
            *self.credits.lock().expect("progress lock"),
            self.retries.load(Ordering::Relaxed)
        ));
    }

    /// Removes the bar before the summary is printed.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl crate::execute::Observer for Progress {
    fn request_done(&self, characters: usize, credits: f64) {
        self.characters
            .fetch_add(characters as u64, Ordering::Relaxed);
        *self.credits.lock().expect("progress lock") += credits;
        self.bar.inc(1);
        self.redraw();
    }

    fn charged(&self, credits: f64) {
        if let Ok(mut c) = self.credits.lock() {
            *c += credits;
        }
        self.redraw();
    }

    fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        self.redraw();
    }
}
