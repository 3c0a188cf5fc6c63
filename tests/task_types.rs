//! Task types: registration rules, concurrent first registrations, inactive and unknown
//! types, validation of params against a type's schema, and a stored schema that is not JSON.

mod common;

use common::{TestDb, any_object, from};
use serde_json::json;
use std::sync::{Arc, Barrier};
use taskmanager::*;

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
