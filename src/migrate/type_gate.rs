//! Migration 11: the enqueue's type gate as a foreign key.
//!
//! An enqueue may write a task only while its type is active at the version its params were
//! validated against. The procedures up to generation 10 read the type row for that, a
//! statement of its own in every enqueue. From generation 11 the task names the type and
//! version as its gate (`gate_type_id`, `gate_version`), and a foreign key refers them to
//! `task_types (id, active_version)`, where `active_version` is a stored generated column: the
//! version while the type is active, NULL otherwise. So the key exists only while the gate is
//! open, InnoDB's own check on the INSERT refuses a task of a deactivated or replaced type, and
//! its shared lock holds a concurrent change of the type until the enqueue commits.
//!
//! A change of the type's version or activity changes the key: `ON UPDATE SET NULL` clears the
//! gate of every task still naming it, which the claim keeps to the never-claimed ones by
//! clearing the gate itself. Rows written by plain SQL leave the gate NULL and are not checked.
//! No trigger is needed, so the migration needs no privilege beyond the earlier ones.
//!
//! Each step reads `information_schema` first; an interrupted run is finished by running it
//! again.

use super::{Step, has_column};
use crate::error::Result;

/// The gate's column on `task_types`: the version, while the type is active.
const ACTIVE_VERSION: (&str, &str) = (
    "active_version",
    "VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin \
     AS (IF(is_active = 1, version, NULL)) STORED",
);

/// The gate's columns on `tasks`: set by the enqueue, cleared by the claim.
const TASK_GATE_COLUMNS: &[(&str, &str)] = &[
    ("gate_type_id", "BIGINT NULL"),
    (
        "gate_version",
        "VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL",
    ),
];

/// The key the gate refers to, and the index its foreign key needs.
const TYPE_GATE_KEY: (&str, &str) = ("uq_task_types_gate", "id, active_version");
const TASK_GATE_INDEX: (&str, &str) = ("idx_tasks_gate", "gate_type_id, gate_version");

/// InnoDB checks a new row's foreign keys as it writes each key's index, in the table's index
/// order; this index comes after `idx_tasks_type_ready` (which serves `fk_tasks_type`), so an
/// enqueue locks the type row before the gate key, in the order a change of the type takes
/// them, and the two wait for each other instead of deadlocking.
const TASK_GATE_FOREIGN_KEY: &str = "fk_tasks_type_gate";

pub(super) fn add(step: &mut Step, procedures: &str) -> Result<()> {
    let mut types = Vec::new();
    if !has_column(&step.columns("task_types")?, ACTIVE_VERSION.0) {
        types.push(format!(
            "ADD COLUMN `{}` {}",
            ACTIVE_VERSION.0, ACTIVE_VERSION.1
        ));
    }
    if !step.indexes("task_types")?.contains_key(TYPE_GATE_KEY.0) {
        types.push(format!(
            "ADD UNIQUE INDEX {} ({})",
            TYPE_GATE_KEY.0, TYPE_GATE_KEY.1
        ));
    }
    if !types.is_empty() {
        step.exec(&format!("ALTER TABLE task_types {}", types.join(", ")))?;
    }
    // The columns and the index in two statements: nullable columns at the end are added
    // without copying `tasks` (MariaDB 10.3+, MySQL 8.0.12+), and an index is built in place,
    // where the two in one ALTER rebuild the table.
    let existing = step.columns("tasks")?;
    let columns: Vec<String> = TASK_GATE_COLUMNS
        .iter()
        .filter(|(name, _)| !has_column(&existing, name))
        .map(|(name, definition)| format!("ADD COLUMN `{name}` {definition}"))
        .collect();
    if !columns.is_empty() {
        step.exec(&format!("ALTER TABLE tasks {}", columns.join(", ")))?;
    }
    if !step.indexes("tasks")?.contains_key(TASK_GATE_INDEX.0) {
        step.exec(&format!(
            "ALTER TABLE tasks ADD INDEX {} ({})",
            TASK_GATE_INDEX.0, TASK_GATE_INDEX.1
        ))?;
    }
    if !step
        .foreign_keys("tasks")?
        .iter()
        .any(|name| name == TASK_GATE_FOREIGN_KEY)
    {
        // Every existing row has a NULL gate, which no check would refuse: without the row
        // check the server adds the key in place instead of copying the table.
        step.without_key_checks(|step| {
            step.exec(&format!(
                "ALTER TABLE tasks ADD CONSTRAINT {TASK_GATE_FOREIGN_KEY} \
                 FOREIGN KEY (gate_type_id, gate_version) \
                 REFERENCES task_types (id, active_version) ON DELETE SET NULL ON UPDATE SET NULL"
            ))
        })?;
    }
    step.exec_client_file(procedures)
}
