//! The task lifecycle: enqueue, claim, heartbeat, complete, fail, release, cancel, retry,
//! recovery of expired leases, and the read side. Its rules and SQL live in [`lifecycle`].
//!
//! Every time comparison uses the database clock (`NOW(6)`), never the client's.

pub(crate) mod bulk;
#[cfg(feature = "test-hooks")]
mod catalog;
pub(crate) mod claim;
pub(crate) mod engine;
pub(crate) mod enqueue;
pub(crate) mod finish;
pub(crate) mod in_transaction;
pub(crate) mod input;
pub(crate) mod lease;
pub(crate) mod lifecycle;
pub(crate) mod like;
pub(crate) mod manage;
// The procedures' CREATE statements and bodies are built only for the test hooks, which check
// them against the committed migration and `sql/schema.sql` (the migration runs the committed
// file); a build without the hooks calls only the CALL builders.
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
pub(crate) mod procedures;
pub(crate) mod prune;
pub(crate) mod read;
pub(crate) mod stats;

use serde::Serialize;

/// The statements a worker's hot path sends (claim of `limit` with lease recovery, complete,
/// complete_and_claim, and the claim in every other order) that read or write rows, ready for EXPLAIN (the tests and the benchmark
/// check their plans): `INTO @var` is left out, and the finished task's id is the user variable
/// `@tm_example_id`.
#[cfg(feature = "test-hooks")]
pub fn hot_path_statements(limit: u32, history_on: bool) -> Vec<String> {
    let request = lifecycle::ClaimRequest {
        worker_id: "explain",
        type_ids: None,
        limit,
        lease_seconds: 60,
        token_prefix: "explain",
        order: lifecycle::ClaimOrder::default(),
        claim_timeout: 300,
        gated: &[],
        report: false,
    };
    let mut scripts = vec![
        lifecycle::claim(&request, true, history_on).script,
        lifecycle::complete(0, lifecycle::Holder::Token("explain"), "null", history_on).script,
        lifecycle::complete_and_claim(0, "explain", "null", &request, false, history_on).script,
    ];
    // Every other claim order, in both directions.
    use lifecycle::SortColumn::*;
    for column in [CreatedAt, Priority, Id, Attempts] {
        for descending in [false, true] {
            let order = lifecycle::ClaimOrder::By(column, descending);
            scripts.push(
                lifecycle::claim(
                    &lifecycle::ClaimRequest { order, ..request },
                    false,
                    history_on,
                )
                .script,
            );
        }
    }
    scripts
        .iter()
        .flat_map(|script| script.statements())
        .filter(|statement| {
            ["SELECT", "UPDATE", "INSERT"]
                .iter()
                .any(|v| statement.starts_with(v))
        })
        .map(|statement| {
            let statement = statement.replace("id = 0 ", "id = @tm_example_id ");
            match statement.split_once(" INTO @") {
                // `SELECT <ids> INTO @var`: the variable name ends the statement.
                Some((select, _)) if statement.starts_with("SELECT") => select.to_string(),
                _ => statement,
            }
        })
        .collect()
}

/// The hot path's stored procedures as this library creates them: `(name, CREATE statement,
/// body)`, the body as `information_schema.ROUTINES` shows it (tests check that the database
/// and `sql/schema.sql` hold exactly these).
#[cfg(feature = "test-hooks")]
pub fn stored_procedures() -> Vec<(String, String, String)> {
    procedures::all()
        .into_iter()
        .map(|p| {
            let (create, body) = (p.create_sql(), p.body().to_string());
            (p.name, create, body)
        })
        .collect()
}

/// The file of the migration that creates this generation's procedures, as the library builds
/// it (tests check the committed file against it).
#[cfg(feature = "test-hooks")]
pub fn procedures_migration_file() -> (u32, String) {
    (procedures::GENERATION, procedures::migration_file())
}

/// Every statement of every step as `sql/mysql/steps.sql` holds it (tests check the file).
#[cfg(feature = "test-hooks")]
pub fn rendered_steps() -> String {
    catalog::render()
}

/// Most tasks one claim or batch call handles.
pub const MAX_BATCH: usize = 1000;

/// The outcome of a single finishing call.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finished {
    /// The task.
    pub id: i64,
    /// Its status after the call.
    pub status: lifecycle::Status,
    /// True when this call repeated an earlier identical one and changed nothing.
    pub repeated: bool,
}
