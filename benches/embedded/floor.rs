//! The floor for the embedded engine: the fewest statements a correct queue needs on SQLite,
//! on the smallest table that serves them, in a file beside the library's, with the same
//! journal mode and `synchronous` setting:
//! - enqueue: one INSERT (its own transaction);
//! - claim: `BEGIN IMMEDIATE` + one `UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING` +
//!   `COMMIT`;
//! - complete: one guarded UPDATE (its own transaction).
//!
//! No history, no validation, no dedupe key, one secondary index (a partial one over pending
//! rows, in claim order).

use rusqlite::{Connection, TransactionBehavior};
use std::time::Duration;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY,
  status TEXT NOT NULL DEFAULT 'pending',
  params TEXT NOT NULL,
  token TEXT NULL,
  lease_expires_at INTEGER NULL
);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (id) WHERE status = 'pending';";

pub fn open(path: &str, synchronous: &str) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch(&format!("PRAGMA synchronous = {synchronous};"))
        .unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn
}

pub fn enqueue(conn: &Connection, n: u64) {
    conn.prepare_cached("INSERT INTO jobs (params) VALUES (?1)")
        .unwrap()
        .execute([format!("{{\"n\":{n}}}")])
        .unwrap();
}

/// Claims up to `limit` jobs: `(id, token)` of each.
pub fn claim(conn: &mut Connection, limit: u32, token: &str) -> Vec<(i64, String)> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    let claimed = tx
        .prepare_cached(
            "UPDATE jobs SET status = 'claimed', token = ?1 || '.' || id, \
             lease_expires_at = unixepoch() + 300 \
             WHERE id IN (SELECT id FROM jobs WHERE status = 'pending' ORDER BY id LIMIT ?2) \
             RETURNING id, token, params",
        )
        .unwrap()
        .query_map((token, limit), |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<Vec<(i64, String)>>>()
        .unwrap();
    tx.commit().unwrap();
    claimed
}

pub fn complete(conn: &Connection, id: i64, token: &str) {
    let changed = conn
        .prepare_cached(
            "UPDATE jobs SET status = 'done', lease_expires_at = NULL \
             WHERE id = ?1 AND status = 'claimed' AND token = ?2",
        )
        .unwrap()
        .execute((id, token))
        .unwrap();
    assert_eq!(changed, 1, "the floor lost a lease");
}

/// Completes many in one transaction.
pub fn complete_many(conn: &mut Connection, jobs: &[(i64, String)]) {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    for (id, token) in jobs {
        complete(&tx, *id, token);
    }
    tx.commit().unwrap();
}
