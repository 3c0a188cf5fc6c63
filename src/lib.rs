//! TaskManager: a durable task queue whose state lives in MySQL 8.0+ / MariaDB 10.6+.
//!
//! The Rust API is [`Client`]; the C ABI in [`ffi`] wraps it for C, PHP (FFI) and Python
//! (ctypes). See the README for the semantics and the configuration.

mod client;
pub mod config;
mod database;
pub mod dedupe;
mod error;
pub mod ffi;
pub mod json;
mod migrate;
mod pool;
pub mod queue;
mod random;
mod row;
mod sql;
mod type_cache;
pub mod types;
pub mod validate;

pub use client::Client;
pub use config::Config;
pub use error::{CODES, Code, CodeInfo, Error, Result};
pub use migrate::MigrationReport;
pub use queue::Finished;
pub use queue::claim::Recovery;
pub use queue::claim::{ClaimOptions, ClaimedTask, CompletedAndClaimed, SortBy, SortOrder};
pub use queue::enqueue::{BatchItem, EnqueueOptions, Enqueued};
pub use queue::finish::{
    CompleteItem, CompleteOutcome, FailOptions, Failed, Heartbeat, HeartbeatOptions,
};
pub use queue::lifecycle::Status;
pub use queue::prune::{PruneOptions, PruneReport};
pub use queue::read::{HistoryEntry, ListFilter, Task};
pub use queue::stats::{QueueHealth, Stats, StatusCounts, Throughput, WorkerSeen};
pub use types::{TaskType, TypeDefinition};

/// The library version, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
