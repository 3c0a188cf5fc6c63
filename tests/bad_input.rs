//! Bad input of every kind: oversized and deep payloads, malformed arguments, hostile and
//! non-ASCII text, credentials that must never appear in errors, and an unmigrated database;
//! on either engine (the server's credentials in `server_only`).

mod common;

use common::{Engine, TestDb, any_object, from};
use serde_json::json;
use taskmanager::*;

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
fn an_unmigrated_database_says_so() {
    let db = TestDb::empty(json!({}));
    let e = db
        .client
        .enqueue("x", &json!({}), &EnqueueOptions::default())
        .unwrap_err();
    assert_eq!(e.code(), Code::SchemaOutdated, "{e}");
    assert!(e.message().contains("migrat"));
    let report = db.client.migrate().unwrap();
    // The server's schema comes as its history of migrations; a file gets it in one step.
    let steps: &[i64] = match db.engine {
        Engine::Mysql => &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        Engine::Sqlite => &[9],
    };
    assert_eq!(report.applied, steps);
    assert_eq!(
        db.client
            .enqueue("x", &json!({}), &EnqueueOptions::default())
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

/// Tests about the server itself (see tests/common): on the server whatever the engine, and left
/// out of the `sqlite` run by `--skip server_only::`.
mod server_only {
    use super::*;

    #[test]
    fn wrong_password_never_appears_in_errors() {
        let db = TestDb::server(json!({}));
        let config = common::TestDb::server_config(&db.name, json!({"db_pass": "hunter2-Secret!"}));
        let e = Client::open(config.clone()).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(!format!("{e:?}").contains("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(e.code(), Code::Config, "{e}");
        let unreachable = common::TestDb::server_config(
            &db.name,
            json!({"db_port": 1, "db_pass": "hunter2-Secret!", "connect_timeout": 2}),
        );
        let e = Client::open(unreachable).unwrap_err();
        assert_eq!(e.code(), Code::Connection, "{e}");
        assert!(!e.to_string().contains("hunter2"));
    }
}
