//! A network partition between the library and the server: a proxy in the test stops
//! forwarding (in one or both directions) without closing anything. A blocked call must return
//! within `io_timeout` plus a margin, say `TM_OUTCOME_UNKNOWN` whenever its commit may have
//! happened, never reuse the connection that timed out (late answers would be read as replies
//! to later statements), and a repeat after the partition must finish the task exactly once.

mod common;

use common::{TestDb, any_object};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use taskmanager::*;

/// Forwards connections to the server; each direction can be held: bytes are still read (the
/// sender sees no error) but kept until the direction is released.
struct Proxy {
    port: u16,
    to_server: Arc<AtomicBool>,
    to_client: Arc<AtomicBool>,
    /// Proxied connections the server has not closed yet. The server closes one only after it
    /// has read, and acted on, every byte the client sent on it before closing its end.
    open_at_server: Arc<AtomicUsize>,
}

impl Proxy {
    fn start() -> Proxy {
        let (host, port, ..) = common::server();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Proxy {
            port: listener.local_addr().unwrap().port(),
            to_server: Arc::new(AtomicBool::new(false)),
            to_client: Arc::new(AtomicBool::new(false)),
            open_at_server: Arc::new(AtomicUsize::new(0)),
        };
        let (up, down) = (proxy.to_server.clone(), proxy.to_client.clone());
        let open = proxy.open_at_server.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let server = TcpStream::connect((host.as_str(), port)).unwrap();
                open.fetch_add(1, Ordering::SeqCst);
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (up, down, open) = (up.clone(), down.clone(), open.clone());
                std::thread::spawn(move || pump_to_server(client, server, up));
                std::thread::spawn(move || {
                    pump_to_client(s2, c2, down);
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        proxy
    }

    /// Waits until the server has closed every proxied connection but `live` (those the
    /// client still holds): every request held in a partition, however late, has then reached
    /// the server and been acted on, so what a test counts next is final.
    fn wait_for_late_writes(&self, live: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.open_at_server.load(Ordering::SeqCst) > live {
            assert!(
                Instant::now() < deadline,
                "{} proxied connections still open at the server, {live} expected",
                self.open_at_server.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn hold(&self, to_server: bool, to_client: bool) {
        self.to_server.store(to_server, Ordering::SeqCst);
        self.to_client.store(to_client, Ordering::SeqCst);
    }

    /// Cuts the link a random moment (up to 3 ms) from now, in one or both directions. Join
    /// the handle, then `hold(false, false)` heals it.
    fn cut_soon(&self, random: &mut Random) -> std::thread::JoinHandle<()> {
        let directions = random.below(3);
        let delay = Duration::from_micros(random.below(3000));
        let (up, down) = (self.to_server.clone(), self.to_client.clone());
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            up.store(directions != 1, Ordering::SeqCst);
            down.store(directions != 0, Ordering::SeqCst);
        })
    }
}

/// A repeatable pseudo-random sequence (xorshift): a failing run replays exactly.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Client to server. When the client closes, only the server's write half is shut: the server
/// reads every held byte, then the end of the stream, and closes its end when it has done.
fn pump_to_server(mut client: TcpStream, mut server: TcpStream, held: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(n) = client.read(&mut buf) {
        if n == 0 {
            break;
        }
        while held.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Write);
}

/// Server to client, until the server closes its end. Answers to a client that has gone are
/// read and dropped, so the server is never stuck writing them and always gets to close.
fn pump_to_client(mut server: TcpStream, mut client: TcpStream, held: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 1 << 16];
    let mut client_gone = false;
    while let Ok(n) = server.read(&mut buf) {
        if n == 0 {
            break;
        }
        while held.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        client_gone = client_gone || client.write_all(&buf[..n]).is_err();
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
}

const IO_TIMEOUT_SECS: u64 = 1;

/// A client whose connections go through `proxy`, with a short I/O timeout.
fn client_through(db: &TestDb, proxy: &Proxy) -> Client {
    db.client_with(json!({"db_host": "127.0.0.1", "db_port": proxy.port,
        "io_timeout": IO_TIMEOUT_SECS, "pool_max_connections": 1}))
}

/// A database with `1 + more` tasks, a proxy, a client through it, and the first task claimed
/// through the proxy.
fn holding_a_task(more: i64) -> (TestDb, Proxy, Client, ClaimedTask) {
    let db = TestDb::server(json!({}));
    db.register("cut", any_object());
    let first = db.enqueue("cut", json!({}));
    for n in 1..=more {
        assert_eq!(db.enqueue("cut", json!({"n": n})), first + n);
    }
    let proxy = Proxy::start();
    let worker = client_through(&db, &proxy);
    let task = worker
        .claim("w", &ClaimOptions::default())
        .unwrap()
        .remove(0);
    assert_eq!(task.id, first);
    (db, proxy, worker, task)
}

fn completed_rows(db: &TestDb, id: i64) -> i64 {
    db.count(&format!(
        "SELECT COUNT(*) FROM task_history WHERE task_id = {id} AND status_change = 'completed'"
    ))
}

#[test]
fn a_complete_lost_in_a_partition_is_bounded_and_repeats_to_exactly_once() {
    let (db, proxy, worker, task) = holding_a_task(0);
    let id = task.id;

    // Nothing gets through either way: the call gives up within the timeout and a margin.
    proxy.hold(true, true);
    let started = Instant::now();
    let e = worker
        .complete(id, &task.lease_token, &json!("r"))
        .unwrap_err();
    let blocked = started.elapsed();
    assert!(
        blocked < Duration::from_secs(IO_TIMEOUT_SECS + 2),
        "blocked {blocked:?}"
    );
    assert!(
        matches!(e.code(), Code::OutcomeUnknown | Code::Connection),
        "{e}"
    );

    // The network heals; the held request may still reach the server late. Repeating the
    // call is safe, the task ends completed exactly once, and the connection that timed out
    // was not reused (no reply out of sync).
    proxy.hold(false, false);
    let again = worker.complete(id, &task.lease_token, &json!("r")).unwrap();
    assert_eq!(again.status, "completed");
    // The pool holds one connection at most: every other one is done with at the server.
    proxy.wait_for_late_writes(1);
    assert_eq!(db.client.get_task(id).unwrap().status, "completed");
    assert_eq!(completed_rows(&db, id), 1);
    assert!(
        worker
            .claim("w", &ClaimOptions::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_lost_answer_after_the_commit_is_an_unknown_outcome_not_a_connection_error() {
    let (db, proxy, worker, task) = holding_a_task(1);
    let (id, other) = (task.id, task.id + 1);

    // The request reaches the server and commits; only the answer is held.
    proxy.hold(false, true);
    let started = Instant::now();
    let e = worker
        .complete(id, &task.lease_token, &json!("r"))
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(IO_TIMEOUT_SECS + 2));
    assert_eq!(e.code(), Code::OutcomeUnknown, "{e}");
    // It did commit: "unknown" was the honest answer, "connection failed" would not have been.
    assert_eq!(db.client.get_task(id).unwrap().status, "completed");

    // The late answer is never read as the reply to a later statement.
    proxy.hold(false, false);
    let again = worker.complete(id, &task.lease_token, &json!("r")).unwrap();
    assert!(again.repeated);
    assert_eq!(completed_rows(&db, id), 1);
    let next = worker.claim("w", &ClaimOptions::default()).unwrap();
    assert_eq!(next.iter().map(|t| t.id).collect::<Vec<_>>(), [other]);
    worker
        .complete(other, &next[0].lease_token, &json!("r2"))
        .unwrap();
    assert_eq!(db.client.get_task(other).unwrap().result, json!("r2"));
}

#[test]
fn a_claim_answer_lost_in_a_partition_leaves_its_task_to_come_back_after_the_lease() {
    let (db, proxy, worker, first) = holding_a_task(1);
    worker
        .complete(first.id, &first.lease_token, &json!(1))
        .unwrap();
    let next = first.id + 1;

    // The claim commits on the server, but its answer never arrives.
    proxy.hold(false, true);
    let short: ClaimOptions = common::from(json!({"lease_seconds": 1}));
    let e = worker.claim("w", &short).unwrap_err();
    assert_eq!(e.code(), Code::OutcomeUnknown, "{e}");
    assert_eq!(db.client.get_task(next).unwrap().status, "claimed");

    // Nobody holds the answer's lease token: the task comes back when the lease runs out (run
    // out here by moving its end into the past, not by waiting for it) and is then finished
    // exactly once.
    proxy.hold(false, false);
    db.sql_exec(&format!(
        "UPDATE tasks SET lease_expires_at = NOW(6) - INTERVAL 1 SECOND WHERE id = {next}"
    ));
    let again = worker.claim("w", &short).unwrap();
    assert_eq!(
        again.iter().map(|t| (t.id, t.attempts)).collect::<Vec<_>>(),
        [(next, 2)]
    );
    worker
        .complete(next, &again[0].lease_token, &json!(2))
        .unwrap();
    assert_eq!(completed_rows(&db, next), 1);
}

#[test]
fn partitions_at_random_moments_keep_every_promise() {
    let (db, proxy, worker, mut task) = holding_a_task(12);
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    let mut finished = 0;
    while finished < 12 {
        // Cut the link a random moment after the complete starts, in one or both directions.
        let cutter = proxy.cut_soon(&mut random);
        let started = Instant::now();
        let first_try = worker.complete(task.id, &task.lease_token, &json!("r"));
        assert!(started.elapsed() < Duration::from_secs(IO_TIMEOUT_SECS + 2));
        cutter.join().unwrap();
        proxy.hold(false, false);
        if let Err(e) = first_try {
            assert!(
                matches!(e.code(), Code::OutcomeUnknown | Code::Connection),
                "{e}"
            );
            // Repeating after the partition is always safe.
            worker
                .complete(task.id, &task.lease_token, &json!("r"))
                .unwrap();
        }
        proxy.wait_for_late_writes(1);
        assert_eq!(db.client.get_task(task.id).unwrap().status, "completed");
        assert_eq!(completed_rows(&db, task.id), 1, "task {}", task.id);
        finished += 1;
        if finished < 12 {
            task = loop {
                match worker.claim("w", &ClaimOptions::default()) {
                    Ok(mut got) if !got.is_empty() => break got.remove(0),
                    Ok(_) => panic!("a task went missing"),
                    Err(e) if matches!(e.code(), Code::OutcomeUnknown | Code::Connection) => {}
                    Err(e) => panic!("{e}"),
                }
            };
        }
    }
}

#[test]
fn enqueues_cut_at_random_moments_create_each_task_once_with_one_history_row() {
    let db = TestDb::server(json!({}));
    db.register("cut", any_object());
    let proxy = Proxy::start();
    let producer = client_through(&db, &proxy);
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let (mut ids, mut cut) = (Vec::new(), 0);
    for n in 0..12 {
        let cutter = proxy.cut_soon(&mut random);
        let params = json!({"n": n});
        let first_try = producer.enqueue("cut", &params, &EnqueueOptions::default());
        cutter.join().unwrap();
        proxy.hold(false, false);
        let enqueued = match first_try {
            Ok(enqueued) => {
                assert!(!enqueued.deduplicated, "{enqueued:?}");
                enqueued
            }
            Err(e) => {
                assert!(
                    matches!(e.code(), Code::OutcomeUnknown | Code::Connection),
                    "{e}"
                );
                cut += 1;
                // Repeating is safe: the same params find the task if the first try made it.
                producer
                    .enqueue("cut", &params, &EnqueueOptions::default())
                    .unwrap()
            }
        };
        ids.push(enqueued.id);
    }
    assert!(cut > 0, "no enqueue was cut: the test proved nothing");
    // A late first try may still be on its way: count once the server has acted on it.
    proxy.wait_for_late_writes(1);
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 12);
    let distinct: std::collections::HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 12);
    for id in ids {
        assert_eq!(
            db.count(&format!(
                "SELECT COUNT(*) FROM task_history WHERE task_id = {id} AND status_change = 'created'"
            )),
            1,
            "task {id}"
        );
    }
}
