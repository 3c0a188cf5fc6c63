//! Claim: hand out up to `limit` runnable tasks under fresh leases, without two claimers ever
//! holding one task and without claimers waiting on each other (`FOR UPDATE SKIP LOCKED`).
//! Beside it, lease recovery: a claim turns up to 100 expired leases into failed attempts in
//! its own round trip once a second per process, and in a second round trip when it comes up
//! short (so an idle queue's poll is two round trips); no background process is needed.
//! `recover_expired` does the same for every expired lease, for cron. A claim also ticks the
//! schedules first when its process's throttle says so (see `schedule`).

use crate::Config;
use crate::database::Database;
use crate::error::{Code, Error, Result};
use crate::flow::wait;
use crate::json;
use crate::pool::Conn;
use crate::queue::engine::{ClaimAnswer, ClaimedRow, Engine, Recovered};
use crate::queue::input::{check_lease_seconds, check_task_id, check_token, check_worker_id};
use crate::queue::lease::repeated_or_error;
use crate::queue::lifecycle::{self, ClaimOrder, SortColumn, Status};
use crate::queue::like::like_pattern;
use crate::queue::{Finished, MAX_BATCH};
use crate::random::random_hex;
use crate::sql::escape_like;
use crate::types::check_name;
use mysql::prelude::Queryable;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which tasks a worker wants.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimOptions {
    /// Only these task types.
    pub types: Option<Vec<String>>,
    /// Only task types whose name starts with this literal text (no wildcards).
    pub type_prefix: Option<String>,
    /// Only task types whose name matches this SQL LIKE pattern: `%` any run of characters,
    /// `_` one character, `\` makes the next character literal. The server compares it under
    /// the name column's collation (case-insensitive). At most one of `types`, `type_prefix`
    /// and `type_pattern`.
    pub type_pattern: Option<String>,
    /// Only task types with these ids (1..=1000 of them). With `types`, `type_prefix` or
    /// `type_pattern` a type must pass both.
    pub type_ids: Option<Vec<i64>>,
    /// At most this many tasks (1..=1000, default 1).
    pub limit: Option<u32>,
    /// Lease length in seconds. Default: the `task_claim_timeout` setting.
    pub lease_seconds: Option<u32>,
    /// Hand tasks out by this column instead of highest priority first, then oldest; ties by id
    /// in the same direction.
    pub sort_by: Option<SortBy>,
    /// Direction of `sort_by` (default ascending).
    pub sort_order: Option<SortOrder>,
    /// When nothing is claimable, wait up to this many seconds (0 to 60) for a task, holding
    /// no transaction or lock meanwhile (see `flow::wait`). Default: answer at once.
    pub wait_seconds: Option<f64>,
    /// Through the C ABI: answer `{"tasks": [...], "next_allowed_at": ...}` (a
    /// [`ClaimReport`]) instead of the bare list. [`Client::claim_report`](crate::Client::claim_report)
    /// always does.
    pub report: Option<bool>,
}

/// A claim order (`sort_by`), as the original HTTP API offered them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// Oldest first (`created_at`).
    CreatedAt,
    /// By priority (lowest first, unless `desc`).
    Priority,
    /// By task id.
    Id,
    /// By attempts made so far.
    Attempts,
}

/// `asc` or `desc` (either case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SortOrder {
    /// Ascending.
    #[serde(rename = "asc", alias = "ASC")]
    Asc,
    /// Descending.
    #[serde(rename = "desc", alias = "DESC")]
    Desc,
}

impl ClaimOptions {
    fn order(&self) -> Result<ClaimOrder> {
        let descending = self.sort_order == Some(SortOrder::Desc);
        Ok(match self.sort_by {
            None if self.sort_order.is_some() => {
                return Err(Error::invalid(
                    "sort_order needs sort_by (created_at, priority, id or attempts)",
                ));
            }
            None => ClaimOrder::PriorityThenAge,
            Some(SortBy::CreatedAt) => ClaimOrder::By(SortColumn::CreatedAt, descending),
            Some(SortBy::Priority) => ClaimOrder::By(SortColumn::Priority, descending),
            Some(SortBy::Id) => ClaimOrder::By(SortColumn::Id, descending),
            Some(SortBy::Attempts) => ClaimOrder::By(SortColumn::Attempts, descending),
        })
    }
}

/// A task handed to a worker, with the lease token that alone can finish it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClaimedTask {
    /// The task.
    pub id: i64,
    /// Its type's name (`type` in JSON).
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its params.
    pub params: Value,
    /// Its priority; higher runs first.
    pub priority: i32,
    /// Attempts including this one.
    pub attempts: u32,
    /// Attempts it may have in all before it is dead.
    pub max_attempts: u32,
    /// The token that alone may heartbeat, complete, fail or release it under this lease.
    pub lease_token: String,
    /// When the lease runs out unless extended (RFC 3339, UTC, database clock).
    pub lease_expires_at: String,
}

/// A claim's tasks, and when a type it left alone may start a task again.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClaimReport {
    /// The claimed tasks.
    pub tasks: Vec<ClaimedTask>,
    /// The earliest moment a type this claim could take, held back by its rate limit or by a
    /// pause with an end, may start a task again (RFC 3339, UTC, database clock); null when no
    /// such type has runnable tasks.
    pub next_allowed_at: Option<String>,
}

/// Most type ids one claim may name.
const MAX_TYPE_IDS: usize = 1000;

/// A checked claim request: how many tasks, for how long, in which order.
pub(crate) struct Wanted {
    pub limit: u32,
    pub lease_seconds: u32,
    pub order: ClaimOrder,
    /// Whether to find out when a held-back type may start again.
    pub report: bool,
}

impl Wanted {
    /// The claim script's request for these tasks.
    fn request<'a>(
        &self,
        worker_id: &'a str,
        type_ids: Option<&'a [i64]>,
        gated: &'a [lifecycle::Limited],
        token_prefix: &'a str,
        config: &Config,
    ) -> lifecycle::ClaimRequest<'a> {
        lifecycle::ClaimRequest {
            worker_id,
            type_ids,
            limit: self.limit,
            lease_seconds: self.lease_seconds,
            token_prefix,
            order: self.order,
            claim_timeout: config.task_claim_timeout,
            gated,
            report: self.report,
        }
    }
}

/// Everything about a claim that can be refused without the database.
pub(crate) fn check_claim(
    config: &Config,
    worker_id: &str,
    options: &ClaimOptions,
) -> Result<Wanted> {
    check_worker_id(worker_id)?;
    let limit = options.limit.unwrap_or(1);
    if limit == 0 || limit as usize > MAX_BATCH {
        return Err(Error::invalid(format!(
            "limit must be from 1 to {MAX_BATCH}, got {limit}"
        )));
    }
    let lease_seconds = options.lease_seconds.unwrap_or(config.task_claim_timeout);
    check_lease_seconds(lease_seconds)?;
    let by_name = [
        options.types.is_some(),
        options.type_prefix.is_some(),
        options.type_pattern.is_some(),
    ];
    if by_name.iter().filter(|given| **given).count() > 1 {
        return Err(Error::invalid(
            "give at most one of types, type_prefix and type_pattern",
        ));
    }
    if let Some(types) = &options.types {
        if types.is_empty() {
            return Err(Error::invalid("types must list at least one task type"));
        }
        types.iter().try_for_each(|t| check_name(t))?;
    }
    if let Some(prefix) = &options.type_prefix {
        check_name(prefix)?;
    }
    if let Some(pattern) = &options.type_pattern {
        like_pattern(pattern, "type_pattern")?;
    }
    if let Some(ids) = &options.type_ids {
        if ids.is_empty() || ids.len() > MAX_TYPE_IDS {
            return Err(Error::invalid(format!(
                "type_ids must list 1 to {MAX_TYPE_IDS} type ids, got {}",
                ids.len()
            )));
        }
        if let Some(bad) = ids.iter().find(|id| **id < 1) {
            return Err(Error::invalid(format!(
                "type_ids must hold positive type ids, got {bad}"
            )));
        }
    }
    Ok(Wanted {
        limit,
        lease_seconds,
        order: options.order()?,
        report: options.report == Some(true),
    })
}

/// Claims, waiting up to `wait_seconds` for a task when none is claimable.
pub(crate) fn claim(
    db: &Database,
    config: &Config,
    worker_id: &str,
    options: &ClaimOptions,
) -> Result<ClaimReport> {
    let wanted = check_claim(config, worker_id, options)?;
    let deadline = wait::deadline(options.wait_seconds)?;
    wait::until_found(
        db,
        deadline,
        |report: &ClaimReport| !report.tasks.is_empty(),
        |poll| claim_once(db, config, worker_id, options, &wanted, poll),
    )
}

fn claim_once(
    db: &Database,
    config: &Config,
    worker_id: &str,
    options: &ClaimOptions,
    wanted: &Wanted,
    poll: bool,
) -> Result<ClaimReport> {
    // Due schedules enqueue their tasks first (throttled), so that this claim can take them.
    crate::schedule::lazy_tick(db, config);
    // Known before the commit and the same on a repeat, so a repeat finds what it leased.
    let token_prefix = random_hex();
    db.run(|conn, again| {
        let engine = Engine::of(db);
        if again {
            let held = engine.claimed_by(conn, &token_prefix, wanted.order)?;
            if !held.is_empty() {
                return report(db, conn, ClaimAnswer::of(held));
            }
        }
        let Some(type_ids) = type_filter(db, conn, options)? else {
            return Ok(ClaimReport {
                tasks: Vec::new(),
                next_allowed_at: None,
            });
        };
        let gated = db.flow.limited_in(type_ids.as_deref());
        let request = wanted.request(
            worker_id,
            type_ids.as_deref(),
            &gated,
            &token_prefix,
            config,
        );
        // Expired leases go back to the queue lazily: before the select once a second, and
        // in a second round trip when a claim without that pass comes up short.
        let recover = db.lazy_recovery_due();
        let answer = claim_round(db, conn, &request, recover, config)?;
        // A waiting claim's poll leaves recovery to the once-a-second pass.
        let mut answer = if poll {
            answer
        } else {
            claim_more_if_short(db, conn, request, recover, config, answer)?
        };
        if answer.rows.is_empty() && options.types.is_some() {
            // The names came from the cache; a type deleted and registered again (plain SQL)
            // has a new id. Resolve them afresh and, if any changed, claim with those.
            forget_types(db, options);
            if let Some(fresh) = type_filter(db, conn, options)? {
                if fresh != type_ids {
                    let gated = db.flow.limited_in(fresh.as_deref());
                    let request = lifecycle::ClaimRequest {
                        type_ids: fresh.as_deref(),
                        gated: &gated,
                        ..request
                    };
                    answer = claim_round(db, conn, &request, true, config)?;
                }
            }
        }
        report(db, conn, answer)
    })
}

/// The report of a claim's answer, its tasks' types named.
fn report(db: &Database, conn: &mut Conn<'_>, answer: ClaimAnswer) -> Result<ClaimReport> {
    Ok(ClaimReport {
        tasks: claimed_tasks(db, conn, answer.rows)?,
        next_allowed_at: answer.next_allowed_at,
    })
}

/// Drops the claim's type names from the cache.
fn forget_types(db: &Database, options: &ClaimOptions) {
    for name in options.types.iter().flatten() {
        db.types.forget(name);
    }
}

/// Completes the task a worker holds and claims its next in one transaction and one round
/// trip (one commit instead of two). A stale token gets `LeaseLost` and claims nothing; a
/// repeat of an earlier identical call answers `repeated` and claims the next as well.
///
/// With `wait_seconds`, a step that claimed nothing waits for a task like a claim does; the
/// complete has committed by then.
pub(crate) fn complete_and_claim(
    db: &Database,
    config: &Config,
    done: (i64, &str, &Value),
    worker_id: &str,
    options: &ClaimOptions,
) -> Result<CompletedAndClaimed> {
    wait::deadline(options.wait_seconds)?;
    let mut answer = complete_then_claim(db, config, done, worker_id, options)?;
    if answer.claimed.is_empty() && options.wait_seconds.is_some_and(|s| s > 0.0) {
        answer.claimed = claim(db, config, worker_id, options)?.tasks;
    }
    Ok(answer)
}

fn complete_then_claim(
    db: &Database,
    config: &Config,
    done: (i64, &str, &Value),
    worker_id: &str,
    options: &ClaimOptions,
) -> Result<CompletedAndClaimed> {
    let (id, token, _) = done;
    let holder = lifecycle::Holder::Token(token);
    let (result_text, wanted) = check_complete_and_claim(config, done, worker_id, options)?;
    crate::schedule::lazy_tick(db, config);
    let token_prefix = random_hex();
    let completed = |repeated| Finished {
        id,
        status: Status::Completed,
        repeated,
    };
    db.run(|conn, again| {
        let engine = Engine::of(db);
        if again {
            // The first run committed both halves if it leased anything.
            let held = engine.claimed_by(conn, &token_prefix, wanted.order)?;
            if !held.is_empty() {
                return Ok(CompletedAndClaimed {
                    completed: completed(false),
                    claimed: claimed_tasks(db, conn, held)?,
                });
            }
        }
        let type_ids = type_filter(db, conn, options)?;
        // A filter that matches no type still completes, and claims nothing.
        let filter = type_ids.as_ref().map_or(Some(&[0][..]), |t| t.as_deref());
        let gated = db.flow.limited_in(filter);
        let request = wanted.request(worker_id, filter, &gated, &token_prefix, config);
        let recover = db.lazy_recovery_due();
        let history_on = config.enable_task_history;
        let (done, rows) = engine.complete_and_claim(
            db,
            conn,
            id,
            token,
            &result_text,
            &request,
            recover,
            history_on,
        )?;
        // A miss is either a repeat (the step claimed the next all the same) or an error
        // (it claimed nothing).
        let repeated =
            !done.changed && repeated_or_error(id, done.state, holder, &[Status::Completed])?;
        let answer =
            claim_more_if_short(db, conn, request, recover, config, ClaimAnswer::of(rows))?;
        Ok(CompletedAndClaimed {
            completed: completed(repeated),
            claimed: claimed_tasks(db, conn, answer.rows)?,
        })
    })
}

/// A complete_and_claim's input (both engines): the result as JSON text and the claim wanted.
pub(crate) fn check_complete_and_claim(
    config: &Config,
    (id, token, result): (i64, &str, &Value),
    worker_id: &str,
    options: &ClaimOptions,
) -> Result<(String, Wanted)> {
    check_task_id(id)?;
    check_token(token)?;
    let result_text = json::check_value(result, config.max_payload_bytes, "result")?;
    Ok((result_text, check_claim(config, worker_id, options)?))
}

/// What [`Client::complete_and_claim`](crate::Client::complete_and_claim) did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CompletedAndClaimed {
    /// The task it completed.
    pub completed: Finished,
    /// The next tasks, leased to the worker; empty when nothing is runnable.
    pub claimed: Vec<ClaimedTask>,
}

/// A claim that came up short without a recovery pass tries once more with one, for the rest.
fn claim_more_if_short(
    db: &Database,
    conn: &mut Conn<'_>,
    mut request: lifecycle::ClaimRequest<'_>,
    recovered: bool,
    config: &Config,
    mut answer: ClaimAnswer,
) -> Result<ClaimAnswer> {
    if answer.rows.len() < request.limit as usize && !recovered {
        request.limit -= answer.rows.len() as u32;
        // A recovery pass learns of new limits: claim under their gates at once.
        let known = claim_round(db, conn, &request, true, config)?;
        let gated = db.flow.limited_in(request.type_ids);
        let more = if known.rows.is_empty() && gated != request.gated {
            let request = lifecycle::ClaimRequest {
                gated: &gated,
                ..request
            };
            claim_round(db, conn, &request, false, config)?
        } else {
            known
        };
        answer.rows.extend(more.rows);
        answer.next_allowed_at = more.next_allowed_at.or(answer.next_allowed_at);
    }
    Ok(answer)
}

/// One claim through the database's engine.
fn claim_round(
    db: &Database,
    conn: &mut Conn<'_>,
    request: &lifecycle::ClaimRequest<'_>,
    recover: bool,
    config: &Config,
) -> Result<ClaimAnswer> {
    Engine::of(db).claim(db, conn, request, recover, config.enable_task_history)
}

/// The type ids a claim is limited to: `Some(None)` for any type, `None` when the filter
/// matches no type at all (nothing to claim).
///
/// Resolved before the locking statement: a join with task_types there would lock type rows
/// and make claimers skip each other's types. Names come from the cache after the first call;
/// a prefix or pattern is matched by the server each time (a type registered since counts).
fn type_filter(
    db: &Database,
    conn: &mut Conn<'_>,
    options: &ClaimOptions,
) -> Result<Option<Option<Vec<i64>>>> {
    let by_name = match (&options.types, &options.type_prefix, &options.type_pattern) {
        (Some(names), _, _) => {
            let mut ids = Vec::new();
            for name in names {
                match db.types.get(conn, name) {
                    Ok(t) => ids.push(t.id),
                    Err(e) if e.code() == Code::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Some(ids)
        }
        (None, Some(prefix), _) => Some(
            conn.exec(
                "SELECT id FROM task_types WHERE name LIKE CONCAT(?, '%') ESCAPE '!'",
                (escape_like(prefix),),
            )
            .map_err(|e| conn.error(e))?,
        ),
        (None, None, Some(pattern)) => Some(
            conn.exec(
                "SELECT id FROM task_types WHERE name LIKE ? ESCAPE '!'",
                (like_pattern(pattern, "type_pattern")?,),
            )
            .map_err(|e| conn.error(e))?,
        ),
        (None, None, None) => None,
    };
    let ids = match (by_name, &options.type_ids) {
        (None, None) => return Ok(Some(None)),
        // Ids alone need no round trip: an id no type has matches no task.
        (None, Some(wanted)) => wanted.clone(),
        (Some(found), None) => found,
        (Some(found), Some(wanted)) => found.into_iter().filter(|id| wanted.contains(id)).collect(),
    };
    Ok((!ids.is_empty()).then_some(Some(ids)))
}

/// The claimed tasks, their types named.
fn claimed_tasks(
    db: &Database,
    conn: &mut Conn<'_>,
    rows: Vec<ClaimedRow>,
) -> Result<Vec<ClaimedTask>> {
    let type_ids: Vec<i64> = rows.iter().map(|r| r.type_id).collect();
    let names = db.types.names(conn, &type_ids)?;
    Ok(rows
        .into_iter()
        .map(|r| ClaimedTask {
            id: r.id,
            type_name: names.get(&r.type_id).cloned().unwrap_or_default(),
            params: serde_json::from_str(&r.params_json).unwrap_or(Value::Null),
            priority: r.priority,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            lease_token: r.lease_token,
            lease_expires_at: r.lease_expires_at,
        })
        .collect())
}

/// What a recovery run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Recovery {
    /// Tasks whose lease had run out.
    pub recovered: u64,
    /// Of those, the ones put back to pending (attempts left).
    pub requeued: u64,
    /// Of those, the ones that had used their last attempt and are now failed.
    pub failed: u64,
}

/// Recovers every expired lease, in batches of bounded size, for a cron job or an operator.
pub(crate) fn recover_expired(db: &Database, config: &Config) -> Result<Recovery> {
    const BATCH: u32 = 500;
    let mut total = Recovery::default();
    loop {
        let Recovered { recovered, failed } = db.run(|conn, _| {
            Engine::of(db).recover(
                conn,
                BATCH,
                config.task_claim_timeout,
                config.enable_task_history,
            )
        })?;
        total.recovered += recovered;
        total.requeued += recovered - failed;
        total.failed += failed;
        if recovered < u64::from(BATCH) {
            return Ok(total);
        }
    }
}
