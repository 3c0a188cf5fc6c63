//! The embedded engine's reads, stats and operator steps: get_task, list_tasks, task_history,
//! stats (and metrics), cancel, retry and prune, on a SQLite file of a fresh temporary
//! directory, answering as the server engine does (its messages, codes and JSON shapes).

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use taskmanager::*;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A migrated queue file in a directory of its own, removed at the end.
struct Queue {
    dir: PathBuf,
    client: Client,
}

impl Queue {
    fn new(extra: Value) -> Queue {
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

    fn register(&self, name: &str) {
        self.client
            .register_type(&from(
                json!({"name": name, "param_schema": {"type": "object"}}),
            ))
            .unwrap();
    }

    fn enqueue(&self, type_name: &str, params: Value) -> i64 {
        self.enqueue_with(type_name, params, json!({}))
    }

    fn enqueue_with(&self, type_name: &str, params: Value, options: Value) -> i64 {
        self.client
            .enqueue(type_name, &params, &from(options))
            .unwrap()
            .id
    }

    /// Claims the next task of `type_name` (exactly one).
    fn claim(&self, worker: &str, type_name: &str) -> ClaimedTask {
        let mut got = self
            .client
            .claim(worker, &from(json!({"types": [type_name], "limit": 1})))
            .unwrap();
        assert_eq!(got.len(), 1, "expected a task of {type_name} to claim");
        got.remove(0)
    }

    /// Plain SQL on the file, for what only time would do otherwise (a lease that ran out, a
    /// task that finished long ago).
    fn sql(&self, statement: &str) {
        let conn = rusqlite::Connection::open(self.dir.join("queue.db")).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn.execute_batch(statement).unwrap();
    }

    fn list(&self, filter: Value) -> Vec<i64> {
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

fn from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

/// The error's code and message.
fn error<T: std::fmt::Debug>(result: Result<T>) -> (Code, String) {
    let e = result.expect_err("expected an error");
    (e.code(), e.message().to_string())
}

/// A time as the server engine answers it: RFC 3339, UTC, six fraction digits.
fn is_time(text: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.6fZ").is_ok()
        && text.len() == 27
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// `(status_change, worker_id, message)` of every history row of a task, oldest first.
fn history(q: &Queue, id: i64) -> Vec<(String, Option<String>, Option<String>)> {
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

fn row(
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

#[test]
fn get_list_and_history_follow_a_lifecycle() {
    let q = Queue::new(json!({"enable_task_history": true}));
    q.register("mail");
    let done = q.enqueue_with("mail", json!({"to": "a"}), json!({"priority": 5}));
    let retried = q.enqueue_with("mail", json!({"to": "b"}), json!({"priority": 4}));
    let cancelled = q.enqueue("mail", json!({"to": "c"}));

    let task = q.claim("w1", "mail");
    assert_eq!(task.id, done);
    q.client
        .complete(done, &task.lease_token, &json!({"ok": true}))
        .unwrap();
    let task = q.claim("w2", "mail");
    assert_eq!(task.id, retried);
    let failed = q
        .client
        .fail(
            retried,
            &task.lease_token,
            "boom",
            &from(json!({"retry_in_seconds": 600})),
        )
        .unwrap();
    assert_eq!(failed.status, Status::Pending);
    q.client.cancel(cancelled, Some("not needed")).unwrap();
    q.client.retry(cancelled).unwrap();

    let t = q.client.get_task(done).unwrap();
    assert_eq!(
        (t.id, t.type_name.as_str(), t.status),
        (done, "mail", Status::Completed)
    );
    assert_eq!(t.type_id, q.client.get_type("mail").unwrap().id);
    assert_eq!(
        (t.params.clone(), t.result.clone()),
        (json!({"to": "a"}), json!({"ok": true}))
    );
    assert_eq!(
        (t.attempts, t.max_attempts, t.priority, t.progress),
        (1, 3, 5, 100)
    );
    assert_eq!(t.claimed_by.as_deref(), Some("w1"));
    assert_eq!(t.error_message, None);
    assert_eq!(t.lease_expires_at, None);
    assert_eq!(t.dedupe_scope, "always");
    assert!(!t.dedupe_key.is_empty());
    for time in [
        t.claimed_at.as_deref().unwrap(),
        t.completed_at.as_deref().unwrap(),
        &t.run_at,
        &t.created_at,
        &t.updated_at,
    ] {
        assert!(is_time(time), "{time}");
    }
    assert!(t.completed_at.as_deref().unwrap() >= t.claimed_at.as_deref().unwrap());
    // The JSON of a task is the server engine's: every column, times as text.
    assert_eq!(
        keys(&serde_json::to_value(&t).unwrap()),
        set(&[
            "id",
            "type",
            "type_id",
            "status",
            "params",
            "result",
            "error_message",
            "attempts",
            "max_attempts",
            "priority",
            "progress",
            "dedupe_key",
            "dedupe_scope",
            "claimed_by",
            "claimed_at",
            "lease_expires_at",
            "run_at",
            "completed_at",
            "created_at",
            "updated_at"
        ])
    );

    let t = q.client.get_task(retried).unwrap();
    assert_eq!(t.status, Status::Pending);
    assert_eq!(t.error_message.as_deref(), Some("boom"));
    assert_eq!((t.attempts, t.result.clone()), (1, Value::Null));
    assert!(t.run_at > t.created_at, "the retry waits: {t:?}");
    assert_eq!(t.completed_at, None);

    let t = q.client.get_task(cancelled).unwrap();
    assert_eq!((t.status, t.attempts), (Status::Pending, 0));
    // The cancel's reason stays as the task's message; the retry cleared its end.
    assert_eq!(t.error_message.as_deref(), Some("not needed"));
    assert_eq!(t.completed_at, None);

    assert_eq!(
        history(&q, done),
        vec![
            row("created", None, None),
            row("claimed", Some("w1"), None),
            row("completed", Some("w1"), None)
        ]
    );
    assert_eq!(
        history(&q, retried),
        vec![
            row("created", None, None),
            row("claimed", Some("w2"), None),
            row("retrying", Some("w2"), Some("boom"))
        ]
    );
    assert_eq!(
        history(&q, cancelled),
        vec![
            row("created", None, None),
            row("cancelled", Some("operator"), Some("not needed")),
            row("retried", Some("operator"), None)
        ]
    );
    let ids: Vec<i64> = q
        .client
        .task_history(done)
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: {ids:?}");

    // Unknown and invalid ids, as the server engine answers them.
    assert_eq!(
        error(q.client.get_task(999_999)),
        (Code::NotFound, "task 999999 does not exist".into())
    );
    assert_eq!(
        error(q.client.get_task(0)),
        (
            Code::InvalidArgument,
            "task id must be 1 or more, got 0".into()
        )
    );
    assert_eq!(q.client.task_history(999_999).unwrap(), vec![]);
    assert_eq!(error(q.client.task_history(-1)).0, Code::InvalidArgument);

    // Newest first; the same tasks as get_task answers.
    let all = q.client.list_tasks(&ListFilter::default()).unwrap();
    assert_eq!(
        all.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![cancelled, retried, done]
    );
    for t in &all {
        assert_eq!(t, &q.client.get_task(t.id).unwrap());
    }

    // History off: nothing more is written, and the reads still answer.
    let quiet = Client::open_json(Some(
        &json!({"db_path": q.dir.join("queue.db"), "enable_task_history": false}).to_string(),
    ))
    .unwrap();
    quiet.cancel(retried, None).unwrap();
    assert_eq!(history(&q, retried).len(), 3);
    assert_eq!(quiet.get_task(retried).unwrap().status, Status::Cancelled);
}

#[test]
fn list_filters_and_pages() {
    let q = Queue::new(json!({}));
    q.register("a.one");
    q.register("a.two");
    let ones: Vec<i64> = (0..5)
        .map(|n| q.enqueue("a.one", json!({"n": n})))
        .collect();
    let twos: Vec<i64> = (0..3)
        .map(|n| q.enqueue("a.two", json!({"n": n, "note": format!("Needle_{n}")})))
        .collect();
    let decoy = q.enqueue("a.two", json!({"note": "NeedleX"}));
    let held = q.claim("w9", "a.one");
    assert_eq!(held.id, ones[0]);
    let dead = q.claim("w8", "a.one");
    q.client
        .fail(
            dead.id,
            &dead.lease_token,
            "disk FULL on host",
            &from(json!({"retry": false})),
        )
        .unwrap();

    let newest_first = |ids: &[i64]| {
        let mut ids = ids.to_vec();
        ids.sort_by(|a, b| b.cmp(a));
        ids
    };
    let everything = newest_first(&[&ones[..], &twos[..], &[decoy]].concat());
    assert_eq!(q.list(json!({})), everything);
    assert_eq!(q.list(json!({"type": "a.one"})), newest_first(&ones));
    // Type names are case-insensitive, as on a server.
    assert_eq!(q.list(json!({"type": "A.ONE"})), newest_first(&ones));
    assert_eq!(q.list(json!({"type": "a.none"})), Vec::<i64>::new());
    assert_eq!(q.list(json!({"status": "claimed"})), vec![held.id]);
    assert_eq!(q.list(json!({"status": "failed"})), vec![dead.id]);
    assert_eq!(
        q.list(json!({"type": "a.one", "status": "pending"})),
        newest_first(&ones[2..])
    );
    assert_eq!(q.list(json!({"worker_id": "w9"})), vec![held.id]);
    assert_eq!(q.list(json!({"worker_id": "nobody"})), Vec::<i64>::new());

    // Literal text, case-insensitive: `_` is no wildcard (NeedleX does not match).
    assert_eq!(
        q.list(json!({"params_text": "needle_"})),
        newest_first(&twos)
    );
    assert_eq!(q.list(json!({"text": "Needle_1"})), vec![twos[1]]);
    assert_eq!(q.list(json!({"error_text": "disk full"})), vec![dead.id]);
    assert_eq!(q.list(json!({"text": "DISK full"})), vec![dead.id]);
    assert_eq!(q.list(json!({"params_text": "disk"})), Vec::<i64>::new());
    assert_eq!(q.list(json!({"text": "100%"})), Vec::<i64>::new());

    // Ages: every task is younger than an hour and at least 0 seconds old.
    assert_eq!(q.list(json!({"older_than_seconds": 0})), everything);
    assert_eq!(q.list(json!({"newer_than_seconds": 3600})), everything);
    assert_eq!(
        q.list(json!({"older_than_seconds": 3600})),
        Vec::<i64>::new()
    );
    q.sql(&format!(
        "UPDATE tasks SET created_at = created_at - 7200000000 WHERE id = {}",
        ones[1]
    ));
    assert_eq!(q.list(json!({"older_than_seconds": 3600})), vec![ones[1]]);
    assert_eq!(
        q.list(json!({"newer_than_seconds": 3600, "type": "a.one"})),
        newest_first(&[&ones[..1], &ones[2..]].concat())
    );

    // Pages by id: each page continues below the last id of the one before.
    let mut paged = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let page = q.list(json!({"limit": 3, "before_id": before}));
        assert!(page.len() <= 3);
        let Some(last) = page.last().copied() else {
            break;
        };
        paged.extend(page);
        before = Some(last);
    }
    assert_eq!(paged, everything);
    // Pages by number.
    assert_eq!(q.list(json!({"limit": 3, "offset": 3})), everything[3..6]);
    assert_eq!(q.list(json!({"limit": 1000, "offset": 8})), everything[8..]);
    assert_eq!(q.list(json!({"offset": 1000})), Vec::<i64>::new());
    assert_eq!(
        q.list(json!({"before_id": twos[0], "type": "a.one", "limit": 2})),
        newest_first(&ones)[..2]
    );

    // The server engine's checks and messages.
    let list = |filter: Value| error(q.client.list_tasks(&from(filter)));
    assert_eq!(
        list(json!({"limit": 0})),
        (
            Code::InvalidArgument,
            "limit must be from 1 to 1000, got 0".into()
        )
    );
    assert_eq!(
        list(json!({"limit": 1001})),
        (
            Code::InvalidArgument,
            "limit must be from 1 to 1000, got 1001".into()
        )
    );
    assert_eq!(
        list(json!({"offset": 1_000_001})),
        (
            Code::InvalidArgument,
            "offset must be from 0 to 1000000, got 1000001".into()
        )
    );
    assert_eq!(
        list(json!({"status": "done"})),
        (
            Code::InvalidArgument,
            "status must be one of pending, claimed, completed, failed, cancelled, got 'done'"
                .into()
        )
    );
    assert_eq!(
        list(json!({"before_id": 0})),
        (
            Code::InvalidArgument,
            "task id must be 1 or more, got 0".into()
        )
    );
    assert_eq!(
        list(json!({"text": ""})),
        (
            Code::InvalidArgument,
            "text must be 1 to 200 characters".into()
        )
    );
    assert_eq!(
        list(json!({"error_text": "x".repeat(201)})),
        (
            Code::InvalidArgument,
            "error_text must be 1 to 200 characters".into()
        )
    );
    assert_eq!(list(json!({"type": ""})).0, Code::InvalidArgument);
    assert_eq!(list(json!({"worker_id": ""})).0, Code::InvalidArgument);
    // The limit is checked first, the offset last, as on a server.
    assert_eq!(
        list(json!({"limit": 0, "status": "done", "offset": 2_000_000})).1,
        "limit must be from 1 to 1000, got 0"
    );
    assert!(
        list(json!({"status": "done", "offset": 2_000_000}))
            .1
            .starts_with("status must be")
    );
}

#[test]
fn stats_count_every_section_with_the_server_engines_keys() {
    let q = Queue::new(json!({"enable_task_history": true}));
    for name in ["s.a", "s.b", "s.idle"] {
        q.register(name);
    }
    for n in 0..4 {
        q.enqueue("s.a", json!({"n": n}));
    }
    for n in 0..2 {
        q.enqueue("s.b", json!({"n": n}));
    }
    let done = q.claim("w1", "s.a");
    q.client
        .complete(done.id, &done.lease_token, &json!(null))
        .unwrap();
    let dead = q.claim("w2", "s.a");
    q.client
        .fail(
            dead.id,
            &dead.lease_token,
            "boom",
            &from(json!({"retry": false})),
        )
        .unwrap();
    let cancelled = q.claim("w2", "s.a");
    q.client.cancel(cancelled.id, Some("not needed")).unwrap();
    q.claim("w3", "s.b");
    let expired = q.claim("w4", "s.b");
    q.sql(&format!(
        "UPDATE tasks SET lease_expires_at = lease_expires_at - 3600000000 WHERE id = {}",
        expired.id
    ));

    let stats = q.client.stats().unwrap();
    let counts = |pending, claimed, completed, failed, cancelled| StatusCounts {
        pending,
        claimed,
        completed,
        failed,
        cancelled,
    };
    assert_eq!(stats.totals, counts(1, 2, 1, 1, 1));
    assert_eq!(stats.types["s.a"], counts(1, 0, 1, 1, 1));
    assert_eq!(stats.types["s.b"], counts(0, 2, 0, 0, 0));
    assert_eq!(stats.types["s.idle"], counts(0, 0, 0, 0, 0));
    assert_eq!(stats.types.len(), 3);

    assert_eq!(stats.queue.keys().collect::<Vec<_>>(), ["s.a", "s.b"]);
    let a = stats.queue["s.a"];
    assert_eq!(a.expired_leases, 0);
    assert!(
        a.oldest_pending_seconds
            .is_some_and(|s| (0.0..3600.0).contains(&s)),
        "{a:?}"
    );
    let b = stats.queue["s.b"];
    assert_eq!((b.expired_leases, b.oldest_pending_seconds), (1, None));

    assert_eq!(stats.throughput.keys().collect::<Vec<_>>(), ["s.a"]);
    let t = &stats.throughput["s.a"];
    assert_eq!(
        (
            t.completed_per_minute.len(),
            t.completed_per_hour.len(),
            t.failed_per_minute.len(),
            t.failed_per_hour.len()
        ),
        (60, 24, 60, 24)
    );
    // The minute that just ended holds both (a cancel is no throughput).
    assert_eq!(t.completed_per_minute.iter().sum::<i64>(), 1);
    assert_eq!(t.failed_per_minute.iter().sum::<i64>(), 1);
    assert_eq!((t.completed_per_hour[0], t.failed_per_hour[0]), (1, 1));

    let workers: Vec<(&str, i64, i64)> = stats
        .workers
        .iter()
        .map(|w| (w.worker_id.as_str(), w.claims_last_hour, w.holding))
        .collect();
    assert_eq!(
        workers,
        [("w4", 1, 1), ("w3", 1, 1), ("w2", 2, 0), ("w1", 1, 0)]
    );
    for w in &stats.workers {
        assert!(is_time(w.last_claim_at.as_deref().unwrap()), "{w:?}");
    }
    assert!(is_time(&stats.generated_at));
    assert!(stats.flow.is_empty() && stats.schedules.is_empty());

    // The document's keys, as the server engine writes them for a queue without paused or
    // limited types and without schedules (those sections are left out when empty).
    let doc = serde_json::to_value(&stats).unwrap();
    assert_eq!(
        keys(&doc),
        set(&[
            "generated_at",
            "queue",
            "throughput",
            "totals",
            "types",
            "workers"
        ])
    );
    let statuses = set(&["pending", "claimed", "completed", "failed", "cancelled"]);
    assert_eq!(keys(&doc["totals"]), statuses);
    assert_eq!(keys(&doc["types"]["s.idle"]), statuses);
    assert_eq!(
        keys(&doc["queue"]["s.b"]),
        set(&["expired_leases", "oldest_pending_seconds"])
    );
    assert_eq!(doc["queue"]["s.b"]["oldest_pending_seconds"], Value::Null);
    assert_eq!(
        keys(&doc["throughput"]["s.a"]),
        set(&[
            "completed_per_hour",
            "completed_per_minute",
            "failed_per_hour",
            "failed_per_minute"
        ])
    );
    assert_eq!(
        keys(&doc["workers"][0]),
        set(&["claims_last_hour", "holding", "last_claim_at", "worker_id"])
    );
    // And it reads back as the same stats (the C ABI and the bindings read its text).
    assert_eq!(serde_json::from_value::<Stats>(doc).unwrap(), stats);

    let text = q.client.metrics().unwrap();
    for line in [
        r#"taskmanager_tasks{type="s.a",status="pending"} 1"#,
        r#"taskmanager_tasks{type="s.a",status="completed"} 1"#,
        r#"taskmanager_tasks{type="s.a",status="failed"} 1"#,
        r#"taskmanager_tasks{type="s.a",status="cancelled"} 1"#,
        r#"taskmanager_tasks{type="s.b",status="claimed"} 2"#,
        r#"taskmanager_tasks{type="s.idle",status="pending"} 0"#,
        r#"taskmanager_expired_leases{type="s.b"} 1"#,
        r#"taskmanager_finished_last_hour{type="s.a",status="completed"} 1"#,
        r#"taskmanager_worker_holding{worker="w3"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }

    // A claim recovers the expired lease (back to pending: attempts remain); the stats follow.
    q.client.recover_expired().unwrap();
    let stats = q.client.stats().unwrap();
    assert_eq!(stats.types["s.b"], counts(1, 1, 0, 0, 0));
    assert_eq!(stats.queue["s.b"].expired_leases, 0);
    assert!(stats.queue["s.b"].oldest_pending_seconds.is_some());
}

#[test]
fn stats_without_history_see_the_workers_holding_tasks() {
    let q = Queue::new(json!({"enable_task_history": false}));
    q.register("h");
    q.enqueue("h", json!({}));
    q.claim("w1", "h");
    let stats = q.client.stats().unwrap();
    assert_eq!(stats.workers.len(), 1);
    let w = &stats.workers[0];
    assert_eq!(
        (w.worker_id.as_str(), w.claims_last_hour, w.holding),
        ("w1", 0, 1)
    );
    assert!(is_time(w.last_claim_at.as_deref().unwrap()));
}

#[test]
fn cancel_and_retry_follow_the_server_engines_rules() {
    let q = Queue::new(json!({"enable_task_history": true}));
    q.register("op");
    let id = q.enqueue("op", json!({"n": 1}));

    let cancelled = q.client.cancel(id, None).unwrap();
    assert_eq!(
        (cancelled.id, cancelled.status, cancelled.repeated),
        (id, Status::Cancelled, false)
    );
    // Again: a no-op that succeeds, and writes nothing.
    let again = q.client.cancel(id, Some("twice")).unwrap();
    assert_eq!((again.status, again.repeated), (Status::Cancelled, true));
    assert_eq!(q.client.get_task(id).unwrap().error_message, None);
    assert_eq!(history(&q, id).len(), 2);

    let retried = q.client.retry(id).unwrap();
    assert_eq!((retried.status, retried.repeated), (Status::Pending, false));
    assert_eq!(
        error(q.client.retry(id)),
        (
            Code::Conflict,
            format!("task {id} is pending: retry needs a failed or cancelled task")
        )
    );

    // A claimed task can be cancelled: its lease is over.
    let held = q.claim("w1", "op");
    assert_eq!(held.id, id);
    q.client.cancel(id, Some("stop")).unwrap();
    let t = q.client.get_task(id).unwrap();
    assert_eq!(
        (t.status, t.lease_expires_at, t.error_message.as_deref()),
        (Status::Cancelled, None, Some("stop"))
    );
    assert!(t.completed_at.is_some());
    assert_eq!(
        error(q.client.complete(id, &held.lease_token, &json!(1))).0,
        Code::LeaseLost
    );

    // A completed task cannot be cancelled, nor retried.
    let other = q.enqueue("op", json!({"n": 2}));
    let task = q.claim("w1", "op");
    q.client
        .complete(other, &task.lease_token, &json!(null))
        .unwrap();
    assert_eq!(
        error(q.client.cancel(other, None)),
        (
            Code::Conflict,
            format!("task {other} is completed: cancel needs a pending or claimed task")
        )
    );
    assert_eq!(
        error(q.client.retry(other)),
        (
            Code::Conflict,
            format!("task {other} is completed: retry needs a failed or cancelled task")
        )
    );
    assert_eq!(q.client.get_task(other).unwrap().status, Status::Completed);

    // A dead task comes back with its attempts reset, and runs again.
    let dead = q.enqueue_with("op", json!({"n": 3}), json!({"max_attempts": 1}));
    let task = q.claim("w1", "op");
    let failed = q
        .client
        .fail(dead, &task.lease_token, "broken", &Default::default())
        .unwrap();
    assert_eq!((failed.status, failed.attempts), (Status::Failed, 1));
    q.client.retry(dead).unwrap();
    let t = q.client.get_task(dead).unwrap();
    assert_eq!(
        (
            t.status,
            t.attempts,
            t.completed_at,
            t.error_message.as_deref()
        ),
        (Status::Pending, 0, None, Some("broken"))
    );
    assert_eq!(q.claim("w2", "op").id, dead);
    assert_eq!(
        history(&q, dead).last().unwrap(),
        &row("claimed", Some("w2"), None)
    );

    // Unknown and invalid ids.
    for result in [q.client.cancel(424_242, None), q.client.retry(424_242)] {
        assert_eq!(
            error(result),
            (Code::NotFound, "task 424242 does not exist".into())
        );
    }
    assert_eq!(error(q.client.cancel(0, None)).0, Code::InvalidArgument);
    assert_eq!(error(q.client.retry(-5)).0, Code::InvalidArgument);
}

#[test]
fn retry_takes_the_dedupe_key_again_or_is_a_conflict() {
    let q = Queue::new(json!({"enable_task_history": true}));
    q.register("d");
    let key = json!({"dedupe_key": "k1", "dedupe_scope": "active"});
    let first = q.enqueue_with("d", json!({"n": 1}), key.clone());
    q.client.cancel(first, None).unwrap();
    // The cancel freed the active key: the same work may be enqueued again.
    let second = q
        .client
        .enqueue("d", &json!({"n": 2}), &from(key.clone()))
        .unwrap();
    assert!(!second.deduplicated);
    assert_ne!(second.id, first);

    // The retry would take the key another active task holds: refused, nothing changed.
    assert_eq!(
        error(q.client.retry(first)),
        (
            Code::Conflict,
            format!("task {first} cannot be retried: another active task holds its dedupe key")
        )
    );
    assert_eq!(q.client.get_task(first).unwrap().status, Status::Cancelled);
    assert_eq!(history(&q, first).len(), 2);

    q.client.cancel(second.id, None).unwrap();
    q.client.retry(first).unwrap();
    // The retried task holds its key again.
    let third = q.client.enqueue("d", &json!({"n": 3}), &from(key)).unwrap();
    assert!(third.deduplicated);
    assert_eq!(third.id, first);
}

#[test]
fn a_waiting_claim_gets_a_retried_task() {
    let q = Queue::new(json!({}));
    q.register("wait");
    let id = q.enqueue_with("wait", json!({}), json!({"max_attempts": 1}));
    let task = q.claim("w1", "wait");
    q.client
        .fail(id, &task.lease_token, "x", &Default::default())
        .unwrap();
    let client = q.client.clone();
    let (started, has_started) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        started.send(()).unwrap();
        client.claim("w2", &from(json!({"types": ["wait"], "wait_seconds": 30})))
    });
    has_started.recv().unwrap();
    q.client.retry(id).unwrap();
    let claimed = waiter.join().unwrap().unwrap();
    assert_eq!(claimed.iter().map(|t| t.id).collect::<Vec<_>>(), vec![id]);
}

#[test]
fn prune_deletes_old_finished_tasks_with_their_history() {
    let q = Queue::new(json!({"enable_task_history": true}));
    q.register("p");
    let id = |n: i64| q.enqueue("p", json!({"n": n}));
    let completed: Vec<i64> = (0..3).map(id).collect();
    let young = id(3);
    let dead = id(4);
    let cancelled = id(5);
    let claimed = id(6);
    let pending = id(7);
    for want in completed.iter().chain([&young]) {
        let task = q.claim("w", "p");
        assert_eq!(task.id, *want);
        q.client
            .complete(task.id, &task.lease_token, &json!(null))
            .unwrap();
    }
    let task = q.claim("w", "p");
    assert_eq!(task.id, dead);
    q.client
        .fail(dead, &task.lease_token, "x", &from(json!({"retry": false})))
        .unwrap();
    q.client.cancel(cancelled, None).unwrap();
    assert_eq!(q.claim("w", "p").id, claimed);
    // Every finished task but `young` finished two hours ago; so did the others' rows.
    q.sql(&format!(
        "UPDATE tasks SET completed_at = completed_at - 7200000000 WHERE id <> {young} \
         AND status IN ('completed', 'failed', 'cancelled'); \
         UPDATE tasks SET created_at = created_at - 7200000000, \
         updated_at = updated_at - 7200000000 WHERE id IN ({pending}, {claimed})"
    ));
    // The always-scoped key of a finished task still blocks the same work.
    let same = q
        .client
        .enqueue("p", &json!({"n": 0}), &Default::default())
        .unwrap();
    assert!(same.deduplicated);
    let history_rows =
        |ids: &[i64]| -> u64 { ids.iter().map(|id| history(&q, *id).len() as u64).sum() };
    let old_completed_history = history_rows(&completed);

    // A dry run counts and deletes nothing.
    let report = q
        .client
        .prune(&from(json!({"older_than_seconds": 3600, "dry_run": true})))
        .unwrap();
    assert_eq!(
        report,
        from_report(json!({"tasks": 5, "history": 0, "batches": 0, "done": true, "dry_run": true}))
    );
    assert_eq!(q.list(json!({})).len(), 8);

    // Completed ones first, one per batch, each batch reported.
    let mut seen = Vec::new();
    let report = q
        .client
        .prune_with_progress(
            &from(json!({"older_than_seconds": 3600, "statuses": ["completed"], "batch_size": 1})),
            |r| seen.push((r.tasks, r.batches)),
        )
        .unwrap();
    assert_eq!(
        report,
        from_report(
            json!({"tasks": 3, "history": old_completed_history, "batches": 3,
                           "done": true, "dry_run": false})
        )
    );
    assert_eq!(seen, [(1, 1), (2, 2), (3, 3)]);
    for gone in &completed {
        assert_eq!(error(q.client.get_task(*gone)).0, Code::NotFound);
        assert_eq!(q.client.task_history(*gone).unwrap(), vec![]);
    }
    // `young` finished too recently.
    assert_eq!(q.client.get_task(young).unwrap().status, Status::Completed);

    // A bounded call stops early and says so; the next one finishes.
    let bounded = json!({"older_than_seconds": 3600, "batch_size": 1, "max_batches": 1});
    let report = q.client.prune(&from(bounded)).unwrap();
    assert_eq!((report.tasks, report.batches, report.done), (1, 1, false));
    assert_eq!(report.history, 3);
    let report = q
        .client
        .prune(&from(json!({"older_than_seconds": 3600})))
        .unwrap();
    assert_eq!((report.tasks, report.history, report.done), (1, 2, true));
    assert_eq!(error(q.client.get_task(dead)).0, Code::NotFound);
    assert_eq!(error(q.client.get_task(cancelled)).0, Code::NotFound);

    // Nothing old is left; pending and claimed tasks never go, whatever their age.
    let report = q
        .client
        .prune(&from(json!({"older_than_seconds": 0})))
        .unwrap();
    assert_eq!((report.tasks, report.history, report.batches), (1, 3, 1));
    assert_eq!(q.list(json!({})), [pending, claimed]);
    assert_eq!(history(&q, pending).len(), 1);
    assert_eq!(history(&q, claimed).len(), 2);

    // A pruned task's key is free again.
    let again = q
        .client
        .enqueue("p", &json!({"n": 0}), &Default::default())
        .unwrap();
    assert!(!again.deduplicated);

    // The server engine's checks.
    let prune = |options: Value| error(q.client.prune(&from(options)));
    assert_eq!(
        prune(json!({"older_than_seconds": 0, "statuses": ["pending"]})),
        (
            Code::InvalidArgument,
            "only finished tasks can be pruned: statuses may hold completed, failed and \
             cancelled, got 'pending'"
                .into()
        )
    );
    assert_eq!(
        prune(json!({"older_than_seconds": 0, "batch_size": 0})),
        (
            Code::InvalidArgument,
            "batch_size must be from 1 to 5000, got 0".into()
        )
    );
    assert_eq!(
        prune(json!({"older_than_seconds": 0, "max_batches": 0})).1,
        "max_batches must be at least 1"
    );
    assert_eq!(
        prune(json!({"older_than_seconds": 0, "statuses": []})).1,
        "statuses must list at least one status"
    );
    assert_eq!(
        prune(json!({"older_than_seconds": 4_000_000_000u64})).0,
        Code::InvalidArgument
    );
}

/// A prune report from its JSON (the report itself has no constructor in the API).
fn from_report(value: Value) -> PruneReport {
    let report = PruneReport {
        tasks: value["tasks"].as_u64().unwrap(),
        history: value["history"].as_u64().unwrap(),
        batches: value["batches"].as_u64().unwrap(),
        done: value["done"].as_bool().unwrap(),
        dry_run: value["dry_run"].as_bool().unwrap(),
    };
    assert_eq!(serde_json::to_value(&report).unwrap(), value);
    report
}
