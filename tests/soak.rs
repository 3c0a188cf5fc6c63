//! Soak: workers in Rust, PHP (FFI) and Python (ctypes) share one queue while a producer
//! enqueues; some tasks fail and retry, some die at once. Pass: every task ends completed or
//! failed exactly as its rule says, with exactly one terminal history row, nothing is left
//! claimed, and no worker meets an error it should never see (a deadlock or lock wait would
//! end the PHP and Python workers with a non-zero status and fail the Rust ones).
//!
//! CI runs a short profile; a long one:  TM_SOAK_TASKS=50000 cargo test --release --test soak

mod common;

use common::{TestDb, from};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use taskmanager::*;

/// Task `n`'s rule: every 10th dies at once, every 3rd fails once before it succeeds.
fn rule(n: usize) -> (bool, u32) {
    (n % 10 == 9, if n % 3 == 1 { 1 } else { 0 })
}

#[test]
fn rust_php_and_python_workers_share_a_queue_and_every_task_ends_by_its_rule() {
    let tasks: usize = std::env::var("TM_SOAK_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let db = TestDb::server(json!({}));
    db.register(
        "soak",
        json!({"type": "object", "required": ["n", "dead", "fail"],
            "properties": {"n": {"type": "integer"}, "dead": {"type": "boolean"}, "fail": {"type": "integer"}}}),
    );
    let stop_file = std::env::temp_dir().join(format!("tm-soak-stop-{}", std::process::id()));
    let _ = std::fs::remove_file(&stop_file);
    let (host, port, user, pass) = common::server();
    let config = json!({"db_host": host, "db_port": port, "db_user": user, "db_pass": pass,
        "db_name": db.name, "max_task_attempts": 3})
    .to_string();

    let php = ["-d", "ffi.enable=1", "tests/soak/worker.php"];
    let python = ["tests/soak/worker.py"];
    let others = vec![
        common::worker_process("php", &php, &config, &stop_file, "php-1", &[]),
        common::worker_process("php", &php, &config, &stop_file, "php-2", &[]),
        common::worker_process("python3", &python, &config, &stop_file, "py-1", &[]),
        common::worker_process("python3", &python, &config, &stop_file, "py-2", &[]),
    ];

    let stop = Arc::new(AtomicBool::new(false));
    let rust_workers: Vec<_> = (0..2)
        .map(|w| {
            let client = db.client_with(json!({"max_task_attempts": 3}));
            let stop = stop.clone();
            std::thread::spawn(move || {
                let claim: ClaimOptions = from(json!({"types": ["soak"], "limit": 2}));
                loop {
                    let claimed = client.claim(&format!("rust-{w}"), &claim).unwrap();
                    if claimed.is_empty() {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        continue;
                    }
                    for t in claimed {
                        let (dead, fails) =
                            (t.params["dead"] == true, t.params["fail"].as_u64().unwrap());
                        let outcome = if dead {
                            client
                                .fail(
                                    t.id,
                                    &t.lease_token,
                                    "dead on arrival",
                                    &from(json!({"retry": false})),
                                )
                                .map(drop)
                        } else if u64::from(t.attempts) <= fails {
                            client
                                .fail(
                                    t.id,
                                    &t.lease_token,
                                    "not yet",
                                    &from(json!({"retry": true, "retry_in_seconds": 0})),
                                )
                                .map(drop)
                        } else {
                            client
                                .complete(t.id, &t.lease_token, &json!({"by": w}))
                                .map(drop)
                        };
                        match outcome {
                            Ok(()) => {}
                            Err(e) if e.code() == Code::LeaseLost => {}
                            Err(e) => panic!("rust worker {w}: {e}"),
                        }
                    }
                }
            })
        })
        .collect();

    // The producer enqueues while the workers run.
    for chunk in (0..tasks).collect::<Vec<_>>().chunks(250) {
        let items: Vec<BatchItem> = chunk
            .iter()
            .map(|&n| {
                let (dead, fail) = rule(n);
                from(json!({"type": "soak", "params": {"n": n, "dead": dead, "fail": fail}}))
            })
            .collect();
        db.client.enqueue_batch(&items).unwrap();
    }
    // Stop once everything has ended (the workers drain what is left first).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while db.count("SELECT COUNT(*) FROM tasks WHERE status IN ('pending', 'claimed')") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the soak did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::fs::write(&stop_file, b"stop").unwrap();
    stop.store(true, Ordering::SeqCst);
    for w in rust_workers {
        w.join().expect("a Rust worker failed");
    }
    let steps_by_others: u64 = others.into_iter().map(common::finish_worker).sum();
    let _ = std::fs::remove_file(&stop_file);

    // Every task ended by its rule, exactly once.
    let rows: Vec<(i64, String, u32)> = {
        use mysql::prelude::Queryable;
        db.sql()
            .query("SELECT CAST(JSON_VALUE(params_json, '$.n') AS SIGNED), status, attempts FROM tasks")
            .unwrap()
    };
    assert_eq!(rows.len(), tasks);
    for (n, status, attempts) in &rows {
        let (dead, fail) = rule(*n as usize);
        let expected = if dead {
            ("failed", 1)
        } else {
            ("completed", fail + 1)
        };
        assert_eq!((status.as_str(), *attempts), expected, "task n={n}");
    }
    let not_once = db.count(
        "SELECT COUNT(*) FROM (SELECT t.id FROM tasks t LEFT JOIN task_history h ON h.task_id = t.id \
         AND h.status_change IN ('completed', 'failed') GROUP BY t.id HAVING COUNT(h.id) <> 1) AS x",
    );
    assert_eq!(
        not_once, 0,
        "tasks without exactly one terminal history row"
    );
    assert!(
        steps_by_others > 0,
        "the PHP and Python workers did no work"
    );
    eprintln!("{tasks} tasks; PHP and Python workers ran {steps_by_others} steps");
}
