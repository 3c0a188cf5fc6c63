//! Flow control of a task type: pause and resume, a concurrency limit (`max_running`) and a rate
//! limit, stored in the type's `task_type_flow` row (migration 9). Nothing runs in the
//! background: a claim reads them (see `queue::lifecycle::flow_sql`), so a change is seen by
//! every process and host from the next claim that begins after it committed.
//!
//! This module holds the settings, their checks and the calls that store them, the stats'
//! view of them, and [`ProcessFlow`]: what a process remembers between claims (which types
//! are limited) and the signal its waiting claims sleep on ([`wait`]).

pub(crate) mod wait;

use crate::database::{Database, commit};
use crate::error::{Error, Result};
use crate::queue::lifecycle::{FOREVER, LIMITED_TYPES, Limited, iso};
use crate::row::Columns;
use crate::types::{self, TaskType, check_name};
use mysql::TxOpts;
use mysql::prelude::Queryable;
use parking_lot::{Condvar, Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Instant;

/// Most tasks of one type that a limit may let run at once.
pub(crate) const MAX_RUNNING: u32 = 100_000;
/// Most starts a rate limit (`limit + burst`) may allow per window: each is a permit row.
pub(crate) const MAX_RATE: u32 = 100_000;
/// The longest rate window, and the furthest a pause may be set to end: a year, in seconds.
pub(crate) const MAX_WINDOW_SECONDS: u32 = 31_536_000;

/// How to pause a type.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseOptions {
    /// When the pause ends by itself (RFC 3339; stored in UTC), at most a year ahead; absent:
    /// until resumed.
    pub until: Option<String>,
}

/// A rate limit: at most `limit + burst` starts of the type's tasks in any window of
/// `per_seconds` seconds (a sliding window, counted when a claim hands a task out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Starts per window, 1 to 100,000.
    pub limit: u32,
    /// The window, 1 second to a year.
    pub per_seconds: u32,
    /// Starts a window may take above `limit`, 0 (the default) to 100,000 less `limit`.
    #[serde(default)]
    pub burst: u32,
}

/// A change to a type's limits: a field left out (`None`) keeps the current value; `Some(None)`
/// (`null` in JSON) removes that limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeLimits {
    /// At most this many of the type's tasks claimed at any moment (1 to 100,000).
    pub max_running: Option<Option<u32>>,
    /// The rate limit.
    pub rate: Option<Option<RateLimit>>,
}

/// Read from JSON with a message naming the field at fault (serde's would name a Rust type).
impl<'de> Deserialize<'de> for TypeLimits {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        let value = Value::deserialize(de)?;
        limits_from_json(&value).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

/// Limits from JSON, with an error whose details name the field at fault.
pub(crate) fn limits_from_json(value: &Value) -> Result<TypeLimits> {
    let Value::Object(fields) = value else {
        return Err(Error::invalid(
            "limits must be an object such as {\"max_running\": 2}",
        ));
    };
    let mut limits = TypeLimits::default();
    for (key, value) in fields {
        match key.as_str() {
            "max_running" => {
                limits.max_running = Some(match value {
                    Value::Null => None,
                    v => Some(whole(v, "max_running", 1, MAX_RUNNING)?),
                })
            }
            "rate" => {
                limits.rate = Some(match value {
                    Value::Null => None,
                    Value::Object(rate) => {
                        if let Some(other) = rate
                            .keys()
                            .find(|k| !["limit", "per_seconds", "burst"].contains(&k.as_str()))
                        {
                            return Err(field_error(
                                "rate",
                                format!("rate has no field '{other}' (limit, per_seconds, burst)"),
                            ));
                        }
                        let get = |k: &str| rate.get(k).unwrap_or(&Value::Null);
                        let limit = whole(get("limit"), "rate.limit", 1, MAX_RATE)?;
                        let per_seconds = whole(
                            get("per_seconds"),
                            "rate.per_seconds",
                            1,
                            MAX_WINDOW_SECONDS,
                        )?;
                        let burst = match rate.get("burst") {
                            None | Some(Value::Null) => 0,
                            Some(v) => whole(v, "rate.burst", 0, MAX_RATE - limit)?,
                        };
                        Some(RateLimit {
                            limit,
                            per_seconds,
                            burst,
                        })
                    }
                    _ => {
                        return Err(field_error(
                            "rate",
                            "rate must be null or {\"limit\": n, \"per_seconds\": s, \"burst\": b}",
                        ));
                    }
                })
            }
            other => {
                return Err(field_error(
                    other,
                    format!("limits have no field '{other}' (max_running, rate)"),
                ));
            }
        }
    }
    Ok(limits)
}

/// A whole number from `min` to `max`, or an error naming `field`.
fn whole(value: &Value, field: &str, min: u32, max: u32) -> Result<u32> {
    value
        .as_i64()
        .filter(|n| (i64::from(min)..=i64::from(max)).contains(n))
        .map(|n| n as u32)
        .ok_or_else(|| {
            field_error(
                field,
                format!("{field} must be a whole number from {min} to {max}, got {value}"),
            )
        })
}

fn field_error(field: &str, message: impl Into<String>) -> Error {
    Error::invalid(message).with_details(json!({ "field": field }))
}

impl TypeLimits {
    /// The same checks as for JSON, for limits built in Rust.
    fn check(&self) -> Result<()> {
        let mut value = serde_json::Map::new();
        if let Some(max) = self.max_running {
            value.insert("max_running".into(), json!(max));
        }
        if let Some(rate) = self.rate {
            value.insert("rate".into(), json!(rate));
        }
        limits_from_json(&Value::Object(value)).map(|_| ())
    }
}

/// The end of a pause as the database stores it (UTC, `YYYY-MM-DD HH:MM:SS.ffffff`), checked:
/// in the future and at most a year ahead (by this process's clock).
fn pause_end(options: &PauseOptions) -> Result<Option<String>> {
    let Some(until) = options.until.as_deref() else {
        return Ok(None);
    };
    let bad = |why: &str| field_error("until", format!("until {why}, got '{until}'"));
    let end = chrono::DateTime::parse_from_rfc3339(until)
        .map_err(|_| bad("must be an RFC 3339 time such as 2026-12-24T18:00:00Z"))?
        .with_timezone(&chrono::Utc);
    let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    if end <= now {
        return Err(bad("must be in the future"));
    }
    if end > now + chrono::Duration::seconds(MAX_WINDOW_SECONDS.into()) {
        return Err(bad("must be at most a year ahead"));
    }
    Ok(Some(end.format("%Y-%m-%d %H:%M:%S%.6f").to_string()))
}

/// Pauses a type: claims that begin after this commits hand out none of its tasks; enqueues
/// go on, and tasks already claimed finish normally.
pub(crate) fn pause(db: &Database, name: &str, options: &PauseOptions) -> Result<TaskType> {
    check_name(name)?;
    let end = pause_end(options)?;
    db.run(|conn, _| {
        conn.exec_drop(
            format!(
                "INSERT INTO task_type_flow (type_id, paused_until) \
                 SELECT id, COALESCE(CAST(? AS DATETIME(6)), {FOREVER}) FROM task_types WHERE name = ? \
                 ON DUPLICATE KEY UPDATE paused_until = VALUES(paused_until)"
            ),
            (end.as_deref(), name),
        )
        .map_err(|e| conn.error(e))
    })?;
    // A missing type inserted nothing; get() reports it as NotFound.
    types::get(db, name)
}

/// Ends a type's pause.
pub(crate) fn resume(db: &Database, name: &str) -> Result<TaskType> {
    check_name(name)?;
    db.run(|conn, _| {
        conn.exec_drop(
            "UPDATE task_type_flow f JOIN task_types t ON t.id = f.type_id \
             SET f.paused_until = NULL WHERE t.name = ?",
            (name,),
        )
        .map_err(|e| conn.error(e))
    })?;
    db.flow.signal();
    types::get(db, name)
}

/// Changes a type's limits (see [`TypeLimits`]), with the permits they come to: one row per
/// task that may run at once and per start a window allows (see migration 9), in the same
/// transaction.
pub(crate) fn set_limits(db: &Database, name: &str, limits: &TypeLimits) -> Result<TaskType> {
    check_name(name)?;
    limits.check()?;
    let max = limits.max_running.flatten();
    let rate = limits.rate.flatten();
    db.run(|conn, _| {
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .map_err(|e| db.error(e))?;
        tx.exec_drop(
            "INSERT INTO task_type_flow (type_id, max_running, rate_limit, rate_per_seconds, rate_burst) \
             SELECT id, ?, ?, ?, ? FROM task_types WHERE name = ? \
             ON DUPLICATE KEY UPDATE \
             max_running = IF(?, VALUES(max_running), max_running), \
             rate_limit = IF(?, VALUES(rate_limit), rate_limit), \
             rate_per_seconds = IF(?, VALUES(rate_per_seconds), rate_per_seconds), \
             rate_burst = IF(?, VALUES(rate_burst), rate_burst)",
            (
                max,
                rate.map(|r| r.limit),
                rate.map(|r| r.per_seconds),
                rate.map_or(0, |r| r.burst),
                name,
                limits.max_running.is_some(),
                limits.rate.is_some(),
                limits.rate.is_some(),
                limits.rate.is_some(),
            ),
        )
        .map_err(|e| db.error(e))?;
        let row: Option<(i64, Option<u32>, Option<u32>)> = tx
            .exec_first(
                "SELECT f.type_id, f.max_running, f.rate_limit + f.rate_burst FROM task_type_flow f \
                 JOIN task_types t ON t.id = f.type_id WHERE t.name = ? FOR UPDATE",
                (name,),
            )
            .map_err(|e| db.error(e))?;
        // No row: no such type (get() below says so).
        if let Some((type_id, running, starts)) = row {
            for (kind, count) in [("running", running), ("rate", starts)] {
                keep_permits(db, &mut tx, type_id, kind, count.unwrap_or(0))?;
            }
            give_permits_to_running_tasks(db, &mut tx, type_id)?;
        }
        // This process's claims take the new limits into account at once.
        let limited = read_limited(tx.query(LIMITED_TYPES).map_err(|e| db.error(e))?)?;
        commit(db, tx)?;
        db.flow.learn(limited);
        Ok(())
    })?;
    db.flow.signal();
    types::get(db, name)
}

/// The type's tasks claimed now (before the limit, or while it was higher) take the free
/// `running` permits, so that the limit counts them: with `max_running` 1 and a task running,
/// no second one starts. Tasks beyond the permits (a limit lowered below them) run on without.
fn give_permits_to_running_tasks(
    db: &Database,
    tx: &mut mysql::Transaction<'_>,
    type_id: i64,
) -> Result<()> {
    let held = "p.task_id = t.id AND p.lease_token <=> t.lease_token";
    let unpermitted: Vec<(i64, Option<String>)> = tx
        .exec(
            format!(
                "SELECT t.id, t.lease_token FROM tasks t FORCE INDEX (idx_tasks_leased) \
                 WHERE t.claimed_until IS NOT NULL AND t.type_id = ? AND NOT EXISTS \
                 (SELECT 1 FROM task_type_permits p WHERE p.type_id = t.type_id \
                 AND p.kind = 'running' AND {held}) ORDER BY t.id"
            ),
            (type_id,),
        )
        .map_err(|e| db.error(e))?;
    if unpermitted.is_empty() {
        return Ok(());
    }
    let free: Vec<i64> = tx
        .exec(
            format!(
                "SELECT p.n FROM task_type_permits p WHERE p.type_id = ? AND p.kind = 'running' \
                 AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.claimed_until IS NOT NULL AND {held}) \
                 ORDER BY p.n FOR UPDATE"
            ),
            (type_id,),
        )
        .map_err(|e| db.error(e))?;
    for (n, (task_id, token)) in free.into_iter().zip(unpermitted) {
        tx.exec_drop(
            "UPDATE task_type_permits SET task_id = ?, lease_token = ?, taken_at = NOW(6) \
             WHERE type_id = ? AND kind = 'running' AND n = ?",
            (task_id, token, type_id, n),
        )
        .map_err(|e| db.error(e))?;
    }
    Ok(())
}

/// Makes the type's permits of `kind` exactly those numbered 0 to `count - 1`; permits kept
/// keep what they hold.
fn keep_permits(
    db: &Database,
    tx: &mut mysql::Transaction<'_>,
    type_id: i64,
    kind: &str,
    count: u32,
) -> Result<()> {
    tx.exec_drop(
        "DELETE FROM task_type_permits WHERE type_id = ? AND kind = ? AND n >= ?",
        (type_id, kind, count),
    )
    .map_err(|e| db.error(e))?;
    let numbers: Vec<u32> = (0..count).collect();
    for chunk in numbers.chunks(1000) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|n| format!("({type_id}, '{kind}', {n})"))
            .collect();
        tx.query_drop(format!(
            "INSERT IGNORE INTO task_type_permits (type_id, kind, n) VALUES {}",
            rows.join(", ")
        ))
        .map_err(|e| db.error(e))?;
    }
    Ok(())
}

/// The flow columns of a type, over `task_type_flow f` (LEFT JOINed: NULL when it has no row).
pub(crate) fn type_columns() -> String {
    format!(
        "COALESCE(f.paused_until > NOW(6), 0) AS paused, \
         IF(f.paused_until > NOW(6) AND f.paused_until < {FOREVER}, {}, NULL) AS paused_until, \
         f.max_running, f.rate_limit, f.rate_per_seconds, f.rate_burst",
        iso("f.paused_until")
    )
}

/// A type's pause and limits, read from [`type_columns`].
pub(crate) struct TypeFlow {
    pub paused: bool,
    pub paused_until: Option<String>,
    pub max_running: Option<u32>,
    pub rate: Option<RateLimit>,
}

pub(crate) fn read_type_flow(c: &mut Columns) -> Result<TypeFlow> {
    let limit: Option<u32> = c.get("rate_limit")?;
    let per_seconds: Option<u32> = c.get("rate_per_seconds")?;
    let burst: Option<u32> = c.get("rate_burst")?;
    Ok(TypeFlow {
        paused: c.get::<i64>("paused")? != 0,
        paused_until: c.get("paused_until")?,
        max_running: c.get("max_running")?,
        rate: limit
            .zip(per_seconds)
            .map(|(limit, per_seconds)| RateLimit {
                limit,
                per_seconds,
                burst: burst.unwrap_or(0),
            }),
    })
}

/// A paused or limited type as the stats show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowHealth {
    /// Whether claims leave its tasks alone now.
    pub paused: bool,
    /// When the pause ends by itself (RFC 3339, UTC); null when not paused or paused until
    /// resumed.
    pub paused_until: Option<String>,
    /// Its concurrency limit.
    pub max_running: Option<u32>,
    /// Its tasks claimed now (each holds one of `max_running`'s slots).
    pub running: i64,
    /// Its rate limit.
    pub rate: Option<RateLimit>,
    /// Its starts in the current window of the rate limit (0 without one).
    pub started_in_window: i64,
}

/// Every paused or limited type, by name.
pub(crate) fn health(
    conn: &mut crate::pool::Conn<'_>,
) -> Result<std::collections::BTreeMap<String, FlowHealth>> {
    let rows: Vec<mysql::Row> = conn
        .query(format!(
            "SELECT t.name, {}, \
             (SELECT COUNT(*) FROM tasks FORCE INDEX (idx_tasks_leased) \
              WHERE claimed_until IS NOT NULL AND type_id = f.type_id) AS running, \
             (SELECT COUNT(*) FROM task_type_permits p WHERE p.type_id = f.type_id \
              AND p.kind = 'rate' AND p.taken_at > NOW(6) - INTERVAL f.rate_per_seconds SECOND) \
              AS started_in_window \
             FROM task_type_flow f JOIN task_types t ON t.id = f.type_id \
             WHERE f.paused_until > NOW(6) OR f.max_running IS NOT NULL OR f.rate_limit IS NOT NULL \
             ORDER BY t.name",
            type_columns()
        ))
        .map_err(|e| conn.error(e))?;
    let decoded = crate::row::decode_all(rows, "a type's flow control", |c| {
        let name: String = c.get("name")?;
        let flow = read_type_flow(c)?;
        Ok((
            name,
            FlowHealth {
                paused: flow.paused,
                paused_until: flow.paused_until,
                max_running: flow.max_running,
                running: c.get("running")?,
                rate: flow.rate,
                started_in_window: c.get("started_in_window")?,
            },
        ))
    })?;
    Ok(decoded.into_iter().collect())
}

/// The rows of [`LIMITED_TYPES`].
pub(crate) fn read_limited(rows: Vec<mysql::Row>) -> Result<Vec<Limited>> {
    crate::row::decode_all(rows, "a limited type", |c| {
        Ok(Limited {
            type_id: c.get("type_id")?,
            running: c.get::<i64>("running")? != 0,
            rate: c.get::<i64>("rate")? != 0,
        })
    })
}

/// What a process keeps between claims: the limited types it knows of, and the signal that a
/// task may have become claimable here (an enqueue, a finished task freeing a slot).
#[derive(Default)]
pub(crate) struct ProcessFlow {
    limited: RwLock<Vec<Limited>>,
    arrivals: Mutex<u64>,
    arrived: Condvar,
    /// When a waiting claim of this process last found a task (`None`: never).
    last_found: Mutex<Option<Instant>>,
}

impl ProcessFlow {
    /// The limited types a claim of `type_ids` (`None`: any type) picks under their gates.
    pub(crate) fn limited_in(&self, type_ids: Option<&[i64]>) -> Vec<Limited> {
        let limited = self.limited.read();
        match type_ids {
            None => limited.clone(),
            Some(ids) => limited
                .iter()
                .copied()
                .filter(|t| ids.contains(&t.type_id))
                .collect(),
        }
    }

    /// The database's limited types, as a claim just read them.
    pub(crate) fn learn(&self, limited: Vec<Limited>) {
        *self.limited.write() = limited;
    }

    /// A waiting claim found a task.
    pub(crate) fn found_work(&self) {
        *self.last_found.lock() = Some(Instant::now());
    }

    /// How long this process's waiting claims have found nothing (since the first wait, when
    /// none ever found anything).
    pub(crate) fn idle_for(&self) -> std::time::Duration {
        let mut last = self.last_found.lock();
        last.get_or_insert_with(Instant::now).elapsed()
    }

    /// A task may have become claimable: wake this process's waiting claims.
    pub(crate) fn signal(&self) {
        *self.arrivals.lock() += 1;
        self.arrived.notify_all();
    }

    /// The number of signals so far, to wait for the next one with [`ProcessFlow::wait`].
    pub(crate) fn seen(&self) -> u64 {
        *self.arrivals.lock()
    }

    /// Sleeps until a signal after `seen` (true), or `until` (false).
    pub(crate) fn wait(&self, seen: u64, until: Instant) -> bool {
        let mut arrivals = self.arrivals.lock();
        while *arrivals == seen {
            if self.arrived.wait_until(&mut arrivals, until).timed_out() {
                return *arrivals != seen;
            }
        }
        true
    }
}
