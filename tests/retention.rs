//! Retention (prune) and the operator's figures (stats, Prometheus text), on either engine.

mod common;

use common::{Engine, TestDb, any_object, from};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use taskmanager::*;

fn options(value: serde_json::Value) -> PruneOptions {
    from(value)
}

#[test]
fn prune_deletes_old_finished_tasks_and_their_history_only() {
    let db = TestDb::new(json!({}));
    db.register("r", any_object());
    let ids: Vec<i64> = (0..8).map(|n| db.enqueue("r", json!({"n": n}))).collect();
    // 0..=2 completed, 3 failed, 4 cancelled (all made old), 5 completed recently, 6 claimed,
    // 7 pending.
    for _ in 0..4 {
        let t = db.claim_one("w");
        if t.id == ids[3] {
            db.client
                .fail(t.id, &t.lease_token, "x", &from(json!({"retry": false})))
                .unwrap();
        } else {
            db.client.complete(t.id, &t.lease_token, &json!(1)).unwrap();
        }
    }
    db.client.cancel(ids[4], None).unwrap();
    let t = db.claim_one("w");
    db.client.complete(t.id, &t.lease_token, &json!(1)).unwrap();
    db.claim_one("w");
    db.set_time("completed_at", -2.0 * 86400.0, &format!("id <= {}", ids[4]));
    let history_before = db.count("SELECT COUNT(*) FROM task_history");

    let dry = db
        .client
        .prune(&options(
            json!({"older_than_seconds": 86400, "dry_run": true}),
        ))
        .unwrap();
    assert_eq!(
        (dry.tasks, dry.history, dry.dry_run, dry.done),
        (5, 0, true, true)
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM tasks"),
        8,
        "a dry run deletes nothing"
    );

    let only_failed = db
        .client
        .prune(&options(
            json!({"older_than_seconds": 86400, "statuses": ["failed"]}),
        ))
        .unwrap();
    assert_eq!(only_failed.tasks, 1);
    assert!(db.client.get_task(ids[3]).is_err());

    let mut seen = Vec::new();
    let report = db
        .client
        .prune_with_progress(
            &options(json!({"older_than_seconds": 86400, "batch_size": 2})),
            |r| seen.push(r.tasks),
        )
        .unwrap();
    assert_eq!((report.tasks, report.done), (4, true));
    assert_eq!(seen, [2, 3, 4], "progress after every batch");
    let history_after = db.count("SELECT COUNT(*) FROM task_history");
    assert_eq!(
        history_before - history_after,
        (only_failed.history + report.history) as i64
    );
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM task_history WHERE task_id <= {}",
            ids[4]
        )),
        0
    );
    // The recent, the claimed and the pending task stay.
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 3);
    // A pruned task's dedupe key is free again.
    let again = db
        .client
        .enqueue("r", &json!({"n": 0}), &EnqueueOptions::default())
        .unwrap();
    assert!(!again.deduplicated);
}

#[test]
fn a_task_id_is_never_given_twice_even_after_the_newest_tasks_were_pruned() {
    let db = TestDb::new(json!({}));
    db.register("r", any_object());
    let ids: Vec<i64> = (0..3).map(|n| db.enqueue("r", json!({"n": n}))).collect();
    for _ in 0..3 {
        let t = db.claim_one("w");
        db.client.complete(t.id, &t.lease_token, &json!(1)).unwrap();
    }
    db.set_time("completed_at", -2.0 * 86400.0, "TRUE");
    let pruned = db
        .client
        .prune(&options(json!({"older_than_seconds": 86400})))
        .unwrap();
    assert_eq!(
        (pruned.tasks, db.count("SELECT COUNT(*) FROM tasks")),
        (3, 0)
    );
    // Every task is gone, the newest included: a new one still gets an id above them all.
    let next = db.enqueue("r", json!({"n": 99}));
    assert!(
        next > ids[2],
        "task id {next} given again after the prune (pruned ids {ids:?})"
    );
}

#[test]
fn prune_refuses_what_it_must_not_do() {
    let db = TestDb::new(json!({}));
    for (bad, text) in [
        (
            json!({"older_than_seconds": 1, "statuses": ["pending"]}),
            "only finished tasks",
        ),
        (
            json!({"older_than_seconds": 1, "statuses": []}),
            "at least one status",
        ),
        (
            json!({"older_than_seconds": 1, "batch_size": 0}),
            "batch_size",
        ),
        (
            json!({"older_than_seconds": 1, "max_batches": 0}),
            "max_batches",
        ),
        (
            json!({"older_than_seconds": u64::MAX}),
            "older_than_seconds",
        ),
    ] {
        let e = db.client.prune(&options(bad.clone())).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad}: {e}");
        assert!(e.message().contains(text), "{bad}: {e}");
    }
    assert!(serde_json::from_value::<PruneOptions>(json!({"statuses": ["completed"]})).is_err());
}

#[test]
fn max_batches_bounds_one_call_and_the_next_goes_on() {
    let db = TestDb::new(json!({"enable_task_history": false}));
    db.register("r", any_object());
    bulk_finished(&db, 10);
    let first = db
        .client
        .prune(&options(
            json!({"older_than_seconds": 60, "batch_size": 3, "max_batches": 2}),
        ))
        .unwrap();
    assert_eq!((first.tasks, first.batches, first.done), (6, 2, false));
    let rest = db
        .client
        .prune(&options(json!({"older_than_seconds": 60, "batch_size": 3})))
        .unwrap();
    assert_eq!((rest.tasks, rest.done), (4, true));
}

/// `count` completed tasks of type `r`, finished a day ago, each with two history rows, made
/// with plain SQL (the server's sequence engine, SQLite's recursive CTE) so that large numbers
/// are quick.
fn bulk_finished(db: &TestDb, count: u64) {
    let tasks = match db.engine {
        Engine::Mysql => format!(
            "INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, attempts, \
               result_json, completed_at, created_at) \
             SELECT (SELECT id FROM task_types WHERE name = 'r'), 'completed', \
               CONCAT('{{\"old\":', seq, '}}'), CONCAT('old-', seq), CONCAT('old-', seq), 1, '1', \
               NOW(6) - INTERVAL 1 DAY, NOW(6) - INTERVAL 1 DAY FROM seq_1_to_{count}"
        ),
        Engine::Sqlite => {
            let day_ago = common::now_micros() - 86_400_000_000;
            format!(
                "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {count}) \
                 INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, \
                   attempts, result_json, completed_at, created_at, updated_at, run_at) \
                 SELECT (SELECT id FROM task_types WHERE name = 'r'), 'completed', \
                   '{{\"old\":' || n || '}}', 'old-' || n, 'old-' || n, 1, '1', \
                   {day_ago}, {day_ago}, {day_ago}, {day_ago} FROM seq"
            )
        }
    };
    db.sql_exec(&format!(
        "{tasks}; \
         INSERT INTO task_history (task_id, status_change, worker_id, created_at) \
         SELECT id, 'claimed', 'old', completed_at FROM tasks WHERE status = 'completed'; \
         INSERT INTO task_history (task_id, status_change, worker_id, created_at) \
         SELECT id, 'completed', 'old', completed_at FROM tasks WHERE status = 'completed'"
    ));
}

#[test]
fn prune_of_200000_finished_tasks_runs_while_workers_keep_draining() {
    let finished: u64 = std::env::var("TM_PRUNE_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let db = TestDb::new(json!({"pool_max_connections": 16}));
    db.register("r", any_object());
    let started = Instant::now();
    bulk_finished(&db, finished);
    eprintln!(
        "made {finished} finished tasks in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let pending = 2_000;
    let items: Vec<BatchItem> = (0..pending)
        .map(|n| from(json!({"type": "r", "params": {"n": n}})))
        .collect();
    for chunk in items.chunks(1000) {
        db.client.enqueue_batch(chunk).unwrap();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(Mutex::new(0u64));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (client, stop, errors, done) = (
                db.client.clone(),
                stop.clone(),
                errors.clone(),
                done.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match client.claim(&format!("w{w}"), &from(json!({"limit": 5}))) {
                        Ok(tasks) if tasks.is_empty() => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        Ok(tasks) => {
                            for t in tasks {
                                match client.complete(t.id, &t.lease_token, &json!(true)) {
                                    Ok(_) => *done.lock().unwrap() += 1,
                                    Err(e) => errors.lock().unwrap().push(e.to_string()),
                                }
                            }
                        }
                        Err(e) => errors.lock().unwrap().push(e.to_string()),
                    }
                }
            })
        })
        .collect();

    let started = Instant::now();
    let mut lines = 0;
    let report = db
        .client
        .prune_with_progress(
            &options(json!({"older_than_seconds": 3600, "batch_size": 1000})),
            |r| {
                if r.batches % 50 == 0 {
                    lines += 1;
                    eprintln!("pruned {} tasks, {} history rows", r.tasks, r.history);
                }
            },
        )
        .unwrap();
    let took = started.elapsed().as_secs_f64();
    while *done.lock().unwrap() < pending && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let errors = errors.lock().unwrap();
    eprintln!(
        "pruned {} tasks and {} history rows in {took:.1}s ({:.0} tasks/s) in {} batches while \
         4 workers completed {} tasks; worker errors: {}",
        report.tasks,
        report.history,
        report.tasks as f64 / took,
        report.batches,
        done.lock().unwrap(),
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "workers saw errors during the prune: {errors:?}"
    );
    assert_eq!((report.tasks, report.history), (finished, 2 * finished));
    assert!(report.done && lines > 0);
    assert_eq!(*done.lock().unwrap(), pending);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM tasks WHERE params_json LIKE '{\"old\"%'"),
        0
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM tasks WHERE status = 'completed'"),
        pending as i64
    );
}

#[test]
fn stats_say_what_an_operator_needs() {
    let db = TestDb::new(json!({}));
    db.register("s.mail", any_object());
    db.register("s.idle", any_object());
    for n in 0..5 {
        db.enqueue("s.mail", json!({"n": n}));
    }
    db.set_time("created_at", -90.0, "TRUE");
    let a = db.claim_one("alpha");
    db.client.complete(a.id, &a.lease_token, &json!(1)).unwrap();
    let b = db.claim_one("beta");
    db.client
        .fail(b.id, &b.lease_token, "x", &from(json!({"retry": false})))
        .unwrap();
    let c = db.claim_one("beta");
    // c's lease ran out a moment ago and is not recovered yet.
    db.set_time("lease_expires_at", -1.0, &format!("id = {}", c.id));
    // One completion 10 minutes ago.
    db.set_time(
        "completed_at",
        -(10.0 * 60.0 + 5.0),
        &format!("id = {}", a.id),
    );
    let stats = db.client.stats().unwrap();
    assert_eq!(stats.types["s.mail"].pending, 2);
    assert_eq!(stats.types["s.idle"].get(Status::Pending), 0);
    assert_eq!(stats.totals.claimed, 1);
    let oldest = stats.queue["s.mail"].oldest_pending_seconds.unwrap();
    assert!((89.0..200.0).contains(&oldest), "{oldest}");
    assert_eq!(stats.queue["s.mail"].expired_leases, 1);
    let completed = &stats.throughput["s.mail"].completed_per_minute;
    assert_eq!(completed.len(), 60);
    assert_eq!(completed[10], 1, "{completed:?}");
    assert_eq!(stats.throughput["s.mail"].failed_per_minute[0], 1);
    let beta = stats
        .workers
        .iter()
        .find(|w| w.worker_id == "beta")
        .unwrap();
    assert_eq!((beta.claims_last_hour, beta.holding), (2, 1));
    assert!(
        stats
            .workers
            .iter()
            .any(|w| w.worker_id == "alpha" && w.holding == 0)
    );

    let text = db.client.metrics().unwrap();
    assert!(
        text.contains("taskmanager_tasks{type=\"s.mail\",status=\"pending\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("taskmanager_expired_leases{type=\"s.mail\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("taskmanager_finished_last_hour{type=\"s.mail\",status=\"completed\"} 1")
    );
    assert!(text.contains("taskmanager_worker_holding{worker=\"beta\"} 1"));
}
