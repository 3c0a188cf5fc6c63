//! The task lifecycle: enqueue, claim, heartbeat, complete, fail, release, cancel, retry,
//! recovery of expired leases, and the read side. Its rules and SQL live in [`lifecycle`].
//!
//! Every time comparison uses the database clock (`NOW(6)`), never the client's.

pub(crate) mod claim;
pub(crate) mod enqueue;
pub(crate) mod finish;
pub(crate) mod lifecycle;
pub(crate) mod manage;
pub(crate) mod procedures;
pub(crate) mod prune;
pub(crate) mod read;
pub(crate) mod stats;

use crate::database::Database;
use crate::error::{Code, Error, Result};
use crate::pool::{Conn, ScriptResult};
use lifecycle::Script;
use lifecycle::{Holder, Status};
use serde::Serialize;

/// The statements a worker's hot path sends (claim of `limit` with lease recovery, complete,
/// complete_and_claim, and the claim in every other order) that read or write rows, ready for EXPLAIN (the tests and the benchmark
/// check their plans): `INTO @var` is left out, and the finished task's id is the user variable
/// `@tm_example_id`.
#[doc(hidden)]
pub fn hot_path_statements(limit: u32, history_on: bool) -> Vec<String> {
    let request = lifecycle::ClaimRequest {
        worker_id: "explain",
        type_ids: None,
        limit,
        lease_seconds: 60,
        token_prefix: "explain",
        order: lifecycle::ClaimOrder::default(),
        claim_timeout: 300,
    };
    let mut scripts = vec![
        lifecycle::claim(&request, true, history_on).script,
        lifecycle::complete(0, lifecycle::Holder::Token("explain"), "null", history_on).script,
        lifecycle::complete_and_claim(0, "explain", "null", &request, false, history_on).script,
    ];
    // Every other claim order, in both directions.
    use lifecycle::SortColumn::*;
    for column in [CreatedAt, Priority, Id, Attempts] {
        for descending in [false, true] {
            let order = lifecycle::ClaimOrder::By(column, descending);
            scripts.push(
                lifecycle::claim(
                    &lifecycle::ClaimRequest { order, ..request },
                    false,
                    history_on,
                )
                .script,
            );
        }
    }
    scripts
        .iter()
        .flat_map(|script| script.statements())
        .filter(|statement| {
            ["SELECT", "UPDATE", "INSERT"]
                .iter()
                .any(|v| statement.starts_with(v))
        })
        .map(|statement| {
            let statement = statement.replace("id = 0 ", "id = @tm_example_id ");
            match statement.split_once(" INTO @") {
                // `SELECT <ids> INTO @var`: the variable name ends the statement.
                Some((select, _)) if statement.starts_with("SELECT") => select.to_string(),
                _ => statement,
            }
        })
        .collect()
}

/// Runs a CALL, unless this process has found the procedures unusable. `Ok(None)`: the caller
/// sends the script instead.
pub(crate) fn call_procedure(
    db: &Database,
    conn: &mut Conn<'_>,
    call: Option<&Script>,
) -> Result<Option<ScriptResult>> {
    let Some(call) = call.filter(|_| db.procedures_usable()) else {
        return Ok(None);
    };
    match call.run(conn) {
        Ok(answer) => Ok(Some(answer)),
        Err(e) if refused_before_the_body(&e) => {
            db.stop_using_procedures();
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The procedure is missing (1305), the account may not execute it (1370), or its definer is
/// gone (1449): nothing of the body ran.
fn refused_before_the_body(e: &Error) -> bool {
    matches!(e.server_code(), Some(1305 | 1370 | 1449))
}

/// The hot path's stored procedures as this library creates them: `(name, CREATE statement,
/// body)`, the body as `information_schema.ROUTINES` shows it (tests check that the database
/// and `sql/schema.sql` hold exactly these).
#[doc(hidden)]
pub fn stored_procedures() -> Vec<(&'static str, String, String)> {
    procedures::all()
        .into_iter()
        .map(|p| (p.name, p.create_sql(), p.body().to_string()))
        .collect()
}

/// Most tasks one claim or batch call handles.
pub const MAX_BATCH: usize = 1000;

/// `DATE_FORMAT` pattern that renders a DATETIME(6) as RFC 3339 UTC.
pub(crate) const ISO: &str = "'%Y-%m-%dT%H:%i:%s.%fZ'";

pub(crate) fn iso(column: &str) -> String {
    format!("DATE_FORMAT({column}, {ISO})")
}

/// 128 random bits as 32 hex characters, from the kernel's CSPRNG.
pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fills `buf` from `getrandom(2)`, or from `/dev/urandom` where that call is missing or fails
/// for another reason than a signal. Tokens must not be guessable, so with neither source there
/// is no fallback: the call panics (TM_PANIC through the C ABI) instead of spinning.
fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
            continue;
        }
        if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        fill_from_device(&mut buf[filled..], "/dev/urandom")
            .expect("the kernel's random source (getrandom, /dev/urandom) is unavailable");
        return;
    }
}

/// The fallback source: a random device file.
fn fill_from_device(buf: &mut [u8], device: &str) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open(device)?.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::{fill_from_device, random_hex};

    #[test]
    fn tokens_are_random_and_the_fallback_source_works() {
        let (a, b) = (random_hex(), random_hex());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        let mut buf = [0u8; 64];
        fill_from_device(&mut buf, "/dev/urandom").unwrap();
        assert!(buf.iter().any(|b| *b != 0));
        // Without the device there is an error to report, not a loop.
        assert!(fill_from_device(&mut buf, "/nonexistent/random").is_err());
    }
}

/// A uniformly random number in [0, 1).
pub(crate) fn random_unit() -> f64 {
    let hex = random_hex();
    let n = u64::from_str_radix(&hex[..13], 16).unwrap_or(0);
    n as f64 / (1u64 << 52) as f64
}

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

/// A task's status and its holder: the token of its current (or last) lease, or the worker
/// id that claimed it, whichever the caller proves ownership with.
pub(crate) type LeaseState = Option<(String, Option<String>)>;

/// Checks what a caller proves ownership of a task with.
pub(crate) fn check_holder(holder: Holder<'_>) -> Result<()> {
    match holder {
        Holder::Token(token) => check_token(token),
        Holder::Worker(worker_id) => check_worker_id(worker_id),
    }
}

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

/// The outcome of a single finishing call.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finished {
    pub id: i64,
    pub status: String,
    /// True when this call repeated an earlier identical one and changed nothing.
    pub repeated: bool,
}
