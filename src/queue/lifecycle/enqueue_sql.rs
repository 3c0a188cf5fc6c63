//! Enqueue: one task (the INSERT gated on its type row, and its `created` history row) and a
//! batch (one JSON document turned back into rows), and the reads after an INSERT that created
//! nothing.

use super::*;
use crate::sql;

/// One row to insert.
pub struct NewTask<'a> {
    pub type_id: i64,
    pub params_text: &'a str,
    pub key: &'a str,
    pub scope: &'static str,
    pub priority: i32,
    pub max_attempts: u32,
    pub run_at: Option<&'a str>,
    pub delay_micros: i64,
}

/// Result-set positions of an enqueue script.
pub struct EnqueueScript {
    pub script: Script,
    /// The (first) INSERT. For one task its changed-row count says whether it created the task
    /// (1) and its insert id is the task's id; only when it created nothing does the caller
    /// run [`enqueue_lookup`], in a second round trip (a duplicate, a refused type, a repeat).
    pub insert: usize,
    /// For a batch, [`holders`] read in the same script.
    pub holders: Option<usize>,
}

/// Result-set positions of an enqueue's lookup.
pub struct EnqueueLookup {
    /// [`holders`].
    pub rows: usize,
    /// [`type_states`].
    pub types: usize,
}

/// Inserts the tasks only when every type is still active at the version the params were
/// validated against (checked inside the INSERT, no locking read); a key already held by
/// another task makes its row a no-op. `token` marks the rows this call created: a repeat
/// after a lost connection recognises them.
///
/// One task (the common call) is an INSERT and, with history on, its `created` row keyed by
/// `LAST_INSERT_ID()` and written only when the INSERT created the task (`ROW_COUNT() = 1`,
/// which a duplicate, a refused type and a late repeat all leave at 0). A batch writes the
/// history rows of the tasks its INSERT created, and reads back which row holds each key in
/// the same script (the INSERT is all or nothing).
pub fn enqueue(
    tasks: &[NewTask<'_>],
    types: &[(i64, &str)],
    token: &str,
    history_on: bool,
) -> EnqueueScript {
    // One INSERT with no history row commits by itself; with history they share a transaction.
    let mut script = Script::new(history_on);
    if let ([task], [(_, version)]) = (tasks, types) {
        let steps = enqueue_one_steps(
            &task.sql(token),
            &sql::text(version),
            "LAST_INSERT_ID()",
            "ROW_COUNT() = 1",
        );
        let insert = script.push(steps.insert);
        if history_on {
            script.push(steps.history);
        }
        return EnqueueScript {
            script: script.finish(),
            insert,
            holders: None,
        };
    }
    let gate = types
        .iter()
        .map(|(id, version)| format!("({})", open_type(&sql::int(*id), &sql::text(version))))
        .collect::<Vec<_>>()
        .join(" OR ");
    // The rows travel as one JSON document, kept in a variable for the script's statements,
    // that JSON_TABLE turns back into rows: one literal for the server to parse, where a UNION
    // of one SELECT per row and lists of every key took it half again as long.
    script.push(format!(
        "SET @tm_rows = {}",
        sql::text(&rows_document(tasks))
    ));
    // The highest id before the INSERT: see the history rows below.
    if history_on {
        // SELECT ... INTO, not SET @v = (SELECT ...): the server makes the latter a locking read.
        script.push("SELECT (SELECT COALESCE(MAX(id), 0) FROM tasks) INTO @tm_before".into());
    }
    let listed = NewTaskSql {
        type_id: "v.type_id".into(),
        params: "v.params_json".into(),
        key: "v.dedupe_key".into(),
        scope: "v.dedupe_scope".into(),
        priority: "v.priority".into(),
        max_attempts: "v.max_attempts".into(),
        run_at: "v.run_at".into(),
        delay_micros: "v.delay_micros".into(),
        token: sql::text(token),
    };
    let insert = script.push(format!(
        "{} FROM JSON_TABLE(@tm_rows, '$[*]' COLUMNS (type_id BIGINT PATH '$.t', \
         params_json LONGTEXT CHARACTER SET utf8mb4 PATH '$.p', {LISTED_KEY}, \
         dedupe_scope VARCHAR(10) PATH '$.s', priority INT PATH '$.o', \
         max_attempts INT PATH '$.m', run_at VARCHAR(32) PATH '$.r', \
         delay_micros BIGINT PATH '$.d')) AS v \
         WHERE (SELECT COUNT(*) FROM task_types WHERE {gate}) = {} {ON_DUPLICATE}",
        insert_select(&listed),
        types.len()
    ));
    // Each key of the call once (a batch may hold one task twice), found by the unique index.
    let keys = format!(
        "FROM (SELECT DISTINCT dedupe_key FROM JSON_TABLE(@tm_rows, '$[*]' COLUMNS ({LISTED_KEY})) \
         AS listed) AS v STRAIGHT_JOIN tasks t {BY_KEY} ON t.dedupe_lock = v.dedupe_key"
    );
    let token = sql::text(token);
    if history_on {
        // Every task the INSERT created has an id above the highest one before it (the counter
        // only grows; rows not yet visible only widen the range), so its new tasks are a
        // primary-key range read with the call's token: a sequential read of the rows just
        // written, where finding each key by the unique index took half the batch's time. The
        // ids are read first, by a consistent read: an INSERT ... SELECT would lock the
        // range, other producers' new rows in it too, and deadlock with them. A repeat after a
        // lost connection whose first run committed creates nothing: its tasks, and their
        // history rows, are below the range.
        script.push(format!(
            "SELECT (SELECT JSON_ARRAYAGG(id) FROM tasks FORCE INDEX (PRIMARY) \
             WHERE id > @tm_before AND enqueue_token = {token}) INTO @tm_created"
        ));
        script.push(history(
            &change_sql(ENQUEUE.change),
            "NULL",
            "NULL",
            "FROM JSON_TABLE(@tm_created, '$[*]' COLUMNS (id BIGINT PATH '$')) AS t",
        ));
    }
    let holders = script.push(format!(
        "SELECT t.id, t.dedupe_lock, t.status, COALESCE(t.enqueue_token = {token}, 0) AS created_by_this_call {keys}"
    ));
    // The document and the list of new ids may be large: the connection does not keep them
    // (after a failed script the next batch overwrites them).
    script.push(if history_on {
        "SET @tm_rows = NULL, @tm_created = NULL".into()
    } else {
        "SET @tm_rows = NULL".into()
    });
    EnqueueScript {
        script: script.finish(),
        insert,
        holders: Some(holders),
    }
}

/// A key in the rows document, in the column's collation so that it finds rows by the index.
pub(super) const LISTED_KEY: &str =
    "dedupe_key VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci PATH '$.k'";

/// The tasks of a batch as the JSON document its INSERT reads with JSON_TABLE (a missing
/// `r` is NULL: run at now plus `d` microseconds). The document is data inside one hex literal.
pub(super) fn rows_document(tasks: &[NewTask<'_>]) -> String {
    let rows: Vec<serde_json::Value> = tasks
        .iter()
        .map(|task| {
            let mut row = serde_json::json!({"t": task.type_id, "p": task.params_text,
                "k": task.key, "s": task.scope, "o": task.priority, "m": task.max_attempts,
                "d": task.delay_micros});
            if let Some(run_at) = task.run_at {
                row["r"] = run_at.into();
            }
            row
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// Which row holds each key of the call now, and the types' states: what an enqueue of one
/// task reads when its INSERT created nothing, in one round trip.
pub fn enqueue_lookup(
    tasks: &[NewTask<'_>],
    types: &[(i64, &str)],
    token: &str,
) -> (Script, EnqueueLookup) {
    let mut script = Script::new(false);
    let lookup = EnqueueLookup {
        types: script.push(type_states(tasks, types, token)),
        rows: script.push(holders(tasks, token)),
    };
    (script.finish(), lookup)
}

/// The tasks of the call that this call (any run of it) created.
pub(super) fn created_by(tasks: &[NewTask<'_>], token: &str) -> String {
    format!(
        "t.dedupe_lock IN ({}) AND t.enqueue_token = {}",
        sql::text_list(tasks.iter().map(|t| t.key)),
        sql::text(token)
    )
}

/// `id, version, is_active` of every type of the call, when the call created no task: they
/// tell a refused write from a duplicate.
pub fn type_states(tasks: &[NewTask<'_>], types: &[(i64, &str)], token: &str) -> String {
    let type_ids: Vec<i64> = types.iter().map(|t| t.0).collect();
    format!(
        "SELECT id, version, is_active FROM task_types WHERE id IN ({}) \
         AND NOT EXISTS (SELECT 1 FROM tasks t {BY_KEY} WHERE {})",
        sql::int_list(&type_ids),
        created_by(tasks, token)
    )
}

/// `id, dedupe_lock, status, created_by_this_call` for every key of the call.
pub(super) fn holders(tasks: &[NewTask<'_>], token: &str) -> String {
    format!(
        "SELECT id, dedupe_lock, status, COALESCE(enqueue_token = {}, 0) AS created_by_this_call FROM tasks {BY_KEY} \
         WHERE dedupe_lock IN ({})",
        sql::text(token),
        sql::text_list(tasks.iter().map(|t| t.key))
    )
}

/// The statements of an enqueue of one task.
pub(crate) struct EnqueueOneSteps {
    /// The INSERT, gated on the type row itself; a duplicate's id becomes `LAST_INSERT_ID()`.
    pub insert: String,
    /// The `created` history row, written only when the INSERT created the task.
    pub history: String,
}

/// One task's enqueue, its values as SQL; `version_sql` is the type version it was validated
/// against; `id_sql` and `created_sql` say, after the INSERT, which task holds the key and
/// whether the INSERT created it.
pub(crate) fn enqueue_one_steps(
    task: &NewTaskSql,
    version_sql: &str,
    id_sql: &str,
    created_sql: &str,
) -> EnqueueOneSteps {
    EnqueueOneSteps {
        insert: format!(
            "{} FROM task_types \
             WHERE {} \
             ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id)",
            insert_select(task),
            open_type(&task.type_id, version_sql)
        ),
        history: format!(
            "INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) \
             SELECT {id_sql}, {}, NULL, NULL, NOW(6) FROM DUAL WHERE {created_sql}",
            change_sql(ENQUEUE.change)
        ),
    }
}

/// The type gate of an enqueue, over `task_types`: the type is active and still has the version
/// the params were validated against, compared byte for byte (the column's collation would call
/// `V1` and `v1` the same version).
pub(super) fn open_type(type_id_sql: &str, version_sql: &str) -> String {
    format!("id = {type_id_sql} AND version COLLATE utf8mb4_bin = {version_sql} AND is_active = 1")
}

/// A key another task holds makes the row a no-op.
pub(super) const ON_DUPLICATE: &str = "ON DUPLICATE KEY UPDATE tasks.id = tasks.id";

impl NewTask<'_> {
    /// Its values as literals, with the enqueue token `token`.
    pub(crate) fn sql(&self, token: &str) -> NewTaskSql {
        NewTaskSql {
            type_id: sql::int(self.type_id),
            params: sql::text(self.params_text),
            key: sql::text(self.key),
            scope: sql::text(self.scope),
            priority: sql::int(self.priority.into()),
            max_attempts: sql::int(self.max_attempts.into()),
            run_at: sql::opt_text(self.run_at),
            delay_micros: sql::int(self.delay_micros),
            token: sql::text(token),
        }
    }
}

/// A new task's values as SQL: literals in a script, parameters in a stored procedure.
pub(crate) struct NewTaskSql {
    pub type_id: String,
    pub params: String,
    pub key: String,
    pub scope: String,
    pub priority: String,
    pub max_attempts: String,
    /// A time, or NULL for now plus `delay_micros`.
    pub run_at: String,
    pub delay_micros: String,
    pub token: String,
}

/// `INSERT INTO tasks (...) SELECT ...` of one new task's values, each named by its column;
/// the caller adds the FROM that gates it.
pub(super) fn insert_select(task: &NewTaskSql) -> String {
    let values = new_row(task)
        .iter()
        .zip(INSERT_COLUMNS)
        .map(|(value, column)| format!("{value} AS {column}"))
        .collect::<Vec<_>>();
    format!(
        "INSERT INTO tasks ({}) SELECT {}",
        INSERT_COLUMNS.join(", "),
        values.join(", ")
    )
}

/// The columns a new task's INSERT writes.
const INSERT_COLUMNS: [&str; 10] = [
    "type_id",
    "status",
    "params_json",
    "dedupe_key",
    "dedupe_lock",
    "dedupe_scope",
    "priority",
    "max_attempts",
    "run_at",
    "enqueue_token",
];

/// A new task's values in the order of [`INSERT_COLUMNS`].
fn new_row(task: &NewTaskSql) -> [String; 10] {
    [
        task.type_id.clone(),
        format!("'{}'", ENQUEUE.to),
        task.params.clone(),
        task.key.clone(),
        task.key.clone(),
        task.scope.clone(),
        task.priority.clone(),
        task.max_attempts.clone(),
        format!(
            "COALESCE(CAST({} AS DATETIME(6)), NOW(6) + INTERVAL {} MICROSECOND)",
            task.run_at, task.delay_micros
        ),
        task.token.clone(),
    ]
}

/// A stored procedure's enqueue of one task: the INSERT from values, naming the type and the
/// version its params were validated against as the task's gate (`gate_type_id`,
/// `gate_version`). Its foreign key references `task_types (id, active_version)`, a key that
/// exists only while the type is active at that version, compared byte for byte: the check
/// InnoDB makes on every insert refuses a task of a deactivated or replaced type (error 1452),
/// and its shared lock on the key holds a concurrent change of the type until the enqueue
/// commits, where a read of the type row cost a statement of its own. An INSERT of one row
/// from values takes the AUTO-INC counter under a short latch (an `INSERT ... SELECT` holds the
/// table's AUTO-INC lock for the whole statement, which queued concurrent producers).
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
pub(crate) fn enqueue_one_keyed(task: &NewTaskSql, version_sql: &str) -> String {
    format!(
        "INSERT INTO tasks ({}, gate_type_id, gate_version) VALUES ({}, {}, {version_sql}) \
         ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id)",
        INSERT_COLUMNS.join(", "),
        new_row(task).join(", "),
        task.type_id
    )
}
