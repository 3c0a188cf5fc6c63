//! A 3-node MariaDB Galera cluster on loopback ports, of this test's own.
//!
//! 1. Single writer: every worker lists the nodes in the same order, so all write to node 1;
//!    node 1 is killed mid-drain and the workers' new connections fail over to node 2.
//! 2. Writers on every node: workers list the surviving nodes in different orders, so claims
//!    on different nodes conflict at COMMIT (certification, error 1213): the library retries
//!    them and never surfaces them.
//!
//! Pass: every task is completed exactly once (one `completed` history row each), and only
//! TM_CONNECTION / TM_OUTCOME_UNKNOWN (from the killed node) reach the workers.

mod common;

use common::own_server::OwnServer;
use common::{any_object, from};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use taskmanager::*;

const TASKS_PER_PHASE: usize = 600;
const GALERA: &str = "/usr/lib/galera/libgalera_smm.so";

/// Node `i` (1..=3): its SQL port and its Galera ports, all on 127.0.0.1. They lie below the
/// kernel's ephemeral range (32768-60999 on Linux), where outgoing connections get their
/// local ports, so none can be taken by chance; the process id spreads concurrent runs.
fn ports(i: u16) -> (u16, u16, u16, u16) {
    let base = FIRST_PORT + (std::process::id() % PORT_BLOCKS) as u16 * 20;
    (base + i, base + 4 + i, base + 8 + i, base + 12 + i)
}

const FIRST_PORT: u16 = 20000;
/// Blocks of 20 ports from [`FIRST_PORT`] that end below 32768.
const PORT_BLOCKS: u32 = (32768 - FIRST_PORT as u32) / 20;

#[test]
fn cluster_ports_stay_out_of_the_ephemeral_range() {
    let (first, last) = (FIRST_PORT, FIRST_PORT + (PORT_BLOCKS - 1) as u16 * 20 + 15);
    assert!(first >= 1024 && last < 32768, "{first}..={last}");
    for i in 1..=3 {
        let (a, b, c, d) = ports(i);
        assert!([a, b, c, d].iter().all(|p| (first..=last).contains(p)));
    }
}

fn cluster() -> Vec<OwnServer> {
    assert!(
        std::path::Path::new(GALERA).exists(),
        "{GALERA} is missing: the package galera-4 (installed with mariadb-server) is needed"
    );
    let members: Vec<String> = (1..=3)
        .map(|i| format!("127.0.0.1:{}", ports(i).1))
        .collect();
    let root = std::env::temp_dir().join(format!("tm-galera-{}", std::process::id()));
    let mut nodes: Vec<OwnServer> = (1..=3)
        .map(|i| {
            let (sql, group, ist, sst) = ports(i);
            OwnServer::install(
                &root.join(format!("n{i}")),
                vec![
                    format!("--port={sql}"),
                    "--bind-address=127.0.0.1".into(),
                    "--binlog-format=ROW".into(),
                    "--innodb-autoinc-lock-mode=2".into(),
                    "--wsrep-on=ON".into(),
                    format!("--wsrep-provider={GALERA}"),
                    format!("--wsrep-cluster-name=tm-test-{}", std::process::id()),
                    format!("--wsrep-cluster-address=gcomm://{}", members.join(",")),
                    format!("--wsrep-node-address=127.0.0.1:{group}"),
                    format!("--wsrep-node-name=n{i}"),
                    format!(
                        "--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{group};ist.recv_addr=127.0.0.1:{ist}"
                    ),
                    "--wsrep-sst-method=rsync".into(),
                    format!("--wsrep-sst-receive-address=127.0.0.1:{sst}"),
                ],
            )
        })
        .collect();
    nodes[0].start_with(&["--wsrep-new-cluster"]);
    nodes[1].start();
    nodes[2].start();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let synced = nodes.iter().all(|n| {
            use mysql::prelude::Queryable;
            n.admin()
                .ok()
                .and_then(|mut c| {
                    c.query_first::<(String, String), _>(
                        "SHOW STATUS WHERE Variable_name IN ('wsrep_local_state_comment')",
                    )
                    .ok()
                    .flatten()
                })
                .is_some_and(|(_, state)| state == "Synced")
        });
        if synced {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster did not sync");
        std::thread::sleep(Duration::from_millis(200));
    }
    nodes
}

fn is_fault(e: &Error) -> bool {
    matches!(e.code(), Code::Connection | Code::OutcomeUnknown)
}

/// Workers, one per host order, drain until `done`; returns the faults they saw. Any other
/// error fails the test.
fn drain(
    orders: &[Vec<u16>],
    done: &Arc<AtomicBool>,
    faults: &Arc<AtomicU64>,
) -> Vec<std::thread::JoinHandle<()>> {
    orders
        .iter()
        .enumerate()
        .map(|(w, order)| {
            let hosts: Vec<String> = order
                .iter()
                .map(|i| format!("127.0.0.1:{}", ports(*i).0))
                .collect();
            let config = json!({"db_hosts": hosts, "db_user": "tm", "db_name": "gq",
                "connect_timeout": 3, "io_timeout": 5});
            let client =
                Client::open(Config::from_map(config.as_object().unwrap()).unwrap()).unwrap();
            let (done, faults) = (done.clone(), faults.clone());
            std::thread::spawn(move || {
                let claim: ClaimOptions = from(json!({"lease_seconds": 3}));
                while !done.load(Ordering::SeqCst) {
                    let tasks = match client.claim(&format!("w{w}"), &claim) {
                        Ok(tasks) => tasks,
                        Err(e) if is_fault(&e) => {
                            faults.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                        Err(e) => panic!("claim on worker {w}: {e}"),
                    };
                    let Some(task) = tasks.into_iter().next() else {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    loop {
                        match client.complete(task.id, &task.lease_token, &json!(w)) {
                            Ok(_) => break,
                            Err(e) if e.code() == Code::LeaseLost => break,
                            Err(e) if is_fault(&e) => {
                                faults.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            Err(e) => panic!("complete on worker {w}: {e}"),
                        }
                    }
                }
            })
        })
        .collect()
}

#[test]
fn a_galera_cluster_loses_nothing_and_does_nothing_twice() {
    use mysql::prelude::Queryable;
    let mut nodes = cluster();
    nodes[0]
        .admin()
        .unwrap()
        .query_drop(
            "CREATE DATABASE gq; CREATE USER 'tm'@'127.0.0.1'; GRANT ALL ON gq.* TO 'tm'@'127.0.0.1'",
        )
        .unwrap();
    let owner = Client::open(
        Config::from_map(
            json!({"db_host": format!("127.0.0.1:{}", ports(1).0), "db_user": "tm", "db_name": "gq"})
                .as_object()
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    owner.migrate().unwrap();
    owner
        .register_type(&from(json!({"name": "g", "param_schema": any_object()})))
        .unwrap();
    let enqueue = |phase: usize| {
        let items: Vec<BatchItem> = (0..TASKS_PER_PHASE)
            .map(|n| from(json!({"type": "g", "params": {"phase": phase, "n": n}})))
            .collect();
        for chunk in items.chunks(300) {
            owner.enqueue_batch(chunk).unwrap();
        }
    };
    let faults = Arc::new(AtomicU64::new(0));

    // 1. Single writer, then the writer dies.
    enqueue(1);
    let done = Arc::new(AtomicBool::new(false));
    let workers = drain(&vec![vec![1, 2, 3]; 4], &done, &faults);
    nodes[1].wait_for_drain("gq", (TASKS_PER_PHASE / 2) as i64);
    nodes[0].stop(libc::SIGKILL);
    nodes[1].wait_for_drain("gq", 0);
    done.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("a worker failed");
    }
    let after_failover = faults.load(Ordering::SeqCst);

    // 2. Writers on both surviving nodes at once.
    let enqueue_on_2 = Client::open(
        Config::from_map(
            json!({"db_host": format!("127.0.0.1:{}", ports(2).0), "db_user": "tm", "db_name": "gq"})
                .as_object()
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let items: Vec<BatchItem> = (0..TASKS_PER_PHASE)
        .map(|n| from(json!({"type": "g", "params": {"phase": 2, "n": n}})))
        .collect();
    for chunk in items.chunks(300) {
        enqueue_on_2.enqueue_batch(chunk).unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let workers = drain(
        &[vec![2, 3], vec![3, 2], vec![2, 3], vec![3, 2]],
        &done,
        &faults,
    );
    nodes[1].wait_for_drain("gq", 0);
    done.store(true, Ordering::SeqCst);
    for w in workers {
        w.join()
            .expect("a worker failed (a certification conflict reached it?)");
    }

    nodes[1].assert_completed_exactly_once("gq", 2 * TASKS_PER_PHASE);
    assert_eq!(
        faults.load(Ordering::SeqCst),
        after_failover,
        "with both nodes up, no fault may reach a worker"
    );
    // How many commits the cluster refused in certification (each retried by the library).
    let conflicts: i64 = nodes[1..]
        .iter()
        .map(|n| {
            let rows: Vec<(String, String)> = n
                .admin()
                .unwrap()
                .query("SHOW STATUS WHERE Variable_name IN ('wsrep_local_cert_failures', 'wsrep_local_bf_aborts')")
                .unwrap();
            rows.iter().map(|(_, v)| v.parse::<i64>().unwrap_or(0)).sum::<i64>()
        })
        .sum();
    eprintln!(
        "{} tasks on 3 nodes, node 1 killed mid-drain: {after_failover} connection faults reached \
         the workers; {conflicts} certification conflicts and brute-force aborts on the writers, \
         none surfaced",
        2 * TASKS_PER_PHASE
    );
}
