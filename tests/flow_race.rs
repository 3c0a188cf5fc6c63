//! Flow control across processes: workers in Rust (this test binary, run again as a worker
//! process), PHP (FFI) and Python (ctypes) claim one limited type through the real library,
//! each a process with its own connections and its own knowledge of the limits.
//!
//! - `max_running` 2, leases of 2 seconds: the test kills workers with SIGKILL while they hold
//!   a task and starts replacements. Every task ends completed exactly once (attempts are set
//!   high enough that no task can run out of them, so none may end failed); each killed
//!   worker's task comes back through lease expiry, which counts as an attempt; and the
//!   history proves that no moment had more than 2 of the type's tasks claimed.
//! - A rate limit of 5 per 2 seconds with a burst of 1: no 2-second window of the history's
//!   starts holds more than 6, and the starts keep pace with the limit.
//!
//! The tests wait on events (rows in the database, processes ending), never on a fixed sleep.

mod common;

use common::{TestDb, any_object, from};
use mysql::prelude::Queryable;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use taskmanager::*;

/// In a worker process (this binary run again): its arguments as a JSON array, the same as
/// the PHP and Python workers take on their command line.
const WORKER_ARGS: &str = "TM_FLOW_RACE_WORKER";

/// The lease every worker claims with (`tests/flow/worker.*` use the same).
const LEASE_SECONDS: u64 = 2;

/// The Rust worker: claims tasks of one type with a short lease, holds each (the work),
/// completes it, until the stop file exists and nothing is left to claim. Prints what
/// `tests/flow/worker.php` prints. Without its environment variable it does nothing, so that
/// `cargo test -- --ignored` passes.
#[test]
#[ignore = "the worker process of the tests below, not a test of its own"]
fn rust_worker_process() {
    let Ok(args) = std::env::var(WORKER_ARGS) else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&args).unwrap();
    let [config, stop_file, worker_id, type_name, hold_ms] = &args[..] else {
        panic!("worker arguments: {args:?}");
    };
    let config: Value = serde_json::from_str(config).unwrap();
    let client = Client::open(Config::from_map(config.as_object().unwrap()).unwrap()).unwrap();
    let hold = Duration::from_millis(hold_ms.parse().unwrap());
    let claim: ClaimOptions = from(json!({"types": [type_name], "lease_seconds": LEASE_SECONDS}));
    let (mut done, mut lost) = (0, 0);
    loop {
        let tasks = client.claim(worker_id, &claim).unwrap();
        if tasks.is_empty() {
            if std::path::Path::new(stop_file).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        for task in tasks {
            std::thread::sleep(hold);
            match client.complete(task.id, &task.lease_token, &json!({"by": worker_id})) {
                Ok(finished) if !finished.repeated => {
                    println!("{}", json!({"completed": task.id}));
                    done += 1;
                }
                Ok(_) => {}
                Err(e) if e.code() == Code::LeaseLost => {
                    println!("{}", json!({"lease_lost": task.id}));
                    lost += 1;
                }
                Err(e) => panic!("worker {worker_id}: {e}"),
            }
        }
    }
    println!(
        "{}",
        json!({"worker": worker_id, "steps": done, "lease_lost": lost})
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Lang {
    Rust,
    Php,
    Python,
}

/// The library the PHP and Python workers load, built once for all the tests of this file.
fn library() -> &'static str {
    static LIB: OnceLock<String> = OnceLock::new();
    LIB.get_or_init(common::cdylib)
}

struct Worker {
    id: String,
    lang: Lang,
    child: Child,
}

/// What a worker process printed and how it ended.
struct Report {
    id: String,
    lang: Lang,
    killed: bool,
    completed: Vec<i64>,
    lease_lost: Vec<i64>,
}

/// The worker processes of one test. Dropped (a failed assertion), it stops and kills them
/// all, so none outlives the test.
struct Fleet {
    config: String,
    stop_file: PathBuf,
    type_name: String,
    hold_ms: u64,
    running: Vec<Worker>,
    killed: Vec<Worker>,
    started: BTreeMap<Lang, usize>,
}

impl Fleet {
    fn new(db: &TestDb, type_name: &str, hold_ms: u64) -> Fleet {
        let (host, port, user, pass) = common::server();
        let stop_file = std::env::temp_dir().join(format!("tm-flow-race-stop-{}", db.name));
        let _ = std::fs::remove_file(&stop_file);
        Fleet {
            config: json!({"db_host": host, "db_port": port, "db_user": user, "db_pass": pass,
                "db_name": db.name})
            .to_string(),
            stop_file,
            type_name: type_name.into(),
            hold_ms,
            running: Vec::new(),
            killed: Vec::new(),
            started: BTreeMap::new(),
        }
    }

    /// Starts a worker; returns its id.
    fn start(&mut self, lang: Lang) -> String {
        let n = self.started.entry(lang).or_default();
        *n += 1;
        let id = format!("{lang:?}-{n}").to_lowercase();
        let args = [
            self.config.clone(),
            self.stop_file.display().to_string(),
            id.clone(),
            self.type_name.clone(),
            self.hold_ms.to_string(),
        ];
        let mut command = match lang {
            Lang::Rust => {
                let mut c = Command::new(std::env::current_exe().unwrap());
                c.args([
                    "rust_worker_process",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(WORKER_ARGS, json!(args).to_string());
                c
            }
            Lang::Php => {
                let mut c = Command::new("php");
                c.args(["-d", "ffi.enable=1", "tests/flow/worker.php"])
                    .args(&args);
                c
            }
            Lang::Python => {
                let mut c = Command::new("python3");
                c.arg("tests/flow/worker.py").args(&args);
                c
            }
        };
        let child = command
            .env("TASKMANAGER_LIB", library())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{lang:?} worker: {e}"));
        self.running.push(Worker {
            id: id.clone(),
            lang,
            child,
        });
        id
    }

    /// SIGKILL to a running worker.
    fn kill(&mut self, id: &str) {
        let at = self.running.iter().position(|w| w.id == id).unwrap();
        let mut worker = self.running.remove(at);
        worker.child.kill().unwrap();
        self.killed.push(worker);
    }

    /// Fails the test, with its output, if a worker ended that was not told to.
    fn check_running(&mut self) {
        for w in &mut self.running {
            if let Some(status) = w.child.try_wait().unwrap() {
                let mut stderr = String::new();
                use std::io::Read;
                let _ = w.child.stderr.take().unwrap().read_to_string(&mut stderr);
                panic!("worker {} ended by itself ({status}): {stderr}", w.id);
            }
        }
    }

    /// Waits until `condition` holds, checking the workers meanwhile.
    fn wait_for(&mut self, what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !condition() {
            self.check_running();
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Creates the stop file and waits for every worker: those still running must stop
    /// cleanly. Returns what each printed.
    fn finish(mut self) -> Vec<Report> {
        std::fs::write(&self.stop_file, b"stop").unwrap();
        let running = std::mem::take(&mut self.running);
        let killed = std::mem::take(&mut self.killed);
        let mut reports = Vec::new();
        for (w, killed) in running
            .into_iter()
            .map(|w| (w, false))
            .chain(killed.into_iter().map(|w| (w, true)))
        {
            let out = w.child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !killed {
                assert!(out.status.success(), "worker {} failed: {stderr}", w.id);
            }
            let mut report = Report {
                id: w.id.clone(),
                lang: w.lang,
                killed,
                completed: Vec::new(),
                lease_lost: Vec::new(),
            };
            let mut summary = None;
            // The Rust worker's output also carries the test harness's lines (and its first
            // line begins with one).
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let Some(at) = line.find('{').filter(|_| line.ends_with('}')) else {
                    continue;
                };
                let v: Value = serde_json::from_str(&line[at..])
                    .unwrap_or_else(|e| panic!("worker {}: {e}: {line}", w.id));
                if v.get("worker").is_some() {
                    summary = Some(v);
                } else if let Some(id) = v["completed"].as_i64() {
                    report.completed.push(id);
                } else if let Some(id) = v["lease_lost"].as_i64() {
                    report.lease_lost.push(id);
                } else {
                    panic!("worker {}: {line}", w.id);
                }
            }
            if !killed {
                let summary = summary.unwrap_or_else(|| {
                    panic!(
                        "worker {} printed no summary: {stderr}\n{}",
                        w.id,
                        String::from_utf8_lossy(&out.stdout)
                    )
                });
                assert_eq!(summary["steps"], report.completed.len(), "{}", w.id);
                assert_eq!(summary["lease_lost"], report.lease_lost.len(), "{}", w.id);
            }
            reports.push(report);
        }
        reports
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.stop_file, b"stop");
        for w in self.running.iter_mut().chain(self.killed.iter_mut()) {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
        let _ = std::fs::remove_file(&self.stop_file);
    }
}

/// The `claimed` history rows of the type `type_name` (a CTE body): each with the next
/// history row of the same task (its end: `ended_at`, `ended_by`; NULL while still claimed).
fn claims_of(type_name: &str) -> String {
    format!(
        "SELECT * FROM (SELECT h.id, h.task_id, h.worker_id, h.status_change, h.created_at, \
         LEAD(h.created_at) OVER (PARTITION BY h.task_id ORDER BY h.created_at, h.id) AS ended_at, \
         LEAD(h.status_change) OVER (PARTITION BY h.task_id ORDER BY h.created_at, h.id) AS ended_by \
         FROM task_history h JOIN tasks t ON t.id = h.task_id JOIN task_types ty ON ty.id = t.type_id \
         WHERE ty.name = '{type_name}') AS history WHERE status_change = 'claimed'"
    )
}

/// The most tasks of `type_name` claimed at one moment, by the history: each `claimed` row
/// counts +1 at its time and -1 at the time of the task's next row (completed, failed,
/// retrying, lease_expired, released, cancelled); at equal times the ends come first.
fn most_claimed_at_once(db: &TestDb, type_name: &str) -> i64 {
    db.count(&format!(
        "WITH claims AS ({}) \
         SELECT COALESCE(MAX(running), 0) FROM (SELECT SUM(delta) OVER (ORDER BY at, delta, id \
           ROWS UNBOUNDED PRECEDING) AS running FROM (\
             SELECT created_at AS at, 1 AS delta, id FROM claims \
             UNION ALL SELECT ended_at, -1, id FROM claims WHERE ended_at IS NOT NULL\
         ) AS events) AS timeline",
        claims_of(type_name)
    ))
}

fn figures(db: &TestDb, sql: &str) -> Vec<(i64, i64, i64, i64)> {
    db.sql().query(sql).unwrap()
}

#[test]
fn max_running_holds_across_rust_php_and_python_processes_killed_mid_task() {
    const TASKS: i64 = 40;
    const MAX_RUNNING: i64 = 2;
    const HOLD_MS: u64 = 300;
    // No task can run out of attempts (one per claim, an expired lease included): every task
    // must end completed.
    let db = TestDb::server(json!({"max_task_attempts": 20}));
    db.register("race", any_object());
    db.client
        .set_type_limits("race", &from(json!({"max_running": MAX_RUNNING})))
        .unwrap();
    let items: Vec<BatchItem> = (0..TASKS)
        .map(|i| from(json!({"type": "race", "params": {"i": i}})))
        .collect();
    db.client.enqueue_batch(&items).unwrap();
    library();

    let started = Instant::now();
    let mut fleet = Fleet::new(&db, "race", HOLD_MS);
    for lang in [Lang::Rust, Lang::Php, Lang::Python] {
        fleet.start(lang);
        fleet.start(lang);
    }
    let completed = |db: &TestDb| db.count("SELECT COUNT(*) FROM tasks WHERE status = 'completed'");
    // One worker of each language killed while it holds a task it claimed moments ago (well
    // before it could complete it), each at a later stage of the run; a replacement started.
    let mut victims = Vec::new();
    for (stage, lang) in [Lang::Rust, Lang::Php, Lang::Python]
        .into_iter()
        .enumerate()
    {
        let reached = TASKS * (stage as i64 + 1) / 5;
        fleet.wait_for(
            &format!("{reached} tasks completed"),
            Duration::from_secs(30),
            || completed(&db) >= reached,
        );
        let candidates: Vec<String> = fleet
            .running
            .iter()
            .filter(|w| w.lang == lang)
            .map(|w| w.id.clone())
            .collect();
        let mut victim = None;
        let mut sql = db.sql();
        fleet.wait_for(
            &format!("a {lang:?} worker holding a task"),
            Duration::from_secs(30),
            || {
                let holders: Vec<String> = sql
                    .query(format!(
                        "SELECT claimed_by FROM tasks WHERE status = 'claimed' \
                         AND claimed_at > NOW(6) - INTERVAL {} MICROSECOND",
                        HOLD_MS * 1000 / 3
                    ))
                    .unwrap();
                victim = holders.into_iter().find(|h| candidates.contains(h));
                victim.is_some()
            },
        );
        let victim = victim.unwrap();
        fleet.kill(&victim);
        fleet.start(lang);
        victims.push(victim);
    }
    fleet.wait_for("every task completed", Duration::from_secs(45), || {
        completed(&db) == TASKS
    });
    let reports = fleet.finish();
    let took = started.elapsed();

    // Every task completed exactly once: one `completed` row each, nothing failed, and each
    // claim beyond the first is one that ended by lease expiry.
    assert_eq!(
        db.count("SELECT COUNT(*) FROM tasks WHERE status = 'completed'"),
        TASKS
    );
    let per_task = figures(
        &db,
        "SELECT t.id, t.attempts, \
         SUM(h.status_change = 'claimed'), SUM(h.status_change = 'lease_expired') \
         FROM tasks t JOIN task_history h ON h.task_id = t.id GROUP BY t.id, t.attempts",
    );
    assert_eq!(per_task.len() as i64, TASKS);
    for &(id, attempts, claims, expired) in &per_task {
        assert_eq!(
            (attempts, claims),
            (claims, expired + 1),
            "task {id}: attempts, claims and lease expiries disagree"
        );
    }
    let endings: Vec<(String, i64)> = db
        .sql()
        .query(
            "SELECT status_change, COUNT(*) FROM task_history \
             WHERE status_change NOT IN ('created', 'claimed') GROUP BY status_change ORDER BY 1",
        )
        .unwrap();
    let ending = |kind: &str| {
        endings
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(ending("completed"), TASKS, "{endings:?}");
    let expired = ending("lease_expired");
    assert_eq!(
        ending("completed") + expired,
        endings.iter().map(|(_, n)| n).sum::<i64>(),
        "only completions and lease expiries: {endings:?}"
    );
    let duplicates = db.count(
        "SELECT COUNT(*) FROM (SELECT task_id FROM task_history WHERE status_change = 'completed' \
         GROUP BY task_id HAVING COUNT(*) > 1) AS twice",
    );
    assert_eq!(duplicates, 0);

    // Every claim ended (completed or lease expired), and each lease expiry was a killed
    // worker's task, or one that its live worker was told it had lost.
    let claims: Vec<(i64, i64, Option<String>, Option<String>)> = db
        .sql()
        .query(format!(
            "SELECT id, task_id, worker_id, ended_by FROM ({}) AS c ORDER BY id",
            claims_of("race")
        ))
        .unwrap();
    let lost: HashMap<i64, Vec<&str>> = reports.iter().fold(HashMap::new(), |mut m, r| {
        for &task in &r.lease_lost {
            m.entry(task).or_default().push(r.id.as_str());
        }
        m
    });
    for (claim, task, worker, ended_by) in &claims {
        let worker = worker.as_deref().unwrap();
        match ended_by.as_deref() {
            Some("completed") => {}
            Some("lease_expired") => assert!(
                victims.iter().any(|v| v == worker)
                    || lost.get(task).is_some_and(|ws| ws.contains(&worker)),
                "claim {claim} of task {task} by {worker} expired, but that worker was not killed \
                 and was not told"
            ),
            other => panic!("claim {claim} of task {task} by {worker} ended by {other:?}"),
        }
    }
    // Each kill landed mid-task: the victim's task came back through its lease's expiry.
    for v in &victims {
        assert!(
            claims.iter().any(
                |(_, _, w, e)| w.as_deref() == Some(v) && e.as_deref() == Some("lease_expired")
            ),
            "{v} was killed holding a task, yet no lease of it expired"
        );
    }

    // The workers' own view: no task reported completed twice (a lease is a fence), every
    // reported completion is one the database holds, and only a killed worker (between its
    // commit and its print) may have left one unreported.
    let mut reported: HashMap<i64, Vec<&str>> = HashMap::new();
    for r in &reports {
        for &task in &r.completed {
            reported.entry(task).or_default().push(r.id.as_str());
        }
    }
    let reported_twice: Vec<_> = reported.iter().filter(|(_, ws)| ws.len() > 1).collect();
    assert!(reported_twice.is_empty(), "{reported_twice:?}");
    assert!(
        reported.len() as i64 >= TASKS - victims.len() as i64,
        "{} completions reported",
        reported.len()
    );
    for (lang, n) in [Lang::Rust, Lang::Php, Lang::Python].map(|lang| {
        (
            lang,
            reports
                .iter()
                .filter(|r| r.lang == lang)
                .map(|r| r.completed.len())
                .sum::<usize>(),
        )
    }) {
        assert!(n > 0, "the {lang:?} workers completed nothing");
    }

    let most = most_claimed_at_once(&db, "race");
    let lease_lost: usize = reports.iter().map(|r| r.lease_lost.len()).sum();
    eprintln!(
        "flow race: {TASKS} tasks, {} workers ({} killed mid-task: {victims:?}), {} claims, \
         {expired} lease expiries, {lease_lost} lease lost by live workers, \
         duplicate completions {duplicates} (reported twice {}), \
         max claimed at once {most} (max_running {MAX_RUNNING}), {:.1}s",
        reports.len(),
        reports.iter().filter(|r| r.killed).count(),
        claims.len(),
        reported_twice.len(),
        took.as_secs_f64()
    );
    assert_eq!(
        most, MAX_RUNNING,
        "more than max_running claimed at once, or never as many"
    );
}

#[test]
fn a_rate_limit_holds_across_rust_php_and_python_processes() {
    const LIMIT: i64 = 5;
    const PER_SECONDS: i64 = 2;
    const BURST: i64 = 1;
    // Four windows' worth of starts: the first window's at once, then one window's more as
    // each earlier window slides by, about 6 seconds in all.
    const STARTS: i64 = 4 * (LIMIT + BURST);
    let db = TestDb::server(json!({}));
    db.register("paced", any_object());
    db.client
        .set_type_limits(
            "paced",
            &from(json!({"rate": {"limit": LIMIT, "per_seconds": PER_SECONDS, "burst": BURST}})),
        )
        .unwrap();
    let items: Vec<BatchItem> = (0..3 * STARTS)
        .map(|i| from(json!({"type": "paced", "params": {"i": i}})))
        .collect();
    db.client.enqueue_batch(&items).unwrap();
    library();

    let mut fleet = Fleet::new(&db, "paced", 20);
    for lang in [Lang::Rust, Lang::Php, Lang::Python] {
        fleet.start(lang);
    }
    let starts =
        |db: &TestDb| db.count("SELECT COUNT(*) FROM task_history WHERE status_change = 'claimed'");
    fleet.wait_for(&format!("{STARTS} starts"), Duration::from_secs(40), || {
        starts(&db) >= STARTS
    });
    let reports = fleet.finish();

    // Every window of PER_SECONDS seconds that begins at a start holds at most LIMIT + BURST
    // starts (any window holding more would hold them from one of its starts on).
    let claims = claims_of("paced");
    let most_in_window = db.count(&format!(
        "WITH claims AS ({claims}) SELECT MAX((SELECT COUNT(*) FROM claims later \
         WHERE later.created_at >= first.created_at \
         AND later.created_at < first.created_at + INTERVAL {PER_SECONDS} SECOND)) \
         FROM claims first"
    ));
    let total = db.count(&format!(
        "WITH claims AS ({claims}) SELECT COUNT(*) FROM claims"
    ));
    let elapsed = db.count_f64(&format!(
        "WITH claims AS ({claims}) \
         SELECT TIMESTAMPDIFF(MICROSECOND, MIN(created_at), MAX(created_at)) / 1e6 FROM claims"
    ));
    // The limiter admits what it may: over the run, at least LIMIT per elapsed window (less
    // one for a start just missed at the end).
    let least = (LIMIT as f64 * elapsed / PER_SECONDS as f64).floor() as i64 - 1;
    let completed: usize = reports.iter().map(|r| r.completed.len()).sum();
    eprintln!(
        "flow rate: {total} starts in {elapsed:.2}s (at least {least} expected), \
         max {most_in_window} starts in any {PER_SECONDS}s window (limit {LIMIT} + burst {BURST}), \
         {completed} completed by {} workers",
        reports.len()
    );
    assert!(
        most_in_window <= LIMIT + BURST,
        "{most_in_window} starts in one window"
    );
    assert_eq!(most_in_window, LIMIT + BURST, "the burst was never used");
    assert!(total >= least, "{total} starts in {elapsed:.2}s");
    // Nothing was killed: every start completed, by the worker that started it.
    assert_eq!(completed as i64, total);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM task_history WHERE status_change = 'completed'"),
        total
    );
    for lang in [Lang::Rust, Lang::Php, Lang::Python] {
        assert!(
            reports
                .iter()
                .any(|r| r.lang == lang && !r.completed.is_empty()),
            "the {lang:?} worker started nothing"
        );
    }
}
