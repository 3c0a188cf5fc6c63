//! The hot path as stored procedures: the enqueue of one task, the claim of one task (of any
//! type or of one type, in the default order), complete by lease token, and complete-and-claim.
//!
//! A script sends its statements as text that the server parses on every call and answers
//! statement by statement, each answer a packet that wakes the client. A CALL runs the same
//! statements, parsed once per connection, and answers once: on the development machine that
//! took a third off the server's time per task (see the README's Performance). The bodies are
//! built from the rules in [`lifecycle`], the ones the scripts use, with parameters where the
//! scripts write literals, so the two cannot drift apart; `tests/procedures.rs` checks that
//! the database holds exactly these bodies.
//!
//! Their names carry their generation (`tm11_enqueue`): the schema version of the migration
//! that created them from the committed file `sql/migrations/0011_hot_path_procedures_v11.sql`.
//! A change to a body or a signature is a new generation under new names, created by a new
//! migration, while the older generation stays for the libraries of the previous release that
//! call it (a rolling deploy) until a later migration retires it. Where a CALL is refused
//! (see `refused_before_the_body`), this process switches to the scripts for good.

use crate::queue::lifecycle::{
    self, ClaimOrder, ClaimRequest, ClaimSql, HolderSql, NewTask, NewTaskSql, Picked, Script,
};
use crate::sql;

/// Parameter types. Text parameters name their character set and collation: a parameter
/// otherwise takes the database's defaults, and a comparison with a column of another
/// collation is refused.
const TEXT: &str = "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci";

/// The result sets of each CALL, defined here beside the bodies that produce them.
pub(crate) mod answer {
    /// `tm11_enqueue`: one row, `id, created`.
    pub const ENQUEUED: usize = 0;
    /// `tm11_claim_next`: the claimed task's row, if any.
    pub const CLAIMED: usize = 0;
    /// `tm11_complete`: one row, `changed`.
    pub const COMPLETED: usize = 0;
    /// `tm11_complete_and_claim`: one row, `changed`, then the claimed task's row, if any.
    pub const COMPLETE_AND_CLAIM_CHANGED: usize = 0;
    pub const COMPLETE_AND_CLAIM_CLAIMED: usize = 1;
}

/// The generation of the procedures this library calls: the schema version that creates them.
pub(crate) const GENERATION: u32 = 11;

/// A procedure's name in this generation.
fn name(base: &str) -> String {
    format!("tm{GENERATION}_{base}")
}

/// One stored procedure: its name, parameters and body.
pub(crate) struct Procedure {
    pub name: String,
    params: String,
    body: String,
}

impl Procedure {
    /// `CREATE PROCEDURE`, run by migrate after [`Procedure::drop_sql`]. `SQL SECURITY
    /// INVOKER`: it runs with the caller's privileges, not its creator's.
    pub fn create_sql(&self) -> String {
        format!(
            "CREATE PROCEDURE {}({}) SQL SECURITY INVOKER\n{}",
            self.name, self.params, self.body
        )
    }

    pub fn drop_sql(&self) -> String {
        format!("DROP PROCEDURE IF EXISTS {}", self.name)
    }

    /// The body, as `information_schema.ROUTINES.ROUTINE_DEFINITION` shows it.
    pub fn body(&self) -> &str {
        &self.body
    }
}

/// The procedures of this generation as the migration that creates them runs them: a file in
/// the mariadb client's format, `sql/migrations/0011_hot_path_procedures_v11.sql`.
pub(crate) fn migration_file() -> String {
    let procedures = all();
    let mut text = format!(
        "-- Migration {GENERATION}: the hot path's stored procedures, generation {GENERATION} \
         (src/queue/procedures.rs\n\
         -- builds them from the lifecycle rules; tests/procedures.rs checks this file against it).\n\
         -- Loadable with the mariadb client.\n"
    );
    for procedure in &procedures {
        text.push_str(&procedure.drop_sql());
        text.push_str(";\n");
    }
    text.push_str("DELIMITER //\n");
    for procedure in &procedures {
        text.push_str(&procedure.create_sql());
        text.push_str("//\n");
    }
    text.push_str("DELIMITER ;\n");
    text
}

/// Every procedure of the hot path.
pub(crate) fn all() -> Vec<Procedure> {
    vec![
        enqueue_procedure(),
        claim_procedure(),
        complete_procedure(),
        complete_and_claim_procedure(),
    ]
}

// ---------------------------------------------------------------------------------------------
// the procedures

fn enqueue_procedure() -> Procedure {
    let task = NewTaskSql {
        type_id: "p_type_id".into(),
        params: "p_params".into(),
        key: "p_key".into(),
        scope: "p_scope".into(),
        priority: "p_priority".into(),
        max_attempts: "p_max_attempts".into(),
        run_at: "p_run_at".into(),
        delay_micros: "p_delay_micros".into(),
        token: "p_token".into(),
    };
    let insert = lifecycle::enqueue_one_keyed(&task, "p_version");
    Procedure {
        name: name("enqueue"),
        params: format!(
            "IN p_type_id BIGINT, IN p_version VARCHAR(50) {TEXT}, IN p_params LONGTEXT {TEXT}, \
             IN p_key VARCHAR(191) {TEXT}, IN p_scope VARCHAR(10) {TEXT}, IN p_priority INT, \
             IN p_max_attempts INT, IN p_run_at VARCHAR(32) {TEXT}, IN p_delay_micros BIGINT, \
             IN p_token VARCHAR(64) {TEXT}, IN p_history BOOLEAN"
        ),
        // Error 1452 is the INSERT's foreign keys refusing the task: the type is gone, inactive
        // or at another version. The body then answers as for a duplicate (nothing created),
        // and the library reads the type's state to tell which.
        body: format!(
            "BEGIN\n\
             DECLARE v_id BIGINT DEFAULT 0;\n\
             DECLARE v_created INT DEFAULT 0;\n\
             DECLARE v_refused INT DEFAULT 0;\n\
             DECLARE CONTINUE HANDLER FOR 1452 SET v_refused = 1;\n\
             START TRANSACTION;\n\
             {insert};\n\
             IF v_refused = 0 THEN SET v_created = ROW_COUNT(), v_id = LAST_INSERT_ID(); END IF;\n\
             IF p_history AND v_created = 1 THEN {}; END IF;\n\
             COMMIT;\n\
             SELECT v_id AS id, v_created AS created;\n\
             END",
            lifecycle::history_values("v_id", lifecycle::ENQUEUE.change, "NULL")
        ),
    }
}

/// The claim of one task in the default order, of any type (`p_type_id` NULL) or of one: each
/// branch scans its own index, as the script's claim does.
fn claim_steps_sql() -> String {
    let picked = Picked::one("v_picked");
    let claim = |index: &'static str, type_filter: &'static str| {
        lifecycle::claim_steps(
            &ClaimSql {
                index,
                type_filter,
                order: ClaimOrder::PriorityThenAge,
                limit: 1,
                worker: "p_worker".into(),
                lease_seconds: "p_lease_seconds".into(),
                token_prefix: "p_token_prefix".into(),
            },
            &picked,
            None,
        )
    };
    let any = claim(ClaimOrder::PriorityThenAge.index(None), "");
    let one = claim(
        ClaimOrder::PriorityThenAge.index(Some(&[0])),
        "AND type_id = p_type_id",
    );
    format!(
        "IF p_type_id IS NULL THEN {}; ELSE {}; END IF;\n\
         IF v_picked IS NOT NULL THEN\n\
         {};\n\
         IF p_history AND ROW_COUNT() = 1 THEN {}; END IF;\n\
         {};\n\
         END IF;\n",
        any.pick,
        one.pick,
        one.lease,
        lifecycle::history_values("v_picked", lifecycle::CLAIM.change, "p_worker"),
        one.answer
    )
}

fn claim_params() -> String {
    format!(
        "IN p_type_id BIGINT, IN p_worker VARCHAR(255) {TEXT}, IN p_token_prefix VARCHAR(32) {TEXT}, \
         IN p_lease_seconds INT"
    )
}

fn claim_procedure() -> Procedure {
    Procedure {
        name: name("claim_next"),
        params: format!("{}, IN p_history BOOLEAN", claim_params()),
        body: format!(
            "BEGIN\n\
             DECLARE v_picked BIGINT DEFAULT NULL;\n\
             START TRANSACTION;\n\
             {}\
             COMMIT;\n\
             END",
            claim_steps_sql()
        ),
    }
}

/// The holder of a complete: the lease token parameter.
fn token_holder() -> HolderSql {
    HolderSql {
        column: "lease_token",
        value: "p_lease_token".into(),
    }
}

fn complete_params() -> String {
    format!("IN p_id BIGINT, IN p_lease_token VARCHAR(64) {TEXT}, IN p_result LONGTEXT {TEXT}")
}

/// The complete's statements; leaves the rows it changed in `v_changed`. Its history row is
/// written from values, the holder read first: an INSERT with a SELECT in it takes the table's
/// AUTO-INC lock until the statement ends (`innodb_autoinc_lock_mode=1`), where a plain one-row
/// INSERT takes the counter under a short latch, so workers finishing tasks side by side no
/// longer queue for `task_history`'s counter.
fn complete_steps_sql() -> String {
    format!(
        "{};\n\
         SET v_changed = ROW_COUNT();\n\
         IF p_history AND v_changed = 1 THEN {}; {}; END IF;\n",
        lifecycle::complete_update("p_id", &token_holder(), "p_result"),
        lifecycle::holder_into("p_id", "v_worker"),
        lifecycle::history_values("p_id", lifecycle::COMPLETE.change, "v_worker")
    )
}

/// The locals of a body that completes: the rows the UPDATE changed and the task's holder.
fn complete_locals() -> String {
    format!(
        "DECLARE v_changed INT DEFAULT 0;\n\
         DECLARE v_worker VARCHAR(255) {TEXT} DEFAULT NULL;\n"
    )
}

fn complete_procedure() -> Procedure {
    Procedure {
        name: name("complete"),
        params: format!("{}, IN p_history BOOLEAN", complete_params()),
        body: format!(
            "BEGIN\n\
             {}\
             START TRANSACTION;\n\
             {}\
             COMMIT;\n\
             SELECT v_changed AS changed;\n\
             END",
            complete_locals(),
            complete_steps_sql()
        ),
    }
}

/// Completes, answers the rows it changed, and claims the next unless the task is not
/// completed under this token (now or by an earlier identical call): one commit for both.
fn complete_and_claim_procedure() -> Procedure {
    Procedure {
        name: name("complete_and_claim"),
        params: format!(
            "{}, {}, IN p_history BOOLEAN",
            complete_params(),
            claim_params()
        ),
        body: format!(
            "BEGIN\n\
             {}\
             DECLARE v_picked BIGINT DEFAULT NULL;\n\
             START TRANSACTION;\n\
             {}\
             SELECT v_changed AS changed;\n\
             IF v_changed = 1 OR {} THEN\n\
             {}\
             END IF;\n\
             COMMIT;\n\
             END",
            complete_locals(),
            complete_steps_sql(),
            lifecycle::completed_by("p_id", &token_holder()),
            claim_steps_sql()
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// the calls

/// A CALL sent as a script: text made by the one encoder, and a transaction to roll back if
/// the body fails half way (it began one).
fn call(name: &str, args: &[String]) -> Script {
    Script::call(format!("CALL {name}({})", args.join(", ")))
}

fn flag(on: bool) -> String {
    if on { "TRUE" } else { "FALSE" }.into()
}

/// The claim's type as the procedures take it: NULL for any type, or the one type id; `None`
/// when the request is not one they serve.
fn claim_args(request: &ClaimRequest<'_>, history_on: bool) -> Option<Vec<String>> {
    if request.limit != 1 || request.order != ClaimOrder::PriorityThenAge {
        return None;
    }
    let type_id = match request.type_ids {
        None => "NULL".to_string(),
        Some([id]) => sql::int(*id),
        Some(_) => return None,
    };
    Some(vec![
        type_id,
        sql::text(request.worker_id),
        sql::text(request.token_prefix),
        sql::int(request.lease_seconds.into()),
        flag(history_on),
    ])
}

/// The CALL that enqueues one task; answers `v_id, v_created`.
pub fn enqueue(task: &NewTask<'_>, version: &str, token: &str, history_on: bool) -> Script {
    let values = task.sql(token);
    call(
        &name("enqueue"),
        &[
            values.type_id,
            sql::text(version),
            values.params,
            values.key,
            values.scope,
            values.priority,
            values.max_attempts,
            values.run_at,
            values.delay_micros,
            values.token,
            flag(history_on),
        ],
    )
}

/// The CALL that claims what `request` asks for, if a procedure serves it; its first result
/// is the claimed task, if any.
pub fn claim(request: &ClaimRequest<'_>, history_on: bool) -> Option<Script> {
    claim_args(request, history_on).map(|args| call(&name("claim_next"), &args))
}

/// The CALL that completes a task by its lease token; answers the rows it changed.
pub fn complete(id: i64, token: &str, result_text: &str, history_on: bool) -> Script {
    call(
        &name("complete"),
        &[
            sql::int(id),
            sql::text(token),
            sql::text(result_text),
            flag(history_on),
        ],
    )
}

/// The CALL that completes and claims, if a procedure serves the claim: its first result is
/// the rows the complete changed, its second the claimed task, if any.
pub fn complete_and_claim(
    id: i64,
    token: &str,
    result_text: &str,
    request: &ClaimRequest<'_>,
    history_on: bool,
) -> Option<Script> {
    let claim = claim_args(request, history_on)?;
    let mut args = vec![sql::int(id), sql::text(token), sql::text(result_text)];
    args.extend(claim);
    Some(call(&name("complete_and_claim"), &args))
}
