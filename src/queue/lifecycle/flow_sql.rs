//! Flow control in a claim: paused types are left alone, and a limited type's tasks are started
//! only with its permits (see `crate::flow` for the settings, migration 9 for the tables).
//!
//! Every claim's plain pick skips the types [`HELD_BACK`] names: paused now, or limited. A
//! limited type's tasks are then picked by a pick of their own, appended for each limited type
//! the process knows of ([`push_gated_picks`]):
//!
//! 1. (a crashed worker's permit comes back when its expired lease is recovered: a claim that
//!    comes up short recovers them, see `queue::claim`);
//! 2. lock up to the claim's limit of the type's free permits, `FOR UPDATE SKIP LOCKED`, so
//!    claimers of one type take different permits and none waits for another. A `rate` permit
//!    is free when it was taken `rate_per_seconds` ago or never: the locking read sees the
//!    permit's latest version, so that holds. A `running` permit is free when the task it
//!    records is no longer claimed under the lease token it records; that read, of another
//!    row, may see an older version within the locking statement, so
//! 3. a second statement (the claim runs at READ COMMITTED: a statement reads what committed
//!    before it began, here after the locks were granted) keeps the locked `running` permits
//!    that are free;
//! 4. pick up to the claim's limit of the type's runnable tasks when it has permits; the merge
//!    of all picks in the claim's order takes at most as many of them as it has;
//! 5. after the lease, each started task takes one permit of each kind: a `running` permit
//!    records its id and lease token, a `rate` permit the time.
//!
//! Nothing counts down, so a late or repeated complete cannot free a permit twice, and a
//! finished, failed, released or recovered task frees its `running` permit without writing it.
//!
//! Which types are limited is learnt from the database: every claim that recovers leases (once
//! a second, and when a claim comes up short) reads the list. Until a process has learnt of a
//! new limit its claims leave the type's tasks alone ([`HELD_BACK`] is read by each claim), so a
//! limit is never exceeded by a process that has not heard of it.

use super::*;
use crate::sql;

/// A claim's plain pick skips these types' tasks: paused now (nobody takes them), or limited
/// (their gated pick does).
pub(crate) const HELD_BACK: &str = "AND type_id NOT IN (SELECT type_id FROM task_type_flow \
     WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL)";

/// The types with a concurrency or rate limit and which they have, as a claim reads them to
/// learn of new limits.
pub(crate) const LIMITED_TYPES: &str = "SELECT type_id, max_running IS NOT NULL AS running, \
     rate_limit IS NOT NULL AS rate FROM task_type_flow \
     WHERE max_running IS NOT NULL OR rate_limit IS NOT NULL ORDER BY type_id";

/// A limited type as a process knows it: which permits its claims take. A process that has
/// not heard of a kind yet starts none of the type's tasks while the type has it (step 3's
/// count is 0), so a stale view never exceeds a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limited {
    pub type_id: i64,
    /// It has `max_running`.
    pub running: bool,
    /// It has a rate limit.
    pub rate: bool,
}

/// Ahead of a claim with gated picks: the claim's transaction runs at READ COMMITTED (step 3).
pub(super) const READ_COMMITTED: &str = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// A `running` permit `p` is held: its task is claimed under the token it recorded.
/// (`<=>`: a task claimed by hand has no token, and holds the permit it was given when the
/// limit was set, see `flow::set_limits`.)
const PERMIT_HELD: &str = "EXISTS (SELECT 1 FROM tasks t FORCE INDEX (PRIMARY) \
     WHERE t.id = p.task_id AND t.status = 'claimed' AND t.lease_token <=> p.lease_token)";

/// The variables of the `n`th gated pick.
struct Gate {
    /// The free `running` permits this claim locked (a JSON array of their numbers).
    running: String,
    /// The free `rate` permits it locked.
    rate: String,
    /// How many of the type's tasks this claim may start.
    free: String,
    /// Its picked tasks (a JSON array of ids).
    picked: String,
}

impl Gate {
    fn nth(n: usize) -> Gate {
        Gate {
            running: format!("@tm_running{n}"),
            rate: format!("@tm_rate{n}"),
            free: format!("@tm_free{n}"),
            picked: format!("@tm_gated{n}"),
        }
    }
}

/// `JSON_TABLE` over a JSON array of numbers in `var`, as rows `(k, n)`: ordinal and value.
fn listed(var: &str, alias: &str) -> String {
    format!(
        "JSON_TABLE(COALESCE({var}, '[]'), '$[*]' COLUMNS (k FOR ORDINALITY, n BIGINT PATH '$')) AS {alias}"
    )
}

/// Appends the gated picks of the request's limited types (steps 1 to 4 above) and the merge
/// of their tasks into `picked` (the claim's plain pick, a JSON array), in the claim's order, at
/// most `limit`. With a `guard` (the claim's own), nothing is picked unless it holds.
pub(super) fn push_gated_picks(
    script: &mut Script,
    request: &ClaimRequest<'_>,
    picked: &str,
    guard: Option<&str>,
) {
    let limit = sql::int(request.limit.into());
    let mut sources = vec![format!(
        "SELECT n AS id FROM {} WHERE TRUE",
        listed(picked, "plain")
    )];
    for (n, limited) in request.gated.iter().enumerate() {
        let gate = Gate::nth(n);
        let type_id = sql::int(limited.type_id);
        // `expr` over the type's flow row while it is limited and not paused (else NULL: the
        // plain pick serves a type whose limits are gone, and this one must not pick it too).
        let flow_row = |expr: &str| {
            format!(
                "SELECT {expr} FROM task_type_flow WHERE type_id = {type_id} \
                 AND (max_running IS NOT NULL OR rate_limit IS NOT NULL) \
                 AND (paused_until IS NULL OR paused_until <= NOW(6))"
            )
        };
        let lock = |kind: &str, free: &str, order: &str, var: &str| {
            format!(
                "SELECT (SELECT JSON_ARRAYAGG(n) FROM (SELECT p.n FROM task_type_permits p \
                 WHERE p.type_id = {type_id} AND p.kind = '{kind}' AND {free} \
                 AND EXISTS ({}) ORDER BY {order} LIMIT {limit} FOR UPDATE SKIP LOCKED) AS locked) \
                 INTO {var}",
                flow_row("1")
            )
        };
        if limited.running {
            script.push(lock(
                "running",
                &format!("NOT {PERMIT_HELD}"),
                "p.n",
                &gate.running,
            ));
            // Step 3: of the locked running permits, those free by what has committed by now.
            script.push(format!(
                "SELECT (SELECT JSON_ARRAYAGG(p.n) FROM {} JOIN task_type_permits p \
                 ON p.type_id = {type_id} AND p.kind = 'running' AND p.n = locked.n \
                 WHERE NOT {PERMIT_HELD}) INTO {}",
                listed(&gate.running, "locked"),
                gate.running
            ));
        }
        if limited.rate {
            script.push(lock(
                "rate",
                &format!(
                    "(p.taken_at IS NULL OR p.taken_at <= NOW(6) - INTERVAL ({}) SECOND)",
                    flow_row("rate_per_seconds")
                ),
                "p.taken_at",
                &gate.rate,
            ));
        }
        // A kind this process has not heard of yet allows nothing.
        let allowed = |known: bool, var: &str| {
            if known {
                format!("COALESCE(JSON_LENGTH({var}), 0)")
            } else {
                "0".to_string()
            }
        };
        script.push(format!(
            "SELECT ({}) INTO {}",
            flow_row(&format!(
                "LEAST(IF(max_running IS NULL, {limit}, {}), IF(rate_limit IS NULL, {limit}, {}))",
                allowed(limited.running, &gate.running),
                allowed(limited.rate, &gate.rate)
            )),
            gate.free
        ));
        let order = request.order;
        let candidates = format!(
            "FROM tasks FORCE INDEX ({}) WHERE {} AND run_at <= NOW(6) AND type_id = {type_id} \
             ORDER BY {}",
            order.index(Some(&[0])),
            order.pending(),
            order.sql("", true)
        );
        let free = match guard {
            Some(guard) => format!("{} > 0 AND {guard}", gate.free),
            None => format!("{} > 0", gate.free),
        };
        script.push(Picked::many(gate.picked.clone()).pick(
            &candidates,
            request.limit,
            Some(&free),
        ));
        sources.push(format!(
            "SELECT n FROM {} WHERE k <= {}",
            listed(&gate.picked, "gated"),
            gate.free
        ));
    }
    script.push(format!(
        "SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT t.id FROM ({}) AS candidate \
         STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = candidate.id \
         ORDER BY {} LIMIT {limit}) AS merged) INTO {picked}",
        // UNION, not UNION ALL: a task is leased once even if two picks found it.
        sources.join(" UNION "),
        request.order.sql("t.", false)
    ));
}

/// Step 5, after the lease: each task of a limited type this claim started takes one of the
/// permits its gated pick locked, of each kind. `leased` is `FROM ... WHERE ...` over the tasks
/// this claim leased (`t`).
pub(super) fn push_permit_takes(script: &mut Script, request: &ClaimRequest<'_>, leased: &str) {
    for (n, limited) in request.gated.iter().enumerate() {
        let gate = Gate::nth(n);
        let type_id = sql::int(limited.type_id);
        let started = format!(
            "SELECT ROW_NUMBER() OVER (ORDER BY t.id) AS k, t.id, t.lease_token {leased} \
             AND t.type_id = {type_id}"
        );
        let kinds = [
            (
                limited.running,
                "running",
                &gate.running,
                "p.task_id = started.id, p.lease_token = started.lease_token, p.taken_at = NOW(6)",
            ),
            (limited.rate, "rate", &gate.rate, "p.taken_at = NOW(6)"),
        ];
        for (_, kind, var, set) in kinds.into_iter().filter(|k| k.0) {
            script.push(format!(
                "UPDATE ({started}) AS started JOIN {} ON permit.k = started.k \
                 JOIN task_type_permits p ON p.type_id = {type_id} AND p.kind = '{kind}' \
                 AND p.n = permit.n SET {set}",
                listed(var, "permit")
            ));
        }
    }
}

/// The earliest moment a type this claim could take, held back by a rate limit or by a pause
/// with an end, may start a task again; NULL when none is held back that way (or none of
/// those types has runnable tasks). One row, `next_allowed_at`.
pub(super) fn next_allowed(request: &ClaimRequest<'_>) -> String {
    let in_scope = request.type_ids.map_or(String::new(), |ids| {
        format!("AND f.type_id IN ({})", sql::int_list(ids))
    });
    let runnable = "EXISTS (SELECT 1 FROM tasks FORCE INDEX (idx_tasks_type_ready) \
         WHERE type_id = f.type_id AND pending_priority IS NOT NULL AND run_at <= NOW(6))";
    // A rate-limited type whose permits are all taken: the oldest comes free first.
    format!(
        "SELECT {} AS next_allowed_at FROM (\
         SELECT MIN(p.taken_at) + INTERVAL MAX(f.rate_per_seconds) SECOND AS at \
         FROM task_type_flow f JOIN task_type_permits p ON p.type_id = f.type_id \
         AND p.kind = 'rate' \
         WHERE f.rate_limit IS NOT NULL {in_scope} AND {runnable} \
         GROUP BY f.type_id \
         HAVING SUM(p.taken_at IS NULL OR p.taken_at <= NOW(6) - INTERVAL f.rate_per_seconds SECOND) = 0 \
         UNION ALL SELECT f.paused_until FROM task_type_flow f \
         WHERE f.paused_until > NOW(6) AND f.paused_until < {FOREVER} {in_scope} AND {runnable}\
         ) AS held_back",
        iso("MIN(at)")
    )
}

/// The `paused_until` of a pause with no end.
pub(crate) const FOREVER: &str = "TIMESTAMP'9999-12-31 00:00:00'";
