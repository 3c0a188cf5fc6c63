//! What an operator watches: counts by type and status, how old the oldest pending task is,
//! leases that ran out, what finished in each minute of the last hour, and the workers seen.
//! One JSON document, and the same figures as Prometheus text (`metrics`) for the CLI and
//! the HTTP API's `/metrics`.
//!
//! Every query is served by an index range except the counts, which read the whole `tasks`
//! index once (about 0.1 s per million tasks on a small server); prune finished tasks to keep
//! it short.

use crate::database::Database;
use crate::error::Result;
use crate::flow::{self, FlowHealth};
use crate::pool::Conn;
use crate::queue::engine::Engine;
use crate::queue::lifecycle::{Read, Status, THROUGHPUT_HOURS};
use crate::row::{self, Columns};
use crate::schedule::{self, ScheduleHealth};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Minutes of throughput history in the stats.
pub const MINUTES: usize = 60;

/// Hours of the per-hour throughput series.
pub const HOURS: usize = THROUGHPUT_HOURS;

// The fields of every struct below are declared in alphabetical order: the document was a
// `serde_json::Value`, whose maps write their keys sorted, and the C ABI, PHP, Python, the
// dashboard and the HTTP API read its text. A struct writes its fields in declaration order,
// so this order keeps the text byte for byte (tests/stats.rs compares it).

/// What an operator watches ([`Client::stats`](crate::Client::stats)), as JSON:
///
/// ```json
/// {"generated_at": "...",
///  "queue": {"email": {"expired_leases": 0, "oldest_pending_seconds": 4.2}},
///  "throughput": {"email": {"completed_per_hour": [..24..], "completed_per_minute": [..60..],
///                           "failed_per_hour": [..24..], "failed_per_minute": [..60..]}},
///  "totals": {"cancelled": 0, "claimed": 0, "completed": 0, "failed": 0, "pending": 2},
///  "types": {"email": {"cancelled": 0, "claimed": 0, "completed": 0, "failed": 0, "pending": 2}},
///  "workers": [{"claims_last_hour": 9, "holding": 1, "last_claim_at": "...", "worker_id": "w1"}]}
/// ```
///
/// Every status appears in every count, zero when there is none. `*_per_minute[0]` is the
/// minute that just ended... `[59]` the one an hour ago. Workers are those that claimed in the
/// last hour (from the history, when it is on) or hold a task now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// When the database computed these figures (RFC 3339, UTC, its clock).
    pub generated_at: String,
    /// Per type that is paused or limited: its pause, limits and how much of them is in use
    /// (absent from the JSON when there is none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flow: BTreeMap<String, FlowHealth>,
    /// Per type that has runnable pending tasks or expired leases: their health.
    pub queue: BTreeMap<String, QueueHealth>,
    /// Per schedule: its type, whether it is enabled, its last and next run (absent from the
    /// JSON when there is no schedule).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub schedules: BTreeMap<String, ScheduleHealth>,
    /// Per type that finished tasks in the last hour: how many in each minute.
    pub throughput: BTreeMap<String, Throughput>,
    /// Tasks by status over every type.
    pub totals: StatusCounts,
    /// Tasks by status, per registered type (every type, even one without tasks).
    pub types: BTreeMap<String, StatusCounts>,
    /// Workers that claimed in the last hour or hold a task now, most recent claim first.
    pub workers: Vec<WorkerSeen>,
}

/// A number of tasks in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// Tasks in `cancelled`.
    pub cancelled: i64,
    /// Tasks in `claimed`.
    pub claimed: i64,
    /// Tasks in `completed`.
    pub completed: i64,
    /// Tasks in `failed`.
    pub failed: i64,
    /// Tasks in `pending`.
    pub pending: i64,
}

impl StatusCounts {
    /// The count of tasks in `status`.
    pub fn get(&self, status: Status) -> i64 {
        match status {
            Status::Pending => self.pending,
            Status::Claimed => self.claimed,
            Status::Completed => self.completed,
            Status::Failed => self.failed,
            Status::Cancelled => self.cancelled,
        }
    }

    fn slot(&mut self, status: Status) -> &mut i64 {
        match status {
            Status::Pending => &mut self.pending,
            Status::Claimed => &mut self.claimed,
            Status::Completed => &mut self.completed,
            Status::Failed => &mut self.failed,
            Status::Cancelled => &mut self.cancelled,
        }
    }
}

/// The health of one type's queue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QueueHealth {
    /// Claimed tasks whose lease ran out, not yet recovered (recovery will count them as
    /// failed attempts).
    pub expired_leases: i64,
    /// Age in seconds of the oldest runnable pending task; `None` when there is none.
    pub oldest_pending_seconds: Option<f64>,
}

/// Tasks of one type finished in each of the last 60 minutes and the last 24 hours, index 0
/// the most recent. Fields in sorted order: the document's keys were always sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throughput {
    /// Tasks completed, per hour.
    pub completed_per_hour: Vec<i64>,
    /// Tasks completed, per minute.
    pub completed_per_minute: Vec<i64>,
    /// Tasks failed for good, per hour.
    pub failed_per_hour: Vec<i64>,
    /// Tasks failed for good, per minute.
    pub failed_per_minute: Vec<i64>,
}

/// A worker seen in the last hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSeen {
    /// Claims it made in the last hour (from the history; 0 when the history is off).
    pub claims_last_hour: i64,
    /// Tasks it holds now.
    pub holding: i64,
    /// Its last claim (RFC 3339, UTC), when known.
    pub last_claim_at: Option<String>,
    /// Its worker id (`""` for tasks claimed without one).
    pub worker_id: String,
}

pub(crate) fn stats(db: &Database) -> Result<Stats> {
    db.run(|conn, _| {
        let r = &mut Reader {
            engine: Engine::of(db),
            conn,
        };
        let counts = r.read(Read::StatusCounts, |c| {
            Ok((c.get("name")?, c.get("status")?, c.get("n")?))
        })?;
        let oldest_pending =
            r.read(Read::OldestPending, |c| Ok((c.get("name")?, c.get("age")?)))?;
        let expired_leases = r.read(Read::ExpiredLeases, |c| Ok((c.get("name")?, c.get("n")?)))?;
        let schedules = schedule::health(r.conn)?;
        let flow = flow::health(r.conn)?;
        let finished = r.read(Read::FinishedPerMinute, |c| {
            Ok((
                c.get("name")?,
                c.get("status")?,
                c.get("minute")?,
                c.get("n")?,
            ))
        })?;
        let claims = r.read(Read::ClaimsPerWorker, |c| {
            Ok((c.get("worker_id")?, c.get("last")?, c.get("n")?))
        })?;
        let held = r.read(Read::HeldPerWorker, |c| {
            Ok((c.get("claimed_by")?, c.get("n")?, c.get("last")?))
        })?;
        let generated_at = r
            .read(Read::Now, |c| c.get::<String>("now"))?
            .into_iter()
            .next()
            .unwrap_or_default();
        Figures {
            generated_at,
            counts,
            oldest_pending,
            expired_leases,
            finished,
            claims,
            held,
            flow,
            schedules,
        }
        .into_stats()
    })
}

/// The rows the stats are made of, as an engine reads them (each engine has its SQL; the
/// document is made from them in one place, [`Figures::into_stats`]).
pub(crate) struct Figures {
    /// The engine's clock now (RFC 3339, UTC).
    pub generated_at: String,
    /// Type name, status (`None`: a type without tasks) and its number of tasks.
    pub counts: Vec<(String, Option<String>, i64)>,
    /// Type name and the age in seconds of its oldest runnable pending task.
    pub oldest_pending: Vec<(String, f64)>,
    /// Type name and its claimed tasks whose lease ran out.
    pub expired_leases: Vec<(String, i64)>,
    /// Type name, final status (completed or failed), whole minutes ago it finished, tasks:
    /// the last day.
    pub finished: Vec<(String, String, i64, i64)>,
    /// Worker id, its last claim (RFC 3339) and its claims in the last hour, from the history.
    pub claims: Vec<(Option<String>, String, i64)>,
    /// Worker id, the tasks it holds now and its latest claim among them (RFC 3339).
    pub held: Vec<(Option<String>, i64, Option<String>)>,
    /// Paused or limited types (none on an engine without flow control).
    pub flow: BTreeMap<String, FlowHealth>,
    /// Schedules (none on an engine without them).
    pub schedules: BTreeMap<String, ScheduleHealth>,
}

impl Figures {
    /// The stats document.
    pub(crate) fn into_stats(self) -> Result<Stats> {
        let (types, totals) = counts(self.counts)?;
        Ok(Stats {
            generated_at: self.generated_at,
            flow: self.flow,
            queue: queue_health(&self.oldest_pending, &self.expired_leases),
            schedules: self.schedules,
            throughput: throughput(self.finished),
            totals,
            types,
            workers: workers(self.claims, self.held),
        })
    }
}

fn counts(
    rows: Vec<(String, Option<String>, i64)>,
) -> Result<(BTreeMap<String, StatusCounts>, StatusCounts)> {
    let mut types = BTreeMap::new();
    let mut totals = StatusCounts::default();
    for (name, status, count) in rows {
        let entry: &mut StatusCounts = types.entry(name.clone()).or_default();
        // NULL: a type without tasks (the LEFT JOIN), which counts zero everywhere.
        if let Some(status) = status {
            // A status outside the ENUM's words (its empty value, on a non-strict server) has
            // no count to go to.
            let status = row::parsed(
                &format!("the tasks of type {name}"),
                "status",
                &status,
                Status::parse,
            )?;
            *entry.slot(status) += count;
            *totals.slot(status) += count;
        }
    }
    Ok((types, totals))
}

/// Per type: age of the oldest runnable pending task, and claimed tasks whose lease ran out.
fn queue_health(
    oldest: &[(String, f64)],
    expired: &[(String, i64)],
) -> BTreeMap<String, QueueHealth> {
    let mut out = BTreeMap::new();
    let names = oldest
        .iter()
        .map(|o| &o.0)
        .chain(expired.iter().map(|e| &e.0));
    for name in names {
        out.insert(
            name.clone(),
            QueueHealth {
                oldest_pending_seconds: oldest.iter().find(|o| &o.0 == name).map(|o| o.1),
                expired_leases: expired.iter().find(|e| &e.0 == name).map_or(0, |e| e.1),
            },
        );
    }
    out
}

/// Per type, tasks completed and failed in each of the last 60 minutes and of the last 24
/// hours (index 0: the most recent), from rows per type, final status and minute.
fn throughput(rows: Vec<(String, String, i64, i64)>) -> BTreeMap<String, Throughput> {
    let mut out: BTreeMap<String, Throughput> = BTreeMap::new();
    for (name, status, minute, count) in rows {
        let entry = out.entry(name).or_insert_with(|| Throughput {
            completed_per_hour: vec![0; HOURS],
            completed_per_minute: vec![0; MINUTES],
            failed_per_hour: vec![0; HOURS],
            failed_per_minute: vec![0; MINUTES],
        });
        let (per_minute, per_hour) = if status == Status::Completed.as_str() {
            (
                &mut entry.completed_per_minute,
                &mut entry.completed_per_hour,
            )
        } else {
            (&mut entry.failed_per_minute, &mut entry.failed_per_hour)
        };
        let Ok(minute) = usize::try_from(minute) else {
            continue;
        };
        if let Some(slot) = per_minute.get_mut(minute) {
            *slot += count;
        }
        if let Some(slot) = per_hour.get_mut(minute / 60) {
            *slot += count;
        }
    }
    out
}

/// Workers that claimed in the last hour (history) or hold tasks now, most recent first.
fn workers(
    claims: Vec<(Option<String>, String, i64)>,
    holding: Vec<(Option<String>, i64, Option<String>)>,
) -> Vec<WorkerSeen> {
    let mut seen: BTreeMap<String, WorkerSeen> = BTreeMap::new();
    for (worker, last, count) in claims {
        let entry = worker_entry(&mut seen, worker);
        entry.last_claim_at = Some(last);
        entry.claims_last_hour = count;
    }
    for (worker, count, last) in holding {
        let entry = worker_entry(&mut seen, worker);
        entry.holding = count;
        if entry.last_claim_at.is_none() {
            entry.last_claim_at = last;
        }
    }
    let mut list: Vec<WorkerSeen> = seen.into_values().collect();
    // Stable: workers claiming in the same microsecond stay in worker id order.
    list.sort_by(|a, b| b.last_claim_at.cmp(&a.last_claim_at));
    list
}

/// The worker's entry, new and empty when first seen; no id (a claim without one) is `""`.
fn worker_entry(
    seen: &mut BTreeMap<String, WorkerSeen>,
    worker: Option<String>,
) -> &mut WorkerSeen {
    let worker_id = worker.unwrap_or_default();
    seen.entry(worker_id.clone()).or_insert(WorkerSeen {
        claims_last_hour: 0,
        holding: 0,
        last_claim_at: None,
        worker_id,
    })
}

/// The stats' reads, run by the database's engine on one connection.
struct Reader<'c, 'p> {
    engine: Engine,
    conn: &'c mut Conn<'p>,
}

impl Reader<'_, '_> {
    /// The rows of a stats read, each read by column name.
    fn read<T>(
        &mut self,
        read: Read<'_>,
        decode: impl FnMut(&mut Columns) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.engine
            .read(self.conn, read, mysql::Params::Empty, "a stats row", decode)
    }
}

/// The stats document as Prometheus text exposition (version 0.0.4).
pub(crate) fn metrics(stats: &Stats) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let mut tasks = Vec::new();
    for (name, counts) in &stats.types {
        for status in Status::ALL {
            tasks.push((
                format!("type=\"{}\",status=\"{status}\"", label(name)),
                counts.get(status) as f64,
            ));
        }
    }
    family(
        "taskmanager_tasks",
        "gauge",
        "Tasks by type and status.",
        tasks,
    );
    family(
        "taskmanager_oldest_pending_seconds",
        "gauge",
        "Age of the oldest runnable pending task, by type.",
        stats
            .queue
            .iter()
            .filter_map(|(name, h)| {
                h.oldest_pending_seconds
                    .map(|v| (format!("type=\"{}\"", label(name)), v))
            })
            .collect(),
    );
    family(
        "taskmanager_expired_leases",
        "gauge",
        "Claimed tasks whose lease ran out, not yet recovered, by type.",
        stats
            .queue
            .iter()
            .map(|(name, h)| (format!("type=\"{}\"", label(name)), h.expired_leases as f64))
            .collect(),
    );
    let mut finished = Vec::new();
    for (name, series) in &stats.throughput {
        for (per_minute, status) in [
            (&series.completed_per_minute, Status::Completed),
            (&series.failed_per_minute, Status::Failed),
        ] {
            let total: i64 = per_minute.iter().sum();
            finished.push((
                format!("type=\"{}\",status=\"{status}\"", label(name)),
                total as f64,
            ));
        }
    }
    family(
        "taskmanager_finished_last_hour",
        "gauge",
        "Tasks completed or failed for good in the last 60 minutes, by type.",
        finished,
    );
    family(
        "taskmanager_worker_holding",
        "gauge",
        "Tasks each worker seen in the last hour holds now.",
        stats
            .workers
            .iter()
            .map(|w| {
                (
                    format!("worker=\"{}\"", label(&w.worker_id)),
                    w.holding as f64,
                )
            })
            .collect(),
    );
    let per_type = |value: fn(&FlowHealth) -> Option<f64>| {
        stats
            .flow
            .iter()
            .filter_map(|(name, f)| Some((format!("type=\"{}\"", label(name)), value(f)?)))
            .collect::<Vec<_>>()
    };
    family(
        "taskmanager_type_paused",
        "gauge",
        "1 while claims leave the type's tasks alone, for paused or limited types.",
        per_type(|f| Some(f64::from(u8::from(f.paused)))),
    );
    family(
        "taskmanager_type_running",
        "gauge",
        "Tasks claimed now, for paused or limited types.",
        per_type(|f| Some(f.running as f64)),
    );
    family(
        "taskmanager_type_max_running",
        "gauge",
        "The concurrency limit, for types that have one.",
        per_type(|f| f.max_running.map(f64::from)),
    );
    family(
        "taskmanager_type_rate_started",
        "gauge",
        "Starts in the current window of the rate limit, for types that have one.",
        per_type(|f| f.rate.map(|_| f.started_in_window as f64)),
    );
    family(
        "taskmanager_schedule_next_run_timestamp_seconds",
        "gauge",
        "When each enabled schedule next enqueues a task (Unix time, database clock).",
        stats
            .schedules
            .iter()
            .filter_map(|(name, s)| {
                let next = schedule::unix_seconds(s.next_run_at.as_deref()?)?;
                Some((format!("schedule=\"{}\"", label(name)), next as f64))
            })
            .collect(),
    );
    out
}

/// A label value: backslash, double quote and newline escaped, as the format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_escape_labels_and_list_every_status() {
        let counts = |pending, claimed| StatusCounts {
            pending,
            claimed,
            ..StatusCounts::default()
        };
        let name = "a\"b\\c\nd".to_string();
        let stats = Stats {
            generated_at: "2024-01-01T00:00:00.000000Z".into(),
            queue: [(
                name.clone(),
                QueueHealth {
                    oldest_pending_seconds: Some(1.5),
                    expired_leases: 3,
                },
            )]
            .into(),
            throughput: [(
                name.clone(),
                Throughput {
                    completed_per_hour: vec![3],
                    completed_per_minute: vec![1, 2],
                    failed_per_hour: vec![4],
                    failed_per_minute: vec![0, 4],
                },
            )]
            .into(),
            schedules: [(
                "nightly".to_string(),
                ScheduleHealth {
                    enabled: true,
                    last_run_at: None,
                    next_run_at: Some("2024-01-02T03:00:00.000000Z".into()),
                    type_name: "report".into(),
                },
            )]
            .into(),
            flow: [(
                "render".to_string(),
                FlowHealth {
                    paused: true,
                    paused_until: None,
                    max_running: Some(2),
                    running: 1,
                    rate: None,
                    started_in_window: 0,
                },
            )]
            .into(),
            totals: counts(2, 1),
            types: [(name, counts(2, 1))].into(),
            workers: vec![WorkerSeen {
                worker_id: "w1".into(),
                last_claim_at: None,
                claims_last_hour: 0,
                holding: 1,
            }],
        };
        let text = metrics(&stats);
        assert!(
            text.contains(r#"taskmanager_tasks{type="a\"b\\c\nd",status="pending"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"status="cancelled"} 0"#), "{text}");
        assert!(text.contains(r#"taskmanager_oldest_pending_seconds{type="a\"b\\c\nd"} 1.5"#));
        assert!(text.contains(r#"taskmanager_expired_leases{type="a\"b\\c\nd"} 3"#));
        assert!(
            text.contains(r#"status="completed"} 3"#) && text.contains(r#"status="failed"} 4"#)
        );
        assert!(text.contains(r#"taskmanager_worker_holding{worker="w1"} 1"#));
        assert!(text.contains(
            r#"taskmanager_schedule_next_run_timestamp_seconds{schedule="nightly"} 1704164400"#
        ));
        assert!(text.contains(r#"taskmanager_type_paused{type="render"} 1"#));
        assert!(text.contains(r#"taskmanager_type_running{type="render"} 1"#));
        assert!(text.contains(r#"taskmanager_type_max_running{type="render"} 2"#));
        assert!(!text.contains(r#"taskmanager_type_rate_started{type="render"}"#));
        assert_eq!(text.matches("# TYPE").count(), 10);
        assert!(!text.lines().any(|l| l.contains('\n')));
    }
}
