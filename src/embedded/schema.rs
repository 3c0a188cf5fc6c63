//! The embedded engine's schema: `sql/sqlite/schema.sql`, created in one transaction.
//!
//! A file carries the tables of server schema version [`VERSION`]; a file written by a newer
//! release is refused with its version, never read half-understood.

use super::{SqlResult, Store, clock};
use crate::error::{Code, Error, Result};
use crate::migrate::MigrationReport;
use rusqlite::{Connection, OptionalExtension};
use serde_json::json;

/// The server schema version whose tables a file holds.
pub(crate) const VERSION: i64 = 9;

const SCHEMA: &str = include_str!("../../sql/sqlite/schema.sql");

/// The file's schema version; `None` for a new (empty) file.
pub(crate) fn version(store: &Store, conn: &Connection) -> Result<Option<i64>> {
    let exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tm_schema_migrations'",
            [],
            |r| r.get(0),
        )
        .optional()
        .sql(store)?;
    if exists.is_none() {
        return Ok(None);
    }
    conn.query_row("SELECT MAX(version) FROM tm_schema_migrations", [], |r| {
        r.get(0)
    })
    .sql(store)
}

/// The error for a file a newer release wrote.
pub(crate) fn newer(store: &Store, found: i64) -> Error {
    Error::new(
        Code::SchemaOutdated,
        format!(
            "the queue file {} has schema version {found}, newer than this library's {VERSION}: \
             a newer release wrote it; use that release (nothing was changed)",
            store.path().display()
        ),
    )
    .with_details(json!({"found": found, "required": VERSION}))
}

/// Creates the schema in the file (one transaction: whole or absent). On a current file it
/// creates only what is missing (every statement of the schema is `IF NOT EXISTS`): a table
/// or index lost, or one that a file made by an earlier build of this version lacks.
pub(crate) fn migrate(store: &Store) -> Result<MigrationReport> {
    store.write_unchecked(|tx| {
        let found = version(store, tx)?;
        if let Some(v) = found.filter(|v| *v > VERSION) {
            return Err(newer(store, v));
        }
        tx.execute_batch(SCHEMA).sql(store)?;
        let applied = if found == Some(VERSION) {
            Vec::new()
        } else {
            tx.execute(
                "INSERT OR IGNORE INTO tm_schema_migrations (version, name, applied_at) \
                 VALUES (?1, 'embedded_schema', ?2)",
                (VERSION, clock::now_micros()),
            )
            .sql(store)?;
            vec![VERSION]
        };
        Ok(MigrationReport {
            applied,
            version: VERSION,
        })
    })
}
