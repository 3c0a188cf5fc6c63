//! What the embedded engine's read and operator tests share: a queue on a SQLite file of a
//! fresh temporary directory, and checks of the answers' shapes.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use taskmanager::*;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A migrated queue file in a directory of its own, removed at the end.
pub struct Queue {
    pub dir: PathBuf,
    pub client: Client,
}

impl Queue {
    pub fn new(extra: Value) -> Queue {
        let dir = std::env::temp_dir().join(format!(
            "tm_embedded_reads_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = json!({"db_path": dir.join("queue.db")});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        let client = Client::open_json(Some(&config.to_string())).unwrap();
        assert!(client.is_embedded());
        client.migrate().unwrap();
        Queue { dir, client }
    }

    pub fn register(&self, name: &str) {
        self.client
            .register_type(&from(
                json!({"name": name, "param_schema": {"type": "object"}}),
            ))
            .unwrap();
    }

    pub fn enqueue(&self, type_name: &str, params: Value) -> i64 {
        self.enqueue_with(type_name, params, json!({}))
    }

    pub fn enqueue_with(&self, type_name: &str, params: Value, options: Value) -> i64 {
        self.client
            .enqueue(type_name, &params, &from(options))
            .unwrap()
            .id
    }

    /// Claims the next task of `type_name` (exactly one).
    pub fn claim(&self, worker: &str, type_name: &str) -> ClaimedTask {
        let mut got = self
            .client
            .claim(worker, &from(json!({"types": [type_name], "limit": 1})))
            .unwrap();
        assert_eq!(got.len(), 1, "expected a task of {type_name} to claim");
        got.remove(0)
    }

    /// Plain SQL on the file, for what only time would do otherwise (a lease that ran out, a
    /// task that finished long ago).
    pub fn sql(&self, statement: &str) {
        let conn = rusqlite::Connection::open(self.dir.join("queue.db")).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn.execute_batch(statement).unwrap();
    }

    pub fn list(&self, filter: Value) -> Vec<i64> {
        self.client
            .list_tasks(&from(filter))
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect()
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

/// The error's code and message.
pub fn error<T: std::fmt::Debug>(result: Result<T>) -> (Code, String) {
    let e = result.expect_err("expected an error");
    (e.code(), e.message().to_string())
}

/// A time as the server engine answers it: RFC 3339, UTC, six fraction digits.
pub fn is_time(text: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.6fZ").is_ok()
        && text.len() == 27
}

pub fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

pub fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// `(status_change, worker_id, message)` of every history row of a task, oldest first.
pub fn history(q: &Queue, id: i64) -> Vec<(String, Option<String>, Option<String>)> {
    q.client
        .task_history(id)
        .unwrap()
        .into_iter()
        .map(|h| {
            assert_eq!(h.task_id, id);
            assert!(is_time(&h.created_at), "{}", h.created_at);
            (h.status_change, h.worker_id, h.message)
        })
        .collect()
}

pub fn row(
    change: &str,
    worker: Option<&str>,
    message: Option<&str>,
) -> (String, Option<String>, Option<String>) {
    (
        change.to_string(),
        worker.map(String::from),
        message.map(String::from),
    )
}
