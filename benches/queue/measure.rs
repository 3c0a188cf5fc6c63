//! How the bench measures: runs in parallel, the median of three, a row of the table, and a
//! quiet server between runs.

use mysql::prelude::Queryable;
use std::time::{Duration, Instant};

/// Runs `work(worker_index)` on `workers` threads at once and returns tasks per second for
/// `total` tasks.
pub fn parallel(workers: usize, total: usize, work: impl Fn(usize) + Sync) -> f64 {
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..workers {
            let work = &work;
            s.spawn(move || work(w));
        }
    });
    total as f64 / started.elapsed().as_secs_f64()
}

/// Waits until the server has purged what the last run deleted or changed (its history list is
/// short again, or 60 s passed): a run measured while purge works through its predecessor's
/// rows measures that too, and more for the side that deleted more.
pub fn settle(conn: &mut mysql::Conn) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let row: Option<(String, u64)> = conn
            .query_first("SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'")
            .unwrap();
        if row.is_none_or(|(_, length)| length < 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (at most 3 minutes, with a progress line) until the buffer pool holds few pages not
/// yet written to disk (under a tenth of it, or no fewer than 5 s before: an idle server
/// leaves a remainder unwritten): after a bulk load, so that what is measured is a queue with
/// a large table, not the server writing the load out beside it.
pub fn flushed(conn: &mut mysql::Conn) {
    let started = Instant::now();
    let status = |conn: &mut mysql::Conn, name: &str| -> u64 {
        conn.query_first::<(String, u64), _>(format!("SHOW GLOBAL STATUS LIKE '{name}'"))
            .unwrap()
            .map_or(0, |(_, value)| value)
    };
    let total = status(conn, "Innodb_buffer_pool_pages_total").max(1);
    let mut fewest = (u64::MAX, Instant::now());
    while started.elapsed() < Duration::from_secs(180) {
        let dirty = status(conn, "Innodb_buffer_pool_pages_dirty");
        eprint!(
            "\rwaiting for the load to reach the disk: {dirty} of {total} buffer pool pages dirty ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
        if dirty < fewest.0 {
            fewest = (dirty, Instant::now());
        }
        if dirty * 10 < total || fewest.1.elapsed() > Duration::from_secs(5) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!();
}

/// Median, min and max of three runs of `f` (each returns tasks/s).
pub fn three(mut f: impl FnMut() -> f64) -> (f64, f64, f64) {
    three_of(vec![f(), f(), f()])
}

/// Three runs of ours and three of the floor, taken in turns (ours, floor, ours, ...), so that
/// a drift of the machine (the disk has slow spells here) falls on both sides alike; each
/// side's median and range as `three` gives them.
/// Both sides get the connection that resets and fills the queues.
pub fn paired<C>(
    conn: &mut C,
    mut ours: impl FnMut(&mut C) -> f64,
    mut floor: impl FnMut(&mut C) -> f64,
) -> ((f64, f64, f64), (f64, f64, f64)) {
    let mut runs = [(0.0, 0.0); 3];
    for run in &mut runs {
        *run = (ours(conn), floor(conn));
    }
    let side = |pick: fn(&(f64, f64)) -> f64| three_of(runs.iter().map(pick).collect());
    (side(|r| r.0), side(|r| r.1))
}

fn three_of(mut runs: Vec<f64>) -> (f64, f64, f64) {
    runs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (runs[1], runs[0], runs[2])
}

pub fn show(name: &str, ours: (f64, f64, f64), floor: (f64, f64, f64)) {
    println!(
        "{name:<44} {:>8.0} ({:>6.0}-{:<6.0}) {:>8.0} ({:>6.0}-{:<6.0}) {:>6.2}x",
        ours.0,
        ours.1,
        ours.2,
        floor.0,
        floor.1,
        floor.2,
        ours.0 / floor.0
    );
}
