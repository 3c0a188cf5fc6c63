//! Operator steps on the embedded engine: cancel, retry, prune.

use super::Store;
use crate::Config;
use crate::error::Result;
use crate::queue::Finished;
use crate::queue::prune::{PruneOptions, PruneReport};

pub(crate) fn cancel(
    store: &Store,
    config: &Config,
    id: i64,
    reason: Option<&str>,
) -> Result<Finished> {
    let _ = (store, config, id, reason);
    Err(super::not_yet("cancel"))
}

pub(crate) fn retry(store: &Store, config: &Config, id: i64) -> Result<Finished> {
    let _ = (store, config, id);
    Err(super::not_yet("retry"))
}

pub(crate) fn prune(
    store: &Store,
    options: &PruneOptions,
    progress: &mut dyn FnMut(&PruneReport),
) -> Result<PruneReport> {
    let _ = (store, options, progress);
    Err(super::not_yet("prune"))
}
