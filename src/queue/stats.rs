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
use crate::pool::Conn;
use crate::queue::iso;
use crate::queue::lifecycle::Status;
use mysql::prelude::Queryable;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Minutes of throughput history in the stats.
pub const MINUTES: usize = 60;

/// The stats document:
///
/// ```json
/// {"types": {"email": {"pending": 2, "claimed": 0, ...}}, "totals": {"pending": 2, ...},
///  "queue": {"email": {"oldest_pending_seconds": 4.2, "expired_leases": 0}},
///  "throughput": {"email": {"completed_per_minute": [..60..], "failed_per_minute": [..60..]}},
///  "workers": [{"worker_id": "w1", "last_claim_at": "...", "claims_last_hour": 9, "holding": 1}],
///  "generated_at": "..."}
/// ```
///
/// Every status appears in every count, zero when there is none. `*_per_minute[0]` is the
/// minute that just ended... `[59]` the one an hour ago. Workers are those that claimed in the
/// last hour (from the history, when it is on) or hold a task now.
pub(crate) fn stats(db: &Database) -> Result<Value> {
    db.run(|conn, _| {
        let (types, totals) = counts(conn)?;
        Ok(json!({
            "types": types,
            "totals": totals,
            "queue": queue_health(conn)?,
            "throughput": throughput(conn)?,
            "workers": workers(conn)?,
            "generated_at": conn.query_first::<String, _>(format!("SELECT {}", iso("NOW(6)")))
                .map_err(|e| conn.error(e))?,
        }))
    })
}

type Counts = BTreeMap<String, Map<String, Value>>;

fn zero() -> Map<String, Value> {
    Status::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), json!(0)))
        .collect()
}

fn counts(conn: &mut Conn<'_>) -> Result<(Counts, Map<String, Value>)> {
    let rows: Vec<(String, Option<String>, i64)> = conn
        .query(
            "SELECT y.name, t.status, COUNT(t.id) FROM task_types y \
             LEFT JOIN tasks t ON t.type_id = y.id GROUP BY y.name, t.status",
        )
        .map_err(|e| conn.error(e))?;
    let mut types = Counts::new();
    let mut totals = zero();
    for (name, status, count) in rows {
        let entry = types.entry(name).or_insert_with(zero);
        if let Some(status) = status {
            entry.insert(status.clone(), json!(count));
            let total = totals[&status].as_i64().unwrap_or(0) + count;
            totals.insert(status, json!(total));
        }
    }
    Ok((types, totals))
}

/// Per type: age of the oldest runnable pending task, and claimed tasks whose lease ran out
/// (recovery will count them as failed attempts).
fn queue_health(conn: &mut Conn<'_>) -> Result<Value> {
    let oldest: Vec<(String, f64)> = conn
        .query(
            "SELECT y.name, TIMESTAMPDIFF(MICROSECOND, MIN(t.created_at), NOW(6)) / 1e6 \
             FROM tasks t JOIN task_types y ON y.id = t.type_id \
             WHERE t.status = 'pending' AND t.run_at <= NOW(6) GROUP BY y.name",
        )
        .map_err(|e| conn.error(e))?;
    let expired: Vec<(String, i64)> = conn
        .query(
            "SELECT y.name, COUNT(*) FROM tasks t JOIN task_types y ON y.id = t.type_id \
             WHERE t.status = 'claimed' AND t.lease_expires_at <= NOW(6) GROUP BY y.name",
        )
        .map_err(|e| conn.error(e))?;
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    let names = oldest
        .iter()
        .map(|o| &o.0)
        .chain(expired.iter().map(|e| &e.0));
    for name in names {
        out.insert(
            name.clone(),
            json!({
                "oldest_pending_seconds": oldest.iter().find(|o| &o.0 == name).map(|o| o.1),
                "expired_leases": expired.iter().find(|e| &e.0 == name).map_or(0, |e| e.1),
            }),
        );
    }
    Ok(json!(out))
}

/// Per type, tasks completed and failed in each of the last 60 minutes (index 0: the most
/// recent). Read from idx_tasks_finished (status, completed_at).
fn throughput(conn: &mut Conn<'_>) -> Result<Value> {
    let rows: Vec<(String, String, i64, i64)> = conn
        .query(format!(
            "SELECT y.name, t.status, TIMESTAMPDIFF(SECOND, t.completed_at, NOW(6)) DIV 60 AS minute, COUNT(*) \
             FROM tasks t JOIN task_types y ON y.id = t.type_id \
             WHERE t.status IN ('{}', '{}') AND t.completed_at > NOW(6) - INTERVAL {MINUTES} MINUTE \
             GROUP BY y.name, t.status, minute",
            Status::Completed,
            Status::Failed
        ))
        .map_err(|e| conn.error(e))?;
    let mut out: BTreeMap<String, (Vec<i64>, Vec<i64>)> = BTreeMap::new();
    for (name, status, minute, count) in rows {
        let entry = out
            .entry(name)
            .or_insert_with(|| (vec![0; MINUTES], vec![0; MINUTES]));
        let series = if status == Status::Completed.as_str() {
            &mut entry.0
        } else {
            &mut entry.1
        };
        if let Some(slot) = usize::try_from(minute).ok().and_then(|m| series.get_mut(m)) {
            *slot += count;
        }
    }
    Ok(json!(
        out.into_iter()
            .map(|(name, (completed, failed))| (
                name,
                json!({"completed_per_minute": completed, "failed_per_minute": failed})
            ))
            .collect::<BTreeMap<_, _>>()
    ))
}

/// Workers that claimed in the last hour (history) or hold tasks now, most recent first.
fn workers(conn: &mut Conn<'_>) -> Result<Value> {
    let claims: Vec<(Option<String>, String, i64)> = conn
        .query(format!(
            "SELECT worker_id, {}, COUNT(*) FROM task_history \
             WHERE created_at > NOW(6) - INTERVAL 1 HOUR AND status_change = 'claimed' \
             GROUP BY worker_id",
            iso("MAX(created_at)")
        ))
        .map_err(|e| conn.error(e))?;
    let holding: Vec<(Option<String>, i64, Option<String>)> = conn
        .query(format!(
            "SELECT claimed_by, COUNT(*), {} FROM tasks WHERE status = 'claimed' GROUP BY claimed_by",
            iso("MAX(claimed_at)")
        ))
        .map_err(|e| conn.error(e))?;
    let mut seen: BTreeMap<String, (Option<String>, i64, i64)> = BTreeMap::new();
    for (worker, last, count) in claims {
        let entry = seen.entry(worker.unwrap_or_default()).or_default();
        entry.0 = Some(last);
        entry.1 = count;
    }
    for (worker, count, last) in holding {
        let entry = seen.entry(worker.unwrap_or_default()).or_default();
        entry.2 = count;
        if entry.0.is_none() {
            entry.0 = last;
        }
    }
    let mut list: Vec<Value> = seen
        .into_iter()
        .map(|(worker, (last, claims, holding))| {
            json!({"worker_id": worker, "last_claim_at": last, "claims_last_hour": claims, "holding": holding})
        })
        .collect();
    list.sort_by(|a, b| {
        b["last_claim_at"]
            .as_str()
            .cmp(&a["last_claim_at"].as_str())
    });
    Ok(json!(list))
}

/// The stats document as Prometheus text exposition (version 0.0.4).
pub fn metrics(stats: &Value) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let by_type = |section: &str| -> Vec<(String, Value)> {
        stats[section]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    let mut tasks = Vec::new();
    for (name, counts) in by_type("types") {
        for status in Status::ALL {
            let count = counts[status.as_str()].as_f64().unwrap_or(0.0);
            tasks.push((
                format!("type=\"{}\",status=\"{status}\"", label(&name)),
                count,
            ));
        }
    }
    family(
        "taskmanager_tasks",
        "gauge",
        "Tasks by type and status.",
        tasks,
    );
    let health = by_type("queue");
    family(
        "taskmanager_oldest_pending_seconds",
        "gauge",
        "Age of the oldest runnable pending task, by type.",
        health
            .iter()
            .filter_map(|(name, h)| {
                h["oldest_pending_seconds"]
                    .as_f64()
                    .map(|v| (format!("type=\"{}\"", label(name)), v))
            })
            .collect(),
    );
    family(
        "taskmanager_expired_leases",
        "gauge",
        "Claimed tasks whose lease ran out, not yet recovered, by type.",
        health
            .iter()
            .map(|(name, h)| {
                (
                    format!("type=\"{}\"", label(name)),
                    h["expired_leases"].as_f64().unwrap_or(0.0),
                )
            })
            .collect(),
    );
    let mut finished = Vec::new();
    for (name, series) in by_type("throughput") {
        for (key, status) in [
            ("completed_per_minute", "completed"),
            ("failed_per_minute", "failed"),
        ] {
            let total: f64 = series[key]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).sum())
                .unwrap_or(0.0);
            finished.push((
                format!("type=\"{}\",status=\"{status}\"", label(&name)),
                total,
            ));
        }
    }
    family(
        "taskmanager_finished_last_hour",
        "gauge",
        "Tasks completed or failed for good in the last 60 minutes, by type.",
        finished,
    );
    let workers = stats["workers"].as_array().cloned().unwrap_or_default();
    family(
        "taskmanager_worker_holding",
        "gauge",
        "Tasks each worker seen in the last hour holds now.",
        workers
            .iter()
            .map(|w| {
                (
                    format!(
                        "worker=\"{}\"",
                        label(w["worker_id"].as_str().unwrap_or(""))
                    ),
                    w["holding"].as_f64().unwrap_or(0.0),
                )
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
        let stats = json!({
            "types": {"a\"b\\c\nd": {"pending": 2, "claimed": 1, "completed": 0, "failed": 0, "cancelled": 0}},
            "queue": {"a\"b\\c\nd": {"oldest_pending_seconds": 1.5, "expired_leases": 3}},
            "throughput": {"a\"b\\c\nd": {"completed_per_minute": [1, 2], "failed_per_minute": [0, 4]}},
            "workers": [{"worker_id": "w1", "holding": 1}],
        });
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
        assert_eq!(text.matches("# TYPE").count(), 5);
        assert!(!text.lines().any(|l| l.contains('\n')));
    }
}
