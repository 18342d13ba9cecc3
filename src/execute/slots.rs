//! The adjustable concurrency cap shared by every chain of a run. A freed slot goes to the
//! waiting request with the most work left in its chain (longest remaining work first), and in
//! auto mode the cap follows the account's `maximum-concurrent-requests` and halves on a
//! concurrency 429. The first slots wait until every chain of the run has asked for one or
//! finished without (see [`Slots::expect`]), so the rule holds from the first slot too.
//!
//! Not responsible for the rate limit (see `Runner`).

use std::sync::Mutex;

use super::Concurrency;

/// The adjustable concurrency cap shared by every chain of the run. A freed slot goes to the
/// waiting request with the most work left in its chain, so the longest chain never waits
/// behind short ones (it bounds the run's length).
pub struct Slots {
    state: Mutex<SlotState>,
    auto: bool,
}

pub(crate) struct SlotState {
    limit: usize,
    ceiling: usize,
    in_flight: usize,
    /// Waiters by (priority, arrival), highest priority first, then first come.
    waiting:
        std::collections::BTreeMap<(std::cmp::Reverse<u64>, u64), tokio::sync::oneshot::Sender<()>>,
    arrivals: u64,
    /// How many participants (a chain that stitches, or a request of one that does not) must
    /// arrive before the first slot is handed out, and those that have.
    expected: usize,
    arrived: std::collections::HashSet<u64>,
    participants: u64,
}

impl SlotState {
    fn gate_open(&self) -> bool {
        self.arrived.len() >= self.expected
    }

    /// Counts a participant's arrival while the gate is shut; once open it stays open, so no
    /// more are kept (a content job has a participant a row). Whether it was counted.
    fn arrives(&mut self, participant: u64) -> bool {
        !self.gate_open() && self.arrived.insert(participant)
    }

    /// Hands free slots to the best waiters, once every participant has arrived.
    fn grant(&mut self) {
        if !self.gate_open() {
            return;
        }
        while self.in_flight < self.limit {
            let Some((_, waiter)) = self.waiting.pop_first() else {
                return;
            };
            if waiter.send(()).is_ok() {
                self.in_flight += 1;
            }
        }
    }
}

/// A held slot; dropping it frees the slot.
pub struct Slot<'a>(&'a Slots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().expect("slots lock");
        s.in_flight -= 1;
        s.grant();
    }
}

impl Slots {
    /// A cap of `concurrency` (auto starts at 2).
    pub fn new(concurrency: Concurrency) -> Self {
        let (limit, ceiling, auto) = match concurrency {
            Concurrency::Auto => (2, 64, true),
            Concurrency::Fixed(n) => (n.max(1), n.max(1), false),
        };
        Slots {
            state: Mutex::new(SlotState {
                limit,
                ceiling,
                in_flight: 0,
                waiting: std::collections::BTreeMap::new(),
                arrivals: 0,
                expected: 0,
                arrived: std::collections::HashSet::new(),
                participants: 0,
            }),
            auto,
        }
    }

    /// Holds the first slots back until `participants` have arrived: each chain that stitches
    /// and each request of a chain that does not, by asking for a slot ([`Slots::acquire`]) or
    /// by finishing without one ([`Slots::arrive`]). Then the waiting chain with the most work
    /// left goes first, whatever order the chains were spawned in.
    pub fn expect(&self, participants: usize) {
        let mut s = self.state.lock().expect("slots lock");
        s.expected = participants;
        s.grant();
    }

    /// A new participant's number, for [`Slots::acquire`] and [`Slots::arrive`].
    pub fn participant(&self) -> u64 {
        let mut s = self.state.lock().expect("slots lock");
        s.participants += 1;
        s.participants
    }

    /// A participant that needs no (more) slots has arrived.
    pub fn arrive(&self, participant: u64) {
        let mut s = self.state.lock().expect("slots lock");
        if s.arrives(participant) {
            s.grant();
        }
    }

    /// Waits for a slot; `priority` is the work left in the caller's chain, `participant` the
    /// caller's number (see [`Slots::expect`]).
    pub async fn acquire(&self, priority: u64, participant: u64) -> Slot<'_> {
        let granted = {
            let mut s = self.state.lock().expect("slots lock");
            s.arrives(participant);
            if s.gate_open() && s.in_flight < s.limit && s.waiting.is_empty() {
                s.in_flight += 1;
                return Slot(self);
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            s.arrivals += 1;
            let arrival = s.arrivals;
            s.waiting.insert((std::cmp::Reverse(priority), arrival), tx);
            s.grant();
            rx
        };
        // The sender lives in the map until granted; it is never dropped unsent.
        let _ = granted.await;
        Slot(self)
    }

    /// After a success: in auto mode, grow by one towards the account's maximum.
    pub(crate) fn on_success(&self, account_max: Option<usize>) {
        if !self.auto {
            return;
        }
        let mut s = self.state.lock().expect("slots lock");
        if let Some(max) = account_max {
            s.ceiling = max.max(1);
        }
        s.limit = (s.limit + 1).min(s.ceiling);
        s.grant();
    }

    /// After a concurrency 429: halve the cap (never below 1).
    pub(crate) fn on_too_many(&self) {
        let mut s = self.state.lock().expect("slots lock");
        s.limit = (s.limit / 2).max(1);
        s.ceiling = s.ceiling.min(s.in_flight.max(1));
    }

    /// The priority of the most urgent waiter, if any waits.
    pub(crate) fn best_waiting(&self) -> Option<u64> {
        let s = self.state.lock().expect("slots lock");
        s.waiting.keys().next().map(|(std::cmp::Reverse(p), _)| *p)
    }

    /// The current cap.
    pub fn limit(&self) -> usize {
        self.state.lock().expect("slots lock").limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_waiter_with_the_most_work_left() {
        let slots = std::sync::Arc::new(Slots::new(Concurrency::Fixed(1)));
        let held = slots.acquire(10, 0).await;
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for priority in [5u64, 50, 20] {
            let (slots, order) = (slots.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let _slot = slots.acquire(priority, priority).await;
                order.lock().unwrap().push(priority);
            }));
            // Each waiter queues before the next one arrives.
            tokio::task::yield_now().await;
        }
        assert_eq!(slots.best_waiting(), Some(50));
        drop(held);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![50, 20, 5]);
    }

    #[tokio::test]
    async fn no_slot_is_handed_out_before_every_participant_has_arrived() {
        let slots = std::sync::Arc::new(Slots::new(Concurrency::Fixed(1)));
        slots.expect(4);
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        // Short chains arrive first; the longest last; one participant needs no slot.
        for (n, priority) in [(1u64, 5u64), (2, 7), (3, 90)] {
            let (slots, order) = (slots.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let _slot = slots.acquire(priority, n).await;
                order.lock().unwrap().push(priority);
                tokio::task::yield_now().await;
            }));
            tokio::task::yield_now().await;
        }
        assert!(
            order.lock().unwrap().is_empty(),
            "held until all have arrived"
        );
        slots.arrive(4);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![90, 7, 5]);
    }

    #[tokio::test]
    async fn after_a_too_many_no_slot_is_granted_until_in_flight_is_under_the_halved_cap() {
        let slots = Slots::new(Concurrency::Fixed(4));
        let mut held = Vec::new();
        for n in 0..4 {
            held.push(slots.acquire(1, n).await);
        }
        slots.on_too_many();
        assert_eq!(slots.limit(), 2);
        // A fifth request with nobody waiting before it: held while 4, 3 and 2 are in flight.
        let mut ask = Box::pin(slots.acquire(1, 9));
        let wait = std::time::Duration::from_millis(20);
        for _ in 0..3 {
            assert!(tokio::time::timeout(wait, &mut ask).await.is_err());
            drop(held.pop());
        }
        // One in flight: under the cap, granted.
        assert!(tokio::time::timeout(wait, &mut ask).await.is_ok());
    }

    #[tokio::test]
    async fn auto_grows_to_the_account_maximum_and_halves_on_too_many() {
        let slots = Slots::new(Concurrency::Auto);
        assert_eq!(slots.limit(), 2);
        for _ in 0..20 {
            slots.on_success(Some(5));
        }
        assert_eq!(slots.limit(), 5);
        let _a = slots.acquire(1, 1).await;
        let _b = slots.acquire(1, 2).await;
        slots.on_too_many();
        assert_eq!(slots.limit(), 2);
        // The ceiling is now what was in flight: growing stops there.
        slots.on_success(None);
        assert_eq!(slots.limit(), 2);
        let fixed = Slots::new(Concurrency::Fixed(4));
        fixed.on_success(Some(64));
        assert_eq!(fixed.limit(), 4, "a fixed cap does not grow");
    }
}
