//! Signals: SIGINT, SIGTERM and SIGHUP stop a render gracefully (nothing more is sent, requests
//! in flight may finish and are cached, assembly stops and leaves the previous output). A
//! second signal, or [`GRACE`] after the first, abandons what is still in flight, and the run
//! ends with its report; a third quits at once.
//!
//! Not responsible for what stopping means to a request (see `execute`).

use std::sync::Arc;

use crate::execute::Runner;

/// How long requests in flight may go on after the first signal.
pub(crate) const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// On SIGINT, SIGTERM or SIGHUP, stop sending and let requests in flight finish for [`GRACE`];
/// a second signal abandons them at once, a third exits.
pub(crate) async fn stop_on_signals(runner: Arc<Runner>) {
    async fn signal() {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                let _ = tokio::signal::ctrl_c().await;
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    signal().await;
    eprintln!(
        "narrate: stopping: nothing more is sent; requests in flight have {} s to finish and be cached (signal again to stop them now)",
        GRACE.as_secs()
    );
    runner.interrupt();
    tokio::select! {
        () = signal() => {}
        () = tokio::time::sleep(GRACE) => {}
    }
    eprintln!("narrate: stopping now: requests still in flight are abandoned; writing the report");
    runner.abandon();
    signal().await;
    std::process::exit(130);
}

/// At `after` from now (`--max-duration`), stop sending: requests in flight have [`GRACE`] to
/// finish and be cached, then are abandoned, and the run ends with its report and exit status
/// 4. Unlike a signal, assembly of what is complete is not cancelled.
pub(crate) async fn stop_at_deadline(runner: Arc<Runner>, after: std::time::Duration) {
    tokio::time::sleep(after).await;
    eprintln!(
        "narrate: the --max-duration deadline was reached: nothing more is sent; requests in flight have {} s to finish and be cached",
        GRACE.as_secs()
    );
    runner.reach_limit(
        crate::execute::Limit::Deadline,
        Some("the --max-duration deadline was reached".into()),
    );
    tokio::time::sleep(GRACE).await;
    runner.stopping.abandon();
}
