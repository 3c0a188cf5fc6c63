//! The task lifecycle on either engine (`TASKMANAGER_TEST_ENGINE`, see tests/common): enqueue,
//! claim, heartbeat, complete, fail, release, history, batches and the read side (which tasks a
//! claim takes: tests/claims.rs).

mod common;

use common::{Engine, TestDb, any_object, from};
use serde_json::{Value, json};
use taskmanager::*;

#[test]
fn full_round_trip_with_history() {
    let db = TestDb::new(json!({}));
    db.register(
        "email.send",
        json!({"type": "object", "required": ["to"], "properties": {"to": {"type": "string"}}}),
    );
    let e = db
        .client
        .enqueue(
            "email.send",
            &json!({"to": "a@example.com"}),
            &EnqueueOptions::default(),
        )
        .unwrap();
    assert_eq!((e.status.as_str(), e.deduplicated), ("pending", false));

    let claimed = db
        .client
        .claim("worker-1", &ClaimOptions::default())
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let t = &claimed[0];
    assert_eq!(
        (t.id, t.type_name.as_str(), t.attempts, t.max_attempts),
        (e.id, "email.send", 1, 3)
    );
    assert_eq!(t.params, json!({"to": "a@example.com"}));

    let hb = db
        .client
        .heartbeat(t.id, &t.lease_token, &from(json!({"progress": 40})))
        .unwrap();
    assert_eq!(hb.progress, 40);
    assert!(hb.lease_expires_at >= t.lease_expires_at);

    let done = db
        .client
        .complete(t.id, &t.lease_token, &json!({"sent": true, "note": "ok"}))
        .unwrap();
    assert_eq!((done.status.as_str(), done.repeated), ("completed", false));

    let got = db.client.get_task(t.id).unwrap();
    assert_eq!(got.status, "completed");
    assert_eq!(got.result, json!({"sent": true, "note": "ok"}));
    assert_eq!(got.claimed_by.as_deref(), Some("worker-1"));
    assert!(got.completed_at.is_some());
    assert_eq!(
        common::history_kinds(&db.client, t.id),
        ["created", "claimed", "progress", "completed"]
    );
    let history = db.client.task_history(t.id).unwrap();
    assert_eq!(history[1].worker_id.as_deref(), Some("worker-1"));
}

#[test]
fn history_off_writes_no_rows() {
    let db = TestDb::new(json!({"enable_task_history": false}));
    db.register("quiet", any_object());
    let e = db
        .client
        .enqueue("quiet", &json!({"n": 1}), &EnqueueOptions::default())
        .unwrap();
    let t = db.claim_one("w");
    db.client
        .heartbeat(t.id, &t.lease_token, &from(json!({"progress": 5})))
        .unwrap();
    db.client
        .fail(
            t.id,
            &t.lease_token,
            "boom",
            &from(json!({"retry_in_seconds": 0})),
        )
        .unwrap();
    let t = db.claim_one("w");
    db.client
        .complete(t.id, &t.lease_token, &json!(null))
        .unwrap();
    assert_eq!(db.client.get_task(e.id).unwrap().status, "completed");
    assert_eq!(db.count("SELECT COUNT(*) FROM task_history"), 0);
}

#[test]
fn retryable_failure_backs_off_then_dies_at_max_attempts() {
    let db = TestDb::new(json!({"retry_backoff_base": 30}));
    db.register("flaky", any_object());
    let id = db.enqueue_with("flaky", json!({}), json!({"max_attempts": 2}));
    let t = db.claim_one("w");
    let f = db
        .client
        .fail(
            t.id,
            &t.lease_token,
            "timeout talking to smtp",
            &FailOptions::default(),
        )
        .unwrap();
    assert_eq!((f.status.as_str(), f.attempts), ("pending", 1));
    // Backoff with jitter: between half and all of base * 2^0 = 30 s ahead of the database clock.
    let ahead = db.seconds_until("run_at", id);
    assert!((14.0..=30.5).contains(&ahead), "run_at is {ahead} s ahead");
    assert!(
        db.client
            .claim("w", &ClaimOptions::default())
            .unwrap()
            .is_empty(),
        "backoff must hold the task back"
    );
    db.set_time("run_at", 0.0, &format!("id = {id}"));
    let t = db.claim_one("w");
    assert_eq!(t.attempts, 2);
    let f = db
        .client
        .fail(t.id, &t.lease_token, "still down", &FailOptions::default())
        .unwrap();
    assert_eq!((f.status.as_str(), f.attempts), ("failed", 2));
    let task = db.client.get_task(id).unwrap();
    assert_eq!(task.error_message.as_deref(), Some("still down"));
    assert_eq!(
        common::history_kinds(&db.client, id),
        ["created", "claimed", "retrying", "claimed", "failed"]
    );
    // Failed is dead: nothing to claim, and a repeat of the same fail is a harmless no-op.
    assert!(
        db.client
            .claim("w", &ClaimOptions::default())
            .unwrap()
            .is_empty()
    );
    assert!(
        db.client
            .fail(t.id, &t.lease_token, "still down", &FailOptions::default())
            .unwrap()
            .repeated
    );
}

#[test]
fn non_retryable_failure_is_dead_at_once() {
    let db = TestDb::new(json!({}));
    db.register("strict", any_object());
    db.client
        .enqueue("strict", &json!({}), &EnqueueOptions::default())
        .unwrap();
    let t = db.claim_one("w");
    let f = db
        .client
        .fail(
            t.id,
            &t.lease_token,
            "bad input",
            &from(json!({"retry": false})),
        )
        .unwrap();
    assert_eq!(
        (f.status.as_str(), f.attempts, f.max_attempts),
        ("failed", 1, 3)
    );
}

#[test]
fn complete_is_idempotent_for_the_same_token_only() {
    let db = TestDb::new(json!({}));
    db.register("once", any_object());
    db.client
        .enqueue("once", &json!({}), &EnqueueOptions::default())
        .unwrap();
    let t = db.claim_one("w");
    db.client
        .complete(t.id, &t.lease_token, &json!({"v": 1}))
        .unwrap();
    let again = db
        .client
        .complete(t.id, &t.lease_token, &json!({"v": 2}))
        .unwrap();
    assert!(again.repeated);
    assert_eq!(
        db.client.get_task(t.id).unwrap().result,
        json!({"v": 1}),
        "a repeat changes nothing"
    );
    let e = db
        .client
        .fail(t.id, &t.lease_token, "late", &FailOptions::default())
        .unwrap_err();
    assert_eq!(e.code(), Code::LeaseLost);
    let e = db
        .client
        .complete(t.id, "not-the-token", &json!(1))
        .unwrap_err();
    assert_eq!(e.code(), Code::LeaseLost);
    assert_eq!(
        db.client
            .complete(999_999, "x", &json!(1))
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        db.client.get_task(0).unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(
        db.client.get_task(424_242).unwrap_err().code(),
        Code::NotFound
    );
}

#[test]
fn release_gives_the_task_back_without_counting_the_attempt() {
    let db = TestDb::new(json!({}));
    db.register("rel", any_object());
    let id = db.enqueue("rel", json!({}));
    let t = db.claim_one("w1");
    db.client.release(t.id, &t.lease_token).unwrap();
    assert_eq!(
        db.client
            .complete(t.id, &t.lease_token, &json!(1))
            .unwrap_err()
            .code(),
        Code::LeaseLost
    );
    let again = db.claim_one("w2");
    assert_eq!((again.id, again.attempts), (id, 1));
    assert_eq!(
        common::history_kinds(&db.client, id),
        ["created", "claimed", "released", "claimed"]
    );
}

#[test]
fn batch_enqueue_and_batch_complete() {
    let db = TestDb::new(json!({}));
    db.register(
        "b",
        json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
    );
    let items: Vec<BatchItem> = from(json!([
        {"type": "b", "params": {"n": 1}},
        {"type": "b", "params": {"n": 2}, "options": {"priority": 5}},
        {"type": "b", "params": {"n": 1}},
    ]));
    let out = db.client.enqueue_batch(&items).unwrap();
    assert_eq!(
        out.iter().map(|e| e.deduplicated).collect::<Vec<_>>(),
        [false, false, true]
    );
    assert_eq!(out[0].id, out[2].id);
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 2);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM task_history WHERE status_change = 'created'"),
        2
    );
    // The same batch again creates nothing: every task is the existing one.
    let again = db.client.enqueue_batch(&items).unwrap();
    assert!(again.iter().all(|e| e.deduplicated));
    assert_eq!(
        again.iter().map(|e| e.id).collect::<Vec<_>>(),
        out.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    // A batch for a type deactivated meanwhile (by plain SQL: the cache still holds it active,
    // so the INSERT's gate refuses it) is refused as such, not taken for duplicates.
    db.sql_exec("UPDATE task_types SET is_active = 0 WHERE name = 'b'");
    let refused = db
        .client
        .enqueue_batch(&from::<Vec<BatchItem>>(json!([
            {"type": "b", "params": {"n": 7}},
            {"type": "b", "params": {"n": 8}},
        ])))
        .unwrap_err();
    assert_eq!(refused.code(), Code::TypeInactive, "{refused}");
    db.client.set_type_active("b", true).unwrap();
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 2);

    let bad: Vec<BatchItem> = from(json!([
        {"type": "b", "params": {"n": 3}},
        {"type": "b", "params": {"n": "three"}},
    ]));
    let e = db.client.enqueue_batch(&bad).unwrap_err();
    assert_eq!(e.code(), Code::ValidationFailed);
    assert_eq!(e.details().unwrap()["violations"][0]["index"], 1);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM tasks"),
        2,
        "an invalid batch writes nothing"
    );

    let claimed = db.client.claim("w", &from(json!({"limit": 5}))).unwrap();
    assert_eq!(claimed.len(), 2);
    let items: Vec<CompleteItem> = from(json!([
        {"id": claimed[0].id, "lease_token": claimed[0].lease_token, "result": {"ok": 1}},
        {"id": claimed[1].id, "lease_token": "stale", "result": null},
        {"id": 987654, "lease_token": "x"},
    ]));
    let outcomes = db.client.complete_batch(&items).unwrap();
    assert!(outcomes[0].ok);
    assert_eq!(outcomes[1].code.as_deref(), Some("TM_LEASE_LOST"));
    assert_eq!(outcomes[2].code.as_deref(), Some("TM_NOT_FOUND"));
    assert_eq!(
        db.client.get_task(claimed[0].id).unwrap().result,
        json!({"ok": 1})
    );
    assert_eq!(db.client.get_task(claimed[1].id).unwrap().status, "claimed");
}

#[test]
fn read_side_lists_and_counts() {
    let db = TestDb::new(json!({}));
    db.register("r1", any_object());
    db.register("r2", any_object());
    for n in 0..5 {
        db.client
            .enqueue("r1", &json!({"n": n}), &EnqueueOptions::default())
            .unwrap();
    }
    db.client
        .enqueue("r2", &json!({}), &EnqueueOptions::default())
        .unwrap();
    let t = db
        .client
        .claim("w", &from(json!({"types": ["r1"]})))
        .unwrap()
        .remove(0);
    db.client
        .complete(t.id, &t.lease_token, &json!(null))
        .unwrap();
    let stats = db.client.stats().unwrap();
    assert_eq!(stats.types["r1"].pending, 4);
    assert_eq!(stats.types["r1"].completed, 1);
    assert_eq!(stats.types["r2"].pending, 1);
    assert_eq!(stats.totals.pending, 5);
    assert_eq!(stats.totals.failed, 0);
    let page: ListFilter = from(json!({"type": "r1", "status": "pending", "limit": 3}));
    let first = db.client.list_tasks(&page).unwrap();
    assert_eq!(first.len(), 3);
    let next: ListFilter =
        from(json!({"type": "r1", "status": "pending", "limit": 3, "before_id": first[2].id}));
    assert_eq!(db.client.list_tasks(&next).unwrap().len(), 1);
    let bad: ListFilter = from(json!({"status": "running"}));
    assert_eq!(
        db.client.list_tasks(&bad).unwrap_err().code(),
        Code::InvalidArgument
    );
}

#[test]
fn cancel_and_manual_retry() {
    let db = TestDb::new(json!({}));
    db.register("c", any_object());
    let id = db.enqueue("c", json!({}));
    assert_eq!(
        db.client.cancel(id, Some("not needed")).unwrap().status,
        "cancelled"
    );
    assert!(db.client.cancel(id, None).unwrap().repeated);
    assert!(
        db.client
            .claim("w", &ClaimOptions::default())
            .unwrap()
            .is_empty()
    );
    assert_eq!(db.client.retry(id).unwrap().status, "pending");
    let t = db.claim_one("w");
    db.client.complete(t.id, &t.lease_token, &json!(1)).unwrap();
    assert_eq!(
        db.client.cancel(id, None).unwrap_err().code(),
        Code::Conflict
    );
    assert_eq!(db.client.retry(id).unwrap_err().code(), Code::Conflict);
    assert_eq!(
        common::history_kinds(&db.client, id),
        ["created", "cancelled", "retried", "claimed", "completed"]
    );
}

#[test]
fn complete_and_claim_finishes_one_task_and_leases_the_next_in_one_step() {
    let db = TestDb::new(json!({}));
    db.register("loop", any_object());
    let first = db.enqueue_with("loop", json!({"n": 1}), json!({"priority": 5}));
    let second = db.enqueue("loop", json!({"n": 2}));
    let third = db.enqueue("loop", json!({"n": 3}));
    let held = db.claim_one("w");
    assert_eq!(held.id, first);
    let any = ClaimOptions::default();

    let step = db
        .client
        .complete_and_claim(held.id, &held.lease_token, &json!("ok"), "w", &any)
        .unwrap();
    assert!(!step.completed.repeated);
    let task = db.client.get_task(first).unwrap();
    assert_eq!(
        (task.status.as_str(), &task.result),
        ("completed", &json!("ok"))
    );
    assert_eq!(step.claimed.len(), 1);
    let next = &step.claimed[0];
    assert_eq!((next.id, next.attempts), (second, 1));
    assert_eq!(db.client.get_task(second).unwrap().status, "claimed");
    assert_eq!(
        common::history_kinds(&db.client, first),
        ["created", "claimed", "completed"]
    );
    assert_eq!(
        common::history_kinds(&db.client, second),
        ["created", "claimed"]
    );

    // A stale token changes nothing and claims nothing.
    let e = db
        .client
        .complete_and_claim(next.id, "stale.token", &json!(1), "w", &any)
        .unwrap_err();
    assert_eq!(e.code(), Code::LeaseLost);
    assert_eq!(db.client.get_task(third).unwrap().status, "pending");

    // The same call again: a safe repeat, which hands out the next task as well.
    let again = db
        .client
        .complete_and_claim(held.id, &held.lease_token, &json!("ok"), "w", &any)
        .unwrap();
    assert!(again.completed.repeated);
    assert_eq!(
        again.claimed.iter().map(|t| t.id).collect::<Vec<_>>(),
        [third]
    );
    assert_eq!(
        common::history_kinds(&db.client, first),
        ["created", "claimed", "completed"],
        "a repeat writes no second history row"
    );
    let last = &again.claimed[0];

    // A filter that matches no type completes and claims nothing.
    let none: ClaimOptions = from(json!({"types": ["no-such-type"]}));
    let step = db
        .client
        .complete_and_claim(next.id, &next.lease_token, &json!(2), "w", &none)
        .unwrap();
    assert!(step.claimed.is_empty());
    assert_eq!(db.client.get_task(second).unwrap().status, "completed");

    // The last task: completed, and an empty queue leaves nothing to claim.
    let step = db
        .client
        .complete_and_claim(last.id, &last.lease_token, &json!(3), "w", &any)
        .unwrap();
    assert!(step.claimed.is_empty());
    assert_eq!(
        db.count("SELECT COUNT(*) FROM tasks WHERE status = 'completed'"),
        3
    );
}

#[test]
fn a_value_changed_by_hand_into_something_unreadable_is_an_error_naming_the_column() {
    let db = TestDb::new(json!({}));
    db.register("odd", any_object());
    let id = db.enqueue("odd", json!({}));
    if db.engine == Engine::Mysql {
        // The server's column is an integer: let it take text first (a SQLite column takes
        // any value as it is).
        db.sql_exec("ALTER TABLE tasks MODIFY attempts VARCHAR(20) NOT NULL DEFAULT '0'");
    }
    // Not pending: pending_attempts (an INT computed from attempts) stays NULL.
    db.sql_exec(&format!(
        "UPDATE tasks SET status = 'failed', attempts = 'many' WHERE id = {id}"
    ));
    let e = db.client.get_task(id).unwrap_err();
    assert_eq!(e.code(), Code::Database);
    assert!(e.message().contains("column `attempts`"), "{e}");
}

#[test]
fn a_heartbeat_note_is_kept_in_the_history_with_or_without_progress() {
    let db = TestDb::new(json!({}));
    db.register("noted", any_object());
    let id = db.enqueue("noted", json!({}));
    let t = db.claim_one("w");
    let beat = |options: Value| {
        db.client
            .heartbeat(id, &t.lease_token, &from(options))
            .unwrap()
    };
    beat(json!({"progress": 40, "message": "half way"}));
    beat(json!({"message": "still going"}));
    beat(json!({"progress": 50}));
    let notes: Vec<Option<String>> = db
        .client
        .task_history(id)
        .unwrap()
        .into_iter()
        .filter(|h| h.status_change == "progress")
        .map(|h| h.message)
        .collect();
    assert_eq!(
        notes,
        [
            Some("progress 40%: half way".to_string()),
            Some("still going".to_string()),
            Some("progress 50%".to_string())
        ]
    );
    // Too long a note changes nothing.
    let e = db
        .client
        .heartbeat(
            id,
            &t.lease_token,
            &from(json!({"message": "x".repeat(70_000)})),
        )
        .unwrap_err();
    assert_eq!(e.code(), Code::PayloadTooLarge);
}
