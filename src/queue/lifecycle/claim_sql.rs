//! Claim and lease recovery: the locking pick (SKIP LOCKED) in each claim order, the lease,
//! its history rows and the answer; the lazy and the explicit recovery of expired leases.

use super::*;
use crate::sql;

/// What to claim.
#[derive(Clone, Copy)]
pub struct ClaimRequest<'a> {
    pub worker_id: &'a str,
    /// Only these type ids (`None`: any type).
    pub type_ids: Option<&'a [i64]>,
    pub limit: u32,
    pub lease_seconds: u32,
    /// Each lease token is `prefix.id`: known before the commit, so a repeat can find them.
    pub token_prefix: &'a str,
    /// The order tasks are handed out in.
    pub order: ClaimOrder,
    /// The `task_claim_timeout` setting, for tasks claimed by hand (see [`lease_ran_out`]).
    pub claim_timeout: u32,
    /// The limited types this claim may take, each picked under its gate (see `flow_sql`).
    pub gated: &'a [Limited],
    /// Whether the answer says when a held-back type may start again ([`next_allowed`]).
    pub report: bool,
}

/// The order a claim hands tasks out in. Each is one scan of an index over a column that holds
/// a value only while the task is pending (see migrate/lean_layout.rs), so no claim sorts the
/// queue or steps over finished tasks.
///
/// `created_at` order is served as id order: both follow insertion, and an index of its own
/// would cost every task. They differ only for rows inserted by hand with a `created_at` of
/// their own, which are handed out in the order they were inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClaimOrder {
    /// Highest priority first, then oldest (by id): the library's order.
    #[default]
    PriorityThenAge,
    /// By one column, ties broken by id in the same direction (the HTTP API's `sort_by`).
    By(SortColumn, bool),
}

/// The columns a claim can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    CreatedAt,
    Priority,
    Id,
    Attempts,
}

impl ClaimOrder {
    /// The index that serves this order (see migrate/lean_layout.rs): one scan of it finds
    /// the next runnable tasks. A claim for one type in the default order has its own index;
    /// other type filters are checked on the way.
    pub(crate) fn index(&self, type_ids: Option<&[i64]>) -> &'static str {
        match self {
            ClaimOrder::PriorityThenAge if matches!(type_ids, Some([_])) => "idx_tasks_type_ready",
            ClaimOrder::PriorityThenAge => "idx_tasks_ready",
            ClaimOrder::By(SortColumn::CreatedAt | SortColumn::Id, _) => "idx_tasks_ready_by_id",
            ClaimOrder::By(SortColumn::Priority, _) => "idx_tasks_ready_by_priority",
            ClaimOrder::By(SortColumn::Attempts, _) => "idx_tasks_ready_by_attempts",
        }
    }

    /// The pending tasks, as the range of the generated column the order's index starts with.
    pub(super) fn pending(&self) -> &'static str {
        match self {
            ClaimOrder::PriorityThenAge | ClaimOrder::By(SortColumn::Priority, _) => {
                "pending_priority IS NOT NULL"
            }
            ClaimOrder::By(SortColumn::CreatedAt | SortColumn::Id, _) => "is_pending = 1",
            ClaimOrder::By(SortColumn::Attempts, _) => "pending_attempts IS NOT NULL",
        }
    }

    /// `ORDER BY` terms over the table alias `alias` (`""` or `"t."`). With `pending_keys`, the
    /// pick's: the generated columns of the index, which equal the task's own while it is
    /// pending; without, the claimed tasks' answer's, over the task's columns.
    pub(super) fn sql(&self, alias: &str, pending_keys: bool) -> String {
        let (priority, attempts) = if pending_keys {
            ("pending_priority", "pending_attempts")
        } else {
            ("priority", "attempts")
        };
        match self {
            ClaimOrder::PriorityThenAge => format!("{alias}{priority} DESC, {alias}id"),
            ClaimOrder::By(column, descending) => {
                let direction = if *descending { "DESC" } else { "ASC" };
                let leading = match column {
                    SortColumn::CreatedAt | SortColumn::Id => None,
                    SortColumn::Priority => Some(priority),
                    SortColumn::Attempts => Some(attempts),
                };
                match leading {
                    Some(key) => format!("{alias}{key} {direction}, {alias}id {direction}"),
                    None => format!("{alias}id {direction}"),
                }
            }
        }
    }
}

/// Columns of a claimed task, as [`claimed_rows`] and the claim script return them.
pub(super) const CLAIMED_COLUMNS: &str = "t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, \
     DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token";

pub struct ClaimScript {
    pub script: Script,
    /// The claimed tasks ([`CLAIMED_COLUMNS`]), highest priority first, then oldest.
    pub claimed: usize,
    /// With `report`: one row, `next_allowed_at`.
    pub next_allowed: Option<usize>,
    /// With `recover`: the ids of the limited types ([`LIMITED_TYPES`]).
    pub limited: Option<usize>,
}

/// Most expired leases a claim recovers on its way (the rest wait for the next call or for an
/// explicit recovery run).
pub const LAZY_RECOVERY_LIMIT: u32 = 100;

/// A transaction that claims, beginning with the lazy recovery of up to
/// [`LAZY_RECOVERY_LIMIT`] expired leases when `recover` asks for it.
pub(super) fn claim_transaction(
    request: &ClaimRequest<'_>,
    recover: bool,
    history_on: bool,
) -> Script {
    let mut script = Script::new(true);
    if !request.gated.is_empty() {
        script.statements.insert(0, READ_COMMITTED.into());
    }
    if recover {
        recover_expired(
            &mut script,
            LAZY_RECOVERY_LIMIT,
            request.claim_timeout,
            history_on,
        );
    }
    script
}

/// Locks up to `limit` runnable tasks (skipping rows other claimers hold), leases them, and
/// returns them: one transaction, one round trip. With `recover`, it first recovers up to
/// [`LAZY_RECOVERY_LIMIT`] expired leases; recovery costs about as much as the claim itself,
/// so the caller asks for it only now and then, and when a claim without it came up short.
pub fn claim(request: &ClaimRequest<'_>, recover: bool, history_on: bool) -> ClaimScript {
    let mut script = claim_transaction(request, recover, history_on);
    let claimed = push_claim(&mut script, request, history_on, None);
    let next_allowed = request.report.then(|| script.push(next_allowed(request)));
    let limited = recover.then(|| script.push(LIMITED_TYPES.into()));
    ClaimScript {
        script: script.finish(),
        claimed,
        next_allowed,
        limited,
    }
}

/// Appends a claim to a script that began a transaction; returns the index of the claimed
/// rows. With a `guard`, the claim picks nothing unless the condition holds.
pub(super) fn push_claim(
    script: &mut Script,
    request: &ClaimRequest<'_>,
    history_on: bool,
    guard: Option<&str>,
) -> usize {
    let type_filter = request.type_ids.map_or(String::new(), |ids| {
        format!("AND type_id IN ({})", sql::int_list(ids))
    });
    let gated = !request.gated.is_empty();
    let picked = Picked {
        var: Cow::Borrowed("@tm_picked"),
        many: request.limit > 1 || gated,
    };
    let steps = claim_steps(
        &ClaimSql {
            index: request.order.index(request.type_ids),
            type_filter: &type_filter,
            order: request.order,
            limit: request.limit,
            worker: sql::text(request.worker_id),
            lease_seconds: sql::int(request.lease_seconds.into()),
            token_prefix: sql::text(request.token_prefix),
        },
        &picked,
        guard,
    );
    script.push(steps.pick);
    if gated {
        push_gated_picks(script, request, &picked.var, guard);
    }
    script.push(steps.lease);
    if history_on {
        script.push(steps.history);
    }
    if gated {
        push_permit_takes(script, request, &steps.leased);
    }
    script.push(steps.answer)
}

/// A claim's inputs as SQL: literals in a script, parameters in a stored procedure.
pub(crate) struct ClaimSql<'a> {
    /// The index that serves the order and filter ([`ClaimOrder::index`]).
    pub index: &'static str,
    /// `AND ...` limiting the types, or empty.
    pub type_filter: &'a str,
    pub order: ClaimOrder,
    pub limit: u32,
    pub worker: String,
    pub lease_seconds: String,
    pub token_prefix: String,
}

/// The statements of a claim, in the order they run.
pub(crate) struct ClaimSteps {
    /// Locks the next runnable tasks (skipping rows others hold) and remembers their ids.
    pub pick: String,
    /// Leases them.
    pub lease: String,
    /// Their `claimed` history rows.
    pub history: String,
    /// The claimed tasks ([`CLAIMED_COLUMNS`]) in the claim's order.
    pub answer: String,
    /// `FROM ... WHERE ...` over the tasks this claim leased (`t`).
    pub leased: String,
}

pub(crate) fn claim_steps(
    claim: &ClaimSql<'_>,
    picked: &Picked,
    guard: Option<&str>,
) -> ClaimSteps {
    // Matches idx_tasks_ready (pending_priority DESC, id) or idx_tasks_type_ready, or the
    // index of another claim order: no filesort. Paused and limited types are left alone.
    let pick = picked.pick(
        &format!(
            "FROM tasks FORCE INDEX ({}) WHERE {} AND run_at <= NOW(6) {} {} ORDER BY {}",
            claim.index,
            claim.order.pending(),
            claim.type_filter,
            HELD_BACK,
            claim.order.sql("", true)
        ),
        claim.limit,
        guard,
    );
    let token = claim_token(&claim.token_prefix, "t.id");
    // The claim clears the type gate the enqueue set: it guards only the enqueue, and a change
    // of the type sets to NULL every gate still naming it, so this keeps that change as small
    // as the type's never-claimed tasks.
    let lease = format!(
        "UPDATE {} SET t.status = '{}', t.attempts = t.attempts + 1, t.claimed_by = {}, \
         t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL {} SECOND, \
         t.lease_token = {token}, t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL \
         WHERE {} AND t.{}",
        picked.tasks(),
        CLAIM.to,
        claim.worker,
        claim.lease_seconds,
        picked.condition(),
        from_clause(&CLAIM),
    );
    let leased = picked.rows_where(&format!(
        "t.lease_token = {token} AND t.status = '{}'",
        CLAIM.to
    ));
    ClaimSteps {
        pick,
        lease,
        history: history(&change_sql(CLAIM.change), &claim.worker, "NULL", &leased),
        answer: format!(
            "SELECT {CLAIMED_COLUMNS} {leased} ORDER BY {}",
            claim.order.sql("t.", false)
        ),
        leased,
    }
}

/// The tasks a claim with this token prefix holds: a repeated claim whose first run may have
/// committed returns these instead of claiming more.
pub fn claimed_rows(token_prefix: &str, order: ClaimOrder) -> String {
    format!(
        "SELECT {CLAIMED_COLUMNS} FROM tasks t WHERE t.status = '{}' AND t.lease_token LIKE {} \
         ORDER BY {}",
        CLAIM.to,
        claim_token(&sql::text(token_prefix), "'%'"),
        order.sql("t.", false)
    )
}

/// The lease token a claim with the prefix `prefix_sql` gives the task `id_sql` (SQL
/// expressions; `'%'` makes it a LIKE pattern for all of them). The explicit collation: a text
/// literal carries utf8mb4's default collation and the other literals the connection's, so
/// their CONCAT has none of its own, which a comparison with the column would refuse.
pub(super) fn claim_token(prefix_sql: &str, id_sql: &str) -> String {
    format!("(CONCAT({prefix_sql}, '.', {id_sql}) COLLATE utf8mb4_unicode_ci)")
}

/// Whether the lease of the claimed task `alias` ran out. A task claimed by hand with plain
/// SQL (or by the original system) has no lease of ours: it runs out `claim_timeout` seconds
/// after `claimed_at`, the original's rule. Both forms are one range of idx_tasks_leased
/// (`claimed_until`, where a task with no lease sorts first).
pub(super) fn lease_ran_out(alias: &str, claim_timeout: u32) -> String {
    format!(
        "({alias}lease_expires_at <= NOW(6) OR ({alias}lease_expires_at IS NULL AND \
         COALESCE({alias}claimed_at, {alias}updated_at) <= NOW(6) - INTERVAL {} SECOND))",
        sql::int(claim_timeout.into())
    )
}

/// Appends the recovery of up to `limit` expired leases: each counts as a failed attempt, back
/// to pending when attempts remain, else failed (EXPIRE_RETRY / EXPIRE_DEAD). SKIP LOCKED, so
/// concurrent recoverers and claimers never wait on each other or recover a task twice.
pub(super) fn recover_expired(
    script: &mut Script,
    limit: u32,
    claim_timeout: u32,
    history_on: bool,
) {
    // One range of idx_tasks_leased (claimed_until): claimed tasks whose lease may have run
    // out; the second condition decides for those claimed by hand.
    script.push(EXPIRED.pick(
        &format!(
            "FROM tasks FORCE INDEX (idx_tasks_leased) WHERE claimed_until <= NOW(6) AND {} \
             ORDER BY claimed_until",
            lease_ran_out("", claim_timeout)
        ),
        limit,
        None,
    ));
    let dead = "t.attempts >= t.max_attempts";
    script.push(format!(
        "UPDATE {} SET \
         t.completed_at = IF({dead}, NOW(6), NULL), \
         t.dedupe_lock = IF({dead}, {}, t.dedupe_lock), \
         t.error_message = CONCAT('lease expired during attempt ', t.attempts, ' of ', t.max_attempts), \
         t.run_at = NOW(6), t.lease_expires_at = NULL, \
         t.status = IF({dead}, '{}', '{}') \
         WHERE {} AND t.{} AND {}",
        EXPIRED.tasks(),
        dedupe_released("t."),
        EXPIRE_DEAD.to,
        EXPIRE_RETRY.to,
        EXPIRED.condition(),
        from_clause(&EXPIRE_RETRY),
        lease_ran_out("t.", claim_timeout),
    ));
    if history_on {
        script.push(history(
            &change_sql(EXPIRE_RETRY.change),
            TASK_HOLDER,
            &sql::text("lease expired: counted as a failed attempt"),
            &EXPIRED.rows_where("TRUE"),
        ));
    }
}

/// Expired leases picked by a recovery pass.
pub(super) const EXPIRED: Picked = Picked {
    var: Cow::Borrowed("@tm_expired"),
    many: true,
};

/// A recovery run on its own (cron, operator): `recovered, failed` counts in `report`.
pub struct RecoveryScript {
    pub script: Script,
    pub report: usize,
}

pub fn recovery(limit: u32, claim_timeout: u32, history_on: bool) -> RecoveryScript {
    let mut script = Script::new(true);
    recover_expired(&mut script, limit, claim_timeout, history_on);
    let report = script.push(format!(
        "SELECT COUNT(*) AS recovered, COALESCE(SUM(t.status = '{}'), 0) AS failed {}",
        EXPIRE_DEAD.to,
        EXPIRED.rows_where("TRUE")
    ));
    RecoveryScript {
        script: script.finish(),
        report,
    }
}
