//! Enqueue inside the caller's own transaction (`enqueue_statement`): the application runs the
//! statements on its own connection, and the task exists if and only if its transaction
//! commits.

mod common;

use common::{TestDb, any_object, from, history_kinds};
use mysql::TxOpts;
use mysql::prelude::Queryable;
use serde_json::json;
use taskmanager::*;

/// Runs the statements in `tx`; answers `LAST_INSERT_ID()` after the INSERT and the select's
/// row `(id, status, created)`.
fn run(tx: &mut mysql::Transaction<'_>, s: &EnqueueStatement) -> (u64, (i64, String, i64)) {
    tx.query_drop(&s.sql).unwrap();
    let last_id: u64 = tx.query_first("SELECT LAST_INSERT_ID()").unwrap().unwrap();
    if let Some(history) = &s.history_sql {
        tx.query_drop(history).unwrap();
    }
    let row: (i64, String, i64) = tx.query_first(&s.select_sql).unwrap().unwrap();
    (last_id, row)
}

#[test]
fn the_task_exists_if_and_only_if_the_transaction_commits() {
    let db = TestDb::server(json!({}));
    db.register("order.mail", any_object());
    let params = json!({"order": 7, "note": "it's \"quoted\" -- ; DROP TABLE tasks; \\"});
    let statement = db
        .client
        .enqueue_statement("order.mail", &params, &EnqueueOptions::default())
        .unwrap();
    assert_eq!(statement.dedupe_key, compute_key("order.mail", &params));
    assert_eq!(statement.statements.len(), 2);
    assert!(!statement.sql.contains("DROP"), "values are hex literals");

    // Rolled back: nothing.
    let mut app = db.sql();
    let mut tx = app.start_transaction(TxOpts::default()).unwrap();
    let (_, (_, status, created)) = run(&mut tx, &statement);
    assert_eq!((status.as_str(), created), ("pending", 1));
    tx.rollback().unwrap();
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 0);
    assert_eq!(db.count("SELECT COUNT(*) FROM task_history"), 0);

    // Open: a claim from the library, on another connection, sees nothing.
    let mut tx = app.start_transaction(TxOpts::default()).unwrap();
    let (last_id, (id, _, created)) = run(&mut tx, &statement);
    assert_eq!((last_id as i64, created), (id, 1));
    assert!(
        db.client
            .claim("w", &ClaimOptions::default())
            .unwrap()
            .is_empty()
    );
    tx.commit().unwrap();

    // Committed: claimable, with its `created` history row, params intact.
    let task = db.claim_one("w");
    assert_eq!((task.id, &task.params), (id, &params));
    assert_eq!(history_kinds(&db.client, id), ["created", "claimed"]);
}

#[test]
fn a_duplicate_in_the_callers_transaction_is_a_no_op_that_names_the_holder() {
    let db = TestDb::server(json!({}));
    db.register("order.mail", any_object());
    let params = json!({"order": 8});
    let statement = db
        .client
        .enqueue_statement("order.mail", &params, &EnqueueOptions::default())
        .unwrap();
    let mut app = db.sql();
    let mut tx = app.start_transaction(TxOpts::default()).unwrap();
    let (_, (id, _, created)) = run(&mut tx, &statement);
    assert_eq!(created, 1);
    // The same statements again, and a fresh answer for the same task, in the same transaction.
    let (again_id, (again, _, again_created)) = run(&mut tx, &statement);
    assert_eq!((again_id as i64, again, again_created), (id, id, 1));
    let other = db
        .client
        .enqueue_statement("order.mail", &params, &EnqueueOptions::default())
        .unwrap();
    let (other_id, (holder, _, other_created)) = run(&mut tx, &other);
    assert_eq!((other_id as i64, holder, other_created), (id, id, 0));
    tx.commit().unwrap();
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 1);
    assert_eq!(history_kinds(&db.client, id), ["created"]);

    // A task enqueued by the library is a duplicate for the statements too.
    let queued = db
        .client
        .enqueue(
            "order.mail",
            &json!({"order": 9}),
            &EnqueueOptions::default(),
        )
        .unwrap();
    let late = db
        .client
        .enqueue_statement(
            "order.mail",
            &json!({"order": 9}),
            &EnqueueOptions::default(),
        )
        .unwrap();
    let mut tx = app.start_transaction(TxOpts::default()).unwrap();
    let (_, (holder, status, created)) = run(&mut tx, &late);
    tx.commit().unwrap();
    assert_eq!(
        (holder, status.as_str(), created),
        (queued.id, "pending", 0)
    );
    assert_eq!(history_kinds(&db.client, queued.id), ["created"]);
}

#[test]
fn options_history_off_and_refusals() {
    let db = TestDb::server(json!({}));
    db.register(
        "order.mail",
        json!({"type": "object", "required": ["order"]}),
    );
    let quiet = db.client_with(json!({"enable_task_history": false}));
    let options: EnqueueOptions =
        from(json!({"priority": 4, "dedupe_key": "order-10", "max_attempts": 2}));
    let statement = quiet
        .enqueue_statement("order.mail", &json!({"order": 10}), &options)
        .unwrap();
    assert_eq!(statement.history_sql, None);
    assert_eq!(statement.statements, std::slice::from_ref(&statement.sql));
    assert_eq!(statement.dedupe_key, "order-10");
    let mut app = db.sql();
    let mut tx = app.start_transaction(TxOpts::default()).unwrap();
    let (_, (id, _, _)) = run(&mut tx, &statement);
    tx.commit().unwrap();
    let task = db.client.get_task(id).unwrap();
    assert_eq!((task.priority, task.max_attempts), (4, 2));
    assert!(history_kinds(&db.client, id).is_empty());

    let e = db
        .client
        .enqueue_statement("order.mail", &json!({}), &EnqueueOptions::default())
        .unwrap_err();
    assert_eq!(e.code(), Code::ValidationFailed);
    let e = db
        .client
        .enqueue_statement("nope", &json!({}), &EnqueueOptions::default())
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let windowed: EnqueueOptions = from(json!({"unique_for_seconds": 60}));
    let e = db
        .client
        .enqueue_statement("order.mail", &json!({"order": 1}), &windowed)
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("unique_for_seconds"),
        "{}",
        e.message()
    );
}
