//! The embedded engine (one SQLite file) beside a raw SQLite floor on the same disk (see
//! floor.rs), with history, validation and dedupe on, at the default durability
//! (`synchronous = FULL`) and at `synchronous = NORMAL`; then the server engine's figures
//! from the same run, for scale (when a MariaDB server is reachable).
//!
//!     cargo bench --bench embedded
//!
//! `TM_BENCH_TASKS` (default 2000) sets tasks per run, `TM_BENCH_RUNS` (default 5) runs per
//! figure; ours and the floor run in turns, and each line gives the median (min-max) of both
//! and the median (min-max) of the runs' ratios. `TM_BENCH_SECTIONS` picks sections (default
//! `full,normal,server`). Workers are threads of one process (sharing its store, as an
//! application's threads do) or processes of their own (as PHP-FPM workers are).

#[path = "../drains.rs"]
mod drains;
mod floor;
// Only three() (the server engine's figures): the rest serves the server's bench.
#[allow(dead_code)]
#[path = "../queue/measure.rs"]
mod measure;

use drains::{ours_drain, ours_drain_batched, ours_drain_looped};
use measure::three;

use parking_lot::Mutex;
use rusqlite::Connection;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use taskmanager::{BatchItem, Client, EnqueueOptions};

static SEQ: AtomicU64 = AtomicU64::new(0);

fn next_n() -> u64 {
    // Distinct across processes too: every process starts from its pid.
    SEQ.fetch_add(1, Ordering::SeqCst) + (u64::from(std::process::id()) << 32)
}

fn open_ours(path: &str, synchronous: &str) -> Client {
    Client::open_json(Some(
        &json!({"db_path": path, "sqlite_synchronous": synchronous}).to_string(),
    ))
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The steps each side runs.

/// What a worker (thread or process) runs.
#[derive(Clone, Copy)]
enum Drain {
    ClaimComplete,
    CompleteAndClaim,
    Batched,
}

impl Drain {
    fn name(self) -> &'static str {
        match self {
            Drain::ClaimComplete => "claim-complete",
            Drain::CompleteAndClaim => "complete-and-claim",
            Drain::Batched => "batched",
        }
    }

    fn parse(text: &str) -> Drain {
        [
            Drain::ClaimComplete,
            Drain::CompleteAndClaim,
            Drain::Batched,
        ]
        .into_iter()
        .find(|d| d.name() == text)
        .unwrap()
    }

    fn ours(self, client: &Client) -> usize {
        match self {
            Drain::ClaimComplete => ours_drain(client),
            Drain::CompleteAndClaim => ours_drain_looped(client),
            Drain::Batched => ours_drain_batched(client),
        }
    }

    /// The floor has one claim and one complete: its loop is the same for both single-task
    /// drains (complete_and_claim commits once per task where the floor commits twice).
    fn floor(self, conn: &Mutex<Connection>) -> usize {
        match self {
            Drain::Batched => floor_drain_batched(conn),
            _ => floor_drain_single(conn),
        }
    }
}

fn floor_drain_single(conn: &Mutex<Connection>) -> usize {
    let token = format!("{:x}", next_n());
    let mut done = 0;
    loop {
        let jobs = floor::claim(&mut conn.lock(), 1, &token);
        let Some((id, token)) = jobs.first() else {
            return done;
        };
        floor::complete(&conn.lock(), *id, token);
        done += 1;
    }
}

fn floor_drain_batched(conn: &Mutex<Connection>) -> usize {
    let token = format!("{:x}", next_n());
    let mut done = 0;
    loop {
        let jobs = floor::claim(&mut conn.lock(), 100, &token);
        if jobs.is_empty() {
            return done;
        }
        floor::complete_many(&mut conn.lock(), &jobs);
        done += jobs.len();
    }
}

// ---------------------------------------------------------------------------------------------
// How it measures.

struct Files {
    ours: String,
    floor: String,
    synchronous: &'static str,
}

impl Files {
    fn client(&self) -> Client {
        open_ours(&self.ours, self.synchronous)
    }

    fn floor_conn(&self) -> Mutex<Connection> {
        Mutex::new(floor::open(&self.floor, self.synchronous))
    }

    /// Empties both queues and puts `count` pending tasks in each.
    fn fill(&self, count: usize) {
        let raw = Connection::open(&self.ours).unwrap();
        raw.execute_batch("DELETE FROM task_history; DELETE FROM tasks;")
            .unwrap();
        let client = self.client();
        for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
            let items: Vec<BatchItem> = chunk.iter().map(|_| item(next_n())).collect();
            client.enqueue_batch(&items).unwrap();
        }
        let mut floor = floor::open(&self.floor, self.synchronous);
        floor.execute_batch("DELETE FROM jobs").unwrap();
        let tx = floor.transaction().unwrap();
        for _ in 0..count {
            floor::enqueue(&tx, next_n());
        }
        tx.commit().unwrap();
        self.checkpoint();
    }

    /// Copies both logs into their files and empties them, so that a measured run does not
    /// pay for checkpointing what its setup wrote (the engine's setup writes more pages than
    /// the floor's, and the drain's commits would checkpoint them).
    fn checkpoint(&self) {
        for path in [&self.ours, &self.floor] {
            Connection::open(path)
                .unwrap()
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap();
        }
    }

    fn empty(&self) {
        Connection::open(&self.ours)
            .unwrap()
            .execute_batch("DELETE FROM task_history; DELETE FROM tasks;")
            .unwrap();
        floor::open(&self.floor, self.synchronous)
            .execute_batch("DELETE FROM jobs")
            .unwrap();
        self.checkpoint();
    }
}

fn item(n: u64) -> BatchItem {
    serde_json::from_value(json!({"type": "bench", "params": {"n": n}})).unwrap()
}

/// Runs `work` on `threads` threads; tasks per second for `total`.
fn on_threads(threads: usize, total: usize, work: impl Fn() -> usize + Sync) -> f64 {
    let started = Instant::now();
    let done: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(&work)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(done, total, "a drain finished {done} of {total} tasks");
    total as f64 / started.elapsed().as_secs_f64()
}

/// Runs `processes` copies of this program as workers; tasks per second for `total`. The clock
/// starts when every worker has opened the file and said so, and they all start on one word
/// from here: a process's start (exec, loading, opening) is not part of the drain.
fn on_processes(processes: usize, total: usize, side: &str, drain: Drain, files: &Files) -> f64 {
    let exe = std::env::current_exe().unwrap();
    let path = if side == "ours" {
        &files.ours
    } else {
        &files.floor
    };
    let mut children: Vec<_> = (0..processes)
        .map(|_| {
            let mut child = Command::new(&exe)
                .args(["--worker", side, drain.name(), path, files.synchronous])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut answers = BufReader::new(child.stdout.take().unwrap()).lines();
            let ready = answers.next().unwrap().unwrap();
            assert_eq!(ready, "ready", "a worker process did not start");
            (child, answers)
        })
        .collect();
    let started = Instant::now();
    for (child, _) in &mut children {
        writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    }
    let done: usize = children
        .iter_mut()
        .map(|(_, answers)| answers.next().unwrap().unwrap().parse::<usize>().unwrap())
        .sum();
    let rate = total as f64 / started.elapsed().as_secs_f64();
    for (mut child, _) in children {
        assert!(child.wait().unwrap().success(), "a worker process failed");
    }
    assert_eq!(
        done, total,
        "the processes finished {done} of {total} tasks"
    );
    rate
}

/// What a worker process drains with.
enum Side {
    Ours(Client),
    Floor(Mutex<Connection>),
}

/// A worker process: opens its side's file, says `ready`, waits for `go`, drains and prints
/// how many tasks it finished.
fn worker(args: &[String]) {
    let [side, drain, path, synchronous] = [&args[0], &args[1], &args[2], &args[3]];
    let drain = Drain::parse(drain);
    let opened = if side == "ours" {
        let client = open_ours(path, synchronous);
        // Opens the file and checks its schema, as the floor's open does.
        client.list_types().unwrap();
        Side::Ours(client)
    } else {
        Side::Floor(Mutex::new(floor::open(path, synchronous)))
    };
    println!("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    let done = match &opened {
        Side::Ours(client) => drain.ours(client),
        Side::Floor(conn) => drain.floor(conn),
    };
    println!("{done}");
}

/// Runs ours and the floor in turns (so that a drift of the disk's speed weighs on both
/// alike), `TM_BENCH_RUNS` times each, and prints the median (min-max) of each side and of the
/// runs' ratios.
fn paired(name: &str, mut ours: impl FnMut() -> f64, mut floor: impl FnMut() -> f64) {
    let runs: usize = std::env::var("TM_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let (mut o, mut f) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        o.push(ours());
        f.push(floor());
    }
    let mut ratios: Vec<f64> = o.iter().zip(&f).map(|(a, b)| a / b).collect();
    let spread = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let (o, f, r) = (spread(&mut o), spread(&mut f), spread(&mut ratios));
    println!(
        "{name:<40} {:>7.0} ({:>6.0}-{:<6.0}) {:>7.0} ({:>6.0}-{:<6.0}) {:>5.2}x ({:.2}-{:.2})",
        o.0, o.1, o.2, f.0, f.1, f.2, r.0, r.1, r.2
    );
}

fn section(files: &Files, tasks: usize) {
    println!(
        "\n## synchronous = {} ({tasks} tasks per run; tasks/s: ours (min-max), floor (min-max), \
         ours/floor per pair of runs: median (min-max))",
        files.synchronous
    );
    paired(
        "enqueue, 1 producer",
        || {
            files.empty();
            let client = files.client();
            let started = Instant::now();
            for _ in 0..tasks {
                client
                    .enqueue("bench", &json!({"n": next_n()}), &EnqueueOptions::default())
                    .unwrap();
            }
            tasks as f64 / started.elapsed().as_secs_f64()
        },
        || {
            files.empty();
            let conn = floor::open(&files.floor, files.synchronous);
            let started = Instant::now();
            for _ in 0..tasks {
                floor::enqueue(&conn, next_n());
            }
            tasks as f64 / started.elapsed().as_secs_f64()
        },
    );
    for drain in [
        Drain::ClaimComplete,
        Drain::CompleteAndClaim,
        Drain::Batched,
    ] {
        for workers in [1, 4] {
            paired(
                &format!("drain {}, {workers} thread(s)", drain.name()),
                || {
                    files.fill(tasks);
                    let client = files.client();
                    on_threads(workers, tasks, || drain.ours(&client))
                },
                || {
                    files.fill(tasks);
                    let conn = files.floor_conn();
                    on_threads(workers, tasks, || drain.floor(&conn))
                },
            );
        }
        paired(
            &format!("drain {}, 4 processes", drain.name()),
            || {
                files.fill(tasks);
                on_processes(4, tasks, "ours", drain, files)
            },
            || {
                files.fill(tasks);
                on_processes(4, tasks, "floor", drain, files)
            },
        );
    }
}

/// The server engine's figures from the same run, for scale.
fn server_scale(tasks: usize) {
    let var = |k: &str, d: &str| {
        std::env::var(format!("TASKMANAGER_TEST_{k}")).unwrap_or_else(|_| d.into())
    };
    let (host, port, user, pass) = (
        var("HOST", "127.0.0.1"),
        var("PORT", "3306"),
        var("USER", "taskmanager_test"),
        var("PASS", ""),
    );
    let name = format!("tm_bench_embedded_{}", std::process::id());
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(host.clone()))
        .tcp_port(port.parse().unwrap())
        .user(Some(user.clone()))
        .pass(Some(pass.clone()))
        .prefer_socket(false);
    let Ok(mut admin) = mysql::Conn::new(opts) else {
        println!("\n## server engine: no MariaDB server reachable, figures left out");
        return;
    };
    use mysql::prelude::Queryable;
    admin
        .query_drop(format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
        .unwrap();
    let client = Client::open_json(Some(
        &json!({"db_host": host, "db_port": port, "db_user": user, "db_pass": pass,
            "db_name": name, "pool_max_connections": 8})
        .to_string(),
    ))
    .unwrap();
    client.migrate().unwrap();
    register(&client);
    println!("\n## server engine, same run (MariaDB on this machine; tasks/s, median (min-max))");
    let fill = |count: usize| {
        for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
            let items: Vec<BatchItem> = chunk.iter().map(|_| item(next_n())).collect();
            client.enqueue_batch(&items).unwrap();
        }
    };
    let enqueue = three(|| {
        let started = Instant::now();
        for _ in 0..tasks {
            client
                .enqueue("bench", &json!({"n": next_n()}), &EnqueueOptions::default())
                .unwrap();
        }
        let rate = tasks as f64 / started.elapsed().as_secs_f64();
        ours_drain_batched(&client);
        rate
    });
    println!(
        "{:<46} {:>8.0} ({:>6.0}-{:<6.0})",
        "enqueue, 1 producer", enqueue.0, enqueue.1, enqueue.2
    );
    for drain in [
        Drain::ClaimComplete,
        Drain::CompleteAndClaim,
        Drain::Batched,
    ] {
        for workers in [1, 4] {
            let rate = three(|| {
                fill(tasks);
                on_threads(workers, tasks, || drain.ours(&client))
            });
            println!(
                "{:<46} {:>8.0} ({:>6.0}-{:<6.0})",
                format!("drain {}, {workers} thread(s)", drain.name()),
                rate.0,
                rate.1,
                rate.2
            );
        }
    }
    admin.query_drop(format!("DROP DATABASE {name}")).unwrap();
}

fn register(client: &Client) {
    client
        .register_type(
            &serde_json::from_value(json!({"name": "bench", "param_schema": {"type": "object",
                "properties": {"n": {"type": "integer"}}}}))
            .unwrap(),
        )
        .unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--worker") {
        worker(&args[at + 1..]);
        return;
    }
    let tasks = std::env::var("TM_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = std::env::temp_dir().join(format!("tm_bench_embedded_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "TaskManager embedded engine benchmark: SQLite {}, WAL, history on, validation on, \
         dedupe on; files in {}",
        rusqlite::version(),
        dir.display()
    );
    let sections = std::env::var("TM_BENCH_SECTIONS").unwrap_or("full,normal,server".into());
    let wanted = |name: &str| {
        sections
            .split(',')
            .any(|s| s.trim().eq_ignore_ascii_case(name))
    };
    for synchronous in ["FULL", "NORMAL"].into_iter().filter(|s| wanted(s)) {
        let files = Files {
            ours: dir
                .join(format!("ours-{synchronous}.db"))
                .display()
                .to_string(),
            floor: dir
                .join(format!("floor-{synchronous}.db"))
                .display()
                .to_string(),
            synchronous,
        };
        let client = files.client();
        client.migrate().unwrap();
        register(&client);
        section(&files, tasks);
    }
    if wanted("server") {
        server_scale(tasks);
    }
    std::fs::remove_dir_all(&dir).ok();
}
