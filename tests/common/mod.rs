//! Shared test setup: every test gets its own fresh queue, dropped at the end.
//!
//! # Engines
//!
//! `TASKMANAGER_TEST_ENGINE` picks the engine the shared suites run on: `mysql` (the default)
//! or `sqlite`.
//! - `mysql`: a freshly created database on the real server, taken from
//!   `TASKMANAGER_TEST_HOST` / `_PORT` / `_USER` / `_PASS` (default: the `taskmanager_test`
//!   account that `scripts/setup` creates, on 127.0.0.1:3306).
//! - `sqlite`: a queue file in a fresh temporary directory (removed on drop), opened with
//!   `db_path` (the embedded engine).
//!
//! [`TestDb::new`], [`TestDb::empty`] and [`TestDb::client_with`] follow the variable; so do
//! the checks a test makes with plain SQL: [`TestDb::count`], [`TestDb::count_f64`] and
//! [`TestDb::sql_exec`] run on the server or on the file (write SQL both dialects read), and
//! the clock helpers [`TestDb::set_time`], [`TestDb::shift_time`] and
//! [`TestDb::seconds_until`] move and read the tasks' times in each engine's own terms (the
//! server's `NOW(6)` and DATETIMEs; the file's INTEGER microseconds on the host clock).
//!
//! # Server-only tests
//!
//! A test about the server itself (row locks and SKIP LOCKED, procedures, killed connections,
//! restarts, failover hosts, MySQL-only SQL, flow control, schedules, enqueue in the caller's
//! transaction) opens its database with [`TestDb::server`] / [`TestDb::server_empty`]: it runs
//! on the server whatever the variable says, and can never pass on the wrong engine.
//! - A file that is all about the server uses only those (procedures, schedules, flow_control,
//!   migrations, ...) and is simply not among the targets `scripts/test` runs under `sqlite`.
//! - A shared file (lifecycle, leases, bad_input, ...) keeps its server-only tests in a
//!   `mod server_only`: the `sqlite` run passes `--skip server_only::` and prints the tests it
//!   leaves out (they already ran on the server in the `mysql` run).
//!
//! Tests for the embedded engine alone (processes sharing a file, `kill -9`, locked, foreign
//! and newer files) are in `tests/embedded.rs`, on `sqlite` whatever the variable says.
#![allow(dead_code)]

pub mod own_server;

use mysql::prelude::Queryable;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use taskmanager::{Client, Config};

/// The engine a test's queue lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A database on the MySQL/MariaDB server.
    Mysql,
    /// A SQLite file (the embedded engine).
    Sqlite,
}

/// The engine `TASKMANAGER_TEST_ENGINE` names (`mysql` when unset).
pub fn engine() -> Engine {
    match std::env::var("TASKMANAGER_TEST_ENGINE").as_deref() {
        Err(_) | Ok("") | Ok("mysql") => Engine::Mysql,
        Ok("sqlite") => Engine::Sqlite,
        Ok(other) => panic!("TASKMANAGER_TEST_ENGINE must be mysql or sqlite, got '{other}'"),
    }
}

pub fn server() -> (String, u16, String, String) {
    let var = |k: &str, d: &str| {
        std::env::var(format!("TASKMANAGER_TEST_{k}")).unwrap_or_else(|_| d.to_string())
    };
    (
        var("HOST", "127.0.0.1"),
        var("PORT", "3306").parse().unwrap(),
        var("USER", "taskmanager_test"),
        var("PASS", ""),
    )
}

pub fn admin() -> mysql::Conn {
    let (host, port, user, pass) = server();
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(host))
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(pass))
        // Over TCP like the library, so both are the same account (user@127.0.0.1) and see
        // each other's sessions in the process list.
        .prefer_socket(false)
        .init(vec!["SET time_zone = '+00:00'"]);
    mysql::Conn::new(opts).expect("the test MariaDB server must be running (see README)")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name no other test of any process uses.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// A directory of its own under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The configuration of a client on the SQLite file `path`, with `extra` over the defaults.
pub fn sqlite_config(path: &Path, extra: Value) -> Config {
    let mut map = json!({"db_path": path.to_str().unwrap(), "pool_max_connections": 4});
    for (k, v) in extra.as_object().unwrap() {
        map[k] = v.clone();
    }
    Config::from_map(map.as_object().unwrap()).unwrap()
}

/// A queue of its own for one test, dropped at the end.
pub struct TestDb {
    /// Where it lives.
    pub engine: Engine,
    /// The database's name on the server; the file's path on SQLite.
    pub name: String,
    pub client: Client,
    /// SQLite: the directory holding the file.
    dir: Option<TempDir>,
}

impl TestDb {
    /// A migrated queue on the engine of `TASKMANAGER_TEST_ENGINE`; `extra` config keys
    /// override the defaults.
    pub fn new(extra: Value) -> TestDb {
        TestDb::migrated(engine(), extra)
    }

    /// A queue with no tables at all, on the engine of `TASKMANAGER_TEST_ENGINE`.
    pub fn empty(extra: Value) -> TestDb {
        TestDb::on(engine(), "tm_test", extra)
    }

    /// A migrated database on the server, whatever `TASKMANAGER_TEST_ENGINE` says: for the
    /// tests about the server itself.
    pub fn server(extra: Value) -> TestDb {
        TestDb::migrated(Engine::Mysql, extra)
    }

    /// An empty database on the server (see [`TestDb::server`]).
    pub fn server_empty(extra: Value) -> TestDb {
        TestDb::on(Engine::Mysql, "tm_test", extra)
    }

    /// An empty database on the server whose name starts with `prefix` (grants are given by
    /// name pattern).
    pub fn server_empty_named(prefix: &str, extra: Value) -> TestDb {
        TestDb::on(Engine::Mysql, prefix, extra)
    }

    /// A migrated SQLite file, whatever `TASKMANAGER_TEST_ENGINE` says.
    pub fn sqlite(extra: Value) -> TestDb {
        TestDb::migrated(Engine::Sqlite, extra)
    }

    fn migrated(engine: Engine, extra: Value) -> TestDb {
        let db = TestDb::on(engine, "tm_test", extra);
        db.client.migrate().expect("migrate");
        db
    }

    /// An empty queue on `engine`: a database named `prefix_...` or a file in a directory so
    /// named.
    pub fn on(engine: Engine, prefix: &str, extra: Value) -> TestDb {
        match engine {
            Engine::Mysql => {
                let name = unique(prefix);
                admin()
                    .query_drop(format!(
                        "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                    ))
                    .unwrap();
                let client =
                    Client::open(TestDb::server_config(&name, extra)).expect("open client");
                TestDb {
                    engine,
                    name,
                    client,
                    dir: None,
                }
            }
            Engine::Sqlite => {
                let dir = TempDir::new(prefix);
                let path = dir.path().join("queue.db");
                let client = Client::open(sqlite_config(&path, extra)).expect("open client");
                TestDb {
                    engine,
                    name: path.to_str().unwrap().to_string(),
                    client,
                    dir: Some(dir),
                }
            }
        }
    }

    /// The configuration of a client on the server database `name` (server-only tests).
    pub fn server_config(name: &str, extra: Value) -> Config {
        let (host, port, user, pass) = server();
        let mut map = json!({"db_host": host, "db_port": port, "db_user": user, "db_pass": pass,
            "db_name": name, "pool_max_connections": 4});
        for (k, v) in extra.as_object().unwrap() {
            map[k] = v.clone();
        }
        Config::from_map(map.as_object().unwrap()).unwrap()
    }

    /// The configuration of another client on this queue, with `extra` over the defaults.
    pub fn config_with(&self, extra: Value) -> Config {
        match self.engine {
            Engine::Mysql => TestDb::server_config(&self.name, extra),
            Engine::Sqlite => sqlite_config(Path::new(&self.name), extra),
        }
    }

    /// A second client on the same queue with other settings (e.g. history off).
    pub fn client_with(&self, extra: Value) -> Client {
        Client::open(self.config_with(extra)).unwrap()
    }

    /// SQLite: the queue file.
    pub fn path(&self) -> &Path {
        assert_eq!(
            self.engine,
            Engine::Sqlite,
            "only a SQLite queue has a file"
        );
        Path::new(&self.name)
    }

    /// A direct connection to this test's server database (server-only tests).
    pub fn sql(&self) -> mysql::Conn {
        assert_eq!(
            self.engine,
            Engine::Mysql,
            "db.sql() is the server's connection: use count/sql_exec, or TestDb::server"
        );
        let mut c = admin();
        c.query_drop(format!("USE {}", self.name)).unwrap();
        c
    }

    /// A direct connection to this test's SQLite file (it waits up to 10 s for the library's
    /// writers).
    pub fn sqlite_conn(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(self.path()).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn
    }

    /// The server drops every connection to this database but the caller's (as a restart or
    /// `wait_timeout` would); returns how many it dropped.
    pub fn kill_connections(&self) -> usize {
        let mut admin = self.sql();
        let ids: Vec<u64> = admin
            .exec(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
                (&self.name,),
            )
            .unwrap();
        for id in &ids {
            admin.query_drop(format!("KILL CONNECTION {id}")).unwrap();
        }
        ids.len()
    }

    /// The integer the query answers, on either engine.
    pub fn count(&self, sql: &str) -> i64 {
        match self.engine {
            Engine::Mysql => self.sql().query_first(sql).unwrap().unwrap(),
            Engine::Sqlite => self
                .sqlite_conn()
                .query_row(sql, [], |r| r.get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// The number the query answers, on either engine.
    pub fn count_f64(&self, sql: &str) -> f64 {
        match self.engine {
            Engine::Mysql => {
                let v: Option<mysql::Value> = self.sql().query_first(sql).unwrap();
                match v.unwrap() {
                    mysql::Value::Bytes(b) => String::from_utf8(b).unwrap().parse().unwrap(),
                    mysql::Value::Double(d) => d,
                    mysql::Value::Float(f) => f as f64,
                    mysql::Value::Int(i) => i as f64,
                    other => panic!("not a number: {other:?}"),
                }
            }
            Engine::Sqlite => {
                let v: rusqlite::types::Value = self
                    .sqlite_conn()
                    .query_row(sql, [], |r| r.get(0))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                match v {
                    rusqlite::types::Value::Integer(i) => i as f64,
                    rusqlite::types::Value::Real(f) => f,
                    other => panic!("not a number: {other:?}"),
                }
            }
        }
    }

    /// Runs statements (`;`-separated) on either engine.
    pub fn sql_exec(&self, sql: &str) {
        match self.engine {
            Engine::Mysql => self.sql().query_drop(sql).unwrap(),
            Engine::Sqlite => self
                .sqlite_conn()
                .execute_batch(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// Sets the time `column` of the tasks matching `filter` (SQL over `tasks`) to now plus
    /// `offset` seconds (negative: in the past), now being the engine's clock.
    pub fn set_time(&self, column: &str, offset: f64, filter: &str) {
        let micros = (offset * 1e6).round() as i64;
        self.sql_exec(&match self.engine {
            Engine::Mysql => format!(
                "UPDATE tasks SET {column} = NOW(6) + INTERVAL {micros} MICROSECOND WHERE {filter}"
            ),
            Engine::Sqlite => format!(
                "UPDATE tasks SET {column} = {} WHERE {filter}",
                now_micros() + micros
            ),
        });
    }

    /// Moves the time `column` of the tasks matching `filter` by `seconds` (negative: back).
    pub fn shift_time(&self, column: &str, seconds: f64, filter: &str) {
        let micros = (seconds * 1e6).round() as i64;
        self.sql_exec(&match self.engine {
            Engine::Mysql => format!(
                "UPDATE tasks SET {column} = {column} + INTERVAL {micros} MICROSECOND \
                 WHERE {filter}"
            ),
            Engine::Sqlite => {
                format!("UPDATE tasks SET {column} = {column} + {micros} WHERE {filter}")
            }
        });
    }

    /// How many seconds from now task `id`'s time `column` is (negative: past).
    pub fn seconds_until(&self, column: &str, id: i64) -> f64 {
        match self.engine {
            Engine::Mysql => self.count_f64(&format!(
                "SELECT TIMESTAMPDIFF(MICROSECOND, NOW(6), {column}) / 1e6 FROM tasks WHERE id = {id}"
            )),
            Engine::Sqlite => {
                let at = self.count(&format!("SELECT {column} FROM tasks WHERE id = {id}"));
                (at - now_micros()) as f64 / 1e6
            }
        }
    }

    pub fn register(&self, name: &str, schema: Value) {
        self.client
            .register_type(
                &serde_json::from_value(
                    json!({"name": name, "version": 1, "param_schema": schema}),
                )
                .unwrap(),
            )
            .unwrap();
    }
}

/// Now as the embedded engine reads it: microseconds since the Unix epoch, host clock.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.engine == Engine::Mysql {
            let _ = admin().query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
        }
        // SQLite: the TempDir goes with the file.
    }
}

pub fn any_object() -> Value {
    json!({"type": "object"})
}
/// Options and other inputs from JSON, as a C or PHP caller would give them.
pub fn from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

impl TestDb {
    /// Enqueues with default options and returns the task id.
    pub fn enqueue(&self, type_name: &str, params: Value) -> i64 {
        self.client
            .enqueue(type_name, &params, &Default::default())
            .unwrap()
            .id
    }

    /// Enqueues with options given as JSON and returns the task id.
    pub fn enqueue_with(&self, type_name: &str, params: Value, options: Value) -> i64 {
        self.client
            .enqueue(type_name, &params, &from(options))
            .unwrap()
            .id
    }

    /// Claims exactly one task with default options.
    pub fn claim_one(&self, worker: &str) -> taskmanager::ClaimedTask {
        let mut got = self.client.claim(worker, &Default::default()).unwrap();
        assert_eq!(got.len(), 1, "expected one task to claim");
        got.remove(0)
    }
}

/// The `status_change` of every history row of a task, oldest first.
pub fn history_kinds(client: &Client, id: i64) -> Vec<String> {
    client
        .task_history(id)
        .unwrap()
        .into_iter()
        .map(|h| h.status_change)
        .collect()
}

/// The `taskmanager` command line on the database `db_name` of the test server (its settings
/// from the environment, as an operator's cron job would give them).
pub fn cli(db_name: &str) -> std::process::Command {
    let (host, port, user, pass) = server();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_taskmanager"));
    command
        .env_remove("TASKMANAGER_DATABASE_URL")
        .env("TASKMANAGER_DB_HOST", host)
        .env("TASKMANAGER_DB_PORT", port.to_string())
        .env("TASKMANAGER_DB_USER", user)
        .env("TASKMANAGER_DB_PASS", pass)
        .env("TASKMANAGER_DB_NAME", db_name);
    command
}

/// The shared library the PHP and Python processes of a test load, built for it.
pub fn cdylib() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--lib", "--quiet"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(status.success(), "cargo build --lib failed");
    format!("{root}/target/debug/libtaskmanager.so")
}

/// A PHP or Python soak worker process (`tests/soak/worker.*`): `program` with `args`, then the
/// client configuration, the stop file and the worker id, then `extra`.
pub fn worker_process(
    program: &str,
    args: &[&str],
    config: &str,
    stop_file: &std::path::Path,
    id: &str,
    extra: &[&str],
) -> std::process::Child {
    std::process::Command::new(program)
        .args(args)
        .arg(config)
        .arg(stop_file)
        .arg(id)
        .args(extra)
        .env("TASKMANAGER_LIB", cdylib())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is needed: {e}"))
}

/// Waits for a soak worker process; it must exit cleanly. Returns the steps it ran.
pub fn finish_worker(child: std::process::Child) -> u64 {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "a PHP or Python worker failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["steps"].as_u64().unwrap()
}
