//! Queue benchmark against the real server. Prints:
//! 1. round trips per call, counted on the wire by a proxy between the library and the server
//!    (client packets that start a command), not by the library counting itself;
//! 2. throughput of the Rust API next to the floor measured in the same run (median of 3 runs,
//!    with min and max): the fewest statements a correct queue needs on the smallest table that
//!    serves them, sent with the same driver to the same server (see floor.rs), and the server's
//!    and the client's CPU per task on each side;
//! 3. one worker draining behind a proxy that delays every client packet by 1 ms;
//! 4. the drain through the PHP (FFI) and Python (ctypes) bindings next to the Rust API's;
//! 5. the drain rate with a backlog of finished and pending tasks, and EXPLAIN of every
//!    statement of the claim path;
//! 6. flow control: a limited type's claim on the wire and its drain beside an unlimited
//!    one, and the cost and latency of waiting claims (flow.rs).
//!
//!     cargo bench --bench queue
//!
//! `TASKMANAGER_TEST_HOST/_PORT/_USER/_PASS` pick the server; `TM_BENCH_TASKS` (default 2000)
//! sets tasks per run, `TM_BENCH_BACKLOG_FINISHED` / `_PENDING` (default 1000000 / 100000) the
//! backlog.

use mysql::prelude::Queryable;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
mod cpu;
// The drain loops, shared with the embedded engine's bench.
#[path = "../drains.rs"]
mod drains;
mod floor;
mod flow;
mod measure;
mod proxy;

use cpu::cpu_per_task;
use drains::{claim_opts, complete_all, ours_drain, ours_drain_batched, ours_drain_looped};
use measure::{flushed, paired, parallel, settle, show, three};

use proxy::Proxy;
use taskmanager::{BatchItem, Client, Config, EnqueueOptions};

struct Server {
    host: String,
    port: u16,
    user: String,
    pass: String,
    db: String,
}

impl Server {
    fn opts(&self, port: u16) -> mysql::OptsBuilder {
        mysql::OptsBuilder::new()
            .ip_or_hostname(Some(self.host.clone()))
            .tcp_port(port)
            .user(Some(self.user.clone()))
            .pass(Some(self.pass.clone()))
            .db_name(Some(self.db.clone()))
            .prefer_socket(false)
            .init(vec![
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            ])
    }

    fn raw(&self) -> mysql::Conn {
        mysql::Conn::new(self.opts(self.port)).unwrap()
    }

    fn client(&self, port: u16, history: bool, pool: usize) -> Client {
        let config = json!({"db_host": self.host, "db_port": port, "db_user": self.user,
            "db_pass": self.pass, "db_name": self.db, "enable_task_history": history,
            "pool_max_connections": pool});
        Client::open(Config::from_map(config.as_object().unwrap()).unwrap()).unwrap()
    }
}

fn item(n: u64) -> BatchItem {
    serde_json::from_value(json!({"type": "bench", "params": {"n": n}})).unwrap()
}

static SEQ: AtomicU64 = AtomicU64::new(0);
fn next_n() -> u64 {
    SEQ.fetch_add(1, Ordering::SeqCst)
}

fn ours_enqueue(client: &Client, count: usize) {
    for _ in 0..count {
        client
            .enqueue("bench", &json!({"n": next_n()}), &EnqueueOptions::default())
            .unwrap();
    }
}

/// One open connection per floor worker, opened before the clock starts, as ours reuse their
/// clients' pools.
fn connections(server: &Server, count: usize) -> Vec<std::sync::Mutex<mysql::Conn>> {
    (0..count)
        .map(|_| std::sync::Mutex::new(server.raw()))
        .collect()
}

/// Builds the shared library the bindings load and returns its path.
fn build_cdylib() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--lib", "--quiet"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(status.success(), "cargo build --release --lib failed");
    format!("{root}/target/release/libtaskmanager.so")
}

fn main() {
    let var = |k: &str, d: &str| {
        std::env::var(format!("TASKMANAGER_TEST_{k}")).unwrap_or_else(|_| d.into())
    };
    let num = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let tasks = num("TM_BENCH_TASKS", 2000);
    let server = Server {
        host: var("HOST", "127.0.0.1"),
        port: var("PORT", "3306").parse().unwrap(),
        user: var("USER", "taskmanager_test"),
        pass: var("PASS", ""),
        db: format!("tm_bench_{}", std::process::id()),
    };
    let mut admin = mysql::Conn::new(server.opts(server.port).db_name(None::<String>))
        .expect("the benchmark needs the MariaDB server (scripts/setup)");
    admin
        .query_drop(format!(
            "CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
            server.db
        ))
        .unwrap();
    let client = server.client(server.port, true, 32);
    client.migrate().unwrap();
    let bench_type = client
        .register_type(
            &serde_json::from_value(json!({"name": "bench", "param_schema": {"type": "object",
                "properties": {"n": {"type": "integer"}}}}))
            .unwrap(),
        )
        .unwrap();
    let mut raw = server.raw();
    floor::create(&mut raw);
    // What an index costs every task: `TM_BENCH_DROP_INDEXES=idx_a,idx_b` drops indexes of
    // `tasks` that the bench's own steps do not use (the HTTP API's claim orders, say) before it
    // measures.
    let dropped = std::env::var("TM_BENCH_DROP_INDEXES").unwrap_or_default();
    for index in dropped.split(',').filter(|i| !i.is_empty()) {
        raw.query_drop(format!("ALTER TABLE tasks DROP INDEX {index}"))
            .unwrap();
    }
    // Empties both queues the way the floor's own reset does, with TRUNCATE: a DELETE of the
    // last run's rows would leave its redo and dirty pages for the server to write out during
    // the next run, which is ours as often as not (the floor's table is only truncated).
    let reset = |raw: &mut mysql::Conn| {
        raw.query_drop("SET FOREIGN_KEY_CHECKS = 0").unwrap();
        raw.query_drop("TRUNCATE TABLE task_history").unwrap();
        raw.query_drop("TRUNCATE TABLE tasks").unwrap();
        raw.query_drop("SET FOREIGN_KEY_CHECKS = 1").unwrap();
        floor::reset(raw);
        settle(raw);
    };
    let version: String = raw.query_first("SELECT VERSION()").unwrap().unwrap();
    let flush: String = raw
        .query_first("SELECT @@innodb_flush_log_at_trx_commit")
        .unwrap()
        .unwrap();
    println!(
        "TaskManager benchmark: server {version}, innodb_flush_log_at_trx_commit={flush}, \
         history on, validation on, dedupe on; {tasks} tasks per run{}",
        if dropped.is_empty() {
            String::new()
        } else {
            format!("; indexes dropped: {dropped}")
        }
    );

    // Sections to run: all, or those named on the command line (wire, throughput, network,
    // bindings, backlog, flow), e.g. `cargo bench --bench queue -- throughput`.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |section: &str| only.is_empty() || only.iter().any(|o| o == section);
    let history = std::env::var("TM_BENCH_HISTORY").map_or(true, |v| v != "off");
    let clients: Vec<Client> = (0..16)
        .map(|_| server.client(server.port, history, 32))
        .collect();
    let clients_without_history: Vec<Client> = (0..16)
        .map(|_| server.client(server.port, false, 32))
        .collect();
    // An empty queue refilled with `count` pending tasks.
    let fill_with = |raw: &mut mysql::Conn, count: usize| {
        reset(raw);
        for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
            let items: Vec<BatchItem> = chunk.iter().map(|_| item(next_n())).collect();
            client.enqueue_batch(&items).unwrap();
        }
    };
    let fill = |raw: &mut mysql::Conn| fill_with(raw, tasks);
    // The floor's table refilled with `count` pending tasks.
    let fill_floor_with = |raw: &mut mysql::Conn, count: usize| {
        reset(raw);
        for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
            floor::enqueue_many(raw, chunk.len(), next_n);
        }
    };
    let fill_floor = |raw: &mut mysql::Conn| fill_floor_with(raw, tasks);
    // Runs a floor drain and checks that it finished every task.
    let floor_drained = |raw: &mut mysql::Conn, rate: f64| {
        assert_eq!(floor::unfinished(raw), 0, "the floor left tasks behind");
        rate
    };

    // 1. Round trips on the wire.
    if wants("wire") {
        println!("\n## Round trips per call (client commands counted by a proxy)");
        let proxy = Proxy::start((server.host.clone(), server.port), Duration::ZERO);
        let counted = server.client(proxy.port, true, 1);
        // Warm: connect, check the schema, cache the type.
        ours_enqueue(&counted, 1);
        ours_drain(&counted);
        let n = 200u64;
        let measure = |name: &str, calls: u64, per: u64, f: &mut dyn FnMut()| {
            let before = proxy.commands();
            f();
            let per_call = (proxy.commands() - before) as f64 / calls as f64;
            println!(
                "{name:<44} {per_call:>6.2} per call, {:>6.3} per task",
                per_call / per as f64
            );
        };
        measure("enqueue", n, 1, &mut || ours_enqueue(&counted, n as usize));
        let duplicate = json!({"n": SEQ.load(Ordering::SeqCst) - 1});
        measure(
            "enqueue of a duplicate (reads the holder)",
            20,
            1,
            &mut || {
                for _ in 0..20 {
                    let again = counted
                        .enqueue("bench", &duplicate, &EnqueueOptions::default())
                        .unwrap();
                    assert!(again.deduplicated);
                }
            },
        );
        let mut held = Vec::new();
        measure("claim (limit 1)", n, 1, &mut || {
            for _ in 0..n {
                held.extend(counted.claim("w", &claim_opts(1)).unwrap());
            }
        });
        measure("heartbeat", n / 2, 1, &mut || {
            for t in &held[..n as usize / 2] {
                counted
                    .heartbeat(t.id, &t.lease_token, &Default::default())
                    .unwrap();
            }
        });
        ours_enqueue(&counted, 20);
        measure("complete_and_claim (1 task each)", 20, 1, &mut || {
            let mut next = held.split_off(held.len() - 1);
            for _ in 0..20 {
                let t = next.pop().unwrap();
                next = counted
                    .complete_and_claim(t.id, &t.lease_token, &json!(1), "w", &claim_opts(1))
                    .unwrap()
                    .claimed;
            }
            held.extend(next);
        });
        measure("complete", n / 2, 1, &mut || {
            for t in &held[..n as usize / 2] {
                counted.complete(t.id, &t.lease_token, &json!(1)).unwrap();
            }
        });
        let fail_opts = serde_json::from_value(json!({"retry": false})).unwrap();
        measure("fail", n / 2, 1, &mut || {
            for t in &held[n as usize / 2..] {
                counted
                    .fail(t.id, &t.lease_token, "no", &fail_opts)
                    .unwrap();
            }
        });
        let batch: Vec<BatchItem> = (0..500).map(|_| item(next_n())).collect();
        measure("enqueue_batch (500 tasks)", 1, 500, &mut || {
            counted.enqueue_batch(&batch).unwrap();
        });
        let mut claimed = Vec::new();
        measure("claim (limit 500)", 1, 500, &mut || {
            claimed = counted.claim("w", &claim_opts(500)).unwrap();
        });
        measure("complete_batch (500 tasks)", 1, 500, &mut || {
            complete_all(&counted, &claimed);
        });
        let mut floor_conn = mysql::Conn::new(server.opts(proxy.port)).unwrap();
        reset(&mut raw);
        floor::enqueue(&mut floor_conn, 1, next_n);
        measure("floor: INSERT", n, 1, &mut || {
            floor::enqueue(&mut floor_conn, n as usize, next_n)
        });
        measure("floor: claim 1 + complete", n + 1, 1, &mut || {
            floor::drain(&mut floor_conn);
        });
        drop(floor_conn);
    }

    // 2. Throughput beside the floor.
    if wants("throughput") {
        println!("\n## Throughput, tasks/s: median (min-max) of 3 runs; ours next to the floor");
        println!(
            "{:<44} {:>24} {:>24} {:>7}",
            "figure", "ours", "floor", "ratio"
        );
        for producers in [1usize, 4] {
            let per = tasks / producers;
            let (ours, floor) = paired(
                &mut raw,
                |raw| {
                    reset(raw);
                    parallel(producers, per * producers, |w| {
                        ours_enqueue(&clients[w], per)
                    })
                },
                |raw| {
                    reset(raw);
                    let conns = connections(&server, producers);
                    parallel(producers, per * producers, |w| {
                        floor::enqueue(&mut conns[w].lock().unwrap(), per, next_n)
                    })
                },
            );
            show(&format!("enqueue, {producers} producer(s)"), ours, floor);
        }
        for workers in [1usize, 4, 16] {
            let (ours, floor) = paired(
                &mut raw,
                |raw| {
                    fill(raw);
                    parallel(workers, tasks, |w| {
                        ours_drain(&clients[w]);
                    })
                },
                |raw| {
                    fill_floor(raw);
                    let conns = connections(&server, workers);
                    let rate = parallel(workers, tasks, |w| {
                        floor::drain(&mut conns[w].lock().unwrap());
                    });
                    floor_drained(raw, rate)
                },
            );
            show(
                &format!("drain (claim 1 + complete), {workers} worker(s)"),
                ours,
                floor,
            );
            let without_history = three(|| {
                fill(&mut raw);
                parallel(workers, tasks, |w| {
                    ours_drain(&clients_without_history[w]);
                })
            });
            show(
                &format!("drain (claim 1 + complete), history off, {workers} w"),
                without_history,
                floor,
            );
            let looped = three(|| {
                fill(&mut raw);
                parallel(workers, tasks, |w| {
                    ours_drain_looped(&clients[w]);
                })
            });
            show(
                &format!("drain (complete_and_claim), {workers} worker(s)"),
                looped,
                floor,
            );
        }
        // Where the time goes when the two cores are the limit: CPU per task on each side.
        let us = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0} us"));
        let print_cpu =
            |name: &str, ours: (Option<f64>, f64), floor: Option<(Option<f64>, f64)>| {
                let floor = floor.map_or("no floor".to_string(), |f| {
                    format!("floor: server {:>8} client {:>8}", us(f.0), us(Some(f.1)))
                });
                println!(
                    "{name:<44} server {:>8} client {:>8} | {floor}",
                    us(ours.0),
                    us(Some(ours.1)),
                );
            };
        reset(&mut raw);
        let ours_cpu = cpu_per_task(tasks, || ours_enqueue(&clients[0], tasks));
        reset(&mut raw);
        let mut conn = server.raw();
        let floor_cpu = cpu_per_task(tasks, || floor::enqueue(&mut conn, tasks, next_n));
        print_cpu(
            "CPU per task, enqueue, 1 producer",
            ours_cpu,
            Some(floor_cpu),
        );
        fill(&mut raw);
        let ours_cpu = cpu_per_task(tasks, || {
            parallel(4, tasks, |w| {
                ours_drain(&clients[w]);
            });
        });
        fill_floor(&mut raw);
        let conns = connections(&server, 4);
        let floor_cpu = cpu_per_task(tasks, || {
            parallel(4, tasks, |w| {
                floor::drain(&mut conns[w].lock().unwrap());
            });
        });
        print_cpu("CPU per task, drain, 4 workers", ours_cpu, Some(floor_cpu));
        fill(&mut raw);
        let looped_cpu = cpu_per_task(tasks, || {
            parallel(4, tasks, |w| {
                ours_drain_looped(&clients[w]);
            });
        });
        print_cpu(
            "CPU per task, drain (complete_and_claim), 4 w",
            looped_cpu,
            Some(floor_cpu),
        );
        fill(&mut raw);
        let batched_cpu = cpu_per_task(tasks, || {
            parallel(4, tasks, |w| {
                ours_drain_batched(&clients[w]);
            });
        });
        print_cpu(
            "CPU per task, claim 100 + complete_batch",
            batched_cpu,
            None,
        );
        let batched = three(|| {
            fill(&mut raw);
            parallel(4, tasks, |w| {
                ours_drain_batched(&clients[w]);
            })
        });
        println!(
            "{:<44} {:>8.0} ({:>6.0}-{:<6.0})",
            "drain (claim 100 + complete_batch), 4 workers", batched.0, batched.1, batched.2
        );
        let ours = three(|| {
            reset(&mut raw);
            let started = Instant::now();
            for chunk in (0..tasks).collect::<Vec<_>>().chunks(500) {
                let items: Vec<BatchItem> = chunk.iter().map(|_| item(next_n())).collect();
                client.enqueue_batch(&items).unwrap();
            }
            tasks as f64 / started.elapsed().as_secs_f64()
        });
        let floor = three(|| {
            reset(&mut raw);
            let started = Instant::now();
            for chunk in (0..tasks).collect::<Vec<_>>().chunks(500) {
                floor::enqueue_many(&mut raw, chunk.len(), next_n);
            }
            tasks as f64 / started.elapsed().as_secs_f64()
        });
        show("enqueue_batch 500 vs multi-row INSERT", ours, floor);
    }

    if wants("flow") {
        flow::run(&server, &clients, &mut raw, &fill, tasks);
    }

    // 3. A 1 ms network.
    if wants("network") {
        println!("\n## One worker behind a proxy that delays each client packet by 1 ms");
        let slow = Proxy::start((server.host.clone(), server.port), Duration::from_millis(1));
        let slow_client = server.client(slow.port, true, 2);
        let small = 500.min(tasks);
        let ours = three(|| {
            fill_with(&mut raw, small);
            let started = Instant::now();
            let done = ours_drain(&slow_client);
            done as f64 / started.elapsed().as_secs_f64()
        });
        let floor = three(|| {
            fill_floor_with(&mut raw, small);
            let started = Instant::now();
            floor::drain(&mut mysql::Conn::new(server.opts(slow.port)).unwrap());
            floor_drained(&mut raw, small as f64 / started.elapsed().as_secs_f64())
        });
        show("drain, 1 worker, 1 ms per client packet", ours, floor);
        let looped = three(|| {
            fill_with(&mut raw, small);
            let started = Instant::now();
            let done = ours_drain_looped(&slow_client);
            done as f64 / started.elapsed().as_secs_f64()
        });
        show("drain (complete_and_claim), same network", looped, floor);
    }

    // 4. The PHP and Python bindings beside the Rust API.
    if wants("bindings") {
        println!("\n## Drain through the bindings, tasks/s: median (min-max) of 3 runs");
        println!(
            "{:<44} {:>24} {:>24} {:>7}",
            "figure", "binding", "Rust API", "ratio"
        );
        let lib = build_cdylib();
        let config = json!({"db_host": server.host, "db_port": server.port, "db_user": server.user,
            "db_pass": server.pass, "db_name": server.db})
        .to_string();
        for workers in [1usize, 4] {
            let rust = three(|| {
                fill(&mut raw);
                parallel(workers, tasks, |w| {
                    ours_drain(&clients[w]);
                })
            });
            for (name, program, args) in [
                (
                    "PHP (FFI)",
                    "php",
                    vec!["-d", "ffi.enable=1", "benches/bindings/drain.php"],
                ),
                (
                    "Python (ctypes)",
                    "python3",
                    vec!["benches/bindings/drain.py"],
                ),
            ] {
                let binding = three(|| {
                    fill(&mut raw);
                    let out = std::process::Command::new(program)
                        .args(&args)
                        .arg(&config)
                        .arg(workers.to_string())
                        .env("TASKMANAGER_LIB", &lib)
                        .output()
                        .expect("PHP and Python must be installed (scripts/setup)");
                    assert!(
                        out.status.success(),
                        "{name} drain failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
                    tasks as f64 / report["seconds"].as_f64().unwrap()
                });
                show(&format!("{name}, {workers} worker(s)"), binding, rust);
            }
        }
    }

    // 5. Backlog, and EXPLAIN on it.
    if wants("backlog") {
        let finished = num("TM_BENCH_BACKLOG_FINISHED", 1_000_000);
        let pending = num("TM_BENCH_BACKLOG_PENDING", 100_000);
        println!("\n## Backlog: {finished} finished and {pending} pending tasks");
        let small_table = three(|| {
            fill(&mut raw);
            parallel(4, tasks, |w| {
                ours_drain(&clients[w]);
            })
        });
        reset(&mut raw);
        let started = Instant::now();
        let mut admin_db = server.raw();
        for (count, status, done) in [
            (finished, "completed", "NOW(6)"),
            (pending, "pending", "NULL"),
        ] {
            let mut left = count;
            while left > 0 {
                let step = left.min(100_000);
                admin_db
                .query_drop(format!(
                    "INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, completed_at, run_at) \
                     SELECT {}, '{status}', CONCAT('{{\"n\":', seq, '}}'), CONCAT('{status}-', seq, '-', {left}), \
                     CONCAT('{status}-', seq, '-', {left}), {done}, NOW(6) FROM seq_1_to_{step}",
                    bench_type.id
                ))
                .unwrap();
                left -= step;
                eprint!(
                    "\rfilling the backlog: {status} {} of {count} ({:.0} s)",
                    count - left,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        eprintln!();
        admin_db.query_drop("ANALYZE TABLE tasks").unwrap();
        flushed(&mut admin_db);
        let backlog = three(|| {
            let started = Instant::now();
            let per = tasks / 4;
            std::thread::scope(|s| {
                for c in clients.iter().take(4) {
                    s.spawn(move || {
                        for _ in 0..per {
                            let t = c.claim("bench", &claim_opts(1)).unwrap().pop().unwrap();
                            c.complete(t.id, &t.lease_token, &Value::Null).unwrap();
                        }
                    });
                }
            });
            (per * 4) as f64 / started.elapsed().as_secs_f64()
        });
        show(
            "drain, 4 workers: backlog vs small table",
            backlog,
            small_table,
        );

        println!(
            "\n## EXPLAIN of the hot path (claim 1 with recovery, complete, complete_and_claim), on the backlog"
        );
        let ids: Vec<i64> = admin_db
            .query("SELECT id FROM tasks WHERE status = 'pending' ORDER BY id LIMIT 2")
            .unwrap();
        admin_db
            .query_drop(format!(
                "SET @tm_example_id = {}, @tm_picked = {}, @tm_expired = '[{}]'",
                ids[0], ids[0], ids[1]
            ))
            .unwrap();
        let statements = taskmanager::test_hooks::hot_path_statements(1, true);
        for statement in &statements {
            println!("{}", &statement[..statement.len().min(160)]);
            let rows: Vec<mysql::Row> = admin_db.query(format!("EXPLAIN {statement}")).unwrap();
            for row in rows {
                let cells: Vec<String> = row
                    .unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql::Value::NULL => "NULL".into(),
                        mysql::Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                        other => format!("{other:?}"),
                    })
                    .collect();
                println!("    {}", cells.join(" | "));
            }
        }
    }

    admin
        .query_drop(format!("DROP DATABASE {}", server.db))
        .unwrap();
}
