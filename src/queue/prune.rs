//! Retention: deletes tasks that finished (completed, failed, cancelled) longer ago than a
//! given age, with their history, in small transactions while the queue keeps running.
//!
//! Each batch is two round trips: a lock-free read of up to `batch_size` ids from the index on
//! `(status, completed_at)` (only rows that will be deleted are read, no scan of the rest),
//! then one transaction that deletes them by primary key, each re-checked. Locks are held for
//! one batch only and never touch pending or claimed tasks, so workers do not wait on a prune.
//!
//! A pruned task's dedupe key is free again: the same work can be enqueued anew.

use crate::database::Database;
use crate::error::{Error, Result};
use crate::queue::engine::{Engine, Pruned};
use crate::queue::lifecycle::{PRUNABLE, Status};
use serde::{Deserialize, Serialize};

/// What to prune.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneOptions {
    /// Only tasks that finished at least this many seconds ago (required; 0 prunes every
    /// finished task).
    pub older_than_seconds: u64,
    /// Only tasks in these statuses (default: completed, failed and cancelled).
    pub statuses: Option<Vec<String>>,
    /// Tasks per transaction, 1..=5000 (default 500): smaller batches hold locks for less time.
    pub batch_size: Option<u32>,
    /// Count what would be deleted and delete nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Stop after this many batches (the report then says `done: false`): bounds one call.
    pub max_batches: Option<u64>,
}

/// What a prune did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PruneReport {
    /// Tasks deleted (with `dry_run`: that would be deleted).
    pub tasks: u64,
    /// History rows deleted with them (0 with `dry_run`).
    pub history: u64,
    /// Transactions it took.
    pub batches: u64,
    /// False when `max_batches` stopped it before everything old enough was gone.
    pub done: bool,
    /// Whether this was a dry run (nothing deleted).
    pub dry_run: bool,
}

const MAX_AGE_SECONDS: u64 = 100 * 365 * 86_400;

struct Checked {
    statuses: Vec<Status>,
    batch: u32,
}

fn check(options: &PruneOptions) -> Result<Checked> {
    if options.older_than_seconds > MAX_AGE_SECONDS {
        return Err(Error::invalid(format!(
            "older_than_seconds must be from 0 to {MAX_AGE_SECONDS}"
        )));
    }
    let batch = options.batch_size.unwrap_or(500);
    if batch == 0 || batch > 5000 {
        return Err(Error::invalid(format!(
            "batch_size must be from 1 to 5000, got {batch}"
        )));
    }
    if options.max_batches == Some(0) {
        return Err(Error::invalid("max_batches must be at least 1"));
    }
    let statuses = match &options.statuses {
        None => PRUNABLE.to_vec(),
        Some(names) if names.is_empty() => {
            return Err(Error::invalid("statuses must list at least one status"));
        }
        Some(names) => names
            .iter()
            .map(|name| {
                Status::parse(name)
                    .filter(|s| PRUNABLE.contains(s))
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "only finished tasks can be pruned: statuses may hold completed, \
                             failed and cancelled, got '{name}'"
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?,
    };
    Ok(Checked { statuses, batch })
}

/// Prunes; `progress` hears the running totals after every batch.
pub(crate) fn prune(
    db: &Database,
    options: &PruneOptions,
    progress: &mut dyn FnMut(&PruneReport),
) -> Result<PruneReport> {
    run(options, progress, &mut ServerSteps(db))
}

/// The reads and deletes of a prune, as an engine runs them.
pub(crate) trait PruneSteps {
    /// How many tasks in `statuses` finished more than `age` seconds ago.
    fn count(&mut self, statuses: &[Status], age: u64) -> Result<u64>;
    /// Up to `limit` ids of tasks in `status` that finished more than `age` seconds ago,
    /// oldest first, read without locks.
    fn page(&mut self, status: Status, age: u64, limit: u32) -> Result<Vec<i64>>;
    /// Deletes, in one transaction, the tasks `ids` still in `status` and still older than
    /// `age`, with their history. Repeatable: a batch that committed before its answer was
    /// lost deletes nothing the second time.
    fn delete(&mut self, status: Status, ids: &[i64], age: u64) -> Result<Pruned>;
}

struct ServerSteps<'a>(&'a Database);

impl PruneSteps for ServerSteps<'_> {
    fn count(&mut self, statuses: &[Status], age: u64) -> Result<u64> {
        let db = self.0;
        db.run(|conn, _| Engine::of(db).prune_count(conn, statuses, age))
    }

    fn page(&mut self, status: Status, age: u64, limit: u32) -> Result<Vec<i64>> {
        let db = self.0;
        db.run(|conn, _| Engine::of(db).prune_page(conn, status, age, limit))
    }

    fn delete(&mut self, status: Status, ids: &[i64], age: u64) -> Result<Pruned> {
        let db = self.0;
        db.run(|conn, _| Engine::of(db).prune(conn, status, ids, age))
    }
}

/// A prune on any engine: checks the options, then deletes batch by batch (or only counts,
/// with `dry_run`), telling `progress` the running totals after every batch.
pub(crate) fn run(
    options: &PruneOptions,
    progress: &mut dyn FnMut(&PruneReport),
    steps: &mut dyn PruneSteps,
) -> Result<PruneReport> {
    let checked = check(options)?;
    let age = options.older_than_seconds;
    let mut report = PruneReport {
        dry_run: options.dry_run,
        ..PruneReport::default()
    };
    if options.dry_run {
        report.tasks = steps.count(&checked.statuses, age)?;
        report.done = true;
        progress(&report);
        return Ok(report);
    }
    for status in checked.statuses {
        loop {
            if options.max_batches.is_some_and(|max| report.batches >= max) {
                return Ok(report);
            }
            let ids = steps.page(status, age, checked.batch)?;
            if ids.is_empty() {
                break;
            }
            let Pruned { history, tasks } = steps.delete(status, &ids, age)?;
            report.history += history;
            report.tasks += tasks;
            report.batches += 1;
            progress(&report);
            // A short page is the last; a page none of which could be deleted (changed since
            // it was read) would only be read again.
            if ids.len() < checked.batch as usize || tasks == 0 {
                break;
            }
        }
    }
    report.done = true;
    Ok(report)
}
