//! The enqueue's type gate as a foreign key (migration 11): a task names the type and version
//! it was validated against until its first claim, the server refuses it for a type that is no
//! longer active at that version (changed by the library or by hand), and a change of the type
//! leaves its queued tasks runnable.

mod common;

use common::{TestDb, from};
use mysql::prelude::Queryable;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use taskmanager::*;

fn gate(db: &TestDb, id: i64) -> (Option<i64>, Option<String>) {
    db.sql()
        .exec_first(
            "SELECT gate_type_id, gate_version FROM tasks WHERE id = ?",
            (id,),
        )
        .unwrap()
        .expect("the task")
}

fn type_id(db: &TestDb, name: &str) -> i64 {
    db.count(&format!("SELECT id FROM task_types WHERE name = '{name}'"))
}

#[test]
fn a_task_names_its_gate_until_its_first_claim() {
    let db = TestDb::server(json!({}));
    db.register("g", json!({"type": "object"}));
    let id = db.enqueue("g", json!({"n": 1}));
    assert_eq!(gate(&db, id), (Some(type_id(&db, "g")), Some("1".into())));
    let claimed = db.claim_one("w");
    assert_eq!(claimed.id, id);
    assert_eq!(gate(&db, id), (None, None), "the claim clears it");
    // A retry puts it back to pending without a gate: it was validated when it was enqueued.
    let failed = db
        .client
        .fail(id, &claimed.lease_token, "again", &FailOptions::default())
        .unwrap();
    assert_eq!(failed.status, Status::Pending);
    assert_eq!(gate(&db, id), (None, None));
}

#[test]
fn a_type_closed_by_hand_refuses_the_next_enqueue_at_once() {
    let db = TestDb::server(json!({}));
    db.register("h", json!({"type": "object"}));
    let first = db.enqueue("h", json!({"n": 1}));
    let id = type_id(&db, "h");
    // Plain SQL, as the original's users do: this process still has the type cached as
    // active at version 1, and the server's key refuses the task all the same.
    db.sql_exec("UPDATE task_types SET is_active = 0 WHERE name = 'h'");
    let e = db
        .client
        .enqueue("h", &json!({"n": 2}), &EnqueueOptions::default())
        .unwrap_err();
    assert_eq!(e.code(), Code::TypeInactive, "{e}");
    // The key is the server's own: a row naming the closed gate is refused to plain SQL too.
    let refused = db.sql().query_drop(format!(
        "INSERT INTO tasks (type_id, params_json, dedupe_key, dedupe_lock, gate_type_id, \
         gate_version) VALUES ({id}, '{{}}', 'by-hand', 'by-hand', {id}, '1')"
    ));
    assert!(
        matches!(&refused, Err(mysql::Error::MySqlError(m)) if m.code == 1452),
        "{refused:?}"
    );
    // Reopened at another version, by hand: the cached version no longer passes; the library
    // reads the type again and writes the task under the new one.
    db.sql_exec("UPDATE task_types SET is_active = 1, version = '2' WHERE name = 'h'");
    let second = db.enqueue("h", json!({"n": 2}));
    assert_eq!(gate(&db, second), (Some(id), Some("2".into())));
    // The first task's gate named the version that is gone: cleared, and it still runs.
    assert_eq!(gate(&db, first), (None, None));
    let claimed: Vec<i64> = db
        .client
        .claim("w", &from(json!({"limit": 5})))
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(claimed, [first, second]);
}

#[test]
fn a_version_compares_byte_for_byte() {
    let db = TestDb::server(json!({}));
    let define = |version: &str| {
        db.client
            .register_type(&from(json!({"name": "case", "version": version,
                "param_schema": {"type": "object"}})))
            .unwrap();
    };
    define("v1");
    db.enqueue("case", json!({"n": 1}));
    // `V1` is another version, though the column's collation calls the two equal.
    define("V1");
    let id = db.enqueue("case", json!({"n": 2}));
    assert_eq!(gate(&db, id).1.as_deref(), Some("V1"));
}

#[test]
fn deleting_a_type_deletes_its_tasks_whatever_their_gate() {
    let db = TestDb::server(json!({}));
    db.register("d", json!({"type": "object"}));
    db.enqueue("d", json!({"n": 1}));
    db.enqueue("d", json!({"n": 2}));
    db.claim_one("w");
    db.sql_exec("DELETE FROM task_types WHERE name = 'd'");
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 0);
    assert_eq!(db.count("SELECT COUNT(*) FROM task_history"), 0);
}

/// Producers enqueue while the type's version changes under them again and again: every
/// enqueue either writes its task or is refused as a version race (never a deadlock or another
/// database error), and every task written names the version that was current.
#[test]
fn enqueues_racing_version_changes_neither_deadlock_nor_pass_a_closed_gate() {
    let db = TestDb::server(json!({}));
    db.register("race", json!({"type": "object"}));
    let changing = AtomicBool::new(true);
    let (written, refused) = std::thread::scope(|s| {
        let producers: Vec<_> = (0..3)
            .map(|p| {
                let client = db.client_with(json!({}));
                let changing = &changing;
                s.spawn(move || {
                    let (mut written, mut refused, mut n) = (0, 0, 0);
                    while changing.load(Ordering::Relaxed) || n < 20 {
                        n += 1;
                        match client.enqueue(
                            "race",
                            &json!({"p": p, "n": n}),
                            &EnqueueOptions::default(),
                        ) {
                            Ok(_) => written += 1,
                            Err(e) if e.code() == Code::Conflict => refused += 1,
                            Err(e) => panic!("producer {p}: {e}"),
                        }
                    }
                    (written, refused)
                })
            })
            .collect();
        for version in 2..=30 {
            db.sql_exec(&format!(
                "UPDATE task_types SET version = '{version}' WHERE name = 'race'"
            ));
        }
        changing.store(false, Ordering::Relaxed);
        producers
            .into_iter()
            .map(|p| p.join().unwrap())
            .fold((0, 0), |(w, r), (pw, pr)| (w + pw, r + pr))
    });
    assert!(written >= 60, "written {written}, refused {refused}");
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), written);
    // Gates still set name the current version only: a change cleared every older one.
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM tasks t JOIN task_types y ON y.id = t.type_id \
             WHERE t.gate_version IS NOT NULL AND t.gate_version <> y.version"
        ),
        0
    );
}
