//! The floor: the fewest statements a correct queue needs, on the smallest table that serves
//! them, sent with the same driver to the same server. Not our schema: a floor on our tables
//! would hide what our tables cost.
//!
//! - `floor_tasks` has one secondary index, `(status, id)`, and no history.
//! - Enqueue: one single-row INSERT (a batch: one multi-row INSERT).
//! - Claim: BEGIN; SELECT ... FOR UPDATE SKIP LOCKED; UPDATE; COMMIT.
//! - Complete: one UPDATE guarded by the lease token and the status.

use mysql::prelude::Queryable;

const TABLE: &str = "CREATE TABLE floor_tasks (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    status ENUM('pending','claimed','completed','failed') NOT NULL DEFAULT 'pending',
    payload MEDIUMTEXT NOT NULL,
    result MEDIUMTEXT NULL,
    attempts INT NOT NULL DEFAULT 0,
    lease_token VARCHAR(64) NULL,
    lease_expires_at DATETIME(6) NULL,
    completed_at DATETIME(6) NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    KEY idx_floor_claim (status, id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci";

pub fn create(conn: &mut mysql::Conn) {
    conn.query_drop(TABLE).unwrap();
}

pub fn reset(conn: &mut mysql::Conn) {
    conn.query_drop("TRUNCATE TABLE floor_tasks").unwrap();
}

/// One prepared single-row INSERT per task.
pub fn enqueue(conn: &mut mysql::Conn, count: usize, next: impl Fn() -> u64) {
    let stmt = conn
        .prep("INSERT INTO floor_tasks (payload) VALUES (?)")
        .unwrap();
    for _ in 0..count {
        conn.exec_drop(&stmt, (format!("{{\"n\":{}}}", next()),))
            .unwrap();
    }
}

/// One multi-row INSERT of `count` rows.
pub fn enqueue_many(conn: &mut mysql::Conn, count: usize, next: impl Fn() -> u64) {
    let rows: Vec<String> = (0..count)
        .map(|_| format!("('{{\"n\":{}}}')", next()))
        .collect();
    conn.query_drop(format!(
        "INSERT INTO floor_tasks (payload) VALUES {}",
        rows.join(",")
    ))
    .unwrap();
}

/// Claims and completes one task at a time until none is left; returns how many.
pub fn drain(conn: &mut mysql::Conn) -> usize {
    let select = conn
        .prep(
            "SELECT id, payload FROM floor_tasks WHERE status = 'pending' ORDER BY id LIMIT 1 \
             FOR UPDATE SKIP LOCKED",
        )
        .unwrap();
    let claim = conn
        .prep(
            "UPDATE floor_tasks SET status = 'claimed', attempts = attempts + 1, lease_token = ?, \
             lease_expires_at = NOW(6) + INTERVAL 300 SECOND WHERE id = ?",
        )
        .unwrap();
    let complete = conn
        .prep(
            "UPDATE floor_tasks SET status = 'completed', result = 'null', completed_at = NOW(6), \
             lease_expires_at = NULL WHERE id = ? AND lease_token = ? AND status = 'claimed'",
        )
        .unwrap();
    let mut done = 0;
    loop {
        conn.query_drop("BEGIN").unwrap();
        let row: Option<(i64, String)> = conn.exec_first(&select, ()).unwrap();
        let Some((id, _payload)) = row else {
            conn.query_drop("COMMIT").unwrap();
            return done;
        };
        let token = format!("floor.{id}");
        conn.exec_drop(&claim, (&token, id)).unwrap();
        conn.query_drop("COMMIT").unwrap();
        conn.exec_drop(&complete, (id, &token)).unwrap();
        done += 1;
    }
}

/// Tasks the floor left unfinished (a drain must leave none).
pub fn unfinished(conn: &mut mysql::Conn) -> i64 {
    conn.query_first("SELECT COUNT(*) FROM floor_tasks WHERE status <> 'completed'")
        .unwrap()
        .unwrap()
}
