//! Task types on the embedded engine: register (with the same rules as the server engine:
//! the same definition again changes nothing, another version replaces the schema, another
//! schema under the same version is a conflict), get, list, activate.

use super::{SqlResult, Store, clock};
use crate::error::{Code, Error, Result};
use crate::type_cache::not_registered;
use crate::types::{TaskType, TypeDefinition, check_definition, check_name};
use rusqlite::{Connection, OptionalExtension, Row};
use serde_json::Value;

const COLUMNS: &str = "id, name, version, param_schema_json, is_active, created_at, updated_at";

fn to_type(r: &Row<'_>) -> rusqlite::Result<TaskType> {
    let schema: String = r.get(3)?;
    Ok(TaskType {
        id: r.get(0)?,
        name: r.get(1)?,
        version: r.get(2)?,
        param_schema: serde_json::from_str(&schema).unwrap_or(Value::Null),
        is_active: r.get(4)?,
        created_at: clock::iso(r.get(5)?),
        updated_at: clock::iso(r.get(6)?),
        // Pause and limits are the server engine's (see docs/operations.md).
        paused: false,
        paused_until: None,
        max_running: None,
        rate: None,
        changed: None,
    })
}

fn find(store: &Store, conn: &Connection, name: &str) -> Result<Option<TaskType>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM task_types WHERE name = ?1"))
        .sql(store)?
        .query_row([name], to_type)
        .optional()
        .sql(store)
}

pub(crate) fn register_type(
    store: &Store,
    def: &TypeDefinition,
    max_payload: usize,
) -> Result<TaskType> {
    let schema_text = check_definition(def, max_payload)?;
    store.write(|tx| {
        let now = clock::now_micros();
        let changed = match find(store, tx, &def.name)? {
            None => {
                tx.execute(
                    "INSERT INTO task_types (name, version, param_schema_json, is_active, \
                     created_at, updated_at) VALUES (?1, ?2, ?3, 1, ?4, ?4)",
                    (&def.name, &def.version, &schema_text, now),
                )
                .sql(store)?;
                true
            }
            Some(current) if current.version == def.version => {
                if current.param_schema != def.param_schema {
                    return Err(Error::new(
                        Code::Conflict,
                        format!(
                            "version '{}' of task type '{}' is already registered with a \
                             different schema; register the new schema under a new version",
                            def.version, def.name
                        ),
                    ));
                }
                false
            }
            Some(_) => {
                tx.execute(
                    "UPDATE task_types SET version = ?1, param_schema_json = ?2, updated_at = ?3 \
                     WHERE name = ?4",
                    (&def.version, &schema_text, now, &def.name),
                )
                .sql(store)?;
                true
            }
        };
        let mut registered =
            find(store, tx, &def.name)?.ok_or_else(|| not_registered(&def.name))?;
        registered.changed = Some(changed);
        Ok(registered)
    })
}

pub(crate) fn get_type(store: &Store, name: &str) -> Result<TaskType> {
    check_name(name)?;
    store.read(|conn| find(store, conn, name)?.ok_or_else(|| not_registered(name)))
}

pub(crate) fn list_types(store: &Store) -> Result<Vec<TaskType>> {
    store.read(|conn| {
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM task_types ORDER BY name"))
            .sql(store)?
            .query_map([], to_type)
            .sql(store)?
            .collect::<rusqlite::Result<_>>()
            .sql(store)
    })
}

pub(crate) fn set_type_active(store: &Store, name: &str, active: bool) -> Result<TaskType> {
    check_name(name)?;
    store.write(|tx| {
        tx.execute(
            "UPDATE task_types SET is_active = ?1, updated_at = ?2 WHERE name = ?3 \
             AND is_active <> ?1",
            (active, clock::now_micros(), name),
        )
        .sql(store)?;
        find(store, tx, name)?.ok_or_else(|| not_registered(name))
    })
}
