//! Enqueue inside the caller's own transaction: the library checks, validates and keys the
//! task, and answers the SQL; the application runs it on its own connection, so the task
//! exists if and only if the application's transaction commits (see
//! `lifecycle::statement_sql` for the statements and why there are two with history on).

use crate::Config;
use crate::database::Database;
use crate::error::{Error, Result};
use crate::queue::enqueue::{self, EnqueueOptions, TaskInput};
use crate::queue::lifecycle;
use crate::random::random_hex;
use serde::Serialize;
use serde_json::Value;

/// The statements of one enqueue for the caller to run inside its own transaction, in order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EnqueueStatement {
    /// The task's INSERT: one statement. It creates the task, or does nothing when a task
    /// already holds the key (a duplicate); either way `LAST_INSERT_ID()` is then the id of the
    /// task holding the key.
    pub sql: String,
    /// With history on, the task's `created` history row, to run after `sql` in the same
    /// transaction (it writes nothing for a duplicate); `None` with history off.
    pub history_sql: Option<String>,
    /// `sql` then `history_sql`: everything to run, in order.
    pub statements: Vec<String>,
    /// Optional, after `statements`: one row `id, status, created` (1 when these statements
    /// created the task, 0 for a duplicate), what the bindings answer as an enqueue result.
    pub select_sql: String,
    /// The task's type (`type` in JSON).
    #[serde(rename = "type")]
    pub type_name: String,
    /// The dedupe key the task holds.
    pub dedupe_key: String,
}

pub(crate) fn enqueue_statement(
    db: &Database,
    config: &Config,
    type_name: &str,
    params: &Value,
    options: &EnqueueOptions,
) -> Result<EnqueueStatement> {
    if options.unique_for_seconds.is_some() {
        return Err(Error::invalid(
            "unique_for_seconds is not available in an enqueue statement (releasing an expired \
             key takes more than one statement); enqueue windowed tasks with enqueue",
        ));
    }
    let item = TaskInput {
        type_name,
        params,
        options,
    };
    // Each statement set marks its task with a token of its own: its history statement and its
    // select know the task it created, and a second run creates nothing.
    let token = random_hex();
    let (statements, key) = enqueue::checked_row(db, config, item, |row| {
        (
            lifecycle::enqueue_in_caller_transaction(row, &token),
            row.key.to_string(),
        )
    })?;
    let history_sql = config.enable_task_history.then_some(statements.history);
    Ok(EnqueueStatement {
        statements: std::iter::once(statements.insert.clone())
            .chain(history_sql.clone())
            .collect(),
        sql: statements.insert,
        history_sql,
        select_sql: statements.select,
        type_name: type_name.to_string(),
        dedupe_key: key,
    })
}
