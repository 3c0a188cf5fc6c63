//! Waiting claims (`wait_seconds`): a claim that found nothing tries again until its deadline,
//! holding no connection, transaction or lock in between.
//!
//! Between tries it sleeps on the process's signal (see [`super::ProcessFlow`]): an enqueue or
//! a finished task in this process wakes it at once. Work that arrives from other processes is
//! found by the next try: the pause between tries starts at [`FIRST_PAUSE`] and doubles up to
//! [`LONGEST_PAUSE`] (from the start once the process's claims have found nothing for that
//! long), so an idle waiter costs the server about one claim per second: a poll is the
//! claim's first round trip only (the lazy recovery that a claim coming up short runs is left
//! to the once-a-second pass). The bench's `flow` section
//! measures the statements per second of idle waiters.

use crate::database::Database;
use crate::error::{Error, Result};
use std::time::{Duration, Instant};

/// The longest wait a claim may ask for, in seconds.
pub(crate) const MAX_WAIT_SECONDS: f64 = 60.0;

/// The pause after the first empty try.
const FIRST_PAUSE: Duration = Duration::from_millis(50);

/// The longest pause between tries: the bound on how late a waiter sees work enqueued by
/// another process.
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// The deadline of a claim that may wait `wait_seconds`; `None` when it does not wait.
pub(crate) fn deadline(wait_seconds: Option<f64>) -> Result<Option<Instant>> {
    match wait_seconds {
        None => Ok(None),
        Some(s) if (0.0..=MAX_WAIT_SECONDS).contains(&s) => {
            Ok((s > 0.0).then(|| Instant::now() + Duration::from_secs_f64(s)))
        }
        Some(s) => Err(Error::invalid(format!(
            "wait_seconds must be from 0 to {MAX_WAIT_SECONDS}, got {s}"
        ))
        .with_details(serde_json::json!({"field": "wait_seconds"}))),
    }
}

/// Runs `attempt` until it finds something (`found` says so) or `deadline` passes; answers the
/// last attempt's result. `attempt` is told whether it is a retry: a retry is the waiting
/// poll, which may skip what only the first try needs.
pub(crate) fn until_found<T>(
    db: &Database,
    deadline: Option<Instant>,
    found: impl Fn(&T) -> bool,
    mut attempt: impl FnMut(bool) -> Result<T>,
) -> Result<T> {
    // A process whose claims have found nothing for a while polls at its slowest from the
    // start: a worker making short waits back to back would otherwise climb the ramp anew each
    // time.
    let idle = deadline.is_some() && db.flow.idle_for() >= LONGEST_PAUSE;
    let mut pause = if idle { LONGEST_PAUSE } else { FIRST_PAUSE };
    // An idle process's first try is a poll too: its claims recover leases once a second.
    let mut retry = idle;
    loop {
        // Read before the try: a signal during it ends the sleep below at once.
        let seen = db.flow.seen();
        let answer = attempt(retry)?;
        retry = true;
        if found(&answer) {
            db.flow.found_work();
        }
        let now = Instant::now();
        match deadline {
            Some(deadline) if !found(&answer) && now < deadline => {
                let signalled = db.flow.wait(seen, deadline.min(now + pause));
                // At the deadline with nothing new in this process, the answer stands: the
                // caller (a worker's loop) tries again at once if it wants to.
                if !signalled && Instant::now() >= deadline {
                    return Ok(answer);
                }
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
            _ => return Ok(answer),
        }
    }
}
