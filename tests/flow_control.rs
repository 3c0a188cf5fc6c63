//! Flow control against the real server: pause and resume, the concurrency limit (also under
//! many claimers with clients of their own, as separate processes would be), the rate limit's
//! sliding window, waiting claims, and bad input naming its field. Time is moved with plain
//! SQL (a start or a lease set back), never waited for, except where waiting is the feature.

mod common;

use common::{TestDb, any_object, from};
use mysql::prelude::Queryable;
use serde_json::{Value, json};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use taskmanager::*;

fn limits(value: Value) -> TypeLimits {
    from(value)
}

fn claim(client: &Client, limit: u32) -> Vec<ClaimedTask> {
    client.claim("w", &from(json!({"limit": limit}))).unwrap()
}

fn types_of(tasks: &[ClaimedTask]) -> Vec<&str> {
    tasks.iter().map(|t| t.type_name.as_str()).collect()
}

/// A database with the types `render` and `mail`, `n` tasks of each.
fn two_types(n: usize) -> TestDb {
    let db = TestDb::server(json!({"lazy_recovery_interval_ms": 0}));
    db.register("render", any_object());
    db.register("mail", any_object());
    for i in 0..n {
        db.enqueue("render", json!({"i": i}));
        db.enqueue("mail", json!({"i": i}));
    }
    db
}

#[test]
fn a_paused_type_keeps_its_tasks_until_resumed_and_still_accepts_new_ones() {
    let db = two_types(2);
    let paused = db
        .client
        .pause_type("render", &PauseOptions::default())
        .unwrap();
    assert!(paused.paused && paused.paused_until.is_none(), "{paused:?}");
    db.enqueue("render", json!({"late": true}));
    // Another client (another process's view) sees the pause at once.
    let other = db.client_with(json!({"pool_max_connections": 2}));
    assert_eq!(types_of(&claim(&other, 10)), ["mail", "mail"]);
    // Many claimers at once, each with a pool of its own: none gets a paused task.
    let barrier = Arc::new(Barrier::new(8));
    let claimers: Vec<_> = (0..8)
        .map(|n| {
            let client = db.client_with(json!({"pool_max_connections": 3 + n}));
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                client
                    .claim(
                        &format!("w{n}"),
                        &from(json!({"types": ["render"], "limit": 5})),
                    )
                    .unwrap()
                    .len()
            })
        })
        .collect();
    let got: usize = claimers.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(got, 0, "no claimer got a paused type's task");
    assert!(claim(&db.client, 10).is_empty());
    let stats = db.client.stats().unwrap();
    assert!(stats.flow["render"].paused, "{:?}", stats.flow);
    assert!(
        db.client
            .metrics()
            .unwrap()
            .contains("taskmanager_type_paused{type=\"render\"} 1")
    );

    let resumed = db.client.resume_type("render").unwrap();
    assert!(!resumed.paused);
    assert_eq!(claim(&other, 10).len(), 3);
    assert!(db.client.stats().unwrap().flow.is_empty());
}

#[test]
fn a_pause_with_an_end_ends_by_itself_and_the_report_says_when() {
    let db = two_types(1);
    let until = "2099-01-01T00:00:00Z";
    let e = db
        .client
        .pause_type("render", &from(json!({"until": until})))
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("until") && e.message().contains("a year"),
        "{e}"
    );
    let e = db
        .client
        .pause_type("render", &from(json!({"until": "yesterday"})))
        .unwrap_err();
    assert!(e.message().contains("RFC 3339"), "{e}");

    let soon: String = db
        .sql()
        .query_first("SELECT DATE_FORMAT(NOW(6) + INTERVAL 1 HOUR, '%Y-%m-%dT%H:%i:%sZ')")
        .unwrap()
        .unwrap();
    let paused = db
        .client
        .pause_type("render", &from(json!({"until": soon})))
        .unwrap();
    assert!(paused.paused && paused.paused_until.is_some(), "{paused:?}");
    let report = db
        .client
        .claim_report("w", &from(json!({"limit": 10})))
        .unwrap();
    assert_eq!(types_of(&report.tasks), ["mail"]);
    assert_eq!(
        report.next_allowed_at.as_deref().map(|t| &t[..19]),
        paused.paused_until.as_deref().map(|t| &t[..19]),
        "the report names the pause's end"
    );
    // The pause's end passes (moved with plain SQL): the task is claimable.
    db.sql_exec("UPDATE task_type_flow SET paused_until = NOW(6) - INTERVAL 1 SECOND");
    assert!(!db.client.get_type("render").unwrap().paused);
    assert_eq!(types_of(&claim(&db.client, 10)), ["render"]);
}

#[test]
fn max_running_holds_a_type_to_its_slots_and_other_types_still_run() {
    let db = two_types(3);
    let t = db
        .client
        .set_type_limits("render", &limits(json!({"max_running": 2})))
        .unwrap();
    assert_eq!(t.max_running, Some(2));
    let first = claim(&db.client, 10);
    let renders: Vec<&ClaimedTask> = first.iter().filter(|t| t.type_name == "render").collect();
    assert_eq!(
        (renders.len(), first.len()),
        (2, 5),
        "{:?}",
        types_of(&first)
    );
    // Saturated: the type is skipped, nothing waits.
    db.enqueue("mail", json!({"more": 1}));
    assert_eq!(types_of(&claim(&db.client, 10)), ["mail"]);
    assert_eq!(db.client.stats().unwrap().flow["render"].running, 2);
    // A complete frees one slot; a repeated complete frees nothing more.
    let done = renders[0];
    db.client
        .complete(done.id, &done.lease_token, &json!(null))
        .unwrap();
    let repeat = db
        .client
        .complete(done.id, &done.lease_token, &json!(null))
        .unwrap();
    assert!(repeat.repeated);
    assert_eq!(types_of(&claim(&db.client, 10)), ["render"]);
    assert!(claim(&db.client, 10).is_empty());
    // Removing the limit lets the rest run.
    db.client
        .set_type_limits("render", &limits(json!({"max_running": null})))
        .unwrap();
    db.enqueue("render", json!({"after": 1}));
    assert_eq!(types_of(&claim(&db.client, 10)), ["render"]);
}

#[test]
fn a_crashed_workers_slot_comes_back_when_its_lease_expires_and_the_old_lease_is_lost() {
    let db = two_types(2);
    db.client
        .set_type_limits("render", &limits(json!({"max_running": 1})))
        .unwrap();
    let held = db
        .client
        .claim("crashed", &from(json!({"types": ["render"]})))
        .unwrap();
    assert_eq!(held.len(), 1);
    let options: ClaimOptions = from(json!({"types": ["render"]}));
    assert!(db.client.claim("w", &options).unwrap().is_empty());
    db.sql_exec(
        "UPDATE tasks SET lease_expires_at = NOW(6) - INTERVAL 1 SECOND WHERE status = 'claimed'",
    );
    let next = db.client.claim("w", &options).unwrap();
    assert_eq!(next.len(), 1, "the expired lease gave its slot back");
    let late = db
        .client
        .complete(held[0].id, &held[0].lease_token, &json!(null))
        .unwrap_err();
    assert_eq!(late.code(), Code::LeaseLost);
    assert!(db.client.claim("w", &options).unwrap().is_empty());
}

/// 12 claimers with clients of their own (each its own pool and its own knowledge of the
/// limits, as processes have) drain 60 tasks of a type limited to 3. The history proves that
/// no moment had more than 3 of them claimed: ordering every `claimed` and every end of a
/// claim by time, the running count never passes 3.
#[test]
fn many_claimers_never_hold_more_than_max_running() {
    let db = TestDb::server(json!({"lazy_recovery_interval_ms": 0}));
    db.register("render", any_object());
    db.client
        .set_type_limits("render", &limits(json!({"max_running": 3})))
        .unwrap();
    for i in 0..60 {
        db.enqueue("render", json!({"i": i}));
    }
    let barrier = Arc::new(Barrier::new(12));
    let workers: Vec<_> = (0..12)
        .map(|n| {
            let client = db.client_with(json!({"pool_max_connections": 1 + n % 3}));
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut done = 0;
                let mut idle = 0;
                while idle < 50 {
                    let tasks = client
                        .claim(&format!("w{n}"), &ClaimOptions::default())
                        .unwrap();
                    if tasks.is_empty() {
                        idle += 1;
                        std::thread::yield_now();
                        continue;
                    }
                    idle = 0;
                    for t in tasks {
                        client.complete(t.id, &t.lease_token, &json!(n)).unwrap();
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let mut done: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    // Claimers that gave up early leave the rest to this one.
    loop {
        let tasks = db.client.claim("last", &ClaimOptions::default()).unwrap();
        if tasks.is_empty() {
            break;
        }
        for t in tasks {
            db.client.complete(t.id, &t.lease_token, &json!(0)).unwrap();
            done += 1;
        }
    }
    assert_eq!(done, 60);
    assert_eq!(most_running_at_once(&db), 3);
}

/// The most tasks claimed at one moment, from the history (a claim counts from its `claimed`
/// row to the next row of the same task; ties put ends first).
fn most_running_at_once(db: &TestDb) -> i64 {
    db.count(
        "SELECT MAX(running) FROM (SELECT SUM(delta) OVER (ORDER BY at, delta, id) AS running FROM (\
           SELECT h.created_at AS at, 1 AS delta, h.id FROM task_history h WHERE h.status_change = 'claimed' \
           UNION ALL SELECT e.created_at, -1, e.id FROM task_history e \
           WHERE e.status_change IN ('completed', 'failed', 'retrying', 'lease_expired', 'released', 'cancelled')\
         ) AS events) AS timeline",
    )
}

#[test]
fn a_rate_limit_admits_limit_plus_burst_per_sliding_window_and_says_when_the_next_may_start() {
    let db = two_types(6);
    db.client
        .set_type_limits(
            "render",
            &limits(json!({"rate": {"limit": 2, "per_seconds": 60, "burst": 1}})),
        )
        .unwrap();
    let first = claim(&db.client, 20);
    assert_eq!(first.iter().filter(|t| t.type_name == "render").count(), 3);
    let report = db
        .client
        .claim_report("w", &from(json!({"limit": 20})))
        .unwrap();
    assert!(report.tasks.is_empty());
    let next = report.next_allowed_at.expect("the report says when");
    assert!(next.ends_with('Z'), "{next}");
    let flow = &db.client.stats().unwrap().flow["render"];
    assert_eq!((flow.started_in_window, flow.running), (3, 3));
    // Completing does not give starts back: the window does.
    for t in first.iter().filter(|t| t.type_name == "render") {
        db.client
            .complete(t.id, &t.lease_token, &json!(null))
            .unwrap();
    }
    assert!(claim(&db.client, 20).is_empty());
    // One start slides out of the window (moved back with plain SQL): one more may start.
    db.sql_exec(
        "UPDATE task_type_permits SET taken_at = NOW(6) - INTERVAL 61 SECOND \
         WHERE kind = 'rate' ORDER BY taken_at LIMIT 1",
    );
    assert_eq!(types_of(&claim(&db.client, 20)), ["render"]);
    assert!(claim(&db.client, 20).is_empty());
    assert_eq!(
        db.client.stats().unwrap().flow["render"].started_in_window,
        3,
        "the window holds limit + burst starts again"
    );
}

#[test]
fn bad_limits_and_unknown_types_are_refused_naming_the_field() {
    let db = two_types(0);
    for (value, field) in [
        (json!({"max_running": -1}), "max_running"),
        (json!({"max_running": 0}), "max_running"),
        (json!({"max_running": 1.5}), "max_running"),
        (
            json!({"rate": {"limit": 0, "per_seconds": 1}}),
            "rate.limit",
        ),
        (json!({"rate": {"limit": 5}}), "rate.per_seconds"),
        (
            json!({"rate": {"limit": 5, "per_seconds": 31_536_001}}),
            "rate.per_seconds",
        ),
        (
            json!({"rate": {"limit": 5, "per_seconds": 60, "burst": -2}}),
            "rate.burst",
        ),
        (
            json!({"rate": {"limit": 5, "per_seconds": 60, "extra": 1}}),
            "rate",
        ),
        (json!({"max_runing": 2}), "max_runing"),
    ] {
        let e = serde_json::from_value::<TypeLimits>(value.clone()).unwrap_err();
        assert!(e.to_string().contains(field), "{value}: {e}");
    }
    let e = db
        .client
        .set_type_limits(
            "render",
            &TypeLimits {
                max_running: Some(Some(0)),
                rate: None,
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.details().unwrap()["field"], "max_running");
    for e in [
        db.client
            .set_type_limits("nope", &limits(json!({"max_running": 1})))
            .unwrap_err(),
        db.client
            .pause_type("nope", &PauseOptions::default())
            .unwrap_err(),
        db.client.resume_type("nope").unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::NotFound, "{e}");
    }
    let e = db
        .client
        .claim("w", &from(json!({"wait_seconds": 61})))
        .unwrap_err();
    assert!(e.message().contains("wait_seconds"), "{e}");
}

#[test]
fn a_waiting_claim_wakes_for_a_task_enqueued_meanwhile_and_returns_empty_at_its_deadline() {
    let db = TestDb::server(json!({}));
    db.register("mail", any_object());
    let started = Instant::now();
    let nothing = db
        .client
        .claim("w", &from(json!({"wait_seconds": 0.5})))
        .unwrap();
    let waited = started.elapsed();
    assert!(nothing.is_empty());
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );

    // Another client of the same process enqueues while the claim waits: it wakes at once.
    let waiter = {
        let client = db.client_with(json!({}));
        std::thread::spawn(move || {
            let started = Instant::now();
            let tasks = client
                .claim("w", &from(json!({"wait_seconds": 30})))
                .unwrap();
            (tasks, started.elapsed())
        })
    };
    // Give the waiter time to find nothing first: the test asserts only that it returns the
    // task, well before its deadline.
    std::thread::sleep(Duration::from_millis(200));
    let id = db.enqueue("mail", json!({"n": 1}));
    let (tasks, took) = waiter.join().unwrap();
    assert_eq!(tasks.iter().map(|t| t.id).collect::<Vec<_>>(), [id]);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn complete_and_claim_keeps_to_the_limit_and_a_stale_token_claims_nothing() {
    let db = two_types(3);
    db.client
        .set_type_limits("render", &limits(json!({"max_running": 1})))
        .unwrap();
    let options: ClaimOptions = from(json!({"types": ["render"]}));
    let first = db.client.claim("w", &options).unwrap().remove(0);
    let e = db
        .client
        .complete_and_claim(first.id, "stale.1", &json!(null), "w", &options)
        .unwrap_err();
    assert_eq!(e.code(), Code::LeaseLost);
    let claimed = "SELECT COUNT(*) FROM tasks WHERE status = 'claimed'";
    assert_eq!(db.count(claimed), 1, "a stale token claims nothing");
    // Its own complete frees the slot for the claim in the same transaction.
    let step = db
        .client
        .complete_and_claim(first.id, &first.lease_token, &json!(null), "w", &options)
        .unwrap();
    assert_eq!(step.claimed.len(), 1);
    assert_eq!(db.count(claimed), 1);
    let full = db
        .client
        .complete_and_claim(
            step.claimed[0].id,
            &step.claimed[0].lease_token,
            &json!(null),
            "w",
            &from(json!({"types": ["render"], "limit": 5})),
        )
        .unwrap();
    assert_eq!(
        full.claimed.len(),
        1,
        "one slot: one task, whatever the limit asked"
    );
}

#[test]
fn tasks_claimed_before_a_limit_count_and_a_removed_limit_hands_each_task_out_once() {
    let db = two_types(3);
    let early = db
        .client
        .claim("early", &from(json!({"types": ["render"]})))
        .unwrap();
    assert_eq!(early.len(), 1);
    db.client
        .set_type_limits("render", &limits(json!({"max_running": 1})))
        .unwrap();
    let render: ClaimOptions = from(json!({"types": ["render"], "limit": 10}));
    assert!(
        db.client.claim("w", &render).unwrap().is_empty(),
        "the task claimed before the limit holds its only slot"
    );
    // Another process removes the limit; this one still believes the type limited.
    db.client_with(json!({"pool_max_connections": 2}))
        .set_type_limits("render", &limits(json!({"max_running": null})))
        .unwrap();
    let got = db.client.claim("w", &render).unwrap();
    let mut ids: Vec<i64> = got.iter().map(|t| t.id).collect();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (2, 2), "each task once: {ids:?}");
}
