//! TaskManager: a durable task queue whose state lives in MySQL 8.0+ / MariaDB 10.6+.
//!
//! The Rust API is [`Client`]; the C ABI in [`ffi`] wraps it for C, PHP (FFI) and Python
//! (ctypes). See the README for the semantics and the configuration.
//!
//! A task's life, from a producer's enqueue to a worker's complete:
//!
//! ```
//! # // Runs against the test server, as the integration tests do (tests/common/mod.rs):
//! # // TASKMANAGER_TEST_HOST / _PORT / _USER / _PASS, by default the `taskmanager_test`
//! # // account on 127.0.0.1:3306, in a database of its own that it drops at the end.
//! # use mysql::prelude::Queryable;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let var = |k: &str, d: &str| std::env::var(format!("TASKMANAGER_TEST_{k}")).unwrap_or(d.into());
//! # let (host, port) = (var("HOST", "127.0.0.1"), var("PORT", "3306").parse::<u16>()?);
//! # let (user, pass) = (var("USER", "taskmanager_test"), var("PASS", ""));
//! # let name = format!("tm_doc_{}", std::process::id());
//! # let mut admin = mysql::Conn::new(mysql::OptsBuilder::new().ip_or_hostname(Some(&host))
//! #     .tcp_port(port).user(Some(&user)).pass(Some(&pass)).prefer_socket(false))?;
//! # admin.query_drop(format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))?;
//! # let settings = serde_json::json!({"db_host": host, "db_port": port, "db_user": user,
//! #     "db_pass": pass, "db_name": name}).to_string();
//! use serde_json::json;
//! use taskmanager::{ClaimOptions, Client, EnqueueOptions, Status, TypeDefinition};
//!
//! // `settings` is JSON such as {"db_host": "127.0.0.1", "db_name": "app", ...}.
//! let client = Client::open_json(Some(&settings))?;
//! client.migrate()?;
//! let email: TypeDefinition = serde_json::from_value(json!({
//!     "name": "email.send",
//!     "version": "1",
//!     "param_schema": {"type": "object", "required": ["to"]},
//! }))?;
//! client.register_type(&email)?;
//!
//! // A producer enqueues; the same params again are the same task (deduplicated).
//! let params = json!({"to": "ada@example.com"});
//! let queued = client.enqueue("email.send", &params, &EnqueueOptions::default())?;
//! assert_eq!(queued.status, Status::Pending);
//! assert!(client.enqueue("email.send", &params, &EnqueueOptions::default())?.deduplicated);
//!
//! // A worker claims it under a lease, does the work and completes it with a result.
//! let task = client.claim("worker-1", &ClaimOptions::default())?.remove(0);
//! assert_eq!((task.id, task.params["to"].as_str()), (queued.id, Some("ada@example.com")));
//! let done = client.complete(task.id, &task.lease_token, &json!({"sent": true}))?;
//! assert_eq!(done.status, Status::Completed);
//!
//! assert_eq!(client.get_task(task.id)?.result, json!({"sent": true}));
//! assert_eq!(client.stats()?.types["email.send"].get(Status::Completed), 1);
//! # admin.query_drop(format!("DROP DATABASE {name}"))?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod client;
mod config;
mod database;
mod dedupe;
mod embedded;
mod error;
pub mod ffi;
mod flow;
mod json;
mod migrate;
mod pool;
mod queue;
mod random;
mod row;
mod schedule;
mod sql;
mod type_cache;
mod types;
mod validate;

pub use client::Client;
pub use config::{CONNECTION_KEYS, Config, Connection, FileSettings, Secret, Synchronous};
pub use dedupe::{DedupeScope, compute_key};
pub use error::{CODES, Code, CodeInfo, Error, Result};
pub use flow::{FlowHealth, PauseOptions, RateLimit, TypeLimits};
pub use migrate::MigrationReport;
pub use queue::Finished;
pub use queue::bulk::{BulkAction, BulkFilter, BulkOptions, BulkReport, MAX_BULK, Skipped};
pub use queue::claim::Recovery;
pub use queue::claim::{
    ClaimOptions, ClaimReport, ClaimedTask, CompletedAndClaimed, SortBy, SortOrder,
};
pub use queue::enqueue::{BatchItem, EnqueueOptions, Enqueued};
pub use queue::finish::{
    CompleteItem, CompleteOutcome, FailOptions, Failed, Heartbeat, HeartbeatOptions,
};
pub use queue::in_transaction::EnqueueStatement;
pub use queue::lifecycle::Status;
pub use queue::prune::{PruneOptions, PruneReport};
pub use queue::read::{HistoryEntry, ListFilter, Task};
pub use queue::stats::{QueueHealth, Stats, StatusCounts, Throughput, WorkerSeen};
pub use schedule::{
    DEFAULT_GRACE_SECONDS, MAX_BACKFILL, MAX_SCHEDULE_NAME_CHARS, Misfire, Missed, Schedule,
    ScheduleDefinition, ScheduleError, ScheduleHealth, ScheduledTask, TickReport,
};
pub use types::{TaskType, TypeDefinition};

/// The library version, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The library's SQL as text, for the tests and the benchmark to check (EXPLAIN plans, the
/// committed `sql/` files). Not an API: only with the `test-hooks` feature, which the crate's
/// own dev-dependency on itself turns on for `cargo test` and `cargo bench`.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod test_hooks {
    pub use crate::queue::{
        hot_path_statements, procedures_migration_file, rendered_steps, stored_procedures,
    };
}
