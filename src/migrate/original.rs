//! The original PHP system's schema and its upgrade in place: migration 1 creates it exactly,
//! migration 2 brings its columns, indexes and foreign keys to what this library needs, and
//! migration 3 brings databases that took an earlier migration 2 to the same end.

use super::{IndexSpec, Step};
use crate::error::Result;

const ORIGINAL_SCHEMA: &str = include_str!("../../sql/migrations/0001_original_schema.sql");

pub(super) fn original_schema(step: &mut Step) -> Result<()> {
    for statement in ORIGINAL_SCHEMA
        .split(';')
        .map(strip_comments)
        .filter(|s| !s.is_empty())
    {
        step.exec(&statement)?;
    }
    Ok(())
}

fn strip_comments(sql: &str) -> String {
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// Column definitions of the current schema. Existing columns are MODIFYed to these, missing
/// ones ADDed. TIMESTAMP becomes DATETIME(6): the session runs in UTC, so stored instants keep
/// their meaning, and DATETIME does not end in 2038.
const TASK_TYPES_COLUMNS: &[(&str, &str)] = &[
    ("id", "BIGINT NOT NULL AUTO_INCREMENT"),
    ("name", "VARCHAR(255) NOT NULL"),
    // Free text such as `1.0.0`, as in the original.
    ("version", "VARCHAR(50) NOT NULL DEFAULT '1'"),
    ("param_schema_json", "MEDIUMTEXT NOT NULL"),
    ("is_active", "TINYINT(1) NOT NULL DEFAULT 1"),
    (
        "created_at",
        "DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)",
    ),
    (
        "updated_at",
        "DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)",
    ),
];

const TASKS_COLUMNS: &[(&str, &str)] = &[
    ("id", "BIGINT NOT NULL AUTO_INCREMENT"),
    ("type_id", "BIGINT NOT NULL"),
    (
        "status",
        "ENUM('pending','claimed','completed','failed','cancelled') NOT NULL DEFAULT 'pending'",
    ),
    ("params_json", "MEDIUMTEXT NOT NULL"),
    ("dedupe_key", "VARCHAR(191) NOT NULL"),
    ("result_json", "MEDIUMTEXT NULL"),
    ("error_message", "TEXT NULL"),
    ("attempts", "INT NOT NULL DEFAULT 0"),
    ("claimed_by", "VARCHAR(255) NULL"),
    ("claimed_at", "DATETIME(6) NULL"),
    ("completed_at", "DATETIME(6) NULL"),
    (
        "created_at",
        "DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)",
    ),
    (
        "updated_at",
        "DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)",
    ),
    ("priority", "INT NOT NULL DEFAULT 0"),
    ("progress", "INT NOT NULL DEFAULT 0"),
    ("max_attempts", "INT NOT NULL DEFAULT 3"),
    (
        "run_at",
        "DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)",
    ),
    ("lease_token", "VARCHAR(64) NULL"),
    ("lease_expires_at", "DATETIME(6) NULL"),
    (
        "dedupe_scope",
        "ENUM('always','active') NOT NULL DEFAULT 'always'",
    ),
    // Holds the dedupe key while it blocks new tasks: always for scope `always`, only while
    // pending/claimed for scope `active`. The UNIQUE index on it makes dedupe race-free.
    ("dedupe_lock", "VARCHAR(191) NULL"),
    // Random id of the enqueue call that inserted the row: tells a batch which rows it created.
    ("enqueue_token", "CHAR(32) NULL"),
];

const HISTORY_COLUMNS: &[(&str, &str)] = &[
    ("id", "BIGINT NOT NULL AUTO_INCREMENT"),
    ("task_id", "BIGINT NOT NULL"),
    ("status_change", "VARCHAR(32) NOT NULL"),
    ("worker_id", "VARCHAR(255) NULL"),
    ("message", "TEXT NULL"),
    (
        "created_at",
        "DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)",
    ),
];

/// The indexes of migrations 2 and 3, which a fresh database walks through too: one per claim
/// order, each led by `status`. Migration 6 adds the lean ones beside them and 7 drops these but
/// the first three (see lean_layout.rs).
const TASK_INDEXES: &[IndexSpec] = &[
    ("uq_tasks_dedupe_lock", true, "dedupe_lock"),
    ("idx_tasks_dedupe_key", false, "dedupe_key"),
    ("idx_tasks_claim", false, "status, priority DESC, id"),
    (
        "idx_tasks_type_claim",
        false,
        "type_id, status, priority DESC, id",
    ),
    ("idx_tasks_lease", false, "status, lease_expires_at"),
    ("idx_tasks_created_at", false, "created_at"),
    // The claim orders of the HTTP API (`sort_by`): each direction is one scan of one of these.
    ("idx_tasks_claim_by_id", false, "status, id"),
    (
        "idx_tasks_claim_by_created",
        false,
        "status, created_at, id",
    ),
    ("idx_tasks_claim_by_priority", false, "status, priority, id"),
    ("idx_tasks_claim_by_attempts", false, "status, attempts, id"),
    // Finished tasks by age: retention (prune) and the throughput of the last hour (stats).
    ("idx_tasks_finished", false, "status, completed_at"),
];

/// Indexes of the original (or of an earlier upgrade) that the ones above replace, by their
/// columns: whatever they are named, they go. Indexes on other columns are left alone.
const TASK_INDEXES_REPLACED: &[&[&str]] = &[
    &["dedupe_key"],
    &["type_id", "status"],
    &["status"],
    &["created_at"],
    &["priority"],
    &["progress"],
    &["claimed_at"],
];

const TYPE_INDEXES: &[IndexSpec] = &[
    ("uk_name", true, "name"),
    ("idx_is_active", false, "is_active"),
];
const TYPE_INDEXES_REPLACED: &[&[&str]] = &[&["name"], &["is_active"]];

const HISTORY_INDEXES: &[IndexSpec] = &[
    ("idx_task_id", false, "task_id"),
    ("idx_created_at", false, "created_at"),
];
const HISTORY_INDEXES_REPLACED: &[&[&str]] = &[&["task_id"], &["created_at"]];

/// The foreign keys: a type deleted takes its tasks, and a task its history, as in the
/// original (plain-SQL scripts delete types and expect that).
pub(super) const FOREIGN_KEYS: &[(&str, &str, &str)] = &[
    (
        "tasks",
        "fk_tasks_type",
        "FOREIGN KEY (type_id) REFERENCES task_types (id) ON DELETE CASCADE",
    ),
    (
        "task_history",
        "fk_history_task",
        "FOREIGN KEY (task_id) REFERENCES tasks (id) ON DELETE CASCADE",
    ),
];

pub(super) fn upgrade_original(step: &mut Step) -> Result<()> {
    // Foreign keys pin column types; drop them first and add them back with the new types.
    step.drop_foreign_keys("tasks")?;
    step.drop_foreign_keys("task_history")?;

    // The original's columns allowed NULL where these are NOT NULL; such a value becomes the
    // column's default instead of stopping the upgrade. A NULL is_active is the exception: the
    // original's queries (`is_active = 1`) treated it as inactive, and so it stays.
    step.exec("UPDATE task_types SET is_active = 0 WHERE is_active IS NULL")?;
    step.fill_nulls("task_types", TASK_TYPES_COLUMNS)?;
    step.fill_nulls("tasks", TASKS_COLUMNS)?;
    step.reshape("task_types", TASK_TYPES_COLUMNS)?;
    step.reshape("tasks", TASKS_COLUMNS)?;
    step.reshape("task_history", HISTORY_COLUMNS)?;

    // Every existing task was deduplicated forever by the original; keep it that way.
    step.exec("UPDATE tasks SET dedupe_lock = dedupe_key WHERE dedupe_lock IS NULL AND dedupe_scope = 'always'")?;
    // Tasks claimed by the original system get the lease it implied (claimed_at + timeout).
    let timeout = step.claim_timeout_secs;
    step.exec(&format!(
        "UPDATE tasks SET lease_expires_at = COALESCE(claimed_at, updated_at) + INTERVAL {timeout} SECOND \
         WHERE status = 'claimed' AND lease_expires_at IS NULL"
    ))?;

    step.replace_indexes("task_types", TYPE_INDEXES, TYPE_INDEXES_REPLACED)?;
    step.replace_indexes("tasks", TASK_INDEXES, TASK_INDEXES_REPLACED)?;
    step.replace_indexes("task_history", HISTORY_INDEXES, HISTORY_INDEXES_REPLACED)?;
    // Checked row by row here: a task whose type is gone, or history whose task is gone
    // (possible in a database restored without its keys), stops the upgrade with the server's
    // message; delete those rows and run migrate again to finish.
    step.add_foreign_keys(true)
}

/// For databases upgraded by an earlier migration 2 (INT versions, RESTRICT on type delete,
/// no claim-order or retention indexes); on the others every step finds nothing to do.
pub(super) fn text_versions_claim_orders(step: &mut Step) -> Result<()> {
    step.reshape("task_types", TASK_TYPES_COLUMNS)?;
    // Index changes may touch the indexes the keys rest on: keys off, indexes, keys back on.
    step.drop_foreign_keys("tasks")?;
    step.drop_foreign_keys("task_history")?;
    step.replace_indexes("task_types", TYPE_INDEXES, TYPE_INDEXES_REPLACED)?;
    step.replace_indexes("tasks", TASK_INDEXES, TASK_INDEXES_REPLACED)?;
    step.replace_indexes("task_history", HISTORY_INDEXES, HISTORY_INDEXES_REPLACED)?;
    // These keys held until a moment ago: re-adding them needs no check (and no table copy).
    step.add_foreign_keys(false)
}
