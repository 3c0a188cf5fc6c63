//! Calls a worker makes on a task it holds: heartbeat, complete, fail, release. Each is
//! guarded by the lease token: a stale token gets `LeaseLost` and changes nothing.
//!
//! The guarded UPDATE runs first (one round trip on the hot path); only when it matches no row
//! does a SELECT find out why. A lease that has run out but was not yet recovered still owns
//! its task: nobody else can hold it until recovery hands it back.

use crate::Config;
use crate::error::{Code, Error, Result};
use crate::history::{self, change};
use crate::json;
use crate::pool::{Database, commit, unknown_outcome};
use crate::queue::{
    Finished, LeaseState, MAX_BATCH, check_task_id, check_token, iso, lease_error, random_unit,
    repeated_or_error, status,
};
use crate::types::id_list;
use mysql::prelude::Queryable;
use mysql::{Params, PooledConn, TxOpts, Value as SqlValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatOptions {
    /// Progress 0..=100, recorded on the task (and in the history when it is on).
    pub progress: Option<u8>,
    /// New lease length from now, in seconds. Default: the `task_claim_timeout` setting.
    pub lease_seconds: Option<u32>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Heartbeat {
    pub id: i64,
    pub lease_expires_at: String,
    pub progress: i32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailOptions {
    /// Whether the task may run again if attempts remain (default true).
    pub retry: Option<bool>,
    /// Fixed delay before the retry instead of the exponential backoff.
    pub retry_in_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failed {
    pub id: i64,
    /// `pending` when it will run again, `failed` when it is dead.
    pub status: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub run_at: String,
    pub repeated: bool,
}

/// One task of a batch complete.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteItem {
    pub id: i64,
    pub lease_token: String,
    #[serde(default)]
    pub result: Value,
}

/// Per-task outcome of a batch complete.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CompleteOutcome {
    pub id: i64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The task's status and lease token, to explain why a guarded UPDATE matched nothing.
fn current_lease(db: &Database, conn: &mut impl Queryable, id: i64) -> Result<LeaseState> {
    conn.exec_first("SELECT status, lease_token FROM tasks WHERE id = ?", (id,))
        .map_err(|e| db.error(e))
}

/// Runs one guarded change and, when `with_history`, its history row in one transaction; with
/// history off the single statement autocommits. Returns the number of rows changed.
#[allow(clippy::too_many_arguments)]
fn guarded_write(
    db: &Database,
    with_history: bool,
    conn: &mut PooledConn,
    id: i64,
    sql: &str,
    params: Vec<SqlValue>,
    history_change: &str,
    message: Option<&str>,
) -> Result<u64> {
    if !with_history {
        conn.exec_drop(sql, Params::Positional(params))
            .map_err(|e| unknown_outcome(db.error(e)))?;
        return Ok(conn.affected_rows());
    }
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .map_err(|e| db.error(e))?;
    tx.exec_drop(sql, Params::Positional(params))
        .map_err(|e| db.error(e))?;
    let changed = tx.affected_rows();
    if changed > 0 {
        history::record(db, &mut tx, &[id], history_change, None, message)?;
    }
    commit(db, tx)?;
    Ok(changed)
}

pub(crate) fn heartbeat(
    db: &Database,
    config: &Config,
    id: i64,
    token: &str,
    options: &HeartbeatOptions,
) -> Result<Heartbeat> {
    check_task_id(id)?;
    check_token(token)?;
    if options.progress.is_some_and(|p| p > 100) {
        return Err(Error::invalid("progress must be from 0 to 100"));
    }
    let lease = options.lease_seconds.unwrap_or(config.task_claim_timeout);
    if lease == 0 || lease > 31_536_000 {
        return Err(Error::invalid("lease_seconds must be from 1 to 31536000"));
    }
    let record_progress = options.progress.is_some() && config.enable_task_history;
    let message = options.progress.map(|p| format!("progress {p}%"));
    db.run(|conn| {
        guarded_write(
            db,
            record_progress,
            conn,
            id,
            "UPDATE tasks SET lease_expires_at = NOW(6) + INTERVAL ? SECOND, progress = COALESCE(?, progress) \
             WHERE id = ? AND lease_token = ? AND status = 'claimed'",
            vec![lease.into(), options.progress.map(i32::from).into(), id.into(), token.into()],
            &history::constant(change::PROGRESS),
            message.as_deref(),
        )?;
        let row: Option<(String, Option<String>, Option<String>, i32)> = conn
            .exec_first(
                format!("SELECT status, lease_token, {}, progress FROM tasks WHERE id = ?", iso("lease_expires_at")),
                (id,),
            )
            .map_err(|e| db.error(e))?;
        match row {
            // A heartbeat in the very microsecond of the previous one changes no row but
            // still owns the task: success.
            Some((s, Some(t), Some(expires), progress)) if s == status::CLAIMED && t == token => {
                Ok(Heartbeat { id, lease_expires_at: expires, progress })
            }
            other => Err(lease_error(id, other.map(|(s, t, ..)| (s, t)), token)),
        }
    })
}

pub(crate) fn complete(
    db: &Database,
    config: &Config,
    id: i64,
    token: &str,
    result: &Value,
) -> Result<Finished> {
    check_task_id(id)?;
    check_token(token)?;
    json::check_value(result, config.max_payload_bytes, "result")?;
    let result_text = result.to_string();
    db.run(|conn| {
        let changed = guarded_write(
            db,
            config.enable_task_history,
            conn,
            id,
            COMPLETE_SQL,
            vec![(&result_text).into(), id.into(), token.into()],
            &history::constant(change::COMPLETED),
            None,
        )?;
        let repeated = changed == 0
            && repeated_or_error(
                id,
                current_lease(db, conn, id)?,
                token,
                &[status::COMPLETED],
            )?;
        Ok(Finished {
            id,
            status: status::COMPLETED.into(),
            repeated,
        })
    })
}

const COMPLETE_SQL: &str = "UPDATE tasks SET status = 'completed', result_json = ?, completed_at = NOW(6), \
     lease_expires_at = NULL, progress = 100, \
     dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock) \
     WHERE id = ? AND lease_token = ? AND status = 'claimed'";

/// Completes many claimed tasks in one transaction and reports an outcome per task.
pub(crate) fn complete_batch(
    db: &Database,
    config: &Config,
    items: &[CompleteItem],
) -> Result<Vec<CompleteOutcome>> {
    if items.len() > MAX_BATCH {
        return Err(Error::invalid(format!(
            "a batch holds at most {MAX_BATCH} tasks, got {}",
            items.len()
        )));
    }
    for item in items {
        check_task_id(item.id)?;
        check_token(&item.lease_token)?;
        json::check_value(&item.result, config.max_payload_bytes, "result")?;
    }
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
    db.run(|conn| {
        let mut tx = conn.start_transaction(TxOpts::default()).map_err(|e| db.error(e))?;
        let rows: Vec<(i64, String, Option<String>)> = tx
            .query(format!("SELECT id, status, lease_token FROM tasks WHERE id IN ({}) FOR UPDATE", id_list(&ids)))
            .map_err(|e| db.error(e))?;
        let mut outcomes = Vec::with_capacity(items.len());
        let mut to_complete: Vec<&CompleteItem> = Vec::new();
        for item in items {
            let current = rows.iter().find(|r| r.0 == item.id).map(|r| (r.1.clone(), r.2.clone()));
            let holds = matches!(&current, Some((s, Some(t))) if s == status::CLAIMED && *t == item.lease_token)
                && !to_complete.iter().any(|c| c.id == item.id);
            let outcome = if holds {
                to_complete.push(item);
                Ok(false)
            } else {
                repeated_or_error(item.id, current, &item.lease_token, &[status::COMPLETED])
            };
            outcomes.push(match outcome {
                Ok(_) => CompleteOutcome { id: item.id, ok: true, code: None, message: None },
                Err(e) => CompleteOutcome {
                    id: item.id,
                    ok: false,
                    code: Some(e.code().name().into()),
                    message: Some(e.message().into()),
                },
            });
        }
        if !to_complete.is_empty() {
            let done: Vec<i64> = to_complete.iter().map(|c| c.id).collect();
            let mut params: Vec<SqlValue> = Vec::new();
            let cases: Vec<&str> = to_complete
                .iter()
                .map(|c| {
                    params.push(c.id.into());
                    params.push(c.result.to_string().into());
                    "WHEN ? THEN ?"
                })
                .collect();
            tx.exec_drop(
                format!(
                    "UPDATE tasks SET status = 'completed', result_json = CASE id {} END, completed_at = NOW(6), \
                     lease_expires_at = NULL, progress = 100, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock) \
                     WHERE id IN ({})",
                    cases.join(" "),
                    id_list(&done)
                ),
                Params::Positional(params),
            )
            .map_err(|e| db.error(e))?;
            if config.enable_task_history {
                history::record(db, &mut tx, &done, &history::constant(change::COMPLETED), None, None)?;
            }
        }
        commit(db, tx)?;
        Ok(outcomes)
    })
}

pub(crate) fn fail(
    db: &Database,
    config: &Config,
    id: i64,
    token: &str,
    message: &str,
    options: &FailOptions,
) -> Result<Failed> {
    check_task_id(id)?;
    check_token(token)?;
    if message.len() > 65_535 {
        return Err(Error::new(
            Code::PayloadTooLarge,
            "error_message is longer than 65535 bytes",
        ));
    }
    if let Some(delay) = options.retry_in_seconds {
        if !(0.0..=315_360_000.0).contains(&delay) {
            return Err(Error::invalid(
                "retry_in_seconds must be from 0 to 315360000",
            ));
        }
    }
    let retry = options.retry.unwrap_or(true);
    // Exponential backoff base * 2^(attempts-1), capped, with "equal jitter": a random point in
    // the upper half, so retries of tasks that failed together spread out.
    let delay_sql = match options.retry_in_seconds {
        Some(seconds) => format!("{}", (seconds * 1e6) as i64),
        None => format!(
            "CAST(LEAST({max}, {base} * POW(2, LEAST(GREATEST(attempts - 1, 0), 40))) * {jitter} * 1000000 AS SIGNED)",
            max = config.retry_backoff_max_secs,
            base = config.retry_backoff_base_secs,
            jitter = 0.5 + random_unit() / 2.0,
        ),
    };
    let will_retry = format!(
        "({} AND attempts < max_attempts)",
        if retry { "TRUE" } else { "FALSE" }
    );
    let sql = format!(
        "UPDATE tasks SET \
         run_at = IF({will_retry}, NOW(6) + INTERVAL {delay_sql} MICROSECOND, run_at), \
         completed_at = IF({will_retry}, NULL, NOW(6)), \
         dedupe_lock = IF({will_retry} OR dedupe_scope = 'always', dedupe_lock, NULL), \
         status = IF({will_retry}, 'pending', 'failed'), \
         error_message = ?, lease_expires_at = NULL \
         WHERE id = ? AND lease_token = ? AND status = 'claimed'"
    );
    let history_change = format!(
        "IF(status = 'pending', '{}', '{}')",
        change::RETRYING,
        change::FAILED
    );
    db.run(|conn| {
        let changed = guarded_write(
            db,
            config.enable_task_history,
            conn,
            id,
            &sql,
            vec![message.into(), id.into(), token.into()],
            &history_change,
            Some(message),
        )?;
        type Row = (String, Option<String>, u32, u32, String);
        let row: Option<Row> = conn
            .exec_first(
                format!("SELECT status, lease_token, attempts, max_attempts, {} FROM tasks WHERE id = ?", iso("run_at")),
                (id,),
            )
            .map_err(|e| db.error(e))?;
        let repeated = changed == 0
            && repeated_or_error(id, row.clone().map(|r| (r.0, r.1)), token, &[status::PENDING, status::FAILED])?;
        let (status, _, attempts, max_attempts, run_at) = row.ok_or_else(|| Error::not_found(format!("task {id} does not exist")))?;
        Ok(Failed { id, status, attempts, max_attempts, run_at, repeated })
    })
}

/// Gives a claimed task back at once, without counting the attempt (for a worker shutting down).
pub(crate) fn release(db: &Database, config: &Config, id: i64, token: &str) -> Result<Finished> {
    check_task_id(id)?;
    check_token(token)?;
    db.run(|conn| {
        let changed = guarded_write(
            db,
            config.enable_task_history,
            conn,
            id,
            "UPDATE tasks SET status = 'pending', attempts = GREATEST(attempts - 1, 0), run_at = NOW(6), \
             lease_expires_at = NULL, lease_token = NULL \
             WHERE id = ? AND lease_token = ? AND status = 'claimed'",
            vec![id.into(), token.into()],
            &history::constant(change::RELEASED),
            None,
        )?;
        if changed == 0 {
            return Err(lease_error(id, current_lease(db, conn, id)?, token));
        }
        Ok(Finished { id, status: status::PENDING.into(), repeated: false })
    })
}
