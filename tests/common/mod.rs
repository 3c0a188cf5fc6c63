//! Shared test setup: every test gets its own freshly migrated database on the real server.
//!
//! The server is taken from `TASKMANAGER_TEST_HOST` / `_PORT` / `_USER` / `_PASS`
//! (default: the `taskmanager_test` account that `scripts/setup` creates, on 127.0.0.1:3306).
#![allow(dead_code)]

pub mod own_server;

use mysql::prelude::Queryable;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use taskmanager::{Client, Config};

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

/// A database of its own for one test, dropped at the end.
pub struct TestDb {
    pub name: String,
    pub client: Client,
}

impl TestDb {
    /// A migrated database; `extra` config keys override the defaults.
    pub fn new(extra: Value) -> TestDb {
        let db = TestDb::empty(extra);
        db.client.migrate().expect("migrate");
        db
    }

    /// A database with no tables at all.
    pub fn empty(extra: Value) -> TestDb {
        TestDb::empty_named("tm_test", extra)
    }

    /// An empty database whose name starts with `prefix` (grants are given by name pattern).
    pub fn empty_named(prefix: &str, extra: Value) -> TestDb {
        let name = format!(
            "{prefix}_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        admin()
            .query_drop(format!(
                "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            ))
            .unwrap();
        let client = Client::open(TestDb::config(&name, extra)).expect("open client");
        TestDb { name, client }
    }

    pub fn config(name: &str, extra: Value) -> Config {
        let (host, port, user, pass) = server();
        let mut map = json!({"db_host": host, "db_port": port, "db_user": user, "db_pass": pass,
            "db_name": name, "pool_max_connections": 4});
        for (k, v) in extra.as_object().unwrap() {
            map[k] = v.clone();
        }
        Config::from_map(map.as_object().unwrap()).unwrap()
    }

    /// A second client on the same database with other settings (e.g. history off).
    pub fn client_with(&self, extra: Value) -> Client {
        Client::open(TestDb::config(&self.name, extra)).unwrap()
    }

    /// A direct connection to this test's database, for setting up boundaries and checking rows.
    pub fn sql(&self) -> mysql::Conn {
        let mut c = admin();
        c.query_drop(format!("USE {}", self.name)).unwrap();
        c
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

    pub fn count(&self, sql: &str) -> i64 {
        self.sql().query_first(sql).unwrap().unwrap()
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

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = admin().query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

pub fn any_object() -> Value {
    json!({"type": "object"})
}

impl TestDb {
    pub fn count_f64(&self, sql: &str) -> f64 {
        let v: Option<mysql::Value> = self.sql().query_first(sql).unwrap();
        match v.unwrap() {
            mysql::Value::Bytes(b) => String::from_utf8(b).unwrap().parse().unwrap(),
            mysql::Value::Double(d) => d,
            mysql::Value::Float(f) => f as f64,
            mysql::Value::Int(i) => i as f64,
            other => panic!("not a number: {other:?}"),
        }
    }

    pub fn sql_exec(&self, sql: &str) {
        self.sql().query_drop(sql).unwrap();
    }
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
