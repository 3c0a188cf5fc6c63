//! Reads on the embedded engine: one task, a page of tasks, a task's history. Each is one
//! statement on a read connection (WAL: it sees the last commit and waits for no writer). The
//! checks of the input and the filter's conditions are the server engine's
//! (`queue::read::list_query`), so both engines accept and refuse the same filters.

use super::{SqlResult, Store, clock, column};
use crate::error::{Error, Result};
use crate::queue::input::check_task_id;
use crate::queue::lifecycle::Status;
use crate::queue::read::{Dialect, HistoryEntry, ListFilter, Task, json_or_null, list_query};
use crate::row;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Row, params_from_iter};

/// Every column of a task and its type's name, over `tasks t JOIN task_types y` (times are
/// microseconds; the answer formats them).
macro_rules! select_tasks {
    () => {
        "SELECT t.id, y.name AS type_name, t.type_id, t.status, t.params_json, t.result_json, \
         t.error_message, t.attempts, t.max_attempts, t.priority, t.progress, t.dedupe_key, \
         t.dedupe_scope, t.claimed_by, t.claimed_at, t.lease_expires_at, t.run_at, \
         t.completed_at, t.created_at, t.updated_at \
         FROM tasks t JOIN task_types y ON y.id = t.type_id"
    };
}

const GET_TASK: &str = concat!(select_tasks!(), " WHERE t.id = ?1");

const HISTORY: &str = "SELECT id, task_id, status_change, worker_id, message, created_at \
                       FROM task_history WHERE task_id = ?1 ORDER BY id";

pub(crate) fn get_task(store: &Store, id: i64) -> Result<Task> {
    check_task_id(id)?;
    let found = store.read(|conn| {
        let mut statement = conn.prepare_cached(GET_TASK).sql(store)?;
        let mut rows = statement.query([id]).sql(store)?;
        match rows.next().sql(store)? {
            Some(row) => to_task(store, row).map(Some),
            None => Ok(None),
        }
    })?;
    found.ok_or_else(|| Error::not_found(format!("task {id} does not exist")))
}

pub(crate) fn list_tasks(store: &Store, filter: &ListFilter) -> Result<Vec<Task>> {
    let now = clock::now_micros();
    let (conditions, params) = list_query::<SqlValue>(filter, Dialect::Embedded { now })?;
    let statement = format!(
        concat!(
            select_tasks!(),
            " WHERE {} ORDER BY t.id DESC LIMIT ? OFFSET ?"
        ),
        conditions
    );
    store.read(|conn| {
        let mut statement = conn.prepare_cached(&statement).sql(store)?;
        let mut rows = statement.query(params_from_iter(params)).sql(store)?;
        let mut tasks = Vec::new();
        while let Some(row) = rows.next().sql(store)? {
            tasks.push(to_task(store, row)?);
        }
        Ok(tasks)
    })
}

/// A row of [`select_tasks!`] as a task. A value of an unexpected type (a row changed by hand)
/// is an error naming the column, not a panic.
fn to_task(store: &Store, row: &Row<'_>) -> Result<Task> {
    let id: i64 = column(store, row, "a task", "id")?;
    let subject = format!("task {id}");
    // Each column read as the type its field wants (a closure would fix one type for all).
    macro_rules! get {
        ($name:literal) => {
            column(store, row, &subject, $name)
        };
    }
    let time = |name: &str| -> Result<String> {
        column::<i64>(store, row, &subject, name).map(clock::iso)
    };
    let time_or_null = |name: &str| -> Result<Option<String>> {
        Ok(column::<Option<i64>>(store, row, &subject, name)?.map(clock::iso))
    };
    let status: String = get!("status")?;
    Ok(Task {
        id,
        type_name: get!("type_name")?,
        type_id: get!("type_id")?,
        status: row::parsed(&subject, "status", &status, Status::parse)?,
        params: json_or_null(get!("params_json")?),
        result: json_or_null(get!("result_json")?),
        error_message: get!("error_message")?,
        attempts: get!("attempts")?,
        max_attempts: get!("max_attempts")?,
        priority: get!("priority")?,
        progress: get!("progress")?,
        dedupe_key: get!("dedupe_key")?,
        dedupe_scope: get!("dedupe_scope")?,
        claimed_by: get!("claimed_by")?,
        claimed_at: time_or_null("claimed_at")?,
        lease_expires_at: time_or_null("lease_expires_at")?,
        run_at: time("run_at")?,
        completed_at: time_or_null("completed_at")?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
    })
}

/// The history rows of a task, oldest first; none for an unknown task (as on a server).
pub(crate) fn task_history(store: &Store, id: i64) -> Result<Vec<HistoryEntry>> {
    check_task_id(id)?;
    store.read(|conn| {
        conn.prepare_cached(HISTORY)
            .sql(store)?
            .query_map([id], |r| {
                Ok(HistoryEntry {
                    id: r.get("id")?,
                    task_id: r.get("task_id")?,
                    status_change: r.get("status_change")?,
                    worker_id: r.get("worker_id")?,
                    message: r.get("message")?,
                    created_at: clock::iso(r.get("created_at")?),
                })
            })
            .sql(store)?
            .collect::<rusqlite::Result<_>>()
            .sql(store)
    })
}
