//! Checks of the caller's input that every step shares: ids, worker ids, lease tokens and
//! holders. They run before anything is sent, so bad input never reaches the server.

use crate::config::{MAX_DELAY_SECONDS, MAX_LEASE_SECONDS};
use crate::error::{Error, Result};
use crate::queue::lifecycle::Holder;

/// Checks a worker id: 1 to 255 characters, no control characters. It is data, never SQL.
pub(crate) fn check_worker_id(worker_id: &str) -> Result<()> {
    let chars = worker_id.chars().count();
    if chars == 0 || chars > 255 || worker_id.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "worker_id must be 1 to 255 characters without control characters, got {chars} characters"
        )));
    }
    Ok(())
}

pub(crate) fn check_task_id(id: i64) -> Result<()> {
    if id < 1 {
        return Err(Error::invalid(format!(
            "task id must be 1 or more, got {id}"
        )));
    }
    Ok(())
}

pub(crate) fn check_token(token: &str) -> Result<()> {
    if token.is_empty() || token.len() > 64 {
        return Err(Error::invalid("lease_token must be 1 to 64 characters"));
    }
    Ok(())
}

/// Checks what a caller proves ownership of a task with.
pub(crate) fn check_holder(holder: Holder<'_>) -> Result<()> {
    match holder {
        Holder::Token(token) => check_token(token),
        Holder::Worker(worker_id) => check_worker_id(worker_id),
    }
}

/// Checks a lease length in seconds: 1 to [`MAX_LEASE_SECONDS`].
pub(crate) fn check_lease_seconds(lease_seconds: u32) -> Result<()> {
    if lease_seconds == 0 || u64::from(lease_seconds) > MAX_LEASE_SECONDS {
        return Err(Error::invalid(format!(
            "lease_seconds must be from 1 to {MAX_LEASE_SECONDS}, got {lease_seconds}"
        )));
    }
    Ok(())
}

/// Checks a delay in seconds (`what` names the option): 0 to [`MAX_DELAY_SECONDS`].
pub(crate) fn check_delay_seconds(delay: f64, what: &str) -> Result<()> {
    if !(0.0..=MAX_DELAY_SECONDS as f64).contains(&delay) {
        return Err(Error::invalid(format!(
            "{what} must be from 0 to {MAX_DELAY_SECONDS} (ten years)"
        )));
    }
    Ok(())
}
