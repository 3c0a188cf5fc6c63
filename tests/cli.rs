//! The operator's command line against the real server.

mod common;

use common::TestDb;
use serde_json::json;
use std::process::Command;

fn cli(db: &TestDb, args: &[&str]) -> (bool, String, String) {
    let (host, port, user, pass) = common::server();
    let out = Command::new(env!("CARGO_BIN_EXE_taskmanager"))
        .args(args)
        .env("TASKMANAGER_DB_HOST", host)
        .env("TASKMANAGER_DB_PORT", port.to_string())
        .env("TASKMANAGER_DB_USER", user)
        .env("TASKMANAGER_DB_PASS", pass)
        .env("TASKMANAGER_DB_NAME", &db.name)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn migrate_recover_and_stats_from_the_command_line() {
    let db = TestDb::empty(json!({}));
    let (ok, out, err) = cli(&db, &["migrate"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("applied migrations [1, 2, 3]; schema now at version 3"),
        "{out}"
    );
    assert!(
        err.contains("migrating database"),
        "a progress line goes to stderr: {err}"
    );
    let (ok, out, _) = cli(&db, &["migrate"]);
    assert!(ok && out.contains("nothing to do"), "{out}");

    db.register("cli", common::any_object());
    db.enqueue("cli", json!({}));
    db.claim_one("w");
    db.sql_exec("UPDATE tasks SET lease_expires_at = NOW(6) - INTERVAL 1 SECOND");
    let (ok, out, _) = cli(&db, &["recover-expired"]);
    assert!(
        ok && out.contains("recovered 1 expired lease(s): 1 back to pending, 0 failed"),
        "{out}"
    );
    let (ok, out, _) = cli(&db, &["stats"]);
    assert!(ok);
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["types"]["cli"]["pending"], 1);

    let (ok, _, err) = cli(&db, &["frobnicate"]);
    assert!(!ok && err.contains("unknown command"), "{err}");
    let (ok, _, err) = cli(&db, &[]);
    assert!(!ok && err.contains("usage"), "{err}");
}

#[test]
fn an_unmigrated_database_points_at_the_command() {
    let db = TestDb::empty(json!({}));
    let (ok, _, err) = cli(&db, &["stats"]);
    assert!(!ok);
    assert!(
        err.contains("TM_SCHEMA_OUTDATED") && err.contains("taskmanager migrate"),
        "{err}"
    );
}
