//! The audit trail: one `task_history` row per transition, written in the same transaction as
//! the change itself, and only when history is enabled.

use crate::error::Result;
use crate::pool::Database;
use crate::types::id_list;
use mysql::prelude::Queryable;

/// Statuses recorded in `task_history.status_change`.
pub mod change {
    pub const CREATED: &str = "created";
    pub const CLAIMED: &str = "claimed";
    pub const COMPLETED: &str = "completed";
    pub const FAILED: &str = "failed";
    pub const RETRYING: &str = "retrying";
    pub const LEASE_EXPIRED: &str = "lease_expired";
    pub const RELEASED: &str = "released";
    pub const PROGRESS: &str = "progress";
    pub const CANCELLED: &str = "cancelled";
    pub const RETRIED: &str = "retried";
}

/// Writes one history row per task in `ids`, in one statement. `change_sql` is an SQL
/// expression over the task row (a quoted constant, or an `IF(...)` choosing between two),
/// and `message_sql` likewise; neither ever carries caller text, which goes through `message`.
pub(crate) fn record(
    db: &Database,
    conn: &mut impl Queryable,
    ids: &[i64],
    change_sql: &str,
    worker: Option<&str>,
    message: Option<&str>,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    conn.exec_drop(
        format!(
            "INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) \
             SELECT id, {change_sql}, COALESCE(?, claimed_by), ?, NOW(6) FROM tasks WHERE id IN ({})",
            id_list(ids)
        ),
        (worker, message),
    )
    .map_err(|e| db.error(e))
}

/// A quoted SQL constant for one of the [`change`] names.
pub(crate) fn constant(change: &str) -> String {
    format!("'{change}'")
}
