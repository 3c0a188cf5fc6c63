//! Operator actions: recovery of expired leases, cancel, and manual retry of dead tasks.

use crate::Config;
use crate::error::{Code, Error, Result};
use crate::history::{self, change};
use crate::pool::{Database, commit};
use crate::queue::{Finished, check_task_id, status};
use crate::types::id_list;
use mysql::TxOpts;
use mysql::prelude::Queryable;
use serde::Serialize;

/// What a recovery run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Recovery {
    /// Tasks whose lease had run out.
    pub recovered: u64,
    /// Of those, the ones put back to pending (attempts left).
    pub requeued: u64,
    /// Of those, the ones that had used their last attempt and are now failed.
    pub failed: u64,
}

/// Inside the caller's transaction, turns up to `limit` expired leases into failed attempts:
/// back to pending when attempts remain, else `failed`. Locks with SKIP LOCKED so concurrent
/// recoverers and claimers never wait on each other or recover a task twice.
pub(crate) fn recover_expired_in(
    db: &Database,
    config: &Config,
    tx: &mut mysql::Transaction<'_>,
    limit: usize,
) -> Result<Recovery> {
    let expired: Vec<(i64, bool)> = tx
        .exec(
            "SELECT id, attempts >= max_attempts FROM tasks \
             WHERE status = 'claimed' AND lease_expires_at <= NOW(6) \
             ORDER BY lease_expires_at LIMIT ? FOR UPDATE SKIP LOCKED",
            (limit,),
        )
        .map_err(|e| db.error(e))?;
    if expired.is_empty() {
        return Ok(Recovery::default());
    }
    let ids: Vec<i64> = expired.iter().map(|e| e.0).collect();
    let dead = "attempts >= max_attempts";
    tx.query_drop(format!(
        "UPDATE tasks SET \
         completed_at = IF({dead}, NOW(6), NULL), \
         dedupe_lock = IF({dead} AND dedupe_scope = 'active', NULL, dedupe_lock), \
         error_message = CONCAT('lease expired during attempt ', attempts, ' of ', max_attempts), \
         run_at = NOW(6), lease_expires_at = NULL, \
         status = IF({dead}, 'failed', 'pending') \
         WHERE id IN ({})",
        id_list(&ids)
    ))
    .map_err(|e| db.error(e))?;
    if config.enable_task_history {
        history::record(
            db,
            tx,
            &ids,
            &history::constant(change::LEASE_EXPIRED),
            None,
            Some("lease expired: counted as a failed attempt"),
        )?;
    }
    let failed = expired.iter().filter(|e| e.1).count() as u64;
    Ok(Recovery {
        recovered: ids.len() as u64,
        requeued: ids.len() as u64 - failed,
        failed,
    })
}

/// Recovers every expired lease, in batches, for a cron job or an operator.
pub(crate) fn recover_expired(db: &Database, config: &Config) -> Result<Recovery> {
    const BATCH: usize = 500;
    let mut total = Recovery::default();
    loop {
        let round = db.run(|conn| {
            let mut tx = conn
                .start_transaction(TxOpts::default())
                .map_err(|e| db.error(e))?;
            let round = recover_expired_in(db, config, &mut tx, BATCH)?;
            commit(db, tx)?;
            Ok(round)
        })?;
        total.recovered += round.recovered;
        total.requeued += round.requeued;
        total.failed += round.failed;
        if round.recovered < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Cancels a pending or claimed task; it will not run (again). Cancelling a cancelled task is
/// a no-op; a finished task cannot be cancelled.
pub(crate) fn cancel(
    db: &Database,
    config: &Config,
    id: i64,
    reason: Option<&str>,
) -> Result<Finished> {
    check_task_id(id)?;
    transition(
        db,
        config,
        id,
        change::CANCELLED,
        reason,
        |current| match current {
            status::PENDING | status::CLAIMED => Ok(Some(
                "UPDATE tasks SET status = 'cancelled', completed_at = NOW(6), lease_expires_at = NULL, \
             lease_token = NULL, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock), \
             error_message = COALESCE(?, error_message) WHERE id = ?",
            )),
            status::CANCELLED => Ok(None),
            other => Err(Error::new(
                Code::Conflict,
                format!("task {id} is {other} and cannot be cancelled"),
            )),
        },
    )
}

/// Puts a failed or cancelled task back to pending with a fresh set of attempts.
pub(crate) fn retry(db: &Database, config: &Config, id: i64) -> Result<Finished> {
    check_task_id(id)?;
    transition(db, config, id, change::RETRIED, None, |current| match current {
        status::FAILED | status::CANCELLED => Ok(Some(
            "UPDATE tasks SET status = 'pending', attempts = 0, run_at = NOW(6), completed_at = NULL, \
             lease_token = NULL, dedupe_lock = dedupe_key, error_message = COALESCE(?, error_message) WHERE id = ?",
        )),
        other => Err(Error::new(Code::Conflict, format!("task {id} is {other}; only failed or cancelled tasks can be retried"))),
    })
    .map_err(|e| {
        if e.server_code() == Some(1062) {
            Error::new(Code::Conflict, format!("task {id} cannot be retried: another active task holds its dedupe key"))
        } else {
            e
        }
    })
}

/// Locks the task, lets `plan` choose an UPDATE (or none) from its status, applies it with a
/// history row, and reports the new status.
fn transition(
    db: &Database,
    config: &Config,
    id: i64,
    history_change: &str,
    message: Option<&str>,
    plan: impl Fn(&str) -> Result<Option<&'static str>>,
) -> Result<Finished> {
    db.run(|conn| {
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .map_err(|e| db.error(e))?;
        let current: Option<String> = tx
            .exec_first("SELECT status FROM tasks WHERE id = ? FOR UPDATE", (id,))
            .map_err(|e| db.error(e))?;
        let current =
            current.ok_or_else(|| Error::not_found(format!("task {id} does not exist")))?;
        let repeated = match plan(&current)? {
            Some(sql) => {
                tx.exec_drop(sql, (message, id)).map_err(|e| db.error(e))?;
                if config.enable_task_history {
                    history::record(
                        db,
                        &mut tx,
                        &[id],
                        &history::constant(history_change),
                        Some("operator"),
                        message,
                    )?;
                }
                false
            }
            None => true,
        };
        let status: Option<String> = tx
            .exec_first("SELECT status FROM tasks WHERE id = ?", (id,))
            .map_err(|e| db.error(e))?;
        commit(db, tx)?;
        Ok(Finished {
            id,
            status: status.unwrap_or(current),
            repeated,
        })
    })
}
