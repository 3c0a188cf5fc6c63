//! The stats document is read by the C ABI, PHP, Python, the dashboard and the HTTP API as
//! JSON text: its bytes must not change when the Rust side changes how it builds them. This
//! test fills every section and compares the serialized text with the document written out
//! here, key order included (the document was a `serde_json::Value`, whose maps are sorted).

mod common;

use common::{TestDb, any_object, from};
use serde_json::{Value, json};
use taskmanager::*;

/// A per-minute series of the last hour with `now` in the minute that just ended.
fn minutes(now: i64) -> Vec<i64> {
    let mut series = vec![0; 60];
    series[0] = now;
    series
}

/// A 24-hour series with `now` in the current hour.
fn hours(now: i64) -> Vec<i64> {
    let mut series = vec![0; 24];
    series[0] = now;
    series
}

#[test]
fn the_stats_json_is_the_documented_text_byte_for_byte() {
    let db = TestDb::new(json!({"enable_task_history": true}));
    for name in ["s.a", "s.b", "s.idle"] {
        db.register(name, any_object());
    }
    for n in 0..4 {
        db.enqueue("s.a", json!({"n": n}));
    }
    for n in 0..2 {
        db.enqueue("s.b", json!({"n": n}));
    }
    let only = |name: &str| -> ClaimOptions { from(json!({"types": [name]})) };
    let done = db.client.claim("w1", &only("s.a")).unwrap().remove(0);
    db.client
        .complete(done.id, &done.lease_token, &json!(null))
        .unwrap();
    let dead = db.client.claim("w2", &only("s.a")).unwrap().remove(0);
    db.client
        .fail(
            dead.id,
            &dead.lease_token,
            "boom",
            &from(json!({"retry": false})),
        )
        .unwrap();
    let cancelled = db.client.claim("w2", &only("s.a")).unwrap().remove(0);
    db.client.cancel(cancelled.id, Some("not needed")).unwrap();
    db.client.claim("w3", &only("s.b")).unwrap();
    let expired = db.client.claim("w4", &only("s.b")).unwrap().remove(0);
    db.set_time("lease_expires_at", -60.0, &format!("id = {}", expired.id));

    let text = serde_json::to_string(&db.client.stats().unwrap()).unwrap();
    let read: Value = serde_json::from_str(&text).unwrap();
    // The figures that depend on the clock are taken from the answer, after checking their kind.
    let generated_at = read["generated_at"].as_str().expect("generated_at");
    let oldest = read["queue"]["s.a"]["oldest_pending_seconds"]
        .as_f64()
        .expect("the oldest pending task's age");
    assert!(oldest >= 0.0, "{oldest}");
    let last_claim = |i: usize| -> &str {
        read["workers"][i]["last_claim_at"]
            .as_str()
            .expect("last_claim_at")
    };
    let counts = |pending, claimed, completed, failed, cancelled| {
        json!({"pending": pending, "claimed": claimed, "completed": completed,
               "failed": failed, "cancelled": cancelled})
    };
    let expected = json!({
        "types": {
            "s.a": counts(1, 0, 1, 1, 1),
            "s.b": counts(0, 2, 0, 0, 0),
            "s.idle": counts(0, 0, 0, 0, 0),
        },
        "totals": counts(1, 2, 1, 1, 1),
        "queue": {
            "s.a": {"oldest_pending_seconds": oldest, "expired_leases": 0},
            "s.b": {"oldest_pending_seconds": null, "expired_leases": 1},
        },
        "throughput": {
            "s.a": {"completed_per_hour": hours(1), "completed_per_minute": minutes(1),
                    "failed_per_hour": hours(1), "failed_per_minute": minutes(1)},
        },
        // Most recent claim first.
        "workers": [
            {"worker_id": "w4", "last_claim_at": last_claim(0), "claims_last_hour": 1, "holding": 1},
            {"worker_id": "w3", "last_claim_at": last_claim(1), "claims_last_hour": 1, "holding": 1},
            {"worker_id": "w2", "last_claim_at": last_claim(2), "claims_last_hour": 2, "holding": 0},
            {"worker_id": "w1", "last_claim_at": last_claim(3), "claims_last_hour": 1, "holding": 0},
        ],
        "generated_at": generated_at,
    });
    // A `Value` writes its keys sorted, as the document always was.
    assert_eq!(text, serde_json::to_string(&expected).unwrap());
}

#[test]
fn tasks_finished_hours_ago_count_per_hour_only() {
    let db = TestDb::new(json!({}));
    db.register("h", any_object());
    let ids: Vec<i64> = (0..3).map(|n| db.enqueue("h", json!({"n": n}))).collect();
    for _ in &ids {
        let t = db.claim_one("w");
        db.client
            .complete(t.id, &t.lease_token, &json!(null))
            .unwrap();
    }
    // One finished now, one 130 minutes ago (hour 2), one two days ago (outside the series).
    db.set_time("completed_at", -130.0 * 60.0, &format!("id = {}", ids[1]));
    db.set_time("completed_at", -2.0 * 86400.0, &format!("id = {}", ids[2]));
    let stats = db.client.stats().unwrap();
    let series = &stats.throughput["h"];
    assert_eq!(series.completed_per_minute.iter().sum::<i64>(), 1);
    assert_eq!(series.completed_per_minute[0], 1);
    assert_eq!(series.completed_per_hour.len(), 24);
    assert_eq!(
        (series.completed_per_hour[0], series.completed_per_hour[2]),
        (1, 1)
    );
    assert_eq!(series.completed_per_hour.iter().sum::<i64>(), 2);
}
