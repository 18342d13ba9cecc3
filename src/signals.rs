//! Signals: SIGINT, SIGTERM and SIGHUP stop a render gracefully (requests in flight finish and
//! are cached, assembly stops and leaves the previous output); a second signal quits at once.
//!
//! Not responsible for what stopping means to a request (see `execute`).

use std::sync::Arc;

use crate::execute::Runner;

/// On SIGINT, SIGTERM or SIGHUP, stop sending and let requests in flight finish; a second signal
/// exits at once.
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
        "narrate: stopping: requests in flight will finish and be cached (signal again to quit at once)"
    );
    runner.interrupt();
    signal().await;
    std::process::exit(130);
}
