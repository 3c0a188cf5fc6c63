//! The embedded engine's reads, stats and operator steps: get_task, list_tasks, task_history,
//! stats (and metrics), cancel, retry and prune, on a SQLite file of a fresh temporary
//! directory, answering as the server engine does (its messages, codes and JSON shapes).

mod embedded_support;

use embedded_support::*;
use serde_json::{Value, json};
use taskmanager::*;

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
fn stats_count_only_the_last_hours_claims_per_worker() {
    let q = Queue::new(json!({"enable_task_history": true}));
    q.register("h");
    for n in 0..40 {
        q.enqueue("h", json!({"n": n}));
    }
    // 30 claims by one worker, then 10 by another; the first 30 are made two hours old.
    for worker in std::iter::repeat_n("old", 30).chain(std::iter::repeat_n("new", 10)) {
        let t = q.claim(worker, "h");
        q.client
            .complete(t.id, &t.lease_token, &json!(null))
            .unwrap();
    }
    let claims = |stats: &Stats| -> Vec<(String, i64)> {
        let mut seen: Vec<(String, i64)> = stats
            .workers
            .iter()
            .filter(|w| w.claims_last_hour > 0)
            .map(|w| (w.worker_id.clone(), w.claims_last_hour))
            .collect();
        seen.sort();
        seen
    };
    assert_eq!(
        claims(&q.client.stats().unwrap()),
        [("new".to_string(), 10), ("old".to_string(), 30)]
    );
    q.sql(
        "UPDATE task_history SET created_at = created_at - 7200000000 WHERE id <= \
         (SELECT MAX(id) FROM task_history WHERE worker_id = 'old')",
    );
    assert_eq!(
        claims(&q.client.stats().unwrap()),
        [("new".to_string(), 10)]
    );
    // Every row older than an hour: no claims in the last hour at all.
    q.sql("UPDATE task_history SET created_at = created_at - 7200000000 WHERE worker_id = 'new'");
    assert_eq!(claims(&q.client.stats().unwrap()), []);
}
