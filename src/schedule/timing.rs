//! When a schedule's occurrences fall, and which of them a tick enqueues.
//!
//! Pure computation over instants in UTC (the database stores DATETIME(6) in UTC; its clock
//! says what "now" is). A cron expression is read in its schedule's time zone by `croner`,
//! which follows cron's rules across daylight-saving changes:
//! - a fixed-time job (one second, minute and hour, such as `30 2 * * *`) whose time does not
//!   exist that day (the clock jumps over it) runs once, at the first instant after the gap;
//!   one whose time exists twice (the clock goes back) runs once, at the first of the two;
//! - an interval job (`*/15 * * * *`, `0 * * * *`, any `*` or step in those fields) has no
//!   occurrence inside a gap and runs in both halves of a repeated hour.

use crate::error::{Error, Result};
use chrono::{NaiveDateTime, TimeDelta, TimeZone, Timelike};
use chrono_tz::Tz;
use croner::{Cron, Direction};
use serde_json::json;
use std::str::FromStr;

/// The most missed occurrences a `backfill` schedule enqueues after downtime: the latest ones;
/// older ones are dropped as `skip` drops them.
pub const MAX_BACKFILL: usize = 10_000;

/// A cron expression read in a time zone.
#[derive(Debug, Clone)]
pub(crate) struct Timing {
    cron: Cron,
    zone: Tz,
}

/// An invalid field of a schedule: `TM_INVALID_ARGUMENT`, its details naming the field.
pub(crate) fn bad_field(field: &str, message: String) -> Error {
    Error::invalid(message).with_details(json!({"field": field}))
}

impl Timing {
    /// Reads `cron` (five fields, six with seconds first, seven with a year last, or a
    /// nickname such as `@daily`) in the IANA time zone `timezone`.
    pub(crate) fn new(cron: &str, timezone: &str) -> Result<Timing> {
        let zone = Tz::from_str(timezone).map_err(|_| {
            bad_field(
                "timezone",
                format!(
                    "timezone '{timezone}' is not an IANA time zone name such as \
                     Europe/Prague, America/New_York or UTC"
                ),
            )
        })?;
        let parsed = Cron::from_str(cron).map_err(|e| {
            bad_field(
                "cron",
                format!(
                    "cron '{cron}' is not a cron expression ({e}): give five fields (minute \
                     hour day-of-month month day-of-week, e.g. \"0 3 * * *\"), six with seconds \
                     first, or a nickname such as @daily"
                ),
            )
        })?;
        Ok(Timing { cron: parsed, zone })
    }

    /// The first occurrence strictly after `instant`; `None` when there is none (an
    /// expression such as `0 0 30 2 *` never matches).
    pub(crate) fn next_after(&self, instant: NaiveDateTime) -> Option<NaiveDateTime> {
        self.search(instant, Direction::Forward, false)
    }

    /// The first occurrence at or after `instant`.
    fn at_or_after(&self, instant: NaiveDateTime) -> Option<NaiveDateTime> {
        self.search(instant, Direction::Forward, true)
    }

    /// The last occurrence at or before `instant`.
    fn at_or_before(&self, instant: NaiveDateTime) -> Option<NaiveDateTime> {
        self.search(instant, Direction::Backward, true)
    }

    /// The last occurrence strictly before `instant`.
    fn before(&self, instant: NaiveDateTime) -> Option<NaiveDateTime> {
        self.search(instant, Direction::Backward, false)
    }

    /// The nearest occurrence from `instant` in `direction`, `instant` itself included or not.
    /// Occurrences fall on whole seconds and a search starts from one: from a fraction of
    /// second N, the occurrence N lies behind (never ahead), so a backward search counts it
    /// and a forward one starts after it.
    fn search(
        &self,
        instant: NaiveDateTime,
        direction: Direction,
        inclusive: bool,
    ) -> Option<NaiveDateTime> {
        let whole = floor_second(instant);
        let local = self.zone.from_utc_datetime(&whole);
        let found = match direction {
            Direction::Forward => self
                .cron
                .find_next_occurrence(&local, inclusive && whole == instant),
            Direction::Backward => self
                .cron
                .find_previous_occurrence(&local, inclusive || whole != instant),
        };
        found.ok().map(|t| t.naive_utc())
    }
}

fn floor_second(instant: NaiveDateTime) -> NaiveDateTime {
    instant.with_nanosecond(0).unwrap_or(instant)
}

/// What happens to a schedule's missed occurrences (those a tick finds more than the grace
/// period old).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Misfire {
    /// None of them runs; the schedule goes on with its next occurrence (the default).
    Skip,
    /// The latest of them runs, once, unless an occurrence within the grace period runs.
    Once,
    /// Every one of them runs, oldest first, up to the latest [`MAX_BACKFILL`].
    Backfill,
}

impl Misfire {
    /// The word the database and the JSON hold.
    pub fn as_str(self) -> &'static str {
        match self {
            Misfire::Skip => "skip",
            Misfire::Once => "once",
            Misfire::Backfill => "backfill",
        }
    }

    /// The policy a word names.
    pub fn parse(text: &str) -> Option<Misfire> {
        [Misfire::Skip, Misfire::Once, Misfire::Backfill]
            .into_iter()
            .find(|m| m.as_str() == text)
    }
}

/// What one tick of one schedule does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// The occurrences to enqueue now, oldest first.
    pub due: Vec<NaiveDateTime>,
    /// The first and the last occurrence the misfire policy dropped, if any.
    pub missed: Option<(NaiveDateTime, NaiveDateTime)>,
    /// The schedule's next occurrence after this tick (still due when `due` was cut at the
    /// chunk size); `None` when the expression has no further occurrence.
    pub next: Option<NaiveDateTime>,
}

/// Which occurrences from `next_run_at` (the first not yet enqueued) up to `now` (the
/// database's clock) a tick enqueues: those within `grace` of `now` always, older ones as
/// `misfire` says; at most `chunk` of them, the rest left for the next tick.
pub(crate) fn plan(
    timing: &Timing,
    misfire: Misfire,
    grace: TimeDelta,
    next_run_at: NaiveDateTime,
    now: NaiveDateTime,
    chunk: usize,
) -> Plan {
    let latest = match timing.at_or_before(now) {
        Some(latest) if latest >= next_run_at && next_run_at <= now => latest,
        _ => {
            return Plan {
                due: Vec::new(),
                missed: None,
                next: Some(next_run_at),
            };
        }
    };
    let on_time_from = now - grace;
    // The oldest instant whose occurrence may still run.
    let keep_from = match misfire {
        Misfire::Skip => on_time_from,
        Misfire::Once => on_time_from.min(latest),
        Misfire::Backfill => backfill_start(timing, next_run_at, latest, chunk),
    };
    let start = if keep_from <= next_run_at {
        Some(next_run_at)
    } else {
        timing.at_or_after(keep_from)
    };
    let missed = match start {
        Some(start) if start > next_run_at => timing
            .before(start)
            .filter(|last| *last >= next_run_at)
            .map(|last| (next_run_at, last)),
        None => Some((next_run_at, latest)),
        _ => None,
    };
    let mut due = Vec::new();
    let mut cursor = start;
    while let Some(occurrence) = cursor {
        if occurrence > now || due.len() >= chunk {
            break;
        }
        due.push(occurrence);
        cursor = timing.next_after(occurrence);
    }
    Plan {
        due,
        missed,
        next: cursor,
    }
}

/// Where a backfill starts: at `next_run_at`, unless more than [`MAX_BACKFILL`] occurrences
/// are due, then at the [`MAX_BACKFILL`]-th latest. Walking a small backlog costs one chunk's
/// steps; only a backlog longer than a chunk walks back from `latest` (at most the cap).
fn backfill_start(
    timing: &Timing,
    next_run_at: NaiveDateTime,
    latest: NaiveDateTime,
    chunk: usize,
) -> NaiveDateTime {
    let mut cursor = Some(next_run_at);
    for _ in 0..chunk.min(MAX_BACKFILL) {
        match cursor {
            Some(o) if o < latest => cursor = timing.next_after(o),
            _ => return next_run_at,
        }
    }
    let mut oldest = latest;
    for _ in 1..MAX_BACKFILL {
        match timing.before(oldest) {
            Some(earlier) if earlier >= next_run_at => oldest = earlier,
            _ => return next_run_at,
        }
    }
    oldest
}

/// `text` (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, as the database renders its times) as an instant.
pub(crate) fn parse_instant(text: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.fZ").ok()
}

/// An instant as RFC 3339 UTC with whole seconds (occurrences fall on whole seconds).
pub(crate) fn format_instant(instant: NaiveDateTime) -> String {
    instant.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An instant in the form MySQL reads into a DATETIME(6).
pub(crate) fn sql_instant(instant: NaiveDateTime) -> String {
    instant.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    /// The next `n` occurrences after `from` (UTC), as UTC `YYYY-MM-DD HH:MM`.
    fn next(cron: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
        let timing = Timing::new(cron, zone).unwrap();
        let mut at = utc(from);
        (0..n)
            .map(|_| {
                at = timing.next_after(at).unwrap();
                at.format("%Y-%m-%d %H:%M").to_string()
            })
            .collect()
    }

    #[test]
    fn prague_spring_forward_runs_a_skipped_fixed_time_once_after_the_gap() {
        // 2026-03-29 02:00 CET becomes 03:00 CEST (01:00 UTC): 02:30 does not exist that day.
        assert_eq!(
            next("30 2 * * *", "Europe/Prague", "2026-03-27 12:00", 3),
            ["2026-03-28 01:30", "2026-03-29 01:00", "2026-03-30 00:30"]
        );
        // An interval job has nothing in the gap: 01:30 CET, then 03:00 CEST.
        assert_eq!(
            next("*/30 * * * *", "Europe/Prague", "2026-03-29 00:15", 3),
            ["2026-03-29 00:30", "2026-03-29 01:00", "2026-03-29 01:30"]
        );
    }

    #[test]
    fn prague_fall_back_runs_a_fixed_time_once_and_an_interval_in_both_halves() {
        // 2026-10-25 03:00 CEST becomes 02:00 CET (01:00 UTC): 02:00-02:59 happens twice.
        assert_eq!(
            next("30 2 * * *", "Europe/Prague", "2026-10-24 12:00", 2),
            ["2026-10-25 00:30", "2026-10-26 01:30"]
        );
        assert_eq!(
            next("0 * * * *", "Europe/Prague", "2026-10-24 22:30", 4),
            [
                "2026-10-24 23:00",
                "2026-10-25 00:00",
                "2026-10-25 01:00",
                "2026-10-25 02:00"
            ]
        );
    }

    #[test]
    fn new_york_spring_forward_and_fall_back() {
        // 2026-03-08 02:00 EST becomes 03:00 EDT (07:00 UTC).
        assert_eq!(
            next("30 2 * * *", "America/New_York", "2026-03-06 12:00", 3),
            ["2026-03-07 07:30", "2026-03-08 07:00", "2026-03-09 06:30"]
        );
        // 2026-11-01 02:00 EDT becomes 01:00 EST (06:00 UTC): 01:00-01:59 happens twice.
        assert_eq!(
            next("30 1 * * *", "America/New_York", "2026-10-31 12:00", 2),
            ["2026-11-01 05:30", "2026-11-02 06:30"]
        );
        assert_eq!(
            next("*/30 * * * *", "America/New_York", "2026-11-01 04:45", 5),
            [
                "2026-11-01 05:00",
                "2026-11-01 05:30",
                "2026-11-01 06:00",
                "2026-11-01 06:30",
                "2026-11-01 07:00"
            ]
        );
    }

    #[test]
    fn seconds_nicknames_and_bad_input() {
        assert_eq!(
            next("30 0 3 * * *", "UTC", "2026-01-01 00:00", 1),
            ["2026-01-01 03:00"]
        );
        assert_eq!(
            next("@daily", "UTC", "2026-01-01 00:00", 1),
            ["2026-01-02 00:00"]
        );
        let field = |e: Error| e.details().unwrap()["field"].as_str().unwrap().to_string();
        assert_eq!(field(Timing::new("61 * * * *", "UTC").unwrap_err()), "cron");
        assert_eq!(field(Timing::new("* * *", "UTC").unwrap_err()), "cron");
        assert_eq!(
            field(Timing::new("0 3 * * *", "Mars/Olympus").unwrap_err()),
            "timezone"
        );
        assert_eq!(Misfire::parse("sometimes"), None);
    }

    fn plan_of(misfire: Misfire, next_run_at: &str, now: &str, chunk: usize) -> Plan {
        let timing = Timing::new("0 * * * *", "UTC").unwrap();
        let grace = TimeDelta::seconds(300);
        plan(&timing, misfire, grace, utc(next_run_at), utc(now), chunk)
    }

    #[test]
    fn misfire_policies_after_downtime() {
        // On time: the occurrence of 10:00 found at 10:04 runs under every policy.
        for misfire in [Misfire::Skip, Misfire::Once, Misfire::Backfill] {
            let p = plan_of(misfire, "2026-01-01 10:00", "2026-01-01 10:04", 100);
            assert_eq!(p.due, [utc("2026-01-01 10:00")], "{misfire:?}");
            assert_eq!((p.missed, p.next), (None, Some(utc("2026-01-01 11:00"))));
        }
        // Down from 10:00 to 13:30: 10:00 to 13:00 were missed.
        let skip = plan_of(Misfire::Skip, "2026-01-01 10:00", "2026-01-01 13:30", 100);
        assert!(skip.due.is_empty());
        let missed = Some((utc("2026-01-01 10:00"), utc("2026-01-01 13:00")));
        assert_eq!(
            (skip.missed, skip.next),
            (missed, Some(utc("2026-01-01 14:00")))
        );
        let once = plan_of(Misfire::Once, "2026-01-01 10:00", "2026-01-01 13:30", 100);
        assert_eq!(once.due, [utc("2026-01-01 13:00")]);
        let missed = Some((utc("2026-01-01 10:00"), utc("2026-01-01 12:00")));
        assert_eq!(
            (once.missed, once.next),
            (missed, Some(utc("2026-01-01 14:00")))
        );
        let all = plan_of(
            Misfire::Backfill,
            "2026-01-01 10:00",
            "2026-01-01 13:30",
            100,
        );
        assert_eq!(all.due.len(), 4);
        assert_eq!(
            (all.missed, all.next),
            (None, Some(utc("2026-01-01 14:00")))
        );
        // Cut at the chunk: the rest stays due.
        let cut = plan_of(Misfire::Backfill, "2026-01-01 10:00", "2026-01-01 13:30", 3);
        assert_eq!(cut.due.len(), 3);
        assert_eq!(cut.next, Some(utc("2026-01-01 13:00")));
    }

    #[test]
    fn backfill_keeps_the_latest_occurrences_up_to_the_cap() {
        // Hourly for about three years: more than the cap.
        let p = plan_of(
            Misfire::Backfill,
            "2023-01-01 00:00",
            "2026-01-01 00:30",
            100,
        );
        let oldest = utc("2026-01-01 00:00") - TimeDelta::hours(MAX_BACKFILL as i64 - 1);
        assert_eq!(p.due.first(), Some(&oldest));
        assert_eq!(p.due.len(), 100);
        let (first, last) = p.missed.unwrap();
        assert_eq!(
            (first, last),
            (utc("2023-01-01 00:00"), oldest - TimeDelta::hours(1))
        );
    }
}
