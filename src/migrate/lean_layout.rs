//! The lean layout (migrations 6 and 7): a task pays for an index only while it is in the
//! status that index serves.
//!
//! Before it, eight of the eleven secondary indexes of `tasks` began with `status`, so every
//! status change rewrote eight index entries. Now each claim order, the lease scan and the
//! retention scan read an index over a *stored generated column* that holds a value only in
//! the status it serves and NULL otherwise (`pending_priority` is the priority of a pending
//! task, NULL for any other). A status change rewrites an entry only where the column's value
//! changes: a claim touches the pending-side indexes and the lease index, a complete touches the
//! lease index and the finished index, and nothing else.
//!
//! The columns are computed by the server, so a row written with plain SQL (the original's
//! scripts, an operator's `UPDATE tasks SET status = 'pending'`) is in the right index at once.
//!
//! The change comes in two steps so that a rolling deploy keeps working:
//! - **6, expand**: adds the columns, their indexes and generation 6 of the stored procedures.
//!   The superseded indexes stay, so the previous release, whose statements name them, runs
//!   beside this one. This release needs a database at version 6 or later.
//! - **7, contract**: drops the superseded indexes and the previous generations' procedures.
//!   `migrate` runs it with the rest; during a rolling deploy, `migrate --to 6` first, and the
//!   plain `migrate` once no process of the previous release is left.
//!
//! Each step reads `information_schema` before it changes anything, so an interrupted run is
//! finished by running it again.

use super::{IndexSpec, Step, has_column};
use crate::error::Result;

/// The stored generated columns: name and definition. Each is NULL outside the status it
/// serves, so its index is untouched by the changes between the other statuses.
pub(super) const GENERATED_COLUMNS: &[(&str, &str)] = &[
    (
        "pending_priority",
        "INT AS (IF(status = 'pending', priority, NULL)) STORED",
    ),
    (
        "pending_attempts",
        "INT AS (IF(status = 'pending', attempts, NULL)) STORED",
    ),
    (
        "is_pending",
        "TINYINT AS (IF(status = 'pending', 1, NULL)) STORED",
    ),
    // A task claimed by hand (no lease of ours) sorts first; the recovery checks its
    // claimed_at against the claim timeout (see lease_ran_out).
    (
        "claimed_until",
        "DATETIME(6) AS (IF(status = 'claimed', COALESCE(lease_expires_at, \
         TIMESTAMP'1970-01-01 00:00:01'), NULL)) STORED",
    ),
    (
        "finished_status",
        "ENUM('completed','failed','cancelled') AS \
         (IF(status IN ('completed','failed','cancelled'), status, NULL)) STORED",
    ),
];

/// The indexes over them, one per scan the queue makes (see `ClaimOrder::index`).
pub(super) const LEAN_INDEXES: &[IndexSpec] = &[
    // The library's order (highest priority first, then oldest), any type or a type list.
    ("idx_tasks_ready", false, "pending_priority DESC, id"),
    // The same for one type; it also serves the foreign key on type_id.
    (
        "idx_tasks_type_ready",
        false,
        "type_id, pending_priority DESC, id",
    ),
    // The HTTP API's orders: by id (and created_at, which follows id), by priority with ties
    // in the same direction, by attempts; either direction is one scan.
    ("idx_tasks_ready_by_id", false, "is_pending, id"),
    ("idx_tasks_ready_by_priority", false, "pending_priority, id"),
    ("idx_tasks_ready_by_attempts", false, "pending_attempts, id"),
    // Leases by expiry: lazy and explicit recovery, the held-tasks stats.
    ("idx_tasks_leased", false, "claimed_until"),
    // Finished tasks by age: retention and throughput; type_id makes the counts index-only.
    (
        "idx_tasks_done",
        false,
        "finished_status, completed_at, type_id",
    ),
];

/// The indexes of migration 3 that the lean ones replace: each began with `status` (or with
/// `type_id, status`) and changed on every status change. And two that every enqueue paid for
/// and no step reads: `dedupe_key` (dedupe is decided by the unique `dedupe_lock`; its random
/// keys made each insert touch a random page of a second index) and `created_at` (claims in
/// created_at order follow id; lists page by id).
const SUPERSEDED_INDEXES: &[&str] = &[
    "idx_tasks_dedupe_key",
    "idx_tasks_created_at",
    "idx_tasks_claim",
    "idx_tasks_type_claim",
    "idx_tasks_lease",
    "idx_tasks_claim_by_id",
    "idx_tasks_claim_by_created",
    "idx_tasks_claim_by_priority",
    "idx_tasks_claim_by_attempts",
    "idx_tasks_finished",
];

/// The stored procedures of generations 4 and 5: their bodies name the superseded indexes.
const SUPERSEDED_PROCEDURES: &[&str] = &[
    "tm_enqueue",
    "tm_claim_next",
    "tm_complete",
    "tm_complete_and_claim",
    "tm5_enqueue",
    "tm5_claim_next",
    "tm5_complete",
    "tm5_complete_and_claim",
];

/// Migration 6: the generated columns and their indexes in one ALTER (one table copy), then
/// the procedures of generation 6 (`procedures` is their committed file).
pub(super) fn expand(step: &mut Step, procedures: &str) -> Result<()> {
    let columns = step.columns("tasks")?;
    let indexes = step.indexes("tasks")?;
    let mut changes: Vec<String> = GENERATED_COLUMNS
        .iter()
        .filter(|(name, _)| !has_column(&columns, name))
        .map(|(name, definition)| format!("ADD COLUMN `{name}` {definition}"))
        .collect();
    changes.extend(
        LEAN_INDEXES
            .iter()
            .filter(|(name, ..)| !indexes.contains_key(*name))
            .map(|(name, _, columns)| format!("ADD INDEX {name} ({columns})")),
    );
    if !changes.is_empty() {
        step.exec(&format!("ALTER TABLE tasks {}", changes.join(", ")))?;
    }
    step.exec_client_file(procedures)
}

/// Migration 7: drops what the lean layout superseded.
pub(super) fn contract(step: &mut Step) -> Result<()> {
    let indexes = step.indexes("tasks")?;
    let drops: Vec<String> = SUPERSEDED_INDEXES
        .iter()
        .filter(|name| indexes.contains_key(**name))
        .map(|name| format!("DROP INDEX `{name}`"))
        .collect();
    if !drops.is_empty() {
        step.exec(&format!("ALTER TABLE tasks {}", drops.join(", ")))?;
    }
    for name in SUPERSEDED_PROCEDURES {
        step.exec(&format!("DROP PROCEDURE IF EXISTS {name}"))?;
    }
    Ok(())
}
