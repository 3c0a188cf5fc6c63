//! Recurring tasks: a schedule enqueues a task of its type, with its params, at every
//! occurrence of a cron expression read in a time zone, with no daemon. A tick enqueues what is
//! due: an explicit one (`Client::schedules_tick`, `taskmanager schedule tick` from cron) takes
//! every due schedule; claims tick lazily, a few schedules at a time, at most once a second per
//! process, and while they know that nothing is due not before the earliest next run (10 s at
//! most: a schedule put by another process is seen within that).
//!
//! Exactly once, whatever the number of tickers and however their clocks differ:
//! - only the database's clock (`NOW(6)`) says what is due;
//! - a tick locks the due schedules with `FOR UPDATE SKIP LOCKED` (tickers never wait on each
//!   other: a schedule another ticker holds is that ticker's to enqueue), and in the same
//!   transaction enqueues each occurrence, records it in `task_schedule_runs` (one row per
//!   schedule and instant) and moves `next_run_at` past it;
//! - each task's dedupe key is `schedule:<name>@<instant>` with scope `always`: even a
//!   schedule deleted and put again cannot make a second task for the same occurrence. The key
//!   is also how a task shows the schedule and instant it was made for (get and list show it;
//!   the run row links them in SQL).

pub(crate) mod steps;
mod tick;
mod timing;

pub(crate) use tick::{lazy_tick, tick};

pub use timing::{MAX_BACKFILL, Misfire};

use crate::Config;
use crate::database::{Database, commit};
use crate::error::{Code, Error, Result};
use crate::json;
use crate::pool::Conn;
use crate::row::{self, Columns};
use crate::types::check_name;
use crate::validate;
use mysql::TxOpts;
use mysql::prelude::Queryable;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use timing::{Timing, bad_field, parse_instant, sql_instant};

/// Longest schedule name, in characters (its tasks' dedupe keys must fit 191).
pub const MAX_SCHEDULE_NAME_CHARS: usize = 150;

/// The default grace period: an occurrence a tick finds at most this many seconds old is on
/// time, not missed (a cron-run tick once a minute is always on time).
pub const DEFAULT_GRACE_SECONDS: u32 = 300;

/// The longest grace period, a week.
const MAX_GRACE_SECONDS: u32 = 7 * 86_400;

/// A schedule as a caller puts it. Only `name`, `type` and `cron` are required.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDefinition {
    /// The schedule's name, 1 to 150 characters; putting the same name again replaces it.
    #[serde(default)]
    pub name: String,
    /// The task type it enqueues (`type` in JSON).
    #[serde(rename = "type", default)]
    pub type_name: String,
    /// A cron expression: five fields (`0 3 * * *`), six with seconds first, or `@daily`...
    #[serde(default)]
    pub cron: String,
    /// The IANA time zone the expression is read in (default `UTC`).
    pub timezone: Option<String>,
    /// The params of every task it enqueues, checked against the type's schema (default `{}`).
    pub params: Option<Value>,
    /// Whether it enqueues (default true). Enabling a disabled schedule starts from now.
    pub enabled: Option<bool>,
    /// `skip` (default), `once` or `backfill`: see [`Misfire`].
    pub misfire: Option<String>,
    /// How old an occurrence may be when a tick finds it and still be on time (default 300).
    pub misfire_grace_seconds: Option<u32>,
}

/// A stored schedule.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Schedule {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The task type it enqueues (`type` in JSON).
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its cron expression.
    pub cron: String,
    /// The time zone the expression is read in.
    pub timezone: String,
    /// The params of its tasks.
    pub params: Value,
    /// Whether it enqueues.
    pub enabled: bool,
    /// What happens to occurrences missed while nothing ticked.
    pub misfire: Misfire,
    /// Seconds an occurrence may be late and still be on time.
    pub misfire_grace_seconds: u32,
    /// Its first occurrence not yet enqueued (RFC 3339, UTC); null when disabled or when the
    /// expression has no further occurrence.
    pub next_run_at: Option<String>,
    /// The last occurrence it enqueued.
    pub last_run_at: Option<String>,
    /// When it was first put.
    pub created_at: String,
    /// When it last changed (a tick changes it too).
    pub updated_at: String,
    /// Whether this put changed anything (absent outside put's answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
}

/// What a tick did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TickReport {
    /// The tasks it enqueued, one per occurrence, oldest first per schedule.
    pub enqueued: Vec<ScheduledTask>,
    /// Occurrences the misfire policy dropped, per schedule.
    pub missed: Vec<Missed>,
    /// Occurrences that could not be enqueued and schedules that could not be read, each
    /// with the reason; the schedule moved on past them.
    pub errors: Vec<ScheduleError>,
}

/// A task a schedule enqueued.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScheduledTask {
    /// The schedule's name.
    pub schedule: String,
    /// The task's type (`type` in JSON).
    #[serde(rename = "type")]
    pub type_name: String,
    /// The occurrence it was made for (RFC 3339, UTC).
    pub scheduled_for: String,
    /// The task.
    pub task_id: i64,
    /// True when a task with its key already existed (the occurrence was enqueued before).
    pub deduplicated: bool,
}

/// Occurrences of a schedule that its misfire policy dropped: the first and the last of them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Missed {
    /// The schedule's name.
    pub schedule: String,
    /// The first occurrence dropped (RFC 3339, UTC).
    pub first: String,
    /// The last occurrence dropped.
    pub last: String,
}

/// An occurrence that could not be enqueued, or a schedule that could not be read.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScheduleError {
    /// The schedule's name.
    pub schedule: String,
    /// The occurrence, when the error concerns one.
    pub scheduled_for: Option<String>,
    /// What went wrong and what to do.
    pub message: String,
}

/// A definition that passed every check that needs no database.
struct Checked {
    timing: Timing,
    timezone: String,
    params: Value,
    params_text: String,
    enabled: bool,
    misfire: Misfire,
    grace: u32,
}

fn check(def: &ScheduleDefinition, config: &Config) -> Result<Checked> {
    let chars = def.name.chars().count();
    if chars == 0 {
        return Err(bad_field(
            "name",
            format!(
                "name is required: the schedule's name, 1 to {MAX_SCHEDULE_NAME_CHARS} characters"
            ),
        ));
    }
    if chars > MAX_SCHEDULE_NAME_CHARS || def.name.chars().any(char::is_control) {
        return Err(bad_field(
            "name",
            format!(
                "name must be 1 to {MAX_SCHEDULE_NAME_CHARS} characters without control \
                 characters, got {chars} characters"
            ),
        ));
    }
    if def.type_name.is_empty() {
        return Err(bad_field(
            "type",
            "type is required: the name of a registered task type".into(),
        ));
    }
    check_name(&def.type_name).map_err(|e| bad_field("type", format!("type: {}", e.message())))?;
    if def.cron.trim().is_empty() || def.cron.len() > 255 {
        return Err(bad_field(
            "cron",
            "cron is required: a cron expression of at most 255 bytes, such as \"0 3 * * *\""
                .into(),
        ));
    }
    let timezone = def.timezone.clone().unwrap_or_else(|| "UTC".into());
    let timing = Timing::new(&def.cron, &timezone)?;
    let misfire = match def.misfire.as_deref() {
        None => Misfire::Skip,
        Some(word) => Misfire::parse(word).ok_or_else(|| {
            bad_field(
                "misfire",
                format!("misfire '{word}' is not a misfire policy: give skip, once or backfill"),
            )
        })?,
    };
    let grace = def.misfire_grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    if grace > MAX_GRACE_SECONDS {
        return Err(bad_field(
            "misfire_grace_seconds",
            format!("misfire_grace_seconds must be from 0 to {MAX_GRACE_SECONDS}, got {grace}"),
        ));
    }
    let params = def.params.clone().unwrap_or_else(|| json!({}));
    let params_text = json::check_value(&params, config.max_payload_bytes, "params")?;
    Ok(Checked {
        timing,
        timezone,
        params,
        params_text,
        enabled: def.enabled.unwrap_or(true),
        misfire,
        grace,
    })
}

/// Creates or replaces a schedule. Its next run is the first occurrence after the database's
/// now; putting it again with the same cron, time zone and enabled state keeps its next run
/// (an application that puts its schedules at every start loses no occurrence).
pub(crate) fn put(db: &Database, config: &Config, def: &ScheduleDefinition) -> Result<Schedule> {
    let checked = check(def, config)?;
    let attempt = || {
        db.run(|conn, _| {
            let task_type = db.types.get(conn, &def.type_name)?;
            if config.enable_schema_validation {
                let validator = task_type.validator()?;
                validate::check(&validator, &def.type_name, &checked.params)?;
            }
            let mut tx = conn
                .start_transaction(TxOpts::default())
                .map_err(|e| db.error(e))?;
            let row: Option<mysql::Row> = tx
                .exec_first(steps::put_lock(), (&def.name,))
                .map_err(|e| db.error(e))?;
            let mut c = Columns::new(
                // The clock's row is always there (a LEFT JOIN from one row).
                row.ok_or_else(|| Error::new(Code::Database, "put's read answered no row"))?,
                format!("schedule '{}'", def.name),
            );
            let now = c.parsed("now", parse_instant)?;
            let cron: Option<String> = c.get("cron")?;
            let timezone: Option<String> = c.get("timezone")?;
            let enabled: Option<bool> = c.get("enabled")?;
            let stored_next: Option<String> = c.get("next_run_at")?;
            let exists = cron.is_some();
            // The same timing, enabled before and now: the next run stays.
            let kept = (cron.as_deref() == Some(def.cron.as_str())
                && timezone.as_deref() == Some(checked.timezone.as_str())
                && enabled == Some(true)
                && checked.enabled)
                .then(|| stored_next.as_deref().and_then(parse_instant))
                .flatten();
            let next_run_at = match (checked.enabled, kept) {
                (false, _) => None,
                (true, Some(kept)) => Some(kept),
                (true, None) => Some(checked.timing.next_after(now).ok_or_else(|| {
                    bad_field(
                        "cron",
                        format!("cron '{}' has no occurrence after now", def.cron),
                    )
                })?),
            };
            let mut values: Vec<mysql::Value> = vec![
                task_type.id.into(),
                def.cron.as_str().into(),
                checked.timezone.as_str().into(),
                checked.params_text.as_str().into(),
                checked.enabled.into(),
                checked.misfire.as_str().into(),
                checked.grace.into(),
                next_run_at.map(sql_instant).into(),
            ];
            // The name is the INSERT's first value and the UPDATE's condition.
            let (statement, changed) = if exists {
                values.push(def.name.as_str().into());
                (steps::UPDATE, None)
            } else {
                values.insert(0, def.name.as_str().into());
                (steps::INSERT, Some(true))
            };
            tx.exec_drop(statement, values).map_err(|e| db.error(e))?;
            let changed = changed.unwrap_or(tx.affected_rows() > 0);
            commit(db, tx)?;
            Ok(changed)
        })
    };
    let changed = match attempt() {
        // Another caller created the same name at the same moment: now it is a replace.
        Err(e) if e.server_code() == Some(1062) => attempt(),
        other => other,
    }?;
    // This process's claims look for due schedules at once.
    db.next_schedule_tick_in(0);
    let mut schedule = get(db, &def.name)?;
    schedule.changed = Some(changed);
    Ok(schedule)
}

/// One schedule by name; `NotFound` when there is none.
pub(crate) fn get(db: &Database, name: &str) -> Result<Schedule> {
    let found = db.run(|conn, _| read(conn, &steps::by_name(), (name,)))?;
    found.into_iter().next().ok_or_else(|| not_found(name))
}

fn not_found(name: &str) -> Error {
    Error::not_found(format!(
        "schedule '{name}' does not exist (taskmanager schedule list shows them)"
    ))
}

/// Every schedule, by name.
pub(crate) fn list(db: &Database) -> Result<Vec<Schedule>> {
    db.run(|conn, _| read(conn, &steps::list(), ()))
}

/// Deletes a schedule with its runs (its tasks stay); answers it as it was.
pub(crate) fn delete(db: &Database, name: &str) -> Result<Schedule> {
    db.run_once(|conn| {
        let schedule = read(conn, &steps::by_name(), (name,))?
            .into_iter()
            .next()
            .ok_or_else(|| not_found(name))?;
        conn.exec_drop(steps::DELETE, (name,))
            .map_err(|e| conn.error(e))?;
        Ok(schedule)
    })
}

fn read(conn: &mut Conn<'_>, sql: &str, params: impl Into<mysql::Params>) -> Result<Vec<Schedule>> {
    let rows: Vec<mysql::Row> = conn.exec(sql, params).map_err(|e| conn.error(e))?;
    row::decode_all(rows, "a schedule", |c| {
        let id = c.id("schedule")?;
        let params: String = c.get("params_json")?;
        Ok(Schedule {
            id,
            name: c.get("name")?,
            type_name: c.get("type_name")?,
            cron: c.get("cron")?,
            timezone: c.get("timezone")?,
            params: serde_json::from_str(&params).unwrap_or(Value::Null),
            enabled: c.get("enabled")?,
            misfire: c.parsed("misfire", Misfire::parse)?,
            misfire_grace_seconds: c.get("misfire_grace_seconds")?,
            next_run_at: c.get("next_run_at")?,
            last_run_at: c.get("last_run_at")?,
            created_at: c.get("created_at")?,
            updated_at: c.get("updated_at")?,
            changed: None,
        })
    })
}

/// A schedule as the stats show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleHealth {
    /// Whether it enqueues.
    pub enabled: bool,
    /// The last occurrence it enqueued (RFC 3339, UTC).
    pub last_run_at: Option<String>,
    /// Its next occurrence; null when disabled.
    pub next_run_at: Option<String>,
    /// The task type it enqueues (`type` in JSON).
    #[serde(rename = "type")]
    pub type_name: String,
}

/// Every schedule for the stats, by name.
pub(crate) fn health(conn: &mut Conn<'_>) -> Result<BTreeMap<String, ScheduleHealth>> {
    let schedules = read(conn, &steps::list(), ())?;
    Ok(schedules
        .into_iter()
        .map(|s| {
            let health = ScheduleHealth {
                enabled: s.enabled,
                last_run_at: s.last_run_at,
                next_run_at: s.next_run_at,
                type_name: s.type_name,
            };
            (s.name, health)
        })
        .collect())
}

/// A time as the database renders it (RFC 3339, UTC), in seconds since 1970.
pub(crate) fn unix_seconds(text: &str) -> Option<i64> {
    parse_instant(text).map(|t| t.and_utc().timestamp())
}
