//! Queue throughput against the real server, next to a raw-SQL floor: the fewest statements a
//! correct claim/complete needs, sent with the same driver to the same server.
//!
//!     cargo bench --bench queue            (TASKMANAGER_TEST_HOST/_PORT/_USER/_PASS pick the server)
//!
//! It also fills the table with finished tasks and measures again, to show that the claim and
//! complete path does not slow down as history accumulates.

use mysql::prelude::Queryable;
use serde_json::json;
use std::time::Instant;
use taskmanager::{BatchItem, ClaimOptions, Client, CompleteItem, Config, EnqueueOptions};

const TASKS: usize = 2000;

/// Claims and completes one task per call until the queue is empty; returns how many.
/// InnoDB rows the server has read through its handlers so far (all sessions): a count that,
/// unlike time, does not depend on the disk or on what else the machine is doing.
fn rows_read(raw: &mut mysql::Conn) -> u64 {
    let rows: Vec<(String, String)> = raw
        .query("SHOW GLOBAL STATUS LIKE 'Handler_read%'")
        .unwrap();
    rows.iter()
        .map(|(_, v)| v.parse::<u64>().unwrap_or(0))
        .sum()
}

fn drain_one_by_one(client: &Client) -> usize {
    let mut done = 0;
    while let Some(task) = client
        .claim("bench", &ClaimOptions::default())
        .unwrap()
        .pop()
    {
        client
            .complete(task.id, &task.lease_token, &json!(null))
            .unwrap();
        done += 1;
    }
    done
}

fn main() {
    let var = |k: &str, d: &str| {
        std::env::var(format!("TASKMANAGER_TEST_{k}")).unwrap_or_else(|_| d.into())
    };
    let (host, port, user, pass) = (
        var("HOST", "127.0.0.1"),
        var("PORT", "3306"),
        var("USER", "taskmanager_test"),
        var("PASS", ""),
    );
    let db = format!("tm_bench_{}", std::process::id());
    let admin_opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(host.clone()))
        .tcp_port(port.parse().unwrap())
        .user(Some(user.clone()))
        .pass(Some(pass.clone()));
    let mut admin = mysql::Conn::new(admin_opts.clone())
        .expect("the benchmark needs the MariaDB server (scripts/setup)");
    admin
        .query_drop(format!(
            "CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        ))
        .unwrap();
    let open = |history: bool| {
        let config = json!({"db_host": host, "db_port": port, "db_user": user, "db_pass": pass, "db_name": db,
            "enable_task_history": history});
        Client::open(Config::from_map(config.as_object().unwrap()).unwrap()).unwrap()
    };
    let client = open(false);
    client.migrate().unwrap();
    client
        .register_type(
            &serde_json::from_value(json!({"name": "bench", "param_schema": {"type": "object",
        "properties": {"n": {"type": "integer"}}}}))
            .unwrap(),
        )
        .unwrap();
    let mut raw = mysql::Conn::new(admin_opts.db_name(Some(db.clone()))).unwrap();
    raw.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .unwrap();

    println!("TaskManager queue benchmark: {TASKS} tasks per row, server {host}:{port}");
    println!("{:<58} {:>12} {:>12}", "operation", "us/task", "tasks/s");
    let report = |name: &str, started: Instant, n: usize| {
        let us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("{name:<58} {us:>12.1} {:>12.0}", 1e6 / us);
        us
    };
    let mut seq = 0;
    let mut items = |n: usize| -> Vec<BatchItem> {
        (0..n)
            .map(|_| {
                seq += 1;
                serde_json::from_value(json!({"type": "bench", "params": {"n": seq}})).unwrap()
            })
            .collect()
    };

    for history in [false, true] {
        let c = open(history);
        let label = if history { "history on" } else { "history off" };
        let batch = items(TASKS);
        let t = Instant::now();
        for item in &batch {
            c.enqueue("bench", &item.params, &EnqueueOptions::default())
                .unwrap();
        }
        report(&format!("enqueue, one per call ({label})"), t, TASKS);
        let t = Instant::now();
        let done = drain_one_by_one(&c);
        report(
            &format!("claim 1 + complete, one task per call ({label})"),
            t,
            done,
        );
    }

    let batch = items(TASKS);
    let t = Instant::now();
    for chunk in batch.chunks(500) {
        client.enqueue_batch(chunk).unwrap();
    }
    report("enqueue_batch, 500 per call (history off)", t, TASKS);
    let t = Instant::now();
    let claim100: ClaimOptions = serde_json::from_value(json!({"limit": 100})).unwrap();
    let mut done = 0;
    loop {
        let tasks = client.claim("bench", &claim100).unwrap();
        if tasks.is_empty() {
            break;
        }
        let finished: Vec<CompleteItem> = tasks
            .iter()
            .map(|t| {
                serde_json::from_value(json!({"id": t.id, "lease_token": t.lease_token})).unwrap()
            })
            .collect();
        done += client.complete_batch(&finished).unwrap().len();
    }
    report("claim 100 + complete_batch (history off)", t, done);

    // The floor: claim one task and complete it with the minimal statements, no library.
    let floor = |raw: &mut mysql::Conn, label: &str| {
        let t = Instant::now();
        let mut done = 0;
        loop {
            raw.query_drop("START TRANSACTION").unwrap();
            let id: Option<i64> = raw
                .query_first("SELECT id FROM tasks WHERE status = 'pending' AND run_at <= NOW(6) ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED")
                .unwrap();
            let Some(id) = id else {
                raw.query_drop("COMMIT").unwrap();
                break;
            };
            raw.exec_drop("UPDATE tasks SET status = 'claimed', attempts = attempts + 1, lease_token = 'x', lease_expires_at = NOW(6) + INTERVAL 300 SECOND WHERE id = ?", (id,)).unwrap();
            raw.query_drop("COMMIT").unwrap();
            raw.exec_drop("UPDATE tasks SET status = 'completed', result_json = 'null', completed_at = NOW(6) WHERE id = ? AND lease_token = 'x' AND status = 'claimed'", (id,)).unwrap();
            done += 1;
        }
        report(label, t, done)
    };
    let enqueue_all = |n: usize, items: &mut dyn FnMut(usize) -> Vec<BatchItem>| {
        for chunk in items(n).chunks(500) {
            client.enqueue_batch(chunk).unwrap();
        }
    };
    enqueue_all(TASKS, &mut items);
    let floor_small = floor(&mut raw, "raw SQL floor: claim 1 + complete (no library)");
    enqueue_all(TASKS, &mut items);
    let t = Instant::now();
    let read_before = rows_read(&mut raw);
    let done = drain_one_by_one(&client);
    let reads_small = (rows_read(&mut raw) - read_before) as f64 / done as f64;
    let lib_small = report("library: claim 1 + complete (history off)", t, done);
    println!("  library / floor: {:.2}x", lib_small / floor_small);

    // Grow the table with finished tasks and measure the same path again.
    let finished_rows = 200_000;
    let t = Instant::now();
    raw.query_drop(format!(
        "INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, result_json, attempts, completed_at) \
         SELECT 1, 'completed', '{{}}', CONCAT('old-', seq), CONCAT('old-', seq), 'null', 1, NOW(6) \
         FROM seq_1_to_{finished_rows}"
    ))
    .unwrap();
    println!(
        "(added {finished_rows} completed tasks in {:.1}s)",
        t.elapsed().as_secs_f64()
    );
    // Let the server flush what the bulk insert dirtied, so that the measurement below sees
    // the table's size and not the insert's aftermath.
    std::thread::sleep(std::time::Duration::from_secs(5));
    enqueue_all(TASKS / 4, &mut items);
    drain_one_by_one(&client);
    enqueue_all(TASKS, &mut items);
    let t = Instant::now();
    let read_before = rows_read(&mut raw);
    let done = drain_one_by_one(&client);
    let reads_big = (rows_read(&mut raw) - read_before) as f64 / done as f64;
    let lib_big = report(
        &format!("library: claim 1 + complete, {finished_rows} finished rows"),
        t,
        done,
    );
    println!(
        "  with {finished_rows} finished rows / empty table: {:.2}x",
        lib_big / lib_small
    );

    println!(
        "  rows read by the server per claim + complete: {reads_small:.1} with an empty table, \
         {reads_big:.1} with {finished_rows} finished rows"
    );
    admin.query_drop(format!("DROP DATABASE {db}")).unwrap();
}
