//! Migrations: the upgrade of a database made by the original PHP system, idempotence, and
//! `sql/schema.sql` matching what the migrations produce.

mod common;

use common::{TestDb, from};
use mysql::prelude::Queryable;
use serde_json::json;
use taskmanager::*;

/// An early variant of the original system's schema (before `priority` and `progress`, INT
/// versions, unnamed indexes), so the upgrade cannot rely on names it created itself.
const EARLY_VARIANT: &str = "
CREATE TABLE task_types (
  id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL UNIQUE, version INT DEFAULT 1,
  param_schema_json TEXT, is_active TINYINT(1) DEFAULT 1,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  INDEX (is_active)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE tasks (
  id INT AUTO_INCREMENT PRIMARY KEY, type_id INT NOT NULL,
  status ENUM('pending','claimed','completed','failed') DEFAULT 'pending',
  params_json TEXT, dedupe_key VARCHAR(64) NOT NULL, result_json TEXT, error_message TEXT,
  attempts INT DEFAULT 0, claimed_by VARCHAR(255), claimed_at TIMESTAMP NULL, completed_at TIMESTAMP NULL,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  UNIQUE KEY unique_dedupe (dedupe_key), INDEX idx_type_status (type_id, status), INDEX (status), INDEX (created_at),
  FOREIGN KEY (type_id) REFERENCES task_types(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE task_history (
  id INT AUTO_INCREMENT PRIMARY KEY, task_id INT NOT NULL, status_change VARCHAR(50) NOT NULL,
  worker_id VARCHAR(255), message TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  INDEX (task_id), INDEX (created_at),
  FOREIGN KEY (task_id) REFERENCES tasks(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT INTO task_types (id, name, version, param_schema_json) VALUES
  (1, 'email', 1, '{\"type\":\"object\",\"required\":[\"to\"]}'), (2, 'report', 3, '{\"type\":\"object\"}');
INSERT INTO tasks (id, type_id, status, params_json, dedupe_key, result_json, error_message, attempts, claimed_by, claimed_at, completed_at, created_at) VALUES
  (1, 1, 'pending', '{\"to\":\"a@example.com\"}', 'k1', NULL, NULL, 0, NULL, NULL, NULL, '2024-01-01 10:00:00'),
  (2, 1, 'claimed', '{\"to\":\"b@example.com\"}', 'k2', NULL, NULL, 1, 'old-worker', '2024-01-01 10:05:00', NULL, '2024-01-01 10:01:00'),
  (3, 2, 'completed', '{\"month\":\"2024-01\"}', 'k3', '{\"rows\":12}', NULL, 1, 'old-worker', '2024-01-02 00:00:00', '2024-01-02 00:01:00', '2024-01-01 11:00:00'),
  (4, 2, 'failed', '{\"month\":\"Příliš 😀\"}', 'k4', NULL, 'boom', 3, 'old-worker', '2024-01-03 00:00:00', '2024-01-03 00:00:09', '2024-01-01 12:00:00');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES
  (1, 'created', NULL, NULL, '2024-01-01 10:00:00'), (2, 'claimed', 'old-worker', NULL, '2024-01-01 10:05:00'),
  (3, 'completed', 'old-worker', 'done', '2024-01-02 00:01:00'), (4, 'failed', 'old-worker', 'boom', '2024-01-03 00:00:09');
";

#[test]
fn a_dedupe_key_the_original_system_computed_still_deduplicates_after_the_upgrade() {
    let db = TestDb::server_empty(json!({}));
    let mut sql = db.sql();
    sql.query_drop(EARLY_VARIANT).unwrap();
    // The original's key: sha256("email" + "\0" + json_encode(params)), for params sent with
    // sorted keys, computed outside this code.
    sql.query_drop(
        "INSERT INTO tasks (id, type_id, status, params_json, dedupe_key, attempts) VALUES \
         (5, 1, 'completed', '{\"subject\":\"Zoë\",\"to\":\"c@example.com\"}', \
         '275c2c64c71f85df337a49e88ee4939666bf666540bda097ea46008b90f2ce1b', 1)",
    )
    .unwrap();
    db.client.migrate().unwrap();
    let again = db
        .client
        .enqueue(
            "email",
            &json!({"to": "c@example.com", "subject": "Zoë"}),
            &EnqueueOptions::default(),
        )
        .unwrap();
    assert_eq!((again.id, again.deduplicated), (5, true));
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 5);
}

#[test]
fn upgrade_from_an_early_variant_keeps_every_row() {
    let db = TestDb::server_empty(json!({}));
    let mut sql = db.sql();
    sql.query_drop(EARLY_VARIANT).unwrap();

    let report = db.client.migrate().unwrap();
    assert_eq!(
        (report.applied.clone(), report.version),
        (vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 11)
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM task_types"), 2);
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 4);
    assert_eq!(db.count("SELECT COUNT(*) FROM task_history"), 4);

    let completed = db.client.get_task(3).unwrap();
    assert_eq!(
        (completed.type_name.as_str(), completed.status.as_str()),
        ("report", "completed")
    );
    assert_eq!(completed.result, json!({"rows": 12}));
    assert_eq!(completed.created_at, "2024-01-01T11:00:00.000000Z");
    assert_eq!(
        completed.completed_at.as_deref(),
        Some("2024-01-02T00:01:00.000000Z")
    );
    let failed = db.client.get_task(4).unwrap();
    assert_eq!(
        (failed.params.clone(), failed.error_message.as_deref()),
        (json!({"month": "Příliš 😀"}), Some("boom"))
    );

    // The permanent dedupe of the original still holds for its keys.
    let again = db
        .client
        .enqueue(
            "report",
            &json!({"month": "2024-01"}),
            &from(json!({"dedupe_key": "k3"})),
        )
        .unwrap();
    assert_eq!((again.id, again.deduplicated), (3, true));
    // The stale claim of the original system has long expired: recovered and handed out again.
    let claimed = db
        .client
        .claim("new-worker", &from(json!({"limit": 10})))
        .unwrap();
    let ids: Vec<i64> = claimed.iter().map(|t| t.id).collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(claimed[1].attempts, 2);
    for t in &claimed {
        db.client
            .complete(t.id, &t.lease_token, &json!({"ok": true}))
            .unwrap();
    }
    let types = db.client.list_types().unwrap();
    assert_eq!(
        types
            .iter()
            .map(|t| (t.name.as_str(), t.version.as_str()))
            .collect::<Vec<_>>(),
        [("email", "1"), ("report", "3")]
    );
    // As in the original, a type deleted takes its tasks and their history with it.
    db.sql()
        .query_drop("DELETE FROM task_types WHERE id = 1")
        .unwrap();
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 2);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM task_history WHERE task_id IN (1, 2)"),
        0
    );
    assert_eq!(db.client.migrate().unwrap().applied, Vec::<i64>::new());
}

#[test]
fn migrate_is_idempotent_and_safe_to_run_concurrently() {
    let db = TestDb::server_empty(json!({}));
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let c = db.client.clone();
            std::thread::spawn(move || c.migrate().unwrap())
        })
        .collect();
    let reports: Vec<MigrationReport> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let applied: usize = reports.iter().map(|r| r.applied.len()).sum();
    assert_eq!(
        applied, 11,
        "each migration applied exactly once: {reports:?}"
    );
    assert!(reports.iter().all(|r| r.version == 11));
    assert_eq!(db.count("SELECT COUNT(*) FROM tm_schema_migrations"), 11);
}

fn shape(db: &TestDb) -> Vec<String> {
    let mut sql = db.sql();
    let mut out: Vec<String> = sql
        .exec_map(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COALESCE(COLUMN_DEFAULT, 'NULL'), EXTRA \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, COLUMN_NAME",
            (&db.name,),
            |(t, c, ty, n, d, e): (String, String, String, String, String, String)| format!("{t}.{c} {ty} {n} {d} {e}"),
        )
        .unwrap();
    out.extend(
        sql.exec_map(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, GROUP_CONCAT(COLUMN_NAME, ' ', COALESCE(COLLATION, '') ORDER BY SEQ_IN_INDEX) \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE ORDER BY 1, 2",
            (&db.name,),
            |(t, i, u, c): (String, String, i64, String)| format!("index {t}.{i} {u} {c}"),
        )
        .unwrap(),
    );
    out.extend(
        sql.exec_map(
            "SELECT TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, DELETE_RULE, UPDATE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? ORDER BY 1, 2",
            (&db.name,),
            |(t, c, r, d, u): (String, String, String, String, String)| format!("fk {t}.{c} -> {r} {d} {u}"),
        )
        .unwrap(),
    );
    out.extend(
        sql.exec_map(
            "SELECT ROUTINE_NAME, SECURITY_TYPE, ROUTINE_DEFINITION FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = ? ORDER BY 1",
            (&db.name,),
            |(n, s, d): (String, String, String)| format!("procedure {n} {s}\n{d}"),
        )
        .unwrap(),
    );
    out
}

#[test]
fn schema_sql_matches_the_migrations() {
    let migrated = TestDb::server(json!({}));
    let loaded = TestDb::server_empty(json!({}));
    // Loaded as the file says, with the command-line client (it reads the DELIMITER lines).
    let (host, port, user, pass) = common::server();
    let status = std::process::Command::new("mariadb")
        .args([
            "--default-character-set=utf8mb4",
            "-h",
            &host,
            "-P",
            &port.to_string(),
        ])
        .args(["-u", &user, &loaded.name])
        .env("MYSQL_PWD", pass)
        .stdin(std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/schema.sql")).unwrap())
        .status()
        .expect("the mariadb client (scripts/setup installs it)");
    assert!(status.success());
    let (a, b) = (shape(&migrated), shape(&loaded));
    let only_migrated: Vec<_> = a.iter().filter(|l| !b.contains(l)).collect();
    let only_file: Vec<_> = b.iter().filter(|l| !a.contains(l)).collect();
    assert!(
        only_migrated.is_empty() && only_file.is_empty(),
        "migrated only: {only_migrated:#?}\nschema.sql only: {only_file:#?}"
    );
    assert!(a.len() > 40);
    // And a database installed from the file is usable as is.
    loaded.register("from-file", json!({"type": "object"}));
    assert!(
        !loaded
            .client
            .enqueue("from-file", &json!({}), &EnqueueOptions::default())
            .unwrap()
            .deduplicated
    );
}

#[test]
fn the_runtime_needs_only_data_privileges() {
    let runtime_user =
        std::env::var("TASKMANAGER_TEST_RUNTIME_USER").unwrap_or_else(|_| "taskmanager_rt".into());
    let as_runtime = json!({"db_user": runtime_user, "db_pass": std::env::var("TASKMANAGER_TEST_RUNTIME_PASS").unwrap_or_default()});

    // DDL is refused to that account, with a message that says what is missing.
    let fresh = TestDb::server_empty_named("tm_rt", json!({}));
    let runtime = Client::open(TestDb::server_config(&fresh.name, as_runtime.clone())).unwrap();
    let e = runtime.migrate().unwrap_err();
    assert_eq!(e.code(), Code::Database, "{e}");
    assert!(
        e.message()
            .contains("grant CREATE, ALTER, INDEX, REFERENCES"),
        "the message names what migrations need: {e}"
    );
    assert_eq!(e.server_code(), Some(1142), "{e}");
    assert!(!e.message().contains("grant SELECT"), "{e}");

    // Migrated by the owner, the whole lifecycle runs with SELECT, INSERT, UPDATE, DELETE only
    // (no EXECUTE: its first CALL is refused, and the scripts serve from then on).
    fresh.client.migrate().unwrap();
    let rt = Client::open(TestDb::server_config(&fresh.name, as_runtime)).unwrap();
    assert!(
        rt.migrate().unwrap().applied.is_empty(),
        "migrate on a current schema is a read"
    );
    rt.register_type(&from(
        json!({"name": "rt", "param_schema": {"type": "object"}}),
    ))
    .unwrap();
    let id = rt
        .enqueue("rt", &json!({"n": 1}), &from(json!({"max_attempts": 2})))
        .unwrap()
        .id;
    let t = rt.claim("w", &ClaimOptions::default()).unwrap().remove(0);
    rt.heartbeat(id, &t.lease_token, &from(json!({"progress": 10})))
        .unwrap();
    rt.fail(
        id,
        &t.lease_token,
        "again",
        &from(json!({"retry_in_seconds": 0})),
    )
    .unwrap();
    let t = rt.claim("w", &ClaimOptions::default()).unwrap().remove(0);
    rt.release(id, &t.lease_token).unwrap();
    let t = rt.claim("w", &ClaimOptions::default()).unwrap().remove(0);
    rt.complete(id, &t.lease_token, &json!({"ok": true}))
        .unwrap();
    rt.set_type_active("rt", false).unwrap();
    rt.recover_expired().unwrap();
    assert_eq!(rt.stats().unwrap().types["rt"].completed, 1);
    let changes = common::history_kinds(&rt, id);
    assert_eq!(
        changes,
        [
            "created",
            "claimed",
            "progress",
            "retrying",
            "claimed",
            "released",
            "claimed",
            "completed"
        ]
    );
    assert_eq!(rt.list_tasks(&ListFilter::default()).unwrap().len(), 1);
}

/// Rows of every kind on the original schema, exactly as the original system created it
/// (migration 1 is that schema, column by column and index by index): string versions, a
/// task in every status, values left NULL where the original allowed it, dedupe keys computed
/// the original's way, and the API routing tables that live beside the queue.
const ORIGINAL_ROWS: &str = "
CREATE TABLE api_endpoints (id INT AUTO_INCREMENT PRIMARY KEY, path VARCHAR(255) NOT NULL, method VARCHAR(10) NOT NULL, handler VARCHAR(255) NOT NULL, is_active BOOLEAN DEFAULT TRUE) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE api_validations (id INT AUTO_INCREMENT PRIMARY KEY, endpoint_id INT NOT NULL, rule_json TEXT NOT NULL, FOREIGN KEY (endpoint_id) REFERENCES api_endpoints(id) ON DELETE CASCADE) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE api_transformations (id INT AUTO_INCREMENT PRIMARY KEY, endpoint_id INT NOT NULL, transform_json TEXT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT INTO api_endpoints (path, method, handler) VALUES ('/tasks', 'POST', 'TaskController@create'), ('/tasks/claim', 'POST', 'TaskController@claim');
INSERT INTO api_validations (endpoint_id, rule_json) VALUES (1, '{\"type\":\"required\"}');
INSERT INTO api_transformations (endpoint_id, transform_json) VALUES (2, '{\"rename\":{}}');
INSERT INTO task_types (id, name, version, param_schema_json, is_active) VALUES
  (1, 'email.send', '1.0.0', '{\"type\":\"object\",\"required\":[\"to\"]}', TRUE),
  (2, 'report', '2.1.0-beta', '{\"type\":\"object\"}', TRUE),
  (3, 'legacy', '0.9', '{\"type\":\"object\"}', NULL);
INSERT INTO tasks (id, type_id, status, params_json, dedupe_key, result_json, error_message, priority, progress, attempts, claimed_by, claimed_at, completed_at, created_at) VALUES
  (1, 1, 'pending', '{\"subject\":\"Hi\",\"to\":\"a@example.com\"}', SHA2(CONCAT('email.send', CHAR(0), '{\"subject\":\"Hi\",\"to\":\"a@example.com\"}'), 256), NULL, NULL, 5, 0, 0, NULL, NULL, NULL, '2024-01-01 10:00:00'),
  (2, 1, 'claimed', '{\"to\":\"b@example.com\"}', 'k2', NULL, NULL, 0, 40, 1, 'old-worker', '2024-01-01 10:05:00', NULL, '2024-01-01 10:01:00'),
  (3, 2, 'completed', '{\"month\":\"2024-01\"}', 'k3', '{\"rows\":12}', NULL, 0, 100, 1, 'old-worker', '2024-01-02 00:00:00', '2024-01-02 00:01:00', '2024-01-01 11:00:00'),
  (4, 2, 'failed', '{\"month\":\"Příliš 😀\"}', 'k4', NULL, 'boom', NULL, NULL, 3, 'old-worker', '2024-01-03 00:00:00', '2024-01-03 00:00:09', '2024-01-01 12:00:00'),
  (5, 3, NULL, '{}', 'k5', NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, '2024-01-01 13:00:00');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES
  (1, 'created', NULL, NULL, '2024-01-01 10:00:00'), (2, 'claimed', 'old-worker', NULL, '2024-01-01 10:05:00'),
  (3, 'completed', 'old-worker', 'done', '2024-01-02 00:01:00'), (4, 'pending (retry)', 'old-worker', 'boom', '2024-01-03 00:00:05'),
  (4, 'failed', 'old-worker', 'boom', '2024-01-03 00:00:09'), (2, 'progress_update', 'old-worker', '40', '2024-01-01 10:06:00');
";

/// Everything a row of the original held, as text, per table (ids included).
fn values(db: &TestDb) -> Vec<String> {
    let mut sql = db.sql();
    let mut out = Vec::new();
    for query in [
        // The original read a NULL is_active as inactive (`WHERE is_active = 1`); so does the upgrade.
        "SELECT CONCAT_WS('|', id, name, version, param_schema_json, COALESCE(is_active, 0)) FROM task_types ORDER BY id",
        "SELECT CONCAT_WS('|', id, type_id, params_json, dedupe_key, COALESCE(result_json, '-'), \
         COALESCE(error_message, '-'), COALESCE(claimed_by, '-'), COALESCE(claimed_at, '-'), \
         COALESCE(completed_at, '-'), created_at) FROM tasks ORDER BY id",
        "SELECT CONCAT_WS('|', id, task_id, status_change, COALESCE(worker_id, '-'), \
         COALESCE(message, '-'), created_at) FROM task_history ORDER BY id",
        "SELECT CONCAT_WS('|', id, path, method, handler, is_active) FROM api_endpoints ORDER BY id",
        "SELECT CONCAT_WS('|', id, endpoint_id, rule_json) FROM api_validations ORDER BY id",
        "SELECT CONCAT_WS('|', id, endpoint_id, transform_json) FROM api_transformations ORDER BY id",
    ] {
        out.extend(sql.query::<String, _>(query).unwrap());
    }
    // Times as the original's TIMESTAMP showed them, whatever their new column type prints.
    out.iter().map(|l| l.replace(".000000", "")).collect()
}

fn original_database() -> TestDb {
    let db = TestDb::server_empty(json!({}));
    let mut sql = db.sql();
    sql.query_drop("SET time_zone = '+00:00'").unwrap();
    sql.query_drop(include_str!("../sql/migrations/0001_original_schema.sql"))
        .unwrap();
    sql.query_drop(ORIGINAL_ROWS).unwrap();
    db
}

fn check_upgraded(db: &TestDb, before: &[String]) {
    let after = values(db);
    assert_eq!(after, before, "every row and value is kept");
    // The same shape as a database migrated from nothing.
    let fresh = TestDb::server(json!({}));
    let strip = |lines: Vec<String>| -> Vec<String> {
        lines.into_iter().filter(|l| !l.contains("api_")).collect()
    };
    assert_eq!(strip(shape(db)), strip(shape(&fresh)));

    let client = &db.client;
    let types = client.list_types().unwrap();
    assert_eq!(
        types
            .iter()
            .map(|t| (t.name.as_str(), t.version.as_str(), t.is_active))
            .collect::<Vec<_>>(),
        [
            ("email.send", "1.0.0", true),
            ("legacy", "0.9", false),
            ("report", "2.1.0-beta", true)
        ]
    );
    let statuses: Vec<Status> = (1..=5)
        .map(|id| client.get_task(id).unwrap().status)
        .collect();
    use Status::*;
    assert_eq!(statuses, [Pending, Claimed, Completed, Failed, Pending]);
    // The original's key of task 1 is the key this library computes for the same params, in
    // any key order; the original's other keys keep deduplicating.
    let same = client
        .enqueue(
            "email.send",
            &json!({"to": "a@example.com", "subject": "Hi"}),
            &EnqueueOptions::default(),
        )
        .unwrap();
    assert_eq!((same.id, same.deduplicated), (1, true));
    let old_key = client
        .enqueue(
            "report",
            &json!({"x": 1}),
            &from(json!({"dedupe_key": "k3"})),
        )
        .unwrap();
    assert_eq!((old_key.id, old_key.deduplicated), (3, true));
    // Registering the same version and schema again changes nothing.
    let again = client
        .register_type(&from(json!({"name": "email.send", "version": "1.0.0",
            "param_schema": {"type": "object", "required": ["to"]}})))
        .unwrap();
    assert_eq!(again.changed, Some(false));
    // The original's stale claim has expired: handed out again, then everything runs.
    let claimed = client
        .claim("new-worker", &from(json!({"limit": 10})))
        .unwrap();
    let ids: Vec<i64> = claimed.iter().map(|t| t.id).collect();
    assert_eq!(ids, [1, 2, 5]);
    for t in &claimed {
        client
            .complete(t.id, &t.lease_token, &json!({"ok": true}))
            .unwrap();
    }
}

#[test]
fn upgrade_of_the_exact_original_schema_keeps_every_row_and_value() {
    let db = original_database();
    let before = values(&db);
    assert_eq!(before.len(), 3 + 5 + 6 + 2 + 1 + 1);
    let report = db.client.migrate().unwrap();
    assert_eq!(
        (report.applied.clone(), report.version),
        (vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 11)
    );
    check_upgraded(&db, &before);
}

#[test]
fn an_upgrade_that_fails_half_way_is_finished_by_running_migrate_again() {
    let db = original_database();
    // A history row whose task is gone, as a database restored without its keys may hold: the
    // upgrade stops when it puts the keys back, after every table has been reshaped.
    db.sql_exec(
        "SET SESSION foreign_key_checks = 0; \
         INSERT INTO task_history (task_id, status_change) VALUES (999, 'created'); \
         SET SESSION foreign_key_checks = 1",
    );
    let e = db.client.migrate().unwrap_err();
    assert_eq!(e.code(), Code::Database, "{e}");
    assert!(e.message().contains("migration 2"), "{e}");
    assert!(e.message().contains("foreign key"), "{e}");
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
                  AND TABLE_NAME = 'tasks' AND COLUMN_NAME = 'lease_token'"
        ),
        1,
        "the failure came after the tables were reshaped"
    );
    db.sql_exec("DELETE FROM task_history WHERE task_id = 999");
    let before = {
        // What the original held, read back from the half-upgraded tables.
        values(&db)
    };
    let report = db.client.migrate().unwrap();
    assert_eq!(report.applied, vec![2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    check_upgraded(&db, &before);
}

#[test]
fn a_database_of_an_earlier_release_is_brought_to_text_versions_and_claim_orders() {
    let db = TestDb::server_empty(json!({}));
    db.client.migrate_to(6).unwrap();
    // This release does not run at 6: the rows come from plain SQL, as the earlier one's would.
    db.sql_exec(
        "INSERT INTO task_types (name, version, param_schema_json) VALUES ('kept', '1', '{\"type\":\"object\"}')",
    );
    db.sql_exec(
        "INSERT INTO tasks (type_id, status, params_json, dedupe_key) SELECT id, 'pending', '{\"n\":1}', UUID() FROM task_types",
    );
    let id = db.count("SELECT MAX(id) FROM tasks");
    // What an earlier release's migration 2 left: INT versions, RESTRICT on type delete, no
    // claim-order indexes, other index names.
    db.sql_exec(
        "ALTER TABLE tasks DROP FOREIGN KEY fk_tasks_type; \
         ALTER TABLE tasks DROP INDEX idx_tasks_claim_by_id, DROP INDEX idx_tasks_claim_by_created, \
           DROP INDEX idx_tasks_claim_by_priority, DROP INDEX idx_tasks_claim_by_attempts, \
           DROP INDEX idx_tasks_finished; \
         ALTER TABLE tasks ADD CONSTRAINT fk_tasks_type FOREIGN KEY (type_id) REFERENCES task_types (id) ON DELETE RESTRICT; \
         ALTER TABLE task_types MODIFY version INT NOT NULL DEFAULT 1, RENAME INDEX uk_name TO name; \
         DELETE FROM tm_schema_migrations WHERE version = 3",
    );
    assert_eq!(
        db.client.migrate().unwrap().applied,
        vec![3, 7, 8, 9, 10, 11]
    );
    let fresh = TestDb::server(json!({}));
    assert_eq!(shape(&db), shape(&fresh));
    assert_eq!(db.client.get_task(id).unwrap().status, "pending");
    assert_eq!(db.client.get_type("kept").unwrap().version, "1");
}

/// A rolling deploy: `migrate_to(6)` adds the lean layout beside the indexes and procedures the
/// release before names, and that release runs on it; the plain migrate retires them, and
/// every row stays where it was, in the index of its status.
#[test]
fn the_lean_layout_comes_in_two_steps_and_keeps_every_task_in_its_index() {
    let db = TestDb::server_empty(json!({}));
    let superseded = "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = \
         DATABASE() AND INDEX_NAME IN ('idx_tasks_claim', 'idx_tasks_lease', 'idx_tasks_finished')";
    let previous_procedures = "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE \
         ROUTINE_SCHEMA = DATABASE() AND ROUTINE_NAME IN ('tm_claim_next', 'tm5_claim_next')";
    let report = db.client.migrate_to(6).unwrap();
    assert_eq!((report.applied.len(), report.version), (6, 6));
    assert!(db.count(superseded) > 0 && db.count(previous_procedures) == 2);

    // The previous release runs at version 6 (this one needs 11): tasks in each status, as
    // plain SQL leaves them (the previous release's steps write the same columns).
    for statement in [
        "INSERT INTO task_types (name, param_schema_json) VALUES ('lean', '{}')",
        "INSERT INTO tasks (type_id, status, params_json, dedupe_key) SELECT id, 'pending', '{}', UUID() FROM task_types",
        "INSERT INTO tasks (type_id, status, params_json, dedupe_key) SELECT id, 'pending', '{}', UUID() FROM task_types",
        "INSERT INTO tasks (type_id, status, params_json, dedupe_key) SELECT id, 'pending', '{}', UUID() FROM task_types",
        "INSERT INTO tasks (type_id, status, params_json, dedupe_key) SELECT id, 'pending', '{}', UUID() FROM task_types",
        "UPDATE tasks SET status = 'claimed', claimed_by = 'w', claimed_at = NOW(6), \
         lease_expires_at = NOW(6) + INTERVAL 1 HOUR, lease_token = 'old.1' WHERE id = 1",
        "UPDATE tasks SET status = 'completed', completed_at = NOW(6) WHERE id = 2",
    ] {
        db.sql_exec(statement);
    }
    // A row moved by hand with plain SQL, as the original's scripts do.
    db.sql_exec("UPDATE tasks SET status = 'failed', completed_at = NOW(6) WHERE id = 4");

    let report = db.client.migrate().unwrap();
    assert_eq!(report.applied, vec![7, 8, 9, 10, 11]);
    assert_eq!(
        (db.count(superseded), db.count(previous_procedures)),
        (0, 0)
    );
    assert!(db.client.migrate().unwrap().applied.is_empty());
    let counts = |sql: &str| db.count(sql);
    assert_eq!(
        (
            counts(
                "SELECT COUNT(*) FROM tasks FORCE INDEX (idx_tasks_ready) WHERE pending_priority IS NOT NULL"
            ),
            counts(
                "SELECT COUNT(*) FROM tasks FORCE INDEX (idx_tasks_leased) WHERE claimed_until IS NOT NULL"
            ),
            counts(
                "SELECT COUNT(*) FROM tasks FORCE INDEX (idx_tasks_done) WHERE finished_status = 'completed'"
            ),
            counts(
                "SELECT COUNT(*) FROM tasks FORCE INDEX (idx_tasks_done) WHERE finished_status = 'failed'"
            ),
        ),
        (1, 1, 1, 1),
        "each task is in the index of its status"
    );
    assert_eq!(
        db.client.claim("w", &ClaimOptions::default()).unwrap()[0].id,
        3,
        "the pending one is claimable after the contract"
    );
    assert_eq!(
        db.client.migrate_to(5).unwrap_err().code(),
        Code::InvalidArgument
    );
}
