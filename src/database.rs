//! One database as the library sees it: its connection pool, the type cache, and whether its
//! schema is new enough. Shared by every client with the same connection settings: the
//! singleton of the original `Database.php`.

use crate::config::Connection;
use crate::error::{Code, Error, Result};
use crate::migrate::REQUIRED_VERSION;
use crate::pool::{Conn, Pool, unknown_outcome};
use crate::type_cache::TypeCache;
use mysql::prelude::Queryable;
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a step that ran into a lock-wait timeout (1205) is retried before the error
/// surfaces: each try already waited `lock_wait_timeout`.
const LOCK_WAIT_RETRIES: u32 = 4;

/// How long a step that lost a deadlock (1213) keeps being retried. On a Galera cluster with
/// writers on several nodes, certification conflicts at COMMIT arrive as 1213 too, and a busy
/// cluster can lose several in a row: a time budget, not a small count, bounds them.
const DEADLOCK_BUDGET: Duration = Duration::from_secs(10);

static REGISTRY: Lazy<Mutex<HashMap<Connection, Arc<Database>>>> = Lazy::new(Default::default);

pub(crate) struct Database {
    pub(crate) pool: Pool,
    schema_ready: AtomicBool,
    pub(crate) types: TypeCache,
    /// When claims in this process last recovered expired leases, in ms since [`EPOCH`].
    last_recovery_ms: AtomicU64,
    /// When this process's claims may next look for due schedules, in ms since [`EPOCH`].
    next_schedule_tick_ms: AtomicU64,
    /// Whether the hot path's stored procedures may be called (see `queue::procedures`); false
    /// from the first refusal on.
    procedures: AtomicBool,
    /// What this process knows of the database's limited types, and the signal of its own
    /// enqueues to its waiting claims (see `flow`).
    pub(crate) flow: crate::flow::ProcessFlow,
}

/// The process's reference instant for the recovery throttle.
static EPOCH: Lazy<Instant> = Lazy::new(Instant::now);

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// The shared handle for these connection settings, created once per process.
pub(crate) fn database(connection: &Connection) -> Result<Arc<Database>> {
    let mut registry = REGISTRY.lock();
    if let Some(db) = registry.get(connection) {
        return Ok(db.clone());
    }
    let db = Arc::new(Database {
        pool: Pool::new(connection)?,
        schema_ready: AtomicBool::new(false),
        types: TypeCache::default(),
        last_recovery_ms: AtomicU64::new(0),
        next_schedule_tick_ms: AtomicU64::new(0),
        procedures: AtomicBool::new(true),
        flow: Default::default(),
    });
    registry.insert(connection.clone(), db.clone());
    Ok(db)
}

impl Database {
    pub(crate) fn connection(&self) -> &Connection {
        &self.pool.connection
    }

    /// Whether a claim should recover expired leases before it selects: at most once per
    /// interval per process, so that a busy queue does not pay for recovery on every claim.
    pub(crate) fn lazy_recovery_due(&self) -> bool {
        let interval = self.connection().lazy_recovery_interval_ms;
        // + interval + 1 so that the first call after start is always due.
        let now = EPOCH.elapsed().as_millis() as u64 + interval + 1;
        let last = self.last_recovery_ms.load(Ordering::Relaxed);
        now - last >= interval
            && self
                .last_recovery_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Whether a claim should tick the schedules first (see `schedule::lazy_tick`): once the
    /// time the last tick set has come, and then by one claim only until it sets the next.
    pub(crate) fn lazy_tick_due(&self) -> bool {
        let interval = self.connection().lazy_recovery_interval_ms;
        let now = EPOCH.elapsed().as_millis() as u64;
        let next = self.next_schedule_tick_ms.load(Ordering::Relaxed);
        now >= next
            && self
                .next_schedule_tick_ms
                .compare_exchange(next, now + interval, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// This process's claims look for due schedules again in `wait_ms`.
    pub(crate) fn next_schedule_tick_in(&self, wait_ms: u64) {
        let now = EPOCH.elapsed().as_millis() as u64;
        self.next_schedule_tick_ms
            .store(now + wait_ms, Ordering::Relaxed);
    }

    /// Whether the hot path may call the stored procedures.
    pub(crate) fn procedures_usable(&self) -> bool {
        self.procedures.load(Ordering::Relaxed)
    }

    /// From now on this process sends scripts instead of CALLs: the server said the
    /// procedures are missing or not this account's to run. Slower, never wrong.
    pub(crate) fn stop_using_procedures(&self) {
        self.procedures.store(false, Ordering::Relaxed);
    }

    /// Converts a driver error into ours, with the password scrubbed from the message.
    pub(crate) fn error(&self, e: mysql::Error) -> Error {
        self.pool.error(e)
    }

    /// Checks that the server is reachable with these credentials and supports the queue.
    pub(crate) fn ensure_server(&self) -> Result<()> {
        let mut conn = self.pool.get()?;
        self.pool.ensure_server(&mut conn)
    }

    /// Checks (once per process and database) that the schema is migrated far enough.
    fn ensure_ready(&self, conn: &mut Conn<'_>) -> Result<()> {
        if self.schema_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        self.pool.ensure_server(conn)?;
        let version: Option<i64> =
            match conn.query_first("SELECT MAX(version) FROM tm_schema_migrations") {
                Ok(v) => v.flatten(),
                Err(mysql::Error::MySqlError(e)) if e.code == 1146 => None,
                Err(e) => return Err(conn.error(e)),
            };
        match version {
            Some(v) if v >= REQUIRED_VERSION => {
                self.schema_ready.store(true, Ordering::Release);
                Ok(())
            }
            found => Err(Error::new(
                Code::SchemaOutdated,
                format!(
                    "database '{}' has schema version {} but this library needs {}: run the migrations \
                     (tm_migrate, Client::migrate, or `taskmanager migrate`)",
                    self.connection().name,
                    found.map_or("none".to_string(), |v| v.to_string()),
                    REQUIRED_VERSION
                ),
            )
            .with_details(json!({"found": found, "required": REQUIRED_VERSION}))),
        }
    }

    /// Runs one step on one connection. Every step of the queue is safe to repeat (tokens make
    /// finishing idempotent, enqueue tokens make enqueue so, a claim finds its own leases), so:
    /// - a connection the server dropped while it sat in the pool is replaced and the step
    ///   runs again, once;
    /// - a deadlock (1213, also a Galera certification conflict; 1467 over an AUTO-INC lock) runs
    ///   it again within a time budget, a lock-wait timeout (1205) a bounded number of times.
    ///
    /// `op` gets `again = true` on a repeat after a connection error, when its first run may
    /// have committed. A connection whose last exchange failed is never pooled again.
    pub(crate) fn run<T>(&self, op: impl FnMut(&mut Conn<'_>, bool) -> Result<T>) -> Result<T> {
        self.run_step(op, true)
    }

    /// As [`Database::run`] for a step that must not run twice (an operator action whose
    /// repeat would answer differently): a broken connection surfaces as the error.
    pub(crate) fn run_once<T>(&self, mut op: impl FnMut(&mut Conn<'_>) -> Result<T>) -> Result<T> {
        self.run_step(|conn, _| op(conn), false)
    }

    fn run_step<T>(
        &self,
        mut op: impl FnMut(&mut Conn<'_>, bool) -> Result<T>,
        repeatable: bool,
    ) -> Result<T> {
        let mut conn = self.pool.get()?;
        self.ensure_ready(&mut conn)
            .inspect_err(|e| discard_if_broken(&mut conn, e))?;
        let started = std::time::Instant::now();
        let (mut conflicts, mut lock_waits) = (0u32, 0u32);
        let mut again = false;
        loop {
            match op(&mut conn, again) {
                Err(e)
                    if repeatable
                        && e.leaves_connection_in_doubt()
                        && !timed_out(&e)
                        && conn.reused
                        && !again =>
                {
                    conn.discard();
                    drop(conn);
                    // If no new connection can be had, the first error says more (it may be
                    // an unknown outcome, which a connection error would hide).
                    conn = self.pool.get_fresh().map_err(|_| e)?;
                    again = true;
                }
                Err(e)
                    if (lost_a_deadlock(&e) && started.elapsed() < DEADLOCK_BUDGET)
                        || (e.server_code() == Some(1205) && lock_waits < LOCK_WAIT_RETRIES) =>
                {
                    conflicts += 1;
                    if e.server_code() == Some(1205) {
                        lock_waits += 1;
                    }
                    // Exponential backoff with jitter, so conflicting callers spread out.
                    let ceiling = 2u64 << conflicts.min(8);
                    let pause =
                        ceiling / 2 + (crate::random::random_unit() * (ceiling / 2) as f64) as u64;
                    std::thread::sleep(Duration::from_millis(pause));
                }
                Err(e) => {
                    discard_if_broken(&mut conn, &e);
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }
}

/// A deadlock the server broke by rolling this transaction back: 1213, or 1467 when the lock
/// it lost was a table's AUTO-INC lock (InnoDB reports that as "Failed to read auto-increment
/// value"; seen when INSERT ... SELECT statements into `task_history` that read each other's
/// rows run with no pause between them). Either way the step is whole to run again.
fn lost_a_deadlock(e: &Error) -> bool {
    matches!(e.server_code(), Some(1213 | 1467))
}

/// Commits a driver transaction, mapping a broken connection to `OutcomeUnknown`.
pub(crate) fn commit(db: &Database, tx: mysql::Transaction<'_>) -> Result<()> {
    tx.commit().map_err(|e| unknown_outcome(db.error(e)))
}

fn timed_out(e: &Error) -> bool {
    e.details()
        .and_then(|d| d.get("timed_out"))
        .and_then(serde_json::Value::as_bool)
        == Some(true)
}

fn discard_if_broken(conn: &mut Conn<'_>, e: &Error) {
    if e.leaves_connection_in_doubt() {
        conn.discard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    fn server_error(code: u64) -> Error {
        Error::new(Code::Database, "refused").with_details(serde_json::json!({"server_code": code}))
    }

    #[test]
    fn a_lost_auto_inc_lock_is_a_deadlock_to_retry_and_a_timeout_is_not() {
        assert!(lost_a_deadlock(&server_error(1213)));
        assert!(lost_a_deadlock(&server_error(1467)));
        assert!(!lost_a_deadlock(&server_error(1205)));
        assert!(!lost_a_deadlock(&server_error(1062)));
        assert!(!lost_a_deadlock(&Error::new(
            Code::Database,
            "no server code"
        )));
    }
}
