//! The operator's command line against the real server: every subcommand, its `--json`
//! parsed, its exit code, and the settings' layering.

mod common;

use common::TestDb;
use serde_json::{Value, json};
use std::process::Output;

fn run(db_name: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut command = common::cli(db_name);
    command.args(args);
    for (k, v) in extra_env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn cli(db: &TestDb, args: &[&str]) -> (bool, String, String) {
    let out = run(&db.name, args, &[]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Runs with `--json`, expects success, parses stdout.
fn json_of(db: &TestDb, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, out, err) = cli(db, &all);
    assert!(ok, "{args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
}

fn exit_code(db: &TestDb, args: &[&str]) -> (i32, String) {
    let out = run(&db.name, args, &[]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn temp_file(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("tm-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into()
}

#[test]
fn every_subcommand_against_the_server() {
    let db = TestDb::server_empty(json!({}));
    let (ok, out, err) = cli(&db, &["migrate"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(
            "applied migrations [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]; schema now at version 11"
        ),
        "{out}"
    );
    assert!(
        err.contains("migrating database"),
        "a progress line goes to stderr: {err}"
    );
    assert_eq!(json_of(&db, &["migrate"])["applied"], json!([]));

    // Types.
    let schema = temp_file(
        "schema.json",
        r#"{"type":"object","properties":{"n":{"type":"integer"}}}"#,
    );
    let t = json_of(
        &db,
        &[
            "type",
            "register",
            "cli.job",
            "--schema",
            &schema,
            "--version",
            "1.2.0",
        ],
    );
    assert_eq!(
        (t["name"].as_str(), t["version"].as_str()),
        (Some("cli.job"), Some("1.2.0"))
    );
    assert_eq!(json_of(&db, &["type", "list"])[0]["name"], "cli.job");
    assert_eq!(
        json_of(&db, &["type", "show", "cli.job"])["param_schema"]["type"],
        "object"
    );
    assert_eq!(
        json_of(&db, &["type", "deactivate", "cli.job"])["is_active"],
        false
    );
    let (code, err) = exit_code(&db, &["enqueue", "cli.job", "{}"]);
    assert_eq!(code, 4, "a deactivated type is a queue outcome: {err}");
    assert!(err.contains("TM_TYPE_INACTIVE"), "{err}");
    assert_eq!(
        json_of(&db, &["type", "activate", "cli.job"])["is_active"],
        true
    );

    // Enqueue one, and many from a JSON-lines file (with a duplicate).
    let one = json_of(
        &db,
        &[
            "enqueue",
            "cli.job",
            r#"{"n": 1}"#,
            "--priority",
            "5",
            "--max-attempts",
            "2",
        ],
    );
    assert_eq!(one["deduplicated"], false);
    let lines: String = (1..=250)
        .map(|n| format!("{{\"type\": \"cli.job\", \"params\": {{\"n\": {n}}}}}\n"))
        .collect();
    let file = temp_file("tasks.jsonl", &lines);
    let batch = json_of(&db, &["enqueue", "--file", &file, "--batch-size", "100"]);
    assert_eq!(
        batch,
        json!({"tasks": 250, "created": 249, "deduplicated": 1})
    );
    let bad = temp_file(
        "bad.jsonl",
        "{\"type\": \"cli.job\", \"params\": {}}\nnot json\n",
    );
    let (code, err) = exit_code(&db, &["enqueue", "--file", &bad]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("line 2"), "{err}");

    // Read side.
    let task = json_of(&db, &["get", &one["id"].to_string()]);
    assert_eq!(
        (task["priority"].as_i64(), task["max_attempts"].as_i64()),
        (Some(5), Some(2))
    );
    let page = json_of(&db, &["list", "--type", "cli.job", "--limit", "10"]);
    assert_eq!(page.as_array().unwrap().len(), 10);
    let next = json_of(
        &db,
        &[
            "list",
            "--limit",
            "10",
            "--before-id",
            &page[9]["id"].to_string(),
        ],
    );
    assert!(next[0]["id"].as_i64() < page[9]["id"].as_i64());
    assert_eq!(
        json_of(&db, &["list", "--text", "\"n\":250"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(json_of(&db, &["list", "--older-than", "1h"]), json!([]));
    assert_eq!(
        json_of(&db, &["list", "--newer-than", "1h", "--limit", "1000"])
            .as_array()
            .unwrap()
            .len(),
        250
    );
    let history = json_of(&db, &["history", &one["id"].to_string()]);
    assert_eq!(history[0]["status_change"], "created");

    // Cancel and retry, by id and by filter, with dry runs.
    let dry = json_of(
        &db,
        &[
            "cancel",
            "--status",
            "pending",
            "--text",
            "\"n\":2",
            "--dry-run",
        ],
    );
    let would = dry["changed"].as_array().unwrap().len() as u64;
    assert!(would >= 10, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        json_of(&db, &["stats"])["totals"]["cancelled"],
        0,
        "a dry run changes nothing"
    );
    let cancelled = json_of(
        &db,
        &[
            "cancel",
            "--status",
            "pending",
            "--text",
            "\"n\":2",
            "--reason",
            "not needed",
        ],
    );
    assert_eq!(
        cancelled["changed"], dry["changed"],
        "the dry run foretold it"
    );
    let retried = json_of(&db, &["retry", "--status", "cancelled", "--limit", "3"]);
    assert_eq!(retried["changed"].as_array().unwrap().len(), 3);
    assert!(retried["next_before_id"].is_i64(), "{retried}");
    let (code, err) = exit_code(&db, &["retry", &one["id"].to_string()]);
    assert_eq!(code, 4, "a pending task cannot be retried: {err}");
    assert!(err.contains("1 of 1 task(s) refused"), "{err}");
    // By filter, a refusal is reported, not an error.
    let (ok, out, err) = cli(&db, &["retry", "--status", "pending", "--limit", "1"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("retried 0 task(s)") && out.contains("TM_CONFLICT"),
        "{out}"
    );
    let (code, err) = exit_code(&db, &["cancel"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("give task ids"), "{err}");

    // Stats as JSON, a table and Prometheus text; recover.
    let stats = json_of(&db, &["stats"]);
    assert_eq!(stats["totals"]["cancelled"].as_u64(), Some(would - 3));
    let (ok, table, _) = cli(&db, &["stats"]);
    assert!(
        ok && table.contains("cli.job") && table.contains("oldest pending"),
        "{table}"
    );
    let (ok, text, _) = cli(&db, &["stats", "--prometheus"]);
    assert!(
        ok && text.contains("taskmanager_tasks{type=\"cli.job\",status=\"cancelled\"}"),
        "{text}"
    );
    db.client
        .claim("w", &common::from(json!({"limit": 2})))
        .unwrap();
    db.sql_exec(
        "UPDATE tasks SET lease_expires_at = NOW(6) - INTERVAL 1 SECOND WHERE status = 'claimed'",
    );
    let (ok, out, _) = cli(&db, &["recover-expired"]);
    assert!(
        ok && out.contains("recovered 2 expired lease(s): 2 back to pending, 0 failed"),
        "{out}"
    );
    assert_eq!(json_of(&db, &["recover"])["recovered"], 0);

    // Prune: dry run, then for real.
    db.sql_exec(
        "UPDATE tasks SET completed_at = NOW(6) - INTERVAL 2 DAY WHERE status = 'cancelled'",
    );
    let dry = json_of(&db, &["prune", "--older-than", "1d", "--dry-run"]);
    assert_eq!(dry["tasks"].as_u64(), Some(would - 3));
    let pruned = json_of(
        &db,
        &[
            "prune",
            "--older-than",
            "1d",
            "--batch-size",
            "5",
            "--status",
            "cancelled",
        ],
    );
    assert_eq!(
        (pruned["tasks"].as_u64(), pruned["done"].as_bool()),
        (Some(would - 3), Some(true))
    );
    let (ok, out, _) = cli(&db, &["prune", "--older-than", "1d"]);
    assert!(ok && out.contains("pruned 0 task(s)"), "{out}");
}

#[test]
fn bad_arguments_get_a_clear_message_and_a_usage_exit_code() {
    let db = TestDb::server(json!({}));
    for (args, says) in [
        (vec!["frobnicate"], "unrecognized subcommand"),
        (vec![], "Usage"),
        (vec!["get", "abc"], "invalid value 'abc'"),
        (vec!["prune"], "--older-than"),
        (vec!["prune", "--older-than", "3y"], "unknown unit"),
        (vec!["enqueue"], "required"),
        (
            vec!["stats", "--json", "--prometheus"],
            "cannot be used with",
        ),
    ] {
        let (code, err) = exit_code(&db, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let (code, err) = exit_code(&db, &["list", "--status", "nope"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("TM_INVALID_ARGUMENT") && err.contains("status must be one of"),
        "{err}"
    );
    let (code, err) = exit_code(&db, &["get", "424242"]);
    assert_eq!(code, 4, "{err}");
    // Every subcommand explains itself.
    for sub in [
        "migrate",
        "type",
        "enqueue",
        "get",
        "list",
        "history",
        "stats",
        "recover",
        "retry",
        "cancel",
        "prune",
        "completions",
    ] {
        let out = run(&db.name, &[sub, "--help"], &[]);
        assert!(out.status.success(), "{sub} --help");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: taskmanager"),
            "{sub}"
        );
    }
    let out = run(&db.name, &["completions", "bash"], &[]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("_taskmanager"));
}

#[test]
fn settings_come_from_flags_over_environment_over_a_file() {
    let db = TestDb::server(json!({}));
    db.register("layered", common::any_object());
    let (host, port, user, pass) = common::server();
    // The file names a database that does not exist; the environment names the right one.
    let file = temp_file(
        "settings.json",
        &json!({"db_host": host, "db_port": port, "db_user": user, "db_pass": pass, "db_name": "tm_no_such_db"})
            .to_string(),
    );
    let out = run(
        &db.name,
        &["--json", "--config", &file, "type", "list"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A flag beats the environment.
    let out = run(
        &db.name,
        &["--db-name", "tm_no_such_db", "type", "list"],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a refused login is a configuration error: {err}"
    );
    assert!(
        err.contains("TM_CONFIG") && err.contains("tm_no_such_db"),
        "{err}"
    );
    // A password never shows, whatever fails.
    let out = run(
        &db.name,
        &["type", "list"],
        &[
            ("TASKMANAGER_DB_PASS", "Sup3r-S3cret"),
            ("TASKMANAGER_DB_USER", "nobody"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(!err.contains("Sup3r-S3cret"), "{err}");
}

#[test]
fn an_unmigrated_database_points_at_the_command() {
    let db = TestDb::server_empty(json!({}));
    let (ok, _, err) = cli(&db, &["stats"]);
    assert!(!ok);
    assert!(
        err.contains("TM_SCHEMA_OUTDATED") && err.contains("taskmanager migrate"),
        "{err}"
    );
}

#[test]
fn enqueue_with_a_unique_window() {
    let db = TestDb::server(json!({}));
    db.register("cli.nightly", common::any_object());
    let args = [
        "enqueue",
        "cli.nightly",
        r#"{"day": 1}"#,
        "--unique-for",
        "1h",
    ];
    let first = json_of(&db, &args);
    assert_eq!(first["deduplicated"], false);
    let again = json_of(&db, &args);
    assert_eq!(
        (&again["id"], &again["deduplicated"]),
        (&first["id"], &json!(true))
    );
    db.sql_exec("UPDATE tasks SET created_at = created_at - INTERVAL 3600 SECOND");
    let next = json_of(&db, &args);
    assert_eq!(next["deduplicated"], false);
    assert_ne!(next["id"], first["id"]);
    let (code, err) = exit_code(
        &db,
        &["enqueue", "cli.nightly", "{}", "--unique-for", "400d"],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("unique_for_seconds"), "{err}");
}

/// A time `seconds` from now by the database's clock, as RFC 3339 UTC.
fn db_time_in(db: &TestDb, seconds: i64) -> String {
    use mysql::prelude::Queryable;
    db.sql()
        .query_first(format!(
            "SELECT DATE_FORMAT(UTC_TIMESTAMP() + INTERVAL {seconds} SECOND, '%Y-%m-%dT%H:%i:%sZ')"
        ))
        .unwrap()
        .unwrap()
}

fn claimed(db: &TestDb, limit: u32) -> usize {
    db.client
        .claim("cli-w", &common::from(json!({"limit": limit})))
        .unwrap()
        .len()
}

#[test]
fn type_pause_resume_and_limits() {
    let db = TestDb::server(json!({}));
    db.register("cli.flow", common::any_object());
    db.enqueue("cli.flow", json!({"n": 1}));

    // Paused until resumed: claims take none of its tasks, stats and metrics say so.
    let paused = json_of(&db, &["type", "pause", "cli.flow"]);
    assert_eq!(
        (&paused["paused"], &paused["paused_until"]),
        (&json!(true), &Value::Null),
        "{paused}"
    );
    assert_eq!(claimed(&db, 10), 0, "a paused type hands out nothing");
    let stats = json_of(&db, &["stats"]);
    assert_eq!(stats["flow"]["cli.flow"]["paused"], true, "{stats}");
    let (ok, text, _) = cli(&db, &["stats"]);
    assert!(ok && text.contains("started in window"), "{text}");
    let (ok, text, _) = cli(&db, &["stats", "--prometheus"]);
    assert!(
        ok && text.contains("taskmanager_type_paused{type=\"cli.flow\"} 1"),
        "{text}"
    );
    let (ok, text, _) = cli(&db, &["type", "show", "cli.flow"]);
    assert!(ok && text.contains("yes, until resumed"), "{text}");
    let resumed = json_of(&db, &["type", "resume", "cli.flow"]);
    assert_eq!(resumed["paused"], false);
    assert_eq!(claimed(&db, 10), 1, "resumed, its task is claimed");

    // Paused until a time: shown with it; a time in the past names the option.
    let until = db_time_in(&db, 3600);
    let paused = json_of(&db, &["type", "pause", "cli.flow", "--until", &until]);
    assert_eq!(paused["paused"], true);
    assert!(
        paused["paused_until"]
            .as_str()
            .is_some_and(|t| t.starts_with(&until[..19])),
        "{paused} {until}"
    );
    let (ok, text, _) = cli(&db, &["type", "list"]);
    assert!(ok && text.contains("paused until"), "{text}");
    let past = db_time_in(&db, -60);
    let (code, err) = exit_code(&db, &["type", "pause", "cli.flow", "--until", &past]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("until"), "{err}");
    json_of(&db, &["type", "resume", "cli.flow"]);

    // Limits: set, change one, show, remove.
    let limited = json_of(
        &db,
        &[
            "type",
            "limits",
            "cli.flow",
            "--max-running",
            "1",
            "--rate",
            "10/1m",
            "--burst",
            "3",
        ],
    );
    assert_eq!(limited["max_running"], 1, "{limited}");
    assert_eq!(
        limited["rate"],
        json!({"limit": 10, "per_seconds": 60, "burst": 3})
    );
    let burst = json_of(&db, &["type", "limits", "cli.flow", "--burst", "5"]);
    assert_eq!(
        (&burst["max_running"], &burst["rate"]),
        (
            &json!(1),
            &json!({"limit": 10, "per_seconds": 60, "burst": 5})
        ),
        "--burst alone keeps the rest"
    );
    assert_eq!(
        json_of(&db, &["type", "limits", "cli.flow"]),
        burst,
        "no flags: shown, unchanged"
    );
    db.enqueue("cli.flow", json!({"n": 2}));
    db.enqueue("cli.flow", json!({"n": 3}));
    assert_eq!(
        claimed(&db, 10),
        0,
        "max_running 1: the task claimed before holds the only slot"
    );
    let stats = json_of(&db, &["stats"]);
    assert_eq!(
        (
            &stats["flow"]["cli.flow"]["running"],
            &stats["flow"]["cli.flow"]["max_running"]
        ),
        (&json!(1), &json!(1)),
        "{stats}"
    );
    let (ok, text, _) = cli(&db, &["type", "show", "cli.flow"]);
    assert!(ok && text.contains("10 per 60 s, burst 5"), "{text}");
    let cleared = json_of(
        &db,
        &[
            "type",
            "limits",
            "cli.flow",
            "--max-running",
            "none",
            "--no-rate",
        ],
    );
    assert_eq!(
        (&cleared["max_running"], &cleared["rate"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(claimed(&db, 10), 2, "no limit: both wait no more");
    assert!(
        json_of(&db, &["stats"])
            .get("flow")
            .is_none_or(|f| f.get("cli.flow").is_none())
    );

    // Bad input: the library's range names the field; a malformed flag is a usage error.
    for (args, code, says) in [
        (vec!["--max-running", "0"], 3, "max_running"),
        (vec!["--rate", "0/60"], 3, "rate.limit"),
        (vec!["--rate", "10/400d"], 3, "rate.per_seconds"),
        (
            vec!["--rate", "10/60", "--burst", "2000000"],
            3,
            "rate.burst",
        ),
        (vec!["--burst", "1"], 3, "--burst needs --rate"),
        (vec!["--rate", "10"], 2, "not a rate"),
        (vec!["--max-running", "many"], 2, "none"),
        (vec!["--rate", "1/1", "--no-rate"], 2, "cannot be used with"),
    ] {
        let mut all = vec!["type", "limits", "cli.flow"];
        all.extend(&args);
        let (got, err) = exit_code(&db, &all);
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let (code, err) = exit_code(&db, &["type", "pause", "no.such.type"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("TM_NOT_FOUND"), "{err}");
    for sub in ["pause", "resume", "limits"] {
        let out = run(&db.name, &["type", sub, "--help"], &[]);
        assert!(out.status.success(), "type {sub} --help");
    }
}
