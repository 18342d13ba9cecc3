//! Files assembled at once: up to N on their own threads, taken in file order; after a failure
//! the other threads start no new file. One thread runs every file in turn.
//!
//! Not responsible for what one file is (see `publish::assemble`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `one(k)` for every `k` in `0..count` on up to `threads` threads. The result of each
/// `k` is `Some` when it ran and `None` when a failure on another thread stopped the pool
/// before it.
pub(crate) fn run<T: Send, E: Send>(
    count: usize,
    threads: usize,
    one: impl Fn(usize) -> Result<T, E> + Sync,
) -> Vec<Option<Result<T, E>>> {
    if threads <= 1 {
        return (0..count).map(|k| Some(one(k))).collect();
    }
    let next = AtomicUsize::new(0);
    let done: Vec<Mutex<Option<Result<T, E>>>> = (0..count).map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    if k >= count {
                        return;
                    }
                    let result = one(k);
                    let failed = result.is_err();
                    if let Ok(mut slot) = done[k].lock() {
                        *slot = Some(result);
                    }
                    if failed {
                        // The others stop at their next file.
                        next.store(count, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    done.into_iter()
        .map(|m| m.into_inner().ok().flatten())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::run;

    #[test]
    fn every_file_once_in_order_and_none_after_a_failure() {
        for threads in [1, 2, 3] {
            let ok = run(5, threads, |k| Ok::<usize, ()>(k * 10));
            let got: Vec<Option<usize>> = ok.into_iter().map(|r| r.and_then(Result::ok)).collect();
            assert_eq!(got, vec![Some(0), Some(10), Some(20), Some(30), Some(40)]);
        }
        let failing = run(40, 2, |k| if k == 1 { Err(k) } else { Ok(k) });
        assert!(matches!(failing[1], Some(Err(1))));
        assert!(failing.iter().filter(|r| r.is_none()).count() >= 30);
    }
}
