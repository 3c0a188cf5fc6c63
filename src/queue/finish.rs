//! Calls a worker makes on a task it holds: heartbeat, complete, fail, release. Each is
//! guarded by the lease token: a stale token gets `LeaseLost` and changes nothing. Heartbeat,
//! complete and fail also take the claiming worker id instead, for callers that have no token
//! (the original system's workers, through the HTTP API): the task must be claimed by that id.
//!
//! Each call is one round trip: the guarded UPDATE and its history row in one transaction
//! (see `lifecycle`), with a read of the task when the call answers with its columns
//! (heartbeat, fail). Complete and release answer from the UPDATE's row count and read the
//! task only after a miss, to say why. A lease that has run out but was not yet recovered
//! still owns its task: nobody else can hold it until recovery hands it back.

use crate::Config;
use crate::config::MAX_ERROR_MESSAGE_BYTES;
use crate::database::Database;
use crate::error::{Code, Error, Result};
use crate::json;
use crate::queue::engine::{Engine, Guarded};
use crate::queue::input::{
    check_delay_seconds, check_holder, check_lease_seconds, check_task_id, check_token,
};
use crate::queue::lease::{lease_error, repeated_or_error};
use crate::queue::lifecycle::{self, GuardedScript, Holder, Script, Status};
use crate::queue::procedures;
use crate::queue::{Finished, MAX_BATCH};
use crate::random::random_unit;
use crate::row;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a heartbeat records; every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatOptions {
    /// Progress 0..=100, recorded on the task (and in the history when it is on).
    pub progress: Option<u8>,
    /// New lease length from now, in seconds. Default: the `task_claim_timeout` setting.
    pub lease_seconds: Option<u32>,
    /// A note for the history (with history on), beside the progress: what the worker is doing.
    pub message: Option<String>,
}

/// The lease after a heartbeat.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Heartbeat {
    /// The task.
    pub id: i64,
    /// When the extended lease runs out (RFC 3339, UTC, database clock).
    pub lease_expires_at: String,
    /// The progress recorded on the task, 0..=100.
    pub progress: i32,
}

/// How a failure is retried; every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailOptions {
    /// Whether the task may run again if attempts remain (default true).
    pub retry: Option<bool>,
    /// Fixed delay before the retry instead of the exponential backoff.
    pub retry_in_seconds: Option<f64>,
}

/// The task after a fail.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failed {
    /// The task.
    pub id: i64,
    /// `pending` when it will run again, `failed` when it is dead.
    pub status: Status,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts it may have in all.
    pub max_attempts: u32,
    /// When it may run again (RFC 3339, UTC, database clock).
    pub run_at: String,
    /// True when this call repeated an earlier identical one and changed nothing.
    pub repeated: bool,
}

/// One task of a batch complete.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteItem {
    /// The task.
    pub id: i64,
    /// The token of the lease that holds it.
    pub lease_token: String,
    /// Its result (JSON null when left out).
    #[serde(default)]
    pub result: Value,
}

/// Per-task outcome of a batch complete.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CompleteOutcome {
    /// The task.
    pub id: i64,
    /// Whether it is completed by this call (or was by an identical earlier one).
    pub ok: bool,
    /// When not `ok`: the error's code name (`TM_LEASE_LOST`, `TM_NOT_FOUND`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// When not `ok`: the error's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

// The checks of each call that need no database, shared by both engines.

/// A heartbeat's input; answers the lease length to set.
pub(crate) fn check_heartbeat(
    config: &Config,
    id: i64,
    holder: Holder<'_>,
    options: &HeartbeatOptions,
) -> Result<u32> {
    check_task_id(id)?;
    check_holder(holder)?;
    if options.progress.is_some_and(|p| p > 100) {
        return Err(Error::invalid("progress must be from 0 to 100"));
    }
    let lease = options.lease_seconds.unwrap_or(config.task_claim_timeout);
    check_lease_seconds(lease)?;
    if options
        .message
        .as_ref()
        .is_some_and(|m| m.len() > MAX_ERROR_MESSAGE_BYTES)
    {
        return Err(Error::new(
            Code::PayloadTooLarge,
            format!("message is longer than {MAX_ERROR_MESSAGE_BYTES} bytes"),
        ));
    }
    Ok(lease)
}

/// A complete's input; answers the result as JSON text.
pub(crate) fn check_complete(
    config: &Config,
    id: i64,
    holder: Holder<'_>,
    result: &Value,
) -> Result<String> {
    check_task_id(id)?;
    check_holder(holder)?;
    json::check_value(result, config.max_payload_bytes, "result")
}

/// A batch complete's input; answers each task's result as JSON text.
pub(crate) fn check_complete_batch(config: &Config, items: &[CompleteItem]) -> Result<Vec<String>> {
    if items.len() > MAX_BATCH {
        return Err(Error::invalid(format!(
            "a batch holds at most {MAX_BATCH} tasks, got {}",
            items.len()
        )));
    }
    items
        .iter()
        .map(|item| {
            check_task_id(item.id)?;
            check_token(&item.lease_token)?;
            json::check_value(&item.result, config.max_payload_bytes, "result")
        })
        .collect()
}

/// A fail's input.
pub(crate) fn check_fail(
    id: i64,
    holder: Holder<'_>,
    message: &str,
    options: &FailOptions,
) -> Result<()> {
    check_task_id(id)?;
    check_holder(holder)?;
    if message.len() > MAX_ERROR_MESSAGE_BYTES {
        return Err(Error::new(
            Code::PayloadTooLarge,
            format!("error_message is longer than {MAX_ERROR_MESSAGE_BYTES} bytes"),
        ));
    }
    if let Some(delay) = options.retry_in_seconds {
        check_delay_seconds(delay, "retry_in_seconds")?;
    }
    Ok(())
}

impl CompleteOutcome {
    /// The outcome of one task of a batch, judged a change or a repeat (`Ok`) or not finished.
    pub(crate) fn of(id: i64, judged: Result<bool>) -> CompleteOutcome {
        match judged {
            Ok(_) => CompleteOutcome {
                id,
                ok: true,
                code: None,
                message: None,
            },
            Err(e) => CompleteOutcome {
                id,
                ok: false,
                code: Some(e.code().name().into()),
                message: Some(e.message().into()),
            },
        }
    }
}

/// Runs a guarded step through the database's engine (a complete by token may be a CALL).
fn run_guarded(
    db: &Database,
    id: i64,
    holder: Holder<'_>,
    script: &GuardedScript,
    call: Option<&Script>,
) -> Result<Guarded> {
    db.run(|conn, _| Engine::of(db).guarded(db, conn, id, holder, script, call))
}

pub(crate) fn heartbeat(
    db: &Database,
    config: &Config,
    id: i64,
    holder: Holder<'_>,
    options: &HeartbeatOptions,
) -> Result<Heartbeat> {
    let lease = check_heartbeat(config, id, holder, options)?;
    let script = lifecycle::heartbeat(
        id,
        holder,
        lease,
        options.progress,
        options.message.as_deref(),
        config.enable_task_history,
    );
    let Guarded { state, columns, .. } = run_guarded(db, id, holder, &script, None)?;
    // A heartbeat in the very microsecond of the previous one changes no row but still owns
    // the task: ownership is judged from the row, not from the count.
    match (&state, columns) {
        (Some((s, Some(t))), Some(mut row))
            if s == Status::Claimed.as_str() && t == holder.value() =>
        {
            Ok(Heartbeat {
                id,
                lease_expires_at: row.get("lease_expires_at")?,
                progress: row.get("progress")?,
            })
        }
        _ => Err(lease_error(id, state, holder)),
    }
}

pub(crate) fn complete(
    db: &Database,
    config: &Config,
    id: i64,
    holder: Holder<'_>,
    result: &Value,
) -> Result<Finished> {
    let result_text = check_complete(config, id, holder, result)?;
    let history_on = config.enable_task_history;
    let script = lifecycle::complete(id, holder, &result_text, history_on);
    let call = match holder {
        Holder::Token(token) => Some(procedures::complete(id, token, &result_text, history_on)),
        Holder::Worker(_) => None,
    };
    let done = run_guarded(db, id, holder, &script, call.as_ref())?;
    let repeated =
        !done.changed && repeated_or_error(id, done.state, holder, &[Status::Completed])?;
    Ok(Finished {
        id,
        status: Status::Completed,
        repeated,
    })
}

/// Completes many claimed tasks in one transaction and reports an outcome per task.
pub(crate) fn complete_batch(
    db: &Database,
    config: &Config,
    items: &[CompleteItem],
) -> Result<Vec<CompleteOutcome>> {
    let rows: Vec<(i64, &str, String)> = check_complete_batch(config, items)?
        .into_iter()
        .zip(items)
        .map(|(result, item)| (item.id, item.lease_token.as_str(), result))
        .collect();
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let states =
        db.run(|conn, _| Engine::of(db).complete_batch(conn, &rows, config.enable_task_history))?;
    let mut reported: Vec<i64> = Vec::new();
    Ok(items
        .iter()
        .map(|item| {
            let state = states.iter().find(|s| s.id == item.id);
            // The first mention of a task this call finished is the change; any later one,
            // like a repeat of an earlier call, is judged by the token.
            let finished_now = state.is_some_and(|s| {
                s.finished_now && s.lease_token.as_deref() == Some(&item.lease_token)
            }) && !reported.contains(&item.id);
            reported.push(item.id);
            let outcome = if finished_now {
                Ok(false)
            } else {
                let current = state.map(|s| (s.status.clone(), s.lease_token.clone()));
                repeated_or_error(
                    item.id,
                    current,
                    Holder::Token(&item.lease_token),
                    &[Status::Completed],
                )
            };
            CompleteOutcome::of(item.id, outcome)
        })
        .collect())
}

pub(crate) fn fail(
    db: &Database,
    config: &Config,
    id: i64,
    holder: Holder<'_>,
    message: &str,
    options: &FailOptions,
) -> Result<Failed> {
    check_fail(id, holder, message, options)?;
    // Exponential backoff base * 2^(attempts-1), capped, with "equal jitter": a random point in
    // the upper half, so retries of tasks that failed together spread out. Numbers only.
    let delay_sql = match options.retry_in_seconds {
        Some(seconds) => lifecycle::fixed_delay_micros(seconds),
        None => lifecycle::backoff_micros(
            config.retry_backoff_base_secs,
            config.retry_backoff_max_secs,
            0.5 + random_unit() / 2.0,
        ),
    };
    let retry = options.retry.unwrap_or(true);
    let script = lifecycle::fail(
        id,
        holder,
        message,
        retry,
        &delay_sql,
        config.enable_task_history,
    );
    let Guarded {
        changed,
        state,
        columns,
    } = run_guarded(db, id, holder, &script, None)?;
    let status = state.as_ref().map(|s| s.0.clone());
    let repeated =
        !changed && repeated_or_error(id, state, holder, &[Status::Pending, Status::Failed])?;
    let (Some(status), Some(mut row)) = (status, columns) else {
        return Err(Error::not_found(format!("task {id} does not exist")));
    };
    Ok(Failed {
        id,
        status: row::parsed(&format!("task {id}"), "status", &status, Status::parse)?,
        attempts: row.get("attempts")?,
        max_attempts: row.get("max_attempts")?,
        run_at: row.get("run_at")?,
        repeated,
    })
}

/// Gives a claimed task back at once, without counting the attempt (for a worker shutting down).
pub(crate) fn release(db: &Database, config: &Config, id: i64, token: &str) -> Result<Finished> {
    check_task_id(id)?;
    check_token(token)?;
    let script = lifecycle::release(id, token, config.enable_task_history);
    let holder = Holder::Token(token);
    let done = run_guarded(db, id, holder, &script, None)?;
    let repeated = !done.changed && repeated_or_error(id, done.state, holder, &[Status::Pending])?;
    Ok(Finished {
        id,
        status: Status::Pending,
        repeated,
    })
}
