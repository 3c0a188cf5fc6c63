//! Cancel or retry every task a filter selects, or a dry run of it. Each task goes through
//! the same guarded step as a single cancel or retry (`queue::manage`): its own transaction,
//! the same status rules, the same history row. Tasks are selected in pages by id, newest
//! first, up to a limit, so a call's work is bounded and a long one can be continued.

use crate::Config;
use crate::database::Database;
use crate::error::{Code, Error, Result};
use crate::queue::engine::Engine;
use crate::queue::lifecycle::Read;
use crate::queue::manage::{Action, Verdict};
use crate::queue::read::Selection;
use mysql::{Params, Value as SqlValue};
use serde::{Deserialize, Serialize, Serializer};

/// Most tasks one bulk call handles (its `limit`, and the length of `ids`).
pub const MAX_BULK: u32 = 10_000;

/// Tasks selected and changed per page: small enough that the selection is a short read.
const PAGE: u32 = 500;

/// Which tasks a bulk cancel or retry selects: the fields of [`crate::ListFilter`] that select
/// (not those that page), plus explicit ids. Given fields must all hold. At least one of
/// `ids`, `type`, `status`, `worker_id` and `text` is required: an action on every task is
/// refused, as a mistake is more likely than the wish.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkFilter {
    /// Only tasks of this type (name).
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    /// Only tasks in this status.
    pub status: Option<String>,
    /// Only these tasks (1..=10000 ids). An id the selection does not return is reported in
    /// `skipped` as `TM_NOT_FOUND`.
    pub ids: Option<Vec<i64>>,
    /// Only tasks with an id below this one (to continue after `next_before_id`).
    pub before_id: Option<i64>,
    /// Only tasks created at least this many seconds ago.
    pub older_than_seconds: Option<u64>,
    /// Only tasks created at most this many seconds ago.
    pub newer_than_seconds: Option<u64>,
    /// Only tasks claimed (now or last) by this worker id.
    pub worker_id: Option<String>,
    /// Only tasks whose params or error message contain this text (literal, case-insensitive).
    pub text: Option<String>,
    /// Only tasks whose params contain this text (literal, case-insensitive).
    pub params_text: Option<String>,
    /// Only tasks whose error message contains this text (literal, case-insensitive).
    pub error_text: Option<String>,
}

/// How a bulk call runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkOptions {
    /// Report what would happen and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Cancel only: why, recorded as the tasks' error message and in their history.
    pub reason: Option<String>,
    /// At most this many tasks selected (1..=10000, default 1000).
    pub limit: Option<u32>,
}

/// Which bulk action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkAction {
    /// Cancel pending or claimed tasks.
    Cancel,
    /// Send failed or cancelled tasks back to pending.
    Retry,
}

/// What a bulk call did (or, in a dry run, would do). `matched` is the sum of the three lists.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BulkReport {
    /// The action asked for.
    pub action: BulkAction,
    /// True when nothing was changed, only reported.
    pub dry_run: bool,
    /// Tasks selected (at most the limit), and the ids given that the selection lacks.
    pub matched: u64,
    /// Tasks changed (dry run: that would change), newest first.
    pub changed: Vec<i64>,
    /// Tasks already where the action leads (cancel of a cancelled task): left as they are,
    /// as a single cancel leaves them.
    pub unchanged: Vec<i64>,
    /// Tasks the action was refused for, each with the error a single call would give.
    pub skipped: Vec<Skipped>,
    /// Set when the limit stopped the selection and more tasks match: pass it as the filter's
    /// `before_id` to go on.
    pub next_before_id: Option<i64>,
}

/// A task a bulk action left alone, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Skipped {
    /// The task's id.
    pub id: i64,
    /// `TM_CONFLICT` (its status does not allow the action, or a retry would duplicate an
    /// active task's dedupe key) or `TM_NOT_FOUND` (gone, or an id the filter does not select).
    #[serde(serialize_with = "code_name")]
    pub code: Code,
    /// What the single call would have said.
    pub message: String,
}

fn code_name<S: Serializer>(code: &Code, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(code.name())
}

impl From<BulkAction> for Action {
    fn from(action: BulkAction) -> Action {
        match action {
            BulkAction::Cancel => Action::Cancel,
            BulkAction::Retry => Action::Retry,
        }
    }
}

/// Everything about a bulk call that can be refused without the database: the limit, and
/// `(conditions, values)` of the selection.
fn check(
    action: BulkAction,
    filter: &BulkFilter,
    options: &BulkOptions,
) -> Result<(u32, String, Vec<SqlValue>)> {
    let limit = options.limit.unwrap_or(1000);
    if limit == 0 || limit > MAX_BULK {
        return Err(Error::invalid(format!(
            "limit must be from 1 to {MAX_BULK}, got {limit}"
        )));
    }
    if action == BulkAction::Retry && options.reason.is_some() {
        return Err(Error::invalid(
            "reason applies to cancel only: a retry records no message",
        ));
    }
    if let Some(ids) = &filter.ids {
        if ids.len() > MAX_BULK as usize {
            return Err(Error::invalid(format!(
                "ids must list at most {MAX_BULK} task ids, got {}",
                ids.len()
            )));
        }
    }
    let f = filter;
    if f.ids.is_none()
        && f.type_name.is_none()
        && f.status.is_none()
        && f.worker_id.is_none()
        && f.text.is_none()
    {
        return Err(Error::invalid(
            "give task ids, or select with at least one of type, status, worker_id and text \
             (an action on every task is refused)",
        ));
    }
    let (conditions, values) = Selection {
        type_name: f.type_name.as_deref(),
        status: f.status.as_deref(),
        ids: f.ids.as_deref(),
        before_id: f.before_id,
        older_than_seconds: f.older_than_seconds,
        newer_than_seconds: f.newer_than_seconds,
        worker_id: f.worker_id.as_deref(),
        text: f.text.as_deref(),
        params_text: f.params_text.as_deref(),
        error_text: f.error_text.as_deref(),
    }
    .conditions()?;
    Ok((limit, conditions, values))
}

/// Runs `action` on every task `filter` selects, up to the limit, telling `progress` the
/// report so far after each page.
pub(crate) fn run(
    db: &Database,
    config: &Config,
    action: BulkAction,
    filter: &BulkFilter,
    options: &BulkOptions,
    progress: &mut dyn FnMut(&BulkReport),
) -> Result<BulkReport> {
    let (limit, conditions, values) = check(action, filter, options)?;
    let mut report = BulkReport {
        action,
        dry_run: options.dry_run,
        matched: 0,
        changed: Vec::new(),
        unchanged: Vec::new(),
        skipped: Vec::new(),
        next_before_id: None,
    };
    let mut selected = Vec::new();
    let mut below: Option<i64> = None;
    loop {
        let left = limit - selected.len() as u32;
        let want = left.min(PAGE);
        // One row more than wanted tells whether the selection goes on.
        let page = select_page(db, &conditions, &values, below, want + 1)?;
        let more = page.len() > want as usize;
        for (id, status) in page.into_iter().take(want as usize) {
            selected.push(id);
            below = Some(id);
            apply(db, config, action, options, id, &status, &mut report)
                .map_err(|e| stopped(action, &report, e))?;
        }
        report.matched = selected.len() as u64;
        progress(&report);
        if !more {
            break;
        }
        if selected.len() as u32 == limit {
            report.next_before_id = below;
            break;
        }
    }
    if let Some(ids) = &filter.ids {
        not_selected(
            ids,
            &selected,
            below,
            report.next_before_id.is_some(),
            filter,
            &mut report,
        );
    }
    report.matched = (report.changed.len() + report.unchanged.len() + report.skipped.len()) as u64;
    Ok(report)
}

/// Up to `rows` selected tasks below id `below`, newest first, with their status.
fn select_page(
    db: &Database,
    conditions: &str,
    values: &[SqlValue],
    below: Option<i64>,
    rows: u32,
) -> Result<Vec<(i64, String)>> {
    let mut values = values.to_vec();
    // The page starts below `below`: the first page below every id.
    values.push(below.unwrap_or(i64::MAX).into());
    values.push(rows.into());
    let read = Read::Selected { conditions };
    db.run(|conn, _| {
        let params = Params::Positional(values.clone());
        Engine::of(db).read(conn, read, params, "a selected task", |c| {
            Ok((c.id("task")?, c.get("status")?))
        })
    })
}

/// One task: in a dry run the verdict its status gives, else the single action's step. A
/// refusal or a task gone since the selection is recorded; any other error stops the call.
fn apply(
    db: &Database,
    config: &Config,
    action: BulkAction,
    options: &BulkOptions,
    id: i64,
    status: &str,
    report: &mut BulkReport,
) -> Result<()> {
    let action = Action::from(action);
    let outcome = if options.dry_run {
        match action.verdict(id, status) {
            Verdict::Change => Ok(false),
            Verdict::AlreadyDone => Ok(true),
            Verdict::Refused(e) => Err(e),
        }
    } else {
        action
            .run(db, config, id, options.reason.as_deref())
            .map(|finished| finished.repeated)
    };
    match outcome {
        Ok(false) => report.changed.push(id),
        Ok(true) => report.unchanged.push(id),
        Err(e) if matches!(e.code(), Code::Conflict | Code::NotFound) => {
            report.skipped.push(Skipped {
                id,
                code: e.code(),
                message: e.message().to_string(),
            })
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Reports the given ids that the selection did not return. When the limit stopped it, only
/// ids at or above the last one selected are known to be missing; the rest come next time.
fn not_selected(
    ids: &[i64],
    selected: &[i64],
    last: Option<i64>,
    stopped_by_limit: bool,
    filter: &BulkFilter,
    report: &mut BulkReport,
) {
    let only_ids = filter.type_name.is_none()
        && filter.status.is_none()
        && filter.worker_id.is_none()
        && filter.text.is_none()
        && filter.before_id.is_none()
        && filter.older_than_seconds.is_none()
        && filter.newer_than_seconds.is_none();
    let mut missing: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !selected.contains(id))
        .filter(|id| !stopped_by_limit || last.is_none_or(|last| *id > last))
        .collect();
    missing.sort_unstable_by(|a, b| b.cmp(a));
    missing.dedup();
    for id in missing {
        report.skipped.push(Skipped {
            id,
            code: Code::NotFound,
            message: if only_ids {
                format!("task {id} does not exist")
            } else {
                format!("task {id} does not exist or the filter does not select it")
            },
        });
    }
}

/// An error that stopped a bulk call part way: the same code, and what was already done.
fn stopped(action: BulkAction, report: &BulkReport, e: Error) -> Error {
    let verb = match action {
        BulkAction::Cancel => "cancel",
        BulkAction::Retry => "retry",
    };
    let mut stopped = Error::new(
        e.code(),
        format!(
            "{} (the bulk {verb} stopped here after changing {} task(s); the others are as \
             they were: run it again to go on)",
            e.message(),
            report.changed.len()
        ),
    );
    if let Some(details) = e.details() {
        stopped = stopped.with_details(details.clone());
    }
    stopped
}
