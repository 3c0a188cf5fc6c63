//! Lease outcomes: what a guarded step that matched no row means. The same holder finishing
//! its task again is a safe repeat; anything else is `NotFound` or `LeaseLost`, with the
//! task's current status in the details.

use crate::error::{Code, Error, Result};
use crate::queue::lifecycle::{Holder, Status};

/// A task's status and its holder: the token of its current (or last) lease, or the worker
/// id that claimed it, whichever the caller proves ownership with.
pub(crate) type LeaseState = Option<(String, Option<String>)>;

/// After a guarded change matched no row: `Ok(true)` when the same holder already finished the
/// task with one of `done_status` (a safe repeat), otherwise the error that explains why.
pub(crate) fn repeated_or_error(
    id: i64,
    current: LeaseState,
    holder: Holder<'_>,
    done_status: &[Status],
) -> Result<bool> {
    match &current {
        Some((status, Some(owner)))
            if owner == holder.value() && done_status.iter().any(|s| s.as_str() == status) =>
        {
            Ok(true)
        }
        _ => Err(lease_error(id, current, holder)),
    }
}

/// `NotFound` for a missing task, else `LeaseLost` naming the task's current status. The
/// details say whether the task is still claimed (by someone else) or not claimed at all.
pub(crate) fn lease_error(id: i64, current: LeaseState, holder: Holder<'_>) -> Error {
    let Some((status, owner)) = current else {
        return Error::not_found(format!("task {id} does not exist"));
    };
    let ours = owner.as_deref() == Some(holder.value());
    let message = match holder {
        Holder::Token(_) => format!(
            "task {id} is no longer held by this lease token (it is {status}{}); \
             another worker may own it now, so drop the result",
            if ours { "" } else { " under another lease" }
        ),
        Holder::Worker(worker) if status == Status::Claimed.as_str() => {
            format!("task {id} is claimed by another worker, not by '{worker}'; drop the result")
        }
        Holder::Worker(_) => format!(
            "task {id} is not claimed (it is {status}); it may have been finished already or \
             handed out again after its lease ran out, so drop the result"
        ),
    };
    Error::new(Code::LeaseLost, message).with_details(serde_json::json!({"status": status}))
}
