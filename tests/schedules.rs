//! Recurring tasks against the real server: put, list and delete; the misfire policies after
//! the ticker was away (the schedule's stored times moved back with plain SQL: the database's
//! clock decides, so the stored times move, not a clock); several tickers on one schedule
//! creating each occurrence once; the lazy tick inside a claim; bad input naming its field.
//! The daylight-saving rules are pinned by the unit tests of `schedule::timing`.

mod common;

use common::{TestDb, any_object, from};
use mysql::prelude::Queryable;
use serde_json::{Value, json};
use taskmanager::*;

fn put(db: &TestDb, schedule: Value) -> Schedule {
    db.client.schedule_put(&from(schedule)).unwrap()
}

/// Moves a schedule's next run to the top of the hour `hours` hours ago (an occurrence of an
/// hourly expression), as if nothing had ticked since.
fn away_for_hours(db: &TestDb, name: &str, hours: u32) {
    db.sql()
        .exec_drop(
            "UPDATE task_schedules SET next_run_at = \
             DATE_FORMAT(NOW(6) - INTERVAL ? HOUR, '%Y-%m-%d %H:00:00') WHERE name = ?",
            (hours, name),
        )
        .unwrap();
}

/// Tasks whose key says they were made for `name`, with the instants.
fn scheduled_tasks(db: &TestDb, name: &str) -> Vec<String> {
    db.sql()
        .exec(
            "SELECT dedupe_key FROM tasks WHERE dedupe_key LIKE CONCAT('schedule:', ?, '@%') \
             ORDER BY dedupe_key",
            (name,),
        )
        .unwrap()
}

#[test]
fn put_list_get_and_delete_round_trip() {
    let db = TestDb::server(json!({}));
    db.register(
        "report",
        json!({"type": "object", "properties": {"kind": {"type": "string"}}}),
    );
    let s = put(
        &db,
        json!({"name": "nightly", "type": "report", "cron": "0 3 * * *",
               "timezone": "Europe/Prague", "params": {"kind": "daily"}}),
    );
    assert_eq!(
        (s.name.as_str(), s.type_name.as_str(), s.timezone.as_str()),
        ("nightly", "report", "Europe/Prague")
    );
    assert_eq!(
        (s.enabled, s.misfire, s.changed),
        (true, Misfire::Skip, Some(true))
    );
    assert_eq!(s.params, json!({"kind": "daily"}));
    // 03:00 in Prague is 01:00 or 02:00 UTC.
    let next = s.next_run_at.clone().unwrap();
    assert!(
        next.ends_with(":00:00.000000Z") && next.contains("T0"),
        "{next}"
    );
    assert!(s.last_run_at.is_none());

    // The same again changes nothing and keeps the next run.
    let again = put(
        &db,
        json!({"name": "nightly", "type": "report", "cron": "0 3 * * *",
               "timezone": "Europe/Prague", "params": {"kind": "daily"}}),
    );
    assert_eq!(
        (again.changed, again.next_run_at),
        (Some(false), Some(next))
    );

    let other = put(
        &db,
        json!({"name": "every-minute", "type": "report", "cron": "* * * * *",
               "misfire": "backfill", "enabled": false}),
    );
    assert_eq!(
        (other.next_run_at, other.misfire),
        (None, Misfire::Backfill)
    );
    let names: Vec<String> = db
        .client
        .schedule_list()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["every-minute", "nightly"]);
    assert_eq!(db.client.schedule_get("nightly").unwrap().id, s.id);
    // Stats and /metrics show each schedule's next run.
    let stats = db.client.stats().unwrap();
    assert_eq!(stats.schedules["nightly"].next_run_at, s.next_run_at);
    assert_eq!(stats.schedules["nightly"].type_name, "report");
    assert!(!stats.schedules["every-minute"].enabled);
    let metrics = db.client.metrics().unwrap();
    assert!(
        metrics.contains("taskmanager_schedule_next_run_timestamp_seconds{schedule=\"nightly\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("schedule=\"every-minute\""));

    let gone = db.client.schedule_delete("nightly").unwrap();
    assert_eq!(gone.id, s.id);
    let missing = db.client.schedule_delete("nightly").unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(missing.message().contains("nightly"));
    assert_eq!(
        db.client.schedule_get("nightly").unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(db.client.schedule_list().unwrap().len(), 1);
}

#[test]
fn each_misfire_policy_after_the_ticker_was_away() {
    let db = TestDb::server(json!({}));
    db.register("report", any_object());
    for (name, misfire) in [("skip", "skip"), ("once", "once"), ("backfill", "backfill")] {
        // No grace: every occurrence before now counts as missed.
        put(
            &db,
            json!({"name": name, "type": "report", "cron": "0 * * * *", "misfire": misfire,
                   "misfire_grace_seconds": 0}),
        );
        away_for_hours(&db, name, 24);
    }
    let report = db.client.schedules_tick().unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let made = |name: &str| {
        report
            .enqueued
            .iter()
            .filter(|t| t.schedule == name)
            .count()
    };
    // The top of this hour is due too (unless this second is exactly on it, it is missed).
    assert_eq!(made("skip"), 0);
    assert_eq!(made("once"), 1);
    assert_eq!(made("backfill"), 25);
    assert_eq!(scheduled_tasks(&db, "backfill").len(), 25);

    let once = report
        .enqueued
        .iter()
        .find(|t| t.schedule == "once")
        .unwrap();
    let top_of_hour: String = db
        .sql()
        .query_first("SELECT DATE_FORMAT(NOW(6), '%Y-%m-%dT%H:00:00Z')")
        .unwrap()
        .unwrap();
    assert_eq!(once.scheduled_for, top_of_hour);
    let task = db.client.get_task(once.task_id).unwrap();
    assert_eq!(task.dedupe_key, format!("schedule:once@{top_of_hour}"));
    assert_eq!(task.status, Status::Pending);
    // The run links the task to its schedule and instant.
    let run: Option<(String, i64)> = db
        .sql()
        .exec_first(
            "SELECT s.name, r.task_id FROM task_schedule_runs r JOIN task_schedules s \
             ON s.id = r.schedule_id WHERE r.task_id = ?",
            (once.task_id,),
        )
        .unwrap();
    assert_eq!(run, Some(("once".to_string(), once.task_id)));

    let missed = |name: &str| report.missed.iter().find(|m| m.schedule == name).cloned();
    assert!(missed("backfill").is_none());
    let skip = missed("skip").unwrap();
    assert_eq!(skip.last, top_of_hour);
    assert!(missed("once").unwrap().last < top_of_hour);

    // Every schedule moved on to the next hour; a tick now has nothing to do.
    for s in db.client.schedule_list().unwrap() {
        assert!(s.next_run_at.unwrap() > top_of_hour, "{}", s.name);
    }
    assert_eq!(db.client.schedules_tick().unwrap(), TickReport::default());
}

#[test]
fn several_tickers_create_each_occurrence_of_a_week_once() {
    let db = TestDb::server(json!({}));
    db.register("beat", any_object());
    put(
        &db,
        json!({"name": "beat", "type": "beat", "cron": "* * * * *", "misfire": "backfill"}),
    );
    // A week of minutes is more than the backfill cap: the latest MAX_BACKFILL run. Three
    // clients, each with its own pool (other settings), tick at once.
    let clients: Vec<Client> = (0..3)
        .map(|i| db.client_with(json!({"pool_max_connections": 2 + i})))
        .collect();
    let created = three_tickers(&db, "beat", 7, |i| {
        let report = clients[i].schedules_tick().unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let made = report.enqueued.iter().filter(|t| !t.deduplicated).count();
        (made, report.enqueued.is_empty())
    });
    assert_no_duplicates(&db, "beat", MAX_BACKFILL);
    // Each occurrence was reported created by exactly one ticker.
    let total: usize = created.iter().sum();
    assert_eq!(total, scheduled_tasks(&db, "beat").len(), "{created:?}");
}

/// Moves the schedule `name` back `days` days (an every-minute expression's occurrence), then
/// runs three tickers at once, each calling `tick(its index)` (which answers how many tasks
/// it reported created, and whether it enqueued nothing) until it enqueues nothing and the
/// schedule is no longer due. Answers how many each reported created.
fn three_tickers(
    db: &TestDb,
    name: &str,
    days: u32,
    tick: impl Fn(usize) -> (usize, bool) + Sync,
) -> Vec<usize> {
    db.sql()
        .exec_drop(
            "UPDATE task_schedules SET next_run_at = \
             DATE_FORMAT(NOW(6) - INTERVAL ? DAY, '%Y-%m-%d %H:%i:00') WHERE name = ?",
            (days, name),
        )
        .unwrap();
    std::thread::scope(|scope| {
        let tickers: Vec<_> = (0..3)
            .map(|i| {
                let tick = &tick;
                scope.spawn(move || {
                    let mut created = 0;
                    loop {
                        let (made, idle) = tick(i);
                        created += made;
                        let next = db.client.schedule_get(name).unwrap().next_run_at;
                        if idle && next.unwrap() > iso_now(&db.client) {
                            return created;
                        }
                    }
                })
            })
            .collect();
        tickers.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// The database's now, as a schedule's times are written.
fn iso_now(client: &Client) -> String {
    client.stats().unwrap().generated_at
}

/// No occurrence has two tasks or two runs, and at least `expected` occurrences were made.
fn assert_no_duplicates(db: &TestDb, name: &str, expected: usize) {
    let duplicates = db.count(&format!(
        "SELECT COUNT(*) FROM (SELECT SUBSTRING_INDEX(dedupe_key, '@', -1) AS instant, COUNT(*) AS n \
         FROM tasks WHERE dedupe_key LIKE 'schedule:{name}@%' GROUP BY instant HAVING n > 1) AS d"
    ));
    assert_eq!(duplicates, 0);
    let tasks = scheduled_tasks(db, name).len();
    let runs = db.count(
        "SELECT COUNT(DISTINCT r.scheduled_for) FROM task_schedule_runs r \
         JOIN tasks t ON t.id = r.task_id",
    );
    let created = db.count("SELECT COUNT(*) FROM task_history WHERE status_change = 'created'");
    assert!(tasks >= expected && tasks <= expected + 2, "{tasks}");
    assert_eq!((runs, created), (tasks as i64, tasks as i64));
}

#[test]
fn a_claim_ticks_a_due_schedule_and_takes_its_task() {
    // Interval 0: the claim looks at the schedules every time (the default is once a second).
    let db = TestDb::server(json!({"lazy_recovery_interval_ms": 0}));
    db.register("report", any_object());
    put(
        &db,
        json!({"name": "hourly", "type": "report", "cron": "0 * * * *", "misfire": "once",
               "params": {"n": 1}}),
    );
    assert!(
        db.client
            .claim("w", &ClaimOptions::default())
            .unwrap()
            .is_empty()
    );
    away_for_hours(&db, "hourly", 3);
    let claimed = db.client.claim("w", &ClaimOptions::default()).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].params, json!({"n": 1}));
    assert_eq!(scheduled_tasks(&db, "hourly").len(), 1);
    assert!(
        db.client
            .claim("w", &ClaimOptions::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bad_input_names_its_field() {
    let db = TestDb::server(json!({}));
    db.register(
        "report",
        json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
    );
    let ok = json!({"name": "s", "type": "report", "cron": "0 3 * * *"});
    let with = |key: &str, value: Value| {
        let mut s = ok.clone();
        s[key] = value;
        s
    };
    let mut without_name = ok.clone();
    without_name.as_object_mut().unwrap().remove("name");
    let mut without_type = ok.clone();
    without_type.as_object_mut().unwrap().remove("type");
    for (schedule, field) in [
        (with("cron", json!("61 * * * *")), "cron"),
        (with("cron", json!("every day")), "cron"),
        (with("cron", json!("0 0 30 2 *")), "cron"),
        (with("timezone", json!("Mars/Olympus")), "timezone"),
        (with("misfire", json!("sometimes")), "misfire"),
        (
            with("misfire_grace_seconds", json!(8 * 86400)),
            "misfire_grace_seconds",
        ),
        (without_name, "name"),
        (with("name", json!("")), "name"),
        (without_type, "type"),
    ] {
        let e = db.client.schedule_put(&from(schedule.clone())).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{schedule}: {e}");
        assert!(e.message().contains(field), "{schedule}: {e}");
        assert_eq!(e.details().unwrap()["field"], field, "{schedule}");
    }
    let unknown = db
        .client
        .schedule_put(&from(with("type", json!("nope"))))
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().contains("nope"));
    let invalid = db
        .client
        .schedule_put(&from(with("params", json!({"n": "x"}))))
        .unwrap_err();
    assert_eq!(invalid.code(), Code::ValidationFailed);
    assert!(db.client.schedule_list().unwrap().is_empty());
}

/// `taskmanager --json <args>` on `db`: its answer.
fn cli(db: &TestDb, args: &[&str]) -> Value {
    let out = common::cli(&db.name)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "taskmanager {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn three_processes_ticking_from_cron_create_each_occurrence_once() {
    let db = TestDb::server(json!({}));
    db.register("beat", any_object());
    let put = cli(
        &db,
        &[
            "schedule",
            "put",
            "beat",
            "--type",
            "beat",
            "--cron",
            "* * * * *",
            "--misfire",
            "backfill",
            "--params",
            r#"{"from": "cron"}"#,
        ],
    );
    assert_eq!(
        (put["name"].as_str(), put["misfire"].as_str()),
        (Some("beat"), Some("backfill"))
    );
    // Two days of minutes missed. Three hosts' cron jobs: each runs `taskmanager schedule
    // tick` again and again until the schedule is caught up, so their processes overlap.
    let created = three_tickers(&db, "beat", 2, |_| {
        let report = cli(&db, &["schedule", "tick"]);
        let made = report["enqueued"].as_array().unwrap();
        assert!(report["errors"].as_array().unwrap().is_empty());
        let new = made.iter().filter(|t| t["deduplicated"] == false).count();
        (new, made.is_empty())
    });
    let expected = 2 * 24 * 60;
    assert_no_duplicates(&db, "beat", expected);
    let total: usize = created.iter().sum();
    assert_eq!(total, scheduled_tasks(&db, "beat").len(), "{created:?}");
    let listed = cli(&db, &["schedule", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let gone = cli(&db, &["schedule", "delete", "beat"]);
    assert_eq!(gone["name"], "beat");
    assert!(db.client.schedule_list().unwrap().is_empty());
}

#[test]
fn a_schedule_broken_by_hand_is_reported_and_stopped_and_claims_go_on() {
    let db = TestDb::server(json!({"lazy_recovery_interval_ms": 0}));
    db.register("report", any_object());
    put(
        &db,
        json!({"name": "broken", "type": "report", "cron": "0 * * * *"}),
    );
    away_for_hours(&db, "broken", 1);
    db.sql_exec("UPDATE task_schedules SET cron = 'not a cron' WHERE name = 'broken'");
    db.enqueue("report", json!({"plain": true}));
    // The claim's tick meets the broken row; the claim itself is unharmed.
    assert_eq!(
        db.client
            .claim("w", &ClaimOptions::default())
            .unwrap()
            .len(),
        1
    );
    put(
        &db,
        json!({"name": "broken2", "type": "report", "cron": "0 * * * *"}),
    );
    away_for_hours(&db, "broken2", 1);
    db.sql_exec("UPDATE task_schedules SET timezone = 'Nowhere/Land' WHERE name = 'broken2'");
    let report = db.client.schedules_tick().unwrap();
    assert!(report.enqueued.is_empty());
    let errors: Vec<&str> = report.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("timezone") && errors[0].contains("put again"),
        "{errors:?}"
    );
    // Stopped: no next run until it is put again.
    assert_eq!(db.client.schedule_get("broken2").unwrap().next_run_at, None);
    assert_eq!(db.client.schedule_get("broken").unwrap().next_run_at, None);
    assert_eq!(db.client.schedules_tick().unwrap(), TickReport::default());
}
