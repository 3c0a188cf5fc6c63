//! `taskmanager type pause|resume|limits`: flow control of a type, and how it shows in
//! `type show`, `type list` and `stats`.

use crate::LimitsArgs;
use crate::output::{cell, table};
use serde_json::{Map, Value, json};
use taskmanager::{Client, Code, Error, PauseOptions, Result, Stats, TaskType, TypeLimits};

/// `--max-running N|none`: a number, or `none` to remove the limit.
#[derive(Clone, Copy)]
pub struct MaxRunning(Option<u32>);

pub fn max_running(text: &str) -> std::result::Result<MaxRunning, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(MaxRunning(None));
    }
    text.parse()
        .map(|n| MaxRunning(Some(n)))
        .map_err(|_| format!("'{text}' is not a number of tasks or `none`"))
}

/// `--rate N/SECONDS`: N starts per window, the window in seconds or with a unit (`100/60`,
/// `10/1s`, `5000/1h`).
#[derive(Clone, Copy)]
pub struct Rate {
    limit: u32,
    per_seconds: u64,
}

pub fn rate(text: &str) -> std::result::Result<Rate, String> {
    let (limit, window) = text.split_once('/').ok_or_else(|| {
        format!("'{text}' is not a rate such as 100/60 (tasks per seconds) or 5000/1h")
    })?;
    let limit = limit
        .trim()
        .parse()
        .map_err(|_| format!("'{limit}' is not a number of tasks"))?;
    let per_seconds = crate::settings::seconds(window)?;
    if per_seconds > u64::from(u32::MAX) {
        return Err(format!("the window '{window}' is too long"));
    }
    Ok(Rate { limit, per_seconds })
}

pub fn pause(client: &Client, name: &str, until: Option<String>) -> Result<TaskType> {
    let options: PauseOptions = serde_json::from_value(json!({ "until": until }))
        .map_err(|e| Error::new(Code::InvalidArgument, e.to_string()))?;
    client.pause_type(name, &options)
}

/// Sets what the flags name and keeps the rest; without flags it only shows the type.
/// `--burst` alone changes the burst of the current rate.
pub fn limits(client: &Client, args: LimitsArgs) -> Result<TaskType> {
    let mut limits = Map::new();
    if let Some(MaxRunning(n)) = args.max_running {
        limits.insert("max_running".into(), json!(n));
    }
    if args.no_rate {
        limits.insert("rate".into(), Value::Null);
    } else if let Some(rate) = args.rate {
        limits.insert(
            "rate".into(),
            json!({"limit": rate.limit, "per_seconds": rate.per_seconds, "burst": args.burst.unwrap_or(0)}),
        );
    } else if let Some(burst) = args.burst {
        let current = client.get_type(&args.name)?.rate.ok_or_else(|| {
            Error::new(
                Code::InvalidArgument,
                format!(
                    "--burst needs --rate: type '{}' has no rate limit",
                    args.name
                ),
            )
        })?;
        limits.insert(
            "rate".into(),
            json!({"limit": current.limit, "per_seconds": current.per_seconds, "burst": burst}),
        );
    }
    if limits.is_empty() {
        return client.get_type(&args.name);
    }
    let limits: TypeLimits = serde_json::from_value(Value::Object(limits))
        .map_err(|e| Error::new(Code::InvalidArgument, e.to_string()))?;
    client.set_type_limits(&args.name, &limits)
}

/// A type's pause and limits in words: "paused until …, max 5 running, 10 per 60 s + 2 burst";
/// empty when it has none.
pub fn words(t: &TaskType) -> String {
    let mut words = Vec::new();
    if t.paused {
        words.push(match &t.paused_until {
            Some(until) => format!("paused until {until}"),
            None => "paused".into(),
        });
    }
    if let Some(n) = t.max_running {
        words.push(format!("max {n} running"));
    }
    if let Some(rate) = &t.rate {
        let burst = if rate.burst > 0 {
            format!(" + {} burst", rate.burst)
        } else {
            String::new()
        };
        words.push(format!("{} per {} s{burst}", rate.limit, rate.per_seconds));
    }
    words.join(", ")
}

/// The rows `type show` adds for flow control.
pub fn rows(t: &TaskType) -> Vec<Vec<String>> {
    vec![
        vec![
            "paused".into(),
            match (&t.paused, &t.paused_until) {
                (false, _) => "no".into(),
                (true, None) => "yes, until resumed".into(),
                (true, Some(until)) => format!("yes, until {until}"),
            },
        ],
        vec![
            "max running".into(),
            t.max_running.map_or("none".into(), |n| n.to_string()),
        ],
        vec![
            "rate".into(),
            t.rate.as_ref().map_or("none".into(), |r| {
                format!("{} per {} s, burst {}", r.limit, r.per_seconds, r.burst)
            }),
        ],
    ]
}

/// The stats' `flow` object as a table: every paused or limited type, what holds a lease and
/// what started in the rate's window now.
pub fn show_stats(stats: &Stats) {
    let value = serde_json::to_value(stats).unwrap_or_default();
    let Some(flow) = value.get("flow").and_then(Value::as_object) else {
        return;
    };
    if flow.is_empty() {
        return;
    }
    let rows = flow
        .iter()
        .map(|(name, f)| {
            let paused = match (f["paused"].as_bool(), f["paused_until"].as_str()) {
                (Some(true), Some(until)) => format!("until {until}"),
                (Some(true), None) => "yes".into(),
                _ => "no".into(),
            };
            let rate = match f["rate"].as_object() {
                Some(r) => format!(
                    "{} / {} per {} s",
                    cell(&f["started_in_window"]),
                    r["limit"].as_u64().unwrap_or(0) + r["burst"].as_u64().unwrap_or(0),
                    cell(&r["per_seconds"])
                ),
                None => String::new(),
            };
            vec![
                name.clone(),
                paused,
                cell(&f["running"]),
                cell(&f["max_running"]),
                rate,
            ]
        })
        .collect();
    table(
        &[
            "type",
            "paused",
            "running",
            "max running",
            "started in window",
        ],
        rows,
    );
}
