//! Every statement of a worker's hot path (claim with lease recovery, complete,
//! complete_and_claim) is served by an index: no full scan and no filesort of `tasks`, with a
//! backlog of finished tasks in the table. The statements are the library's own.

mod common;

use common::{TestDb, any_object, from};
use mysql::prelude::Queryable;
use serde_json::json;
use taskmanager::*;

/// `table, type, key, Extra` of each EXPLAIN row.
fn plan(conn: &mut mysql::Conn, statement: &str) -> Vec<(String, String, String, String)> {
    let rows: Vec<mysql::Row> = conn
        .query(format!("EXPLAIN {statement}"))
        .unwrap_or_else(|e| panic!("EXPLAIN {statement}: {e}"));
    rows.into_iter()
        .map(|row| {
            let text = |name: &str| {
                row.get_opt::<Option<String>, _>(name)
                    .and_then(|v| v.ok())
                    .flatten()
                    .unwrap_or_default()
            };
            (text("table"), text("type"), text("key"), text("Extra"))
        })
        .collect()
}

#[test]
fn every_hot_path_statement_uses_an_index_and_no_filesort() {
    let db = TestDb::server(json!({}));
    db.register("plan", any_object());
    for round in 0..4 {
        let items: Vec<BatchItem> = (0..250)
            .map(|n| from(json!({"type": "plan", "params": {"round": round, "n": n}})))
            .collect();
        db.client.enqueue_batch(&items).unwrap();
    }
    // Most of the table finished, the rest pending: a backlog, as a busy queue has.
    let done = db.client.claim("w", &from(json!({"limit": 800}))).unwrap();
    let items: Vec<CompleteItem> = done
        .iter()
        .map(|t| from(json!({"id": t.id, "lease_token": t.lease_token})))
        .collect();
    db.client.complete_batch(&items).unwrap();
    let mut conn = db.sql();
    conn.query_drop("ANALYZE TABLE tasks, task_history")
        .unwrap();
    let pending: Vec<i64> = conn
        .query("SELECT id FROM tasks WHERE status = 'pending' ORDER BY id LIMIT 2")
        .unwrap();
    let mut checked = 0;
    for (limit, picked) in [
        (1, pending[0].to_string()),
        (10, format!("'[{},{}]'", pending[0], pending[1])),
    ] {
        conn.query_drop(format!(
            "SET @tm_example_id = {}, @tm_picked = {picked}, @tm_expired = '[{}]'",
            pending[0], pending[1]
        ))
        .unwrap();
        for statement in taskmanager::test_hooks::hot_path_statements(limit, true) {
            for (table, access, key, extra) in plan(&mut conn, &statement) {
                if matches!(table.as_str(), "tasks" | "t" | "task_types") {
                    assert!(
                        access != "ALL" && !key.is_empty(),
                        "full scan of {table} in: {statement}"
                    );
                    assert!(
                        !extra.contains("filesort"),
                        "filesort over {table} in: {statement}"
                    );
                    // Tasks picked earlier in the script are looked up by primary key, never
                    // found again by scanning a status range.
                    let by_id = statement.contains("JSON_TABLE(@")
                        || statement.contains("id = @")
                        || statement.contains("id = _utf8mb4");
                    let picks_by_status = statement.contains("FROM tasks WHERE")
                        || statement.contains("FROM tasks FORCE INDEX (idx_");
                    if by_id && table != "task_types" && !picks_by_status {
                        assert_eq!(key, "PRIMARY", "{table} not by primary key in: {statement}");
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "only {checked} plan rows were checked");
}
