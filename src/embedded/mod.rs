//! The embedded engine: the whole queue in one SQLite file, for programs that have no server
//! (a C program, a Python script, a PHP app on SQLite, a test suite).
//!
//! How it keeps the queue's promises on SQLite:
//! - every write is one `BEGIN IMMEDIATE` transaction: it takes the file's write lock before
//!   it reads, so no write ever fails on a stale snapshot (a deferred read-then-write gets
//!   `SQLITE_BUSY_SNAPSHOT`, which no busy handler retries), and two writers never interleave;
//! - a claim is one `UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING ...` inside that
//!   transaction, with its history rows: the file's single writer is the fence that SKIP
//!   LOCKED is on a server, so no task is ever held by two leases;
//! - WAL, so readers never wait for the writer; a busy timeout (`lock_wait_timeout`) for
//!   writers of other processes; one writer connection per process (threads take turns on
//!   it) and read connections beside it;
//! - times are microseconds since the Unix epoch, UTC, from the host's real-time clock
//!   (`CLOCK_REALTIME`), read by the library: every process on the host shares that clock.
//!
//! Durability: `synchronous = FULL` by default, so a committed enqueue, complete, fail or
//! change by an operator survives the loss of the process and of the machine's power;
//! `sqlite_synchronous = normal` keeps every commit across a crash of any process but may lose
//! the last commits on power loss. A lease's own commits (claims and heartbeats) never wait for
//! the disk, at either setting (see [`Commit::Lease`]): they too survive any process crash.

mod busy;
mod claim;
pub(crate) mod clock;
mod enqueue;
mod finish;
mod manage;
mod read;
pub(crate) mod schema;
mod stats;
mod types;

pub(crate) use claim::{claim, complete_and_claim, recover_expired};
pub(crate) use enqueue::enqueue_batch;
pub(crate) use finish::{complete, complete_batch, fail, heartbeat, release};
pub(crate) use manage::{cancel, prune, retry};
pub(crate) use read::{get_task, list_tasks, task_history};
pub(crate) use stats::stats;
pub(crate) use types::{get_type, list_types, register_type, set_type_active};

use crate::config::{FileSettings, Synchronous};
use crate::error::{Code, Error, Result};
use crate::queue::lifecycle::{Change, Status};
use crate::type_cache::CachedType;
use once_cell::sync::Lazy;
use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One store per file and settings in a process, as the server pools are.
static REGISTRY: Lazy<Mutex<HashMap<FileSettings, Arc<Store>>>> = Lazy::new(Default::default);

/// Most read connections a process keeps open beside its writer.
const MAX_IDLE_READERS: usize = 8;

/// One SQLite file as the library sees it.
pub(crate) struct Store {
    settings: FileSettings,
    /// The process that opened the connections below: a forked child opens its own.
    pid: Mutex<u32>,
    writer: Mutex<Option<Writer>>,
    readers: Mutex<Vec<Connection>>,
    schema_ready: AtomicBool,
    /// Raised by this process's enqueues and finished tasks, for its waiting claims.
    arrivals: (Mutex<u64>, Condvar),
    /// Compiled validators by type id and version (a version's schema never changes, and ids
    /// are never given twice).
    validators: Mutex<HashMap<(i64, String), Arc<CachedType>>>,
    /// Type names by id, for claimed tasks (a type is never renamed).
    names: Mutex<HashMap<i64, String>>,
    /// When this process's claims last recovered expired leases.
    last_recovery: Mutex<Option<Instant>>,
}

/// This process's write connection and the `synchronous` level it is set to now.
struct Writer {
    conn: Connection,
    synchronous: Synchronous,
}

/// What a write's commit waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// The file's `synchronous` setting: at `full` (the default) the commit is on disk before
    /// the call returns.
    Durable,
    /// In the OS's hands, not on disk, even at `full`: a lease's own changes (a claim, a
    /// heartbeat). A process crash keeps them (the OS writes them out); a power cut may undo
    /// the last of them, which can only happen when every worker of this host died with it:
    /// the task is pending again, as if its worker had crashed (without the attempt counted).
    /// The next durable commit (any complete, enqueue, fail) puts them on disk too, since the
    /// log is written in order. This halves the fsyncs of a claim + complete loop.
    Lease,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.settings.path)
            .finish_non_exhaustive()
    }
}

/// The shared store for this file, created once per process.
pub(crate) fn store(settings: &FileSettings) -> Result<Arc<Store>> {
    let mut registry = REGISTRY.lock();
    if let Some(store) = registry.get(settings) {
        return Ok(store.clone());
    }
    let store = Arc::new(Store {
        settings: settings.clone(),
        pid: Mutex::new(std::process::id()),
        writer: Mutex::new(None),
        readers: Mutex::new(Vec::new()),
        schema_ready: AtomicBool::new(false),
        arrivals: Default::default(),
        validators: Default::default(),
        names: Default::default(),
        last_recovery: Mutex::new(None),
    });
    registry.insert(settings.clone(), store.clone());
    Ok(store)
}

impl Store {
    pub(crate) fn path(&self) -> &Path {
        &self.settings.path
    }

    /// Opens (creating it if need be) the file, so that a bad path is reported at open.
    pub(crate) fn ensure_file(&self) -> Result<()> {
        self.with_writer(|_| Ok(()))
    }

    /// Runs `step` in one `BEGIN IMMEDIATE` transaction on this process's writer connection:
    /// committed when it returns `Ok`, rolled back otherwise (nothing half-written).
    pub(crate) fn write<T>(
        &self,
        step: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.ensure_ready()?;
        self.write_committed(Commit::Durable, step)
    }

    /// [`Store::write`] for a lease's own changes, whose commit does not wait for the disk
    /// ([`Commit::Lease`]).
    pub(crate) fn write_lease<T>(
        &self,
        step: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.ensure_ready()?;
        self.write_committed(Commit::Lease, step)
    }

    /// [`Store::write`] without the schema check (for the migration itself).
    pub(crate) fn write_unchecked<T>(
        &self,
        step: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.write_committed(Commit::Durable, step)
    }

    fn write_committed<T>(
        &self,
        commit: Commit,
        step: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let wanted = match commit {
            Commit::Durable => self.settings.synchronous,
            Commit::Lease => Synchronous::Normal,
        };
        self.with_writer(|writer| {
            // A connection's own setting, read at each commit: changed only between
            // transactions, and only when the kind of commit changes.
            if writer.synchronous != wanted {
                writer
                    .conn
                    .execute_batch(&format!("PRAGMA synchronous = {}", wanted.as_sql()))
                    .map_err(|e| self.error(e))?;
                writer.synchronous = wanted;
            }
            let tx = writer
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.error(e))?;
            let out = step(&tx)?;
            tx.commit().map_err(|e| self.error(e))?;
            Ok(out)
        })
    }

    /// Runs `read` on a read connection (WAL: it sees the last commit and waits for nobody).
    pub(crate) fn read<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.ensure_ready()?;
        self.read_unchecked(read)
    }

    pub(crate) fn read_unchecked<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        self.forget_connections_after_fork();
        let conn = self.readers.lock().pop();
        let conn = match conn {
            Some(conn) => conn,
            None => self.open(false)?,
        };
        let out = read(&conn);
        let mut readers = self.readers.lock();
        if readers.len() < MAX_IDLE_READERS {
            readers.push(conn);
        }
        out
    }

    fn with_writer<T>(&self, step: impl FnOnce(&mut Writer) -> Result<T>) -> Result<T> {
        self.forget_connections_after_fork();
        let mut writer = self.writer.lock();
        if writer.is_none() {
            *writer = Some(Writer {
                conn: self.open(true)?,
                synchronous: self.settings.synchronous,
            });
        }
        step(writer.as_mut().expect("opened above"))
    }

    /// A forked child must not use its parent's connections (SQLite's locks belong to the
    /// process that took them): it leaves them alone, unclosed, and opens its own.
    fn forget_connections_after_fork(&self) {
        let mut pid = self.pid.lock();
        if *pid != std::process::id() {
            std::mem::forget(self.writer.lock().take());
            std::mem::forget(std::mem::take(&mut *self.readers.lock()));
            *pid = std::process::id();
        }
    }

    fn open(&self, writer: bool) -> Result<Connection> {
        configure_sqlite_once();
        let path = &self.settings.path;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(Error::config(format!(
                    "cannot open the queue file {}: its directory {} does not exist",
                    path.display(),
                    dir.display()
                )));
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| self.error(e))?;
        busy::wait_for_the_lock(&conn, Duration::from_secs(self.settings.busy_timeout_secs))
            .map_err(|e| self.error(e))?;
        // journal_mode = WAL is a property of the file; asking for it also proves the file
        // is a SQLite database (anything else fails here with SQLITE_NOTADB).
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| self.error(e))?;
        if !mode.eq_ignore_ascii_case("wal") && writer {
            return Err(Error::new(
                Code::Database,
                format!(
                    "cannot switch the queue file {} to WAL mode (it stays in {mode} mode); \
                     is it on a file system without shared memory?",
                    path.display()
                ),
            ));
        }
        // temp_store in memory: a claim's `IN (SELECT ...)` and `RETURNING` buffer their rows in
        // temporary tables, which would otherwise be files opened and closed per statement. The
        // writer keeps up to 64 MiB of pages (a busy queue's indexes), a reader 8 MiB: pages
        // it evicted it would read again from the file.
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {}; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
             PRAGMA cache_size = {};",
            self.settings.synchronous.as_sql(),
            if writer { -65536 } else { -8192 }
        ))
        .map_err(|e| self.error(e))?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    /// Checks (once per process) that the file's schema is this library's.
    fn ensure_ready(&self) -> Result<()> {
        if self.schema_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let found = self.read_unchecked(|conn| schema::version(self, conn))?;
        match found {
            Some(v) if v == schema::VERSION => {
                self.schema_ready.store(true, Ordering::Release);
                Ok(())
            }
            Some(v) if v > schema::VERSION => Err(schema::newer(self, v)),
            found => Err(Error::new(
                Code::SchemaOutdated,
                format!(
                    "the queue file {} has schema version {} but this library needs {}: run the \
                     migrations (tm_migrate, Client::migrate, or `taskmanager migrate`)",
                    self.path().display(),
                    found.map_or("none".to_string(), |v| v.to_string()),
                    schema::VERSION
                ),
            )
            .with_details(json!({"found": found, "required": schema::VERSION}))),
        }
    }

    /// Converts a SQLite error into ours, naming the file and SQLite's code.
    pub(crate) fn error(&self, e: rusqlite::Error) -> Error {
        let path = self.path().display();
        let code = match &e {
            rusqlite::Error::SqliteFailure(f, _) => Some(f.extended_code),
            _ => None,
        };
        let cause = match &e {
            rusqlite::Error::InvalidColumnType(_, column, found) => format!(
                "column `{column}` holds a value this library cannot read ({found}); correct the \
                 row by hand"
            ),
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => format!(
                    "{e}: another connection held the file's lock for longer than the busy \
                     timeout ({} s, setting lock_wait_timeout); nothing was written",
                    self.settings.busy_timeout_secs
                ),
                rusqlite::ErrorCode::NotADatabase => {
                    format!("{e}: the file is not a SQLite database")
                }
                rusqlite::ErrorCode::DiskFull => {
                    format!("{e}: the disk is full; nothing was written")
                }
                rusqlite::ErrorCode::CannotOpen => {
                    format!("{e}: check that the directory exists and may be written")
                }
                rusqlite::ErrorCode::ReadOnly => {
                    format!("{e}: the file or its directory may not be written by this process")
                }
                _ => e.to_string(),
            },
            _ => e.to_string(),
        };
        let error_code = match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::NotADatabase
                ) =>
            {
                Code::Config
            }
            _ => Code::Database,
        };
        Error::new(error_code, format!("SQLite queue file {path}: {cause}"))
            .with_details(json!({"sqlite_code": code}))
    }

    /// Tells this process's waiting claims that a task may have become claimable.
    pub(crate) fn signal(&self) {
        let (count, arrived) = &self.arrivals;
        *count.lock() += 1;
        arrived.notify_all();
    }

    /// Waits until [`Store::signal`] or `timeout`, whichever comes first.
    pub(crate) fn wait_for_signal(&self, seen: u64, timeout: Duration) {
        let (count, arrived) = &self.arrivals;
        let mut count = count.lock();
        if *count == seen {
            arrived.wait_for(&mut count, timeout);
        }
    }

    /// The signal's count now, to wait for the next one.
    pub(crate) fn signals(&self) -> u64 {
        *self.arrivals.0.lock()
    }
}

impl Store {
    /// A type's compiled validator, built once per id and version.
    pub(crate) fn cached_type(
        &self,
        name: &str,
        id: i64,
        version: String,
        schema_text: &str,
    ) -> Result<Arc<CachedType>> {
        let key = (id, version);
        if let Some(found) = self.validators.lock().get(&key) {
            return Ok(found.clone());
        }
        let schema = serde_json::from_str(schema_text).map_err(|e| {
            Error::new(
                Code::InvalidSchema,
                format!("the stored schema of task type '{name}' is not JSON ({e}); register the type again"),
            )
        })?;
        let found = Arc::new(CachedType::new(id, key.1.clone(), schema));
        self.validators.lock().insert(key, found.clone());
        Ok(found)
    }

    /// A type's name by id (read once per process).
    pub(crate) fn type_name(&self, conn: &Connection, id: i64) -> Result<String> {
        if let Some(name) = self.names.lock().get(&id) {
            return Ok(name.clone());
        }
        let name: Option<String> = conn
            .prepare_cached("SELECT name FROM task_types WHERE id = ?1")
            .sql(self)?
            .query_row([id], |r| r.get(0))
            .optional()
            .sql(self)?;
        let name = name.unwrap_or_default();
        self.names.lock().insert(id, name.clone());
        Ok(name)
    }

    /// Whether a claim should recover expired leases first: once per interval (a second by
    /// default) per process.
    pub(crate) fn lazy_recovery_due(&self) -> bool {
        let interval = Duration::from_millis(self.settings.lazy_recovery_interval_ms);
        let mut last = self.last_recovery.lock();
        let due = last.is_none_or(|at| at.elapsed() >= interval);
        if due {
            *last = Some(Instant::now());
        }
        due
    }
}

/// Turns SQLite's memory statistics off before its first connection: they take a global mutex
/// around every allocation (a few percent of a batched drain), and nothing here reads them.
/// SQLite is compiled into this library: only a Rust program that links rusqlite itself shares
/// the setting. If SQLite was already initialized, the call is refused, harmlessly.
fn configure_sqlite_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config with SQLITE_CONFIG_MEMSTATUS takes one int; it runs once, before
        // this process opens its first connection.
        unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::os::raw::c_int,
            );
        }
    });
}

/// Writes one `task_history` row.
pub(crate) fn history(
    store: &Store,
    conn: &Connection,
    task_id: i64,
    change: Change,
    worker_id: Option<&str>,
    message: Option<&str>,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .sql(store)?
    .execute((task_id, change.as_str(), worker_id, message, now))
    .sql(store)?;
    Ok(())
}

/// Frees the dedupe key of task `id`, just finished, when its key blocks only while the task
/// is active (`dedupe_scope = 'active'`). Its own statement, after the one that finished the
/// task: an UPDATE that assigns `dedupe_lock` rewrites the key's entry in its UNIQUE index even
/// when the value stays the same, and keys are hashes, so every finished task would dirty a
/// random page of that index. This one writes only when it frees a key.
pub(crate) fn release_active_key(store: &Store, conn: &Connection, id: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE tasks SET dedupe_lock = NULL \
         WHERE id = ?1 AND dedupe_scope = 'active' AND dedupe_lock IS NOT NULL",
    )
    .sql(store)?
    .execute([id])
    .sql(store)?;
    Ok(())
}

/// Writes one `task_history` row per `(task, worker)` (a batch's rows). One prepared INSERT
/// run per row: in-process there is no round trip to save, and a single-row INSERT needs no
/// statement journal (a multi-row one copies every page it touches first, for its foreign
/// key's sake) and no JSON to build and read back.
pub(crate) fn history_rows(
    store: &Store,
    conn: &Connection,
    rows: &[(i64, Option<&str>)],
    change: Change,
    now: i64,
) -> Result<()> {
    for (task_id, worker) in rows {
        history(store, conn, *task_id, change, *worker, None, now)?;
    }
    Ok(())
}

/// A status column read back; a value the schema's CHECK should have refused is an error,
/// not a panic.
pub(crate) fn status(store: &Store, text: &str) -> Result<Status> {
    Status::parse(text).ok_or_else(|| {
        Error::new(
            Code::Database,
            format!(
                "the queue file {} holds a task with an unknown status '{text}'",
                store.path().display()
            ),
        )
    })
}

/// `column` of a row about `subject` (e.g. `task 7`): a value of another type or out of range
/// (a row changed by hand) is an error naming both, as on the server, never a panic.
pub(crate) fn column<T: rusqlite::types::FromSql>(
    store: &Store,
    row: &rusqlite::Row<'_>,
    subject: &str,
    column: &str,
) -> Result<T> {
    row.get(column).map_err(|e| match e {
        rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => {
            let value = row
                .get_ref(column)
                .map(|v| format!("{v:?}"))
                .unwrap_or_default();
            crate::row::unreadable(subject, column, &value)
        }
        other => store.error(other),
    })
}

/// An SQL error of the embedded engine, mapped for `?` inside a step.
pub(crate) trait SqlResult<T> {
    fn sql(self, store: &Store) -> Result<T>;
}

impl<T> SqlResult<T> for rusqlite::Result<T> {
    fn sql(self, store: &Store) -> Result<T> {
        self.map_err(|e| store.error(e))
    }
}

/// The error of a step the embedded engine does not run: it names the step and the engine
/// that does.
pub(crate) fn not_yet(step: &str) -> Error {
    Error::new(
        Code::UnsupportedServer,
        format!(
            "{step} is not available on the embedded (SQLite) engine; it needs a MySQL or \
             MariaDB database (set database_url or db_host instead of db_path)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `synchronous` level each kind of commit runs at (2 = FULL, 1 = NORMAL).
    fn levels(synchronous: Synchronous) -> Vec<i64> {
        let dir = std::env::temp_dir().join(format!(
            "tm_commit_unit_{}_{}",
            std::process::id(),
            synchronous.as_sql()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let store = store(&FileSettings {
            path: dir.join("q.db"),
            synchronous,
            busy_timeout_secs: 5,
            lazy_recovery_interval_ms: 1000,
        })
        .unwrap();
        let level = |tx: &rusqlite::Transaction<'_>| -> Result<i64> {
            Ok(tx
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap())
        };
        let found = vec![
            store.write_committed(Commit::Durable, level).unwrap(),
            store.write_committed(Commit::Lease, level).unwrap(),
            store.write_committed(Commit::Lease, level).unwrap(),
            store.write_committed(Commit::Durable, level).unwrap(),
        ];
        std::fs::remove_dir_all(&dir).ok();
        found
    }

    #[test]
    fn a_lease_commits_without_waiting_for_the_disk_and_every_other_write_at_the_setting() {
        assert_eq!(levels(Synchronous::Full), [2, 1, 1, 2]);
        assert_eq!(levels(Synchronous::Normal), [1, 1, 1, 1]);
    }
}
