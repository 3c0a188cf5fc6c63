//! Unique windows: an enqueue of one task whose dedupe key blocks new tasks only for a period
//! (`unique_for_seconds`), measured from the holder's `created_at` by the database's clock.
//!
//! The key is held the usual way (`dedupe_lock = key`, the UNIQUE index decides), so a window
//! needs no column of its own: the enqueue that finds the holder's window over releases it
//! (sets the old row's `dedupe_lock` to NULL) and inserts again, in one transaction. The first
//! INSERT's duplicate check has already locked the holder's index entry, so concurrent
//! identical enqueues queue behind the one that releases it and then find its new task: no
//! read-then-insert race, no gap lock taken before an insert.

use super::*;
use crate::sql;

/// Longest window: a year.
pub const MAX_WINDOW_SECONDS: u32 = 31_536_000;

/// Result-set positions of a windowed enqueue.
pub struct WindowedScript {
    pub script: Script,
    /// The INSERT that creates the task when no row holds the key.
    pub insert: usize,
    /// The INSERT that creates it after the holder's window was over and the key released.
    pub insert_after_release: usize,
}

/// One task's enqueue with a unique window of `window_seconds`: the plain enqueue's INSERT
/// (a duplicate locks the holder and becomes its id); then, when the holder was created
/// `window_seconds` or more ago, its key is released and the task inserted again. Each INSERT
/// writes its `created` history row only when it created the task.
pub fn enqueue_windowed(
    task: &NewTask<'_>,
    version: &str,
    token: &str,
    history_on: bool,
    window_seconds: u32,
) -> WindowedScript {
    let values = task.sql(token);
    let version = sql::text(version);
    let steps = enqueue_one_steps(&values, &version, "LAST_INSERT_ID()", "ROW_COUNT() = 1");
    let mut script = Script::new(true);
    let insert = script.push(steps.insert);
    if history_on {
        script.push(steps.history.clone());
    }
    script.push(format!(
        "UPDATE tasks {BY_KEY} SET dedupe_lock = NULL \
         WHERE dedupe_lock = {} AND created_at <= NOW(6) - INTERVAL {} SECOND",
        values.key,
        sql::int(window_seconds.into())
    ));
    // Runs only when the UPDATE just released the key (ROW_COUNT() is the UPDATE's).
    let insert_after_release = script.push(format!(
        "{} FROM task_types \
         WHERE {} AND ROW_COUNT() = 1 \
         ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id)",
        insert_select(&values),
        open_type(&values.type_id, &version)
    ));
    if history_on {
        script.push(steps.history);
    }
    WindowedScript {
        script: script.finish(),
        insert,
        insert_after_release,
    }
}
