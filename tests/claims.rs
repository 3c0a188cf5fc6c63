//! Which tasks a claim takes, on either engine (`TASKMANAGER_TEST_ENGINE`, see tests/common):
//! nothing to claim, the order (priority, then age), several types, a prefix, delays.

mod common;

use common::{TestDb, any_object, from};
use serde_json::json;
use taskmanager::*;

/// The ids one claim takes, in its answer's order.
fn claimed_ids(db: &TestDb, options: serde_json::Value) -> Vec<i64> {
    db.client
        .claim("w", &from::<ClaimOptions>(options))
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect()
}

#[test]
fn nothing_to_claim_is_an_empty_list() {
    let db = TestDb::new(json!({}));
    assert!(
        db.client
            .claim("w", &ClaimOptions::default())
            .unwrap()
            .is_empty()
    );
    assert!(
        db.client
            .claim(
                "w",
                &from::<ClaimOptions>(json!({"types": ["never-registered"]}))
            )
            .unwrap()
            .is_empty()
    );
}

#[test]
fn higher_priority_first_then_oldest() {
    let db = TestDb::new(json!({}));
    db.register("job", any_object());
    let low = db.enqueue_with("job", json!({"n": 1}), json!({"priority": -5}));
    let old_mid = db.enqueue("job", json!({"n": 2}));
    let high = db.enqueue_with("job", json!({"n": 3}), json!({"priority": 10}));
    let new_mid = db.enqueue("job", json!({"n": 4}));
    let order = claimed_ids(&db, json!({"limit": 10}));
    assert_eq!(order, [high, old_mid, new_mid, low]);
}

#[test]
fn claims_of_several_types_take_the_best_tasks_across_them() {
    let db = TestDb::new(json!({}));
    for name in ["mix.a", "mix.b", "other"] {
        db.register(name, any_object());
    }
    // (type, priority), in the order enqueued.
    let plan = [
        ("mix.a", 0),
        ("mix.b", 5),
        ("mix.a", 5),
        ("other", 9),
        ("mix.b", 0),
        ("mix.a", 7),
        ("mix.b", 7),
    ];
    let ids: Vec<i64> = plan
        .iter()
        .enumerate()
        .map(|(n, (name, priority))| {
            db.enqueue_with(name, json!({"n": n}), json!({"priority": priority}))
        })
        .collect();
    // Each claim's tasks are released again for the next.
    let take = |options: serde_json::Value| -> Vec<i64> {
        let claimed = db.client.claim("w", &from(options)).unwrap();
        let order = claimed.iter().map(|t| t.id).collect();
        for t in claimed {
            db.client.release(t.id, &t.lease_token).unwrap();
        }
        order
    };
    let mix = [ids[5], ids[6], ids[1], ids[2], ids[0], ids[4]];
    assert_eq!(take(json!({"types": ["mix.a", "mix.b"], "limit": 10})), mix);
    // Fewer than each type has: each type's own best come first.
    assert_eq!(
        take(json!({"types": ["mix.b", "mix.a"], "limit": 2})),
        mix[..2]
    );
    assert_eq!(take(json!({"type_prefix": "mix.", "limit": 4})), mix[..4]);
    assert_eq!(take(json!({"limit": 4})), [ids[3], ids[5], ids[6], ids[1]]);
}

#[test]
fn delayed_tasks_wait_for_their_time() {
    let db = TestDb::new(json!({}));
    db.register("later", any_object());
    let delayed = db.enqueue_with("later", json!({"n": 1}), json!({"delay_seconds": 3600}));
    let future = db.enqueue_with(
        "later",
        json!({"n": 2}),
        json!({"run_at": "2999-01-01T00:00:00Z"}),
    );
    let past = db.enqueue_with(
        "later",
        json!({"n": 3}),
        json!({"run_at": "2001-01-01 00:00:00"}),
    );
    let got = claimed_ids(&db, json!({"limit": 10}));
    assert_eq!(got, [past]);
    let run_at = db.client.get_task(delayed).unwrap().run_at;
    assert!(run_at > db.client.get_task(past).unwrap().created_at);
    assert_eq!(
        db.client.get_task(future).unwrap().run_at,
        "2999-01-01T00:00:00.000000Z"
    );
}

#[test]
fn claim_filters_by_type_list_and_literal_prefix() {
    let db = TestDb::new(json!({}));
    for name in ["img_x.resize", "imgAx.crop", "mail.send", "100%.done"] {
        db.register(name, any_object());
        db.client
            .enqueue(name, &json!({"for": name}), &EnqueueOptions::default())
            .unwrap();
    }
    // The type names one claim (of up to 10) takes, in its answer's order.
    let claimed_types = |options: serde_json::Value| -> Vec<String> {
        db.client
            .claim("w", &from::<ClaimOptions>(options))
            .unwrap()
            .into_iter()
            .map(|t| t.type_name)
            .collect()
    };
    assert_eq!(
        claimed_types(json!({"type_prefix": "img_", "limit": 10})),
        ["img_x.resize"]
    );
    assert_eq!(
        claimed_types(json!({"type_prefix": "100%", "limit": 10})).len(),
        1
    );
    assert!(claimed_types(json!({"type_prefix": "%", "limit": 10})).is_empty());
    assert_eq!(
        claimed_types(json!({"types": ["mail.send", "nope"], "limit": 10})),
        ["mail.send"]
    );
    assert_eq!(claimed_types(json!({"limit": 10})), ["imgAx.crop"]);
}
