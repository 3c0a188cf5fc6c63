//! Flow control in a claim: paused types are left alone, and a limited type's tasks are picked
//! only under its gate (see `crate::flow` for the settings).
//!
//! Every claim's pick skips the types [`HELD_BACK`] names: paused now, or limited. A limited
//! type's tasks are then picked by a pick of their own, appended for each limited type the
//! process knows of ([`push_gated_picks`]):
//!
//! 1. lock the type's `task_type_flow` row, `FOR UPDATE SKIP LOCKED`: claimers of one limited
//!    type take turns, and a claimer that finds the row held skips the type (it never waits);
//! 2. recover the type's expired leases, so that a crashed worker's slot comes back;
//! 3. count what the type may still start: `max_running` minus its claimed tasks, and
//!    `rate_limit + rate_burst` minus its starts in the last `rate_per_seconds`. The claim runs
//!    at READ COMMITTED, so this count, a statement after the lock, sees every claim of the
//!    type that committed before the lock was granted; no counter is kept, so a late or
//!    repeated complete cannot free a slot twice;
//! 4. pick up to the claim's limit of its runnable tasks when that count is positive.
//!
//! The picks are merged into the claim's own in its order, each limited type contributing at
//! most its count, and the usual lease, history and answer follow. Rate-limited starts are
//! logged in `task_type_starts`, the window's older entries deleted.
//!
//! Which types are limited is learnt from the database: every claim that recovers leases (once
//! a second, and when a claim comes up short) reads the list. Until a process has learnt of a
//! new limit its claims leave the type's tasks alone ([`HELD_BACK`] is read by each claim), so
//! a limit is never exceeded by a process that has not heard of it.

use super::*;
use crate::sql;

/// The condition that leaves a type to its gated pick, or to nobody while it is paused.
const GATED: &str = "paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL";

/// A claim's plain pick skips these types' tasks.
pub(crate) fn held_back() -> String {
    format!("AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE {GATED})")
}

/// The types with a concurrency or rate limit, as a claim reads them to learn of new limits.
pub(crate) const LIMITED_TYPES: &str = "SELECT type_id FROM task_type_flow \
     WHERE max_running IS NOT NULL OR rate_limit IS NOT NULL ORDER BY type_id";

/// Ahead of a claim with gated picks: the claim's transaction runs at READ COMMITTED so that
/// each statement reads what committed before it began (step 3 above).
pub(super) const READ_COMMITTED: &str = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// The variables of the `n`th gated pick.
struct Gate {
    /// The type's id while this claim holds its flow row, else NULL.
    held: String,
    /// How many of its tasks this claim may start.
    free: String,
    /// Its picked tasks (a JSON array of ids).
    picked: String,
}

impl Gate {
    fn nth(n: usize) -> Gate {
        Gate {
            held: format!("@tm_gate{n}"),
            free: format!("@tm_free{n}"),
            picked: format!("@tm_gated{n}"),
        }
    }
}

/// Appends the gated picks of `types` (step 1 to 4 above) and the merge of their tasks into
/// `picked` (the claim's plain pick, a JSON array), in the claim's order, at most `limit`.
/// With a `guard` (the claim's own), nothing is picked unless it holds.
pub(super) fn push_gated_picks(
    script: &mut Script,
    request: &ClaimRequest<'_>,
    picked: &str,
    history_on: bool,
    guard: Option<&str>,
) {
    let limit = sql::int(request.limit.into());
    let mut sources = vec![format!(
        "SELECT id FROM JSON_TABLE(COALESCE({picked}, '[]'), '$[*]' COLUMNS (id BIGINT PATH '$')) AS plain"
    )];
    for (n, type_id) in request.gated.iter().enumerate() {
        let gate = Gate::nth(n);
        let type_id = sql::int(*type_id);
        script.push(format!(
            "SELECT (SELECT type_id FROM task_type_flow WHERE type_id = {type_id} \
             AND (max_running IS NOT NULL OR rate_limit IS NOT NULL) \
             AND (paused_until IS NULL OR paused_until <= NOW(6)) \
             FOR UPDATE SKIP LOCKED) INTO {}",
            gate.held
        ));
        recover_expired_of(script, &gate.held, request.claim_timeout, history_on);
        script.push(format!(
            "SELECT (SELECT LEAST(\
             COALESCE(f.max_running - (SELECT COUNT(*) FROM tasks FORCE INDEX (idx_tasks_leased) \
             WHERE claimed_until IS NOT NULL AND type_id = f.type_id), {limit}), \
             COALESCE(f.rate_limit + f.rate_burst - (SELECT COUNT(*) FROM task_type_starts s \
             WHERE s.type_id = f.type_id AND s.started_at > NOW(6) - INTERVAL f.rate_per_seconds SECOND), {limit})) \
             FROM task_type_flow f WHERE f.type_id = {}) INTO {}",
            gate.held, gate.free
        ));
        let order = request.order;
        let candidates = format!(
            "FROM tasks FORCE INDEX ({}) WHERE {} AND run_at <= NOW(6) AND type_id = {type_id} \
             ORDER BY {}",
            order.index(Some(&[0])),
            order.pending(),
            order.sql("", true)
        );
        let own = Picked::many(gate.picked.clone());
        let free = match guard {
            Some(guard) => format!("{} > 0 AND {guard}", gate.free),
            None => format!("{} > 0", gate.free),
        };
        script.push(own.pick(&candidates, request.limit, Some(&free)));
        sources.push(format!(
            "SELECT id FROM JSON_TABLE(COALESCE({}, '[]'), '$[*]' COLUMNS (n FOR ORDINALITY, \
             id BIGINT PATH '$')) AS gated WHERE n <= {}",
            gate.picked, gate.free
        ));
    }
    script.push(format!(
        "SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT t.id FROM ({}) AS candidate \
         STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = candidate.id \
         ORDER BY {} LIMIT {limit}) AS merged) INTO {picked}",
        sources.join(" UNION ALL "),
        request.order.sql("t.", false)
    ));
}

/// The gates this claim holds, as an SQL list.
fn held_gates(request: &ClaimRequest<'_>) -> String {
    (0..request.gated.len())
        .map(|n| Gate::nth(n).held)
        .collect::<Vec<_>>()
        .join(", ")
}

/// After the lease: log the starts of rate-limited types and forget those older than their
/// window. `leased` is `FROM ... WHERE ...` over the tasks this claim leased (`t`).
pub(super) fn push_rate_log(script: &mut Script, request: &ClaimRequest<'_>, leased: &str) {
    let held = held_gates(request);
    script.push(format!(
        "INSERT INTO task_type_starts (type_id, started_at, task_id) \
         SELECT t.type_id, NOW(6), t.id {leased} AND t.type_id IN ({held}) \
         AND t.type_id IN (SELECT type_id FROM task_type_flow WHERE rate_limit IS NOT NULL)"
    ));
    script.push(format!(
        "DELETE s FROM task_type_starts s JOIN task_type_flow f ON f.type_id = s.type_id \
         WHERE s.type_id IN ({held}) \
         AND s.started_at <= NOW(6) - INTERVAL COALESCE(f.rate_per_seconds, 0) SECOND"
    ));
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
    format!(
        "SELECT {} AS next_allowed_at FROM (\
         SELECT MIN(s.started_at) + INTERVAL MAX(f.rate_per_seconds) SECOND AS at \
         FROM task_type_flow f JOIN task_type_starts s ON s.type_id = f.type_id \
         AND s.started_at > NOW(6) - INTERVAL f.rate_per_seconds SECOND \
         WHERE f.rate_limit IS NOT NULL {in_scope} AND {runnable} \
         GROUP BY f.type_id HAVING COUNT(*) >= MAX(f.rate_limit + f.rate_burst) \
         UNION ALL SELECT f.paused_until FROM task_type_flow f \
         WHERE f.paused_until > NOW(6) AND f.paused_until < {FOREVER} {in_scope} AND {runnable}\
         ) AS held_back",
        iso("MIN(at)")
    )
}

/// The `paused_until` of a pause with no end.
pub(crate) const FOREVER: &str = "TIMESTAMP'9999-12-31 00:00:00'";
