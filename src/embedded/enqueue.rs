//! Enqueue on the embedded engine: the same checks as the server engine's
//! (`queue::enqueue::check_batch`, `validate_all`), then one `BEGIN IMMEDIATE` transaction
//! that inserts every task and their `created` history rows. The UNIQUE index on `dedupe_lock`
//! decides duplicates (`ON CONFLICT DO NOTHING`); the file's single writer makes the batch
//! all or nothing.

use super::{SqlResult, Store, clock, history_rows};
use crate::Config;
use crate::error::Result;
use crate::queue::enqueue::{
    Checked, Enqueued, TaskInput, check_batch, type_inactive, validate_all,
};
use crate::queue::lifecycle::{Change, Status};
use crate::type_cache::{CachedType, not_registered};
use rusqlite::{OptionalExtension, Transaction};
use std::sync::Arc;

/// No `enqueue_token`: the server engine marks a call's rows with it to find them after a lost
/// connection; a file's transaction answers its own rows. No `RETURNING` either (SQLite builds a
/// temporary table for returned rows, which would cost more than the INSERT): a row inserted is
/// the connection's last rowid, a duplicate changes nothing.
const INSERT: &str = "\
INSERT INTO tasks (id, type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope,
                   priority, max_attempts, run_at, created_at, updated_at)
VALUES (MAX(IFNULL((SELECT MAX(id) FROM tasks), 0), IFNULL((SELECT highest FROM tm_task_ids), 0)) + 1,
        ?1, 'pending', ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
ON CONFLICT (dedupe_lock) DO NOTHING";

const HOLDER: &str = "SELECT id, status, created_at FROM tasks WHERE dedupe_lock = ?1";

/// A unique window has passed: the key no longer blocks (the old task keeps its key).
const RELEASE_KEY: &str = "UPDATE tasks SET dedupe_lock = NULL WHERE dedupe_lock = ?1";

pub(crate) fn enqueue_batch(
    store: &Store,
    config: &Config,
    items: &[TaskInput<'_>],
) -> Result<Vec<Enqueued>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let checked = check_batch(config, items)?;
    let out = store.write(|tx| {
        let mut inactive = None;
        let types = validate_all(config, &checked, |name| {
            let (task_type, active) = type_named(store, tx, name)?;
            if !active {
                inactive.get_or_insert_with(|| name.to_string());
            }
            Ok(task_type)
        })?;
        if let Some(name) = inactive {
            return Err(type_inactive(&name));
        }
        let now = clock::now_micros();
        let out = checked
            .iter()
            .zip(&types)
            .map(|(task, task_type)| insert(store, tx, task, task_type, now))
            .collect::<Result<Vec<Enqueued>>>()?;
        if config.enable_task_history {
            let created: Vec<(i64, Option<&str>)> = out
                .iter()
                .filter(|e| !e.deduplicated)
                .map(|e| (e.id, None))
                .collect();
            history_rows(store, tx, &created, Change::Created, now)?;
        }
        Ok(out)
    })?;
    store.signal();
    Ok(out)
}

/// A type by name with its compiled validator (cached per id and version), and whether it is
/// active.
fn type_named(store: &Store, tx: &Transaction<'_>, name: &str) -> Result<(Arc<CachedType>, bool)> {
    let row: Option<(i64, String, String, bool)> = tx
        .prepare_cached(
            "SELECT id, version, param_schema_json, is_active FROM task_types WHERE name = ?1",
        )
        .sql(store)?
        .query_row([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()
        .sql(store)?;
    let (id, version, schema_text, active) = row.ok_or_else(|| not_registered(name))?;
    Ok((store.cached_type(name, id, version, &schema_text)?, active))
}

fn insert(
    store: &Store,
    tx: &Transaction<'_>,
    task: &Checked<'_>,
    task_type: &CachedType,
    now: i64,
) -> Result<Enqueued> {
    let run_at = match &task.run_at {
        Some(text) => clock::parse_utc(text)?,
        None => now + task.delay_micros,
    };
    let mut insert = tx.prepare_cached(INSERT).sql(store)?;
    let mut try_insert = || -> Result<Option<i64>> {
        let inserted = insert
            .execute((
                task_type.id,
                &task.params_text,
                &task.key,
                task.scope.as_sql(),
                task.item.options.priority.unwrap_or(0),
                task.max_attempts,
                run_at,
                now,
            ))
            .sql(store)?;
        Ok((inserted == 1).then(|| tx.last_insert_rowid()))
    };
    let mut created = try_insert()?;
    let mut holder = None;
    if created.is_none() {
        let (id, status, created_at): (i64, String, i64) = tx
            .prepare_cached(HOLDER)
            .sql(store)?
            .query_row([&task.key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .sql(store)?;
        let window_passed = task
            .window
            .is_some_and(|seconds| created_at <= now - clock::seconds(seconds));
        if window_passed {
            tx.prepare_cached(RELEASE_KEY)
                .sql(store)?
                .execute([&task.key])
                .sql(store)?;
            created = try_insert()?;
        } else {
            holder = Some((id, status));
        }
    }
    match (created, holder) {
        (Some(id), _) => Ok(Enqueued {
            id,
            type_name: task.item.type_name.to_string(),
            status: Status::Pending,
            deduplicated: false,
            dedupe_key: task.key.clone(),
        }),
        (None, Some((id, status))) => Ok(Enqueued {
            id,
            type_name: task.item.type_name.to_string(),
            status: super::status(store, &status)?,
            deduplicated: true,
            dedupe_key: task.key.clone(),
        }),
        (None, None) => Err(crate::error::Error::new(
            crate::error::Code::Database,
            format!("task with dedupe key {} vanished during enqueue", task.key),
        )),
    }
}
