//! Versioned, idempotent schema migrations, recorded in `tm_schema_migrations`.
//!
//! Migration 1 is the original PHP system's schema, exactly; migration 2 upgrades it in place
//! to what this library needs; migration 3 brings databases that took an earlier migration 2
//! to the same end (text versions, the claim-order indexes, types deleted with their tasks;
//! all three in original.rs); migration 4 creates the hot path's stored procedures (5: their
//! next generation); 6 and 7 bring the lean layout (see lean_layout.rs); 8 the tables of
//! recurring tasks; 9 flow control and the procedures' generation 9; 10 their generation 10,
//! which writes history rows without reading `tasks` or `task_history` for them; 11 the type
//! gate as a foreign key and the procedures' generation 11 (see type_gate.rs). A fresh
//! database walks the same path, so the upgrade is exercised by every install. DDL happens only
//! here: the runtime needs SELECT, INSERT, UPDATE, DELETE, and EXECUTE to use the procedures.
//!
//! Each step inspects `information_schema` before it changes anything, so a migration that was
//! interrupted halfway can simply be run again (MySQL has no `ADD COLUMN IF NOT EXISTS`).

use crate::error::{Code, Error, Result};
use crate::pool::{Conn, Pool};
use mysql::prelude::Queryable;
use serde::Serialize;
use std::collections::BTreeMap;

mod lean_layout;
mod original;
mod type_gate;

use original::{original_schema, text_versions_claim_orders, upgrade_original};

pub const LATEST_VERSION: i64 = 11;

/// The oldest schema this library runs on: its claims read the flow-control tables (migration
/// 9), clear the type gate (migration 11) and call the procedures of generation 11.
pub const REQUIRED_VERSION: i64 = 11;

/// The oldest version `migrate_to` stops at: the lean layout's expand step (6), which a
/// rolling deploy of the release before it needed. Below [`REQUIRED_VERSION`] a database serves
/// earlier releases only.
const OLDEST_TARGET: i64 = 6;

/// The migration that adds the schedules' tables.
const SCHEDULES_VERSION: i64 = 8;

/// An index of the current schema: name, unique, columns.
type IndexSpec = (&'static str, bool, &'static str);

/// The stored procedures of each generation, as committed files in the mariadb client's format
/// (`DELIMITER` lines). A migration runs a file, never live code: a database keeps what its
/// migrations created, and an older library on it still finds the procedures it calls.
/// `tests/procedures.rs` checks that the newest file holds what the library calls.
const PROCEDURES_V4: &str = include_str!("../../sql/migrations/0004_hot_path_procedures.sql");
const PROCEDURES_V5: &str = include_str!("../../sql/migrations/0005_hot_path_procedures_v5.sql");
const PROCEDURES_V6: &str = include_str!("../../sql/migrations/0006_hot_path_procedures_v6.sql");

/// The tables of recurring tasks (schedules and their runs), in the same file format.
const SCHEDULES: &str = include_str!("../../sql/migrations/0008_schedules.sql");
const FLOW_CONTROL: &str = include_str!("../../sql/migrations/0009_flow_control.sql");
const PROCEDURES_V9: &str = include_str!("../../sql/migrations/0009_hot_path_procedures_v9.sql");
const PROCEDURES_V10: &str = include_str!("../../sql/migrations/0010_hot_path_procedures_v10.sql");
const PROCEDURES_V11: &str = include_str!("../../sql/migrations/0011_hot_path_procedures_v11.sql");

/// What `migrate` did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MigrationReport {
    /// Versions applied by this call, in order (empty when the schema was already current).
    pub applied: Vec<i64>,
    /// The schema version after the call.
    pub version: i64,
}

struct Migration {
    version: i64,
    name: &'static str,
    run: fn(&mut Step) -> Result<()>,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "original_schema",
        run: original_schema,
    },
    Migration {
        version: 2,
        name: "leases_priorities_dedupe_scope",
        run: upgrade_original,
    },
    Migration {
        version: 3,
        name: "text_versions_claim_orders",
        run: text_versions_claim_orders,
    },
    Migration {
        version: 4,
        name: "hot_path_procedures",
        run: |step| step.exec_client_file(PROCEDURES_V4),
    },
    Migration {
        version: 5,
        name: "hot_path_procedures_v5",
        run: |step| step.exec_client_file(PROCEDURES_V5),
    },
    Migration {
        version: 6,
        name: "lean_layout",
        run: |step| lean_layout::expand(step, PROCEDURES_V6),
    },
    Migration {
        version: 7,
        name: "lean_layout_contract",
        run: lean_layout::contract,
    },
    Migration {
        version: SCHEDULES_VERSION,
        name: "schedules",
        run: |step| step.exec_client_file(SCHEDULES),
    },
    Migration {
        version: 9,
        name: "flow_control",
        run: |step| {
            step.exec_client_file(FLOW_CONTROL)?;
            step.exec_client_file(PROCEDURES_V9)
        },
    },
    Migration {
        version: 10,
        name: "hot_path_procedures_v10",
        run: |step| step.exec_client_file(PROCEDURES_V10),
    },
    Migration {
        version: REQUIRED_VERSION,
        name: "type_gate",
        run: |step| type_gate::add(step, PROCEDURES_V11),
    },
];

/// Applies every migration the database has not recorded yet, up to version `to` (all when
/// `None`). Safe to run concurrently: a named lock serializes migrators.
pub(crate) fn migrate(
    db: &Pool,
    claim_timeout_secs: u32,
    to: Option<i64>,
) -> Result<MigrationReport> {
    if let Some(to) = to {
        if !(OLDEST_TARGET..=LATEST_VERSION).contains(&to) {
            return Err(Error::new(
                Code::InvalidArgument,
                format!(
                    "to: this library migrates to a version from {OLDEST_TARGET} to \
                     {LATEST_VERSION} (the latest; it runs on {REQUIRED_VERSION} and later), not {to}"
                ),
            ));
        }
    }
    let mut conn = db.get()?;
    db.ensure_server(&mut conn)?;
    let mut step = Step {
        db,
        conn: &mut conn,
        claim_timeout_secs,
    };
    let locked: Option<i64> = step.first("SELECT GET_LOCK('taskmanager.migrate', 120)")?;
    if locked != Some(1) {
        return Err(Error::new(
            Code::Conflict,
            "another process has been migrating this database for 120 s; try again when it is done",
        ));
    }
    let result = apply_pending(&mut step, to.unwrap_or(LATEST_VERSION));
    let _ = step.exec("SELECT RELEASE_LOCK('taskmanager.migrate')");
    let report = result.map_err(ddl_privileges)?;
    prove_skip_locked(db, &mut conn)?;
    Ok(report)
}

/// Proves with two sessions that the server skips a row another session has locked. Some
/// MySQL-compatible engines parse `FOR UPDATE SKIP LOCKED` and ignore it, which would hand one
/// task to two workers; such a server is refused here, before any worker runs.
fn prove_skip_locked(db: &Pool, holder: &mut Conn<'_>) -> Result<()> {
    let locking = "SELECT version FROM tm_schema_migrations WHERE version = 1";
    holder
        .query_drop(format!("START TRANSACTION; {locking} FOR UPDATE"))
        .map_err(|e| holder.error(e))?;
    // A session outside the pool, which may have room for only one.
    let outcome = db.connect_unpooled().and_then(|mut other| {
        other
            .query_drop("SET SESSION innodb_lock_wait_timeout = 1")
            .and_then(|()| other.query::<i64, _>(format!("{locking} FOR UPDATE SKIP LOCKED")))
            .map_err(|e| db.error(e))
    });
    holder.query_drop("ROLLBACK").map_err(|e| holder.error(e))?;
    judge_skip_locked(outcome)
}

/// What the second session saw: nothing (the row was skipped) is the only acceptable answer.
fn judge_skip_locked(outcome: Result<Vec<i64>>) -> Result<()> {
    let refuse = |what: &str| {
        Error::new(
            Code::UnsupportedServer,
            format!(
                "the server {what} a row another session has locked with FOR UPDATE SKIP LOCKED: \
                 two workers could be handed one task. TaskManager needs MariaDB 10.6+ or \
                 MySQL 8.0.1+ with InnoDB"
            ),
        )
    };
    match outcome {
        Ok(rows) if rows.is_empty() => Ok(()),
        Ok(_) => Err(refuse("returned")),
        Err(e) if e.server_code() == Some(1205) => Err(refuse("waited for")),
        Err(e) => Err(e),
    }
}

/// A migration refused for lack of a privilege names the privileges migrations need (the
/// general message names the runtime's, which the account may well have).
fn ddl_privileges(e: Error) -> Error {
    match e.server_code() {
        Some(1142) | Some(1143) | Some(1044) => Error::new(
            Code::Database,
            format!(
                "the account that runs migrate lacks a privilege the schema changes need: {} \
                 (grant CREATE, ALTER, INDEX, REFERENCES, CREATE ROUTINE, ALTER ROUTINE on the \
                 database to it; the runtime itself needs only SELECT, INSERT, UPDATE, DELETE, \
                 and EXECUTE for the fast path)",
                e.details()
                    .and_then(|d| d["server_message"].as_str())
                    .unwrap_or("refused")
            ),
        )
        .with_details(e.details().cloned().unwrap_or_default()),
        _ => e,
    }
}

fn apply_pending(step: &mut Step, to: i64) -> Result<MigrationReport> {
    // Read first: on a current schema, migrate is a pure read and works for an account that
    // may only SELECT, INSERT, UPDATE and DELETE.
    let done = match step
        .conn
        .query::<i64, _>("SELECT version FROM tm_schema_migrations ORDER BY version")
    {
        Ok(done) => done,
        Err(mysql::Error::MySqlError(e)) if e.code == 1146 => Vec::new(),
        Err(e) => return Err(step.db.error(e)),
    };
    let wanted = |m: &&Migration| m.version <= to && !done.contains(&m.version);
    if !MIGRATIONS.iter().any(|m| wanted(&m)) {
        let version = done.iter().copied().max().unwrap_or(0);
        return Ok(MigrationReport {
            applied: Vec::new(),
            version,
        });
    }
    step.exec(
        "CREATE TABLE IF NOT EXISTS tm_schema_migrations (
           version INT NOT NULL PRIMARY KEY,
           name VARCHAR(100) NOT NULL,
           applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    )?;
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(wanted) {
        (m.run)(step).map_err(|e| {
            Error::new(
                e.code(),
                format!(
                    "migration {} ({}) failed: {}",
                    m.version,
                    m.name,
                    e.message()
                ),
            )
        })?;
        step.conn
            .exec_drop(
                "INSERT IGNORE INTO tm_schema_migrations (version, name) VALUES (?, ?)",
                (m.version, m.name),
            )
            .map_err(|e| step.db.error(e))?;
        applied.push(m.version);
    }
    let version = done
        .iter()
        .chain(applied.iter())
        .copied()
        .max()
        .unwrap_or(0);
    Ok(MigrationReport { applied, version })
}

/// The statements of a file in the mariadb client's format: `-- ` comment lines dropped,
/// statements ended by the current delimiter (`;`, or what a `DELIMITER` line sets).
fn client_statements(text: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut delimiter = ";".to_string();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(new) = line.strip_prefix("DELIMITER ") {
            delimiter = new.trim().to_string();
            continue;
        }
        if current.is_empty() && (line.starts_with("--") || line.trim().is_empty()) {
            continue;
        }
        match line.strip_suffix(delimiter.as_str()) {
            Some(last) => {
                current.push_str(last);
                statements.push(std::mem::take(&mut current));
            }
            None => {
                current.push_str(line);
                current.push('\n');
            }
        }
    }
    statements
}

/// Whether `name` is among `columns` (as `Step::columns` lists them; names are case-blind).
fn has_column(columns: &[String], name: &str) -> bool {
    columns.iter().any(|c| c.eq_ignore_ascii_case(name))
}

struct Step<'a, 'p> {
    db: &'p Pool,
    conn: &'a mut Conn<'p>,
    claim_timeout_secs: u32,
}

impl Step<'_, '_> {
    fn exec(&mut self, sql: &str) -> Result<()> {
        self.conn.query_drop(sql).map_err(|e| self.db.error(e))
    }

    /// Runs every statement of a file in the mariadb client's format.
    fn exec_client_file(&mut self, text: &str) -> Result<()> {
        for statement in client_statements(text) {
            self.exec(&statement)?;
        }
        Ok(())
    }

    fn first<T: mysql::prelude::FromValue>(&mut self, sql: &str) -> Result<Option<T>> {
        self.conn.query_first(sql).map_err(|e| self.db.error(e))
    }

    fn columns(&mut self, table: &str) -> Result<Vec<String>> {
        self.conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (table,),
            )
            .map_err(|e| self.db.error(e))
    }

    /// name -> (unique, columns in order), primary key excluded.
    fn indexes(&mut self, table: &str) -> Result<BTreeMap<String, (bool, Vec<String>)>> {
        let rows: Vec<mysql::Row> = self
            .conn
            .exec(
                "SELECT INDEX_NAME AS name, NON_UNIQUE AS non_unique, COLUMN_NAME AS col \
                 FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME <> 'PRIMARY' \
                 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                (table,),
            )
            .map_err(|e| self.db.error(e))?;
        let rows = crate::row::decode_all(rows, "an index", |c| {
            Ok((
                c.get::<String>("name")?,
                c.get::<i64>("non_unique")?,
                c.get::<String>("col")?,
            ))
        })?;
        let mut map: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
        for (name, non_unique, column) in rows {
            map.entry(name)
                .or_insert((non_unique == 0, Vec::new()))
                .1
                .push(column);
        }
        Ok(map)
    }

    /// The names of the foreign keys of `table`.
    fn foreign_keys(&mut self, table: &str) -> Result<Vec<String>> {
        self.conn
            .exec(
                "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (table,),
            )
            .map_err(|e| self.db.error(e))
    }

    fn drop_foreign_keys(&mut self, table: &str) -> Result<()> {
        for name in self.foreign_keys(table)? {
            self.exec(&format!("ALTER TABLE `{table}` DROP FOREIGN KEY `{name}`"))?;
        }
        Ok(())
    }

    /// Sets NULLs to the default of each existing column that is becoming `NOT NULL ... DEFAULT x`.
    fn fill_nulls(&mut self, table: &str, columns: &[(&str, &str)]) -> Result<()> {
        let existing = self.columns(table)?;
        for (name, definition) in columns {
            let default = definition
                .split_once(" DEFAULT ")
                .and_then(|(_, rest)| rest.split(' ').next());
            if let (true, Some(default)) = (definition.contains("NOT NULL"), default) {
                if has_column(&existing, name) {
                    self.exec(&format!(
                        "UPDATE `{table}` SET `{name}` = {default} WHERE `{name}` IS NULL"
                    ))?;
                }
            }
        }
        Ok(())
    }

    /// One ALTER: drops the indexes `ours` replace (by their columns, unless they are ours by
    /// name) and adds those of `ours` that are missing.
    fn replace_indexes(
        &mut self,
        table: &str,
        ours: &[IndexSpec],
        replaced: &[&[&str]],
    ) -> Result<()> {
        let indexes = self.indexes(table)?;
        let mut changes: Vec<String> = Vec::new();
        for (name, (_, columns)) in &indexes {
            let is_ours = ours.iter().any(|(n, ..)| n == name);
            if !is_ours && replaced.iter().any(|r| columns == r) {
                changes.push(format!("DROP INDEX `{name}`"));
            }
        }
        for (name, unique, columns) in ours {
            if !indexes.contains_key(*name) {
                changes.push(format!(
                    "ADD {}INDEX {name} ({columns})",
                    if *unique { "UNIQUE " } else { "" }
                ));
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        self.exec(&format!("ALTER TABLE `{table}` {}", changes.join(", ")))
    }

    /// Adds [`original::FOREIGN_KEYS`]; `check` false skips the row check, for keys that held until the
    /// same migration dropped them.
    fn add_foreign_keys(&mut self, check: bool) -> Result<()> {
        let add = |step: &mut Self| {
            original::FOREIGN_KEYS
                .iter()
                .try_for_each(|(table, name, key)| {
                    step.exec(&format!(
                        "ALTER TABLE `{table}` ADD CONSTRAINT {name} {key}"
                    ))
                })
        };
        if check {
            add(self)
        } else {
            self.without_key_checks(add)
        }
    }

    /// Runs `f` with the session's foreign-key checks off (keys are then added without the
    /// row check, in place), and turns them on again whatever `f` returned.
    fn without_key_checks(&mut self, f: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        self.exec("SET SESSION foreign_key_checks = 0")?;
        let result = f(self);
        self.exec("SET SESSION foreign_key_checks = 1")?;
        result
    }

    /// One ALTER per table (one table copy): MODIFY what exists, ADD what is missing.
    fn reshape(&mut self, table: &str, columns: &[(&str, &str)]) -> Result<()> {
        let existing = self.columns(table)?;
        let clauses: Vec<String> = columns
            .iter()
            .map(|(name, definition)| {
                if has_column(&existing, name) {
                    format!("MODIFY COLUMN `{name}` {definition}")
                } else {
                    format!("ADD COLUMN `{name}` {definition}")
                }
            })
            .collect();
        self.exec(&format!("ALTER TABLE `{table}` {}", clauses.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::judge_skip_locked;
    use crate::error::{Code, Error};
    use serde_json::json;

    #[test]
    fn a_server_that_returns_or_waits_for_a_locked_row_is_refused() {
        assert!(judge_skip_locked(Ok(vec![])).is_ok());
        let returned = judge_skip_locked(Ok(vec![1])).unwrap_err();
        assert_eq!(returned.code(), Code::UnsupportedServer);
        let waited = Error::new(Code::Database, "lock wait timeout")
            .with_details(json!({"server_code": 1205}));
        assert_eq!(
            judge_skip_locked(Err(waited)).unwrap_err().code(),
            Code::UnsupportedServer
        );
        let other = Error::new(Code::Connection, "gone");
        assert_eq!(
            judge_skip_locked(Err(other)).unwrap_err().code(),
            Code::Connection
        );
    }
}
