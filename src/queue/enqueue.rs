//! Enqueue, single and batched: validation and hashing first, then one short transaction.
//!
//! Dedupe is race-free without a read-then-insert: the UNIQUE index on `dedupe_lock` decides,
//! `ON DUPLICATE KEY UPDATE` turns a clash into "use the existing row", and `enqueue_token`
//! tells afterwards which rows this call inserted. The whole write is one round trip (see
//! `lifecycle::enqueue`).

use crate::Config;
use crate::database::Database;
use crate::dedupe::{self, DedupeScope};
use crate::error::{Code, Error, Result};
use crate::json;
use crate::pool::Conn;
use crate::queue::MAX_BATCH;
use crate::queue::engine::{Engine, EnqueueAnswer, KeyHolder, TypeState};
use crate::queue::input::check_delay_seconds;
use crate::queue::lifecycle::{self, NewTask, Status};
use crate::random::random_hex;
use crate::type_cache::CachedType;
use crate::types::check_name;
use crate::validate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Options of one enqueued task; every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnqueueOptions {
    /// Higher runs first. Default 0.
    pub priority: Option<i32>,
    /// Run no earlier than this many seconds from now (database clock).
    pub delay_seconds: Option<f64>,
    /// Run no earlier than this UTC time: `YYYY-MM-DD HH:MM:SS[.ffffff]`, `T` and `Z` allowed.
    pub run_at: Option<String>,
    /// Attempts before the task is dead. Default: the `max_task_attempts` setting.
    pub max_attempts: Option<u32>,
    /// Your own dedupe key instead of the SHA-256 of type and params.
    pub dedupe_key: Option<String>,
    /// `always` (default) or `active`.
    pub dedupe_scope: Option<DedupeScope>,
    /// The dedupe key blocks a new task only this many seconds (1 to 31,536,000) after the
    /// task holding it was created; then an enqueue with the same key creates a new task.
    /// Single enqueues only (a batch refuses it).
    #[serde(default, deserialize_with = "window_seconds")]
    pub unique_for_seconds: Option<u32>,
}

/// Reads `unique_for_seconds`, refusing anything but a whole number in range with a message
/// naming the field (serde's own would name only the expected type).
fn window_seconds<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u32>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    let Some(value) = value else {
        return Ok(None);
    };
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| check_window(*n).is_ok())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(window_message(&value.to_string())))
}

fn window_message(got: &str) -> String {
    format!(
        "unique_for_seconds must be a whole number of seconds from 1 to {} (a year), got {got}",
        lifecycle::MAX_WINDOW_SECONDS
    )
}

fn check_window(seconds: u32) -> Result<()> {
    if (1..=lifecycle::MAX_WINDOW_SECONDS).contains(&seconds) {
        Ok(())
    } else {
        Err(Error::invalid(window_message(&seconds.to_string())))
    }
}

/// One task of a batch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    /// The task's type (`type` in JSON).
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its params, checked against the type's JSON Schema.
    pub params: Value,
    /// Its options (all optional).
    #[serde(default)]
    pub options: EnqueueOptions,
}

/// One task to enqueue, borrowed: a single enqueue and a batch share one path without copying
/// the params.
#[derive(Clone, Copy)]
pub(crate) struct TaskInput<'a> {
    pub type_name: &'a str,
    pub params: &'a Value,
    pub options: &'a EnqueueOptions,
}

impl<'a> From<&'a BatchItem> for TaskInput<'a> {
    fn from(item: &'a BatchItem) -> Self {
        TaskInput {
            type_name: &item.type_name,
            params: &item.params,
            options: &item.options,
        }
    }
}

/// The result of enqueuing one task.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Enqueued {
    /// The task (the existing one when deduplicated).
    pub id: i64,
    /// Its type's name (`type` in JSON).
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its status: `pending` when created now; a deduplicated task's current status.
    pub status: Status,
    /// True when an existing task with the same dedupe key was returned instead.
    pub deduplicated: bool,
    /// The dedupe key it holds.
    pub dedupe_key: String,
}

/// A task that passed every check that needs no database, with what its row is made of
/// (computed once, not again on a retry).
pub(crate) struct Checked<'a> {
    pub item: TaskInput<'a>,
    pub params_text: String,
    pub key: String,
    pub scope: DedupeScope,
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]`, UTC.
    pub run_at: Option<String>,
    pub delay_micros: i64,
    pub max_attempts: u32,
    pub window: Option<u32>,
}

/// A type re-registered between validation and insert invalidates the cached schema; the
/// enqueue then validates again against the new one, at most this many times.
const VERSION_RACE_RETRIES: usize = 3;

pub(crate) fn enqueue_batch(
    db: &Database,
    config: &Config,
    items: &[TaskInput<'_>],
) -> Result<Vec<Enqueued>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let checked = check_batch(config, items)?;
    // The same token on every try: a repeat after a lost connection recognises its own rows.
    let token = random_hex();
    let mut attempt = 0;
    loop {
        let result = db.run(|conn, _| {
            let types = validate_all(config, &checked, |name| db.types.get(conn, name))?;
            insert(db, config, conn, &checked, &types, &token)
        });
        match result {
            Err(e)
                if e.code() == Code::Conflict
                    && is_version_race(&e)
                    && attempt < VERSION_RACE_RETRIES =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Every check of a batch that needs no database (each engine's enqueue starts here).
pub(crate) fn check_batch<'a>(
    config: &Config,
    items: &[TaskInput<'a>],
) -> Result<Vec<Checked<'a>>> {
    if items.len() > MAX_BATCH {
        return Err(Error::invalid(format!(
            "a batch holds at most {MAX_BATCH} tasks, got {}",
            items.len()
        )));
    }
    // A window is one task's release-and-insert; a batch's single INSERT has no place for it.
    if items.len() > 1 && items.iter().any(|i| i.options.unique_for_seconds.is_some()) {
        return Err(Error::invalid(
            "unique_for_seconds is for single enqueues; a batch refuses it (enqueue those tasks one by one)",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| check_item(config, *item).map_err(|e| at_index(e, index, items.len())))
        .collect()
}

pub(crate) fn at_index(e: Error, index: usize, len: usize) -> Error {
    if len == 1 {
        return e;
    }
    let details = e.details().cloned();
    let mut out = Error::new(
        e.code(),
        format!("task {index} of the batch: {}", e.message()),
    );
    if let Some(mut d) = details {
        if let Some(list) = d.get_mut("violations").and_then(Value::as_array_mut) {
            for v in list.iter_mut() {
                v["index"] = json!(index);
            }
        }
        out = out.with_details(d);
    }
    out
}

/// Everything that can be refused without the database; what the row is made of.
fn check_item<'a>(config: &Config, item: TaskInput<'a>) -> Result<Checked<'a>> {
    check_name(item.type_name)?;
    let params_text = json::check_value(item.params, config.max_payload_bytes, "params")?;
    let o = item.options;
    if let Some(key) = &o.dedupe_key {
        dedupe::check_custom_key(key)?;
    }
    if let Some(max) = o.max_attempts {
        if max == 0 || max > 1_000_000 {
            return Err(Error::invalid("max_attempts must be from 1 to 1000000"));
        }
    }
    if o.run_at.is_some() && o.delay_seconds.is_some() {
        return Err(Error::invalid(
            "give either run_at or delay_seconds, not both",
        ));
    }
    if let Some(delay) = o.delay_seconds {
        check_delay_seconds(delay, "delay_seconds")?;
    }
    if let Some(window) = o.unique_for_seconds {
        check_window(window)?;
    }
    Ok(Checked {
        item,
        params_text,
        key: o
            .dedupe_key
            .clone()
            .unwrap_or_else(|| dedupe::compute_key(item.type_name, item.params)),
        scope: o.dedupe_scope.unwrap_or_default(),
        run_at: o.run_at.as_deref().map(normalize_time).transpose()?,
        delay_micros: (o.delay_seconds.unwrap_or(0.0) * 1e6) as i64,
        max_attempts: o.max_attempts.unwrap_or(config.max_task_attempts),
        window: o.unique_for_seconds,
    })
}

/// Checks and validates one task as an enqueue does, without writing it, and hands its row to
/// `row` (for statements the caller runs itself).
pub(crate) fn checked_row<R>(
    db: &Database,
    config: &Config,
    item: TaskInput<'_>,
    row: impl FnOnce(&NewTask<'_>) -> R,
) -> Result<R> {
    let checked = check_item(config, item)?;
    let types = db.run(|conn, _| {
        validate_all(config, std::slice::from_ref(&checked), |name| {
            db.types.get(conn, name)
        })
    })?;
    Ok(row(&new_task(&checked, &types[0])))
}

/// The row of a checked task of type `task_type`.
fn new_task<'a>(p: &'a Checked<'_>, task_type: &CachedType) -> NewTask<'a> {
    NewTask {
        type_id: task_type.id,
        params_text: &p.params_text,
        key: &p.key,
        scope: p.scope.as_sql(),
        priority: p.item.options.priority.unwrap_or(0),
        max_attempts: p.max_attempts,
        run_at: p.run_at.as_deref(),
        delay_micros: p.delay_micros,
    }
}

/// Accepts `YYYY-MM-DD HH:MM:SS[.ffffff]` with an optional `T` separator and `Z` suffix and
/// returns it in the form MySQL reads.
pub(crate) fn normalize_time(text: &str) -> Result<String> {
    let bad = || {
        Error::invalid(format!(
            "run_at '{text}' is not a UTC time like 2026-01-31T12:00:00Z"
        ))
    };
    let t = text.strip_suffix('Z').unwrap_or(text).replacen('T', " ", 1);
    let b = t.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    // Digits only: str::parse alone would take "+5" as a field.
    let num = |r: std::ops::Range<usize>| {
        t.get(r)
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(bad)
    };
    let (y, mo, d, h, mi, s) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let fraction_ok = match &t[19..] {
        "" => true,
        f => {
            f.len() <= 7
                && f.starts_with('.')
                && f.len() > 1
                && f[1..].bytes().all(|c| c.is_ascii_digit())
        }
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in_month = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=days_in_month).contains(&d)
        || h > 23
        || mi > 59
        || s > 59
        || !fraction_ok
    {
        return Err(bad());
    }
    Ok(t)
}

/// Each task's type (from `type_named`) and, with validation on, its params checked against
/// the type's schema: every violation of the whole call is listed.
pub(crate) fn validate_all(
    config: &Config,
    checked: &[Checked<'_>],
    mut type_named: impl FnMut(&str) -> Result<Arc<CachedType>>,
) -> Result<Vec<Arc<CachedType>>> {
    let mut types = Vec::with_capacity(checked.len());
    let mut violations: Vec<Value> = Vec::new();
    let mut first_error = None;
    for (index, task) in checked.iter().enumerate() {
        let item = task.item;
        let task_type =
            type_named(item.type_name).map_err(|e| at_index(e, index, checked.len()))?;
        if config.enable_schema_validation {
            let validator = task_type.validator()?;
            if let Err(e) = validate::check(&validator, item.type_name, item.params) {
                let e = at_index(e, index, checked.len());
                if let Some(list) = e.details().and_then(|d| d["violations"].as_array()) {
                    violations.extend(list.iter().cloned());
                }
                first_error.get_or_insert(e);
                continue;
            }
        }
        types.push(task_type);
    }
    if let Some(e) = first_error {
        // Nothing is written when any task of the batch is invalid; every violation is listed.
        if checked.len() == 1 {
            return Err(e);
        }
        return Err(Error::new(
            Code::ValidationFailed,
            format!(
                "{} violation(s) in the batch; nothing was enqueued. First: {}",
                violations.len(),
                e.message()
            ),
        )
        .with_details(json!({"violations": violations})));
    }
    Ok(types)
}

fn is_version_race(e: &Error) -> bool {
    e.details()
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str)
        == Some("type_version_changed")
}

/// Why a write was refused, from the type's state as the script read it.
fn check_type_state(
    db: &Database,
    p: &Checked<'_>,
    task_type: &CachedType,
    states: &[TypeState],
) -> Result<()> {
    let Some(TypeState {
        version, active, ..
    }) = states.iter().find(|s| s.id == task_type.id)
    else {
        // The cached id is gone: the type was deleted (perhaps with plain SQL, and perhaps
        // registered again under a new id). Try again with what the database holds now.
        db.types.forget(p.item.type_name);
        return Err(type_changed());
    };
    if !*active {
        return Err(type_inactive(p.item.type_name));
    }
    if *version != task_type.version {
        db.types.forget(p.item.type_name);
        return Err(type_changed());
    }
    Ok(())
}

/// The error of an enqueue of a deactivated type.
pub(crate) fn type_inactive(name: &str) -> Error {
    Error::new(
        Code::TypeInactive,
        format!(
            "task type '{name}' is deactivated and accepts no new tasks (activate it to enqueue)"
        ),
    )
}

/// The type changed between validation and the write: the caller validates again.
fn type_changed() -> Error {
    Error::new(Code::Conflict, "the task type changed during enqueue")
        .with_details(json!({"reason": "type_version_changed"}))
}

/// Inserts the checked tasks in one round trip and tells, per task, which row holds its key
/// and whether this call created it.
fn insert(
    db: &Database,
    config: &Config,
    conn: &mut Conn<'_>,
    checked: &[Checked<'_>],
    task_types: &[Arc<CachedType>],
    token: &str,
) -> Result<Vec<Enqueued>> {
    let mut types: Vec<(i64, &str)> = task_types
        .iter()
        .map(|t| (t.id, t.version.as_str()))
        .collect();
    types.sort_unstable();
    types.dedup();
    let rows: Vec<NewTask<'_>> = checked
        .iter()
        .zip(task_types)
        .map(|(p, task_type)| new_task(p, task_type))
        .collect();
    let window = match checked {
        [one] => one.window,
        _ => None,
    };
    let answer = Engine::of(db).enqueue(
        db,
        conn,
        &rows,
        &types,
        token,
        config.enable_task_history,
        window,
    )?;
    let (holders, type_states) = match answer {
        EnqueueAnswer::Created(id) => {
            let task = &checked[0];
            return Ok(vec![Enqueued {
                id,
                type_name: task.item.type_name.to_string(),
                status: lifecycle::ENQUEUE.to,
                deduplicated: false,
                dedupe_key: task.key.clone(),
            }]);
        }
        EnqueueAnswer::Held {
            holders,
            type_states,
        } => (holders, type_states),
    };
    // The INSERT is all or nothing: when it created nothing, either every task was a
    // duplicate or a type was no longer active at the validated version; the types' states
    // tell which.
    if let Some(states) = type_states {
        for (p, task_type) in checked.iter().zip(task_types) {
            check_type_state(db, p, task_type, &states)?;
        }
    }
    let found: HashMap<&str, &KeyHolder> = holders.iter().map(|h| (h.key.as_str(), h)).collect();
    let mut out = Vec::with_capacity(checked.len());
    let mut created_ids = Vec::new();
    for p in checked {
        let holder = found.get(p.key.as_str()).ok_or_else(|| {
            Error::new(
                Code::Database,
                format!("task with dedupe key {} vanished during enqueue", p.key),
            )
        })?;
        // Within one batch, the first of several identical tasks is the created one.
        let created_now = holder.created_by_this_call && !created_ids.contains(&holder.id);
        if created_now {
            created_ids.push(holder.id);
        }
        out.push(Enqueued {
            id: holder.id,
            type_name: p.item.type_name.to_string(),
            status: holder.status,
            deduplicated: !created_now,
            dedupe_key: p.key.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::normalize_time;

    #[test]
    fn run_at_forms() {
        assert_eq!(
            normalize_time("2030-01-02T03:04:05Z").unwrap(),
            "2030-01-02 03:04:05"
        );
        assert_eq!(
            normalize_time("2030-01-02 03:04:05.123456").unwrap(),
            "2030-01-02 03:04:05.123456"
        );
        assert_eq!(
            normalize_time("2028-02-29 00:00:00").unwrap(),
            "2028-02-29 00:00:00"
        );
        for bad in [
            "2030-02-29 00:00:00",
            "2030-02-31 00:00:00",
            "2030-04-31 00:00:00",
            "2100-02-29 00:00:00",
            "2030-13-02 03:04:05",
            "tomorrow",
            "2030-01-02",
            "2030-01-02 03:04:05.",
            "2030-01-02T03:04:05+02:00",
            "2030-01-02 03:04:05'; DROP",
            "+030-01-02 03:04:05",
            "2030-+1-02 03:04:05",
            "2030-01-+5 03:04:05",
            "2030-01-02 +3:04:05",
            "2030-01-02 03:-4:05",
            "2030-01-02 03:04:+5",
        ] {
            assert!(normalize_time(bad).is_err(), "{bad}");
        }
    }
}
