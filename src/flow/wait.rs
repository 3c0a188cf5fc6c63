//! Waiting claims (`wait_seconds`): a claim that found nothing tries again until its deadline,
//! holding no connection, transaction or lock in between.
//!
//! Between tries it sleeps on the process's signal (see [`super::ProcessFlow`]): an enqueue or
//! a finished task in this process wakes it at once. Work that arrives from other processes is
//! found by the next try: the pause between tries starts at [`FIRST_PAUSE`] and doubles up to
//! [`LONGEST_PAUSE`], so an idle waiter costs the server one claim per second after its first
//! few tries: a poll is the claim's first round trip only (the lazy recovery that a claim
//! coming up short runs is left to the once-a-second pass). The bench's `flow` section
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
    let mut pause = FIRST_PAUSE;
    let mut retry = false;
    loop {
        // Read before the try: a signal during it ends the sleep below at once.
        let seen = db.flow.seen();
        let answer = attempt(retry)?;
        retry = true;
        let now = Instant::now();
        match deadline {
            Some(deadline) if !found(&answer) && now < deadline => {
                db.flow.wait(seen, deadline.min(now + pause));
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
            _ => return Ok(answer),
        }
    }
}
