//! The database server restarted, and killed with SIGKILL and restarted (InnoDB recovery),
//! while workers drain the queue: Rust threads, and a PHP and a Python worker process
//! (`tests/soak/worker.*` with `--through-faults`). The test runs its own server instance (its
//! own data directory and socket), so it never disturbs a shared one.
//!
//! Pass: every task ends completed exactly once (one `completed` history row each), only
//! TM_CONNECTION and TM_OUTCOME_UNKNOWN reach the workers, which carry on by themselves, and no
//! call blocks longer than its timeouts.

mod common;

use common::own_server::OwnServer;
use common::{any_object, from};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use taskmanager::*;

const TASKS: usize = 1500;
const WORKERS: usize = 2;
/// Connect and I/O timeouts of the workers' client: no call may block much longer.
const TIMEOUT_SECS: u64 = 3;

fn is_fault(e: &Error) -> bool {
    matches!(e.code(), Code::Connection | Code::OutcomeUnknown)
}

#[test]
fn workers_drain_through_a_restart_and_a_crash_and_finish_every_task_exactly_once() {
    use mysql::prelude::Queryable;
    let dir = std::env::temp_dir().join(format!("tm-own-server-{}", std::process::id()));
    let mut server = OwnServer::install(&dir, vec!["--skip-networking".into()]);
    server.start();
    server
        .admin()
        .unwrap()
        .query_drop("CREATE DATABASE q")
        .unwrap();
    let config = |extra: serde_json::Value| {
        let mut map = json!({"db_socket": server.socket(), "db_user": "root", "db_name": "q",
            "connect_timeout": TIMEOUT_SECS, "io_timeout": TIMEOUT_SECS, "pool_max_connections": 8});
        for (k, v) in extra.as_object().unwrap() {
            map[k] = v.clone();
        }
        Config::from_map(map.as_object().unwrap()).unwrap()
    };
    let client = Arc::new(Client::open(config(json!({}))).unwrap());
    client.migrate().unwrap();
    client
        .register_type(&from(json!({"name": "soak", "param_schema": any_object()})))
        .unwrap();
    for chunk in (0..TASKS).collect::<Vec<_>>().chunks(500) {
        let items: Vec<BatchItem> = chunk
            .iter()
            .map(|n| from(json!({"type": "soak", "params": {"n": n, "dead": false, "fail": 0}})))
            .collect();
        client.enqueue_batch(&items).unwrap();
    }

    // The PHP and Python workers: separate processes, repeating calls through the faults.
    let stop_file = server.dir.join("stop");
    // Short leases, as for the Rust workers: a claim whose answer was lost comes back soon.
    let process_config = json!({"db_socket": server.socket(), "db_user": "root", "db_name": "q",
        "connect_timeout": TIMEOUT_SECS, "io_timeout": TIMEOUT_SECS, "task_claim_timeout": 2})
    .to_string();
    let through = ["--through-faults"];
    let processes = [
        common::worker_process(
            "php",
            &["-d", "ffi.enable=1", "tests/soak/worker.php"],
            &process_config,
            &stop_file,
            "php",
            &through,
        ),
        common::worker_process(
            "python3",
            &["tests/soak/worker.py"],
            &process_config,
            &stop_file,
            "python",
            &through,
        ),
    ];

    let done = Arc::new(AtomicBool::new(false));
    let longest_call_ms = Arc::new(AtomicU64::new(0));
    let faults = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (client, done, longest, faults) = (
                client.clone(),
                done.clone(),
                longest_call_ms.clone(),
                faults.clone(),
            );
            std::thread::spawn(move || {
                // A short lease: a claim whose answer was lost comes back soon.
                let claim: ClaimOptions = from(json!({"lease_seconds": 2}));
                let timed = |started: Instant| {
                    longest.fetch_max(started.elapsed().as_millis() as u64, Ordering::SeqCst);
                };
                while !done.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let tasks = match client.claim(&format!("w{w}"), &claim) {
                        Ok(tasks) => tasks,
                        Err(e) if is_fault(&e) => {
                            faults.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                        Err(e) => panic!("claim: {e}"),
                    };
                    timed(started);
                    let Some(task) = tasks.into_iter().next() else {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    // Repeat the complete until it is known to have happened.
                    loop {
                        let started = Instant::now();
                        let outcome = client.complete(task.id, &task.lease_token, &json!(w));
                        timed(started);
                        match outcome {
                            Ok(_) => break,
                            // The lease ran out meanwhile; another worker runs the task.
                            Err(e) if e.code() == Code::LeaseLost => break,
                            Err(e) if is_fault(&e) => {
                                faults.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            Err(e) => panic!("complete: {e}"),
                        }
                    }
                }
            })
        })
        .collect();

    // Let the drain get going, then restart cleanly, then crash and restart.
    server.wait_for_drain("q", (TASKS * 3 / 4) as i64);
    // While the server is down, wait until the workers have met the outage (their fault count
    // grew), so every restart is one they went through, however fast the machine.
    let outage_seen = |before: u64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while faults.load(Ordering::SeqCst) <= before {
            assert!(
                Instant::now() < deadline,
                "no worker noticed the server going down"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let before = faults.load(Ordering::SeqCst);
    server.stop(libc::SIGTERM);
    outage_seen(before);
    server.start();
    server.wait_for_drain("q", (TASKS / 3) as i64);
    let before = faults.load(Ordering::SeqCst);
    server.stop(libc::SIGKILL);
    outage_seen(before);
    server.start();
    server.wait_for_drain("q", 0);
    done.store(true, Ordering::SeqCst);
    std::fs::write(&stop_file, b"stop").unwrap();
    for worker in workers {
        worker.join().expect("a worker thread panicked");
    }
    for process in processes {
        let steps = common::finish_worker(process);
        assert!(steps > 0, "a PHP or Python worker did no work");
    }

    server.assert_completed_exactly_once("q", TASKS);
    let longest = Duration::from_millis(longest_call_ms.load(Ordering::SeqCst));
    assert!(
        longest < Duration::from_secs(3 * TIMEOUT_SECS + 2),
        "a call blocked for {longest:?}"
    );
    eprintln!(
        "{TASKS} tasks, {WORKERS} workers: {} faults reached the workers, longest call {longest:?}",
        faults.load(Ordering::SeqCst)
    );
}
