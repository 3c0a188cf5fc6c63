//! How a connection waits for the file's write lock held by another process.
//!
//! SQLite's own busy handler sleeps longer at each retry (1, 2, 5, 10, 15, 20, 25 ... up to
//! 100 ms), so a process that met the lock a few times in a row sleeps through the moments it
//! is free: a queue's write transactions last about a millisecond, and with four worker
//! processes on one file the waiters spent most of a drain asleep (the batched drain of four
//! processes ran at 25,000 to 56,000 tasks/s from run to run, and at 53,000 to 59,000 with
//! this handler; `cargo bench --bench embedded`). This handler retries after 1 ms, then every
//! 2 ms, until the wait reaches the timeout (`lock_wait_timeout`).
//!
//! Threads of one process never get here: they take the process's one write connection in
//! turn (`Store::with_writer`).

use rusqlite::Connection;
use std::os::raw::{c_int, c_void};
use std::time::Duration;

/// The first pause and every later one.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const PAUSE: Duration = Duration::from_millis(2);

/// Installs the handler on `conn`: SQLITE_BUSY is returned once the pauses add up to `timeout`.
pub(super) fn wait_for_the_lock(conn: &Connection, timeout: Duration) -> rusqlite::Result<()> {
    // The timeout travels as the handler's argument (milliseconds, not a pointer to anything),
    // so the handler needs no state of its own and nothing outlives the connection.
    let millis = usize::try_from(timeout.as_millis()).unwrap_or(usize::MAX);
    // SAFETY: `conn.handle()` is the connection's own open handle; the handler is a plain
    // function that reads only its integer arguments, and SQLite calls it on the connection's
    // thread while a statement of it runs.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_busy_handler(conn.handle(), Some(retry), millis as *mut c_void)
    };
    match rc {
        rusqlite::ffi::SQLITE_OK => Ok(()),
        code => Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            Some("cannot install the busy handler".into()),
        )),
    }
}

/// SQLite's busy callback: `retries` is how many times it was called for this wait so far.
/// Nonzero: try again (after the pause); zero: give up with SQLITE_BUSY.
extern "C" fn retry(timeout_millis: *mut c_void, retries: c_int) -> c_int {
    let timeout = Duration::from_millis(timeout_millis as usize as u64);
    let retries = u32::try_from(retries).unwrap_or(0);
    if waited(retries) >= timeout {
        return 0;
    }
    std::thread::sleep(if retries == 0 { FIRST_PAUSE } else { PAUSE });
    1
}

/// The pauses taken before the `retries`-th call.
fn waited(retries: u32) -> Duration {
    match retries {
        0 => Duration::ZERO,
        n => FIRST_PAUSE + PAUSE * (n - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pauses_add_up_to_the_timeout_and_no_further() {
        assert_eq!(waited(0), Duration::ZERO);
        assert_eq!(waited(1), Duration::from_millis(1));
        assert_eq!(waited(3), Duration::from_millis(5));
        // 1 + 2 * 4999 ms reach 10 s at the 5,000th retry: the 5,001st call gives up.
        let ten_seconds = Duration::from_secs(10);
        let calls_before_giving_up = (0..).find(|&n| waited(n) >= ten_seconds).unwrap();
        assert_eq!(calls_before_giving_up, 5001);
        assert_eq!(retry(10_000usize as *mut c_void, 5001), 0);
    }
}
