//! Retention (finished tasks leave the table, with their history) and the operator's manual
//! cancel and retry.

use super::*;
use crate::sql;

/// Statuses a task may be pruned in: finished for good (a manual retry is the only way back,
/// and a pruned task is gone).
pub const PRUNABLE: [Status; 3] = [Completed, Failed, Cancelled];

/// The task finished more than `older_than` seconds ago. Rows the original system finished
/// may have no `completed_at`; their last change stands in. One range of idx_tasks_done
/// (finished_status, completed_at, ...): NULLs sort first.
pub(super) fn finished_before(alias: &str, older_than: u64) -> String {
    let cutoff = format!(
        "NOW(6) - INTERVAL {} SECOND",
        sql::int(older_than.min(i64::MAX as u64) as i64)
    );
    format!(
        "({alias}completed_at < {cutoff} OR ({alias}completed_at IS NULL AND {alias}updated_at < {cutoff}))"
    )
}

/// Up to `limit` ids of tasks in `status` that finished more than `older_than` seconds ago,
/// oldest first: a read of the index only, no lock.
pub fn prune_page(status: Status, older_than: u64, limit: u32) -> String {
    format!(
        "SELECT id FROM tasks FORCE INDEX (idx_tasks_done) WHERE finished_status = '{status}' \
         AND {} ORDER BY completed_at LIMIT {}",
        finished_before("", older_than),
        sql::int(limit.into())
    )
}

/// How many tasks in `statuses` a prune with this age would delete.
pub fn prune_count(statuses: &[Status], older_than: u64) -> String {
    let list: Vec<String> = statuses.iter().map(|s| format!("'{s}'")).collect();
    format!(
        "SELECT COUNT(*) FROM tasks WHERE finished_status IN ({}) AND {}",
        list.join(","),
        finished_before("", older_than)
    )
}

pub struct PruneScript {
    pub script: Script,
    /// History rows deleted.
    pub history: usize,
    /// Tasks deleted.
    pub tasks: usize,
}

/// Deletes the tasks `ids` and their history in one short transaction, each re-checked (still
/// in `status`, still old enough), so a task retried since it was listed stays. Safe to repeat.
pub fn prune(status: Status, ids: &[i64], older_than: u64) -> PruneScript {
    let mut script = Script::new(true);
    let ids = sql::int_list(ids);
    let history = script.push(format!(
        "DELETE h FROM tasks t {BY_ID} STRAIGHT_JOIN task_history h FORCE INDEX (idx_task_id) ON h.task_id = t.id \
         WHERE t.id IN ({ids}) AND t.status = '{status}' AND {}",
        finished_before("t.", older_than)
    ));
    let tasks = script.push(format!(
        "DELETE t FROM tasks t {BY_ID} WHERE t.id IN ({ids}) AND t.status = '{status}' AND {}",
        finished_before("t.", older_than)
    ));
    PruneScript {
        script: script.finish(),
        history,
        tasks,
    }
}

/// The UPDATE of a manual cancel or retry, for a task already locked and checked to be in one
/// of `transition.from`.
pub fn manual(transition: &Transition, id: i64, reason: Option<&str>) -> String {
    let set = match transition.change {
        Change::Cancelled => format!(
            "status = '{}', completed_at = NOW(6), lease_expires_at = NULL, lease_token = NULL, \
             dedupe_lock = {}",
            transition.to,
            dedupe_released("")
        ),
        // A retried task takes its key again; another active task holding it is a conflict.
        _ => format!(
            "status = '{}', attempts = 0, run_at = NOW(6), completed_at = NULL, lease_token = NULL, \
             dedupe_lock = dedupe_key",
            transition.to
        ),
    };
    format!(
        "UPDATE tasks {BY_ID} SET {set}, error_message = COALESCE({}, error_message) WHERE id = {} AND {}",
        sql::opt_text(reason),
        sql::int(id),
        from_clause(transition)
    )
}

/// The history row of a manual action.
pub fn manual_history(transition: &Transition, id: i64, reason: Option<&str>) -> String {
    history(
        &change_sql(transition.change),
        &sql::text("operator"),
        &sql::opt_text(reason),
        &format!("FROM tasks t {BY_ID} WHERE t.id = {}", sql::int(id)),
    )
}
