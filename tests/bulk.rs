//! Claims filtered by a LIKE pattern and by type ids (either engine); and, on the server only
//! (`server_only`), cancel and retry by filter (`cancel_where`, `retry_where`): dry runs, the
//! history rows of the single actions, limits and continuing, tasks in the wrong state.

mod common;

use common::{TestDb, any_object, from, history_kinds};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use taskmanager::*;

fn filter(v: Value) -> BulkFilter {
    from(v)
}

fn options(v: Value) -> BulkOptions {
    from(v)
}

/// Status of every task, by id.
fn statuses(db: &TestDb) -> Vec<(i64, String)> {
    use mysql::prelude::Queryable;
    db.sql()
        .query("SELECT id, status FROM tasks ORDER BY id")
        .unwrap()
}

/// The history of a task without ids and times: what a reader compares.
fn history_rows(client: &Client, id: i64) -> Vec<(String, Option<String>)> {
    client
        .task_history(id)
        .unwrap()
        .into_iter()
        .map(|h| (h.status_change, h.message))
        .collect()
}

/// The type names a claim with `options` gets (every runnable task, released again after).
fn claimed_types(db: &TestDb, options: Value) -> BTreeSet<String> {
    let mut options = options;
    options["limit"] = json!(100);
    let got = db.client.claim("w", &from(options)).unwrap();
    for t in &got {
        db.client.release(t.id, &t.lease_token).unwrap();
    }
    got.into_iter().map(|t| t.type_name).collect()
}

#[test]
fn claims_filtered_by_a_like_pattern_and_by_type_ids() {
    let db = TestDb::new(json!({}));
    let names = [
        "report.daily",
        "report_weekly",
        "reportXmonthly",
        "a%b",
        "axb",
        "email",
    ];
    for name in names {
        db.register(name, any_object());
        db.enqueue(name, json!({}));
    }
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let by = |pattern: &str| claimed_types(&db, json!({"type_pattern": pattern}));
    assert_eq!(
        by("report_%"),
        set(&["report.daily", "report_weekly", "reportXmonthly"])
    );
    assert_eq!(by(r"report\_%"), set(&["report_weekly"]), "an escaped _");
    assert_eq!(
        by("REPORT._aily"),
        set(&["report.daily"]),
        "case-insensitive"
    );
    assert_eq!(by(r"a\%b"), set(&["a%b"]), "an escaped %");
    assert_eq!(by("a_b"), set(&["a%b", "axb"]));
    assert_eq!(by("nothing%"), set(&[]));
    assert_eq!(by("%"), set(&names));

    let id = |name: &str| db.client.get_type(name).unwrap().id;
    let ids = |v: Value| claimed_types(&db, v);
    assert_eq!(
        ids(json!({"type_ids": [id("email"), id("axb")]})),
        set(&["email", "axb"])
    );
    assert_eq!(ids(json!({"type_ids": [999_999]})), set(&[]));
    assert_eq!(
        ids(json!({"type_ids": [id("email"), id("report.daily")], "type_pattern": "report%"})),
        set(&["report.daily"]),
        "both must hold"
    );
    assert_eq!(
        ids(json!({"type_ids": [id("email")], "type_pattern": "report%"})),
        set(&[])
    );
    assert_eq!(
        ids(json!({"type_ids": [id("email")], "types": ["email", "axb"]})),
        set(&["email"])
    );
    assert_eq!(
        ids(json!({"type_ids": [id("axb")], "type_prefix": "a"})),
        set(&["axb"])
    );

    let refused = |v: Value| {
        let e = db.client.claim("w", &from(v)).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e}");
        e.message().to_string()
    };
    assert!(refused(json!({"type_pattern": r"report\"})).contains("escape character"));
    assert!(refused(json!({"type_pattern": ""})).contains("type_pattern must be 1 to"));
    assert!(
        refused(json!({"type_pattern": "a%", "type_prefix": "a"}))
            .contains("at most one of types, type_prefix and type_pattern")
    );
    assert!(refused(json!({"type_ids": []})).contains("type_ids must list 1 to 1000"));
    assert!(refused(json!({"type_ids": [0]})).contains("positive type ids, got 0"));

    // The pattern also filters the claim half of complete_and_claim.
    let t = db
        .client
        .claim("w", &from(json!({"type_pattern": "email"})))
        .unwrap()
        .remove(0);
    let next = db
        .client
        .complete_and_claim(
            t.id,
            &t.lease_token,
            &json!(null),
            "w",
            &from(json!({"type_pattern": "a\\%b"})),
        )
        .unwrap();
    assert_eq!(next.claimed.len(), 1);
    assert_eq!(next.claimed[0].type_name, "a%b");
}

/// Tests about the server itself (see tests/common): on the server whatever the engine, and left
/// out of the `sqlite` run by `--skip server_only::`.
mod server_only {
    use super::*;

    #[test]
    fn cancel_where_dry_run_then_for_real_with_the_single_cancels_rules_and_history() {
        let db = TestDb::server(json!({}));
        db.register("mail", any_object());
        db.register("other", any_object());
        let pending = db.enqueue("mail", json!({"n": 1}));
        let claimed = db.enqueue("mail", json!({"n": 2}));
        let completed = db.enqueue("mail", json!({"n": 3}));
        let cancelled = db.enqueue("mail", json!({"n": 4}));
        let untouched = db.enqueue("other", json!({"n": 5}));
        let single = db.enqueue("other", json!({"n": 6}));
        db.sql_exec(&format!(
            "UPDATE tasks SET status = 'completed', completed_at = NOW(6) WHERE id = {completed}"
        ));
        db.client.cancel(cancelled, None).unwrap();
        let c = db
            .client
            .claim(
                "w",
                &from(json!({"types": ["mail"], "sort_by": "id", "limit": 2})),
            )
            .unwrap();
        assert_eq!(
            c.iter().map(|t| t.id).collect::<Vec<_>>(),
            [pending, claimed]
        );
        db.client.release(pending, &c[0].lease_token).unwrap();
        let before = statuses(&db);

        let mail = filter(json!({"type": "mail"}));
        let dry = db
            .client
            .cancel_where(&mail, &options(json!({"dry_run": true, "reason": "r"})))
            .unwrap();
        assert_eq!(statuses(&db), before, "a dry run changes nothing");
        assert!(dry.dry_run);
        assert_eq!(dry.action, BulkAction::Cancel);
        assert_eq!(dry.matched, 4);
        assert_eq!(dry.changed, [claimed, pending], "newest first");
        assert_eq!(dry.unchanged, [cancelled]);
        assert_eq!(dry.skipped.len(), 1);
        let refused = db.client.cancel(completed, None).unwrap_err();
        assert_eq!(
            (
                dry.skipped[0].id,
                dry.skipped[0].code,
                dry.skipped[0].message.as_str()
            ),
            (completed, Code::Conflict, refused.message()),
            "the dry run answers what the single cancel answers"
        );
        assert_eq!(dry.next_before_id, None);

        let done = db
            .client
            .cancel_where(&mail, &options(json!({"reason": "not needed"})))
            .unwrap();
        assert_eq!(
            (done.dry_run, done.changed.clone(), done.unchanged.clone()),
            (false, dry.changed.clone(), dry.unchanged.clone())
        );
        assert_eq!(done.skipped, dry.skipped);
        for id in [pending, claimed] {
            assert_eq!(db.client.get_task(id).unwrap().status, "cancelled");
        }
        assert_eq!(db.client.get_task(completed).unwrap().status, "completed");
        assert_eq!(db.client.get_task(untouched).unwrap().status, "pending");
        // The same history row as a single cancel with the same reason.
        db.client.cancel(single, Some("not needed")).unwrap();
        assert_eq!(
            history_rows(&db.client, pending).last(),
            history_rows(&db.client, single).last()
        );
        assert_eq!(
            history_kinds(&db.client, claimed),
            ["created", "claimed", "cancelled"]
        );
        assert_eq!(
            history_kinds(&db.client, cancelled),
            ["created", "cancelled"],
            "an already cancelled task gets no second row"
        );

        // JSON as the C ABI writes it.
        let out = serde_json::to_value(&done).unwrap();
        assert_eq!(out["action"], "cancel");
        assert_eq!(out["skipped"][0]["code"], "TM_CONFLICT");
    }

    #[test]
    fn limits_page_through_and_the_report_says_where_to_go_on() {
        let db = TestDb::server(json!({}));
        db.register("bulk", any_object());
        let items: Vec<BatchItem> = (0..620)
            .map(|n| from(json!({"type": "bulk", "params": {"n": n}})))
            .collect();
        let mut ids: Vec<i64> = db
            .client
            .enqueue_batch(&items)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let pending = filter(json!({"status": "pending"}));
        let mut seen = Vec::new();
        // Across a page boundary (500) and stopped by the limit.
        let first = db
            .client
            .cancel_where(&pending, &options(json!({"limit": 550})))
            .unwrap();
        assert_eq!(first.changed, ids[..550]);
        assert_eq!(first.matched, 550);
        assert_eq!(first.next_before_id, Some(ids[549]));
        seen.extend(first.changed);
        // A filter on the status needs no before_id to go on; one that still selects the changed
        // tasks does.
        let by_type = filter(json!({"type": "bulk", "before_id": first.next_before_id}));
        let mut progress = Vec::new();
        let second = db
            .client
            .bulk(
                BulkAction::Cancel,
                &by_type,
                &options(json!({"limit": 60})),
                |r| progress.push(r.matched),
            )
            .unwrap();
        assert_eq!(progress, [60], "one page, reported once");
        assert_eq!(second.changed, ids[550..610]);
        assert_eq!(second.next_before_id, Some(ids[609]));
        seen.extend(second.changed);
        let last = db
            .client
            .cancel_where(&pending, &options(json!({"limit": 10})))
            .unwrap();
        assert_eq!(last.changed, ids[610..]);
        assert_eq!(
            last.next_before_id, None,
            "exactly the limit left: nothing more"
        );
        seen.extend(last.changed);
        assert_eq!(seen, ids);
        assert_eq!(
            db.count("SELECT COUNT(*) FROM task_history WHERE status_change = 'cancelled'"),
            620
        );
    }

    #[test]
    fn retry_where_puts_dead_tasks_back_and_skips_the_others() {
        let db = TestDb::server(json!({}));
        db.register("job", any_object());
        let failed = db.enqueue_with("job", json!({"n": 1}), json!({"max_attempts": 1}));
        let t = db.claim_one("w");
        db.client
            .fail(t.id, &t.lease_token, "boom", &Default::default())
            .unwrap();
        let cancelled = db.enqueue_with(
            "job",
            json!({"n": 2}),
            json!({"dedupe_key": "k", "dedupe_scope": "active"}),
        );
        db.client.cancel(cancelled, None).unwrap();
        // An active task took the dedupe key of the cancelled one: its retry is refused.
        let holder = db.enqueue_with(
            "job",
            json!({"n": 3}),
            json!({"dedupe_key": "k", "dedupe_scope": "active"}),
        );
        let pending = db.enqueue("job", json!({"n": 4}));
        let gone = holder + 1000;

        let ids = filter(json!({"ids": [failed, cancelled, pending, gone]}));
        let dry = db
            .client
            .retry_where(&ids, &options(json!({"dry_run": true})))
            .unwrap();
        assert_eq!(dry.changed, [cancelled, failed]);
        let skipped: Vec<(i64, Code)> = dry.skipped.iter().map(|s| (s.id, s.code)).collect();
        assert_eq!(
            skipped,
            [(pending, Code::Conflict), (gone, Code::NotFound)],
            "{dry:?}"
        );
        assert_eq!(
            dry.skipped[1].message,
            format!("task {gone} does not exist")
        );
        assert_eq!(dry.matched, 4);

        let done = db.client.retry_where(&ids, &Default::default()).unwrap();
        assert_eq!(done.changed, [failed]);
        assert!(done.unchanged.is_empty());
        let skipped: Vec<(i64, Code)> = done.skipped.iter().map(|s| (s.id, s.code)).collect();
        assert_eq!(
            skipped,
            [
                (pending, Code::Conflict),
                (cancelled, Code::Conflict),
                (gone, Code::NotFound)
            ],
            "newest first, then the ids not found"
        );
        assert!(
            done.skipped[1].message.contains("dedupe key"),
            "{:?}",
            done.skipped[1]
        );
        let back = db.client.get_task(failed).unwrap();
        assert_eq!((back.status.as_str(), back.attempts), ("pending", 0));
        assert_eq!(
            history_kinds(&db.client, failed),
            ["created", "claimed", "failed", "retried"]
        );
        assert_eq!(db.client.get_task(cancelled).unwrap().status, "cancelled");

        // Combined with another field, an id the filter leaves out is named as such.
        let mixed = db
            .client
            .retry_where(
                &filter(json!({"ids": [pending], "status": "failed"})),
                &options(json!({"dry_run": true})),
            )
            .unwrap();
        assert_eq!(mixed.skipped[0].code, Code::NotFound);
        assert!(
            mixed.skipped[0]
                .message
                .contains("the filter does not select it")
        );
    }

    #[test]
    fn bulk_refusals_name_the_rule() {
        let db = TestDb::server(json!({}));
        let refused = |f: Value, o: Value| {
            let e = db.client.cancel_where(&filter(f), &options(o)).unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{e}");
            e.message().to_string()
        };
        assert!(refused(json!({}), json!({})).contains("give task ids"));
        assert!(refused(json!({"before_id": 5}), json!({})).contains("give task ids"));
        assert!(refused(json!({"status": "x"}), json!({})).contains("status must be one of"));
        assert!(refused(json!({"ids": []}), json!({})).contains("at least one task id"));
        assert!(refused(json!({"ids": [0]}), json!({})).contains("task id"));
        assert!(refused(json!({"status": "pending"}), json!({"limit": 0})).contains("limit"));
        assert!(refused(json!({"status": "pending"}), json!({"limit": 10001})).contains("10000"));
        let e = db
            .client
            .retry_where(
                &filter(json!({"status": "failed"})),
                &options(json!({"reason": "x"})),
            )
            .unwrap_err();
        assert!(e.message().contains("reason applies to cancel only"), "{e}");
        let unknown: std::result::Result<BulkFilter, _> =
            serde_json::from_value(json!({"offset": 3}));
        assert!(unknown.is_err(), "paging fields are not a selection");
    }
}
