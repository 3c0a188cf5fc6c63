//! Enqueue inside the caller's transaction: the statements an application runs on its own
//! connection, so that the task exists if and only if its transaction commits.
//!
//! MySQL writes one table per statement, so the task and its `created` history row are two
//! statements: the task's INSERT (the one statement every caller runs), then, with history
//! on, the history row. The history statement finds the task by its key and this call's
//! enqueue token, not by `LAST_INSERT_ID()` or `ROW_COUNT()`, so it stays right whatever the
//! application runs between the two, and writes nothing for a duplicate or a second run.

use super::*;
use crate::sql;

/// The statements of one enqueue in the caller's transaction.
pub struct CallerEnqueue {
    /// The task's INSERT. A key already held makes it a no-op (a duplicate), and either way it
    /// leaves the holder's id in `LAST_INSERT_ID()`. It waits for a transaction that holds an
    /// uncommitted task with the key, as any insert of a unique value does.
    pub insert: String,
    /// The `created` history row of the task this call created, if any.
    pub history: String,
    /// `id, status, created`: the task holding the key now, and whether this call created it.
    /// A locking read, so it sees a holder committed after the caller's snapshot was taken.
    pub select: String,
}

/// The statements for `task`, marked with this call's `token`. Nothing checks the type again
/// when they run: the params were validated when they were made (a type deleted since fails
/// the foreign key).
pub fn enqueue_in_caller_transaction(task: &NewTask<'_>, token: &str) -> CallerEnqueue {
    let values = task.sql(token);
    let mine = format!(
        "t.dedupe_lock = {} AND t.enqueue_token = {}",
        values.key, values.token
    );
    CallerEnqueue {
        insert: format!(
            "{} FROM DUAL ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id)",
            insert_select(&values)
        ),
        history: history(
            &change_sql(ENQUEUE.change),
            "NULL",
            "NULL",
            &format!(
                "FROM tasks t {BY_KEY} WHERE {mine} AND NOT EXISTS (SELECT 1 FROM task_history h \
                 WHERE h.task_id = t.id AND h.status_change = '{}')",
                ENQUEUE.change.as_str()
            ),
        ),
        select: format!(
            "SELECT t.id, t.status, COALESCE(t.enqueue_token = {}, 0) AS created FROM tasks t {BY_KEY} \
             WHERE t.dedupe_lock = {} LOCK IN SHARE MODE",
            values.token,
            sql::text(task.key)
        ),
    }
}
