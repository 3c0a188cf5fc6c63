//! Claims on the embedded engine. A claim is one statement in one `BEGIN IMMEDIATE`
//! transaction with its history rows:
//!
//! ```sql
//! UPDATE tasks SET status = 'claimed', ... WHERE id IN (SELECT id FROM tasks WHERE status =
//! 'pending' AND run_at <= now ORDER BY ... LIMIT n) RETURNING ...
//! ```
//!
//! The file has one writer at a time, so two claimers can never pick the same task: what
//! SKIP LOCKED does on a server, the write lock does here. Expired leases are recovered by
//! claims lazily (once a second per process, and when a claim comes up short).

use super::finish::complete_step;
use super::{SqlResult, Store, clock, history, history_rows, release_active_key};
use crate::Config;
use crate::error::Result;
use crate::queue::Finished;
use crate::queue::claim::{
    ClaimOptions, ClaimReport, ClaimedTask, CompletedAndClaimed, Recovery, Wanted, check_claim,
    check_complete_and_claim,
};
use crate::queue::lifecycle::{Change, ClaimOrder, SortColumn, Status};
use crate::queue::like::like_pattern;
use crate::random::random_hex;
use crate::row;
use crate::sql::escape_like;
use rusqlite::Transaction;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Claims, waiting up to `wait_seconds` for a task when none is claimable.
pub(crate) fn claim(
    store: &Store,
    config: &Config,
    worker_id: &str,
    options: &ClaimOptions,
) -> Result<ClaimReport> {
    let wanted = check_claim(config, worker_id, options)?;
    let deadline = wait_deadline(options.wait_seconds)?;
    let mut pause = Duration::from_millis(50);
    loop {
        let seen = store.signals();
        let leased =
            store.write_lease(|tx| claim_in(store, tx, config, worker_id, options, &wanted))?;
        let tasks = checked(leased)?;
        let now = Instant::now();
        match deadline {
            Some(deadline) if tasks.is_empty() && now < deadline => {
                // Holds nothing while it waits: this process's enqueues wake it at once,
                // other processes' tasks are found by the next try.
                store.wait_for_signal(seen, pause.min(deadline - now));
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            _ => {
                return Ok(ClaimReport {
                    tasks,
                    next_allowed_at: None,
                });
            }
        }
    }
}

/// The end of a waiting claim (`wait_seconds`, 0 to 60), as the server engine checks it.
fn wait_deadline(wait_seconds: Option<f64>) -> Result<Option<Instant>> {
    crate::flow::wait::deadline(wait_seconds)
}

/// Completes the task a worker holds and claims its next in one transaction (one commit).
pub(crate) fn complete_and_claim(
    store: &Store,
    config: &Config,
    done: (i64, &str, &Value),
    worker_id: &str,
    options: &ClaimOptions,
) -> Result<CompletedAndClaimed> {
    let (id, token, _) = done;
    let (result_text, wanted) = check_complete_and_claim(config, done, worker_id, options)?;
    wait_deadline(options.wait_seconds)?;
    let (repeated, claimed) = store.write(|tx| {
        // A stale token is LeaseLost and claims nothing: the error rolls the transaction back.
        let repeated = complete_step(store, tx, config, id, token, &result_text)?;
        let claimed = claim_in(store, tx, config, worker_id, options, &wanted)?;
        Ok((repeated, claimed))
    })?;
    store.signal();
    let claimed = checked(claimed)?;
    let claimed = if claimed.is_empty() && options.wait_seconds.is_some_and(|s| s > 0.0) {
        claim(store, config, worker_id, options)?.tasks
    } else {
        claimed
    };
    Ok(CompletedAndClaimed {
        completed: Finished {
            id,
            status: Status::Completed,
            repeated,
        },
        claimed,
    })
}

/// One claim inside the caller's transaction: recovery when due, the pick, and a second pick
/// after a recovery pass when the first came up short.
fn claim_in(
    store: &Store,
    tx: &Transaction<'_>,
    config: &Config,
    worker_id: &str,
    options: &ClaimOptions,
    wanted: &Wanted,
) -> Result<Vec<Leased>> {
    let Some(type_ids) = type_filter(store, tx, options)? else {
        return Ok(Vec::new());
    };
    let now = clock::now_micros();
    let recovered_first = store.lazy_recovery_due();
    if recovered_first {
        recover(store, tx, config, 100, now)?;
    }
    let mut tasks = pick(
        store,
        tx,
        config,
        worker_id,
        wanted,
        wanted.limit,
        &type_ids,
        now,
    )?;
    if tasks.len() < wanted.limit as usize
        && !recovered_first
        && recover(store, tx, config, 100, now)? > 0
    {
        let rest = wanted.limit - tasks.len() as u32;
        tasks.extend(pick(
            store, tx, config, worker_id, wanted, rest, &type_ids, now,
        )?);
    }
    Ok(tasks)
}

/// The types a claim may take: any (`None`) or these ids (integers from the file or the
/// caller's checked list).
struct TypeFilter(Option<Vec<i64>>);

impl TypeFilter {
    /// The filter as a condition on `column` to append to a `WHERE` (empty for any type).
    fn sql(&self, column: &str) -> String {
        match &self.0 {
            None => String::new(),
            Some(ids) => {
                let list: Vec<String> = ids.iter().map(i64::to_string).collect();
                format!("AND {column} IN ({})", list.join(", "))
            }
        }
    }
}

/// The claim's type filter; `None` when it matches no type.
fn type_filter(
    store: &Store,
    tx: &Transaction<'_>,
    options: &ClaimOptions,
) -> Result<Option<TypeFilter>> {
    let by_name: Option<Vec<i64>> =
        match (&options.types, &options.type_prefix, &options.type_pattern) {
            (Some(names), _, _) => {
                let mut find = tx
                    .prepare_cached("SELECT id FROM task_types WHERE name = ?1")
                    .sql(store)?;
                let mut ids = Vec::new();
                for name in names {
                    let found: Vec<i64> = find
                        .query_map([name], |r| r.get(0))
                        .sql(store)?
                        .collect::<rusqlite::Result<_>>()
                        .sql(store)?;
                    ids.extend(found);
                }
                Some(ids)
            }
            (None, Some(prefix), _) => Some(type_ids_like(
                store,
                tx,
                &format!("{}%", escape_like(prefix)),
            )?),
            (None, None, Some(pattern)) => Some(type_ids_like(
                store,
                tx,
                &like_pattern(pattern, "type_pattern")?,
            )?),
            (None, None, None) => None,
        };
    let ids = match (by_name, &options.type_ids) {
        (None, None) => return Ok(Some(TypeFilter(None))),
        (None, Some(wanted)) => wanted.clone(),
        (Some(found), None) => found,
        (Some(found), Some(wanted)) => found.into_iter().filter(|id| wanted.contains(id)).collect(),
    };
    Ok((!ids.is_empty()).then_some(TypeFilter(Some(ids))))
}

fn type_ids_like(store: &Store, tx: &Transaction<'_>, pattern: &str) -> Result<Vec<i64>> {
    tx.prepare_cached("SELECT id FROM task_types WHERE name LIKE ?1 ESCAPE '!'")
        .sql(store)?
        .query_map([pattern], |r| r.get(0))
        .sql(store)?
        .collect::<rusqlite::Result<_>>()
        .sql(store)
}

/// `ORDER BY` of an HTTP API claim order (`sort_by`); every order ends with the id, so the pick is deterministic.
/// `created_at` order is id order, as on a server (which serves both from one index): the two
/// follow insertion, and where they disagree (the clock stepped back, a row changed by hand)
/// the engines must still hand out the same task.
fn sort_sql(column: SortColumn, descending: bool) -> String {
    let dir = if descending { "DESC" } else { "ASC" };
    match column {
        SortColumn::CreatedAt | SortColumn::Id => format!("id {dir}"),
        SortColumn::Priority => format!("priority {dir}, id {dir}"),
        SortColumn::Attempts => format!("attempts {dir}, id {dir}"),
    }
}

/// The `SELECT` of the ids a claim leases (`?2`: now, `?5`: how many).
///
/// In the library's order (highest priority first, then oldest) each type's runnable tasks are
/// read from the type's index, the first `?5` of each, and the best `?5` of those are taken:
/// one index serves claims of one type, of a list and of any type, and an enqueue or a claim
/// writes one index entry of the pending tasks, not two (an index over every type's pending
/// tasks cost each enqueue a page of the log). The HTTP API's orders sort the runnable tasks.
///
/// `LIMIT +?5`, not `LIMIT ?5`: a bare parameter as the limit of a subquery makes SQLite
/// prepare the statement again at every run (a quarter of a claim's time); the unary plus
/// keeps one prepared plan.
fn picked_ids(order: ClaimOrder, types: &TypeFilter) -> String {
    match order {
        ClaimOrder::PriorityThenAge => format!(
            "SELECT t.id FROM task_types y JOIN tasks t ON t.id IN ( \
               SELECT id FROM tasks INDEXED BY idx_tasks_type_ready \
               WHERE type_id = y.id AND status = 'pending' AND run_at <= ?2 \
               ORDER BY priority DESC, id LIMIT +?5) \
             WHERE TRUE {} ORDER BY t.priority DESC, t.id LIMIT +?5",
            types.sql("y.id")
        ),
        ClaimOrder::By(column, descending) => format!(
            "SELECT id FROM tasks WHERE status = 'pending' AND run_at <= ?2 {} \
             ORDER BY {} LIMIT +?5",
            types.sql("type_id"),
            sort_sql(column, descending)
        ),
    }
}

/// Leases up to `limit` runnable tasks in one statement, with their history rows.
#[allow(clippy::too_many_arguments)]
fn pick(
    store: &Store,
    tx: &Transaction<'_>,
    config: &Config,
    worker_id: &str,
    wanted: &Wanted,
    limit: u32,
    type_filter: &TypeFilter,
    now: i64,
) -> Result<Vec<Leased>> {
    let statement = format!(
        "UPDATE tasks SET status = 'claimed', attempts = attempts + 1, claimed_by = ?1, \
         claimed_at = ?2, lease_expires_at = ?3, lease_token = ?4 || '.' || id, progress = 0, \
         updated_at = ?2 \
         WHERE id IN ({}) \
         RETURNING id, type_id, params_json, priority, attempts, max_attempts, lease_expires_at, \
                   lease_token",
        picked_ids(wanted.order, type_filter)
    );
    let lease_ends = now + clock::seconds(wanted.lease_seconds);
    let token_prefix = random_hex();
    let mut rows: Vec<Leased> = tx
        .prepare_cached(&statement)
        .sql(store)?
        .query_map((worker_id, now, lease_ends, &token_prefix, limit), |r| {
            let params: String = r.get(2)?;
            Ok(Leased {
                task: ClaimedTask {
                    id: r.get(0)?,
                    type_name: String::new(),
                    params: serde_json::from_str(&params).unwrap_or(Value::Null),
                    priority: 0,
                    attempts: 0,
                    max_attempts: 0,
                    lease_expires_at: clock::iso(r.get(6)?),
                    lease_token: r.get(7)?,
                },
                type_id: r.get(1)?,
                priority: r.get(3)?,
                attempts: r.get(4)?,
                max_attempts: r.get(5)?,
            })
        })
        .sql(store)?
        .collect::<rusqlite::Result<_>>()
        .sql(store)?;
    // RETURNING gives rows in no promised order: the claim's order is the answer's.
    rows.sort_by(|a, b| match wanted.order {
        ClaimOrder::PriorityThenAge => b.priority.cmp(&a.priority).then(a.task.id.cmp(&b.task.id)),
        ClaimOrder::By(column, descending) => {
            let ordering = match column {
                SortColumn::CreatedAt | SortColumn::Id => std::cmp::Ordering::Equal,
                SortColumn::Priority => a.priority.cmp(&b.priority),
                SortColumn::Attempts => a.attempts.cmp(&b.attempts),
            }
            .then(a.task.id.cmp(&b.task.id));
            if descending {
                ordering.reverse()
            } else {
                ordering
            }
        }
    });
    for leased in &mut rows {
        leased.task.type_name = store.type_name(tx, leased.type_id)?;
    }
    if config.enable_task_history {
        let claimed: Vec<(i64, Option<&str>)> =
            rows.iter().map(|t| (t.task.id, Some(worker_id))).collect();
        history_rows(store, tx, &claimed, Change::Claimed, now)?;
    }
    Ok(rows)
}

/// A task a claim leased, as its transaction read it. Its numbers are checked after the
/// commit: a value changed by hand must not undo the claim (as on the server, the lease stands
/// and runs out like a crashed worker's), and the error names the column and the task.
pub(super) struct Leased {
    task: ClaimedTask,
    type_id: i64,
    priority: i64,
    attempts: i64,
    max_attempts: i64,
}

/// The claimed tasks, every number checked.
fn checked(leased: Vec<Leased>) -> Result<Vec<ClaimedTask>> {
    leased
        .into_iter()
        .map(|l| {
            let subject = format!("task {}", l.task.id);
            let text = |n: i64| n.to_string();
            Ok(ClaimedTask {
                priority: row::parsed(&subject, "priority", &text(l.priority), |t| t.parse().ok())?,
                attempts: row::parsed(&subject, "attempts", &text(l.attempts), |t| t.parse().ok())?,
                max_attempts: row::parsed(&subject, "max_attempts", &text(l.max_attempts), |t| {
                    t.parse().ok()
                })?,
                ..l.task
            })
        })
        .collect()
}

/// Turns up to `limit` expired leases into failed attempts: back to pending while attempts
/// remain, else failed. Answers how many it recovered.
pub(super) fn recover(
    store: &Store,
    tx: &Transaction<'_>,
    config: &Config,
    limit: u32,
    now: i64,
) -> Result<u64> {
    Ok(recover_counted(store, tx, config, limit, now)?.recovered)
}

fn recover_counted(
    store: &Store,
    tx: &Transaction<'_>,
    config: &Config,
    limit: u32,
    now: i64,
) -> Result<Recovery> {
    // `LIMIT +?2`: see `pick`.
    const RECOVER: &str = "\
UPDATE tasks SET
  completed_at = CASE WHEN attempts >= max_attempts THEN ?1 END,
  error_message = 'lease expired during attempt ' || attempts || ' of ' || max_attempts,
  run_at = ?1, lease_expires_at = NULL, updated_at = ?1,
  status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END
WHERE id IN (SELECT id FROM tasks WHERE status = 'claimed' AND lease_expires_at <= ?1
             ORDER BY lease_expires_at LIMIT +?2)
RETURNING id, status, claimed_by";
    let rows: Vec<(i64, String, Option<String>)> = tx
        .prepare_cached(RECOVER)
        .sql(store)?
        .query_map((now, limit), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .sql(store)?
        .collect::<rusqlite::Result<_>>()
        .sql(store)?;
    let mut report = Recovery::default();
    for (id, status, worker) in rows {
        report.recovered += 1;
        if status == Status::Failed.as_str() {
            report.failed += 1;
            release_active_key(store, tx, id)?;
        } else {
            report.requeued += 1;
        }
        if config.enable_task_history {
            history(
                store,
                tx,
                id,
                Change::LeaseExpired,
                worker.as_deref(),
                Some("lease expired: counted as a failed attempt"),
                now,
            )?;
        }
    }
    Ok(report)
}

/// Recovers every expired lease, in transactions of at most 500 tasks.
pub(crate) fn recover_expired(store: &Store, config: &Config) -> Result<Recovery> {
    const BATCH: u32 = 500;
    let mut total = Recovery::default();
    loop {
        let round =
            store.write(|tx| recover_counted(store, tx, config, BATCH, clock::now_micros()))?;
        total.recovered += round.recovered;
        total.requeued += round.requeued;
        total.failed += round.failed;
        if round.recovered < u64::from(BATCH) {
            if total.requeued > 0 {
                store.signal();
            }
            return Ok(total);
        }
    }
}
