//! The SQL of the schedules: the reads and writes of put, list and delete (prepared statements,
//! `?` marking a bound value), and the tick's statements, whose values go in through
//! [`crate::sql`] because a tick's writes travel as one script. `sql/mysql/steps.sql` shows
//! every one of them (`queue::catalog`).

use crate::queue::lifecycle::{self, ISO, NewTask};
use crate::sql;

/// Every column of a schedule as its JSON shows it, its type by name, its times as RFC 3339.
pub(crate) fn select_schedules() -> String {
    format!(
        "SELECT s.id, s.name, y.name AS type_name, s.type_id, s.cron, s.timezone, s.params_json, \
         s.enabled, s.misfire, s.misfire_grace_seconds, \
         DATE_FORMAT(s.next_run_at, {ISO}) AS next_run_at, \
         DATE_FORMAT(s.last_run_at, {ISO}) AS last_run_at, \
         DATE_FORMAT(s.created_at, {ISO}) AS created_at, \
         DATE_FORMAT(s.updated_at, {ISO}) AS updated_at \
         FROM task_schedules s JOIN task_types y ON y.id = s.type_id"
    )
}

/// Every schedule, by name.
pub(crate) fn list() -> String {
    format!("{} ORDER BY s.name", select_schedules())
}

/// One schedule by name (`?`).
pub(crate) fn by_name() -> String {
    format!("{} WHERE s.name = ?", select_schedules())
}

/// Put's locking read: the schedule as it is (`?`: its name) and the database's clock, which
/// alone decides the first occurrence. The clock comes back even when no schedule matches.
pub(crate) fn put_lock() -> String {
    format!(
        "SELECT DATE_FORMAT(NOW(6), {ISO}) AS now, s.cron, s.timezone, s.enabled, \
         DATE_FORMAT(s.next_run_at, {ISO}) AS next_run_at \
         FROM (SELECT 1) AS clock LEFT JOIN task_schedules s ON s.name = ? FOR UPDATE"
    )
}

/// A new schedule (`?`: name, type id, cron, time zone, params, enabled, misfire, grace, next
/// run).
pub(crate) const INSERT: &str = "INSERT INTO task_schedules (name, type_id, cron, timezone, \
     params_json, enabled, misfire, misfire_grace_seconds, next_run_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// A schedule put again (`?`: as [`INSERT`], the name last).
pub(crate) const UPDATE: &str = "UPDATE task_schedules SET type_id = ?, cron = ?, timezone = ?, \
     params_json = ?, enabled = ?, misfire = ?, misfire_grace_seconds = ?, next_run_at = ? \
     WHERE name = ?";

/// Deletes a schedule (`?`: its name) with its runs.
pub(crate) const DELETE: &str = "DELETE FROM task_schedules WHERE name = ?";

/// The database's clock and the earliest next run of an enabled schedule: a tick with nothing
/// due is this one read, and the throttle of the lazy ticks learns from it when to look again.
pub(crate) fn due_check() -> String {
    format!(
        "SELECT DATE_FORMAT(NOW(6), {ISO}) AS now, DATE_FORMAT(MIN(next_run_at), {ISO}) AS next \
         FROM task_schedules FORCE INDEX (idx_schedules_due) \
         WHERE enabled = 1 AND next_run_at IS NOT NULL"
    )
}

/// Opens the tick's transaction and locks up to `limit` due schedules, soonest first, skipping
/// those another ticker holds (it is enqueuing them): no ticker ever waits for another. The
/// clock is read in the same statement, so what is due and what is enqueued agree.
pub(crate) fn lock_due(limit: u32) -> [String; 2] {
    [
        "START TRANSACTION".into(),
        format!(
            "SELECT id, name, type_id, cron, timezone, params_json, misfire, \
             misfire_grace_seconds, DATE_FORMAT(next_run_at, {ISO}) AS next_run_at, \
             DATE_FORMAT(NOW(6), {ISO}) AS now \
             FROM task_schedules FORCE INDEX (idx_schedules_due) \
             WHERE enabled = 1 AND next_run_at <= NOW(6) ORDER BY next_run_at LIMIT {} \
             FOR UPDATE SKIP LOCKED",
            sql::int(limit.into())
        ),
    ]
}

/// How long runs are kept, in days: a run older than that is deleted by the ticks (its task,
/// if not pruned, still carries its schedule and instant in its dedupe key).
pub(crate) const RUNS_KEPT_DAYS: u32 = 90;

/// The statements that enqueue one occurrence of a locked schedule, in the tick's transaction:
/// the task (gated on its type, keyed by schedule and instant, so it exists at most once
/// whatever else happens), its `created` history row, and its run. The last statement answers
/// `task_id` (0 when the type refused it: deactivated, or changed since it was read) and
/// `created` (0 when the key already held a task).
pub(crate) fn enqueue_occurrence(
    task: &NewTask<'_>,
    version: &str,
    token: &str,
    schedule_id: i64,
    scheduled_for: &str,
    history_on: bool,
) -> Vec<String> {
    let steps = lifecycle::enqueue_one_steps(
        &task.sql(token),
        &sql::text(version),
        "@tm_task",
        "@tm_created = 1",
    );
    let mut statements = vec![
        // An INSERT that inserts nothing leaves LAST_INSERT_ID() as it was: start from 0.
        "DO LAST_INSERT_ID(0)".to_string(),
        steps.insert,
        "SET @tm_created = ROW_COUNT()".into(),
        "SET @tm_task = LAST_INSERT_ID()".into(),
    ];
    if history_on {
        statements.push(steps.history);
    }
    statements.push(format!(
        "INSERT INTO task_schedule_runs (schedule_id, scheduled_for, task_id) \
         SELECT {}, {}, @tm_task FROM DUAL WHERE @tm_task > 0 \
         ON DUPLICATE KEY UPDATE task_id = task_id",
        sql::int(schedule_id),
        sql::text(scheduled_for)
    ));
    statements.push("SELECT @tm_task AS task_id, @tm_created AS created".into());
    statements
}

/// Moves a locked schedule on: its next occurrence (`None`: it has no more), the last one it
/// enqueued, and drops its runs past the retention.
pub(crate) fn advance(
    schedule_id: i64,
    next_run_at: Option<&str>,
    last_run_at: Option<&str>,
) -> [String; 2] {
    let last = match last_run_at {
        Some(last) => sql::text(last),
        None => "last_run_at".into(),
    };
    [
        format!(
            "UPDATE task_schedules FORCE INDEX (PRIMARY) SET next_run_at = {}, last_run_at = {last} \
             WHERE id = {}",
            sql::opt_text(next_run_at),
            sql::int(schedule_id)
        ),
        format!(
            "DELETE FROM task_schedule_runs WHERE schedule_id = {} \
             AND scheduled_for < NOW(6) - INTERVAL {RUNS_KEPT_DAYS} DAY",
            sql::int(schedule_id)
        ),
    ]
}
