//! The embedded engine (SQLite) alone, whatever `TASKMANAGER_TEST_ENGINE` says: processes
//! sharing one file, a worker killed with SIGKILL mid-claim and mid-work, and the files it
//! must refuse with a clear error (a directory it cannot write, a file that is no database, a
//! file another connection holds locked, a file a newer release wrote). The queue semantics
//! both engines share are in the suites tests/common runs on either.

mod common;

use common::{TempDir, TestDb, from, sqlite_config};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use taskmanager::*;

/// In a worker process (this binary run again): what it does, as JSON.
const WORKER_ARGS: &str = "TM_EMBEDDED_WORKER";

/// The lease of the workers of the kill test: short, so that the killed worker's tasks come
/// back soon.
const SHORT_LEASE: u64 = 2;

/// The worker processes the tests below start. Its modes:
/// - `drain`: claims (1 to 3 at a time) and completes until a claim finds nothing; a task whose
///   params say `fail_first` fails its first attempt (straight back to pending);
/// - `hold`: claims `limit` tasks, says which, and then sleeps (killed mid-work);
/// - `churn`: claims and completes one at a time, forever (killed mid-claim or mid-work);
/// - `finish`: as `drain`, but an empty claim waits until no task is pending or claimed (the
///   leases of killed workers run out meanwhile).
///
/// Prints `done <id>` after each completion it made and `held <id>` for each task it holds.
/// Without its environment variable it does nothing, so that `cargo test -- --ignored` passes.
#[test]
#[ignore = "the worker process of the tests below, not a test of its own"]
fn worker_process() {
    let Ok(args) = std::env::var(WORKER_ARGS) else {
        return;
    };
    let args: Value = serde_json::from_str(&args).unwrap();
    let path = Path::new(args["path"].as_str().unwrap());
    let id = args["id"].as_str().unwrap();
    let mode = args["mode"].as_str().unwrap();
    let client = Client::open(sqlite_config(path, json!({"lock_wait_timeout": 60}))).unwrap();
    let lease = args["lease_seconds"].as_u64().unwrap_or(30);
    let mut step: u64 = std::process::id().into();
    let mut limit = move || {
        step = step.wrapping_mul(6364136223846793005).wrapping_add(1);
        1 + (step >> 33) % 3
    };
    match mode {
        "hold" => {
            let claim: ClaimOptions = from(json!({"limit": args["limit"], "lease_seconds": lease}));
            for t in client.claim(id, &claim).unwrap() {
                println!("held {}", t.id);
            }
            println!("holding");
            std::thread::sleep(Duration::from_secs(600));
        }
        "churn" => loop {
            let claim: ClaimOptions = from(json!({"lease_seconds": lease}));
            for t in client.claim(id, &claim).unwrap() {
                client.complete(t.id, &t.lease_token, &json!(id)).unwrap();
                println!("done {}", t.id);
            }
        },
        "drain" | "finish" => loop {
            let claim: ClaimOptions = from(json!({"limit": limit(), "lease_seconds": lease}));
            let tasks = client.claim(id, &claim).unwrap();
            if tasks.is_empty() {
                if mode == "drain" || unfinished(path) == 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            for t in tasks {
                if t.params["fail_first"] == json!(true) && t.attempts == 1 {
                    let again: FailOptions = from(json!({"retry_in_seconds": 0}));
                    client.fail(t.id, &t.lease_token, "first", &again).unwrap();
                    continue;
                }
                match client.complete(t.id, &t.lease_token, &json!(id)) {
                    Ok(done) => {
                        assert!(!done.repeated);
                        println!("done {}", t.id);
                    }
                    // Held past its lease while this machine is loaded: another took it.
                    Err(e) if e.code() == Code::LeaseLost => {}
                    Err(e) => panic!("{id}: {e}"),
                }
            }
        },
        other => panic!("unknown worker mode {other}"),
    }
}

/// Tasks of the file at `path` still pending or claimed.
fn unfinished(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM tasks WHERE status IN ('pending', 'claimed')",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// A worker process on the file of `db`; its stdout lines come through the receiver.
fn start(db: &TestDb, id: &str, args: Value) -> (Child, mpsc::Receiver<String>) {
    let mut args = args;
    args["path"] = json!(db.name);
    args["id"] = json!(id);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "worker_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WORKER_ARGS, args.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if send.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    (child, lines)
}

/// Reads `lines` until `until` holds for the lines read so far (or the deadline passes).
fn read_until(lines: &mpsc::Receiver<String>, until: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while !until(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("a worker said {seen:?} and then nothing more: {e}"),
        }
    }
    seen
}

/// Waits for the workers to exit by themselves, each successfully, within a minute; returns
/// the ids each says it completed.
fn finish(workers: Vec<(Child, mpsc::Receiver<String>)>) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut done = Vec::new();
    for (mut child, lines) in workers {
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("a worker did not finish within a minute");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "a worker failed: {status}");
        done.extend(ids(&lines.iter().collect::<Vec<_>>(), "done"));
    }
    done
}

/// The ids of the lines `<word> <id>` (the first may follow the test harness's
/// `test worker_process ... ` on the same line).
fn ids(lines: &[String], word: &str) -> Vec<i64> {
    let word = format!("{word} ");
    lines
        .iter()
        .filter_map(|l| l[l.find(&word)? + word.len()..].trim().parse().ok())
        .collect()
}

/// Every task of `db` completed, each with exactly one `completed` history row, and as many
/// `claimed` rows as attempts. Returns each task's attempts by id.
fn each_completed_once(db: &TestDb, tasks: usize) -> HashMap<i64, i64> {
    assert_eq!(
        db.count("SELECT COUNT(*) FROM tasks WHERE status = 'completed'"),
        tasks as i64
    );
    let conn = db.sqlite_conn();
    let mut rows = conn
        .prepare(
            "SELECT t.id, t.attempts, \
               (SELECT COUNT(*) FROM task_history h WHERE h.task_id = t.id \
                  AND h.status_change = 'completed'), \
               (SELECT COUNT(*) FROM task_history h WHERE h.task_id = t.id \
                  AND h.status_change = 'claimed') \
             FROM tasks t",
        )
        .unwrap();
    let rows: Vec<(i64, i64, i64, i64)> = rows
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(rows.len(), tasks);
    for (id, attempts, completed, claimed) in &rows {
        assert_eq!(*completed, 1, "task {id}: {completed} completed rows");
        assert_eq!(attempts, claimed, "task {id}: attempts against claims");
    }
    rows.into_iter()
        .map(|(id, attempts, ..)| (id, attempts))
        .collect()
}

/// The `status_change` of every history row of task `id`, oldest first, read from the file.
fn history_kinds(db: &TestDb, id: i64) -> Vec<String> {
    db.sqlite_conn()
        .prepare("SELECT status_change FROM task_history WHERE task_id = ?1 ORDER BY id")
        .unwrap()
        .query_map([id], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn many_processes_share_one_file_and_each_task_is_done_once() {
    let db = TestDb::sqlite(json!({}));
    db.register("p", json!({"type": "object"}));
    let tasks = 400;
    let items: Vec<BatchItem> = (0..tasks)
        .map(|n| from(json!({"type": "p", "params": {"n": n, "fail_first": n % 7 == 0}})))
        .collect();
    db.client.enqueue_batch(&items).unwrap();

    let workers: Vec<_> = (0..6)
        .map(|w| start(&db, &format!("p{w}"), json!({"mode": "drain"})))
        .collect();
    let done = finish(workers);
    let unique: HashSet<i64> = done.iter().copied().collect();
    assert_eq!(
        (done.len(), unique.len()),
        (tasks, tasks),
        "every task completed once"
    );
    let attempts = each_completed_once(&db, tasks);
    let retried = attempts.values().filter(|a| **a == 2).count();
    assert_eq!(retried, tasks.div_ceil(7), "{attempts:?}");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM task_history WHERE status_change = 'retrying'"),
        retried as i64
    );
}

#[test]
fn workers_killed_mid_claim_and_mid_work_lose_no_task_and_finish_none_twice() {
    let db = TestDb::sqlite(json!({}));
    db.register("k", json!({"type": "object"}));
    let tasks = 60;
    let items: Vec<BatchItem> = (0..tasks)
        .map(|n| from(json!({"type": "k", "params": {"n": n}})))
        .collect();
    db.client.enqueue_batch(&items).unwrap();
    let lease = json!(SHORT_LEASE);

    // One worker holds three tasks and is killed at its work; one claims and completes as fast
    // as it can and is killed wherever it is (in a claim's transaction as likely as not).
    let (mut holder, held_lines) = start(
        &db,
        "holder",
        json!({"mode": "hold", "limit": 3, "lease_seconds": lease}),
    );
    let held = ids(
        &read_until(&held_lines, |l| l.iter().any(|l| l.ends_with("holding"))),
        "held",
    );
    assert_eq!(held.len(), 3);
    let (mut churner, churned) = start(
        &db,
        "churner",
        json!({"mode": "churn", "lease_seconds": lease}),
    );
    let before_kill = read_until(&churned, |l| ids(l, "done").len() >= 10);
    holder.kill().unwrap();
    churner.kill().unwrap();
    holder.wait().unwrap();
    churner.wait().unwrap();
    let mut done = ids(&before_kill, "done");
    done.extend(ids(&churned.try_iter().collect::<Vec<_>>(), "done"));

    // Three workers finish the rest, the killed ones' tasks once their leases run out.
    let workers: Vec<_> = (0..3)
        .map(|w| {
            start(
                &db,
                &format!("f{w}"),
                json!({"mode": "finish", "lease_seconds": lease}),
            )
        })
        .collect();
    done.extend(finish(workers));
    let unique: HashSet<i64> = done.iter().copied().collect();
    assert_eq!(unique.len(), done.len(), "a task completed twice: {done:?}");
    let attempts = each_completed_once(&db, tasks);
    for id in &held {
        assert_eq!(attempts[id], 2, "held task {id}: its lease expired once");
        assert!(
            history_kinds(&db, *id).contains(&"lease_expired".to_string()),
            "task {id}"
        );
    }
    // The killed churner's own claims in flight (if any) came back the same way; no task is
    // left claimed or pending.
    assert_eq!(unfinished(db.path()), 0);
}

#[test]
fn a_directory_that_is_missing_or_not_writable_is_named_in_the_error() {
    let dir = TempDir::new("tm_embedded");
    let missing = dir.path().join("no/such/dir/queue.db");
    let e = Client::open(sqlite_config(&missing, json!({}))).unwrap_err();
    assert_eq!(e.code(), Code::Config, "{e}");
    assert!(e.message().contains(missing.to_str().unwrap()), "{e}");

    // /proc takes no new file, even from root.
    let unwritable = Path::new("/proc/tm_queue.db");
    let e = Client::open(sqlite_config(unwritable, json!({}))).unwrap_err();
    assert!(matches!(e.code(), Code::Config | Code::Database), "{e}");
    assert!(e.message().contains("/proc/tm_queue.db"), "{e}");

    // A directory without write permission (root writes anywhere: shown, not tested).
    let read_only = dir.path().join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
    let file = read_only.join("queue.db");
    let opened = Client::open(sqlite_config(&file, json!({})));
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("running as root: a mode 0555 directory does not stop a write");
    } else {
        let e = opened.unwrap_err();
        assert!(matches!(e.code(), Code::Config | Code::Database), "{e}");
        assert!(e.message().contains(file.to_str().unwrap()), "{e}");
    }
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_file_that_is_not_a_sqlite_database_is_named_in_the_error_and_left_alone() {
    let dir = TempDir::new("tm_embedded");
    let path = dir.path().join("queue.db");
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let e = Client::open(sqlite_config(&path, json!({})))
        .and_then(|c| c.migrate().map(|_| c))
        .unwrap_err();
    assert!(matches!(e.code(), Code::Config | Code::Database), "{e}");
    assert!(e.message().contains(path.to_str().unwrap()), "{e}");
    assert!(e.message().contains("not a SQLite database"), "{e}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        garbage,
        "the file is untouched"
    );
}

#[test]
fn a_file_locked_by_another_connection_is_waited_for_then_refused_with_sqlites_code() {
    let db = TestDb::sqlite(json!({"lock_wait_timeout": 1}));
    db.register("l", json!({"type": "object"}));
    let holder = db.sqlite_conn();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let e = db
        .client
        .enqueue("l", &json!({}), &EnqueueOptions::default())
        .unwrap_err();
    let waited = started.elapsed().as_secs_f64();
    assert_eq!(e.code(), Code::Database, "{e}");
    assert_eq!(e.details().unwrap()["sqlite_code"], 5, "SQLITE_BUSY: {e:?}");
    assert!(e.message().contains(&db.name), "{e}");
    assert!((0.9..5.0).contains(&waited), "waited {waited:.2} s");
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 0, "nothing written");
    db.enqueue("l", json!({}));
}

#[test]
fn migrating_a_current_file_again_creates_what_it_lacks_and_changes_nothing_else() {
    let db = TestDb::sqlite(json!({}));
    db.register("m", json!({"type": "object"}));
    let first = db.enqueue("m", json!({"n": 1}));
    // As a file made by an earlier build of this version, or one a person trimmed by hand.
    db.sql_exec("DROP TABLE tm_task_ids");
    db.sql_exec("DROP INDEX idx_task_id");
    let report = db.client.migrate().unwrap();
    assert!(report.applied.is_empty(), "{report:?}");
    for (kind, name) in [("table", "tm_task_ids"), ("index", "idx_task_id")] {
        let found = db.count(&format!(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = '{kind}' AND name = '{name}'"
        ));
        assert_eq!(found, 1, "{kind} {name} created again");
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 1, "the task stays");
    assert!(db.enqueue("m", json!({"n": 2})) > first);
}

#[test]
fn a_file_from_a_newer_release_is_refused_naming_its_version_and_left_unchanged() {
    let db = TestDb::sqlite(json!({}));
    db.register("n", json!({"type": "object"}));
    db.enqueue("n", json!({"n": 1}));
    db.sql_exec(
        "INSERT INTO tm_schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)",
    );
    let snapshot = |db: &TestDb| {
        (
            db.count("SELECT COUNT(*) FROM tasks"),
            db.count("SELECT COUNT(*) FROM tm_schema_migrations"),
            db.count("SELECT COUNT(*) FROM sqlite_master"),
        )
    };
    let before = snapshot(&db);
    // A client of other settings has a store of its own, which reads the file afresh (as
    // another process would).
    let newer = db.client_with(json!({"lock_wait_timeout": 2}));
    let refusals = [
        newer
            .enqueue("n", &json!({"n": 2}), &EnqueueOptions::default())
            .unwrap_err(),
        newer.claim("w", &ClaimOptions::default()).unwrap_err(),
        newer.migrate().unwrap_err(),
    ];
    for e in refusals {
        assert_eq!(e.code(), Code::SchemaOutdated, "{e}");
        assert!(e.message().contains("99"), "{e}");
        assert!(e.message().contains(&db.name), "{e}");
        assert_eq!(e.details().unwrap()["found"], 99, "{e:?}");
    }
    assert_eq!(snapshot(&db), before, "nothing changed");
}
