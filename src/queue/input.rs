//! Checks of the caller's input that every step shares: ids, worker ids, lease tokens and
//! holders. They run before anything is sent, so bad input never reaches the server.

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
