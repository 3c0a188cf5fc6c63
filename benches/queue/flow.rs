//! Flow control in the bench (`cargo bench --bench queue -- flow`): what a limit costs a claim
//! on the wire and in throughput (4 workers on a type with `max_running` above the worker
//! count, and with a rate limit it never reaches, beside the same type unlimited), and what
//! waiting claims cost: the round trips per second of N idle waiters, and the time from
//! an enqueue to the waiting claim's return, in the same process and from another one.

use crate::measure::{parallel, show, three};
use crate::proxy::Proxy;
use crate::{Server, claim_opts, ours_drain, ours_enqueue};
use mysql::prelude::Queryable;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use taskmanager::{Client, TypeLimits};

/// A worker's loop that, like a real worker, goes on after an empty claim (a claimer may find
/// a limited type's gate held by another and skip it) until all `total` tasks are done.
fn drain_all(client: &Client, done: &AtomicUsize, total: usize) {
    while done.load(Ordering::SeqCst) < total {
        for t in client.claim("bench", &claim_opts(1)).unwrap() {
            client
                .complete(t.id, &t.lease_token, &serde_json::Value::Null)
                .unwrap();
            done.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn set_limits(client: &Client, limits: serde_json::Value) {
    let limits: TypeLimits = serde_json::from_value(limits).unwrap();
    client.set_type_limits("bench", &limits).unwrap();
}

fn unlimited(client: &Client) {
    set_limits(client, json!({"max_running": null, "rate": null}));
}

pub(crate) fn run(
    server: &Server,
    clients: &[Client],
    raw: &mut mysql::Conn,
    fill: &dyn Fn(&mut mysql::Conn),
    tasks: usize,
) {
    println!("\n## Flow control: a limited type beside the same type unlimited");
    let client = &clients[0];

    // Round trips of a claim on a limited type.
    let proxy = Proxy::start((server.host.clone(), server.port), Duration::ZERO);
    let counted = server.client(proxy.port, true, 1);
    set_limits(client, json!({"max_running": 1000}));
    ours_enqueue(&counted, 1);
    ours_drain(&counted); // warm: learns the limit
    let n = 200;
    ours_enqueue(&counted, n);
    let before = proxy.commands();
    let mut held = Vec::new();
    for _ in 0..n {
        held.extend(counted.claim("w", &claim_opts(1)).unwrap());
    }
    println!(
        "{:<44} {:>6.2} per call",
        "claim (limit 1), type with max_running",
        (proxy.commands() - before) as f64 / n as f64
    );
    for t in held {
        counted
            .complete(t.id, &t.lease_token, &serde_json::Value::Null)
            .unwrap();
    }

    println!(
        "{:<44} {:>24} {:>24} {:>7}",
        "figure", "limited", "unlimited", "ratio"
    );
    let mut drain = |limits: Option<serde_json::Value>| {
        three(|| {
            fill(&mut *raw);
            match &limits {
                Some(l) => set_limits(client, l.clone()),
                None => unlimited(client),
            }
            let done = AtomicUsize::new(0);
            parallel(4, tasks, |w| drain_all(&clients[w], &done, tasks))
        })
    };
    let plain = drain(None);
    let max_running = drain(Some(json!({"max_running": 8, "rate": null})));
    show("drain, 4 workers, max_running 8", max_running, plain);
    let rate = drain(Some(
        json!({"max_running": null, "rate": {"limit": 100_000, "per_seconds": 1}}),
    ));
    show("drain, 4 workers, rate 100,000/s", rate, plain);
    unlimited(client);

    println!("\n## Waiting claims (wait_seconds)");
    fill_empty(raw);
    // The waiters are one process's, connected through a proxy that counts their round trips
    // (the server's own counters would count every other client too).
    let counted = server.client(proxy.port, true, 64);
    for waiters in [1usize, 10, 50] {
        let seconds = 10.0;
        let before = proxy.commands();
        let started = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..waiters {
                s.spawn(|| {
                    let got = counted
                        .claim(
                            "idle",
                            &serde_json::from_value(json!({"wait_seconds": seconds})).unwrap(),
                        )
                        .unwrap();
                    assert!(got.is_empty());
                });
            }
        });
        let per_second = (proxy.commands() - before) as f64 / started.elapsed().as_secs_f64();
        println!(
            "{waiters:>3} idle waiter(s) for {seconds} s: {per_second:>7.1} round trips/s in all, \
             {:>5.2} per waiter",
            per_second / waiters as f64
        );
    }
    // A worker's loop of short waits back to back (the Python worker waits 1 s a claim).
    for wait in [1.0, 3.0] {
        let before = proxy.commands();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            let options = serde_json::from_value(json!({"wait_seconds": wait})).unwrap();
            assert!(counted.claim("idle", &options).unwrap().is_empty());
        }
        let per_second = (proxy.commands() - before) as f64 / started.elapsed().as_secs_f64();
        println!("an idle worker's loop of {wait} s waits:    {per_second:>7.1} round trips/s");
    }
    let other_process = server.client(server.port, true, 3);
    for (name, waiter) in [
        ("same process", client),
        ("another process (its own pool)", &other_process),
    ] {
        let mut latencies = Vec::new();
        for i in 0..5u64 {
            let latency = std::thread::scope(|s| {
                let waiting = s.spawn(|| {
                    let got = waiter
                        .claim(
                            "w",
                            &serde_json::from_value(json!({"wait_seconds": 10})).unwrap(),
                        )
                        .unwrap();
                    (got.len(), Instant::now())
                });
                // Enqueue once the waiter polls at its slowest (once a second), at five points
                // of that second: the latency is what a long-idle worker sees.
                std::thread::sleep(Duration::from_millis(2300 + 200 * i));
                ours_enqueue(client, 1);
                let enqueued = Instant::now();
                let (got, returned) = waiting.join().unwrap();
                assert_eq!(got, 1);
                returned.saturating_duration_since(enqueued)
            });
            latencies.push(latency.as_secs_f64() * 1000.0);
            fill_empty(raw);
        }
        latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "enqueue to waiting claim, {name:<32} median {:>7.1} ms (min {:.1}, max {:.1})",
            latencies[2], latencies[0], latencies[4]
        );
    }
}

/// An empty queue.
fn fill_empty(raw: &mut mysql::Conn) {
    raw.query_drop("DELETE FROM task_history; DELETE FROM tasks")
        .unwrap();
}
