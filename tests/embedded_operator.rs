//! The embedded engine's operator steps: cancel, retry and prune, answering as the server
//! engine does (its messages, codes and JSON shapes).

mod embedded_support;

use embedded_support::*;
use serde_json::{Value, json};
use taskmanager::*;

#[test]
fn cancel_and_retry_follow_the_server_engines_rules() {
    let q = Queue::new(json!({"enable_task_history": true}));
    q.register("op");
    let id = q.enqueue("op", json!({"n": 1}));

    let cancelled = q.client.cancel(id, None).unwrap();
    assert_eq!(
        (cancelled.id, cancelled.status, cancelled.repeated),
        (id, Status::Cancelled, false)
    );
    // Again: a no-op that succeeds, and writes nothing.
    let again = q.client.cancel(id, Some("twice")).unwrap();
    assert_eq!((again.status, again.repeated), (Status::Cancelled, true));
    assert_eq!(q.client.get_task(id).unwrap().error_message, None);
    assert_eq!(history(&q, id).len(), 2);

    let retried = q.client.retry(id).unwrap();
    assert_eq!((retried.status, retried.repeated), (Status::Pending, false));
    assert_eq!(
        error(q.client.retry(id)),
        (
            Code::Conflict,
            format!("task {id} is pending: retry needs a failed or cancelled task")
        )
    );

    // A claimed task can be cancelled: its lease is over.
    let held = q.claim("w1", "op");
    assert_eq!(held.id, id);
    q.client.cancel(id, Some("stop")).unwrap();
    let t = q.client.get_task(id).unwrap();
    assert_eq!(
        (t.status, t.lease_expires_at, t.error_message.as_deref()),
        (Status::Cancelled, None, Some("stop"))
    );
    assert!(t.completed_at.is_some());
    assert_eq!(
        error(q.client.complete(id, &held.lease_token, &json!(1))).0,
        Code::LeaseLost
    );

    // A completed task cannot be cancelled, nor retried.
    let other = q.enqueue("op", json!({"n": 2}));
    let task = q.claim("w1", "op");
    q.client
        .complete(other, &task.lease_token, &json!(null))
        .unwrap();
    assert_eq!(
        error(q.client.cancel(other, None)),
        (
            Code::Conflict,
            format!("task {other} is completed: cancel needs a pending or claimed task")
        )
    );
    assert_eq!(
        error(q.client.retry(other)),
        (
            Code::Conflict,
            format!("task {other} is completed: retry needs a failed or cancelled task")
        )
    );
    assert_eq!(q.client.get_task(other).unwrap().status, Status::Completed);

    // A dead task comes back with its attempts reset, and runs again.
    let dead = q.enqueue_with("op", json!({"n": 3}), json!({"max_attempts": 1}));
    let task = q.claim("w1", "op");
    let failed = q
        .client
        .fail(dead, &task.lease_token, "broken", &Default::default())
        .unwrap();
    assert_eq!((failed.status, failed.attempts), (Status::Failed, 1));
    q.client.retry(dead).unwrap();
    let t = q.client.get_task(dead).unwrap();
    assert_eq!(
        (
            t.status,
            t.attempts,
            t.completed_at,
            t.error_message.as_deref()
        ),
        (Status::Pending, 0, None, Some("broken"))
    );
    assert_eq!(q.claim("w2", "op").id, dead);
    assert_eq!(
        history(&q, dead).last().unwrap(),
        &row("claimed", Some("w2"), None)
    );

    // Unknown and invalid ids.
    for result in [q.client.cancel(424_242, None), q.client.retry(424_242)] {
        assert_eq!(
            error(result),
            (Code::NotFound, "task 424242 does not exist".into())
        );
    }
    assert_eq!(error(q.client.cancel(0, None)).0, Code::InvalidArgument);
    assert_eq!(error(q.client.retry(-5)).0, Code::InvalidArgument);
}

#[test]
fn retry_takes_the_dedupe_key_again_or_is_a_conflict() {
    let q = Queue::new(json!({"enable_task_history": true}));
    q.register("d");
    let key = json!({"dedupe_key": "k1", "dedupe_scope": "active"});
    let first = q.enqueue_with("d", json!({"n": 1}), key.clone());
    q.client.cancel(first, None).unwrap();
    // The cancel freed the active key: the same work may be enqueued again.
    let second = q
        .client
        .enqueue("d", &json!({"n": 2}), &from(key.clone()))
        .unwrap();
    assert!(!second.deduplicated);
    assert_ne!(second.id, first);

    // The retry would take the key another active task holds: refused, nothing changed.
    assert_eq!(
        error(q.client.retry(first)),
        (
            Code::Conflict,
            format!("task {first} cannot be retried: another active task holds its dedupe key")
        )
    );
    assert_eq!(q.client.get_task(first).unwrap().status, Status::Cancelled);
    assert_eq!(history(&q, first).len(), 2);

    q.client.cancel(second.id, None).unwrap();
    q.client.retry(first).unwrap();
    // The retried task holds its key again.
    let third = q.client.enqueue("d", &json!({"n": 3}), &from(key)).unwrap();
    assert!(third.deduplicated);
    assert_eq!(third.id, first);
}

#[test]
fn a_waiting_claim_gets_a_retried_task() {
    let q = Queue::new(json!({}));
    q.register("wait");
    let id = q.enqueue_with("wait", json!({}), json!({"max_attempts": 1}));
    let task = q.claim("w1", "wait");
    q.client
        .fail(id, &task.lease_token, "x", &Default::default())
        .unwrap();
    let client = q.client.clone();
    let (started, has_started) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        started.send(()).unwrap();
        client.claim("w2", &from(json!({"types": ["wait"], "wait_seconds": 30})))
    });
    has_started.recv().unwrap();
    q.client.retry(id).unwrap();
    let claimed = waiter.join().unwrap().unwrap();
    assert_eq!(claimed.iter().map(|t| t.id).collect::<Vec<_>>(), vec![id]);
}

#[test]
fn prune_deletes_old_finished_tasks_with_their_history() {
    let q = Queue::new(json!({"enable_task_history": true}));
    q.register("p");
    let id = |n: i64| q.enqueue("p", json!({"n": n}));
    let completed: Vec<i64> = (0..3).map(id).collect();
    let young = id(3);
    let dead = id(4);
    let cancelled = id(5);
    let claimed = id(6);
    let pending = id(7);
    for want in completed.iter().chain([&young]) {
        let task = q.claim("w", "p");
        assert_eq!(task.id, *want);
        q.client
            .complete(task.id, &task.lease_token, &json!(null))
            .unwrap();
    }
    let task = q.claim("w", "p");
    assert_eq!(task.id, dead);
    q.client
        .fail(dead, &task.lease_token, "x", &from(json!({"retry": false})))
        .unwrap();
    q.client.cancel(cancelled, None).unwrap();
    assert_eq!(q.claim("w", "p").id, claimed);
    // Every finished task but `young` finished two hours ago; so did the others' rows.
    q.sql(&format!(
        "UPDATE tasks SET completed_at = completed_at - 7200000000 WHERE id <> {young} \
         AND status IN ('completed', 'failed', 'cancelled'); \
         UPDATE tasks SET created_at = created_at - 7200000000, \
         updated_at = updated_at - 7200000000 WHERE id IN ({pending}, {claimed})"
    ));
    // The always-scoped key of a finished task still blocks the same work.
    let same = q
        .client
        .enqueue("p", &json!({"n": 0}), &Default::default())
        .unwrap();
    assert!(same.deduplicated);
    let history_rows =
        |ids: &[i64]| -> u64 { ids.iter().map(|id| history(&q, *id).len() as u64).sum() };
    let old_completed_history = history_rows(&completed);

    // A dry run counts and deletes nothing.
    let report = q
        .client
        .prune(&from(json!({"older_than_seconds": 3600, "dry_run": true})))
        .unwrap();
    assert_eq!(
        report,
        from_report(json!({"tasks": 5, "history": 0, "batches": 0, "done": true, "dry_run": true}))
    );
    assert_eq!(q.list(json!({})).len(), 8);

    // Completed ones first, one per batch, each batch reported.
    let mut seen = Vec::new();
    let report = q
        .client
        .prune_with_progress(
            &from(json!({"older_than_seconds": 3600, "statuses": ["completed"], "batch_size": 1})),
            |r| seen.push((r.tasks, r.batches)),
        )
        .unwrap();
    assert_eq!(
        report,
        from_report(
            json!({"tasks": 3, "history": old_completed_history, "batches": 3,
                           "done": true, "dry_run": false})
        )
    );
    assert_eq!(seen, [(1, 1), (2, 2), (3, 3)]);
    for gone in &completed {
        assert_eq!(error(q.client.get_task(*gone)).0, Code::NotFound);
        assert_eq!(q.client.task_history(*gone).unwrap(), vec![]);
    }
    // `young` finished too recently.
    assert_eq!(q.client.get_task(young).unwrap().status, Status::Completed);

    // A bounded call stops early and says so; the next one finishes.
    let bounded = json!({"older_than_seconds": 3600, "batch_size": 1, "max_batches": 1});
    let report = q.client.prune(&from(bounded)).unwrap();
    assert_eq!((report.tasks, report.batches, report.done), (1, 1, false));
    assert_eq!(report.history, 3);
    let report = q
        .client
        .prune(&from(json!({"older_than_seconds": 3600})))
        .unwrap();
    assert_eq!((report.tasks, report.history, report.done), (1, 2, true));
    assert_eq!(error(q.client.get_task(dead)).0, Code::NotFound);
    assert_eq!(error(q.client.get_task(cancelled)).0, Code::NotFound);

    // Nothing old is left; pending and claimed tasks never go, whatever their age.
    let report = q
        .client
        .prune(&from(json!({"older_than_seconds": 0})))
        .unwrap();
    assert_eq!((report.tasks, report.history, report.batches), (1, 3, 1));
    assert_eq!(q.list(json!({})), [pending, claimed]);
    assert_eq!(history(&q, pending).len(), 1);
    assert_eq!(history(&q, claimed).len(), 2);

    // A pruned task's key is free again.
    let again = q
        .client
        .enqueue("p", &json!({"n": 0}), &Default::default())
        .unwrap();
    assert!(!again.deduplicated);

    // The server engine's checks.
    let prune = |options: Value| error(q.client.prune(&from(options)));
    assert_eq!(
        prune(json!({"older_than_seconds": 0, "statuses": ["pending"]})),
        (
            Code::InvalidArgument,
            "only finished tasks can be pruned: statuses may hold completed, failed and \
             cancelled, got 'pending'"
                .into()
        )
    );
    assert_eq!(
        prune(json!({"older_than_seconds": 0, "batch_size": 0})),
        (
            Code::InvalidArgument,
            "batch_size must be from 1 to 5000, got 0".into()
        )
    );
    assert_eq!(
        prune(json!({"older_than_seconds": 0, "max_batches": 0})).1,
        "max_batches must be at least 1"
    );
    assert_eq!(
        prune(json!({"older_than_seconds": 0, "statuses": []})).1,
        "statuses must list at least one status"
    );
    assert_eq!(
        prune(json!({"older_than_seconds": 4_000_000_000u64})).0,
        Code::InvalidArgument
    );
}

/// A prune report from its JSON (the report itself has no constructor in the API).
fn from_report(value: Value) -> PruneReport {
    let report = PruneReport {
        tasks: value["tasks"].as_u64().unwrap(),
        history: value["history"].as_u64().unwrap(),
        batches: value["batches"].as_u64().unwrap(),
        done: value["done"].as_bool().unwrap(),
        dry_run: value["dry_run"].as_bool().unwrap(),
    };
    assert_eq!(serde_json::to_value(&report).unwrap(), value);
    report
}
