//! The reads: one task, a page of tasks, a task's history, the tasks a bulk action selects,
//! the operator's locking read, and the figures of the stats. Each is a prepared statement
//! whose `?` marks a value the driver binds; [`Read`] names them, so an engine runs a read by
//! name and a reader finds every read's SQL here.

use super::Status;
use super::iso;

/// Hours of the per-hour throughput series (and how far back the throughput read goes).
pub const THROUGHPUT_HOURS: usize = 24;

/// A read, by name. `conditions` is a checked selection over `tasks t JOIN task_types y`
/// (`read::Selection::conditions`), its values bound before the read's own.
#[derive(Debug, Clone, Copy)]
pub enum Read<'a> {
    /// One task with its type's name (`?`: the id).
    Task,
    /// A page of tasks, newest first (then `?` limit, `?` offset).
    Tasks { conditions: &'a str },
    /// A task's history, oldest first (`?`: the task id).
    History,
    /// A page of the tasks a bulk action selects (then `?` the id to stay below, `?` the page
    /// size).
    Selected { conditions: &'a str },
    /// The operator's action locks the task and reads its status first (`?`: the id).
    LockStatus,
    /// Tasks per type and status; a type without tasks has one row with a NULL status.
    StatusCounts,
    /// Per type, the age in seconds of the oldest runnable pending task.
    OldestPending,
    /// Per type, claimed tasks whose lease ran out.
    ExpiredLeases,
    /// Per type and final status, tasks finished in each minute of the last day.
    FinishedPerMinute,
    /// Per worker, claims in the last hour (from the history) and the last one's time.
    ClaimsPerWorker,
    /// Per worker, the tasks it holds now and its latest claim among them.
    HeldPerWorker,
    /// The database's clock, as RFC 3339 (`now`).
    Now,
}

impl Read<'_> {
    /// The statement, for MySQL and MariaDB.
    pub fn sql(&self) -> String {
        match self {
            Read::Task => format!("{} WHERE t.id = ?", select_tasks()),
            Read::Tasks { conditions } => format!(
                "{} WHERE {conditions} ORDER BY t.id DESC LIMIT ? OFFSET ?",
                select_tasks()
            ),
            Read::History => format!(
                "SELECT id, task_id, status_change, worker_id, message, {} AS created_at \
                 FROM task_history WHERE task_id = ? ORDER BY id",
                iso("created_at")
            ),
            Read::Selected { conditions } => format!(
                "SELECT t.id, t.status FROM tasks t JOIN task_types y ON y.id = t.type_id \
                 WHERE {conditions} AND t.id < ? ORDER BY t.id DESC LIMIT ?"
            ),
            Read::LockStatus => "SELECT status FROM tasks WHERE id = ? FOR UPDATE".into(),
            // One count per index of the lean layout (each holds one side of the life cycle),
            // each read from the index alone or from the few claimed rows: no scan of the table.
            Read::StatusCounts => format!(
                "SELECT y.name, c.status, COALESCE(c.n, 0) AS n FROM task_types y LEFT JOIN (\
                 SELECT type_id, '{}' AS status, COUNT(*) AS n FROM tasks \
                 WHERE pending_priority IS NOT NULL GROUP BY type_id \
                 UNION ALL SELECT type_id, '{}', COUNT(*) FROM tasks \
                 WHERE claimed_until IS NOT NULL GROUP BY type_id \
                 UNION ALL SELECT type_id, finished_status, COUNT(*) FROM tasks \
                 WHERE finished_status IS NOT NULL GROUP BY finished_status, type_id\
                 ) AS c ON c.type_id = y.id",
                Status::Pending,
                Status::Claimed
            ),
            Read::OldestPending => {
                "SELECT y.name, TIMESTAMPDIFF(MICROSECOND, MIN(t.created_at), NOW(6)) / 1e6 AS age \
                 FROM tasks t JOIN task_types y ON y.id = t.type_id \
                 WHERE t.is_pending = 1 AND t.run_at <= NOW(6) GROUP BY y.name"
                    .into()
            }
            Read::ExpiredLeases => {
                "SELECT y.name, COUNT(*) AS n FROM tasks t JOIN task_types y ON y.id = t.type_id \
                 WHERE t.claimed_until <= NOW(6) AND t.lease_expires_at <= NOW(6) GROUP BY y.name"
                    .into()
            }
            Read::FinishedPerMinute => format!(
                "SELECT y.name, t.finished_status AS status, \
                 TIMESTAMPDIFF(SECOND, t.completed_at, NOW(6)) DIV 60 AS minute, COUNT(*) AS n \
                 FROM tasks t JOIN task_types y ON y.id = t.type_id \
                 WHERE t.finished_status IN ('{}', '{}') \
                 AND t.completed_at > NOW(6) - INTERVAL {THROUGHPUT_HOURS} HOUR \
                 GROUP BY y.name, t.finished_status, minute",
                Status::Completed,
                Status::Failed
            ),
            Read::ClaimsPerWorker => format!(
                "SELECT worker_id, {} AS last, COUNT(*) AS n FROM task_history \
                 WHERE created_at > NOW(6) - INTERVAL 1 HOUR AND status_change = 'claimed' \
                 GROUP BY worker_id",
                iso("MAX(created_at)")
            ),
            Read::Now => format!("SELECT {} AS now", iso("NOW(6)")),
            Read::HeldPerWorker => format!(
                "SELECT claimed_by, COUNT(*) AS n, {} AS last FROM tasks \
                 WHERE claimed_until IS NOT NULL GROUP BY claimed_by",
                iso("MAX(claimed_at)")
            ),
        }
    }
}

/// Every column of a task, its type's name, and its times as RFC 3339 in UTC.
fn select_tasks() -> String {
    format!(
        "SELECT t.id, y.name AS type_name, t.type_id, t.status, t.params_json, t.result_json, \
         t.error_message, t.attempts, t.max_attempts, t.priority, t.progress, t.dedupe_key, \
         t.dedupe_scope, t.claimed_by, {} AS claimed_at, {} AS lease_expires_at, {} AS run_at, \
         {} AS completed_at, {} AS created_at, {} AS updated_at \
         FROM tasks t JOIN task_types y ON y.id = t.type_id",
        iso("t.claimed_at"),
        iso("t.lease_expires_at"),
        iso("t.run_at"),
        iso("t.completed_at"),
        iso("t.created_at"),
        iso("t.updated_at"),
    )
}
