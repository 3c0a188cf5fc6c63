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

/// Batches that overlap, sent at once: each task is made once, and has exactly one `created`
/// history row however many batches named it (the batch finds its new tasks' rows by their
/// ids and its token).
#[test]
fn concurrent_overlapping_batches_make_each_task_once_with_one_created_row() {
    let db = TestDb::new(json!({"pool_max_connections": 8}));
    db.register("overlap", any_object());
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|thread| {
            let (client, barrier) = (db.client.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                // Thread t names tasks 10t .. 10t+39: each task is in up to four batches.
                for round in 0..4 {
                    let items: Vec<BatchItem> = from(json!((0..10)
                        .map(|i| json!({"type": "overlap", "params": {"n": thread * 10 + round * 10 + i}}))
                        .collect::<Vec<_>>()));
                    client.enqueue_batch(&items).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 70);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM task_history WHERE status_change = 'created'"),
        70
    );
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM tasks t WHERE (SELECT COUNT(*) FROM task_history h \
             WHERE h.task_id = t.id AND h.status_change = 'created') <> 1"
        ),
        0
    );
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

/// Every way a task ends frees an `active` key (complete, complete_batch, a final fail, a lease
/// that ran out on the last attempt, cancel); a fail that will retry keeps it.
#[test]
fn an_active_key_is_freed_by_every_way_a_task_ends_and_kept_by_a_retry() {
    let db = TestDb::new(json!({}));
    db.register("sync", any_object());
    let active = json!({"dedupe_scope": "active", "max_attempts": 1});
    let blocked = |user: i64| -> bool {
        db.client
            .enqueue("sync", &json!({"user": user}), &from(active.clone()))
            .unwrap()
            .deduplicated
    };
    let enqueue = |user: i64| db.enqueue_with("sync", json!({"user": user}), active.clone());
    let ids: Vec<i64> = (1..=6).map(enqueue).collect();
    let claimed = db.client.claim("w", &from(json!({"limit": 6}))).unwrap();
    let token = |id: i64| {
        claimed
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.lease_token.clone())
            .unwrap()
    };
    assert_eq!(claimed.len(), 6);
    assert!((1..=6).all(blocked), "every key blocks while its task runs");

    db.client
        .complete(ids[0], &token(ids[0]), &json!(null))
        .unwrap();
    let batch = vec![CompleteItem {
        id: ids[1],
        lease_token: token(ids[1]),
        result: json!(null),
    }];
    assert!(db.client.complete_batch(&batch).unwrap()[0].ok);
    db.client
        .fail(ids[2], &token(ids[2]), "no", &from(json!({"retry": false})))
        .unwrap();
    db.set_time("lease_expires_at", -1.0, &format!("id = {}", ids[3]));
    assert_eq!(db.client.recover_expired().unwrap().failed, 1);
    db.client.cancel(ids[4], None).unwrap();
    // One attempt left would retry: the task stays active and keeps its key.
    db.sql_exec(&format!(
        "UPDATE tasks SET max_attempts = 3 WHERE id = {}",
        ids[5]
    ));
    let retried = db
        .client
        .fail(ids[5], &token(ids[5]), "again", &FailOptions::default())
        .unwrap();
    assert_eq!(retried.status, Status::Pending);

    for (user, id) in (1..=5).zip(&ids) {
        assert!(!blocked(user), "task {id} ended: its key must be free");
    }
    assert!(blocked(6), "a task that will retry keeps its key");
}
