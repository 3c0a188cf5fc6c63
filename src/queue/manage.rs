//! Operator actions: cancel, and manual retry of dead tasks. Each locks the task, checks that
//! its status allows the action, and changes it with a history row, in one transaction. The
//! bulk actions (`queue::bulk`) run these same steps task by task.

use crate::Config;
use crate::database::Database;
use crate::error::{Code, Error, Result};
use crate::queue::Finished;
use crate::queue::engine::Engine;
use crate::queue::input::check_task_id;
use crate::queue::lifecycle::{CANCEL, RETRY, Status, Transition};

/// An operator action on one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Cancel,
    Retry,
}

/// What an action does to a task in a given status.
pub(crate) enum Verdict {
    /// The status allows it: the task changes.
    Change,
    /// The task is already where the action leads (a cancelled task, for cancel): a no-op
    /// that succeeds, so that repeating a cancel is safe.
    AlreadyDone,
    /// The status does not allow it: `Conflict`, with the message the caller sees.
    Refused(Error),
}

impl Action {
    pub(crate) fn transition(self) -> &'static Transition {
        match self {
            Action::Cancel => &CANCEL,
            Action::Retry => &RETRY,
        }
    }

    /// The status in which the action is a no-op. Retry has none: a pending task was never
    /// dead, and answering "done" would hide a mistaken retry.
    fn no_op_in(self) -> Option<Status> {
        match self {
            Action::Cancel => Some(Status::Cancelled),
            Action::Retry => None,
        }
    }

    /// The verdict for task `id` whose status column holds `current`.
    pub(crate) fn verdict(self, id: i64, current: &str) -> Verdict {
        let transition = self.transition();
        let status = Status::parse(current);
        if status.is_some_and(|s| transition.from.contains(&s)) {
            Verdict::Change
        } else if status.is_some() && status == self.no_op_in() {
            Verdict::AlreadyDone
        } else {
            let allowed: Vec<&str> = transition.from.iter().map(|s| s.as_str()).collect();
            Verdict::Refused(Error::new(
                Code::Conflict,
                format!(
                    "task {id} is {current}: {} needs a {} task",
                    transition.name,
                    allowed.join(" or ")
                ),
            ))
        }
    }

    /// Whether task `id`, whose status column holds `current`, changes (`Ok(true)`), is
    /// already where the action leads (`Ok(false)`), or may not (`Err`, the conflict).
    pub(crate) fn judge(self, id: i64, current: &str) -> Result<bool> {
        match self.verdict(id, current) {
            Verdict::Change => Ok(true),
            Verdict::AlreadyDone => Ok(false),
            Verdict::Refused(e) => Err(e),
        }
    }

    /// The answer for task `id` found in `current`, which `changed` or not.
    pub(crate) fn answer(self, id: i64, current: &str, changed: bool) -> Finished {
        Finished {
            id,
            // A repeat found the task already in `no_op_in`, a status it could read.
            status: Status::parse(current)
                .filter(|_| !changed)
                .unwrap_or(self.transition().to),
            repeated: !changed,
        }
    }

    /// Runs the action on one task: [`cancel`] or [`retry`].
    pub(crate) fn run(
        self,
        db: &Database,
        config: &Config,
        id: i64,
        reason: Option<&str>,
    ) -> Result<Finished> {
        match self {
            Action::Cancel => cancel(db, config, id, reason),
            Action::Retry => retry(db, config, id),
        }
    }
}

/// Cancels a pending or claimed task; it will not run (again). Cancelling a cancelled task is
/// a no-op; a finished task cannot be cancelled.
pub(crate) fn cancel(
    db: &Database,
    config: &Config,
    id: i64,
    reason: Option<&str>,
) -> Result<Finished> {
    check_task_id(id)?;
    apply(db, config, Action::Cancel, id, reason)
}

/// Puts a failed or cancelled task back to pending with a fresh set of attempts.
pub(crate) fn retry(db: &Database, config: &Config, id: i64) -> Result<Finished> {
    check_task_id(id)?;
    apply(db, config, Action::Retry, id, None).map_err(|e| {
        if e.server_code() == Some(1062) {
            dedupe_conflict(id)
        } else {
            e
        }
    })
}

/// A retry refused because another active task took the retried task's dedupe key.
pub(crate) fn dedupe_conflict(id: i64) -> Error {
    Error::new(
        Code::Conflict,
        format!("task {id} cannot be retried: another active task holds its dedupe key"),
    )
}

/// Locks the task; applies the action's transition when its status allows it, does nothing
/// when it is already done, and is a conflict otherwise.
fn apply(
    db: &Database,
    config: &Config,
    action: Action,
    id: i64,
    reason: Option<&str>,
) -> Result<Finished> {
    let transition = action.transition();
    db.run_once(|conn| {
        let (current, changed) = Engine::of(db).manual(
            db,
            conn,
            id,
            transition,
            reason,
            config.enable_task_history,
            |current| action.judge(id, current),
        )?;
        Ok(action.answer(id, &current, changed))
    })
}
