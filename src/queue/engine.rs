//! The engine seam: how a database runs the steps of a task's life.
//!
//! A verb checks its input, hands the step to the engine, and reads a typed answer; it never
//! chooses between a CALL and a script, never knows result-set positions, and never reads rows
//! by position. Two engines exist, chosen once per database ([`Engine::of`]):
//! - [`Engine::Procedures`]: the hot steps as CALLs of the stored procedures (parsed once per
//!   connection, answered once); any step or variant they do not serve runs as a script;
//! - [`Engine::Scripts`]: every step as one multi-statement script. A database whose CALLs are
//!   refused switches to it for good (see [`refused_before_the_body`]).
//!
//! The reads a step needs after a miss (why a guarded UPDATE matched nothing, which rows hold
//! an enqueue's keys, the types' states when it created nothing) are made here too, so every
//! engine answers the same typed values.

use crate::database::Database;
use crate::error::{Error, Result};
use crate::pool::{Conn, ScriptResult};
use crate::queue::lease::LeaseState;
use crate::queue::lifecycle::Script;
use crate::queue::lifecycle::{
    self, ClaimOrder, ClaimRequest, GuardedScript, Holder, NewTask, Read, Status, Transition,
};
use crate::queue::procedures;
use crate::row::{self, Columns};
use mysql::prelude::Queryable;

/// How a database runs its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Procedures,
    Scripts,
}

impl Engine {
    /// The engine of this database: the procedures until one of their CALLs was refused.
    pub(crate) fn of(db: &Database) -> Engine {
        if db.procedures_usable() {
            Engine::Procedures
        } else {
            Engine::Scripts
        }
    }

    /// Runs `call` when this engine has one for the step; `Ok(None)`: run the script instead
    /// (no procedure serves the step, or the database refused the CALL and this database now
    /// runs scripts).
    fn call(
        self,
        db: &Database,
        conn: &mut Conn<'_>,
        call: Option<&Script>,
    ) -> Result<Option<ScriptResult>> {
        let Some(call) = call.filter(|_| self == Engine::Procedures) else {
            return Ok(None);
        };
        match call.run(conn) {
            Ok(answer) => Ok(Some(answer)),
            Err(e) if refused_before_the_body(&e) => {
                db.stop_using_procedures();
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// The server refused the CALL itself, before any of the body ran: the procedure is missing
/// (1305), has another number of parameters (1318: a database migrated by another release),
/// the account may not execute it (1370), its definer is gone (1449), or the server cannot
/// read its stored routines (1457, 1548, 1728). The scripts run the same statements.
fn refused_before_the_body(e: &Error) -> bool {
    matches!(
        e.server_code(),
        Some(1305 | 1318 | 1370 | 1449 | 1457 | 1548 | 1728)
    )
}

// ---------------------------------------------------------------------------------------------
// enqueue

/// Which task holds one of an enqueue's keys now.
pub(crate) struct KeyHolder {
    pub id: i64,
    pub key: String,
    pub status: Status,
    /// Created by this call (any run of it).
    pub created_by_this_call: bool,
}

/// A type's state as an enqueue that created nothing read it.
pub(crate) struct TypeState {
    pub id: i64,
    pub version: String,
    pub active: bool,
}

/// What an enqueue did.
pub(crate) enum EnqueueAnswer {
    /// One task, created, with this id: the write's own answer says everything.
    Created(i64),
    /// Which rows hold the call's keys; when none was created by this call, also the types'
    /// states, which tell a refused write (type inactive or changed) from duplicates.
    Held {
        holders: Vec<KeyHolder>,
        type_states: Option<Vec<TypeState>>,
    },
}

impl Engine {
    /// Inserts `tasks` (all or nothing) in one round trip; a second reads the holders and the
    /// types' states when the write created nothing (a duplicate, a refused type, a repeat).
    /// `window`: the unique window in seconds of a single task (see `lifecycle::window_sql`);
    /// it runs as a script on every engine, so the procedures stay as they are.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn enqueue(
        self,
        db: &Database,
        conn: &mut Conn<'_>,
        tasks: &[NewTask<'_>],
        types: &[(i64, &str)],
        token: &str,
        history_on: bool,
        window: Option<u32>,
    ) -> Result<EnqueueAnswer> {
        let call = match (tasks, types, window) {
            ([task], [(_, version)], None) => {
                Some(procedures::enqueue(task, version, token, history_on))
            }
            _ => None,
        };
        let windowed = match (tasks, types, window) {
            ([task], [(_, version)], Some(seconds)) => Some(lifecycle::enqueue_windowed(
                task, version, token, history_on, seconds,
            )),
            _ => None,
        };
        let (created, batch_holders) = if let Some(script) = windowed {
            let answer = script.script.run(conn)?;
            let created = [script.insert, script.insert_after_release]
                .into_iter()
                .find(|index| answer.affected(*index) == 1)
                .map(|index| answer.insert_id(index) as i64);
            (created, None)
        } else {
            match self.call(db, conn, call.as_ref())? {
                Some(mut answer) => {
                    let rows = answer.rows(procedures::answer::ENQUEUED);
                    let answers = row::decode_all(rows, "an enqueued task", |c| {
                        Ok((c.get::<i64>("id")?, c.get::<i64>("created")?))
                    })?;
                    let (id, created) = answers.into_iter().next().unwrap_or((0, 0));
                    ((created == 1).then_some(id), None)
                }
                None => {
                    let script = lifecycle::enqueue(tasks, types, token, history_on);
                    let mut answer = script.script.run(conn)?;
                    let created = (script.holders.is_none() && answer.affected(script.insert) == 1)
                        .then(|| answer.insert_id(script.insert) as i64);
                    (created, script.holders.map(|index| answer.rows(index)))
                }
            }
        };
        if let Some(id) = created {
            return Ok(EnqueueAnswer::Created(id));
        }
        // A batch read its keys' holders in its script; one task reads them, with the types'
        // states, in a second round trip.
        let (holder_rows, state_rows) = match batch_holders {
            Some(rows) => (rows, None),
            None => {
                let (script, lookup) = lifecycle::enqueue_lookup(tasks, types, token);
                let mut answer = script.run(conn)?;
                (answer.rows(lookup.rows), Some(answer.rows(lookup.types)))
            }
        };
        let holders = row::decode_all(holder_rows, "a task", |c| {
            Ok(KeyHolder {
                id: c.id("task")?,
                key: c.get("dedupe_lock")?,
                status: c.parsed("status", Status::parse)?,
                created_by_this_call: c.get("created_by_this_call")?,
            })
        })?;
        let type_states = if holders.iter().any(|h| h.created_by_this_call) {
            None
        } else {
            let rows = match state_rows {
                Some(rows) => rows,
                None => conn
                    .query(lifecycle::type_states(tasks, types, token))
                    .map_err(|e| conn.error(e))?,
            };
            Some(row::decode_all(rows, "a task type", |c| {
                Ok(TypeState {
                    id: c.id("type")?,
                    version: c.get("version")?,
                    active: c.get("is_active")?,
                })
            })?)
        };
        Ok(EnqueueAnswer::Held {
            holders,
            type_states,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// claim

/// A claimed task as the claim's answer holds it (its type by id).
pub(crate) struct ClaimedRow {
    pub id: i64,
    pub type_id: i64,
    pub params_json: String,
    pub priority: i32,
    pub attempts: u32,
    pub max_attempts: u32,
    pub lease_expires_at: String,
    pub lease_token: String,
}

/// What a claim found.
pub(crate) struct ClaimAnswer {
    pub rows: Vec<ClaimedRow>,
    /// With the request's `report`: when a held-back type may start a task again.
    pub next_allowed_at: Option<String>,
}

impl ClaimAnswer {
    /// Rows from a step that reports nothing else.
    pub(crate) fn of(rows: Vec<ClaimedRow>) -> ClaimAnswer {
        ClaimAnswer {
            rows,
            next_allowed_at: None,
        }
    }
}

/// Remembers the limited types a script read (see `lifecycle::flow_sql`).
fn learn_limited(db: &Database, answer: &mut ScriptResult, at: Option<usize>) -> Result<()> {
    if let Some(at) = at {
        db.flow.learn(crate::flow::read_limited(answer.rows(at))?);
    }
    Ok(())
}

/// Decodes the claimed-task columns of the claim steps (see `lifecycle::claim_sql`).
fn claimed_rows(rows: Vec<mysql::Row>) -> Result<Vec<ClaimedRow>> {
    row::decode_all(rows, "a claimed task", |c| {
        Ok(ClaimedRow {
            id: c.id("task")?,
            type_id: c.get("type_id")?,
            params_json: c.get("params_json")?,
            priority: c.get("priority")?,
            attempts: c.get("attempts")?,
            max_attempts: c.get("max_attempts")?,
            lease_expires_at: c.get("lease_expires_at")?,
            lease_token: c.get("lease_token")?,
        })
    })
}

impl Engine {
    /// Claims what `request` asks for; with `recover`, the lazy recovery of expired leases
    /// runs first in the same transaction (only the scripts carry it), and the claim learns
    /// which types are limited. The procedures serve a claim with no gated pick and no report.
    pub(crate) fn claim(
        self,
        db: &Database,
        conn: &mut Conn<'_>,
        request: &ClaimRequest<'_>,
        recover: bool,
        history_on: bool,
    ) -> Result<ClaimAnswer> {
        let plain = !recover && request.gated.is_empty() && !request.report;
        let call = procedures::claim(request, history_on).filter(|_| plain);
        if let Some(mut answer) = self.call(db, conn, call.as_ref())? {
            return Ok(ClaimAnswer {
                rows: claimed_rows(answer.rows(procedures::answer::CLAIMED))?,
                next_allowed_at: None,
            });
        }
        let script = lifecycle::claim(request, recover, history_on);
        let mut answer = script.script.run(conn)?;
        learn_limited(db, &mut answer, script.limited)?;
        let next_allowed_at = match script.next_allowed {
            Some(at) => answer.first_value::<Option<String>>(at).flatten(),
            None => None,
        };
        Ok(ClaimAnswer {
            rows: claimed_rows(answer.rows(script.claimed))?,
            next_allowed_at,
        })
    }

    /// The tasks a claim with this token prefix already leased: after a lost connection, its
    /// first run may have committed.
    pub(crate) fn claimed_by(
        self,
        conn: &mut Conn<'_>,
        token_prefix: &str,
        order: ClaimOrder,
    ) -> Result<Vec<ClaimedRow>> {
        let rows = conn
            .query(lifecycle::claimed_rows(token_prefix, order))
            .map_err(|e| conn.error(e))?;
        claimed_rows(rows)
    }

    /// Completes the task `id` held by `token` and, unless that failed, claims the next: one
    /// transaction, one round trip. The claim part skips recovery on the procedures.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn complete_and_claim(
        self,
        db: &Database,
        conn: &mut Conn<'_>,
        id: i64,
        token: &str,
        result_text: &str,
        request: &ClaimRequest<'_>,
        recover: bool,
        history_on: bool,
    ) -> Result<(Guarded, Vec<ClaimedRow>)> {
        let plain = !recover && request.gated.is_empty();
        let call = procedures::complete_and_claim(id, token, result_text, request, history_on)
            .filter(|_| plain);
        let (changed, rows) = match self.call(db, conn, call.as_ref())? {
            Some(mut answer) => (
                answer
                    .first_value::<u64>(procedures::answer::COMPLETE_AND_CLAIM_CHANGED)
                    .unwrap_or(0)
                    > 0,
                answer.rows(procedures::answer::COMPLETE_AND_CLAIM_CLAIMED),
            ),
            None => {
                let script = lifecycle::complete_and_claim(
                    id,
                    token,
                    result_text,
                    request,
                    recover,
                    history_on,
                );
                let mut answer = script.script.run(conn)?;
                learn_limited(db, &mut answer, script.limited)?;
                (
                    answer.affected(script.update) > 0,
                    answer.rows(script.claimed),
                )
            }
        };
        let guarded = if changed {
            Guarded::changed()
        } else {
            Guarded::missed(conn, id, Holder::Token(token))?
        };
        Ok((guarded, claimed_rows(rows)?))
    }
}

// ---------------------------------------------------------------------------------------------
// guarded steps: complete, fail, heartbeat, release

/// What a guarded step found: whether its UPDATE matched, and the task afterwards (its status
/// and holder, and the step's own columns) when the step reads it or the UPDATE missed.
pub(crate) struct Guarded {
    pub changed: bool,
    /// `None` when the step reads nothing on success, or the task does not exist.
    pub state: LeaseState,
    /// The step's own columns of the task, for steps that read them.
    pub columns: Option<Columns>,
}

impl Guarded {
    fn changed() -> Guarded {
        Guarded {
            changed: true,
            state: None,
            columns: None,
        }
    }

    /// After a guarded step matched nothing: the task's status and holder, to say why, in a
    /// second round trip (misses are the rare path: a repeat, a stale token).
    fn missed(conn: &mut Conn<'_>, id: i64, holder: Holder<'_>) -> Result<Guarded> {
        let row = conn
            .query_first(lifecycle::task_lease(id, holder))
            .map_err(|e| conn.error(e))?;
        Guarded::from_row(false, id, row)
    }

    /// Status and holder (`status`, `holder`) are the first columns of every state row.
    fn from_row(changed: bool, id: i64, row: Option<mysql::Row>) -> Result<Guarded> {
        let Some(row) = row else {
            return Ok(Guarded {
                changed,
                state: None,
                columns: None,
            });
        };
        let mut columns = Columns::new(row, format!("task {id}"));
        let state = (columns.get("status")?, columns.get("holder")?);
        Ok(Guarded {
            changed,
            state: Some(state),
            columns: Some(columns),
        })
    }
}

impl Engine {
    /// Runs a guarded step (its script; a complete by token may go through its procedure).
    pub(crate) fn guarded(
        self,
        db: &Database,
        conn: &mut Conn<'_>,
        id: i64,
        holder: Holder<'_>,
        script: &GuardedScript,
        call: Option<&Script>,
    ) -> Result<Guarded> {
        if let Some(mut answer) = self.call(db, conn, call)? {
            if answer
                .first_value::<i64>(procedures::answer::COMPLETED)
                .unwrap_or(0)
                > 0
            {
                return Ok(Guarded::changed());
            }
            return Guarded::missed(conn, id, holder);
        }
        let mut answer = script.script.run(conn)?;
        let changed = answer.affected(script.update) > 0;
        match script.state {
            Some(index) => Guarded::from_row(changed, id, answer.rows(index).into_iter().next()),
            None if changed => Ok(Guarded::changed()),
            None => Guarded::missed(conn, id, holder),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// batches, recovery and retention (scripts on every engine)

/// A task of a batch complete, as the step left it.
pub(crate) struct BatchState {
    pub id: i64,
    pub status: String,
    pub lease_token: Option<String>,
    /// Completed by this call, now.
    pub finished_now: bool,
}

/// What a recovery pass did.
pub(crate) struct Recovered {
    /// Expired leases handed back.
    pub recovered: u64,
    /// Of those, the tasks that had used their last attempt and are now failed.
    pub failed: u64,
}

impl Engine {
    /// Completes every `(id, token, result)` whose token holds its task, in one transaction;
    /// answers the state of every distinct id.
    pub(crate) fn complete_batch(
        self,
        conn: &mut Conn<'_>,
        items: &[(i64, &str, String)],
        history_on: bool,
    ) -> Result<Vec<BatchState>> {
        let script = lifecycle::complete_batch(items, history_on);
        let mut answer = script.script.run(conn)?;
        row::decode_all(answer.rows(script.state), "a completed task", |c| {
            Ok(BatchState {
                id: c.id("task")?,
                status: c.get("status")?,
                lease_token: c.get("lease_token")?,
                finished_now: c.get("finished_now")?,
            })
        })
    }

    /// Recovers up to `limit` expired leases.
    pub(crate) fn recover(
        self,
        conn: &mut Conn<'_>,
        limit: u32,
        claim_timeout: u32,
        history_on: bool,
    ) -> Result<Recovered> {
        let script = lifecycle::recovery(limit, claim_timeout, history_on);
        let mut answer = script.script.run(conn)?;
        let counts = row::decode_all(answer.rows(script.report), "recovery", |c| {
            Ok(Recovered {
                recovered: c.get("recovered")?,
                failed: c.get("failed")?,
            })
        })?;
        Ok(counts.into_iter().next().unwrap_or(Recovered {
            recovered: 0,
            failed: 0,
        }))
    }
}

/// What a retention step deleted.
pub(crate) struct Pruned {
    pub history: u64,
    pub tasks: u64,
}

impl Engine {
    /// How many tasks in `statuses` finished more than `older_than` seconds ago.
    pub(crate) fn prune_count(
        self,
        conn: &mut Conn<'_>,
        statuses: &[Status],
        older_than: u64,
    ) -> Result<u64> {
        conn.query_first::<u64, _>(lifecycle::prune_count(statuses, older_than))
            .map_err(|e| conn.error(e))
            .map(Option::unwrap_or_default)
    }

    /// Up to `limit` ids of tasks in `status` old enough to prune, oldest first.
    pub(crate) fn prune_page(
        self,
        conn: &mut Conn<'_>,
        status: Status,
        older_than: u64,
        limit: u32,
    ) -> Result<Vec<i64>> {
        conn.query(lifecycle::prune_page(status, older_than, limit))
            .map_err(|e| conn.error(e))
    }

    /// Deletes the tasks `ids` still in `status` and still old enough, with their history.
    pub(crate) fn prune(
        self,
        conn: &mut Conn<'_>,
        status: Status,
        ids: &[i64],
        older_than: u64,
    ) -> Result<Pruned> {
        let script = lifecycle::prune(status, ids, older_than);
        let answer = script.script.run(conn)?;
        Ok(Pruned {
            history: answer.affected(script.history),
            tasks: answer.affected(script.tasks),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// reads and operator actions

impl Engine {
    /// Runs a read (see [`Read`]) with its bound values and decodes every row; `subject` names
    /// a row in errors until its decoder knows its id.
    pub(crate) fn read<T>(
        self,
        conn: &mut Conn<'_>,
        read: Read<'_>,
        params: mysql::Params,
        subject: &str,
        decode: impl FnMut(&mut Columns) -> Result<T>,
    ) -> Result<Vec<T>> {
        let rows: Vec<mysql::Row> = conn.exec(read.sql(), params).map_err(|e| conn.error(e))?;
        row::decode_all(rows, subject, decode)
    }

    /// An operator's action on task `id`, in one transaction: locks the task and reads its
    /// status; `judge` answers from it whether to change the task (`Ok(true)`), whether it is
    /// already where the action leads (`Ok(false)`), or why not (`Err`); a change writes the
    /// transition and, with history on, its row. Answers the status read, and whether the
    /// task changed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn manual(
        self,
        db: &Database,
        conn: &mut Conn<'_>,
        id: i64,
        transition: &Transition,
        reason: Option<&str>,
        history_on: bool,
        judge: impl FnOnce(&str) -> Result<bool>,
    ) -> Result<(String, bool)> {
        let mut tx = conn
            .start_transaction(mysql::TxOpts::default())
            .map_err(|e| db.error(e))?;
        let current: Option<String> = tx
            .exec_first(Read::LockStatus.sql(), (id,))
            .map_err(|e| db.error(e))?;
        let current =
            current.ok_or_else(|| Error::not_found(format!("task {id} does not exist")))?;
        let change = judge(&current)?;
        if change {
            tx.query_drop(lifecycle::manual(transition, id, reason))
                .map_err(|e| db.error(e))?;
            if history_on {
                tx.query_drop(lifecycle::manual_history(transition, id, reason))
                    .map_err(|e| db.error(e))?;
            }
        }
        crate::database::commit(db, tx)?;
        Ok((current, change))
    }
}
