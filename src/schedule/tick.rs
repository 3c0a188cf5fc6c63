//! The tick: enqueues the due occurrences of the schedules, exactly once each (see the module
//! above for how), in rounds of one transaction.

use super::timing::{self, Misfire, Timing, format_instant, parse_instant, sql_instant};
use super::{Missed, ScheduleError, ScheduledTask, TickReport, steps};
use crate::Config;
use crate::database::Database;
use crate::error::Result;
use crate::pool::Conn;
use crate::queue::lifecycle::NewTask;
use crate::random::random_hex;
use crate::row::{self, Columns};
use crate::validate;
use chrono::{NaiveDateTime, TimeDelta};
use mysql::prelude::Queryable;
use serde_json::Value;

/// Occurrences of one schedule a tick enqueues in one transaction; a longer backfill goes on
/// in the next transaction (the explicit tick) or the next lazy tick.
const CHUNK: usize = 100;

/// Schedules one lazy tick (inside a claim) takes at most, and those of one round of an
/// explicit tick.
const LAZY_SCHEDULES: u32 = 10;
const ROUND_SCHEDULES: u32 = 100;

/// Rounds of one explicit tick at most; what is left is the next tick's.
const MAX_ROUNDS: usize = 1000;

/// The longest a process's claims go without looking for due schedules, in ms.
const MAX_IDLE_MS: u64 = 10_000;

/// Enqueues every due occurrence of every schedule no other ticker holds, in rounds of one
/// transaction each, until nothing due is left to take.
pub(crate) fn tick(db: &Database, config: &Config) -> Result<TickReport> {
    let token = random_hex();
    let mut report = TickReport::default();
    for _ in 0..MAX_ROUNDS {
        let round = db.run(|conn, _| round(db, config, conn, ROUND_SCHEDULES, &token))?;
        let done = round.locked == 0;
        report.enqueued.extend(round.report.enqueued);
        report.missed.extend(round.report.missed);
        report.errors.extend(round.report.errors);
        if done {
            db.next_schedule_tick_in(idle_wait(db, round.idle_ms));
            break;
        }
    }
    Ok(report)
}

/// A claim's tick: one round over a few schedules, when this process's throttle says so.
///
/// A claim's own work does not depend on it, so a tick that fails (a lock wait, a schedule row
/// changed by hand into something unreadable) does not fail the claim: the schedules wait for
/// the next tick, and an explicit tick (`schedules_tick`, `taskmanager schedule tick`) reports
/// the error.
pub(crate) fn lazy_tick(db: &Database, config: &Config) {
    if !db.lazy_tick_due() {
        return;
    }
    let token = random_hex();
    let idle = match db.run(|conn, _| round(db, config, conn, LAZY_SCHEDULES, &token)) {
        // After work, look again soon: more may be due.
        Ok(round) if round.locked > 0 => 0,
        Ok(round) => round.idle_ms,
        // Not at every claim either while ticks fail.
        Err(_) => MAX_IDLE_MS,
    };
    db.next_schedule_tick_in(idle_wait(db, idle));
}

/// How long this process's claims wait before they look again, given that nothing is due for
/// `idle_ms`: at least the lazy interval, at most [`MAX_IDLE_MS`]. An interval of 0 (tests)
/// looks at every claim.
fn idle_wait(db: &Database, idle_ms: u64) -> u64 {
    let interval = db.connection().lazy_recovery_interval_ms;
    if interval == 0 {
        0
    } else {
        idle_ms.clamp(interval, MAX_IDLE_MS.max(interval))
    }
}

/// One round of a tick.
struct Round {
    /// Schedules it locked (0: nothing due, or all of it held by other tickers).
    locked: usize,
    /// When nothing was due: how long until the earliest next run, in ms.
    idle_ms: u64,
    report: TickReport,
}

/// A due schedule as the locking read found it.
struct Due {
    id: i64,
    name: String,
    type_id: i64,
    cron: String,
    timezone: String,
    params_text: String,
    misfire: Misfire,
    grace: u32,
    next_run_at: NaiveDateTime,
    now: NaiveDateTime,
}

fn round(
    db: &Database,
    config: &Config,
    conn: &mut Conn<'_>,
    limit: u32,
    token: &str,
) -> Result<Round> {
    let mut idle = Round {
        locked: 0,
        idle_ms: MAX_IDLE_MS,
        report: TickReport::default(),
    };
    // One cheap read when nothing is due, which is almost always.
    let clock: Option<mysql::Row> = conn
        .query_first(steps::due_check())
        .map_err(|e| conn.error(e))?;
    if let Some(row) = clock {
        let mut c = Columns::new(row, "the schedules' next run");
        let now = c.parsed("now", parse_instant)?;
        let next: Option<String> = c.get("next")?;
        match next
            .as_deref()
            .map(|n| row::parsed("schedules", "next_run_at", n, parse_instant))
        {
            None => return Ok(idle),
            Some(next) => {
                let next = next?;
                if next > now {
                    idle.idle_ms = (next - now).num_milliseconds().max(0) as u64;
                    return Ok(idle);
                }
            }
        }
    }
    let mut answer = conn.script(&steps::lock_due(limit).join(";\n"), true)?;
    let rows = answer.rows(1);
    let outcome = (|| {
        let due = row::decode_all(rows, "a schedule", |c| {
            Ok(Due {
                id: c.id("schedule")?,
                name: c.get("name")?,
                type_id: c.get("type_id")?,
                cron: c.get("cron")?,
                timezone: c.get("timezone")?,
                params_text: c.get("params_json")?,
                misfire: c.parsed("misfire", Misfire::parse)?,
                grace: c.get("misfire_grace_seconds")?,
                next_run_at: c.parsed("next_run_at", parse_instant)?,
                now: c.parsed("now", parse_instant)?,
            })
        })?;
        enqueue_due(db, config, conn, &due, token)
    })();
    match outcome {
        Ok(round) => Ok(round),
        Err(e) => {
            // The locks go with the transaction; a connection that cannot roll back is
            // closed by the error's own handling.
            let _ = conn.query_drop("ROLLBACK");
            Err(e)
        }
    }
}

/// Writes the due occurrences of the locked schedules, moves each schedule on, and commits:
/// one round trip.
fn enqueue_due(
    db: &Database,
    config: &Config,
    conn: &mut Conn<'_>,
    due: &[Due],
    token: &str,
) -> Result<Round> {
    let mut report = TickReport::default();
    let mut statements: Vec<String> = Vec::new();
    // Per occurrence: its schedule, type, instant, and the statement that answers its task.
    let mut answers: Vec<(usize, String, NaiveDateTime, usize)> = Vec::new();
    let ids: Vec<i64> = due.iter().map(|d| d.type_id).collect();
    let names = db.types.names(conn, &ids)?;
    for (index, schedule) in due.iter().enumerate() {
        let error = |when: Option<NaiveDateTime>, message: String| ScheduleError {
            schedule: schedule.name.clone(),
            scheduled_for: when.map(format_instant),
            message,
        };
        let timing = match Timing::new(&schedule.cron, &schedule.timezone) {
            Ok(timing) => timing,
            Err(e) => {
                // Changed by hand into something unreadable: it stops until put again.
                report.errors.push(error(
                    None,
                    format!(
                        "{}; the schedule is stopped until it is put again",
                        e.message()
                    ),
                ));
                statements.extend(steps::advance(schedule.id, None, None));
                continue;
            }
        };
        let grace = TimeDelta::seconds(schedule.grace.into());
        let plan = timing::plan(
            &timing,
            schedule.misfire,
            grace,
            schedule.next_run_at,
            schedule.now,
            CHUNK,
        );
        if let Some((first, last)) = plan.missed {
            report.missed.push(Missed {
                schedule: schedule.name.clone(),
                first: format_instant(first),
                last: format_instant(last),
            });
        }
        let type_name = names.get(&schedule.type_id).cloned().unwrap_or_default();
        let refusal = match refusal(db, config, conn, &type_name, schedule) {
            Ok(refusal) => refusal,
            Err(e) => Some(e.message().to_string()),
        };
        match (&refusal, plan.due.first()) {
            (Some(why), Some(first)) => {
                report.errors.push(error(
                    Some(*first),
                    format!("{why}; {} occurrence(s) enqueued nothing", plan.due.len()),
                ));
            }
            (None, _) => {
                let version = db.types.get(conn, &type_name)?.version.clone();
                for occurrence in &plan.due {
                    let key = format!("schedule:{}@{}", schedule.name, format_instant(*occurrence));
                    let task = NewTask {
                        type_id: schedule.type_id,
                        params_text: &schedule.params_text,
                        key: &key,
                        scope: "always",
                        priority: 0,
                        max_attempts: config.max_task_attempts,
                        run_at: None,
                        delay_micros: 0,
                    };
                    statements.extend(steps::enqueue_occurrence(
                        &task,
                        &version,
                        token,
                        schedule.id,
                        &sql_instant(*occurrence),
                        config.enable_task_history,
                    ));
                    let answer = statements.len() - 1;
                    answers.push((index, type_name.clone(), *occurrence, answer));
                }
            }
            (Some(_), None) => {}
        }
        let last = plan.due.last().map(|o| sql_instant(*o));
        statements.extend(steps::advance(
            schedule.id,
            plan.next.map(sql_instant).as_deref(),
            last.as_deref(),
        ));
    }
    statements.push("COMMIT".into());
    // The locking read's START TRANSACTION is still open: this script ends it.
    let mut answer = conn
        .script(&statements.join(";\n"), true)
        .map_err(crate::pool::unknown_outcome)?;
    for (index, type_name, occurrence, at) in answers {
        let schedule = &due[index];
        let rows = answer.rows(at);
        let outcome = row::decode_all(rows, "an enqueued occurrence", |c| {
            Ok((
                c.get::<Option<i64>>("task_id")?,
                c.get::<Option<i64>>("created")?,
            ))
        })?;
        match outcome.first() {
            Some((Some(task_id), created)) if *task_id > 0 => report.enqueued.push(ScheduledTask {
                schedule: schedule.name.clone(),
                type_name,
                scheduled_for: format_instant(occurrence),
                task_id: *task_id,
                deduplicated: *created != Some(1),
            }),
            _ => report.errors.push(ScheduleError {
                schedule: schedule.name.clone(),
                scheduled_for: Some(format_instant(occurrence)),
                message: format!(
                    "task type '{type_name}' refused the task: it is deactivated, or changed \
                     while the tick ran"
                ),
            }),
        }
    }
    Ok(Round {
        locked: due.len(),
        idle_ms: 0,
        report,
    })
}

/// Why a schedule's tasks cannot be enqueued now (its type is gone or its params no longer
/// pass the type's schema), or `None`.
fn refusal(
    db: &Database,
    config: &Config,
    conn: &mut Conn<'_>,
    type_name: &str,
    schedule: &Due,
) -> Result<Option<String>> {
    if type_name.is_empty() {
        return Ok(Some(format!(
            "the task type with id {} is gone",
            schedule.type_id
        )));
    }
    let task_type = db.types.get(conn, type_name)?;
    if !config.enable_schema_validation {
        return Ok(None);
    }
    let params: Value = serde_json::from_str(&schedule.params_text).unwrap_or(Value::Null);
    let validator = task_type.validator()?;
    Ok(validate::check(&validator, type_name, &params)
        .err()
        .map(|e| {
            format!(
                "its params no longer pass the schema of type '{type_name}' ({}): put the \
                 schedule again with valid params",
                e.message()
            )
        }))
}
