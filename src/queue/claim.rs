//! Claim: hand out up to `limit` runnable tasks under fresh leases, without two claimers ever
//! holding one task and without claimers waiting on each other (`FOR UPDATE SKIP LOCKED`).

use crate::Config;
use crate::error::{Error, Result};
use crate::history::{self, change};
use crate::pool::{Database, commit};
use crate::queue::manage::recover_expired_in;
use crate::queue::{MAX_BATCH, check_worker_id, random_hex};
use crate::types::{check_name, id_list};
use mysql::TxOpts;
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
    /// At most this many tasks (1..=1000, default 1).
    pub limit: Option<u32>,
    /// Lease length in seconds. Default: the `task_claim_timeout` setting.
    pub lease_seconds: Option<u32>,
}

/// A task handed to a worker, with the lease token that alone can finish it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClaimedTask {
    pub id: i64,
    #[serde(rename = "type")]
    pub type_name: String,
    pub params: Value,
    pub priority: i32,
    /// Attempts including this one.
    pub attempts: u32,
    pub max_attempts: u32,
    pub lease_token: String,
    pub lease_expires_at: String,
}

/// How many expired leases a claim recovers on its way (the rest wait for the next call or
/// for an explicit recovery run).
const LAZY_RECOVERY_LIMIT: usize = 100;

pub(crate) fn claim(
    db: &Database,
    config: &Config,
    worker_id: &str,
    options: &ClaimOptions,
) -> Result<Vec<ClaimedTask>> {
    check_worker_id(worker_id)?;
    let limit = options.limit.unwrap_or(1);
    if limit == 0 || limit as usize > MAX_BATCH {
        return Err(Error::invalid(format!(
            "limit must be from 1 to {MAX_BATCH}, got {limit}"
        )));
    }
    let lease = options.lease_seconds.unwrap_or(config.task_claim_timeout);
    if lease == 0 || lease > 31_536_000 {
        return Err(Error::invalid("lease_seconds must be from 1 to 31536000"));
    }
    if options.types.is_some() && options.type_prefix.is_some() {
        return Err(Error::invalid("give either types or type_prefix, not both"));
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

    db.run(|conn| {
        // Type filters become id lists first, outside the locking statement: a join with
        // task_types there would lock type rows and make claimers skip each other's types.
        let type_filter = match (&options.types, &options.type_prefix) {
            (Some(names), _) => {
                let mut ids = Vec::new();
                for name in names {
                    match db.types.get(db, conn, name) {
                        Ok(t) => ids.push(t.id),
                        Err(e) if e.code() == crate::Code::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                Some(ids)
            }
            (None, Some(prefix)) => {
                let ids: Vec<i64> = conn
                    .exec(
                        "SELECT id FROM task_types WHERE name LIKE CONCAT(?, '%') ESCAPE '!'",
                        (escape_like(prefix),),
                    )
                    .map_err(|e| db.error(e))?;
                Some(ids)
            }
            (None, None) => None,
        };
        if type_filter.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }

        let mut tx = conn.start_transaction(TxOpts::default()).map_err(|e| db.error(e))?;
        // Expired leases go back to the queue lazily: before the select once a second, and
        // whenever a claim comes up short (an idle or drained queue), then selecting again.
        let recovered_first = db.lazy_recovery_due();
        if recovered_first {
            recover_expired_in(db, config, &mut tx, LAZY_RECOVERY_LIMIT)?;
        }
        let filter = type_filter.map_or(String::new(), |ids| format!("AND type_id IN ({})", id_list(&ids)));
        let mut rows = select_runnable(db, &mut tx, &filter, &[], lease, limit)?;
        if rows.len() < limit as usize
            && !recovered_first
            && recover_expired_in(db, config, &mut tx, LAZY_RECOVERY_LIMIT)?.requeued > 0
        {
            // Rows this transaction already locked are not skipped by SKIP LOCKED: exclude them.
            let taken: Vec<i64> = rows.iter().map(|r| r.0).collect();
            let more = select_runnable(db, &mut tx, &filter, &taken, lease, limit - rows.len() as u32)?;
            rows.extend(more);
        }
        if rows.is_empty() {
            commit(db, tx)?;
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let expires = rows[0].6.clone();
        let token_prefix = random_hex();
        tx.exec_drop(
            format!(
                "UPDATE tasks SET status = 'claimed', attempts = attempts + 1, claimed_by = ?, \
                 claimed_at = NOW(6), lease_expires_at = ?, lease_token = CONCAT(?, '.', id), progress = 0 \
                 WHERE id IN ({})",
                id_list(&ids)
            ),
            (worker_id, &expires, &token_prefix),
        )
        .map_err(|e| db.error(e))?;
        if config.enable_task_history {
            history::record(
                db,
                &mut tx,
                &ids,
                &history::constant(change::CLAIMED),
                Some(worker_id),
                None,
            )?;
        }
        commit(db, tx)?;

        let type_ids: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let names = db.types.names(db, conn, &type_ids)?;
        let lease_expires_at = format!("{}Z", expires.replacen(' ', "T", 1));
        Ok(rows
            .into_iter()
            .map(|(id, type_id, params, priority, attempts, max_attempts, _)| ClaimedTask {
                id,
                type_name: names.get(&type_id).cloned().unwrap_or_default(),
                params: serde_json::from_str(&params).unwrap_or(Value::Null),
                priority,
                attempts: attempts + 1,
                max_attempts,
                lease_token: format!("{token_prefix}.{id}"),
                lease_expires_at: lease_expires_at.clone(),
            })
            .collect())
    })
}

type Row = (i64, i64, String, i32, u32, u32, String);

/// Locks up to `limit` runnable tasks, highest priority first, then oldest, skipping rows
/// other claimers hold; the last column is the lease end computed by the database clock.
fn select_runnable(
    db: &Database,
    tx: &mut mysql::Transaction<'_>,
    type_filter: &str,
    exclude: &[i64],
    lease: u32,
    limit: u32,
) -> Result<Vec<Row>> {
    let exclude = if exclude.is_empty() {
        String::new()
    } else {
        format!("AND id NOT IN ({})", id_list(exclude))
    };
    tx.exec(
        format!(
            "SELECT id, type_id, params_json, priority, attempts, max_attempts, \
             DATE_FORMAT(NOW(6) + INTERVAL ? SECOND, '%Y-%m-%d %H:%i:%s.%f') \
             FROM tasks WHERE status = 'pending' AND run_at <= NOW(6) {type_filter} {exclude} \
             ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED"
        ),
        (lease, limit),
    )
    .map_err(|e| db.error(e))
}

/// Makes a prefix literal for `LIKE ... ESCAPE '!'`: `%`, `_` and `!` match only themselves.
pub(crate) fn escape_like(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(super::escape_like("a%b_c!d"), "a!%b!_c!!d");
    }
}
