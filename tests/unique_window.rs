//! Unique windows (`unique_for_seconds`): a duplicate within the window returns the first task,
//! after it a new task is created; race-free under many concurrent identical enqueues; bad
//! windows are refused naming the field. The window is passed by moving `created_at` back with
//! plain SQL, never by waiting.

mod common;

use common::{TestDb, any_object, from, history_kinds};
use serde_json::{Value, json};
use std::sync::{Arc, Barrier};
use taskmanager::*;

fn windowed(seconds: Value) -> EnqueueOptions {
    from(json!({"unique_for_seconds": seconds}))
}

/// 50 threads, each with a client of its own, enqueue the same task at once.
fn race(db: &TestDb, params: &Value, options: &EnqueueOptions) -> Vec<Enqueued> {
    let barrier = Arc::new(Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let client = db.client_with(json!({"pool_max_connections": 1}));
            let (barrier, params, options) = (barrier.clone(), params.clone(), options.clone());
            std::thread::spawn(move || {
                barrier.wait();
                client.enqueue("report", &params, &options).unwrap()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Exactly one of `answers` created a task; all the others were deduplicated to it.
fn one_created(answers: &[Enqueued]) -> i64 {
    let created: Vec<&Enqueued> = answers.iter().filter(|a| !a.deduplicated).collect();
    assert_eq!(created.len(), 1, "exactly one created: {answers:?}");
    let id = created[0].id;
    assert!(answers.iter().all(|a| a.id == id), "{answers:?}");
    id
}

#[test]
fn fifty_concurrent_identical_enqueues_make_one_task_per_window() {
    let db = TestDb::new(json!({}));
    db.register("report", any_object());
    let params = json!({"day": "2026-12-04"});
    let options = windowed(json!(3600));

    let first = one_created(&race(&db, &params, &options));
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 1);
    assert_eq!(history_kinds(&db.client, first), ["created"]);

    // The window is over: the first task was made an hour and a second ago.
    db.shift_time("created_at", -3601.0, &format!("id = {first}"));
    let second = one_created(&race(&db, &params, &options));
    assert_ne!(second, first);
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 2);
    assert_eq!(history_kinds(&db.client, second), ["created"]);
    // The first task is untouched but for its key, which no longer blocks.
    let first_task = db.client.get_task(first).unwrap();
    assert_eq!(first_task.status.as_str(), "pending");
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM tasks WHERE id = {first} AND dedupe_lock IS NULL"
        )),
        1
    );
    // Within the second task's window, it is the one returned.
    let again = db.client.enqueue("report", &params, &options).unwrap();
    assert_eq!((again.id, again.deduplicated), (second, true));
}

#[test]
fn the_window_is_the_callers_and_composes_with_the_scopes() {
    let db = TestDb::new(json!({}));
    db.register("report", any_object());
    let params = json!({"n": 1});
    let first = db
        .client
        .enqueue("report", &params, &windowed(json!(60)))
        .unwrap();
    assert!(!first.deduplicated);
    db.shift_time("created_at", -30.0, &format!("id = {}", first.id));
    // 30 seconds old: inside a 60-second window, outside a 10-second one.
    let inside = db
        .client
        .enqueue("report", &params, &windowed(json!(60)))
        .unwrap();
    assert_eq!((inside.id, inside.deduplicated), (first.id, true));
    let outside = db
        .client
        .enqueue("report", &params, &windowed(json!(10)))
        .unwrap();
    assert!(!outside.deduplicated);
    assert_ne!(outside.id, first.id);
    // An enqueue with no window keeps the key forever (scope `always`): it finds the holder.
    db.shift_time("created_at", -86400.0, "TRUE");
    let plain = db
        .client
        .enqueue("report", &params, &EnqueueOptions::default())
        .unwrap();
    assert_eq!((plain.id, plain.deduplicated), (outside.id, true));

    // Scope `active` with a window: a finished task stops blocking at once (the tasks above
    // are pending too: they go first).
    db.sql_exec("DELETE FROM tasks");
    let active: EnqueueOptions =
        from(json!({"unique_for_seconds": 3600, "dedupe_scope": "active"}));
    let a = db
        .client
        .enqueue("report", &json!({"n": 2}), &active)
        .unwrap();
    let claimed = db.claim_one("w");
    db.client
        .complete(claimed.id, &claimed.lease_token, &json!({}))
        .unwrap();
    assert_eq!(claimed.id, a.id);
    let b = db
        .client
        .enqueue("report", &json!({"n": 2}), &active)
        .unwrap();
    assert!(!b.deduplicated);
    assert_ne!(b.id, a.id);
}

#[test]
fn history_off_and_a_completed_holder() {
    let db = TestDb::new(json!({}));
    db.register("report", any_object());
    let quiet = db.client_with(json!({"enable_task_history": false}));
    let params = json!({"n": 3});
    let first = quiet
        .enqueue("report", &params, &windowed(json!(5)))
        .unwrap();
    let claimed = db.claim_one("w");
    db.client
        .complete(claimed.id, &claimed.lease_token, &json!({}))
        .unwrap();
    // A completed holder within the window is still the answer (scope `always`).
    let dup = quiet
        .enqueue("report", &params, &windowed(json!(5)))
        .unwrap();
    assert_eq!((dup.id, dup.deduplicated), (first.id, true));
    assert_eq!(dup.status.as_str(), "completed");
    db.shift_time("created_at", -5.0, "TRUE");
    let next = quiet
        .enqueue("report", &params, &windowed(json!(5)))
        .unwrap();
    assert!(!next.deduplicated);
    assert_eq!(next.status.as_str(), "pending");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM task_history WHERE status_change = 'created'"),
        0
    );
}

#[test]
fn bad_windows_are_refused_naming_the_field() {
    let db = TestDb::new(json!({}));
    db.register("report", any_object());
    for bad in [
        json!(0),
        json!(-1),
        json!(31_536_001),
        json!(1.5),
        json!("60"),
        json!(1e12),
    ] {
        let parsed: std::result::Result<EnqueueOptions, _> =
            serde_json::from_value(json!({"unique_for_seconds": bad}));
        let message = parsed.expect_err(&bad.to_string()).to_string();
        assert!(message.contains("unique_for_seconds"), "{message}");
    }
    // Through the Rust API, a value out of range is TM_INVALID_ARGUMENT too.
    for bad in [0, 31_536_001] {
        let options = EnqueueOptions {
            unique_for_seconds: Some(bad),
            ..Default::default()
        };
        let e = db
            .client
            .enqueue("report", &json!({}), &options)
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(
            e.message().contains("unique_for_seconds"),
            "{}",
            e.message()
        );
    }
    let year = EnqueueOptions {
        unique_for_seconds: Some(31_536_000),
        ..Default::default()
    };
    assert!(
        !db.client
            .enqueue("report", &json!({}), &year)
            .unwrap()
            .deduplicated
    );
    // A batch refuses windows.
    let items: Vec<BatchItem> = from(json!([
        {"type": "report", "params": {"a": 1}, "options": {"unique_for_seconds": 60}},
        {"type": "report", "params": {"a": 2}}
    ]));
    let e = db.client.enqueue_batch(&items).unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("unique_for_seconds"),
        "{}",
        e.message()
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 1);
}
