//! Reads on the embedded engine: one task, a page of tasks, a task's history.

use super::Store;
use crate::error::Result;
use crate::queue::read::{HistoryEntry, ListFilter, Task};

pub(crate) fn get_task(store: &Store, id: i64) -> Result<Task> {
    let _ = (store, id);
    Err(super::not_yet("get_task"))
}

pub(crate) fn list_tasks(store: &Store, filter: &ListFilter) -> Result<Vec<Task>> {
    let _ = (store, filter);
    Err(super::not_yet("list_tasks"))
}

pub(crate) fn task_history(store: &Store, id: i64) -> Result<Vec<HistoryEntry>> {
    let _ = (store, id);
    Err(super::not_yet("task_history"))
}
