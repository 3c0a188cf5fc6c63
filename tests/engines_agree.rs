//! The two engines answer alike: the same calls on a fresh server database and on a fresh
//! SQLite file give the same answers (JSON, error codes and messages), once what differs by
//! nature (times, lease tokens, ages) is masked. Covers the reads, the stats, cancel, retry
//! and prune.

mod common;

use common::TestDb;
use serde::Serialize;
use serde_json::{Value, json};
use taskmanager::*;

/// A SQLite queue file in a fresh directory, removed at the end.
struct File {
    dir: std::path::PathBuf,
    client: Client,
}

impl File {
    fn new(label: &str) -> File {
        let dir =
            std::env::temp_dir().join(format!("tm_engines_agree_{label}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = json!({"db_path": dir.join("queue.db"), "enable_task_history": true});
        let client = Client::open_json(Some(&config.to_string())).unwrap();
        client.migrate().unwrap();
        File { dir, client }
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

/// What differs by nature masked: times, lease tokens, ages.
fn masked(value: Value) -> Value {
    match value {
        Value::String(s)
            if chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.6fZ").is_ok() =>
        {
            json!("<time>")
        }
        Value::Array(items) => Value::Array(items.into_iter().map(masked).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "lease_token" => json!("<token>"),
                        "oldest_pending_seconds" if v.is_number() => json!("<age>"),
                        _ => masked(v),
                    };
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

/// Records every answer of a scenario, masked.
struct Log<'a> {
    client: &'a Client,
    answers: Vec<(String, Value)>,
}

impl Log<'_> {
    fn note<T: Serialize>(&mut self, step: &str, result: Result<T>) -> Option<T> {
        let (answer, value) = match result {
            Ok(v) => (serde_json::to_value(&v).unwrap(), Some(v)),
            Err(e) => (
                json!({"code": e.code().name(), "message": e.message()}),
                None,
            ),
        };
        self.answers.push((step.to_string(), masked(answer)));
        value
    }
}

/// One scenario, the same calls on any engine.
fn scenario(client: &Client) -> Vec<(String, Value)> {
    let log = &mut Log {
        client,
        answers: Vec::new(),
    };
    let c = log.client;
    for name in ["e.mail", "e.idle"] {
        c.register_type(&from(
            json!({"name": name, "param_schema": {"type": "object"}}),
        ))
        .unwrap();
    }
    let mut ids = Vec::new();
    for (n, options) in [
        json!({"priority": 5}),
        json!({"priority": 4}),
        json!({}),
        json!({"max_attempts": 1}),
        json!({"dedupe_key": "k", "dedupe_scope": "active"}),
        json!({}),
    ]
    .into_iter()
    .enumerate()
    {
        let params = json!({"n": n, "note": format!("Needle_{n}")});
        let enqueued = log.note("enqueue", c.enqueue("e.mail", &params, &from(options)));
        ids.push(enqueued.unwrap().id);
    }
    let claim = |worker: &str| -> ClaimedTask {
        c.claim(worker, &from(json!({"types": ["e.mail"], "limit": 1})))
            .unwrap()
            .remove(0)
    };
    let t = claim("w1");
    log.note(
        "complete",
        c.complete(t.id, &t.lease_token, &json!({"ok": true})),
    );
    let t = claim("w2");
    log.note(
        "fail, retry",
        c.fail(
            t.id,
            &t.lease_token,
            "disk FULL",
            &from(json!({"retry_in_seconds": 600})),
        ),
    );
    log.note("cancel", c.cancel(ids[2], Some("not needed")));
    log.note("cancel again", c.cancel(ids[2], None));
    log.note("retry", c.retry(ids[2]));
    log.note("retry pending", c.retry(ids[2]));
    let t = claim("w3");
    log.note("claimed for dead", Ok(t.id));
    log.note(
        "fail, dead",
        c.fail(
            t.id,
            &t.lease_token,
            "broken",
            &from(json!({"retry": false})),
        ),
    );
    log.note("cancel completed", c.cancel(ids[0], None));
    log.note("retry completed", c.retry(ids[0]));
    log.note("cancel unknown", c.cancel(999_999, None));
    log.note("retry unknown", c.retry(999_999));
    log.note("cancel id 0", c.cancel(0, None));
    log.note("cancel active key", c.cancel(ids[4], None));
    log.note(
        "same key again",
        c.enqueue(
            "e.mail",
            &json!({"n": 40}),
            &from(json!({"dedupe_key": "k", "dedupe_scope": "active"})),
        ),
    );
    log.note("retry, key taken", c.retry(ids[4]));
    let held = claim("w4");
    log.note("held", Ok(held.id));

    for id in ids.iter().copied().chain([999_999]) {
        log.note("get", c.get_task(id));
        log.note("history", c.task_history(id));
    }
    log.note("get 0", c.get_task(0));
    for filter in [
        json!({}),
        json!({"type": "E.MAIL"}),
        json!({"type": "e.idle"}),
        json!({"status": "pending"}),
        json!({"status": "cancelled", "type": "e.mail"}),
        json!({"limit": 2}),
        json!({"limit": 2, "before_id": ids[3]}),
        json!({"limit": 2, "offset": 3}),
        json!({"worker_id": "w2"}),
        json!({"text": "needle_1"}),
        json!({"params_text": "NEEDLE"}),
        json!({"error_text": "disk full"}),
        json!({"older_than_seconds": 3600}),
        json!({"newer_than_seconds": 3600}),
        json!({"limit": 0}),
        json!({"offset": 2_000_000}),
        json!({"status": "done"}),
        json!({"before_id": -1}),
        json!({"text": ""}),
        json!({"type": ""}),
        json!({"worker_id": ""}),
    ] {
        log.note(
            &format!("list {filter}"),
            c.list_tasks(&from(filter.clone())),
        );
    }

    let mut stats = c.stats().unwrap();
    // The last claim of a worker is a time, masked; the order of workers follows those times.
    stats.workers.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
    log.note("stats", Ok(stats));

    for options in [
        json!({"older_than_seconds": 0, "dry_run": true}),
        json!({"older_than_seconds": 3600}),
        json!({"older_than_seconds": 0, "statuses": ["pending"]}),
        json!({"older_than_seconds": 0, "batch_size": 0}),
        json!({"older_than_seconds": 0, "statuses": ["completed", "failed"], "batch_size": 1,
               "max_batches": 1}),
        json!({"older_than_seconds": 0, "batch_size": 1}),
    ] {
        let mut seen = Vec::new();
        let report = c.prune_with_progress(&from(options.clone()), |r| seen.push(r.clone()));
        log.note(&format!("prune {options}"), report);
        log.note("its progress", Ok(seen));
    }
    for id in ids.iter().copied() {
        log.note("after prune", c.get_task(id));
        log.note("history after prune", c.task_history(id));
    }
    log.answers.clone()
}

#[test]
fn the_embedded_engine_answers_as_the_server_engine() {
    let server = TestDb::new(json!({"enable_task_history": true}));
    let file = File::new("reads");
    let on_server = scenario(&server.client);
    let on_file = scenario(&file.client);
    assert_eq!(on_server.len(), on_file.len());
    for ((step, server), (_, file)) in on_server.iter().zip(&on_file) {
        assert_eq!(
            file, server,
            "{step}: the embedded engine (left) answers otherwise than the server (right)"
        );
    }
}

/// The ids one claim of every pending task takes, in its answer's order, for each claim order
/// (the tasks are released again after each). `arrange` sets a task's created_at (a day of
/// January 2024) and attempts by hand.
fn claim_orders(client: &Client, arrange: &dyn Fn(i64, u32, i64)) -> Vec<(String, Vec<i64>)> {
    client
        .register_type(&from(
            json!({"name": "ordered", "param_schema": {"type": "object"}}),
        ))
        .unwrap();
    // (priority, created on day, attempts): created_at runs against insertion, as after a
    // clock that stepped back or a row changed by hand.
    let mut ids = Vec::new();
    for (n, (priority, day, attempts)) in [(1, 3, 2), (5, 1, 0), (5, 2, 1), (0, 4, 3)]
        .into_iter()
        .enumerate()
    {
        let options = json!({"priority": priority, "max_attempts": 10});
        let id = client
            .enqueue("ordered", &json!({"n": n}), &from(options))
            .unwrap()
            .id;
        arrange(id, day, attempts);
        ids.push(id);
    }
    let mut picks = Vec::new();
    for sort_by in ["created_at", "id", "priority", "attempts"] {
        for sort_order in ["asc", "desc"] {
            let options = json!({"sort_by": sort_by, "sort_order": sort_order, "limit": 10});
            let claimed = client.claim("w", &from(options)).unwrap();
            // As positions in insertion order, to compare across engines and with the expected.
            let order = claimed
                .iter()
                .map(|t| ids.iter().position(|id| *id == t.id).unwrap() as i64)
                .collect();
            picks.push((format!("{sort_by} {sort_order}"), order));
            for task in claimed {
                client.release(task.id, &task.lease_token).unwrap();
            }
        }
    }
    picks
}

/// `sort_by: created_at` is id order on both engines (the server serves it from the id index):
/// where created_at runs against insertion, both still hand out the same tasks in the same order.
#[test]
fn claim_orders_agree_where_created_at_runs_against_insertion() {
    let server = TestDb::new(json!({}));
    let file = File::new("orders");
    let on_server = claim_orders(&server.client, &|id, day, attempts| {
        server.sql_exec(&format!(
            "UPDATE tasks SET created_at = '2024-01-0{day} 00:00:00', attempts = {attempts} \
             WHERE id = {id}"
        ))
    });
    let queue = rusqlite::Connection::open(file.dir.join("queue.db")).unwrap();
    queue
        .busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let on_file = claim_orders(&file.client, &|id, day, attempts| {
        let created = (1_704_067_200 + 86_400 * (i64::from(day) - 1)) * 1_000_000;
        queue
            .execute(
                "UPDATE tasks SET created_at = ?1, attempts = ?2 WHERE id = ?3",
                (created, attempts, id),
            )
            .unwrap();
    });
    let expected: Vec<(String, Vec<i64>)> = [
        ("created_at asc", vec![0, 1, 2, 3]),
        ("created_at desc", vec![3, 2, 1, 0]),
        ("id asc", vec![0, 1, 2, 3]),
        ("id desc", vec![3, 2, 1, 0]),
        ("priority asc", vec![3, 0, 1, 2]),
        ("priority desc", vec![2, 1, 0, 3]),
        ("attempts asc", vec![1, 2, 0, 3]),
        ("attempts desc", vec![3, 0, 2, 1]),
    ]
    .into_iter()
    .map(|(name, order)| (name.to_string(), order))
    .collect();
    assert_eq!(on_server, expected, "the server engine");
    assert_eq!(on_file, expected, "the embedded engine");
}
