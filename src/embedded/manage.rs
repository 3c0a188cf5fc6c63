//! Operator steps on the embedded engine: cancel, retry, prune.
//!
//! Cancel and retry read the task's status and change it in one `BEGIN IMMEDIATE`
//! transaction (the write lock taken first makes the read and the write one step, as the
//! server's locking read does), judged by the server engine's rules (`queue::manage::Action`).
//! Prune is the server engine's loop (`queue::prune::run`) over this file's reads and deletes.

use super::{SqlResult, Store, clock, history, release_active_key};
use crate::Config;
use crate::error::{Error, Result};
use crate::queue::Finished;
use crate::queue::engine::Pruned;
use crate::queue::input::check_task_id;
use crate::queue::lifecycle::Status;
use crate::queue::manage::{Action, dedupe_conflict};
use crate::queue::prune::{self, PruneOptions, PruneReport, PruneSteps};
use crate::sql::int_list;
use rusqlite::{ErrorCode, OptionalExtension, Transaction};

/// A pending or claimed task becomes cancelled; its lease ends, an `active` dedupe key stops
/// blocking (`release_active_key`, after it), and the reason (when given) becomes its error message.
const CANCEL: &str = "\
UPDATE tasks SET status = 'cancelled', completed_at = ?2, lease_expires_at = NULL,
  lease_token = NULL,
  error_message = COALESCE(?3, error_message), updated_at = ?2
WHERE id = ?1 AND status IN ('pending', 'claimed')";

/// A failed or cancelled task becomes pending, runnable now, with its attempts reset; it takes
/// its dedupe key again (another active task holding it fails the UNIQUE index).
const RETRY: &str = "\
UPDATE tasks SET status = 'pending', attempts = 0, run_at = ?2, completed_at = NULL,
  lease_token = NULL, dedupe_lock = dedupe_key, updated_at = ?2
WHERE id = ?1 AND status IN ('failed', 'cancelled')";

/// Who a manual action's history row names.
const OPERATOR: &str = "operator";

/// Cancels a pending or claimed task; cancelling a cancelled task is a no-op, a finished task
/// is `Conflict`.
pub(crate) fn cancel(
    store: &Store,
    config: &Config,
    id: i64,
    reason: Option<&str>,
) -> Result<Finished> {
    check_task_id(id)?;
    apply(store, config, Action::Cancel, id, reason)
}

/// Puts a failed or cancelled task back to pending with a fresh set of attempts.
pub(crate) fn retry(store: &Store, config: &Config, id: i64) -> Result<Finished> {
    check_task_id(id)?;
    let finished = apply(store, config, Action::Retry, id, None)?;
    store.signal();
    Ok(finished)
}

/// Reads the task's status; applies the action when the status allows it, does nothing when
/// it is already done, and is a conflict otherwise.
fn apply(
    store: &Store,
    config: &Config,
    action: Action,
    id: i64,
    reason: Option<&str>,
) -> Result<Finished> {
    store.write(|tx| {
        let current: Option<String> = tx
            .prepare_cached("SELECT status FROM tasks WHERE id = ?1")
            .sql(store)?
            .query_row([id], |r| r.get(0))
            .optional()
            .sql(store)?;
        let current =
            current.ok_or_else(|| Error::not_found(format!("task {id} does not exist")))?;
        let changed = action.judge(id, &current)?;
        if changed {
            let now = clock::now_micros();
            change(store, tx, action, id, reason, now)?;
            if config.enable_task_history {
                let change = action.transition().change;
                history(store, tx, id, change, Some(OPERATOR), reason, now)?;
            }
        }
        Ok(action.answer(id, &current, changed))
    })
}

/// The action's UPDATE; a retry whose dedupe key another active task holds is `Conflict`.
fn change(
    store: &Store,
    tx: &Transaction<'_>,
    action: Action,
    id: i64,
    reason: Option<&str>,
    now: i64,
) -> Result<()> {
    let done = match action {
        Action::Cancel => tx
            .prepare_cached(CANCEL)
            .sql(store)?
            .execute((id, now, reason)),
        Action::Retry => tx.prepare_cached(RETRY).sql(store)?.execute((id, now)),
    };
    match done {
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == ErrorCode::ConstraintViolation
                && f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Err(dedupe_conflict(id))
        }
        done => {
            done.sql(store)?;
            if action == Action::Cancel {
                release_active_key(store, tx, id)?;
            }
            Ok(())
        }
    }
}

/// Deletes finished tasks older than `older_than_seconds` with their history, in batches of
/// one transaction each; `progress` hears the running totals after every batch.
pub(crate) fn prune(
    store: &Store,
    options: &PruneOptions,
    progress: &mut dyn FnMut(&PruneReport),
) -> Result<PruneReport> {
    prune::run(options, progress, &mut FileSteps(store))
}

/// How many tasks in one status (`?1`) finished before the cutoff (`?2`, microseconds). A row
/// finished with no `completed_at` (changed by hand) is judged by its last change, as on a
/// server. Each part is one range of idx_tasks_finished (its condition is repeated so that
/// SQLite may use it): the NULLs, then the times before the cutoff.
const PRUNE_COUNT: &str = "\
SELECT
  (SELECT COUNT(*) FROM tasks INDEXED BY idx_tasks_finished
   WHERE status NOT IN ('pending', 'claimed') AND status = ?1
     AND completed_at IS NULL AND updated_at < ?2)
  + (SELECT COUNT(*) FROM tasks INDEXED BY idx_tasks_finished
     WHERE status NOT IN ('pending', 'claimed') AND status = ?1
       AND completed_at < ?2)";

/// Up to `?3` of them, oldest first (NULLs first, as a server sorts them).
const PRUNE_PAGE: &str = "\
SELECT id FROM tasks INDEXED BY idx_tasks_finished
WHERE status NOT IN ('pending', 'claimed') AND status = ?1
  AND completed_at IS NULL AND updated_at < ?2
UNION ALL
SELECT * FROM (
  SELECT id FROM tasks INDEXED BY idx_tasks_finished
  WHERE status NOT IN ('pending', 'claimed') AND status = ?1 AND completed_at < ?2
  ORDER BY completed_at LIMIT ?3)
LIMIT ?3";

/// Records the highest task id before a prune deletes tasks (see `tm_task_ids` in the schema).
const KEEP_HIGHEST_ID: &str = "\
INSERT INTO tm_task_ids (singleton, highest) SELECT 1, IFNULL(MAX(id), 0) FROM tasks WHERE true
ON CONFLICT (singleton) DO UPDATE SET highest = MAX(highest, excluded.highest)";

struct FileSteps<'a>(&'a Store);

/// The prune's cutoff: `age` seconds before now, in microseconds.
fn cutoff(age: u64) -> i64 {
    clock::now_micros().saturating_sub(clock::seconds(i64::try_from(age).unwrap_or(i64::MAX)))
}

impl PruneSteps for FileSteps<'_> {
    fn count(&mut self, statuses: &[Status], age: u64) -> Result<u64> {
        let store = self.0;
        let cutoff = cutoff(age);
        store.read(|conn| {
            let mut count = conn.prepare_cached(PRUNE_COUNT).sql(store)?;
            let mut total = 0;
            for status in statuses {
                let n: u64 = count
                    .query_row((status.as_str(), cutoff), |r| r.get(0))
                    .sql(store)?;
                total += n;
            }
            Ok(total)
        })
    }

    fn page(&mut self, status: Status, age: u64, limit: u32) -> Result<Vec<i64>> {
        let store = self.0;
        let cutoff = cutoff(age);
        store.read(|conn| {
            conn.prepare_cached(PRUNE_PAGE)
                .sql(store)?
                .query_map((status.as_str(), cutoff, limit), |r| r.get(0))
                .sql(store)?
                .collect::<rusqlite::Result<_>>()
                .sql(store)
        })
    }

    fn delete(&mut self, status: Status, ids: &[i64], age: u64) -> Result<Pruned> {
        let store = self.0;
        // Each task is checked again (still in `status`, still old enough): a task retried
        // since the page was read stays.
        let ids = int_list(ids);
        let history_sql = format!(
            "DELETE FROM task_history WHERE task_id IN (SELECT id FROM tasks WHERE id IN ({ids}) \
             AND status = ?1 AND (completed_at < ?2 OR (completed_at IS NULL AND updated_at < ?2)))"
        );
        let tasks_sql = format!(
            "DELETE FROM tasks WHERE id IN ({ids}) \
             AND status = ?1 AND (completed_at < ?2 OR (completed_at IS NULL AND updated_at < ?2))"
        );
        store.write(|tx| {
            // The newest task may be among those deleted: new ids must still start above it.
            tx.prepare_cached(KEEP_HIGHEST_ID)
                .sql(store)?
                .execute([])
                .sql(store)?;
            let cutoff = cutoff(age);
            let history = tx
                .prepare(&history_sql)
                .sql(store)?
                .execute((status.as_str(), cutoff))
                .sql(store)?;
            let tasks = tx
                .prepare(&tasks_sql)
                .sql(store)?
                .execute((status.as_str(), cutoff))
                .sql(store)?;
            Ok(Pruned {
                history: history as u64,
                tasks: tasks as u64,
            })
        })
    }
}
