//! Connections to one database: a small pool that never pings, never reuses a connection it
//! cannot vouch for, and survives `fork()`.
//!
//! Why not the driver's pool: it either pings on every checkout (one round trip per call) or
//! hands back connections whose last exchange timed out, where a late answer is then read as
//! the reply to the next statement. Here a connection goes back to the pool only when its last
//! exchange ended cleanly with no transaction open; anything else is closed.
//!
//! A connection the server dropped while it sat idle is found on its next use. Every step of a
//! task's life is safe to repeat (see `database::Database::run`), so that step is retried once on
//! a fresh connection instead of surfacing the error.
//!
//! After `fork()` the child sees another pid and starts with an empty pool; the idle connections
//! it inherited are leaked on purpose, because closing them would send `COM_QUIT` over sockets
//! the parent still uses.

use crate::config::Connection;
use crate::error::{Code, Error, Result};
use mysql::prelude::Queryable;
use mysql::{Opts, OptsBuilder, Row};
use parking_lot::{Condvar, Mutex};
use serde_json::json;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The pool of one set of connection settings.
pub(crate) struct Pool {
    pub(crate) connection: Connection,
    /// Where new connections go, tried in order: the host, then the failover hosts.
    targets: Vec<Opts>,
    state: Mutex<State>,
    returned: Condvar,
    server_checked: AtomicBool,
}

struct State {
    pid: u32,
    /// Idle connections, each with the index of its target.
    idle: Vec<(mysql::Conn, usize)>,
    /// Connections open in this process: idle plus checked out.
    open: usize,
}

/// A checked-out connection. It returns to the pool on drop only while [`Conn::healthy`].
pub(crate) struct Conn<'a> {
    pool: &'a Pool,
    conn: Option<mysql::Conn>,
    /// Which of the pool's targets it is connected to.
    target: usize,
    /// Whether it came from the idle list (it may have been dropped by the server meanwhile).
    pub(crate) reused: bool,
    healthy: bool,
}

/// What one statement of a script answered.
struct StatementResult {
    /// Rows it changed.
    affected: u64,
    /// The id it inserted, or the one `LAST_INSERT_ID(expr)` set; 0 when none.
    insert_id: u64,
    /// Its rows (none for statements that return none).
    rows: Vec<Row>,
}

/// The results of one script, one per statement.
pub(crate) struct ScriptResult {
    sets: Vec<StatementResult>,
}

impl ScriptResult {
    /// The rows of the statement at `index`.
    pub fn rows(&mut self, index: usize) -> Vec<Row> {
        self.sets
            .get_mut(index)
            .map(|s| std::mem::take(&mut s.rows))
            .unwrap_or_default()
    }

    /// The first column of the first row of the statement at `index`, if it has one.
    pub fn first_value<T: mysql::prelude::FromValue>(&mut self, index: usize) -> Option<T> {
        self.rows(index)
            .into_iter()
            .next()
            .and_then(|row| row.get_opt(0))
            .and_then(|value| value.ok())
    }

    /// Rows changed by the statement at `index`.
    pub fn affected(&self, index: usize) -> u64 {
        self.sets.get(index).map_or(0, |s| s.affected)
    }

    /// The id the statement at `index` inserted or set with `LAST_INSERT_ID(expr)`; 0 when none.
    pub fn insert_id(&self, index: usize) -> u64 {
        self.sets.get(index).map_or(0, |s| s.insert_id)
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(c: &Connection) -> Result<Pool> {
        if c.pool_max_connections == 0 {
            return Err(Error::config("pool_max_connections must be at least 1"));
        }
        let io = Some(Duration::from_secs(c.io_timeout_secs));
        let builder = OptsBuilder::new()
            .socket(c.socket.clone())
            .user(Some(c.user.clone()))
            .pass(Some(c.pass.expose().to_string()))
            .db_name(Some(c.name.clone()))
            .tcp_connect_timeout(Some(Duration::from_secs(c.connect_timeout_secs)))
            .read_timeout(io)
            .write_timeout(io)
            .tcp_nodelay(true)
            // Connect where the settings say: the driver would otherwise switch a TCP
            // connection to localhost over to the server's unix socket behind the caller's back
            // (set db_socket to use the socket).
            .prefer_socket(false)
            .init(vec![format!(
                // READ COMMITTED: no gap locks, so concurrent claimers do not collide.
                // One round trip at connect: both statements in one text.
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
                 SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci, \
                 time_zone = '+00:00', \
                 sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', \
                 innodb_lock_wait_timeout = {}",
                c.lock_wait_timeout_secs
            )]);
        // A unix socket names one server; over TCP every host is a target.
        let hosts = match c.socket {
            Some(_) => vec![(c.host.clone(), c.port)],
            None => std::iter::once((c.host.clone(), c.port))
                .chain(c.failover_hosts.iter().cloned())
                .collect(),
        };
        let targets = hosts
            .into_iter()
            .map(|(host, port)| {
                Opts::from(builder.clone().ip_or_hostname(Some(host)).tcp_port(port))
            })
            .collect();
        Ok(Pool {
            connection: c.clone(),
            targets,
            state: Mutex::new(State {
                pid: std::process::id(),
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
            server_checked: AtomicBool::new(false),
        })
    }

    /// A connection: an idle one when there is one, else a new one while under the limit, else
    /// the next one returned (waiting at most `connect_timeout`).
    pub(crate) fn get(&self) -> Result<Conn<'_>> {
        let deadline = Instant::now() + Duration::from_secs(self.connection.connect_timeout_secs);
        let mut state = self.state.lock();
        loop {
            let pid = std::process::id();
            if state.pid != pid {
                // Forked child: the inherited connections belong to the parent.
                for conn in state.idle.drain(..) {
                    std::mem::forget(conn);
                }
                state.open = 0;
                state.pid = pid;
            }
            if let Some((conn, target)) = state.idle.pop() {
                return Ok(self.checkout(conn, true, target));
            }
            if state.open < self.connection.pool_max_connections {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok((conn, target)) => Ok(self.checkout(conn, false, target)),
                    Err(e) => {
                        self.forget_one();
                        Err(e)
                    }
                };
            }
            if self.returned.wait_until(&mut state, deadline).timed_out() {
                return Err(Error::new(
                    Code::Connection,
                    format!(
                        "all {} pooled connections stayed busy for {} s (raise pool_max_connections \
                         or finish calls sooner)",
                        self.connection.pool_max_connections, self.connection.connect_timeout_secs
                    ),
                ));
            }
        }
    }

    /// A fresh connection, never one from the idle list: for the retry after a reused
    /// connection turned out dead.
    pub(crate) fn get_fresh(&self) -> Result<Conn<'_>> {
        {
            let mut state = self.state.lock();
            // The other idle connections are likely dead too (a server restart): drop them.
            let stale: Vec<(mysql::Conn, usize)> = state.idle.drain(..).collect();
            state.open -= stale.len();
            drop(state);
            drop(stale);
        }
        self.get()
    }

    /// A new connection to the first target that takes one. When none does, the error names
    /// every one tried (a failover that has not finished yet answers on none).
    fn connect(&self) -> Result<(mysql::Conn, usize)> {
        let mut refused = Vec::new();
        for (index, opts) in self.targets.iter().enumerate() {
            match mysql::Conn::new(opts.clone()) {
                Ok(conn) => return Ok((conn, index)),
                Err(e) => refused.push(self.error_at(e, index)),
            }
        }
        let last = refused.pop().expect("a pool has at least one target");
        if refused.is_empty() {
            return Err(last);
        }
        let earlier: Vec<&str> = refused.iter().map(Error::message).collect();
        Err(Error::new(
            last.code(),
            format!(
                "no database host took a connection: {}; {}",
                earlier.join("; "),
                last.message()
            ),
        )
        .with_details(last.details().cloned().unwrap_or_default()))
    }

    /// A connection that is not the pool's and does not count against its size (for a second
    /// session that must not wait for the pool).
    pub(crate) fn connect_unpooled(&self) -> Result<mysql::Conn> {
        self.connect().map(|(conn, _)| conn)
    }

    fn checkout(&self, conn: mysql::Conn, reused: bool, target: usize) -> Conn<'_> {
        Conn {
            pool: self,
            conn: Some(conn),
            target,
            reused,
            healthy: true,
        }
    }

    fn forget_one(&self) {
        let mut state = self.state.lock();
        state.open = state.open.saturating_sub(1);
        drop(state);
        self.returned.notify_one();
    }

    /// Converts a driver error into ours, with the password scrubbed from the message.
    pub(crate) fn error(&self, e: mysql::Error) -> Error {
        self.error_at(e, 0)
    }

    /// As [`Pool::error`], for an error from target `index`.
    fn error_at(&self, e: mysql::Error, index: usize) -> Error {
        let c = &self.connection;
        let where_ = match (&c.socket, index) {
            (Some(socket), _) => format!("socket {socket}"),
            (None, 0) => format!("{}:{}", c.host, c.port),
            (None, i) => {
                let (host, port) = &c.failover_hosts[i - 1];
                format!("{host}:{port}")
            }
        };
        map_error(e, c, &where_)
    }

    /// Checks once per pool that the server supports the queue; a PHP-FPM worker's later
    /// requests skip it.
    pub(crate) fn ensure_server(&self, conn: &mut Conn<'_>) -> Result<()> {
        if self.server_checked.load(Ordering::Acquire) {
            return Ok(());
        }
        let version: String = conn
            .query_first("SELECT VERSION()")
            .map_err(|e| conn.error(e))?
            .unwrap_or_default();
        if !supports_skip_locked(&version) {
            return Err(Error::new(
                Code::UnsupportedServer,
                format!(
                    "server version {version} lacks FOR UPDATE SKIP LOCKED; \
                     TaskManager needs MariaDB 10.6+ or MySQL 8.0.1+"
                ),
            ));
        }
        self.server_checked.store(true, Ordering::Release);
        Ok(())
    }
}

impl Conn<'_> {
    /// Converts a driver error; an error that leaves the connection in doubt (I/O, timeout,
    /// broken packet) also marks it so it is closed instead of pooled.
    pub(crate) fn error(&mut self, e: mysql::Error) -> Error {
        let mapped = self.pool.error_at(e, self.target);
        if mapped.leaves_connection_in_doubt() {
            self.healthy = false;
        }
        mapped
    }

    /// Closes this connection instead of pooling it.
    pub(crate) fn discard(&mut self) {
        self.healthy = false;
    }

    /// Sends `sql`, one or more statements separated by `;`, in one round trip and reads
    /// every result. When a statement fails the server runs none after it; if the script had
    /// begun a transaction (`in_transaction`), it is rolled back before the error is returned,
    /// and a connection that cannot even do that is closed.
    pub(crate) fn script(&mut self, sql: &str, in_transaction: bool) -> Result<ScriptResult> {
        let outcome = (|| {
            let conn = self.conn.as_mut().expect("a checked-out connection");
            let mut result = conn.query_iter(sql)?;
            let mut sets = Vec::new();
            while let Some(set) = result.iter() {
                let (affected, insert_id) = (set.affected_rows(), set.last_insert_id());
                let rows = set.collect::<std::result::Result<Vec<Row>, _>>()?;
                sets.push(StatementResult {
                    affected,
                    insert_id: insert_id.unwrap_or(0),
                    rows,
                });
            }
            Ok::<_, mysql::Error>(sets)
        })();
        match outcome {
            Ok(sets) => Ok(ScriptResult { sets }),
            Err(e) => {
                let error = self.error(e);
                if in_transaction && self.healthy {
                    let rolled_back = self
                        .conn
                        .as_mut()
                        .is_some_and(|c| c.query_drop("ROLLBACK").is_ok());
                    if !rolled_back {
                        self.healthy = false;
                    }
                }
                Err(error)
            }
        }
    }
}

impl Deref for Conn<'_> {
    type Target = mysql::Conn;
    fn deref(&self) -> &mysql::Conn {
        self.conn.as_ref().expect("a checked-out connection")
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut mysql::Conn {
        self.conn.as_mut().expect("a checked-out connection")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let mut state = self.pool.state.lock();
        if state.pid != std::process::id() {
            // Checked out before a fork, dropped in the child: not ours to close.
            std::mem::forget(conn);
            return;
        }
        if self.healthy {
            state.idle.push((conn, self.target));
        } else {
            state.open = state.open.saturating_sub(1);
            drop(state);
            // Closing sends COM_QUIT; on a dead link the write timeout bounds it.
            drop(conn);
        }
        self.pool.returned.notify_one();
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

/// A connection error on a statement that commits leaves the outcome unknown.
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
        .with_details(e.details().cloned().unwrap_or(serde_json::Value::Null))
    } else {
        e
    }
}

/// Converts a driver error from the server `where_` names into ours, password scrubbed.
fn map_error(e: mysql::Error, c: &Connection, where_: &str) -> Error {
    let mapped = match e {
        mysql::Error::MySqlError(server) => {
            let details = json!({"server_code": server.code, "sql_state": server.state,
                "server_message": server.message});
            let (code, message) = match server.code {
                1044 | 1045 | 1049 => (
                    Code::Config,
                    format!(
                        "the database refused user '{}' on database '{}' at {where_}: {} \
                         (check db_user, db_pass, db_name and the grants)",
                        c.user, c.name, server.message
                    ),
                ),
                1040 | 1053 | 1927 | 2006 | 2013 => (
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
                        "the database user lacks a privilege: {} (grant SELECT, INSERT, UPDATE, DELETE, \
                         and EXECUTE for the stored procedures)",
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
        )
        .with_details(json!({"timed_out": is_timeout(&io)})),
        mysql::Error::DriverError(driver) => Error::new(
            Code::Connection,
            format!("database connection problem at {where_}: {driver}"),
        ),
        // A packet that cannot be read or written means the connection broke mid-exchange.
        mysql::Error::CodecError(codec) => {
            // The driver's codec error wraps the I/O error that broke the exchange.
            let timed_out = std::error::Error::source(&codec)
                .and_then(|source| source.downcast_ref::<std::io::Error>())
                .is_some_and(is_timeout);
            Error::new(
                Code::Connection,
                format!("the connection to the database at {where_} broke: {codec}"),
            )
            .with_details(json!({"timed_out": timed_out}))
        }
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

/// A read or write that ran into `io_timeout`: the link may be alive but silent (a partition),
/// so repeating the step on a new connection would only wait as long again.
fn is_timeout(io: &std::io::Error) -> bool {
    matches!(
        io.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
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
