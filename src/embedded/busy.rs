//! How this process's writer waits for another process's write lock.
//!
//! SQLite's own busy handler sleeps 1 ms, then 2, 5, 10 ms and longer between tries. A queue's
//! write transaction holds the file's lock for a tenth of a millisecond or so, so a worker
//! process that found the lock taken slept through several of its neighbours' transactions
//! while the lock sat free. This handler tries again after pauses that grow from 20 us to
//! 1 ms, and gives up at the same limit (`lock_wait_timeout`).

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    /// When the write this thread is running gives up waiting for the lock.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_millis(1);

/// Starts the wait limit of the write this thread is about to run on the writer connection.
pub(super) fn begin(timeout: Duration) {
    DEADLINE.set(Some(Instant::now() + timeout));
}

/// SQLite's busy callback for the writer connection: `true` to try again. Outside a write
/// begun by [`begin`] it does not wait.
pub(super) fn on_busy(tries: i32) -> bool {
    let Some(deadline) = DEADLINE.get() else {
        return false;
    };
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    std::thread::sleep(pause(tries).min(deadline - now));
    true
}

/// The pause after `tries` tries: 20 us, doubling, at most [`MAX_PAUSE`].
fn pause(tries: i32) -> Duration {
    let doublings = tries.clamp(0, 10) as u32;
    Duration::from_micros(20u64 << doublings).min(MAX_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_from_20_us_to_1_ms() {
        let pauses: Vec<u128> = (0..8).map(|t| pause(t).as_micros()).collect();
        assert_eq!(pauses, [20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(pause(i32::MAX), MAX_PAUSE);
    }

    #[test]
    fn a_write_gives_up_at_its_deadline_and_nothing_waits_outside_a_write() {
        DEADLINE.set(None);
        assert!(!on_busy(0));
        begin(Duration::from_millis(30));
        let started = Instant::now();
        let mut tries = 0;
        while on_busy(tries) {
            tries += 1;
        }
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(30),
            "gave up after {waited:?}"
        );
        assert!(tries > 5, "only {tries} tries in {waited:?}");
    }
}
