//! Dedupe keys through the database: key order, races between identical enqueues, the
//! `active` scope, and a retry that meets its key taken again.

mod common;

use common::{TestDb, any_object, from};
use serde_json::json;
use std::sync::{Arc, Barrier};
use taskmanager::*;

#[test]
fn key_order_does_not_change_the_dedupe_key() {
    let db = TestDb::new(json!({}));
    db.register("d", any_object());
    let a = db
        .client
        .enqueue(
            "d",
            &json!({"a": 1, "b": {"y": 2, "x": 1}}),
            &EnqueueOptions::default(),
        )
        .unwrap();
    let b = db
        .client
        .enqueue(
            "d",
            &serde_json::from_str(r#"{ "b" : {"x":1,"y":2}, "a":1 }"#).unwrap(),
            &EnqueueOptions::default(),
        )
        .unwrap();
    assert_eq!((a.id, a.deduplicated, b.deduplicated), (b.id, false, true));
    assert_eq!(a.dedupe_key, b.dedupe_key);
    assert_eq!(
        a.dedupe_key,
        taskmanager::compute_key("d", &json!({"a": 1, "b": {"x": 1, "y": 2}}))
    );
    let c = db
        .client
        .enqueue("d", &json!({"a": 2}), &EnqueueOptions::default())
        .unwrap();
    assert!(!c.deduplicated);
    let own = db
        .client
        .enqueue(
            "d",
            &json!({"a": 3}),
            &from::<EnqueueOptions>(json!({"dedupe_key": "invoice-42"})),
        )
        .unwrap();
    let own2 = db
        .client
        .enqueue(
            "d",
            &json!({"a": 4}),
            &from::<EnqueueOptions>(json!({"dedupe_key": "invoice-42"})),
        )
        .unwrap();
    assert_eq!(
        (own.dedupe_key.as_str(), own2.id, own2.deduplicated),
        ("invoice-42", own.id, true)
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 3);
}

#[test]
fn concurrent_identical_enqueues_make_one_row() {
    let db = TestDb::new(json!({"pool_max_connections": 8}));
    db.register("once", any_object());
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (client, barrier) = (db.client.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                (0..20)
                    .map(|n| {
                        client
                            .enqueue("once", &json!({"n": n}), &EnqueueOptions::default())
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Enqueued> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 20);
    assert_eq!(
        results.iter().filter(|e| !e.deduplicated).count(),
        20,
        "exactly one creator per key"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM task_history WHERE status_change = 'created'"),
        20
    );
    for n in 0..20 {
        let key = taskmanager::compute_key("once", &json!({"n": n}));
        let ids: std::collections::HashSet<i64> = results
            .iter()
            .filter(|e| e.dedupe_key == key)
            .map(|e| e.id)
            .collect();
        assert_eq!(ids.len(), 1);
    }
}

#[test]
fn scope_active_allows_the_same_work_again_once_finished() {
    let db = TestDb::new(json!({}));
    db.register("sync", any_object());
    let active = from::<EnqueueOptions>(json!({"dedupe_scope": "active"}));
    let first = db
        .client
        .enqueue("sync", &json!({"user": 7}), &active)
        .unwrap();
    let while_pending = db
        .client
        .enqueue("sync", &json!({"user": 7}), &active)
        .unwrap();
    assert_eq!(
        (while_pending.id, while_pending.deduplicated),
        (first.id, true)
    );
    let t = db.claim_one("w");
    let while_claimed = db
        .client
        .enqueue("sync", &json!({"user": 7}), &active)
        .unwrap();
    assert!(while_claimed.deduplicated);
    db.client
        .complete(t.id, &t.lease_token, &json!(null))
        .unwrap();
    let again = db
        .client
        .enqueue("sync", &json!({"user": 7}), &active)
        .unwrap();
    assert!(!again.deduplicated);
    assert_ne!(again.id, first.id);
    // The default scope keeps the original behaviour: a key once used blocks forever.
    let always = db
        .client
        .enqueue("sync", &json!({"user": 8}), &EnqueueOptions::default())
        .unwrap();
    let t = db.client.claim("w", &from(json!({"limit": 10}))).unwrap();
    assert_eq!(t.len(), 2);
    for task in t {
        db.client
            .complete(task.id, &task.lease_token, &json!(null))
            .unwrap();
    }
    let blocked = db
        .client
        .enqueue("sync", &json!({"user": 8}), &EnqueueOptions::default())
        .unwrap();
    assert_eq!(
        (blocked.id, blocked.deduplicated, blocked.status.as_str()),
        (always.id, true, "completed")
    );
}

#[test]
fn retrying_a_dead_task_whose_key_is_taken_again_is_a_conflict() {
    let db = TestDb::new(json!({}));
    db.register("sync", any_object());
    let active = json!({"dedupe_scope": "active"});
    let dead = db.enqueue_with("sync", json!({"user": 1}), active.clone());
    let t = db.claim_one("w");
    db.client
        .fail(t.id, &t.lease_token, "no", &from(json!({"retry": false})))
        .unwrap();
    let newer = db.enqueue_with("sync", json!({"user": 1}), active);
    assert_ne!(newer, dead, "the dead task no longer holds its key");
    let e = db.client.retry(dead).unwrap_err();
    assert_eq!(e.code(), Code::Conflict, "{e}");
    assert!(e.message().contains("dedupe key"));
    assert_eq!(
        db.client.get_task(dead).unwrap().status,
        "failed",
        "nothing changed"
    );
    db.client.cancel(newer, None).unwrap();
    assert_eq!(
        db.client.retry(dead).unwrap().status,
        "pending",
        "free again once the newer one is cancelled"
    );
}
