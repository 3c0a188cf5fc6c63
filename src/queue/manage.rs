//! Operator actions: cancel, and manual retry of dead tasks. Each locks the task, checks that
//! its status allows the action, and changes it with a history row, in one transaction.

use crate::Config;
use crate::database::{Database, commit};
use crate::error::{Code, Error, Result};
use crate::queue::Finished;
use crate::queue::input::check_task_id;
use crate::queue::lifecycle::{self, CANCEL, RETRY, Status, Transition};
use mysql::TxOpts;
use mysql::prelude::Queryable;

/// Cancels a pending or claimed task; it will not run (again). Cancelling a cancelled task is
/// a no-op; a finished task cannot be cancelled.
pub(crate) fn cancel(
    db: &Database,
    config: &Config,
    id: i64,
    reason: Option<&str>,
) -> Result<Finished> {
    check_task_id(id)?;
    apply(db, config, &CANCEL, id, reason, Some(Status::Cancelled))
}

/// Puts a failed or cancelled task back to pending with a fresh set of attempts.
pub(crate) fn retry(db: &Database, config: &Config, id: i64) -> Result<Finished> {
    check_task_id(id)?;
    apply(db, config, &RETRY, id, None, None).map_err(|e| {
        if e.server_code() == Some(1062) {
            Error::new(
                Code::Conflict,
                format!("task {id} cannot be retried: another active task holds its dedupe key"),
            )
        } else {
            e
        }
    })
}

/// Locks the task; applies `transition` when its status allows it, does nothing when it is
/// already in `no_op_in`, and is a conflict otherwise.
fn apply(
    db: &Database,
    config: &Config,
    transition: &Transition,
    id: i64,
    reason: Option<&str>,
    no_op_in: Option<Status>,
) -> Result<Finished> {
    db.run_once(|conn| {
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .map_err(|e| db.error(e))?;
        let current: Option<String> = tx
            .exec_first("SELECT status FROM tasks WHERE id = ? FOR UPDATE", (id,))
            .map_err(|e| db.error(e))?;
        let current =
            current.ok_or_else(|| Error::not_found(format!("task {id} does not exist")))?;
        let status = Status::parse(&current);
        let repeated = if status.is_some_and(|s| transition.from.contains(&s)) {
            tx.query_drop(lifecycle::manual(transition, id, reason))
                .map_err(|e| db.error(e))?;
            if config.enable_task_history {
                tx.query_drop(lifecycle::manual_history(transition, id, reason))
                    .map_err(|e| db.error(e))?;
            }
            false
        } else if status.is_some() && status == no_op_in {
            true
        } else {
            let allowed: Vec<&str> = transition.from.iter().map(|s| s.as_str()).collect();
            return Err(Error::new(
                Code::Conflict,
                format!(
                    "task {id} is {current}: {} needs a {} task",
                    transition.name,
                    allowed.join(" or ")
                ),
            ));
        };
        commit(db, tx)?;
        Ok(Finished {
            id,
            // A repeat found the task already in `no_op_in`, a status it could read.
            status: status.filter(|_| repeated).unwrap_or(transition.to),
            repeated,
        })
    })
}
