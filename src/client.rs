//! `Client`: the public Rust API. Cheap to clone and safe to share between threads; clients
//! opened with the same connection settings share one pool.

use crate::config::Config;
use crate::database::{self, Database};
use crate::embedded::{self, Store};
use crate::error::Result;
use crate::flow::{self, PauseOptions, TypeLimits};
use crate::migrate::{self, MigrationReport};
use crate::queue::Finished;
use crate::queue::bulk::{self, BulkAction, BulkFilter, BulkOptions, BulkReport};
use crate::queue::claim::{self, ClaimOptions, ClaimReport, ClaimedTask};
use crate::queue::claim::{CompletedAndClaimed, Recovery};
use crate::queue::enqueue::{self, BatchItem, EnqueueOptions, Enqueued, TaskInput};
use crate::queue::finish::{
    self, CompleteItem, CompleteOutcome, FailOptions, Failed, Heartbeat, HeartbeatOptions,
};
use crate::queue::in_transaction::{self, EnqueueStatement};
use crate::queue::lifecycle::Holder;
use crate::queue::manage;
use crate::queue::prune::{self, PruneOptions, PruneReport};
use crate::queue::read::{self, HistoryEntry, ListFilter, Task};
use crate::queue::stats::{self, Stats};
use crate::schedule::{self, Schedule, ScheduleDefinition, TickReport};
use crate::types::{self, TaskType, TypeDefinition};
use serde_json::Value;
use std::sync::Arc;

/// A handle on one queue database: every call of the API. Cheap to clone and safe to share
/// between threads; clients opened with the same connection settings share one pool.
#[derive(Clone, Debug)]
pub struct Client {
    backend: Backend,
    config: Arc<Config>,
}

/// Where the queue lives: a server (MySQL or MariaDB), or a SQLite file (the embedded engine).
#[derive(Clone, Debug)]
enum Backend {
    Server(Arc<Database>),
    Embedded(Arc<Store>),
}

/// Runs `$server` with `db` bound on a server, `$embedded` with `store` bound on a file.
macro_rules! on {
    ($self:ident, $db:ident => $server:expr, $store:ident => $embedded:expr) => {
        match &$self.backend {
            Backend::Server($db) => $server,
            Backend::Embedded($store) => $embedded,
        }
    };
}

impl Client {
    /// Opens a client: finds or creates the pool for these settings and (once per pool) checks
    /// that the server is reachable and supports the queue. The schema is checked on first use, so a
    /// client can be opened on an empty database to run [`Client::migrate`].
    pub fn open(config: Config) -> Result<Client> {
        let backend = match &config.embedded {
            Some(file) => {
                let store = embedded::store(file)?;
                store.ensure_file()?;
                Backend::Embedded(store)
            }
            None => {
                let db = database::database(&config.connection)?;
                db.ensure_server()?;
                Backend::Server(db)
            }
        };
        Ok(Client {
            backend,
            config: Arc::new(config),
        })
    }

    /// Whether this client's queue is a SQLite file (the embedded engine).
    pub fn is_embedded(&self) -> bool {
        matches!(self.backend, Backend::Embedded(_))
    }

    /// Opens a client from JSON configuration text; `None` or `{}` reads the environment.
    pub fn open_json(config_json: Option<&str>) -> Result<Client> {
        Client::open(Config::from_json_text(config_json)?)
    }

    /// The settings this client was opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Creates or upgrades the schema. The only call that runs DDL.
    pub fn migrate(&self) -> Result<MigrationReport> {
        on!(self, db => migrate::migrate(&db.pool, self.config.task_claim_timeout, None),
            store => embedded::schema::migrate(store))
    }

    /// Migrates up to schema version `to` only: during a rolling deploy, to the version this
    /// release runs on while the previous release still runs (see docs/operations.md), then
    /// [`Client::migrate`] once it is gone. `InvalidArgument` for a version this library does
    /// not stop at.
    pub fn migrate_to(&self, to: i64) -> Result<MigrationReport> {
        on!(self, db => migrate::migrate(&db.pool, self.config.task_claim_timeout, Some(to)),
            _store => Err(embedded::not_yet("migrate_to (a rolling deploy's step)")))
    }

    /// Registers a task type (name, version, JSON Schema). The same name, version and schema
    /// again is a no-op (`changed: false`); another version (a label, not ordered) replaces the
    /// schema for new tasks; another schema under the same version is `Conflict`.
    pub fn register_type(&self, definition: &TypeDefinition) -> Result<TaskType> {
        let max = self.config.max_payload_bytes;
        on!(self, db => types::register(db, definition, max),
            store => embedded::register_type(store, definition, max))
    }

    /// One task type by name; `NotFound` if it was never registered.
    pub fn get_type(&self, name: &str) -> Result<TaskType> {
        on!(self, db => types::get(db, name), store => embedded::get_type(store, name))
    }

    /// Every task type, by name.
    pub fn list_types(&self) -> Result<Vec<TaskType>> {
        on!(self, db => types::list(db), store => embedded::list_types(store))
    }

    /// Activates or deactivates a type. A deactivated type refuses new tasks with
    /// `TypeInactive`; its queued tasks still run.
    pub fn set_type_active(&self, name: &str, active: bool) -> Result<TaskType> {
        on!(self, db => types::set_active(db, name, active),
            store => embedded::set_type_active(store, name, active))
    }

    /// Enqueues one task after validating its params; a duplicate (same dedupe key) returns the
    /// existing task with `deduplicated: true`.
    pub fn enqueue(
        &self,
        type_name: &str,
        params: &Value,
        options: &EnqueueOptions,
    ) -> Result<Enqueued> {
        let input = TaskInput {
            type_name,
            params,
            options,
        };
        Ok(self.enqueue_inputs(&[input])?.remove(0))
    }

    /// Enqueues many tasks in one transaction; all or nothing when any is invalid.
    pub fn enqueue_batch(&self, items: &[BatchItem]) -> Result<Vec<Enqueued>> {
        let inputs: Vec<TaskInput<'_>> = items.iter().map(TaskInput::from).collect();
        self.enqueue_inputs(&inputs)
    }

    fn enqueue_inputs(&self, inputs: &[TaskInput<'_>]) -> Result<Vec<Enqueued>> {
        on!(self, db => self.signalled(enqueue::enqueue_batch(db, &self.config, inputs)),
            store => embedded::enqueue_batch(store, &self.config, inputs))
    }

    /// The enqueue of one task as SQL for the caller to run on its own connection inside its
    /// own transaction, so that the task exists if and only if that transaction commits. The
    /// params are validated and keyed now; run [`EnqueueStatement::statements`] in order, then,
    /// if you want the result, [`EnqueueStatement::select_sql`]. A duplicate key makes the
    /// statements a no-op (the task holding the key is the answer); `unique_for_seconds` is
    /// refused here.
    pub fn enqueue_statement(
        &self,
        type_name: &str,
        params: &Value,
        options: &EnqueueOptions,
    ) -> Result<EnqueueStatement> {
        on!(self, db => in_transaction::enqueue_statement(db, &self.config, type_name, params, options),
            _store => Err(embedded::not_yet("enqueue_statement")))
    }

    /// Claims up to `limit` runnable tasks under fresh leases, highest priority first, then
    /// oldest; an empty list when nothing is runnable (after `wait_seconds`, if given).
    /// Paused types' tasks are left alone, and limited types' tasks taken within their limits.
    pub fn claim(&self, worker_id: &str, options: &ClaimOptions) -> Result<Vec<ClaimedTask>> {
        let report = on!(self, db => claim::claim(db, &self.config, worker_id, options),
            store => embedded::claim(store, &self.config, worker_id, options));
        Ok(report?.tasks)
    }

    /// [`Client::claim`], also saying when a type it left alone (rate-limited, or paused until
    /// a given time) may start a task again.
    pub fn claim_report(&self, worker_id: &str, options: &ClaimOptions) -> Result<ClaimReport> {
        let options = ClaimOptions {
            report: Some(true),
            ..options.clone()
        };
        on!(self, db => claim::claim(db, &self.config, worker_id, &options),
            store => embedded::claim(store, &self.config, worker_id, &options))
    }

    /// Pauses a type: claims that begin after this returns hand out none of its tasks until
    /// it is resumed (or `until` passes); it still accepts tasks, and claimed ones finish.
    pub fn pause_type(&self, name: &str, options: &PauseOptions) -> Result<TaskType> {
        on!(self, db => flow::pause(db, name, options), _store => Err(embedded::not_yet("pause_type")))
    }

    /// Ends a type's pause.
    pub fn resume_type(&self, name: &str) -> Result<TaskType> {
        on!(self, db => flow::resume(db, name), _store => Err(embedded::not_yet("resume_type")))
    }

    /// Sets or removes a type's concurrency limit and rate limit (see [`TypeLimits`]).
    pub fn set_type_limits(&self, name: &str, limits: &TypeLimits) -> Result<TaskType> {
        on!(self, db => flow::set_limits(db, name, limits),
            _store => Err(embedded::not_yet("set_type_limits")))
    }

    /// A task may have become claimable when `result` is a success: this process's waiting
    /// claims look again at once.
    fn signalled<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_ok() {
            if let Backend::Server(db) = &self.backend {
                db.flow.signal();
            }
        }
        result
    }

    /// Extends a lease (and records progress) while `lease_token` still owns the task.
    pub fn heartbeat(
        &self,
        id: i64,
        lease_token: &str,
        options: &HeartbeatOptions,
    ) -> Result<Heartbeat> {
        self.heartbeat_by(id, Holder::Token(lease_token), options)
    }

    /// [`Client::heartbeat`] for a caller that has no lease token: the task must be claimed by
    /// `worker_id`. Unfenced: prefer the token where the caller has it.
    pub fn heartbeat_as_worker(
        &self,
        id: i64,
        worker_id: &str,
        options: &HeartbeatOptions,
    ) -> Result<Heartbeat> {
        self.heartbeat_by(id, Holder::Worker(worker_id), options)
    }

    fn heartbeat_by(
        &self,
        id: i64,
        holder: Holder<'_>,
        options: &HeartbeatOptions,
    ) -> Result<Heartbeat> {
        on!(self, db => finish::heartbeat(db, &self.config, id, holder, options),
            store => embedded::heartbeat(store, &self.config, id, holder, options))
    }

    /// Completes a claimed task. Only the current lease token may; repeating the same call
    /// succeeds again with `repeated: true`.
    pub fn complete(&self, id: i64, lease_token: &str, result: &Value) -> Result<Finished> {
        self.complete_by(id, Holder::Token(lease_token), result)
    }

    /// [`Client::complete`] for a caller that has no lease token (the original system's
    /// workers): the task must be claimed by `worker_id`, as the original checked it. A worker
    /// id is not a fence: if the lease ran out and the same id claimed the task again, this
    /// finishes the new attempt. Repeating the call succeeds again with `repeated: true`.
    pub fn complete_as_worker(&self, id: i64, worker_id: &str, result: &Value) -> Result<Finished> {
        self.complete_by(id, Holder::Worker(worker_id), result)
    }

    fn complete_by(&self, id: i64, holder: Holder<'_>, result: &Value) -> Result<Finished> {
        on!(self, db => self.signalled(finish::complete(db, &self.config, id, holder, result)),
            store => embedded::complete(store, &self.config, id, holder, result))
    }

    /// A worker's loop step: completes the task it holds and claims its next, in one round
    /// trip and one commit (half the commits of `complete` followed by `claim`). A stale token
    /// is `LeaseLost` and claims nothing; a repeat answers `repeated` and claims as well.
    pub fn complete_and_claim(
        &self,
        id: i64,
        lease_token: &str,
        result: &Value,
        worker_id: &str,
        options: &ClaimOptions,
    ) -> Result<CompletedAndClaimed> {
        let done = (id, lease_token, result);
        on!(self, db => claim::complete_and_claim(db, &self.config, done, worker_id, options),
            store => embedded::complete_and_claim(store, &self.config, done, worker_id, options))
    }

    /// Completes many claimed tasks in one transaction, with an outcome per task.
    pub fn complete_batch(&self, items: &[CompleteItem]) -> Result<Vec<CompleteOutcome>> {
        on!(self, db => self.signalled(finish::complete_batch(db, &self.config, items)),
            store => embedded::complete_batch(store, &self.config, items))
    }

    /// Fails a claimed task: back to pending after a backoff while attempts remain and `retry`
    /// is not false, else `failed`.
    pub fn fail(
        &self,
        id: i64,
        lease_token: &str,
        message: &str,
        options: &FailOptions,
    ) -> Result<Failed> {
        self.fail_by(id, Holder::Token(lease_token), message, options)
    }

    /// [`Client::fail`] for a caller that has no lease token: the task must be claimed by
    /// `worker_id` (see [`Client::complete_as_worker`]).
    pub fn fail_as_worker(
        &self,
        id: i64,
        worker_id: &str,
        message: &str,
        options: &FailOptions,
    ) -> Result<Failed> {
        self.fail_by(id, Holder::Worker(worker_id), message, options)
    }

    fn fail_by(
        &self,
        id: i64,
        holder: Holder<'_>,
        message: &str,
        options: &FailOptions,
    ) -> Result<Failed> {
        on!(self, db => self.signalled(finish::fail(db, &self.config, id, holder, message, options)),
            store => embedded::fail(store, &self.config, id, holder, message, options))
    }

    /// Gives a claimed task back to pending at once without counting the attempt.
    pub fn release(&self, id: i64, lease_token: &str) -> Result<Finished> {
        on!(self, db => self.signalled(finish::release(db, &self.config, id, lease_token)),
            store => embedded::release(store, &self.config, id, lease_token))
    }

    /// Cancels a pending or claimed task; a finished one is `Conflict`.
    pub fn cancel(&self, id: i64, reason: Option<&str>) -> Result<Finished> {
        on!(self, db => manage::cancel(db, &self.config, id, reason),
            store => embedded::cancel(store, &self.config, id, reason))
    }

    /// Puts a failed or cancelled task back to pending with its attempts reset.
    pub fn retry(&self, id: i64) -> Result<Finished> {
        on!(self, db => self.signalled(manage::retry(db, &self.config, id)),
            store => embedded::retry(store, &self.config, id))
    }

    /// Cancels every pending or claimed task `filter` selects, newest first, up to
    /// `options.limit`; each through the same step as [`Client::cancel`] (its own transaction,
    /// its history row). Tasks in other states are reported in `skipped`, not errors. With
    /// `dry_run` nothing changes and the report says what would.
    pub fn cancel_where(&self, filter: &BulkFilter, options: &BulkOptions) -> Result<BulkReport> {
        self.bulk(BulkAction::Cancel, filter, options, |_| {})
    }

    /// Puts every failed or cancelled task `filter` selects back to pending, as
    /// [`Client::retry`] does one; otherwise as [`Client::cancel_where`].
    pub fn retry_where(&self, filter: &BulkFilter, options: &BulkOptions) -> Result<BulkReport> {
        self.bulk(BulkAction::Retry, filter, options, |_| {})
    }

    /// [`Client::cancel_where`] or [`Client::retry_where`], telling `progress` the report so
    /// far after every page of tasks.
    pub fn bulk(
        &self,
        action: BulkAction,
        filter: &BulkFilter,
        options: &BulkOptions,
        mut progress: impl FnMut(&BulkReport),
    ) -> Result<BulkReport> {
        on!(self, db => bulk::run(db, &self.config, action, filter, options, &mut progress),
            _store => Err(embedded::not_yet("cancel_where and retry_where")))
    }

    /// Recovers every expired lease now (claims also do this lazily).
    pub fn recover_expired(&self) -> Result<Recovery> {
        on!(self, db => claim::recover_expired(db, &self.config),
            store => embedded::recover_expired(store, &self.config))
    }

    /// One task with every column; `NotFound` for an unknown id.
    pub fn get_task(&self, id: i64) -> Result<Task> {
        on!(self, db => read::get(db, id), store => embedded::get_task(store, id))
    }

    /// A page of tasks, newest first, filtered by type and status.
    pub fn list_tasks(&self, filter: &ListFilter) -> Result<Vec<Task>> {
        on!(self, db => read::list(db, filter), store => embedded::list_tasks(store, filter))
    }

    /// What an operator watches: counts by type and status, the oldest pending task, expired
    /// leases, the last hour's throughput per minute, the workers seen (see [`Stats`]).
    pub fn stats(&self) -> Result<Stats> {
        on!(self, db => stats::stats(db), store => embedded::stats(store))
    }

    /// [`Client::stats`] as Prometheus text exposition.
    pub fn metrics(&self) -> Result<String> {
        self.stats().map(|s| stats::metrics(&s))
    }

    /// Deletes finished tasks older than `older_than_seconds` with their history, in small
    /// transactions by primary key while the queue keeps running.
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport> {
        self.prune_with_progress(options, |_| {})
    }

    /// [`Client::prune`], telling `progress` the running totals after every batch.
    pub fn prune_with_progress(
        &self,
        options: &PruneOptions,
        mut progress: impl FnMut(&PruneReport),
    ) -> Result<PruneReport> {
        on!(self, db => prune::prune(db, options, &mut progress),
            store => embedded::prune(store, options, &mut progress))
    }

    /// The history rows of a task, oldest first (none when history is off).
    pub fn task_history(&self, id: i64) -> Result<Vec<HistoryEntry>> {
        on!(self, db => read::history(db, id), store => embedded::task_history(store, id))
    }

    /// Creates or replaces a recurring schedule (by name): a task of its type with its params
    /// at every occurrence of its cron expression in its time zone. Params are checked against
    /// the type's schema now. Putting the same schedule again keeps its next run.
    pub fn schedule_put(&self, definition: &ScheduleDefinition) -> Result<Schedule> {
        on!(self, db => schedule::put(db, &self.config, definition),
            _store => Err(embedded::not_yet("schedule_put")))
    }

    /// Deletes a schedule (its tasks stay) and answers it as it was; `NotFound` if none.
    pub fn schedule_delete(&self, name: &str) -> Result<Schedule> {
        on!(self, db => schedule::delete(db, name), _store => Err(embedded::not_yet("schedule_delete")))
    }

    /// One schedule by name; `NotFound` if none.
    pub fn schedule_get(&self, name: &str) -> Result<Schedule> {
        on!(self, db => schedule::get(db, name), _store => Err(embedded::not_yet("schedule_get")))
    }

    /// Every schedule, by name, with its next run.
    pub fn schedule_list(&self) -> Result<Vec<Schedule>> {
        on!(self, db => schedule::list(db), _store => Err(embedded::not_yet("schedule_list")))
    }

    /// Enqueues every due occurrence of every schedule (claims also do this lazily, a few
    /// schedules at a time): each occurrence exactly once, whatever the number of tickers.
    pub fn schedules_tick(&self) -> Result<TickReport> {
        on!(self, db => schedule::tick(db, &self.config),
            _store => Err(embedded::not_yet("schedules_tick")))
    }
}
