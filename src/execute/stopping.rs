//! How a run stops: first it stops sending (a signal, a refused key), and requests in flight
//! may finish; then, at a second signal or some seconds later, it abandons what is still in
//! flight, so the run ends with its report instead of draining the queue. Every wait of a
//! request (a slot, the rate limiter, a backoff, the history) races the stop.
//!
//! Not responsible for what a stopped request reports (see `request`).

use tokio::sync::watch;

/// Running, stopped (nothing more is sent) or abandoned (nothing more is waited for).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Running,
    Stopped,
    Abandoned,
}

/// The phase of a run, which every waiting request can watch.
pub(crate) struct Stop(watch::Sender<Phase>);

impl Stop {
    pub(crate) fn new() -> Self {
        Stop(watch::Sender::new(Phase::Running))
    }

    fn reach(&self, phase: Phase) {
        self.0.send_if_modified(|p| {
            let later = *p < phase;
            if later {
                *p = phase;
            }
            later
        });
    }

    /// Nothing more is sent.
    pub(crate) fn stop(&self) {
        self.reach(Phase::Stopped);
    }

    /// Nothing more is waited for: requests in flight are given up.
    pub(crate) fn abandon(&self) {
        self.reach(Phase::Abandoned);
    }

    pub(crate) fn is_stopped(&self) -> bool {
        *self.0.borrow() >= Phase::Stopped
    }

    async fn until(&self, phase: Phase) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|p| *p >= phase).await;
    }

    /// `work`, unless the run stops first (`None`).
    pub(crate) async fn unless_stopped<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            () = self.until(Phase::Stopped) => None,
            out = work => Some(out),
        }
    }

    /// `work`, unless the run abandons what is in flight first (`None`).
    pub(crate) async fn unless_abandoned<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            () = self.until(Phase::Abandoned) => None,
            out = work => Some(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Stop;

    #[tokio::test]
    async fn waits_end_at_the_stop_and_work_in_flight_at_the_abandon() {
        let stop = std::sync::Arc::new(Stop::new());
        let never = std::future::pending::<()>;
        let waiting = tokio::spawn({
            let stop = stop.clone();
            async move { stop.unless_stopped(never()).await }
        });
        let in_flight = tokio::spawn({
            let stop = stop.clone();
            async move { stop.unless_abandoned(never()).await }
        });
        tokio::task::yield_now().await;
        stop.stop();
        assert_eq!(waiting.await.unwrap(), None);
        assert!(
            !in_flight.is_finished(),
            "a stop lets requests in flight finish"
        );
        stop.abandon();
        assert_eq!(in_flight.await.unwrap(), None);
        assert_eq!(
            stop.unless_stopped(async { 1 }).await,
            None,
            "stopped stays stopped"
        );
    }
}
