//! Dedupe (including races), task types, validation, and bad input of every kind.

mod common;

use common::{TestDb, any_object, from};
use serde_json::json;
use std::sync::{Arc, Barrier};
use taskmanager::*;

#[test]
fn key_order_does_not_change_the_dedupe_key() {
    let db = TestDb::new(json!({}));
    db.register("d", any_object());
    let a = db
        .client
        .enqueue(
            "d",
            &json!({"a": 1, "b": {"y": 2, "x": 1}}),
            &EnqueueOptions::default(),
        )
        .unwrap();
    let b = db
        .client
        .enqueue(
            "d",
            &serde_json::from_str(r#"{ "b" : {"x":1,"y":2}, "a":1 }"#).unwrap(),
            &EnqueueOptions::default(),
        )
        .unwrap();
    assert_eq!((a.id, a.deduplicated, b.deduplicated), (b.id, false, true));
    assert_eq!(a.dedupe_key, b.dedupe_key);
    assert_eq!(
        a.dedupe_key,
        taskmanager::dedupe::compute_key("d", &json!({"a": 1, "b": {"x": 1, "y": 2}}))
    );
    let c = db
        .client
        .enqueue("d", &json!({"a": 2}), &EnqueueOptions::default())
        .unwrap();
    assert!(!c.deduplicated);
    let own = db
        .client
        .enqueue(
            "d",
            &json!({"a": 3}),
            &from::<EnqueueOptions>(json!({"dedupe_key": "invoice-42"})),
        )
        .unwrap();
    let own2 = db
        .client
        .enqueue(
            "d",
            &json!({"a": 4}),
            &from::<EnqueueOptions>(json!({"dedupe_key": "invoice-42"})),
        )
        .unwrap();
    assert_eq!(
        (own.dedupe_key.as_str(), own2.id, own2.deduplicated),
        ("invoice-42", own.id, true)
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 3);
}

#[test]
fn concurrent_identical_enqueues_make_one_row() {
    let db = TestDb::new(json!({"pool_max_connections": 8}));
    db.register("once", any_object());
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (client, barrier) = (db.client.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                (0..20)
                    .map(|n| {
                        client
                            .enqueue("once", &json!({"n": n}), &EnqueueOptions::default())
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Enqueued> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 20);
    assert_eq!(
        results.iter().filter(|e| !e.deduplicated).count(),
        20,
        "exactly one creator per key"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM task_history WHERE status_change = 'created'"),
        20
    );
    for n in 0..20 {
        let key = taskmanager::dedupe::compute_key("once", &json!({"n": n}));
        let ids: std::collections::HashSet<i64> = results
            .iter()
            .filter(|e| e.dedupe_key == key)
            .map(|e| e.id)
            .collect();
        assert_eq!(ids.len(), 1);
    }
}

#[test]
fn scope_active_allows_the_same_work_again_once_finished() {
    let db = TestDb::new(json!({}));
    db.register("sync", any_object());
    let active = from::<EnqueueOptions>(json!({"dedupe_scope": "active"}));
    let first = db
        .client
        .enqueue("sync", &json!({"user": 7}), &active)
        .unwrap();
    let while_pending = db
        .client
        .enqueue("sync", &json!({"user": 7}), &active)
        .unwrap();
    assert_eq!(
        (while_pending.id, while_pending.deduplicated),
        (first.id, true)
    );
    let t = db.claim_one("w");
    let while_claimed = db
        .client
        .enqueue("sync", &json!({"user": 7}), &active)
        .unwrap();
    assert!(while_claimed.deduplicated);
    db.client
        .complete(t.id, &t.lease_token, &json!(null))
        .unwrap();
    let again = db
        .client
        .enqueue("sync", &json!({"user": 7}), &active)
        .unwrap();
    assert!(!again.deduplicated);
    assert_ne!(again.id, first.id);
    // The default scope keeps the original behaviour: a key once used blocks forever.
    let always = db
        .client
        .enqueue("sync", &json!({"user": 8}), &EnqueueOptions::default())
        .unwrap();
    let t = db.client.claim("w", &from(json!({"limit": 10}))).unwrap();
    assert_eq!(t.len(), 2);
    for task in t {
        db.client
            .complete(task.id, &task.lease_token, &json!(null))
            .unwrap();
    }
    let blocked = db
        .client
        .enqueue("sync", &json!({"user": 8}), &EnqueueOptions::default())
        .unwrap();
    assert_eq!(
        (blocked.id, blocked.deduplicated, blocked.status.as_str()),
        (always.id, true, "completed")
    );
}

#[test]
fn validation_lists_every_violation_and_writes_nothing() {
    let db = TestDb::new(json!({}));
    db.register("user.create", json!({
        "type": "object", "required": ["email", "age"], "additionalProperties": false,
        "properties": {"email": {"type": "string", "pattern": "^[^@]+@[^@]+$"}, "age": {"type": "integer", "minimum": 0}}
    }));
    let e = db
        .client
        .enqueue(
            "user.create",
            &json!({"email": "nope", "age": -1, "extra": true}),
            &EnqueueOptions::default(),
        )
        .unwrap_err();
    assert_eq!(e.code(), Code::ValidationFailed);
    let violations = e.details().unwrap()["violations"].as_array().unwrap();
    let paths: Vec<&str> = violations
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"/email") && paths.contains(&"/age") && paths.contains(&"/"),
        "{violations:?}"
    );
    assert_eq!(violations.len(), 3);
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 0);
    // With validation off the same params are stored.
    let lax = db.client_with(json!({"enable_schema_validation": false}));
    assert!(
        lax.enqueue(
            "user.create",
            &json!({"email": "nope"}),
            &EnqueueOptions::default()
        )
        .is_ok()
    );
}

#[test]
fn type_registration_rules() {
    let db = TestDb::new(json!({}));
    let v1 = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let first = db
        .client
        .register_type(&from::<TypeDefinition>(
            json!({"name": "t", "version": "1.0.0", "param_schema": v1}),
        ))
        .unwrap();
    assert_eq!(
        (first.changed, first.is_active, first.version.as_str()),
        (Some(true), true, "1.0.0")
    );
    let same = db
        .client
        .register_type(&from::<TypeDefinition>(
            json!({"name": "t", "version": "1.0.0", "param_schema": v1}),
        ))
        .unwrap();
    assert_eq!((same.changed, same.id), (Some(false), first.id));
    let clash = db
        .client
        .register_type(&from::<TypeDefinition>(
            json!({"name": "t", "version": "1.0.0", "param_schema": {"type": "object"}}),
        ))
        .unwrap_err();
    assert_eq!(clash.code(), Code::Conflict);
    assert!(clash.message().contains("'1.0.0'"), "{clash}");
    // Enqueue against v1 caches its validator; v2 must replace it for new tasks.
    db.client
        .enqueue("t", &json!({"a": "x"}), &EnqueueOptions::default())
        .unwrap();
    let v2 = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    let second = db
        .client
        .register_type(&from::<TypeDefinition>(
            json!({"name": "t", "version": 2, "param_schema": v2}),
        ))
        .unwrap();
    // An integer version is taken as its decimal text.
    assert_eq!((second.version.as_str(), second.id), ("2", first.id));
    assert_eq!(
        db.client
            .enqueue("t", &json!({"a": "y"}), &EnqueueOptions::default())
            .unwrap_err()
            .code(),
        Code::ValidationFailed
    );
    db.client
        .enqueue("t", &json!({"a": 5}), &EnqueueOptions::default())
        .unwrap();
    // Versions are labels, not ordered: going back to 1.0.0 replaces the schema again, and a
    // label that differs only in case is another version.
    let back = db
        .client
        .register_type(&from::<TypeDefinition>(
            json!({"name": "t", "version": "1.0.0", "param_schema": v1}),
        ))
        .unwrap();
    assert_eq!((back.version.as_str(), back.changed), ("1.0.0", Some(true)));
    db.client
        .enqueue("t", &json!({"a": "z"}), &EnqueueOptions::default())
        .unwrap();
    let upper = db
        .client
        .register_type(&from::<TypeDefinition>(
            json!({"name": "t", "version": "1.0.0-RC", "param_schema": v2}),
        ))
        .unwrap();
    assert_eq!(upper.version, "1.0.0-RC");
    let lower = db
        .client
        .register_type(&from::<TypeDefinition>(
            json!({"name": "t", "version": "1.0.0-rc", "param_schema": v1}),
        ))
        .unwrap();
    assert_eq!(lower.version, "1.0.0-rc");
    // The enqueue validated against 1.0.0-RC's cached schema must see the change.
    db.client
        .enqueue("t", &json!({"a": "after"}), &EnqueueOptions::default())
        .unwrap();
    for (version, what) in [
        (json!(""), "1 to 50 characters"),
        (json!("x".repeat(51)), "1 to 50 characters"),
        (json!("1\n"), "control characters"),
    ] {
        let e = db
            .client
            .register_type(&from::<TypeDefinition>(
                json!({"name": "t", "version": version, "param_schema": v1}),
            ))
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{version}: {e}");
        assert!(e.message().contains(what), "{version}: {e}");
    }
    let shape = serde_json::from_value::<TypeDefinition>(
        json!({"name": "t", "version": 1.5, "param_schema": v1}),
    )
    .unwrap_err();
    assert!(
        shape.to_string().contains("version must be a string"),
        "{shape}"
    );
    let bad = db
        .client
        .register_type(&from::<TypeDefinition>(
            json!({"name": "u", "param_schema": {"type": 12}}),
        ))
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidSchema);
    let remote = db
        .client
        .register_type(&from::<TypeDefinition>(
            json!({"name": "u", "param_schema": {"$ref": "http://127.0.0.1:9/x.json"}}),
        ))
        .unwrap_err();
    assert_eq!(remote.code(), Code::InvalidSchema);
    assert_eq!(db.count("SELECT COUNT(*) FROM task_types"), 1);
    assert_eq!(db.client.list_types().unwrap().len(), 1);
}

#[test]
fn inactive_and_unknown_types_are_refused() {
    let db = TestDb::new(json!({}));
    db.register("old", any_object());
    let queued = db
        .client
        .enqueue("old", &json!({"n": 1}), &EnqueueOptions::default())
        .unwrap();
    let t = db.client.set_type_active("old", false).unwrap();
    assert!(!t.is_active);
    let e = db
        .client
        .enqueue("old", &json!({"n": 2}), &EnqueueOptions::default())
        .unwrap_err();
    assert_eq!(e.code(), Code::TypeInactive);
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 1);
    // Existing tasks of a deactivated type still run.
    assert_eq!(
        db.client.claim("w", &ClaimOptions::default()).unwrap()[0].id,
        queued.id
    );
    db.client.set_type_active("old", true).unwrap();
    db.client
        .enqueue("old", &json!({"n": 2}), &EnqueueOptions::default())
        .unwrap();
    assert_eq!(
        db.client
            .enqueue("missing", &json!({}), &EnqueueOptions::default())
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        db.client
            .set_type_active("missing", true)
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

#[test]
fn oversized_and_deep_payloads_are_refused_before_the_database() {
    let db = TestDb::new(json!({"max_payload_bytes": 1024}));
    db.register("p", any_object());
    let big = json!({"blob": "x".repeat(2000)});
    assert_eq!(
        db.client
            .enqueue("p", &big, &EnqueueOptions::default())
            .unwrap_err()
            .code(),
        Code::PayloadTooLarge
    );
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!({"d": deep});
    }
    assert_eq!(
        db.client
            .enqueue("p", &deep, &EnqueueOptions::default())
            .unwrap_err()
            .code(),
        Code::PayloadTooLarge
    );
    db.client
        .enqueue("p", &json!({"ok": true}), &EnqueueOptions::default())
        .unwrap();
    let t = db.claim_one("w");
    assert_eq!(
        db.client
            .complete(t.id, &t.lease_token, &big)
            .unwrap_err()
            .code(),
        Code::PayloadTooLarge
    );
    assert_eq!(db.client.get_task(t.id).unwrap().status, "claimed");
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 1);
}

#[test]
fn bad_arguments_get_invalid_argument() {
    let db = TestDb::new(json!({}));
    db.register("a", any_object());
    let cases: Vec<Error> = vec![
        db.client
            .enqueue("", &json!({}), &EnqueueOptions::default())
            .unwrap_err(),
        db.client
            .enqueue(
                "a",
                &json!({}),
                &from::<EnqueueOptions>(json!({"run_at": "next tuesday"})),
            )
            .unwrap_err(),
        db.client
            .enqueue(
                "a",
                &json!({}),
                &from::<EnqueueOptions>(json!({"delay_seconds": -1})),
            )
            .unwrap_err(),
        db.client
            .enqueue(
                "a",
                &json!({}),
                &from::<EnqueueOptions>(json!({"max_attempts": 0})),
            )
            .unwrap_err(),
        db.client
            .enqueue(
                "a",
                &json!({}),
                &from::<EnqueueOptions>(json!({"dedupe_key": ""})),
            )
            .unwrap_err(),
        db.client.claim("", &ClaimOptions::default()).unwrap_err(),
        db.client
            .claim("w", &from(json!({"limit": 0})))
            .unwrap_err(),
        db.client
            .claim("w", &from(json!({"limit": 100000})))
            .unwrap_err(),
        db.client
            .claim("w", &from(json!({"types": []})))
            .unwrap_err(),
        db.client
            .claim("w", &from(json!({"types": ["a"], "type_prefix": "a"})))
            .unwrap_err(),
        db.client.complete(-1, "t", &json!(1)).unwrap_err(),
        db.client.complete(1, "", &json!(1)).unwrap_err(),
    ];
    for e in cases {
        assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 0);
}

#[test]
fn hostile_and_non_ascii_text_is_stored_exactly() {
    let db = TestDb::new(json!({}));
    let names = [
        "x'; DROP TABLE tasks; --",
        "Příliš žluťoučký kůň 🐎",
        "back\\slash\"quote`tick",
        "50%_off",
    ];
    for name in names {
        db.register(name, any_object());
        let params = json!({"text": "úpěl ďábelské ódy 😀", "sql": "' OR 1=1 --", "name": name});
        let e = db
            .client
            .enqueue(name, &params, &EnqueueOptions::default())
            .unwrap();
        let worker = format!("dělník-🤖-{name}");
        let t = db
            .client
            .claim(&worker, &from(json!({"types": [name]})))
            .unwrap()
            .remove(0);
        assert_eq!((t.id, t.type_name.as_str()), (e.id, name));
        assert_eq!(t.params, params);
        db.client
            .fail(
                t.id,
                &t.lease_token,
                "chyba: 🔥 ' \" \\",
                &from(json!({"retry": false})),
            )
            .unwrap();
        let got = db.client.get_task(e.id).unwrap();
        assert_eq!(got.params, params);
        assert_eq!(got.claimed_by.as_deref(), Some(worker.as_str()));
        assert_eq!(got.error_message.as_deref(), Some("chyba: 🔥 ' \" \\"));
        assert_eq!(db.client.get_type(name).unwrap().name, name);
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 4);
}

#[test]
fn wrong_password_never_appears_in_errors() {
    let db = TestDb::new(json!({}));
    let config = common::TestDb::config(&db.name, json!({"db_pass": "hunter2-Secret!"}));
    let e = Client::open(config.clone()).unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(!format!("{e:?}").contains("hunter2"));
    assert!(!format!("{config:?}").contains("hunter2"));
    assert_eq!(e.code(), Code::Config, "{e}");
    let unreachable = common::TestDb::config(
        &db.name,
        json!({"db_port": 1, "db_pass": "hunter2-Secret!", "connect_timeout": 2}),
    );
    let e = Client::open(unreachable).unwrap_err();
    assert_eq!(e.code(), Code::Connection, "{e}");
    assert!(!e.to_string().contains("hunter2"));
}

#[test]
fn an_unmigrated_database_says_so() {
    let db = TestDb::empty(json!({}));
    let e = db
        .client
        .enqueue("x", &json!({}), &EnqueueOptions::default())
        .unwrap_err();
    assert_eq!(e.code(), Code::SchemaOutdated, "{e}");
    assert!(e.message().contains("migrat"));
    let report = db.client.migrate().unwrap();
    assert_eq!(report.applied, [1, 2, 3, 4, 5]);
    assert_eq!(
        db.client
            .enqueue("x", &json!({}), &EnqueueOptions::default())
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

#[test]
fn concurrent_first_registrations_of_one_type_all_succeed() {
    let db = TestDb::new(json!({"pool_max_connections": 8}));
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (client, barrier) = (db.client.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                client.register_type(&from(
                    json!({"name": "raced", "param_schema": {"type": "object"}}),
                ))
            })
        })
        .collect();
    let results: Vec<TaskType> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|t| t.changed == Some(true)).count(),
        1
    );
    assert!(results.iter().all(|t| t.id == results[0].id));
    assert_eq!(db.count("SELECT COUNT(*) FROM task_types"), 1);
}

#[test]
fn retrying_a_dead_task_whose_key_is_taken_again_is_a_conflict() {
    let db = TestDb::new(json!({}));
    db.register("sync", any_object());
    let active = json!({"dedupe_scope": "active"});
    let dead = db.enqueue_with("sync", json!({"user": 1}), active.clone());
    let t = db.claim_one("w");
    db.client
        .fail(t.id, &t.lease_token, "no", &from(json!({"retry": false})))
        .unwrap();
    let newer = db.enqueue_with("sync", json!({"user": 1}), active);
    assert_ne!(newer, dead, "the dead task no longer holds its key");
    let e = db.client.retry(dead).unwrap_err();
    assert_eq!(e.code(), Code::Conflict, "{e}");
    assert!(e.message().contains("dedupe key"));
    assert_eq!(
        db.client.get_task(dead).unwrap().status,
        "failed",
        "nothing changed"
    );
    db.client.cancel(newer, None).unwrap();
    assert_eq!(
        db.client.retry(dead).unwrap().status,
        "pending",
        "free again once the newer one is cancelled"
    );
}

/// Property: any text a caller passes (type names, params, dedupe keys, worker ids, results,
/// error messages, cancel reasons) is stored and returned byte for byte, and none of it can
/// change the SQL it travels in. Random strings over an alphabet of SQL metacharacters.
#[test]
fn hostile_strings_survive_every_path() {
    const ALPHABET: &[&str] = &[
        "'",
        "\"",
        "\\",
        "`",
        ";",
        "--",
        "#",
        "/*",
        "*/",
        "%",
        "_",
        "!",
        "\\0",
        "X'",
        "0x",
        "_utf8mb4",
        "UNION",
        "DROP TABLE tasks",
        "é",
        "🎉",
        "\u{2028}",
        " ",
        "a",
        "Z",
        "9",
        ")",
        "(",
        ",",
    ];
    let db = TestDb::new(json!({}));
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut text = |max: u64| -> String {
        let len = 1 + next() % max;
        (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect()
    };
    for round in 0..40 {
        let type_name = format!("t{round}{}", text(6));
        db.register(&type_name, any_object());
        let params = json!({"s": text(20), "k": {"nested": text(10)}});
        let key = format!("{round}:{}", text(12));
        let e = db
            .client
            .enqueue(
                &type_name,
                &params,
                &from(json!({"dedupe_key": key, "priority": 1000 + round})),
            )
            .unwrap();
        assert_eq!(e.dedupe_key, key);
        let worker = text(15);
        let claim: ClaimOptions = from(json!({"types": [type_name]}));
        let got = db.client.claim(&worker, &claim).unwrap();
        assert_eq!(
            got.len(),
            1,
            "type {type_name:?} worker {worker:?} task {:?}",
            db.client.get_task(e.id)
        );
        let t = got.into_iter().next().unwrap();
        assert_eq!((t.id, &t.type_name, &t.params), (e.id, &type_name, &params));
        let stored = db.client.get_task(e.id).unwrap();
        assert_eq!(stored.claimed_by.as_deref(), Some(worker.as_str()));
        if round % 2 == 0 {
            let result = json!([text(20)]);
            db.client.complete(t.id, &t.lease_token, &result).unwrap();
            assert_eq!(db.client.get_task(e.id).unwrap().result, result);
        } else {
            let message = text(30);
            let failed = db
                .client
                .fail(
                    t.id,
                    &t.lease_token,
                    &message,
                    &from(json!({"retry": false})),
                )
                .unwrap();
            assert_eq!(failed.status, "failed");
            assert_eq!(
                db.client.get_task(e.id).unwrap().error_message.as_deref(),
                Some(message.as_str())
            );
            let reason = text(10);
            db.client.retry(e.id).unwrap();
            db.client.cancel(e.id, Some(&reason)).unwrap();
            assert_eq!(
                db.client.get_task(e.id).unwrap().error_message.as_deref(),
                Some(reason.as_str())
            );
        }
        // The same key again is the same task: the key compared exactly, not as a pattern.
        let again = db
            .client
            .enqueue(&type_name, &params, &from(json!({"dedupe_key": key})))
            .unwrap();
        assert!(again.deduplicated && again.id == e.id);
        // A batch carries its rows as one JSON document: the same text survives that path.
        let batch: Vec<BatchItem> = from(json!([
            {"type": type_name, "params": {"b": text(20)},
             "options": {"dedupe_key": format!("{round}:b1:{}", text(8))}},
            {"type": type_name, "params": {"b": [text(20), "\n\t\u{1}\u{1f}"]},
             "options": {"dedupe_key": format!("{round}:b2:{}", text(8)),
                         "run_at": "2030-01-02T03:04:05Z", "priority": -round}},
        ]));
        let out = db.client.enqueue_batch(&batch).unwrap();
        for (item, enqueued) in batch.iter().zip(&out) {
            assert!(!enqueued.deduplicated);
            assert_eq!(Some(&enqueued.dedupe_key), item.options.dedupe_key.as_ref());
            let stored = db.client.get_task(enqueued.id).unwrap();
            assert_eq!(stored.params, item.params);
            assert_eq!(stored.priority, item.options.priority.unwrap_or(0));
        }
        assert_eq!(
            db.client.get_task(out[1].id).unwrap().run_at,
            "2030-01-02T03:04:05.000000Z"
        );
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 120);
}

#[test]
fn a_stored_schema_that_is_not_json_fails_closed_naming_the_type() {
    let db = TestDb::new(json!({}));
    db.register(
        "broken.schema",
        json!({"type": "object", "required": ["must"]}),
    );
    // Edited by hand into something unreadable: validation must not silently turn off.
    db.sql_exec(
        "UPDATE task_types SET param_schema_json = '{not json' WHERE name = 'broken.schema'",
    );
    let fresh = db.client_with(json!({"max_task_attempts": 4}));
    let e = fresh
        .enqueue("broken.schema", &json!({}), &EnqueueOptions::default())
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidSchema, "{e}");
    assert!(e.message().contains("broken.schema"), "{e}");
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 0);
}
