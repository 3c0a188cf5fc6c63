//! Stats on the embedded engine: the server engine's figures, read from the file in one read
//! transaction (one snapshot: every figure is of the same moment), and made into the same
//! document by `queue::stats::Figures`. The engine has no pause, limits or schedules: those
//! sections are empty, as they are for a server whose types have none.

use super::{SqlResult, Store, clock};
use crate::error::Result;
use crate::queue::stats::{Figures, Stats};
use rusqlite::{Connection, OptionalExtension, Params, Row};
use std::collections::BTreeMap;

/// Tasks per type and status; a type without tasks has one row with a NULL status. A status
/// this library never writes (a row changed by hand) is counted in none, as on the server.
const STATUS_COUNTS: &str = "\
SELECT y.name, c.status, COALESCE(c.n, 0) AS n
FROM task_types y
LEFT JOIN (SELECT type_id, status, COUNT(*) AS n FROM tasks
           WHERE status IN ('pending', 'claimed', 'completed', 'failed', 'cancelled')
           GROUP BY type_id, status) AS c
  ON c.type_id = y.id";

/// Per type, the age in seconds of the oldest runnable pending task (`?1`: now).
const OLDEST_PENDING: &str = "\
SELECT y.name, (?1 - MIN(t.created_at)) / 1e6 AS age
FROM tasks t JOIN task_types y ON y.id = t.type_id
WHERE t.status = 'pending' AND t.run_at <= ?1
GROUP BY y.name";

/// Per type, claimed tasks whose lease ran out (`?1`: now).
const EXPIRED_LEASES: &str = "\
SELECT y.name, COUNT(*) AS n
FROM tasks t JOIN task_types y ON y.id = t.type_id
WHERE t.status = 'claimed' AND t.lease_expires_at <= ?1
GROUP BY y.name";

/// Per type and final status, tasks finished in each whole minute of the last day (`?1`:
/// now, `?2`: a day ago), from one range of idx_tasks_finished (its condition is repeated so
/// that SQLite may use it).
const FINISHED_PER_MINUTE: &str = "\
SELECT y.name, t.status, (?1 - t.completed_at) / 60000000 AS minute, COUNT(*) AS n
FROM tasks t INDEXED BY idx_tasks_finished JOIN task_types y ON y.id = t.type_id
WHERE t.status NOT IN ('pending', 'claimed') AND t.status IN ('completed', 'failed')
  AND t.completed_at > ?2
GROUP BY y.name, t.status, minute";

/// Per worker, claims in the last hour (from the history) and the last one's time (`?1`: an
/// hour ago, `?2`: the first history row of the last hour, see [`first_row_since`]).
const CLAIMS_PER_WORKER: &str = "\
SELECT worker_id, MAX(created_at) AS last, COUNT(*) AS n
FROM task_history
WHERE id >= ?2 AND status_change = 'claimed' AND created_at > ?1
GROUP BY worker_id";

/// The first history row at or after `?1` by id, and its time.
const HISTORY_ROW_FROM: &str =
    "SELECT id, created_at FROM task_history WHERE id >= ?1 ORDER BY id LIMIT 1";

/// Per worker, the tasks it holds now and its latest claim among them.
const HELD_PER_WORKER: &str = "\
SELECT claimed_by, COUNT(*) AS n, MAX(claimed_at) AS last
FROM tasks
WHERE status = 'claimed'
GROUP BY claimed_by";

const HOUR: i64 = 3_600_000_000;

pub(crate) fn stats(store: &Store) -> Result<Stats> {
    store.read(|conn| {
        // One snapshot for every read: no figure is of a later moment than another.
        let snapshot = conn.unchecked_transaction().sql(store)?;
        let now = clock::now_micros();
        let day = HOUR * crate::queue::stats::HOURS as i64;
        let figures = Figures {
            generated_at: clock::iso(now),
            counts: rows(store, &snapshot, STATUS_COUNTS, (), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?,
            oldest_pending: rows(store, &snapshot, OLDEST_PENDING, [now], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?,
            expired_leases: rows(store, &snapshot, EXPIRED_LEASES, [now], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?,
            finished: rows(
                store,
                &snapshot,
                FINISHED_PER_MINUTE,
                [now, now - day],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?,
            claims: rows(
                store,
                &snapshot,
                CLAIMS_PER_WORKER,
                [now - HOUR, first_row_since(store, &snapshot, now - HOUR)?],
                |r| Ok((r.get(0)?, clock::iso(r.get(1)?), r.get(2)?)),
            )?,
            held: rows(store, &snapshot, HELD_PER_WORKER, (), |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get::<_, Option<i64>>(2)?.map(clock::iso),
                ))
            })?,
            flow: BTreeMap::new(),
            schedules: BTreeMap::new(),
        };
        figures.into_stats()
    })
}

/// The id of the first history row written at or after `since` (one past the last row when
/// none is). History ids grow with time (one writer at a time stamps and appends each row), so
/// the rows of the last hour are one range of the table's own key, found by bisection in a few
/// point reads: no index on the history's time costs every claim a write.
fn first_row_since(store: &Store, conn: &Connection, since: i64) -> Result<i64> {
    let mut at = conn.prepare_cached(HISTORY_ROW_FROM).sql(store)?;
    let mut row_from = |id: i64| -> Result<Option<(i64, i64)>> {
        at.query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .sql(store)
    };
    let Some((first, first_at)) = row_from(0)? else {
        return Ok(0);
    };
    if first_at >= since {
        return Ok(first);
    }
    let last: i64 = conn
        .query_row("SELECT MAX(id) FROM task_history", [], |r| r.get(0))
        .sql(store)?;
    // Invariant: the row at or after `low` is older than `since`; `high` is past every such row.
    let (mut low, mut high) = (first, last + 1);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        match row_from(middle)? {
            Some((_, at)) if at < since => low = middle,
            _ => high = middle,
        }
    }
    Ok(high)
}

/// Every row of `sql`, each read by `decode`.
fn rows<T>(
    store: &Store,
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    conn.prepare_cached(sql)
        .sql(store)?
        .query_map(params, decode)
        .sql(store)?
        .collect::<rusqlite::Result<_>>()
        .sql(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileSettings, Synchronous};

    #[test]
    fn the_first_history_row_of_the_last_hour_is_found_by_bisection() {
        let dir = std::env::temp_dir().join(format!("tm_stats_unit_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = super::super::store(&FileSettings {
            path: dir.join("q.db"),
            synchronous: Synchronous::Normal,
            busy_timeout_secs: 5,
            lazy_recovery_interval_ms: 1000,
        })
        .unwrap();
        super::super::schema::migrate(&store).unwrap();
        let found = store
            .write(|tx| {
                tx.execute_batch(
                    "INSERT INTO task_types (name, param_schema_json, created_at, updated_at) \
                     VALUES ('t', '{}', 0, 0);
                     INSERT INTO tasks (type_id, params_json, dedupe_key, created_at, updated_at, run_at)
                     VALUES (1, '{}', 'k', 0, 0, 0);",
                )
                .unwrap();
                // Ids 1..=100 at times 10, 20, ..., 1000, with a gap (ids 41..=59 pruned).
                for id in (1..=100).filter(|id| !(41..60).contains(id)) {
                    tx.execute(
                        "INSERT INTO task_history (id, task_id, status_change, created_at) \
                         VALUES (?1, 1, 'claimed', ?2)",
                        (id, id * 10),
                    )
                    .unwrap();
                }
                Ok([5, 10, 11, 405, 450, 600, 601, 1000, 1001, 5000]
                    .map(|since| first_row_since(&store, tx, since).unwrap()))
            })
            .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        // Any id in a gap serves: every row at or after it is recent, every row before it old.
        assert_eq!(found, [1, 1, 2, 41, 41, 41, 61, 100, 101, 101]);
    }
}
