//! Rows changed by hand with plain SQL into values this library never writes pass through
//! claim, get, list, heartbeat, fail and complete as errors that name the column and the task,
//! never as a panic: some of these answers are read after the step committed. On either
//! engine: each lets the values in its own way (the server out of strict mode, SQLite past its
//! CHECK constraints).

mod common;

use common::{Engine, TestDb, any_object};
use serde_json::json;
use taskmanager::*;

/// Asserts an error of code `Database` whose message names `column` and the task `id`.
fn names_column_and_task(result: Result<impl std::fmt::Debug>, column: &str, id: i64) {
    let e = result.expect_err("a mangled value must be an error");
    assert_eq!(e.code(), Code::Database, "{e:?}");
    assert!(
        e.message().contains(&format!("`{column}`")) && e.message().contains(&format!("task {id}")),
        "the message names the column and the task: {}",
        e.message()
    );
}

/// Sets `assignments` on task `id` as an operator's hand would, past what the engine checks.
fn mangle(db: &TestDb, assignments: &str, id: i64) {
    let relax = match db.engine {
        Engine::Mysql => "SET SESSION sql_mode = ''",
        Engine::Sqlite => "PRAGMA ignore_check_constraints = ON",
    };
    db.sql_exec(&format!(
        "{relax}; UPDATE tasks SET {assignments} WHERE id = {id}"
    ));
}

fn mangled_db() -> TestDb {
    let db = TestDb::new(json!({}));
    db.register("job", any_object());
    db
}

#[test]
fn a_negative_attempt_count_is_reported_by_claim_after_its_commit() {
    for history in [true, false] {
        let db = TestDb::new(json!({"enable_task_history": history}));
        db.register("job", any_object());
        let id = db.enqueue("job", json!({"n": 1}));
        // An operator "resets" attempts below zero; attempts are counted as unsigned.
        db.sql_exec(&format!("UPDATE tasks SET attempts = -5 WHERE id = {id}"));
        names_column_and_task(
            db.client.claim("w", &ClaimOptions::default()),
            "attempts",
            id,
        );
        // The claim committed: the task is leased, as a crashed worker's would be.
        assert_eq!(
            db.count(&format!(
                "SELECT COUNT(*) FROM tasks WHERE id = {id} AND status = 'claimed'"
            )),
            1
        );
        // The same through complete_and_claim and a claim of many (other scripts).
        let other = db.enqueue("job", json!({"n": 2}));
        db.sql_exec(&format!(
            "UPDATE tasks SET attempts = -5 WHERE id = {other}"
        ));
        let options: ClaimOptions = common::from(json!({"limit": 5}));
        names_column_and_task(db.client.claim("w", &options), "attempts", other);
    }
}

#[test]
fn get_and_list_report_values_they_cannot_read() {
    let db = mangled_db();
    let id = db.enqueue("job", json!({"n": 1}));
    // Params that are not JSON read as null (the original's rows may hold anything there).
    db.sql_exec(&format!(
        "UPDATE tasks SET params_json = 'not json {{', attempts = -1 WHERE id = {id}"
    ));
    names_column_and_task(db.client.get_task(id), "attempts", id);
    names_column_and_task(db.client.list_tasks(&ListFilter::default()), "attempts", id);
    db.sql_exec(&format!("UPDATE tasks SET attempts = 0 WHERE id = {id}"));
    let task = db.client.get_task(id).unwrap();
    assert_eq!(task.params, serde_json::Value::Null);
}

#[test]
fn heartbeat_fail_and_complete_report_values_they_cannot_read() {
    let db = mangled_db();
    let id = db.enqueue("job", json!({}));
    let claimed = db.claim_one("w");
    let token = claimed.lease_token.as_str();
    mangle(&db, "attempts = -2", id);
    names_column_and_task(
        db.client.fail(
            id,
            token,
            "boom",
            &common::from(json!({"retry_in_seconds": 0})),
        ),
        "attempts",
        id,
    );
    // The fail committed (the task went back to pending): claim it again, then complete.
    mangle(&db, "attempts = 0", id);
    let claimed = db.claim_one("w");
    assert_eq!(claimed.id, id);
    let done = db
        .client
        .complete(id, &claimed.lease_token, &json!({"ok": true}))
        .unwrap();
    assert!(!done.repeated);
    // A status this library never writes (the empty ENUM value of a non-strict server):
    // complete answers LeaseLost naming it, not a panic.
    mangle(&db, "status = 'nonsense'", id);
    let e = db
        .client
        .complete(id, "someone-else", &json!({}))
        .unwrap_err();
    assert_eq!(e.code(), Code::LeaseLost, "{e:?}");
    // Reading it back names the column and the task instead of answering a status that is
    // none of the five.
    names_column_and_task(db.client.get_task(id), "status", id);
    names_column_and_task(db.client.list_tasks(&ListFilter::default()), "status", id);
    // The stats count each status from the index that holds it; a status outside the five is
    // in none of them, so the stats answer without it (get and list above name it).
    let stats = db.client.stats().unwrap();
    let counted: i64 = Status::ALL.iter().map(|s| stats.types["job"].get(*s)).sum();
    assert_eq!(counted, 0, "{stats:?}");
}
