//! The process-wide connection pools: the singleton of the original `Database.php`.
//!
//! One pool per distinct [`Connection`] lives in a registry for the life of the process.
//! Every connection gets the same session settings. After `fork()` the child notices that its
//! pid changed and builds a fresh pool; the inherited one is leaked on purpose, because
//! dropping it would send `COM_QUIT` over sockets the parent still uses.

use crate::config::Connection;
use crate::error::{Code, Error, Result};
use crate::types::TypeCache;
use mysql::prelude::Queryable;
use mysql::{Opts, OptsBuilder, PoolConstraints, PoolOpts, PooledConn};
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use serde_json::json;
use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The schema version this library needs (the highest migration it knows).
pub const REQUIRED_SCHEMA_VERSION: i64 = crate::migrate::LATEST_VERSION;

/// How often a deadlocked or lock-timed-out transaction is retried before the error surfaces.
const DEADLOCK_RETRIES: u32 = 4;

static REGISTRY: Lazy<Mutex<HashMap<Connection, Arc<Database>>>> = Lazy::new(Default::default);

/// One database: its pool, and what the library caches about it.
pub(crate) struct Database {
    pub(crate) connection: Connection,
    pool: Mutex<ForkAwarePool>,
    server_checked: AtomicBool,
    schema_ready: AtomicBool,
    /// When claims in this process last recovered expired leases, in ms since [`EPOCH`].
    last_recovery_ms: AtomicU64,
    pub(crate) types: TypeCache,
}

/// The process's reference instant for the throttle above.
static EPOCH: Lazy<Instant> = Lazy::new(Instant::now);

/// How often a busy claimer stops to recover expired leases (a claim that comes up short
/// always does).
const LAZY_RECOVERY_INTERVAL_MS: u64 = 1000;

struct ForkAwarePool {
    pid: u32,
    pool: ManuallyDrop<mysql::Pool>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

/// Returns the shared database handle for these connection settings, creating it once.
pub(crate) fn database(connection: &Connection) -> Result<Arc<Database>> {
    let mut registry = REGISTRY.lock();
    if let Some(db) = registry.get(connection) {
        return Ok(db.clone());
    }
    let db = Arc::new(Database {
        connection: connection.clone(),
        pool: Mutex::new(ForkAwarePool {
            pid: std::process::id(),
            pool: ManuallyDrop::new(new_pool(connection)?),
        }),
        server_checked: AtomicBool::new(false),
        schema_ready: AtomicBool::new(false),
        last_recovery_ms: AtomicU64::new(0),
        types: TypeCache::default(),
    });
    registry.insert(connection.clone(), db.clone());
    Ok(db)
}

fn new_pool(c: &Connection) -> Result<mysql::Pool> {
    let constraints = PoolConstraints::new(0, c.pool_max_connections)
        .ok_or_else(|| Error::config("pool_max_connections must be at least 1"))?;
    let pool_opts = PoolOpts::default()
        .with_constraints(constraints)
        // A reset would drop the session settings below and costs a round trip per checkout.
        .with_reset_connection(false)
        // The ping on checkout costs one round trip and is kept on purpose: a connection the
        // server dropped (restart, wait_timeout) is replaced before use, so it can never turn
        // a single-statement write into TM_OUTCOME_UNKNOWN.
        .with_check_health(true);
    let io = Some(Duration::from_secs(c.io_timeout_secs));
    let builder = OptsBuilder::new()
        .ip_or_hostname(Some(c.host.clone()))
        .tcp_port(c.port)
        .socket(c.socket.clone())
        .user(Some(c.user.clone()))
        .pass(Some(c.pass.expose().to_string()))
        .db_name(Some(c.name.clone()))
        .tcp_connect_timeout(Some(Duration::from_secs(c.connect_timeout_secs)))
        .read_timeout(io)
        .write_timeout(io)
        .tcp_nodelay(true)
        .pool_opts(pool_opts)
        .init(vec![
            "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci".to_string(),
            // READ COMMITTED: no gap locks, so concurrent claimers do not collide.
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_string(),
            format!(
                "SET time_zone = '+00:00', \
                 sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', \
                 innodb_lock_wait_timeout = {}",
                c.lock_wait_timeout_secs
            ),
        ]);
    mysql::Pool::new(Opts::from(builder)).map_err(|e| map_error(e, c))
}

impl Database {
    /// A pooled connection, from this process's own pool.
    pub(crate) fn conn(&self) -> Result<PooledConn> {
        let pool = {
            let mut guard = self.pool.lock();
            let pid = std::process::id();
            if guard.pid != pid {
                // Forked child: build a new pool and never touch the parent's connections.
                // Assigning over a ManuallyDrop leaks the old pool without running its Drop.
                guard.pool = ManuallyDrop::new(new_pool(&self.connection)?);
                guard.pid = pid;
            }
            (*guard.pool).clone()
        };
        pool.get_conn().map_err(|e| self.error(e))
    }

    /// Converts a driver error into ours, with the password scrubbed from the message.
    pub(crate) fn error(&self, e: mysql::Error) -> Error {
        map_error(e, &self.connection)
    }

    /// Whether a claim should recover expired leases before it selects: at most once per
    /// interval per process, so that a busy queue does not pay the extra statement per claim.
    pub(crate) fn lazy_recovery_due(&self) -> bool {
        // +1 so that the first call after start is always due.
        let now = EPOCH.elapsed().as_millis() as u64 + LAZY_RECOVERY_INTERVAL_MS + 1;
        let last = self.last_recovery_ms.load(Ordering::Relaxed);
        now - last >= LAZY_RECOVERY_INTERVAL_MS
            && self
                .last_recovery_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Checks once per pool that the server is reachable with these credentials and supports
    /// the queue; later clients on the same pool (a PHP-FPM worker's next request) skip it.
    pub(crate) fn ensure_server(&self) -> Result<()> {
        if self.server_checked.load(Ordering::Acquire) {
            return Ok(());
        }
        self.ensure_server_on(&mut self.conn()?)
    }

    /// As [`Database::ensure_server`], on a connection the caller already holds.
    pub(crate) fn ensure_server_on(&self, conn: &mut PooledConn) -> Result<()> {
        if !self.server_checked.load(Ordering::Acquire) {
            check_server(self, conn)?;
            self.server_checked.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Checks (once per process and database) that the server supports the queue and the
    /// schema is migrated far enough.
    pub(crate) fn ensure_ready(&self, conn: &mut PooledConn) -> Result<()> {
        if self.schema_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        self.ensure_server_on(conn)?;
        let version: Option<i64> =
            match conn.query_first("SELECT MAX(version) FROM tm_schema_migrations") {
                Ok(v) => v.flatten(),
                Err(mysql::Error::MySqlError(e)) if e.code == 1146 => None,
                Err(e) => return Err(self.error(e)),
            };
        match version {
            Some(v) if v >= REQUIRED_SCHEMA_VERSION => {
                self.schema_ready.store(true, Ordering::Release);
                Ok(())
            }
            found => Err(Error::new(
                Code::SchemaOutdated,
                format!(
                    "database '{}' has schema version {} but this library needs {}: run the migrations \
                     (tm_migrate, Client::migrate, or `taskmanager migrate`)",
                    self.connection.name,
                    found.map_or("none".to_string(), |v| v.to_string()),
                    REQUIRED_SCHEMA_VERSION
                ),
            )
            .with_details(json!({"found": found, "required": REQUIRED_SCHEMA_VERSION}))),
        }
    }

    /// Runs `op` on one connection, retrying a bounded number of times when InnoDB reports a
    /// deadlock (1213) or a lock-wait timeout (1205). `op` must run its own transaction, so a
    /// retry starts from scratch (the dropped transaction was rolled back).
    pub(crate) fn run<T>(&self, mut op: impl FnMut(&mut PooledConn) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        self.ensure_ready(&mut conn)?;
        let mut attempt = 0;
        loop {
            match op(&mut conn) {
                Err(e) if attempt < DEADLOCK_RETRIES && is_lock_conflict(&e) => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(2u64 << attempt));
                }
                other => return other,
            }
        }
    }
}

fn is_lock_conflict(e: &Error) -> bool {
    e.code() == Code::Database && matches!(e.server_code(), Some(1213) | Some(1205))
}

/// Refuses servers without `FOR UPDATE SKIP LOCKED` (MariaDB < 10.6, MySQL < 8.0.1).
fn check_server(db: &Database, conn: &mut PooledConn) -> Result<()> {
    let version: String = conn
        .query_first("SELECT VERSION()")
        .map_err(|e| db.error(e))?
        .unwrap_or_default();
    if supports_skip_locked(&version) {
        Ok(())
    } else {
        Err(Error::new(
            Code::UnsupportedServer,
            format!(
                "server version {version} lacks FOR UPDATE SKIP LOCKED; \
                 TaskManager needs MariaDB 10.6+ or MySQL 8.0.1+"
            ),
        ))
    }
}

/// Reads a `SELECT VERSION()` string such as `10.11.6-MariaDB-0+deb12u1` or `8.0.36`.
fn supports_skip_locked(version: &str) -> bool {
    let mut numbers = version
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let mut next = || numbers.next().unwrap_or(0);
    let (major, minor, patch) = (next(), next(), next());
    if version.to_lowercase().contains("mariadb") {
        (major, minor) >= (10, 6)
    } else {
        (major, minor, patch) >= (8, 0, 1)
    }
}

/// Commits, mapping a broken connection to `OutcomeUnknown`: the server may have committed.
pub(crate) fn commit(db: &Database, tx: mysql::Transaction<'_>) -> Result<()> {
    tx.commit().map_err(|e| unknown_outcome(db.error(e)))
}

/// A connection error on a statement that commits by itself (autocommit) leaves the outcome
/// unknown, like a failed COMMIT.
pub(crate) fn unknown_outcome(e: Error) -> Error {
    if e.code() == Code::Connection {
        Error::new(
            Code::OutcomeUnknown,
            format!(
                "the connection broke while the change was being committed; it may or may not \
                 have been applied. Repeating the same call is safe. ({})",
                e.message()
            ),
        )
    } else {
        e
    }
}

fn map_error(e: mysql::Error, c: &Connection) -> Error {
    let where_ = match &c.socket {
        Some(socket) => format!("socket {socket}"),
        None => format!("{}:{}", c.host, c.port),
    };
    let mapped = match e {
        mysql::Error::MySqlError(server) => {
            let details = json!({"server_code": server.code, "sql_state": server.state});
            let (code, message) = match server.code {
                1044 | 1045 | 1049 => (
                    Code::Config,
                    format!(
                        "the database refused user '{}' on database '{}' at {where_}: {} \
                         (check db_user, db_pass, db_name and the grants)",
                        c.user, c.name, server.message
                    ),
                ),
                1040 | 1053 | 2006 | 2013 => (
                    Code::Connection,
                    format!(
                        "database connection problem at {where_}: {}",
                        server.message
                    ),
                ),
                1146 | 1054 => (
                    Code::SchemaOutdated,
                    format!(
                        "the database schema is missing or outdated ({}): run the migrations",
                        server.message
                    ),
                ),
                1142 | 1143 => (
                    Code::Database,
                    format!(
                        "the database user lacks a privilege: {} (grant SELECT, INSERT, UPDATE, DELETE)",
                        server.message
                    ),
                ),
                _ => (
                    Code::Database,
                    format!(
                        "the database refused the statement: {} (server error {})",
                        server.message, server.code
                    ),
                ),
            };
            Error::new(code, message).with_details(details)
        }
        mysql::Error::IoError(io) => Error::new(
            Code::Connection,
            format!(
                "cannot talk to the database at {where_}: {io} (is the server running and reachable?)"
            ),
        ),
        mysql::Error::DriverError(driver) => Error::new(
            Code::Connection,
            format!("database connection problem at {where_}: {driver}"),
        ),
        // A packet that cannot be read or written means the connection broke mid-exchange.
        mysql::Error::CodecError(codec) => Error::new(
            Code::Connection,
            format!("the connection to the database at {where_} broke: {codec}"),
        ),
        mysql::Error::TlsError(tls) => Error::new(
            Code::Connection,
            format!("TLS with the database at {where_} failed: {tls}"),
        ),
        mysql::Error::UrlError(url) => {
            Error::new(Code::Config, format!("invalid connection settings: {url}"))
        }
        other => Error::new(Code::Database, format!("database error: {other}")),
    };
    mapped.redact(c.pass.expose())
}

#[cfg(test)]
mod tests {
    use super::supports_skip_locked;

    #[test]
    fn skip_locked_needs_mariadb_10_6_or_mysql_8_0_1() {
        for ok in [
            "10.6.0-MariaDB",
            "10.11.19-MariaDB-0+deb12u1",
            "11.4.2-MariaDB-log",
            "8.0.1",
            "8.4.0",
            "9.1.0",
        ] {
            assert!(supports_skip_locked(ok), "{ok}");
        }
        for old in [
            "10.5.23-MariaDB",
            "10.3.39-MariaDB-0+deb10u1",
            "8.0.0-dmr",
            "5.7.44-log",
            "garbage",
        ] {
            assert!(!supports_skip_locked(old), "{old}");
        }
    }
}
