//! The SQL of every step is a committed artifact: `sql/mysql/steps.sql` holds exactly what the
//! library renders, so a change to the lifecycle shows as an SQL diff in review. The file is
//! also checked to be SQL the server parses, statement by statement.

mod common;

use common::TestDb;
use mysql::prelude::Queryable;
use serde_json::json;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sql/mysql/steps.sql");

#[test]
fn the_committed_steps_file_is_what_the_library_sends() {
    let rendered = taskmanager::test_hooks::rendered_steps();
    if std::env::var("TASKMANAGER_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(std::path::Path::new(PATH).parent().unwrap()).unwrap();
        std::fs::write(PATH, &rendered).unwrap();
    }
    let committed = std::fs::read_to_string(PATH).unwrap_or_default();
    if committed != rendered {
        let first = committed
            .lines()
            .zip(rendered.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(rendered.lines().count()));
        panic!(
            "sql/mysql/steps.sql differs from what the library sends (first at line {}): review the \
             change, then write the file with TASKMANAGER_BLESS=1 cargo test --test sql_steps",
            first + 1
        );
    }
}

#[test]
fn every_statement_of_the_file_is_valid_sql_with_values_in_place() {
    let db = TestDb::server(json!({}));
    let mut sql = db.sql();
    let text = std::fs::read_to_string(PATH).unwrap();
    let mut checked = 0;
    for statement in text.split(";\n").map(str::trim) {
        let statement: String = statement
            .lines()
            .filter(|l| !l.starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        // Only reads and writes: EXPLAIN parses and plans them without running them.
        if !["SELECT", "UPDATE", "INSERT", "DELETE"]
            .iter()
            .any(|v| statement.starts_with(v))
            || statement.contains(" INTO @")
            || statement.contains(" INTO v_")
        {
            continue;
        }
        let with_values = fill(&statement);
        sql.query_drop(format!("EXPLAIN {with_values}"))
            .unwrap_or_else(|e| panic!("{e}\n{statement}"));
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} statements checked");
}

/// Placeholders as values of the right kind, the longest names first; a prepared statement's
/// `?` as 1, which every column it binds compares with.
fn fill(statement: &str) -> String {
    let statement = &statement.replace('?', "1");
    let mut names: Vec<&str> = statement
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with(':') && w.len() > 1)
        .collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    names.dedup();
    let mut out = statement.to_string();
    for name in names {
        let value = match name {
            ":rows_json" => "'[]'",
            ":run_at" => "'2030-01-01 00:00:00'",
            n if n.starts_with(":id")
                || n.starts_with(":type_id")
                || matches!(
                    n,
                    ":limit"
                        | ":lease_seconds"
                        | ":claim_timeout"
                        | ":older_than_seconds"
                        | ":priority"
                        | ":max_attempts"
                        | ":delay_micros"
                        | ":progress"
                ) =>
            {
                "1"
            }
            _ => "'x'",
        };
        out = out.replace(name, value);
    }
    out
}
