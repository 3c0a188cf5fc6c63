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

mod claim_sql;
mod enqueue_sql;
mod finish_sql;
mod flow_sql;
mod operator_sql;
mod read_sql;
mod statement_sql;
mod window_sql;

pub use claim_sql::*;
pub use enqueue_sql::*;
pub use finish_sql::*;
pub(crate) use flow_sql::*;
pub use operator_sql::*;
pub use read_sql::*;
pub use statement_sql::*;
pub use window_sql::*;

use crate::error::Result;
use crate::pool::{Conn, ScriptResult, unknown_outcome};
use crate::sql;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// A task's status, as stored in `tasks.status` and written in every answer.
///
/// It serializes as the lowercase word the database holds, so the JSON of an answer is the same
/// as when the field was a string:
///
/// ```
/// use taskmanager::Status;
///
/// assert_eq!(serde_json::to_string(&Status::Pending).unwrap(), r#""pending""#);
/// let back: Status = serde_json::from_str(r#""cancelled""#).unwrap();
/// assert_eq!(back, Status::Cancelled);
/// assert_eq!(Status::parse("claimed"), Some(Status::Claimed));
/// assert_eq!(Status::parse(""), None);
/// assert!(serde_json::from_str::<Status>(r#""Pending""#).is_err());
/// assert_eq!(Status::Failed, "failed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting to be claimed (once its `run_at` has come).
    Pending,
    /// Leased to a worker until its lease runs out.
    Claimed,
    /// Finished by its worker; final.
    Completed,
    /// Out of attempts, or failed without retry; a manual retry puts it back to pending.
    Failed,
    /// Cancelled by an operator; a manual retry puts it back to pending.
    Cancelled,
}

impl Status {
    /// Every status, in the order of a task's life.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Claimed,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];

    /// The word the database and the JSON hold (`"pending"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Claimed => "claimed",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// The status a word names, exactly as [`Status::as_str`] writes it; `None` for any other
    /// text (including other letter case and the empty ENUM value of a non-strict server).
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with the word the database holds, so `task.status == "pending"` reads as before.
impl PartialEq<str> for Status {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Status {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
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

    /// The statements, one by one (for EXPLAIN, through the test hooks).
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
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

/// One history row of one task, from values: for a stored procedure, whose body decides with
/// IF whether the step changed the task, so the row needs no read of `tasks`.
pub(crate) fn history_values(task_id_sql: &str, change: Change, worker_sql: &str) -> String {
    format!(
        "INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) \
         VALUES ({task_id_sql}, {}, {worker_sql}, NULL, NOW(6))",
        change_sql(change)
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
    var: Cow<'static, str>,
    many: bool,
}

impl Picked {
    /// One task, kept in `var` (a stored procedure's local; the procedures' bodies are built
    /// for the test hooks, see `queue::procedures`).
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    pub(crate) fn one(var: &'static str) -> Picked {
        Picked {
            var: Cow::Borrowed(var),
            many: false,
        }
    }

    /// Any number of tasks, kept as a JSON array of ids in `var`.
    pub(crate) fn many(var: impl Into<Cow<'static, str>>) -> Picked {
        Picked {
            var: var.into(),
            many: true,
        }
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

/// `DATE_FORMAT` pattern that renders a DATETIME(6) as RFC 3339 UTC.
pub(crate) const ISO: &str = "'%Y-%m-%dT%H:%i:%s.%fZ'";

/// `column` (a DATETIME(6) expression) as RFC 3339 UTC text.
pub(crate) fn iso(column: &str) -> String {
    format!("DATE_FORMAT({column}, {ISO})")
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
                gated: &[],
                report: false,
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
