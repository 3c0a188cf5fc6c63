//! Stats on the embedded engine.

use super::Store;
use crate::error::Result;
use crate::queue::stats::Stats;

pub(crate) fn stats(store: &Store) -> Result<Stats> {
    let _ = store;
    Err(super::not_yet("stats"))
}
