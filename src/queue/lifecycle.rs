//! The rules of a task's life, in one place: its statuses, the transitions between them with
//! the history kind each writes, the lease guard, the dedupe-release rule, and the SQL script
//! of every step. Enqueue, claim and finish validate their input, call a script from here in
//! one round trip, and read its answer.
//!
//! ```text
//!   enqueue ─► pending ──claim──► claimed ──complete──► completed
//!                 ▲  ▲              │  │
//!                 │  └─fail(retry)──┘  ├──fail(dead)──────► failed ──retry──► pending
//!                 │  └─lease expired───┤  (attempts left)
//!                 │  └─release─────────┘
//!                 └──────── lease expired (no attempts left) ─► failed
//!   pending | claimed ──cancel──► cancelled ──retry──► pending
//! ```
//!
//! A script is sent as one multi-statement text: `START TRANSACTION; ...; COMMIT`, or a single
//! write that commits by itself and the reads around it. Values go in only through
//! [`crate::sql`]. History rows are written by the same script, so a change and
//! its history commit together. Every guarded UPDATE re-checks the status it expects, so a
//! repeated or misread step can never move a task that is not in that status.

use crate::error::Result;
use crate::pool::{Conn, ScriptResult, unknown_outcome};
use crate::sql;
use std::fmt;

/// A task's status, as stored in `tasks.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Claimed,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Claimed,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Claimed => "claimed",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a `task_history` row records (`status_change`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Claimed,
    Progress,
    Completed,
    Retrying,
    Failed,
    LeaseExpired,
    Released,
    Cancelled,
    Retried,
}

impl Change {
    pub const fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Claimed => "claimed",
            Change::Progress => "progress",
            Change::Completed => "completed",
            Change::Retrying => "retrying",
            Change::Failed => "failed",
            Change::LeaseExpired => "lease_expired",
            Change::Released => "released",
            Change::Cancelled => "cancelled",
            Change::Retried => "retried",
        }
    }
}

/// One edge of the life cycle: from which statuses, to which, and the history it writes.
#[derive(Debug, Clone, Copy)]
pub struct Transition {
    pub name: &'static str,
    /// Statuses the guarded UPDATE accepts (empty: the task is new).
    pub from: &'static [Status],
    pub to: Status,
    pub change: Change,
}

use Status::*;

pub const ENQUEUE: Transition = t("enqueue", &[], Pending, Change::Created);
pub const CLAIM: Transition = t("claim", &[Pending], Claimed, Change::Claimed);
pub const HEARTBEAT: Transition = t("heartbeat", &[Claimed], Claimed, Change::Progress);
pub const COMPLETE: Transition = t("complete", &[Claimed], Completed, Change::Completed);
pub const FAIL_RETRY: Transition = t("fail, will retry", &[Claimed], Pending, Change::Retrying);
pub const FAIL_DEAD: Transition = t("fail, dead", &[Claimed], Failed, Change::Failed);
pub const EXPIRE_RETRY: Transition = t("lease expired", &[Claimed], Pending, Change::LeaseExpired);
pub const EXPIRE_DEAD: Transition = t(
    "lease expired, dead",
    &[Claimed],
    Failed,
    Change::LeaseExpired,
);
pub const RELEASE: Transition = t("release", &[Claimed], Pending, Change::Released);
pub const CANCEL: Transition = t("cancel", &[Pending, Claimed], Cancelled, Change::Cancelled);
pub const RETRY: Transition = t("retry", &[Failed, Cancelled], Pending, Change::Retried);

/// Every transition there is; a status change not listed here does not happen. The steps use
/// the constants above; the table is what a reader (and the test below) checks them against.
#[cfg_attr(not(test), allow(dead_code))]
pub const TRANSITIONS: &[Transition] = &[
    ENQUEUE,
    CLAIM,
    HEARTBEAT,
    COMPLETE,
    FAIL_RETRY,
    FAIL_DEAD,
    EXPIRE_RETRY,
    EXPIRE_DEAD,
    RELEASE,
    CANCEL,
    RETRY,
];

const fn t(name: &'static str, from: &'static [Status], to: Status, change: Change) -> Transition {
    Transition {
        name,
        from,
        to,
        change,
    }
}

/// The dedupe rule, as the new value of `dedupe_lock` when a task leaves `pending`/`claimed`
/// for good: an `active`-scope key stops blocking; an `always`-scope key blocks forever.
/// `alias` is the table's prefix in the statement (`""` or `"t."`).
fn dedupe_released(alias: &str) -> String {
    format!("IF({alias}dedupe_scope = 'active', NULL, {alias}dedupe_lock)")
}

/// Who may change a claimed task: the holder of its current lease token (fenced: a task
/// claimed again has a new token), or, for callers that have no token (the original system's
/// workers), the worker id that claimed it, as the original checked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder<'a> {
    Token(&'a str),
    Worker(&'a str),
}

impl Holder<'_> {
    /// The column that names the holder of a task.
    pub fn column(&self) -> &'static str {
        match self {
            Holder::Token(_) => "lease_token",
            Holder::Worker(_) => "claimed_by",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Holder::Token(v) | Holder::Worker(v) => v,
        }
    }

    /// The holder in a statement, its value as a literal.
    fn sql(&self) -> HolderSql {
        HolderSql {
            column: self.column(),
            value: sql::text(self.value()),
        }
    }
}

/// A holder in a statement: its column and an SQL expression for its value (a literal written
/// by the encoder, or the parameter of a stored procedure that carries it).
pub(crate) struct HolderSql {
    pub column: &'static str,
    pub value: String,
}

impl HolderSql {
    /// `<alias><column> = <value>`; `alias` is `""` or `"t."`.
    fn matches(&self, alias: &str) -> String {
        format!("{alias}{} = {}", self.column, self.value)
    }
}

/// The lease guard: only the holder of a claimed task may change it. `id_sql` is the task's id
/// as SQL.
fn lease_guard(id_sql: &str, holder: &HolderSql) -> String {
    held_in(id_sql, holder, Claimed)
}

/// The task is in `status` under this holder.
fn held_in(id_sql: &str, holder: &HolderSql, status: Status) -> String {
    format!(
        "id = {id_sql} AND {} AND status = '{status}'",
        holder.matches(""),
    )
}

/// The hint on every statement that names its tasks by id. Indexes that start with `status`
/// and end with `id` would serve `id = x AND status = y` too, and the optimizer picks them; the
/// primary key is the shortest path and locks the one row only.
///
/// Every statement that locks rows names its index for the same reason: a locking read locks
/// each row it examines, and with statistics that lag behind a bulk change the optimizer has
/// been seen to scan an index of 200,000 finished tasks for a statement meant for a handful,
/// holding a lock on each: enough lock memory to bring the server down.
const BY_ID: &str = "FORCE INDEX (PRIMARY)";

/// The hint for rows found by their dedupe key.
const BY_KEY: &str = "FORCE INDEX (uq_tasks_dedupe_lock)";

/// `status IN (...)` for the statuses a transition starts from.
fn from_clause(transition: &Transition) -> String {
    let list: Vec<String> = transition.from.iter().map(|s| format!("'{s}'")).collect();
    format!("status IN ({})", list.join(","))
}

/// A script: statements sent together, with the index of each one's result set.
pub struct Script {
    statements: Vec<String>,
    /// Whether its writes run in one transaction (else it is a single write that commits by
    /// itself).
    transaction: bool,
}

impl Script {
    fn new(transaction: bool) -> Script {
        let mut script = Script {
            statements: Vec::new(),
            transaction,
        };
        if transaction {
            script.push("START TRANSACTION".into());
        }
        script
    }

    fn push(&mut self, statement: String) -> usize {
        self.statements.push(statement);
        self.statements.len() - 1
    }

    /// A script of one CALL to a stored procedure that runs its own transaction: rolled back
    /// if the CALL fails half way.
    pub(crate) fn call(statement: String) -> Script {
        Script {
            statements: vec![statement],
            transaction: true,
        }
    }

    /// Ends the script: COMMIT when it began a transaction.
    fn finish(mut self) -> Script {
        if self.transaction {
            self.push("COMMIT".into());
        }
        self
    }

    pub fn text(&self) -> String {
        self.statements.join(";\n")
    }

    /// The statements, one by one.
    pub fn statements(&self) -> &[String] {
        &self.statements
    }

    /// Sends the script in one round trip. A broken connection leaves the outcome unknown: the
    /// script may have committed.
    pub fn run(&self, conn: &mut Conn<'_>) -> Result<ScriptResult> {
        conn.script(&self.text(), self.transaction)
            .map_err(unknown_outcome)
    }
}

/// History rows for the tasks `rows_sql` selects (a `FROM ... WHERE ...` over `tasks t`);
/// `worker_sql` names the worker (`t.claimed_by`: the task's holder).
fn history(change_sql: &str, worker_sql: &str, message_sql: &str, rows_sql: &str) -> String {
    format!(
        "INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) \
         SELECT t.id, {change_sql}, {worker_sql}, {message_sql}, NOW(6) {rows_sql}"
    )
}

/// The holder of the task, as [`history`]'s worker.
const TASK_HOLDER: &str = "t.claimed_by";

fn change_sql(change: Change) -> String {
    format!("'{}'", change.as_str())
}

/// Tasks that a locking SELECT earlier in the same script chose and kept in a user variable:
/// one id (a claim of one task, the hot path, then plain primary-key statements follow) or a
/// JSON array of ids, each later found by primary key through JSON_TABLE.
pub(crate) struct Picked {
    /// `@name` (a user variable, in a script) or a stored procedure's local variable.
    var: &'static str,
    many: bool,
}

impl Picked {
    /// One task, kept in `var`.
    pub(crate) fn one(var: &'static str) -> Picked {
        Picked { var, many: false }
    }

    /// The statement that locks up to `limit` of `candidates` (`FROM tasks WHERE ... ORDER BY
    /// ...`), skipping rows others hold, and remembers their ids. Either form always yields one
    /// row, so the variable is NULL when nothing was found.
    ///
    /// With a `guard` (an SQL condition), nothing is locked or picked unless it holds: IF
    /// evaluates only the branch it takes.
    fn pick(&self, candidates: &str, limit: u32, guard: Option<&str>) -> String {
        let ids = if self.many {
            format!(
                "(SELECT JSON_ARRAYAGG(id) FROM (SELECT id {candidates} LIMIT {} \
                 FOR UPDATE SKIP LOCKED) AS picked)",
                sql::int(limit.into())
            )
        } else {
            format!("(SELECT id {candidates} LIMIT 1 FOR UPDATE SKIP LOCKED)")
        };
        match guard {
            Some(condition) => format!("SELECT IF({condition}, {ids}, NULL) INTO {}", self.var),
            None => format!("SELECT {ids} INTO {}", self.var),
        }
    }

    /// The picked tasks as `t`, for UPDATE and SELECT, always found by primary key. STRAIGHT_JOIN
    /// and the forced index keep the optimizer from scanning `tasks` instead of looking each id
    /// up.
    fn tasks(&self) -> String {
        if self.many {
            format!(
                "JSON_TABLE({}, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed \
                 STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id",
                self.var
            )
        } else {
            // A status-and-id index would serve `id = @x AND status = ...` as well; the
            // primary key is the shortest path and the one every step takes.
            format!("tasks t {BY_ID}")
        }
    }

    /// The condition that starts every WHERE over [`Picked::tasks`].
    fn condition(&self) -> String {
        if self.many {
            "TRUE".into()
        } else {
            format!("t.id = {}", self.var)
        }
    }

    /// `FROM ... WHERE <picked> AND <more>`.
    fn rows_where(&self, more: &str) -> String {
        format!(
            "FROM {} WHERE {} AND {more}",
            self.tasks(),
            self.condition()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// enqueue

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
/// which a duplicate, a refused type and a late repeat all leave at 0). A batch writes its
/// history rows for the tasks it created that have none yet, and reads back which row holds
/// each key in the same script (the INSERT is all or nothing).
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
        .map(|(id, version)| {
            format!(
                "(id = {} AND {} AND is_active = 1)",
                sql::int(*id),
                same_version(&sql::text(version))
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    // The rows travel as one JSON document, kept in a variable for the script's statements,
    // that JSON_TABLE turns back into rows: one literal for the server to parse, where a UNION
    // of one SELECT per row and lists of every key took it half again as long.
    script.push(format!(
        "SET @tm_rows = {}",
        sql::text(&rows_document(tasks))
    ));
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
        "{INSERT_TASK} SELECT {} FROM JSON_TABLE(@tm_rows, '$[*]' COLUMNS (type_id BIGINT PATH '$.t', \
         params_json LONGTEXT CHARACTER SET utf8mb4 PATH '$.p', {LISTED_KEY}, \
         dedupe_scope VARCHAR(10) PATH '$.s', priority INT PATH '$.o', \
         max_attempts INT PATH '$.m', run_at VARCHAR(32) PATH '$.r', \
         delay_micros BIGINT PATH '$.d')) AS v \
         WHERE (SELECT COUNT(*) FROM task_types WHERE {gate}) = {} {ON_DUPLICATE}",
        new_row_values(&listed),
        types.len()
    ));
    // Each key of the call once (a batch may hold one task twice), found by the unique index.
    let keys = format!(
        "FROM (SELECT DISTINCT dedupe_key FROM JSON_TABLE(@tm_rows, '$[*]' COLUMNS ({LISTED_KEY})) \
         AS listed) AS v STRAIGHT_JOIN tasks t {BY_KEY} ON t.dedupe_lock = v.dedupe_key"
    );
    let token = sql::text(token);
    if history_on {
        script.push(history(
            &change_sql(ENQUEUE.change),
            TASK_HOLDER,
            "NULL",
            &format!(
                "{keys} WHERE t.enqueue_token = {token} AND NOT EXISTS (SELECT 1 FROM task_history h \
                 WHERE h.task_id = t.id AND h.status_change = '{}')",
                ENQUEUE.change.as_str()
            ),
        ));
    }
    let holders = script.push(format!(
        "SELECT t.id, t.dedupe_lock, t.status, COALESCE(t.enqueue_token = {token}, 0) AS created_by_this_call {keys}"
    ));
    // The document may be large: the connection does not keep it (after a failed script the
    // next batch overwrites it).
    script.push("SET @tm_rows = NULL".into());
    EnqueueScript {
        script: script.finish(),
        insert,
        holders: Some(holders),
    }
}

/// A key in the rows document, in the column's collation so that it finds rows by the index.
const LISTED_KEY: &str =
    "dedupe_key VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci PATH '$.k'";

/// The tasks of a batch as the JSON document its INSERT reads with JSON_TABLE (a missing
/// `r` is NULL: run at now plus `d` microseconds). The document is data inside one hex literal.
fn rows_document(tasks: &[NewTask<'_>]) -> String {
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
fn created_by(tasks: &[NewTask<'_>], token: &str) -> String {
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
fn holders(tasks: &[NewTask<'_>], token: &str) -> String {
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
            "{INSERT_TASK} SELECT {} FROM task_types \
             WHERE id = {} AND {} AND is_active = 1 \
             ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id)",
            new_row_values(task),
            task.type_id,
            same_version(version_sql)
        ),
        history: format!(
            "INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) \
             SELECT {id_sql}, {}, NULL, NULL, NOW(6) FROM DUAL WHERE {created_sql}",
            change_sql(ENQUEUE.change)
        ),
    }
}

/// The type row still has the version the params were validated against, compared byte for
/// byte (the column's collation would call `V1` and `v1` the same version).
fn same_version(version_sql: &str) -> String {
    format!("version COLLATE utf8mb4_bin = {version_sql}")
}

const INSERT_TASK: &str = "INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, \
     dedupe_scope, priority, max_attempts, run_at, enqueue_token)";

/// A key another task holds makes the row a no-op.
const ON_DUPLICATE: &str = "ON DUPLICATE KEY UPDATE tasks.id = tasks.id";

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

/// The values of one new task, in [`INSERT_TASK`]'s column order.
fn new_row_values(task: &NewTaskSql) -> String {
    format!(
        "{} AS type_id, '{}' AS status, {} AS params_json, {key} AS dedupe_key, {key} AS dedupe_lock, \
         {} AS dedupe_scope, {} AS priority, {} AS max_attempts, \
         COALESCE(CAST({} AS DATETIME(6)), NOW(6) + INTERVAL {} MICROSECOND) AS run_at, \
         {} AS enqueue_token",
        task.type_id,
        ENQUEUE.to,
        task.params,
        task.scope,
        task.priority,
        task.max_attempts,
        task.run_at,
        task.delay_micros,
        task.token,
        key = task.key,
    )
}

// ---------------------------------------------------------------------------------------------
// claim and lease recovery

/// What to claim.
#[derive(Clone, Copy)]
pub struct ClaimRequest<'a> {
    pub worker_id: &'a str,
    /// Only these type ids (`None`: any type).
    pub type_ids: Option<&'a [i64]>,
    pub limit: u32,
    pub lease_seconds: u32,
    /// Each lease token is `prefix.id`: known before the commit, so a repeat can find them.
    pub token_prefix: &'a str,
    /// The order tasks are handed out in.
    pub order: ClaimOrder,
    /// The `task_claim_timeout` setting, for tasks claimed by hand (see [`lease_ran_out`]).
    pub claim_timeout: u32,
}

/// The order a claim hands tasks out in. Each is one scan of an index that starts with
/// `status` (see migrate.rs), so no claim sorts the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClaimOrder {
    /// Highest priority first, then oldest (by id): the library's order.
    #[default]
    PriorityThenAge,
    /// By one column, ties broken by id in the same direction (the HTTP API's `sort_by`).
    By(SortColumn, bool),
}

/// The columns a claim can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    CreatedAt,
    Priority,
    Id,
    Attempts,
}

impl ClaimOrder {
    /// The index that serves this order (see migrate.rs): one scan of it finds the next
    /// runnable tasks. A claim for one type in the default order has its own index; other type
    /// filters are checked on the way.
    pub(crate) fn index(&self, type_ids: Option<&[i64]>) -> &'static str {
        match self {
            ClaimOrder::PriorityThenAge if matches!(type_ids, Some([_])) => "idx_tasks_type_claim",
            ClaimOrder::PriorityThenAge => "idx_tasks_claim",
            ClaimOrder::By(SortColumn::CreatedAt, _) => "idx_tasks_claim_by_created",
            ClaimOrder::By(SortColumn::Priority, _) => "idx_tasks_claim_by_priority",
            ClaimOrder::By(SortColumn::Id, _) => "idx_tasks_claim_by_id",
            ClaimOrder::By(SortColumn::Attempts, _) => "idx_tasks_claim_by_attempts",
        }
    }

    /// `ORDER BY` terms over the table alias `alias` (`""` or `"t."`).
    fn sql(&self, alias: &str) -> String {
        match self {
            ClaimOrder::PriorityThenAge => format!("{alias}priority DESC, {alias}id"),
            ClaimOrder::By(column, descending) => {
                let direction = if *descending { "DESC" } else { "ASC" };
                let column = match column {
                    SortColumn::CreatedAt => "created_at",
                    SortColumn::Priority => "priority",
                    SortColumn::Id => "id",
                    SortColumn::Attempts => "attempts",
                };
                if column == "id" {
                    format!("{alias}id {direction}")
                } else {
                    format!("{alias}{column} {direction}, {alias}id {direction}")
                }
            }
        }
    }
}

/// Columns of a claimed task, as [`claimed_rows`] and the claim script return them.
const CLAIMED_COLUMNS: &str = "t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, \
     DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token";

pub struct ClaimScript {
    pub script: Script,
    /// The claimed tasks ([`CLAIMED_COLUMNS`]), highest priority first, then oldest.
    pub claimed: usize,
}

/// Most expired leases a claim recovers on its way (the rest wait for the next call or for an
/// explicit recovery run).
pub const LAZY_RECOVERY_LIMIT: u32 = 100;

/// A transaction that claims, beginning with the lazy recovery of up to
/// [`LAZY_RECOVERY_LIMIT`] expired leases when `recover` asks for it.
fn claim_transaction(request: &ClaimRequest<'_>, recover: bool, history_on: bool) -> Script {
    let mut script = Script::new(true);
    if recover {
        recover_expired(
            &mut script,
            LAZY_RECOVERY_LIMIT,
            request.claim_timeout,
            history_on,
        );
    }
    script
}

/// Locks up to `limit` runnable tasks (skipping rows other claimers hold), leases them, and
/// returns them: one transaction, one round trip. With `recover`, it first recovers up to
/// [`LAZY_RECOVERY_LIMIT`] expired leases; recovery costs about as much as the claim itself,
/// so the caller asks for it only now and then, and when a claim without it came up short.
pub fn claim(request: &ClaimRequest<'_>, recover: bool, history_on: bool) -> ClaimScript {
    let mut script = claim_transaction(request, recover, history_on);
    let claimed = push_claim(&mut script, request, history_on, None);
    ClaimScript {
        script: script.finish(),
        claimed,
    }
}

/// Appends a claim to a script that began a transaction; returns the index of the claimed
/// rows. With a `guard`, the claim picks nothing unless the condition holds.
fn push_claim(
    script: &mut Script,
    request: &ClaimRequest<'_>,
    history_on: bool,
    guard: Option<&str>,
) -> usize {
    let type_filter = request.type_ids.map_or(String::new(), |ids| {
        format!("AND type_id IN ({})", sql::int_list(ids))
    });
    let picked = Picked {
        var: "@tm_picked",
        many: request.limit > 1,
    };
    let steps = claim_steps(
        &ClaimSql {
            index: request.order.index(request.type_ids),
            type_filter: &type_filter,
            order: request.order,
            limit: request.limit,
            worker: sql::text(request.worker_id),
            lease_seconds: sql::int(request.lease_seconds.into()),
            token_prefix: sql::text(request.token_prefix),
        },
        &picked,
        guard,
    );
    script.push(steps.pick);
    script.push(steps.lease);
    if history_on {
        script.push(steps.history);
    }
    script.push(steps.answer)
}

/// A claim's inputs as SQL: literals in a script, parameters in a stored procedure.
pub(crate) struct ClaimSql<'a> {
    /// The index that serves the order and filter ([`ClaimOrder::index`]).
    pub index: &'static str,
    /// `AND ...` limiting the types, or empty.
    pub type_filter: &'a str,
    pub order: ClaimOrder,
    pub limit: u32,
    pub worker: String,
    pub lease_seconds: String,
    pub token_prefix: String,
}

/// The statements of a claim, in the order they run.
pub(crate) struct ClaimSteps {
    /// Locks the next runnable tasks (skipping rows others hold) and remembers their ids.
    pub pick: String,
    /// Leases them.
    pub lease: String,
    /// Their `claimed` history rows.
    pub history: String,
    /// The claimed tasks ([`CLAIMED_COLUMNS`]) in the claim's order.
    pub answer: String,
}

pub(crate) fn claim_steps(
    claim: &ClaimSql<'_>,
    picked: &Picked,
    guard: Option<&str>,
) -> ClaimSteps {
    // Matches idx_tasks_claim (status, priority DESC, id) or idx_tasks_type_claim, or the
    // index of another claim order: no filesort.
    let pick = picked.pick(
        &format!(
            "FROM tasks FORCE INDEX ({}) WHERE {} AND run_at <= NOW(6) {} ORDER BY {}",
            claim.index,
            from_clause(&CLAIM),
            claim.type_filter,
            claim.order.sql("")
        ),
        claim.limit,
        guard,
    );
    let token = claim_token(&claim.token_prefix, "t.id");
    let lease = format!(
        "UPDATE {} SET t.status = '{}', t.attempts = t.attempts + 1, t.claimed_by = {}, \
         t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL {} SECOND, \
         t.lease_token = {token}, t.progress = 0 WHERE {} AND t.{}",
        picked.tasks(),
        CLAIM.to,
        claim.worker,
        claim.lease_seconds,
        picked.condition(),
        from_clause(&CLAIM),
    );
    let leased = picked.rows_where(&format!(
        "t.lease_token = {token} AND t.status = '{}'",
        CLAIM.to
    ));
    ClaimSteps {
        pick,
        lease,
        history: history(&change_sql(CLAIM.change), &claim.worker, "NULL", &leased),
        answer: format!(
            "SELECT {CLAIMED_COLUMNS} {leased} ORDER BY {}",
            claim.order.sql("t.")
        ),
    }
}

/// The tasks a claim with this token prefix holds: a repeated claim whose first run may have
/// committed returns these instead of claiming more.
pub fn claimed_rows(token_prefix: &str, order: ClaimOrder) -> String {
    format!(
        "SELECT {CLAIMED_COLUMNS} FROM tasks t WHERE t.status = '{}' AND t.lease_token LIKE {} \
         ORDER BY {}",
        CLAIM.to,
        claim_token(&sql::text(token_prefix), "'%'"),
        order.sql("t.")
    )
}

/// The lease token a claim with the prefix `prefix_sql` gives the task `id_sql` (SQL
/// expressions; `'%'` makes it a LIKE pattern for all of them). The explicit collation: a text
/// literal carries utf8mb4's default collation and the other literals the connection's, so
/// their CONCAT has none of its own, which a comparison with the column would refuse.
fn claim_token(prefix_sql: &str, id_sql: &str) -> String {
    format!("(CONCAT({prefix_sql}, '.', {id_sql}) COLLATE utf8mb4_unicode_ci)")
}

/// Whether the lease of the claimed task `alias` ran out. A task claimed by hand with plain
/// SQL (or by the original system) has no lease of ours: it runs out `claim_timeout` seconds
/// after `claimed_at`, the original's rule. Both forms are one range of idx_tasks_lease
/// (NULLs sort first).
fn lease_ran_out(alias: &str, claim_timeout: u32) -> String {
    format!(
        "({alias}lease_expires_at <= NOW(6) OR ({alias}lease_expires_at IS NULL AND \
         COALESCE({alias}claimed_at, {alias}updated_at) <= NOW(6) - INTERVAL {} SECOND))",
        sql::int(claim_timeout.into())
    )
}

/// Appends the recovery of up to `limit` expired leases: each counts as a failed attempt, back
/// to pending when attempts remain, else failed (EXPIRE_RETRY / EXPIRE_DEAD). SKIP LOCKED, so
/// concurrent recoverers and claimers never wait on each other or recover a task twice.
fn recover_expired(script: &mut Script, limit: u32, claim_timeout: u32, history_on: bool) {
    // Matches idx_tasks_lease (status, lease_expires_at).
    script.push(EXPIRED.pick(
        &format!(
            "FROM tasks FORCE INDEX (idx_tasks_lease) WHERE {} AND {} ORDER BY lease_expires_at",
            from_clause(&EXPIRE_RETRY),
            lease_ran_out("", claim_timeout)
        ),
        limit,
        None,
    ));
    let dead = "t.attempts >= t.max_attempts";
    script.push(format!(
        "UPDATE {} SET \
         t.completed_at = IF({dead}, NOW(6), NULL), \
         t.dedupe_lock = IF({dead}, {}, t.dedupe_lock), \
         t.error_message = CONCAT('lease expired during attempt ', t.attempts, ' of ', t.max_attempts), \
         t.run_at = NOW(6), t.lease_expires_at = NULL, \
         t.status = IF({dead}, '{}', '{}') \
         WHERE {} AND t.{} AND {}",
        EXPIRED.tasks(),
        dedupe_released("t."),
        EXPIRE_DEAD.to,
        EXPIRE_RETRY.to,
        EXPIRED.condition(),
        from_clause(&EXPIRE_RETRY),
        lease_ran_out("t.", claim_timeout),
    ));
    if history_on {
        script.push(history(
            &change_sql(EXPIRE_RETRY.change),
            TASK_HOLDER,
            &sql::text("lease expired: counted as a failed attempt"),
            &EXPIRED.rows_where("TRUE"),
        ));
    }
}

/// Expired leases picked by a recovery pass.
const EXPIRED: Picked = Picked {
    var: "@tm_expired",
    many: true,
};

/// A recovery run on its own (cron, operator): `recovered, failed` counts in `report`.
pub struct RecoveryScript {
    pub script: Script,
    pub report: usize,
}

pub fn recovery(limit: u32, claim_timeout: u32, history_on: bool) -> RecoveryScript {
    let mut script = Script::new(true);
    recover_expired(&mut script, limit, claim_timeout, history_on);
    let report = script.push(format!(
        "SELECT COUNT(*) AS recovered, COALESCE(SUM(t.status = '{}'), 0) AS failed {}",
        EXPIRE_DEAD.to,
        EXPIRED.rows_where("TRUE")
    ));
    RecoveryScript {
        script: script.finish(),
        report,
    }
}

// ---------------------------------------------------------------------------------------------
// a worker finishing what it holds

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

fn guarded(
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
fn push_guarded(
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
fn guarded_steps(
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
struct HistoryRow {
    /// The `status_change` expression.
    change: String,
    /// The `message` expression.
    message: String,
    /// A condition over the task `t` after the UPDATE that holds exactly when this step
    /// changed it. It is read from the row, not from ROW_COUNT(): a step whose text reaches
    /// the server late (after a partition) must not commit its change without its history.
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

/// The steps of a complete, with its inputs as SQL.
pub(crate) fn complete_steps(id_sql: &str, holder: &HolderSql, result_sql: &str) -> GuardedSteps {
    guarded_steps(
        &complete_set(result_sql),
        id_sql,
        holder,
        Some(complete_history(holder)),
    )
}

fn complete_set(result_sql: &str) -> String {
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

fn complete_history(holder: &HolderSql) -> HistoryRow {
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
    CompleteAndClaimScript {
        script: script.finish(),
        update,
        claimed,
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
    history_on: bool,
) -> GuardedScript {
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
        progress.filter(|_| history_on).map(|p| HistoryRow {
            change: change_sql(HEARTBEAT.change),
            message: sql::text(&format!("progress {p}%")),
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

// ---------------------------------------------------------------------------------------------
// retention: finished tasks leave the table, with their history

/// Statuses a task may be pruned in: finished for good (a manual retry is the only way back,
/// and a pruned task is gone).
pub const PRUNABLE: [Status; 3] = [Completed, Failed, Cancelled];

/// The task finished more than `older_than` seconds ago. Rows the original system finished
/// may have no `completed_at`; their last change stands in. One range of idx_tasks_finished
/// (status, completed_at): NULLs sort first.
fn finished_before(alias: &str, older_than: u64) -> String {
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
        "SELECT id FROM tasks FORCE INDEX (idx_tasks_finished) WHERE status = '{status}' AND {} \
         ORDER BY completed_at, id LIMIT {}",
        finished_before("", older_than),
        sql::int(limit.into())
    )
}

/// How many tasks in `statuses` a prune with this age would delete.
pub fn prune_count(statuses: &[Status], older_than: u64) -> String {
    let list: Vec<String> = statuses.iter().map(|s| format!("'{s}'")).collect();
    format!(
        "SELECT COUNT(*) FROM tasks WHERE status IN ({}) AND {}",
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

// ---------------------------------------------------------------------------------------------
// operator actions (locked first, then changed; see manage.rs)

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_reached_and_left_by_a_listed_transition() {
        for status in Status::ALL {
            assert!(
                TRANSITIONS.iter().any(|t| t.to == status),
                "{status} is never reached"
            );
            // A completed task is done for good; every other status has a way out.
            assert_eq!(
                TRANSITIONS.iter().any(|t| t.from.contains(&status)),
                status != Completed,
                "{status}"
            );
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        // Only a manual retry leaves a finished status.
        const FINISHED: &[Status] = &[Completed, Failed, Cancelled];
        for t in TRANSITIONS {
            if t.from.iter().any(|s| FINISHED.contains(s)) {
                assert_eq!(t.name, RETRY.name);
            }
        }
    }

    #[test]
    fn scripts_are_one_transaction_and_carry_caller_text_only_as_hex() {
        let hostile = "w'); DROP TABLE tasks; --";
        let claim_text = claim(
            &ClaimRequest {
                worker_id: hostile,
                type_ids: Some(&[1, 2]),
                limit: 5,
                lease_seconds: 30,
                token_prefix: "abc",
                order: ClaimOrder::By(SortColumn::CreatedAt, true),
                claim_timeout: 300,
            },
            true,
            true,
        )
        .script
        .text();
        let fail_text = fail(7, Holder::Token(hostile), hostile, true, "1000", true)
            .script
            .text();
        let by_worker = complete(7, Holder::Worker(hostile), hostile, true)
            .script
            .text();
        for text in [claim_text, fail_text, by_worker] {
            assert!(text.starts_with("START TRANSACTION;"));
            assert!(text.ends_with("COMMIT"));
            assert!(!text.contains("DROP TABLE"), "{text}");
        }
    }
}
