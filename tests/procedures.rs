//! The hot path's stored procedures: the database holds exactly the bodies this library builds
//! from its lifecycle rules, each hot-path step really goes through its procedure, and a
//! database without them (or an account that may not run them) is served by the scripts.

mod common;

use common::{TestDb, any_object, from};
use mysql::prelude::Queryable;
use serde_json::json;
use taskmanager::*;

#[test]
fn the_database_holds_exactly_the_procedures_this_library_builds() {
    let db = TestDb::server(json!({}));
    let mut found: Vec<(String, String, String)> = db
        .sql()
        .exec(
            "SELECT ROUTINE_NAME, ROUTINE_DEFINITION, SECURITY_TYPE FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_NAME",
            (&db.name,),
        )
        .unwrap();
    let mut built: Vec<(String, String, String)> = taskmanager::test_hooks::stored_procedures()
        .into_iter()
        .map(|(name, _, body)| (name, body, "INVOKER".to_string()))
        .collect();
    found.sort();
    built.sort();
    // Migration 7 retired generations 4 and 5 (their bodies name indexes it dropped);
    // generation 6 stays for the previous release, 9 and 10 for libraries of schemas 9 and 10;
    // this library calls generation 11.
    let previous = [
        "tm6_claim_next",
        "tm6_complete",
        "tm6_complete_and_claim",
        "tm6_enqueue",
        "tm9_claim_next",
        "tm9_complete",
        "tm9_complete_and_claim",
        "tm9_enqueue",
        "tm10_claim_next",
        "tm10_complete",
        "tm10_complete_and_claim",
        "tm10_enqueue",
    ];
    assert!(
        previous.iter().all(|p| found.iter().any(|f| f.0 == *p)),
        "{found:?}"
    );
    found.retain(|f| !previous.contains(&f.0.as_str()));
    assert_eq!(
        found.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
        [
            "tm11_claim_next",
            "tm11_complete",
            "tm11_complete_and_claim",
            "tm11_enqueue",
        ]
    );
    assert_eq!(found, built);
}

/// Replaces the procedure `name` with one of the same parameters that refuses with a message
/// naming itself.
fn booby_trap(db: &TestDb, name: &str) {
    let mut sql = db.sql();
    let row: mysql::Row = sql
        .query_first(format!("SHOW CREATE PROCEDURE {name}"))
        .unwrap()
        .unwrap();
    let create: String = row.get("Create Procedure").unwrap();
    let head = &create[..create.find("BEGIN").expect("a body")];
    sql.query_drop(format!("DROP PROCEDURE {name}")).unwrap();
    sql.query_drop(format!(
        "{head}BEGIN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{name} was called'; END"
    ))
    .unwrap();
}

fn refused_by(result: Result<impl std::fmt::Debug>, name: &str) {
    let e = result.expect_err(name);
    assert_eq!(e.code(), Code::Database, "{e}");
    assert!(e.message().contains(&format!("{name} was called")), "{e}");
}

#[test]
fn each_hot_path_step_goes_through_its_procedure() {
    let db = TestDb::server(json!({}));
    db.register("p", any_object());
    for n in 0..6 {
        db.enqueue("p", json!({"n": n}));
    }
    let one: ClaimOptions = from(json!({"types": ["p"]}));
    // The first claim of a process also recovers expired leases: a script.
    let held = db.client.claim("w", &one).unwrap().remove(0);

    booby_trap(&db, "tm11_enqueue");
    refused_by(
        db.client
            .enqueue("p", &json!({"n": 99}), &EnqueueOptions::default()),
        "tm11_enqueue",
    );
    // A batch of several is a script.
    db.client
        .enqueue_batch(&from::<Vec<BatchItem>>(json!([
            {"type": "p", "params": {"n": 100}},
            {"type": "p", "params": {"n": 101}},
        ])))
        .unwrap();

    booby_trap(&db, "tm11_complete");
    refused_by(
        db.client.complete(held.id, &held.lease_token, &json!(1)),
        "tm11_complete",
    );
    // Finishing by worker id is a script.
    db.client
        .complete_as_worker(held.id, "w", &json!(1))
        .unwrap();

    booby_trap(&db, "tm11_claim_next");
    // The recovery pass comes once a second and runs as a script; the claims between are CALLs.
    let refused = (0..3).find_map(|_| db.client.claim("w", &one).err());
    refused_by(refused.map_or(Ok(()), Err), "tm11_claim_next");
    // Other orders and larger claims are scripts.
    let by_id: ClaimOptions = from(json!({"sort_by": "id"}));
    let held = db.client.claim("w", &by_id).unwrap().remove(0);

    booby_trap(&db, "tm11_complete_and_claim");
    let refused = (0..3).find_map(|_| {
        db.client
            .complete_and_claim(held.id, &held.lease_token, &json!(1), "w", &one)
            .err()
    });
    refused_by(refused.map_or(Ok(()), Err), "tm11_complete_and_claim");
}

#[test]
fn without_the_procedures_the_scripts_serve_every_step() {
    let db = TestDb::server(json!({}));
    for (name, ..) in taskmanager::test_hooks::stored_procedures() {
        db.sql_exec(&format!("DROP PROCEDURE {name}"));
    }
    db.register("s", any_object());
    let first = db
        .client
        .enqueue("s", &json!({"n": 1}), &EnqueueOptions::default())
        .unwrap();
    assert!(!first.deduplicated);
    let again = db
        .client
        .enqueue("s", &json!({"n": 1}), &EnqueueOptions::default())
        .unwrap();
    assert!(again.deduplicated && again.id == first.id);
    db.enqueue("s", json!({"n": 2}));
    let one: ClaimOptions = from(json!({"types": ["s"]}));
    let mut done = Vec::new();
    let mut held = db.client.claim("w", &one).unwrap();
    while let Some(t) = held.pop() {
        held = db
            .client
            .complete_and_claim(t.id, &t.lease_token, &json!("ok"), "w", &one)
            .unwrap()
            .claimed;
        done.push(t.id);
    }
    assert_eq!(done.len(), 2);
    for id in done {
        assert_eq!(
            common::history_kinds(&db.client, id),
            ["created", "claimed", "completed"]
        );
    }
}

/// A database keeps the procedures its migrations created, and a process checks only the
/// schema version. So the procedures this library calls must be exactly those of the committed
/// migration file of their generation; a change to how the library builds them (a lifecycle
/// rule, a statement) fails here until it comes as a new generation: new names, a new
/// migration file, a new schema version. `TASKMANAGER_BLESS=1` writes the file anew.
#[test]
fn the_procedures_called_are_those_of_the_committed_migration_file() {
    let (generation, built) = taskmanager::test_hooks::procedures_migration_file();
    let path = format!(
        "{}/sql/migrations/{generation:04}_hot_path_procedures_v{generation}.sql",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var("TASKMANAGER_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, &built).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == built,
        "the stored procedures changed: give them a new generation (GENERATION in \
         src/queue/procedures.rs) and a migration that runs its file, then write the file with \
         TASKMANAGER_BLESS=1 cargo test --test procedures"
    );
    let db = TestDb::server_empty(json!({}));
    let report = db.client.migrate_to(i64::from(generation)).unwrap();
    assert_eq!(
        report.applied.last().copied(),
        Some(i64::from(generation)),
        "the migration of their generation's number creates them"
    );
}
