//! The read side: one task, a filtered page of tasks, counts, and a task's history.

use crate::database::Database;
use crate::error::{Error, Result};
use crate::queue::engine::Engine;
use crate::queue::input::check_task_id;
use crate::queue::lifecycle::{Read, Status};
use crate::row::Columns;
use crate::types::check_name;
use mysql::{Params, Value as SqlValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A task as stored, with params and result as JSON values.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Task {
    /// The task.
    pub id: i64,
    /// Its type's name (`type` in JSON).
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its type's id.
    pub type_id: i64,
    /// Where it is in its life.
    pub status: Status,
    /// Its params (null when the column holds text that is not JSON).
    pub params: Value,
    /// The result it was completed with (null until then).
    pub result: Value,
    /// The message of its last failure.
    pub error_message: Option<String>,
    /// Attempts made so far (a claim counts one).
    pub attempts: u32,
    /// Attempts it may have in all before it is dead.
    pub max_attempts: u32,
    /// Higher runs first.
    pub priority: i32,
    /// The last progress a heartbeat recorded, 0..=100.
    pub progress: i32,
    /// The key that deduplicates it.
    pub dedupe_key: String,
    /// `always` (the key blocks forever) or `active` (only while pending or claimed).
    pub dedupe_scope: String,
    /// The worker id of its current (or last) claim.
    pub claimed_by: Option<String>,
    /// When it was last claimed.
    pub claimed_at: Option<String>,
    /// When its current lease runs out.
    pub lease_expires_at: Option<String>,
    /// Not runnable before this time.
    pub run_at: String,
    /// When it finished (completed, failed for good or cancelled).
    pub completed_at: Option<String>,
    /// When it was enqueued.
    pub created_at: String,
    /// When its row last changed. Every time is RFC 3339, UTC, database clock.
    pub updated_at: String,
}

/// Filter and page for listing tasks, newest first.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFilter {
    /// Only tasks of this type (`type` in JSON).
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    /// Only tasks in this status (`pending`, `claimed`, `completed`, `failed`, `cancelled`).
    pub status: Option<String>,
    /// Page size, 1..=1000 (default 100).
    pub limit: Option<u32>,
    /// Only tasks with an id below this one: pass the last id of a page to get the next
    /// (cheap at any depth).
    pub before_id: Option<i64>,
    /// Skip this many tasks first (0..=1000000), for callers that page by number, as the
    /// original HTTP API did; deep offsets cost a scan, prefer `before_id`.
    pub offset: Option<u32>,
    /// Only tasks created at least this many seconds ago.
    pub older_than_seconds: Option<u64>,
    /// Only tasks created at most this many seconds ago.
    pub newer_than_seconds: Option<u64>,
    /// Only tasks claimed (now or last) by this worker id.
    pub worker_id: Option<String>,
    /// Only tasks whose params or error message contain this text (literal, case-insensitive;
    /// read row by row, so combine it with other filters on a large table).
    pub text: Option<String>,
    /// Only tasks whose params contain this text (literal, case-insensitive).
    pub params_text: Option<String>,
    /// Only tasks whose error message contains this text (literal, case-insensitive).
    pub error_text: Option<String>,
}

/// One history row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryEntry {
    /// The history row.
    pub id: i64,
    /// The task it is about.
    pub task_id: i64,
    /// What happened (`created`, `claimed`, `progress`, `completed`, `retrying`, `failed`,
    /// `lease_expired`, `released`, `cancelled`, `retried`).
    pub status_change: String,
    /// The worker that made the change, when one did.
    pub worker_id: Option<String>,
    /// The message the change carried, when it had one (a failure's, for instance).
    pub message: Option<String>,
    /// When (RFC 3339, UTC, database clock).
    pub created_at: String,
}

/// A row of [`Read::Task`] or [`Read::Tasks`] as a task. A value of an unexpected type (a
/// column changed by hand to something this library does not write) is an error naming the
/// column, not a panic.
fn to_task(c: &mut Columns) -> Result<Task> {
    Ok(Task {
        id: c.id("task")?,
        type_name: c.get("type_name")?,
        type_id: c.get("type_id")?,
        status: c.parsed("status", Status::parse)?,
        params: json_or_null(c.get("params_json")?),
        result: json_or_null(c.get("result_json")?),
        error_message: c.get("error_message")?,
        attempts: c.get("attempts")?,
        max_attempts: c.get("max_attempts")?,
        priority: c.get("priority")?,
        progress: c.get("progress")?,
        dedupe_key: c.get("dedupe_key")?,
        dedupe_scope: c.get("dedupe_scope")?,
        claimed_by: c.get("claimed_by")?,
        claimed_at: c.get("claimed_at")?,
        lease_expires_at: c.get("lease_expires_at")?,
        run_at: c.get("run_at")?,
        completed_at: c.get("completed_at")?,
        created_at: c.get("created_at")?,
        updated_at: c.get("updated_at")?,
    })
}

/// A params or result column as JSON: null when it is NULL or holds text that is not JSON.
pub(crate) fn json_or_null(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

pub(crate) fn get(db: &Database, id: i64) -> Result<Task> {
    check_task_id(id)?;
    let tasks =
        db.run(|conn, _| Engine::of(db).read(conn, Read::Task, (id,).into(), "a task", to_task))?;
    tasks
        .into_iter()
        .next()
        .ok_or_else(|| Error::not_found(format!("task {id} does not exist")))
}

pub(crate) fn list(db: &Database, filter: &ListFilter) -> Result<Vec<Task>> {
    let (conditions, params) = list_query::<SqlValue>(filter, Dialect::Server)?;
    let read = Read::Tasks {
        conditions: &conditions,
    };
    db.run(|conn, _| {
        let params = Params::Positional(params.clone());
        Engine::of(db).read(conn, read, params, "a task", to_task)
    })
}

/// A checked [`ListFilter`] as the condition of a page of tasks over `tasks t JOIN task_types
/// y` and its bound values, the page's limit and offset last (both engines list with it, so a
/// filter is checked, and refused, alike).
pub(crate) fn list_query<V: From<i64> + From<String>>(
    filter: &ListFilter,
    dialect: Dialect,
) -> Result<(String, Vec<V>)> {
    let limit = filter.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(Error::invalid(format!(
            "limit must be from 1 to 1000, got {limit}"
        )));
    }
    let (conditions, mut params) = Selection::from(filter).conditions_in(dialect)?;
    let offset = filter.offset.unwrap_or(0);
    if offset > 1_000_000 {
        return Err(Error::invalid(format!(
            "offset must be from 0 to 1000000, got {offset}"
        )));
    }
    params.push(i64::from(limit).into());
    params.push(i64::from(offset).into());
    Ok((conditions, params))
}

/// The SQL a selection is written in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dialect {
    /// MySQL and MariaDB: times are compared with the server's clock (`NOW(6)`).
    Server,
    /// SQLite (the embedded engine): times are microseconds since the epoch, compared with
    /// `now`, the library's clock.
    Embedded { now: i64 },
}

/// The fields that select tasks, shared by [`list`] and the bulk actions so that one filter
/// means the same tasks in both. Each is optional; given ones must all hold.
#[derive(Default)]
pub(crate) struct Selection<'a> {
    pub type_name: Option<&'a str>,
    pub status: Option<&'a str>,
    pub ids: Option<&'a [i64]>,
    pub before_id: Option<i64>,
    pub older_than_seconds: Option<u64>,
    pub newer_than_seconds: Option<u64>,
    pub worker_id: Option<&'a str>,
    pub text: Option<&'a str>,
    pub params_text: Option<&'a str>,
    pub error_text: Option<&'a str>,
}

impl<'a> From<&'a ListFilter> for Selection<'a> {
    fn from(f: &'a ListFilter) -> Self {
        Selection {
            type_name: f.type_name.as_deref(),
            status: f.status.as_deref(),
            ids: None,
            before_id: f.before_id,
            older_than_seconds: f.older_than_seconds,
            newer_than_seconds: f.newer_than_seconds,
            worker_id: f.worker_id.as_deref(),
            text: f.text.as_deref(),
            params_text: f.params_text.as_deref(),
            error_text: f.error_text.as_deref(),
        }
    }
}

impl Selection<'_> {
    /// The checked fields as a condition on `tasks t JOIN task_types y` and its bound values,
    /// for MySQL and MariaDB.
    pub(crate) fn conditions(&self) -> Result<(String, Vec<SqlValue>)> {
        self.conditions_in(Dialect::Server)
    }

    /// [`Selection::conditions`] in `dialect`; `V` is the driver's bound value.
    pub(crate) fn conditions_in<V: From<i64> + From<String>>(
        &self,
        dialect: Dialect,
    ) -> Result<(String, Vec<V>)> {
        let mut conditions = vec!["1 = 1".to_string()];
        let mut params: Vec<V> = Vec::new();
        if let Some(name) = self.type_name {
            check_name(name)?;
            conditions.push("y.name = ?".into());
            params.push(name.to_string().into());
        }
        if let Some(status) = self.status {
            if Status::parse(status).is_none() {
                return Err(Error::invalid(format!(
                    "status must be one of {}, got '{status}'",
                    Status::ALL.map(Status::as_str).join(", ")
                )));
            }
            conditions.push("t.status = ?".into());
            params.push(status.to_string().into());
        }
        if let Some(ids) = self.ids {
            if ids.is_empty() {
                return Err(Error::invalid("ids must list at least one task id"));
            }
            ids.iter().try_for_each(|id| check_task_id(*id))?;
            conditions.push(format!("t.id IN ({})", vec!["?"; ids.len()].join(", ")));
            params.extend(ids.iter().map(|id| V::from(*id)));
        }
        if let Some(before) = self.before_id {
            check_task_id(before)?;
            conditions.push("t.id < ?".into());
            params.push(before.into());
        }
        for (seconds, comparison) in [
            (self.older_than_seconds, "<="),
            (self.newer_than_seconds, ">="),
        ] {
            if let Some(seconds) = seconds {
                let seconds = i64::try_from(seconds)
                    .unwrap_or(i64::MAX)
                    .min(3_153_600_000);
                match dialect {
                    Dialect::Server => {
                        conditions.push(format!(
                            "t.created_at {comparison} NOW(6) - INTERVAL ? SECOND"
                        ));
                        params.push(seconds.into());
                    }
                    Dialect::Embedded { now } => {
                        conditions.push(format!("t.created_at {comparison} ?"));
                        params.push(now.saturating_sub(seconds.saturating_mul(1_000_000)).into());
                    }
                }
            }
        }
        if let Some(worker) = self.worker_id {
            crate::queue::input::check_worker_id(worker)?;
            conditions.push("t.claimed_by = ?".into());
            params.push(worker.to_string().into());
        }
        // Literal text in one or both columns, case-insensitive (the server's collation;
        // SQLite's LIKE, which folds ASCII letters only): read row by row, so the other filters
        // should narrow the rows first on a large table.
        for (text, name, columns) in [
            (self.text, "text", &["t.params_json", "t.error_message"][..]),
            (self.params_text, "params_text", &["t.params_json"][..]),
            (self.error_text, "error_text", &["t.error_message"][..]),
        ] {
            let Some(text) = text else { continue };
            if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
                return Err(Error::invalid(format!(
                    "{name} must be 1 to {MAX_TEXT_CHARS} characters"
                )));
            }
            let pattern = crate::sql::escape_like(text);
            let contains = match dialect {
                Dialect::Server => "LIKE CONCAT('%', ?, '%') ESCAPE '!'",
                Dialect::Embedded { .. } => "LIKE '%' || ? || '%' ESCAPE '!'",
            };
            let any: Vec<String> = columns
                .iter()
                .map(|column| format!("{column} {contains}"))
                .collect();
            conditions.push(format!("({})", any.join(" OR ")));
            params.extend(columns.iter().map(|_| V::from(pattern.clone())));
        }
        Ok((conditions.join(" AND "), params))
    }
}

/// Longest text a filter searches for, in characters.
const MAX_TEXT_CHARS: usize = 200;

pub(crate) fn history(db: &Database, task_id: i64) -> Result<Vec<HistoryEntry>> {
    check_task_id(task_id)?;
    let subject = format!("a history row of task {task_id}");
    db.run(|conn, _| {
        Engine::of(db).read(conn, Read::History, (task_id,).into(), &subject, |c| {
            Ok(HistoryEntry {
                id: c.get("id")?,
                task_id: c.get("task_id")?,
                status_change: c.get("status_change")?,
                worker_id: c.get("worker_id")?,
                message: c.get("message")?,
                created_at: c.get("created_at")?,
            })
        })
    })
}
