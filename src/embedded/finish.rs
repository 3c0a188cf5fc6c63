//! A worker's calls on a task it holds, on the embedded engine: heartbeat, complete, fail,
//! release, and complete for a batch. Each reads the task and changes it inside one
//! `BEGIN IMMEDIATE` transaction: the write lock taken first makes the read and the write one
//! step, so the read decides (the holder still owns the task, or why not) exactly as the
//! server engine's guarded UPDATE does.

use super::{SqlResult, Store, clock, history, release_active_key};
use crate::Config;
use crate::error::Result;
use crate::queue::Finished;
use crate::queue::finish::{
    CompleteItem, CompleteOutcome, FailOptions, Failed, Heartbeat, HeartbeatOptions,
    check_complete, check_complete_batch, check_fail, check_heartbeat,
};
use crate::queue::input::{check_task_id, check_token};
use crate::queue::lease::{lease_error, repeated_or_error};
use crate::queue::lifecycle::{Change, Holder, Status};
use crate::random::random_unit;
use crate::row;
use rusqlite::{OptionalExtension, Transaction};
use serde_json::Value;

/// A task as a guarded step reads it.
struct Held {
    status: String,
    /// The holder column the caller proves ownership with (token or worker id).
    owner: Option<String>,
    claimed_by: Option<String>,
    /// As stored: a value changed by hand is judged after the commit (see `answer`).
    attempts: i64,
    max_attempts: i64,
}

impl Held {
    fn owned_by(&self, holder: Holder<'_>) -> bool {
        self.status == Status::Claimed.as_str() && self.owner.as_deref() == Some(holder.value())
    }
}

fn read_held(
    store: &Store,
    tx: &Transaction<'_>,
    id: i64,
    holder: Holder<'_>,
) -> Result<Option<Held>> {
    let statement = format!(
        "SELECT status, {}, claimed_by, attempts, max_attempts FROM tasks WHERE id = ?1",
        holder.column()
    );
    tx.prepare_cached(&statement)
        .sql(store)?
        .query_row([id], |r| {
            Ok(Held {
                status: r.get(0)?,
                owner: r.get(1)?,
                claimed_by: r.get(2)?,
                attempts: r.get(3)?,
                max_attempts: r.get(4)?,
            })
        })
        .optional()
        .sql(store)
}

/// The state `lease::repeated_or_error` judges a miss by.
fn state(held: Option<Held>) -> Option<(String, Option<String>)> {
    held.map(|h| (h.status, h.owner))
}

pub(crate) fn heartbeat(
    store: &Store,
    config: &Config,
    id: i64,
    holder: Holder<'_>,
    options: &HeartbeatOptions,
) -> Result<Heartbeat> {
    let lease = check_heartbeat(config, id, holder, options)?;
    store.write_lease(|tx| {
        let held = read_held(store, tx, id, holder)?;
        if !held.as_ref().is_some_and(|h| h.owned_by(holder)) {
            return Err(lease_error(id, state(held), holder));
        }
        let now = clock::now_micros();
        let expires = now + clock::seconds(lease);
        let progress: i32 = tx
            .prepare_cached(
                "UPDATE tasks SET lease_expires_at = ?2, progress = COALESCE(?3, progress), \
                 updated_at = ?4 WHERE id = ?1 RETURNING progress",
            )
            .sql(store)?
            .query_row((id, expires, options.progress, now), |r| r.get(0))
            .sql(store)?;
        let message = match (options.progress, &options.message) {
            (Some(p), Some(note)) => Some(format!("progress {p}%: {note}")),
            (Some(p), None) => Some(format!("progress {p}%")),
            (None, Some(note)) => Some(note.clone()),
            (None, None) => None,
        };
        if let (Some(message), true) = (message, config.enable_task_history) {
            let worker = held.and_then(|h| h.claimed_by);
            history(
                store,
                tx,
                id,
                Change::Progress,
                worker.as_deref(),
                Some(&message),
                now,
            )?;
        }
        Ok(Heartbeat {
            id,
            lease_expires_at: clock::iso(expires),
            progress,
        })
    })
}

pub(crate) fn complete(
    store: &Store,
    config: &Config,
    id: i64,
    holder: Holder<'_>,
    result: &Value,
) -> Result<Finished> {
    let result_text = check_complete(config, id, holder, result)?;
    let repeated = store.write(|tx| complete_held(store, tx, config, id, holder, &result_text))?;
    store.signal();
    Ok(Finished {
        id,
        status: Status::Completed,
        repeated,
    })
}

/// Completes a task by its lease token inside the caller's transaction; `Ok(true)` for a
/// repeat of an earlier identical complete.
pub(super) fn complete_step(
    store: &Store,
    tx: &Transaction<'_>,
    config: &Config,
    id: i64,
    token: &str,
    result_text: &str,
) -> Result<bool> {
    complete_held(store, tx, config, id, Holder::Token(token), result_text)
}

/// The guarded UPDATE of a complete: it changes the task only while the holder owns it (`?2`,
/// its lease token when `?5`, else the worker id that claimed it); an `active` dedupe key is
/// freed after it (`release_active_key`). No `RETURNING`: SQLite
/// builds a temporary table for a statement's returned rows, which costs a one-row UPDATE more
/// than the UPDATE itself; the count of changed rows says whether it took.
const COMPLETE: &str = "\
UPDATE tasks SET status = 'completed', result_json = ?3, completed_at = ?4, lease_expires_at = NULL,
  progress = 100, updated_at = ?4
WHERE id = ?1 AND status = 'claimed' AND ?2 = CASE WHEN ?5 THEN lease_token ELSE claimed_by END";

fn complete_held(
    store: &Store,
    tx: &Transaction<'_>,
    config: &Config,
    id: i64,
    holder: Holder<'_>,
    result_text: &str,
) -> Result<bool> {
    let now = clock::now_micros();
    if completed_now(store, tx, config, id, holder, result_text, now)? {
        return Ok(false);
    }
    let held = read_held(store, tx, id, holder)?;
    repeated_or_error(id, state(held), holder, &[Status::Completed])
}

/// The guarded UPDATE of a complete with its history row: `true` when it completed the task,
/// `false` when the holder does not own it (nothing written; the caller reads why).
fn completed_now(
    store: &Store,
    tx: &Transaction<'_>,
    config: &Config,
    id: i64,
    holder: Holder<'_>,
    result_text: &str,
    now: i64,
) -> Result<bool> {
    let by_token = matches!(holder, Holder::Token(_));
    let changed = tx
        .prepare_cached(COMPLETE)
        .sql(store)?
        .execute((id, holder.value(), result_text, now, by_token))
        .sql(store)?;
    if changed == 0 {
        return Ok(false);
    }
    release_active_key(store, tx, id)?;
    if config.enable_task_history {
        let worker: Option<String> = tx
            .prepare_cached("SELECT claimed_by FROM tasks WHERE id = ?1")
            .sql(store)?
            .query_row([id], |r| r.get(0))
            .sql(store)?;
        history(
            store,
            tx,
            id,
            Change::Completed,
            worker.as_deref(),
            None,
            now,
        )?;
    }
    Ok(true)
}

/// Completes many claimed tasks in one transaction, with an outcome per task.
pub(crate) fn complete_batch(
    store: &Store,
    config: &Config,
    items: &[CompleteItem],
) -> Result<Vec<CompleteOutcome>> {
    let rows = check_complete_batch(config, items)?;
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let outcomes = store.write(|tx| {
        let now = clock::now_micros();
        // The complete's own guarded UPDATE, run once per item (in-process, a prepared
        // statement run a hundred times costs less than one statement over a JSON array):
        // whether each item completed its task. Misses are judged below, once every item has
        // run, as on a server.
        let completed = items
            .iter()
            .zip(&rows)
            .map(|(item, result)| {
                let holder = Holder::Token(&item.lease_token);
                completed_now(store, tx, config, item.id, holder, result, now)
            })
            .collect::<Result<Vec<bool>>>()?;
        let mut reported: Vec<i64> = Vec::with_capacity(items.len());
        let mut outcomes = Vec::with_capacity(items.len());
        for (item, completed) in items.iter().zip(completed) {
            let holder = Holder::Token(&item.lease_token);
            // The first mention of a task this call finished is the change; any later one,
            // like a repeat of an earlier call, is judged by the token (as on a server).
            let finished_now = completed && !reported.contains(&item.id);
            reported.push(item.id);
            let judged = if finished_now {
                Ok(false)
            } else {
                let held = read_held(store, tx, item.id, holder)?;
                repeated_or_error(item.id, state(held), holder, &[Status::Completed])
            };
            outcomes.push(CompleteOutcome::of(item.id, judged));
        }
        Ok(outcomes)
    })?;
    store.signal();
    Ok(outcomes)
}

pub(crate) fn fail(
    store: &Store,
    config: &Config,
    id: i64,
    holder: Holder<'_>,
    message: &str,
    options: &FailOptions,
) -> Result<Failed> {
    check_fail(id, holder, message, options)?;
    let retry = options.retry.unwrap_or(true);
    let failed = store.write(|tx| {
        let held = read_held(store, tx, id, holder)?;
        let Some(task) = held.as_ref().filter(|h| h.owned_by(holder)) else {
            repeated_or_error(id, state(held), holder, &[Status::Pending, Status::Failed])?;
            return answer(store, tx, id, true);
        };
        let now = clock::now_micros();
        let will_retry = retry && task.attempts < task.max_attempts;
        let run_at = if will_retry {
            now + retry_delay_micros(config, options, task.attempts)
        } else {
            0
        };
        tx.prepare_cached(
            "UPDATE tasks SET \
               run_at = CASE WHEN ?2 THEN ?3 ELSE run_at END, \
               completed_at = CASE WHEN ?2 THEN NULL ELSE ?4 END, \
               status = CASE WHEN ?2 THEN 'pending' ELSE 'failed' END, \
               error_message = ?5, lease_expires_at = NULL, updated_at = ?4 \
             WHERE id = ?1",
        )
        .sql(store)?
        .execute((id, will_retry, run_at, now, message))
        .sql(store)?;
        if !will_retry {
            release_active_key(store, tx, id)?;
        }
        if config.enable_task_history {
            let change = if will_retry {
                Change::Retrying
            } else {
                Change::Failed
            };
            history(
                store,
                tx,
                id,
                change,
                task.claimed_by.as_deref(),
                Some(message),
                now,
            )?;
        }
        answer(store, tx, id, false)
    })?;
    if failed.status == Status::Pending.as_str() {
        store.signal();
    }
    failed.checked()
}

/// The retry delay: `retry_in_seconds`, or the exponential backoff base * 2^(attempts-1),
/// capped, with "equal jitter" (a random point in the upper half), as on the server engine.
fn retry_delay_micros(config: &Config, options: &FailOptions, attempts: i64) -> i64 {
    match options.retry_in_seconds {
        Some(seconds) => (seconds * 1e6) as i64,
        None => {
            let exponent = (attempts - 1).clamp(0, 40);
            let backoff = (f64::from(config.retry_backoff_base_secs) * 2f64.powi(exponent as i32))
                .min(f64::from(config.retry_backoff_max_secs));
            (backoff * (0.5 + random_unit() / 2.0) * 1e6) as i64
        }
    }
}

/// A failed task as its transaction read it back; its values are checked after the commit (a
/// value changed by hand must not undo the fail), the error naming the column and the task.
struct FailedRow {
    id: i64,
    status: String,
    attempts: i64,
    max_attempts: i64,
    run_at: i64,
    repeated: bool,
}

impl FailedRow {
    fn checked(self) -> Result<Failed> {
        let subject = format!("task {}", self.id);
        let count = |column: &str, n: i64| {
            row::parsed(&subject, column, &n.to_string(), |t| t.parse().ok())
        };
        Ok(Failed {
            id: self.id,
            status: row::parsed(&subject, "status", &self.status, Status::parse)?,
            attempts: count("attempts", self.attempts)?,
            max_attempts: count("max_attempts", self.max_attempts)?,
            run_at: clock::iso(self.run_at),
            repeated: self.repeated,
        })
    }
}

fn answer(store: &Store, tx: &Transaction<'_>, id: i64, repeated: bool) -> Result<FailedRow> {
    tx.prepare_cached("SELECT status, attempts, max_attempts, run_at FROM tasks WHERE id = ?1")
        .sql(store)?
        .query_row([id], |r| {
            Ok(FailedRow {
                id,
                status: r.get(0)?,
                attempts: r.get(1)?,
                max_attempts: r.get(2)?,
                run_at: r.get(3)?,
                repeated,
            })
        })
        .sql(store)
}

/// Gives a claimed task back at once, without counting the attempt.
pub(crate) fn release(store: &Store, config: &Config, id: i64, token: &str) -> Result<Finished> {
    check_task_id(id)?;
    check_token(token)?;
    let holder = Holder::Token(token);
    let repeated = store.write(|tx| {
        let held = read_held(store, tx, id, holder)?;
        let Some(task) = held.as_ref().filter(|h| h.owned_by(holder)) else {
            return repeated_or_error(id, state(held), holder, &[Status::Pending]);
        };
        let now = clock::now_micros();
        tx.prepare_cached(
            "UPDATE tasks SET status = 'pending', attempts = MAX(attempts - 1, 0), run_at = ?2, \
             lease_expires_at = NULL, updated_at = ?2 WHERE id = ?1",
        )
        .sql(store)?
        .execute((id, now))
        .sql(store)?;
        if config.enable_task_history {
            history(
                store,
                tx,
                id,
                Change::Released,
                task.claimed_by.as_deref(),
                None,
                now,
            )?;
        }
        Ok(false)
    })?;
    store.signal();
    Ok(Finished {
        id,
        status: Status::Pending,
        repeated,
    })
}
