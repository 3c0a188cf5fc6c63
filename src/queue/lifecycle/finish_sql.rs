//! A worker finishing what it holds: the guarded steps (complete, fail, heartbeat, release),
//! complete-and-claim and complete of a batch, each with its history row written once per lease.

use super::*;
use crate::sql;

/// A guarded single-task step: the UPDATE, its history row when it matched, and, for steps
/// that answer with the task's columns, a read of the task.
pub struct GuardedScript {
    pub script: Script,
    /// Rows the guarded UPDATE changed.
    pub update: usize,
    /// The task afterwards (`status`, the holder's column and the step's columns), for steps that
    /// read it; the others read [`task_lease`] only after a miss, in a second round trip.
    pub state: Option<usize>,
}

pub(super) fn guarded(
    set_sql: &str,
    id: i64,
    holder: Holder<'_>,
    history_row: Option<HistoryRow>,
    answer_columns: Option<&str>,
) -> GuardedScript {
    // With no history row the UPDATE is the only write and commits by itself.
    let mut script = Script::new(history_row.is_some());
    let update = push_guarded(&mut script, set_sql, id, &holder.sql(), history_row);
    let state = answer_columns.map(|columns| {
        script.push(format!(
            "SELECT status, {} AS holder, {columns} FROM tasks {BY_ID} WHERE id = {}",
            holder.column(),
            sql::int(id)
        ))
    });
    GuardedScript {
        script: script.finish(),
        update,
        state,
    }
}

/// Appends the guarded UPDATE and, when given, its history row (written only when the step
/// changed the task); returns the UPDATE's index.
pub(super) fn push_guarded(
    script: &mut Script,
    set_sql: &str,
    id: i64,
    holder: &HolderSql,
    history_row: Option<HistoryRow>,
) -> usize {
    let steps = guarded_steps(set_sql, &sql::int(id), holder, history_row);
    let update = script.push(steps.update);
    if let Some(history) = steps.history {
        script.push(history);
    }
    update
}

/// A guarded step's statements: the UPDATE, and its history row when there is one.
pub(crate) struct GuardedSteps {
    pub update: String,
    pub history: Option<String>,
}

/// A guarded step with the task's id as SQL (`id_sql`).
pub(super) fn guarded_steps(
    set_sql: &str,
    id_sql: &str,
    holder: &HolderSql,
    history_row: Option<HistoryRow>,
) -> GuardedSteps {
    GuardedSteps {
        update: format!(
            "UPDATE tasks {BY_ID} SET {set_sql} WHERE {}",
            lease_guard(id_sql, holder)
        ),
        history: history_row.map(|row| {
            history(
                &row.change,
                TASK_HOLDER,
                &row.message,
                &format!(
                    "FROM tasks t {BY_ID} WHERE t.id = {id_sql} AND {}",
                    row.written_when
                ),
            )
        }),
    }
}

/// The history row of a guarded step, and when it is written.
pub(super) struct HistoryRow {
    /// The `status_change` expression.
    change: String,
    /// The `message` expression.
    message: String,
    /// A condition over the task `t` after the UPDATE that holds exactly when this step
    /// changed it. A script reads it from the row, not from ROW_COUNT(): a step whose text
    /// reaches the server late (after a partition) must not commit its change without its
    /// history. A procedure's body keeps the UPDATE's count (see [`complete_update`]).
    written_when: String,
}

impl HistoryRow {
    /// For a step that ends its lease in `change` (complete, fail, release): written when the
    /// task is under this holder in `status` and no row of this kind exists for this lease yet.
    fn once_per_lease(
        holder: &HolderSql,
        status_sql: &str,
        change: String,
        message: String,
    ) -> HistoryRow {
        let written_when = format!(
            "{} AND {status_sql} AND NOT EXISTS (SELECT 1 FROM task_history h \
             WHERE h.task_id = t.id AND h.status_change = {change} AND h.created_at >= t.claimed_at)",
            holder.matches("t.")
        );
        HistoryRow {
            change,
            message,
            written_when,
        }
    }
}

/// A task's status and its holder's column: why a guarded step matched nothing.
pub fn task_lease(id: i64, holder: Holder<'_>) -> String {
    format!(
        "SELECT status, {} AS holder FROM tasks {BY_ID} WHERE id = {}",
        holder.column(),
        sql::int(id)
    )
}

pub fn complete(id: i64, holder: Holder<'_>, result_text: &str, history_on: bool) -> GuardedScript {
    guarded(
        &complete_set(&sql::text(result_text)),
        id,
        holder,
        history_on.then(|| complete_history(&holder.sql())),
        None,
    )
}

/// The UPDATE of a complete, with its inputs as SQL, for a stored procedure's body. The body
/// keeps the UPDATE's ROW_COUNT() and writes the history row only when the UPDATE completed the
/// task: it runs the two together or not at all, so the count is exact, and it reads no
/// `task_history` row (the row-based check of the scripts is a locking read there, whose gap
/// lock collides with the next task's history insert).
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
pub(crate) fn complete_update(id_sql: &str, holder: &HolderSql, result_sql: &str) -> String {
    guarded_steps(&complete_set(result_sql), id_sql, holder, None).update
}

/// For a procedure's body: the holder of task `id_sql` into the local variable `var`, the
/// worker of a history row then written from values.
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
pub(crate) fn holder_into(id_sql: &str, var: &str) -> String {
    format!("SELECT claimed_by INTO {var} FROM tasks {BY_ID} WHERE id = {id_sql}")
}

pub(super) fn complete_set(result_sql: &str) -> String {
    format!(
        "status = '{}', result_json = {result_sql}, completed_at = NOW(6), lease_expires_at = NULL, \
         progress = 100, dedupe_lock = {}",
        COMPLETE.to,
        dedupe_released("")
    )
}

/// The task is completed under this holder: a complete took effect, now or before.
pub(crate) fn completed_by(id_sql: &str, holder: &HolderSql) -> String {
    format!(
        "EXISTS (SELECT 1 FROM tasks {BY_ID} WHERE {})",
        held_in(id_sql, holder, COMPLETE.to)
    )
}

pub(super) fn complete_history(holder: &HolderSql) -> HistoryRow {
    HistoryRow::once_per_lease(
        holder,
        &format!("t.status = '{}'", COMPLETE.to),
        change_sql(COMPLETE.change),
        "NULL".into(),
    )
}

pub struct CompleteAndClaimScript {
    pub script: Script,
    /// Rows the complete's guarded UPDATE changed.
    pub update: usize,
    /// The newly claimed tasks (none when the complete failed).
    pub claimed: usize,
    /// With `recover`: the ids of the limited types ([`LIMITED_TYPES`]).
    pub limited: Option<usize>,
}

/// A worker's loop step in one transaction and one round trip: completes the task it holds
/// and, unless that failed (the task is not completed under this token, now or by an earlier
/// identical call), claims the next. One commit for both.
pub fn complete_and_claim(
    id: i64,
    token: &str,
    result_text: &str,
    request: &ClaimRequest<'_>,
    recover: bool,
    history_on: bool,
) -> CompleteAndClaimScript {
    let mut script = claim_transaction(request, recover, history_on);
    let holder = Holder::Token(token).sql();
    let update = push_guarded(
        &mut script,
        &complete_set(&sql::text(result_text)),
        id,
        &holder,
        history_on.then(|| complete_history(&holder)),
    );
    let completed = completed_by(&sql::int(id), &holder);
    let claimed = push_claim(&mut script, request, history_on, Some(&completed));
    let limited = recover.then(|| script.push(LIMITED_TYPES.into()));
    CompleteAndClaimScript {
        script: script.finish(),
        update,
        claimed,
        limited,
    }
}

/// How a failure ends: `retry` asks for another attempt (granted while attempts remain), after
/// `delay_sql` microseconds (an SQL expression over the row, built from numbers only).
pub fn fail(
    id: i64,
    holder: Holder<'_>,
    message: &str,
    retry: bool,
    delay_sql: &str,
    history_on: bool,
) -> GuardedScript {
    let will_retry = format!("({retry} AND attempts < max_attempts)");
    guarded(
        &format!(
            "run_at = IF({will_retry}, NOW(6) + INTERVAL {delay_sql} MICROSECOND, run_at), \
             completed_at = IF({will_retry}, NULL, NOW(6)), \
             dedupe_lock = IF({will_retry}, dedupe_lock, {}), \
             status = IF({will_retry}, '{}', '{}'), \
             error_message = {}, lease_expires_at = NULL",
            dedupe_released(""),
            FAIL_RETRY.to,
            FAIL_DEAD.to,
            sql::text(message)
        ),
        id,
        holder,
        history_on.then(|| {
            HistoryRow::once_per_lease(
                &holder.sql(),
                &format!("t.status IN ('{}', '{}')", FAIL_RETRY.to, FAIL_DEAD.to),
                format!(
                    "IF(t.status = '{}', '{}', '{}')",
                    FAIL_RETRY.to,
                    FAIL_RETRY.change.as_str(),
                    FAIL_DEAD.change.as_str()
                ),
                sql::text(message),
            )
        }),
        Some("attempts, max_attempts, DATE_FORMAT(run_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS run_at"),
    )
}

pub fn heartbeat(
    id: i64,
    holder: Holder<'_>,
    lease_seconds: u32,
    progress: Option<u8>,
    note: Option<&str>,
    history_on: bool,
) -> GuardedScript {
    // The history row's message: the progress, the caller's note, or both.
    let message = match (progress, note) {
        (Some(p), Some(note)) => Some(format!("progress {p}%: {note}")),
        (Some(p), None) => Some(format!("progress {p}%")),
        (None, Some(note)) => Some(note.to_string()),
        (None, None) => None,
    };
    guarded(
        &format!(
            "lease_expires_at = NOW(6) + INTERVAL {} SECOND, progress = {}",
            sql::int(lease_seconds.into()),
            progress.map_or("progress".to_string(), |p| sql::int(p.into()))
        ),
        id,
        holder,
        // Progress rows are notes within one lease, any number of them, not a transition:
        // ROW_COUNT() (the UPDATE's) decides, and a late-delivered heartbeat may lose its note.
        message.filter(|_| history_on).map(|message| HistoryRow {
            change: change_sql(HEARTBEAT.change),
            message: sql::text(&message),
            written_when: "ROW_COUNT() > 0".into(),
        }),
        Some(
            "DATE_FORMAT(lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, progress",
        ),
    )
}

/// Gives the task back without counting the attempt. The token stays on the row so that a
/// repeated release is recognised; it no longer guards anything, since the task is pending.
pub fn release(id: i64, token: &str, history_on: bool) -> GuardedScript {
    let holder = Holder::Token(token);
    guarded(
        &format!(
            "status = '{}', attempts = GREATEST(attempts - 1, 0), run_at = NOW(6), lease_expires_at = NULL",
            RELEASE.to
        ),
        id,
        holder,
        history_on.then(|| {
            HistoryRow::once_per_lease(
                &holder.sql(),
                &format!("t.status = '{}'", RELEASE.to),
                change_sql(RELEASE.change),
                "NULL".into(),
            )
        }),
        None,
    )
}

pub struct CompleteBatchScript {
    pub script: Script,
    /// `id, status, lease_token, finished_by_this_call` per distinct id.
    pub state: usize,
}

/// Completes every `(id, token, result)` whose token holds its task, in one transaction.
pub fn complete_batch(items: &[(i64, &str, String)], history_on: bool) -> CompleteBatchScript {
    let mut script = Script::new(true);
    // One instant for the whole batch marks the rows this call finished.
    script.push("SET @tm_now = NOW(6)".into());
    let ids: Vec<i64> = items.iter().map(|i| i.0).collect();
    let ids = sql::int_list(&ids);
    let tokens: String = items
        .iter()
        .map(|(id, token, _)| format!(" WHEN {} THEN {}", sql::int(*id), sql::text(token)))
        .collect();
    let results: String = items
        .iter()
        .map(|(id, _, result)| format!(" WHEN {} THEN {}", sql::int(*id), sql::text(result)))
        .collect();
    script.push(format!(
        "UPDATE tasks {BY_ID} SET status = '{}', result_json = CASE id{results} END, completed_at = @tm_now, \
         lease_expires_at = NULL, progress = 100, dedupe_lock = {} \
         WHERE id IN ({ids}) AND {} AND lease_token = CASE id{tokens} END",
        COMPLETE.to,
        dedupe_released(""),
        from_clause(&COMPLETE)
    ));
    let finished_now = format!("t.status = '{}' AND t.completed_at = @tm_now", COMPLETE.to);
    if history_on {
        script.push(history(
            &change_sql(COMPLETE.change),
            TASK_HOLDER,
            "NULL",
            &format!("FROM tasks t {BY_ID} WHERE t.id IN ({ids}) AND {finished_now}"),
        ));
    }
    let state = script.push(format!(
        "SELECT t.id, t.status, t.lease_token, COALESCE({finished_now}, 0) AS finished_now FROM tasks t {BY_ID} WHERE t.id IN ({ids})"
    ));
    CompleteBatchScript {
        script: script.finish(),
        state,
    }
}

/// The delay of a retry, in microseconds, as an SQL expression over the failing task's row:
/// exponential backoff `base * 2^(attempts-1)` capped at `max` seconds, times `jitter`.
pub fn backoff_micros(base_seconds: u32, max_seconds: u32, jitter: f64) -> String {
    format!(
        "CAST(LEAST({}, {} * POW(2, LEAST(GREATEST(attempts - 1, 0), 40))) * {} * 1000000 AS SIGNED)",
        sql::int(max_seconds.into()),
        sql::int(base_seconds.into()),
        sql::float(jitter)
    )
}

/// A fixed retry delay, in microseconds.
pub fn fixed_delay_micros(seconds: f64) -> String {
    sql::int((seconds * 1e6) as i64)
}
