//! Leases under concurrency and at their boundaries, on either engine: no two live leases on
//! one task, stale tokens change nothing, expired leases count as attempts and die at the
//! limit. The server's row locks, dropped connections and failover are in `server_only`.

mod common;

use common::{TestDb, any_object, from};
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use taskmanager::*;

#[test]
fn concurrent_claimers_never_share_a_task() {
    let db = TestDb::new(json!({"pool_max_connections": 8, "enable_task_history": true}));
    db.register("race", any_object());
    let items: Vec<BatchItem> = (0..300)
        .map(|n| from(json!({"type": "race", "params": {"n": n}})))
        .collect();
    db.client.enqueue_batch(&items).unwrap();

    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let client = db.client.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut mine = Vec::new();
                let options: ClaimOptions = from(json!({"limit": 3}));
                loop {
                    let got = client.claim(&format!("w{w}"), &options).unwrap();
                    if got.is_empty() {
                        break;
                    }
                    for t in got {
                        client
                            .complete(t.id, &t.lease_token, &json!({"by": w}))
                            .unwrap();
                        mine.push(t.id);
                    }
                }
                mine
            })
        })
        .collect();
    let all: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 300, "every task claimed exactly once");
    assert_eq!(unique.len(), 300);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM task_history WHERE status_change = 'claimed'"),
        300
    );
    assert_eq!(db.count("SELECT MAX(attempts) FROM tasks"), 1);
}

#[test]
fn stale_token_cannot_finish_after_recovery_and_reclaim() {
    let db = TestDb::new(json!({}));
    db.register("stale", any_object());
    let id = db.enqueue("stale", json!({}));
    let old = db.claim_one("slow-worker");
    db.set_time("lease_expires_at", -1.0, &format!("id = {id}"));
    let new = db.claim_one("fast-worker");
    assert_eq!(new.id, id);
    assert_ne!(new.lease_token, old.lease_token);
    assert_eq!(new.attempts, 2, "the expired lease counted as an attempt");

    for e in [
        db.client
            .complete(id, &old.lease_token, &json!("late"))
            .unwrap_err(),
        db.client
            .fail(id, &old.lease_token, "late", &FailOptions::default())
            .unwrap_err(),
        db.client
            .heartbeat(id, &old.lease_token, &HeartbeatOptions::default())
            .unwrap_err(),
        db.client.release(id, &old.lease_token).unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::LeaseLost, "{e}");
    }
    let task = db.client.get_task(id).unwrap();
    assert_eq!(
        (
            task.status.as_str(),
            task.claimed_by.as_deref(),
            task.result.clone()
        ),
        ("claimed", Some("fast-worker"), json!(null))
    );
    db.client
        .complete(id, &new.lease_token, &json!("done"))
        .unwrap();
    let kinds = common::history_kinds(&db.client, id);
    assert_eq!(
        kinds,
        [
            "created",
            "claimed",
            "lease_expired",
            "claimed",
            "completed"
        ]
    );
}

#[test]
fn lease_expiry_boundary_is_exact() {
    let db = TestDb::new(json!({}));
    db.register("edge", any_object());
    let id = db.enqueue("edge", json!({}));
    db.claim_one("w");
    // Just before the end of the lease: not recovered.
    db.set_time("lease_expires_at", 2.0, &format!("id = {id}"));
    assert_eq!(db.client.recover_expired().unwrap().recovered, 0);
    assert_eq!(db.client.get_task(id).unwrap().status, "claimed");
    // At the end of the lease (expiry equal to the database clock): recovered.
    db.set_time("lease_expires_at", 0.0, &format!("id = {id}"));
    let r = db.client.recover_expired().unwrap();
    assert_eq!((r.recovered, r.requeued, r.failed), (1, 1, 0));
    let task = db.client.get_task(id).unwrap();
    assert_eq!((task.status.as_str(), task.attempts), ("pending", 1));
    assert!(task.error_message.unwrap().contains("lease expired"));
}

#[test]
fn expired_lease_at_max_attempts_becomes_failed() {
    let db = TestDb::new(json!({}));
    db.register("doomed", any_object());
    let id = db
        .client
        .enqueue("doomed", &json!({}), &from(json!({"max_attempts": 2})))
        .unwrap()
        .id;
    for attempt in 1..=2 {
        let t = db.claim_one("crashy");
        assert_eq!(t.attempts, attempt);
        db.set_time("lease_expires_at", -1e-06, &format!("id = {id}"));
        let r = db.client.recover_expired().unwrap();
        let task = db.client.get_task(id).unwrap();
        if attempt == 1 {
            assert_eq!(
                (r.requeued, r.failed, task.status.as_str()),
                (1, 0, "pending")
            );
        } else {
            assert_eq!(
                (r.requeued, r.failed, task.status.as_str()),
                (0, 1, "failed")
            );
        }
        assert_eq!(task.attempts, attempt);
    }
    assert!(
        db.client
            .claim("w", &ClaimOptions::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn lazy_recovery_happens_inside_claim() {
    let db = TestDb::new(json!({}));
    db.register("lazy", any_object());
    let id = db.enqueue("lazy", json!({}));
    db.claim_one("w1");
    db.set_time("lease_expires_at", -1.0, &format!("id = {id}"));
    // No explicit recovery: the next claim itself finds the expired lease and hands it out.
    let again = db.claim_one("w2");
    assert_eq!((again.id, again.attempts), (id, 2));
}

#[test]
fn heartbeat_extends_the_lease() {
    let db = TestDb::new(json!({}));
    db.register("hb", any_object());
    let id = db.enqueue("hb", json!({}));
    let t = db
        .client
        .claim("w", &from(json!({"lease_seconds": 5})))
        .unwrap()
        .remove(0);
    let hb = db
        .client
        .heartbeat(
            id,
            &t.lease_token,
            &from(json!({"lease_seconds": 600, "progress": 100})),
        )
        .unwrap();
    assert!(hb.lease_expires_at > t.lease_expires_at);
    let left = db.seconds_until("lease_expires_at", id);
    assert!((590.0..=600.5).contains(&left), "{left}");
    let e = db
        .client
        .heartbeat(id, &t.lease_token, &from(json!({"progress": 101})))
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}

#[test]
fn a_busy_queue_recovers_expired_leases_once_per_recovery_interval() {
    // An interval no test outlasts: after the first claim, claims that find work skip the
    // recovery pass, whatever the clock does.
    let db = TestDb::new(json!({"lazy_recovery_interval_ms": 3_600_000}));
    db.register("busy", any_object());
    let urgent = db.enqueue_with("busy", json!({"n": 0}), json!({"priority": 10}));
    for n in 1..=3 {
        db.enqueue("busy", json!({"n": n}));
    }
    assert_eq!(db.claim_one("crashes").id, urgent);
    db.set_time("lease_expires_at", -1.0, &format!("id = {urgent}"));
    let next = db.claim_one("w");
    assert_ne!(next.id, urgent);
    assert_eq!(db.client.get_task(urgent).unwrap().status, "claimed");

    // Once the interval has passed (0: at every claim) the expired task, highest in priority,
    // is handed out again.
    let due = db.client_with(json!({"lazy_recovery_interval_ms": 0}));
    let again = due.claim("w", &ClaimOptions::default()).unwrap().remove(0);
    assert_eq!((again.id, again.attempts), (urgent, 2));
    assert_eq!(
        common::history_kinds(&db.client, urgent),
        ["created", "claimed", "lease_expired", "claimed"]
    );
}

/// Tests about the server itself (see tests/common): on the server whatever the engine, and left
/// out of the `sqlite` run by `--skip server_only::`.
mod server_only {
    use super::*;

    #[test]
    fn a_locked_task_is_skipped_not_waited_for() {
        let db = TestDb::server(json!({}));
        db.register("skip", any_object());
        let first = db.enqueue("skip", json!({"n": 1}));
        let second = db.enqueue("skip", json!({"n": 2}));
        // Another session holds a row lock on the first task, as a claimer mid-transaction would.
        let mut other = db.sql();
        use mysql::prelude::Queryable;
        other.query_drop("START TRANSACTION").unwrap();
        other
            .query_drop(format!(
                "SELECT id FROM tasks WHERE id = {first} FOR UPDATE"
            ))
            .unwrap();
        let started = std::time::Instant::now();
        let got = db.claim_one("w");
        assert_eq!(got.id, second);
        assert!(
            started.elapsed().as_secs() < 5,
            "claim must not wait for the lock"
        );
        other.query_drop("ROLLBACK").unwrap();
    }

    #[test]
    fn calls_survive_connections_the_server_dropped() {
        let db = TestDb::server(json!({"pool_max_connections": 3}));
        db.register("resilient", any_object());
        let id = db.enqueue("resilient", json!({}));
        // History off: complete is a single autocommit UPDATE, the case where a broken connection
        // would otherwise surface as an unknown outcome.
        let quiet =
            db.client_with(json!({"enable_task_history": false, "pool_max_connections": 3}));
        let other = db.enqueue("resilient", json!({"n": 2}));
        let held = quiet
            .claim("q", &ClaimOptions::default())
            .unwrap()
            .remove(0);
        assert_eq!(held.id, id);
        // The server drops every idle pooled connection (a restart, or wait_timeout).
        assert!(db.kill_connections() > 0);
        // Reads and writes carry on without an error reaching the caller: the pool checks a
        // connection before handing it out and replaces a dead one.
        quiet
            .complete(held.id, &held.lease_token, &json!(1))
            .unwrap();
        assert_eq!(db.client.get_task(id).unwrap().status, "completed");
        let t = db.claim_one("w");
        assert_eq!(t.id, other);
        db.client.complete(t.id, &t.lease_token, &json!(2)).unwrap();
        assert_eq!(db.client.get_task(other).unwrap().status, "completed");
    }

    #[test]
    fn lock_wait_timeouts_are_retried_a_bounded_number_of_times() {
        use mysql::prelude::Queryable;
        let db = TestDb::server(json!({"lock_wait_timeout": 1, "enable_task_history": false}));
        db.register("locked", any_object());
        let first = db.enqueue("locked", json!({"n": 1}));
        let second = db.enqueue("locked", json!({"n": 2}));
        let a = db.claim_one("w");
        let b = db.claim_one("w");
        assert_eq!((a.id, b.id), (first, second));

        // Another session holds the row until the first try has timed out (after 1 s) and a retry
        // waits: then it lets go, and the retry wins. The holder sees the step's statement in the
        // process list (same account): its age passes the timeout, then starts again.
        let mut holder = db.sql();
        holder.query_drop("START TRANSACTION").unwrap();
        holder
            .query_drop(format!(
                "SELECT id FROM tasks WHERE id = {first} FOR UPDATE"
            ))
            .unwrap();
        let name = db.name.clone();
        let release = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            // The age of the step's statement when last seen: once it fell back after being
            // well into the wait, the first try has timed out and the retry is waiting.
            let mut last_age: Option<f64> = None;
            loop {
                let ages: Vec<f64> = holder
                    .query(format!(
                        "SELECT TIME_MS FROM information_schema.PROCESSLIST WHERE DB = '{name}' \
                     AND ID <> CONNECTION_ID() AND COMMAND = 'Query'"
                    ))
                    .unwrap();
                if let Some(age) = ages.into_iter().reduce(f64::max) {
                    if last_age.is_some_and(|last| last >= 500.0 && age < last) {
                        break;
                    }
                    last_age = Some(age);
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the step never retried after its lock wait timed out"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            holder.query_drop("ROLLBACK").unwrap();
        });
        let started = std::time::Instant::now();
        db.client
            .complete(first, &a.lease_token, &json!("waited"))
            .unwrap();
        assert!(
            started.elapsed().as_millis() >= 1000,
            "the call must have waited for the lock"
        );
        release.join().unwrap();

        // Held for good: the error reaches the caller after the bounded retries, with the server code.
        let mut holder = db.sql();
        holder.query_drop("START TRANSACTION").unwrap();
        holder
            .query_drop(format!(
                "SELECT id FROM tasks WHERE id = {second} FOR UPDATE"
            ))
            .unwrap();
        let started = std::time::Instant::now();
        let e = db
            .client
            .complete(second, &b.lease_token, &json!("never"))
            .unwrap_err();
        let waited = started.elapsed().as_secs_f64();
        holder.query_drop("ROLLBACK").unwrap();
        assert_eq!(e.code(), Code::Database, "{e}");
        assert_eq!(e.details().unwrap()["server_code"], 1205);
        assert!(
            (4.0..15.0).contains(&waited),
            "5 tries of 1 s each, got {waited:.1} s"
        );
        assert_eq!(
            db.client.get_task(second).unwrap().status,
            "claimed",
            "nothing changed"
        );
        assert_eq!(db.client.get_task(first).unwrap().result, json!("waited"));
    }

    #[test]
    fn new_connections_fail_over_to_the_next_host() {
        let db = TestDb::server(json!({}));
        db.register("failover", any_object());
        let (host, port, ..) = common::server();
        // Nothing listens on port 1: the first host refuses, the second takes the connection.
        let client = db.client_with(json!({"db_host": null,
        "db_hosts": [format!("127.0.0.1:1"), format!("{host}:{port}")]}));
        let id = client
            .enqueue("failover", &json!({}), &EnqueueOptions::default())
            .unwrap()
            .id;
        let t = client
            .claim("w", &ClaimOptions::default())
            .unwrap()
            .remove(0);
        assert_eq!(t.id, id);
        client.complete(id, &t.lease_token, &json!(1)).unwrap();

        // With no host answering, the error names each one tried.
        let e = Client::open(TestDb::server_config(
        &db.name,
        json!({"db_host": null, "db_hosts": ["127.0.0.1:1", "127.0.0.1:2"], "connect_timeout": 1}),
    ))
    .unwrap_err();
        assert_eq!(e.code(), Code::Connection, "{e}");
        assert!(
            e.message().contains("127.0.0.1:1") && e.message().contains("127.0.0.1:2"),
            "{e}"
        );
    }

    #[test]
    fn a_claim_repeated_on_a_new_connection_finds_what_it_may_have_leased() {
        let db = TestDb::server(json!({"pool_max_connections": 1}));
        db.register("again", any_object());
        let id = db.enqueue("again", json!({}));
        let worker =
            db.client_with(json!({"pool_max_connections": 1, "enable_task_history": false}));
        assert!(
            worker
                .claim("w", &from(json!({"types": ["no-such-type"]})))
                .unwrap()
                .is_empty()
        );
        // The server drops the worker's pooled connection; the next claim meets it dead, runs
        // again on a new connection, and first looks for tasks its first run may have leased.
        assert!(db.kill_connections() > 0);
        let got = worker.claim("w", &ClaimOptions::default()).unwrap();
        assert_eq!(got.iter().map(|t| t.id).collect::<Vec<_>>(), [id]);
    }
}
