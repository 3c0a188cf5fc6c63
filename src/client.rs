//! `Client`: the public Rust API. Cheap to clone and safe to share between threads; clients
//! opened with the same connection settings share one pool.

use crate::config::Config;
use crate::database::{self, Database};
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
    db: Arc<Database>,
    config: Arc<Config>,
}

impl Client {
    /// Opens a client: finds or creates the pool for these settings and (once per pool) checks
    /// that the server is reachable and supports the queue. The schema is checked on first use, so a
    /// client can be opened on an empty database to run [`Client::migrate`].
    pub fn open(config: Config) -> Result<Client> {
        let db = database::database(&config.connection)?;
        db.ensure_server()?;
        Ok(Client {
            db,
            config: Arc::new(config),
        })
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
        migrate::migrate(&self.db.pool, self.config.task_claim_timeout, None)
    }

    /// Migrates up to schema version `to` only: during a rolling deploy, to the version this
    /// release runs on while the previous release still runs (see docs/operations.md), then
    /// [`Client::migrate`] once it is gone. `InvalidArgument` for a version this library does
    /// not stop at.
    pub fn migrate_to(&self, to: i64) -> Result<MigrationReport> {
        migrate::migrate(&self.db.pool, self.config.task_claim_timeout, Some(to))
    }

    /// Registers a task type (name, version, JSON Schema). The same name, version and schema
    /// again is a no-op (`changed: false`); another version (a label, not ordered) replaces the
    /// schema for new tasks; another schema under the same version is `Conflict`.
    pub fn register_type(&self, definition: &TypeDefinition) -> Result<TaskType> {
        types::register(&self.db, definition, self.config.max_payload_bytes)
    }

    /// One task type by name; `NotFound` if it was never registered.
    pub fn get_type(&self, name: &str) -> Result<TaskType> {
        types::get(&self.db, name)
    }

    /// Every task type, by name.
    pub fn list_types(&self) -> Result<Vec<TaskType>> {
        types::list(&self.db)
    }

    /// Activates or deactivates a type. A deactivated type refuses new tasks with
    /// `TypeInactive`; its queued tasks still run.
    pub fn set_type_active(&self, name: &str, active: bool) -> Result<TaskType> {
        types::set_active(&self.db, name, active)
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
        let mut out = self.signalled(enqueue::enqueue_batch(&self.db, &self.config, &[input]))?;
        Ok(out.remove(0))
    }

    /// Enqueues many tasks in one transaction; all or nothing when any is invalid.
    pub fn enqueue_batch(&self, items: &[BatchItem]) -> Result<Vec<Enqueued>> {
        let inputs: Vec<TaskInput<'_>> = items.iter().map(TaskInput::from).collect();
        self.signalled(enqueue::enqueue_batch(&self.db, &self.config, &inputs))
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
        in_transaction::enqueue_statement(&self.db, &self.config, type_name, params, options)
    }

    /// Claims up to `limit` runnable tasks under fresh leases, highest priority first, then
    /// oldest; an empty list when nothing is runnable (after `wait_seconds`, if given).
    /// Paused types' tasks are left alone, and limited types' tasks taken within their limits.
    pub fn claim(&self, worker_id: &str, options: &ClaimOptions) -> Result<Vec<ClaimedTask>> {
        Ok(claim::claim(&self.db, &self.config, worker_id, options)?.tasks)
    }

    /// [`Client::claim`], also saying when a type it left alone (rate-limited, or paused until
    /// a given time) may start a task again.
    pub fn claim_report(&self, worker_id: &str, options: &ClaimOptions) -> Result<ClaimReport> {
        let options = ClaimOptions {
            report: Some(true),
            ..options.clone()
        };
        claim::claim(&self.db, &self.config, worker_id, &options)
    }

    /// Pauses a type: claims that begin after this returns hand out none of its tasks until
    /// it is resumed (or `until` passes); it still accepts tasks, and claimed ones finish.
    pub fn pause_type(&self, name: &str, options: &PauseOptions) -> Result<TaskType> {
        flow::pause(&self.db, name, options)
    }

    /// Ends a type's pause.
    pub fn resume_type(&self, name: &str) -> Result<TaskType> {
        flow::resume(&self.db, name)
    }

    /// Sets or removes a type's concurrency limit and rate limit (see [`TypeLimits`]).
    pub fn set_type_limits(&self, name: &str, limits: &TypeLimits) -> Result<TaskType> {
        flow::set_limits(&self.db, name, limits)
    }

    /// A task may have become claimable when `result` is a success: this process's waiting
    /// claims look again at once.
    fn signalled<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_ok() {
            self.db.flow.signal();
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
        finish::heartbeat(
            &self.db,
            &self.config,
            id,
            Holder::Token(lease_token),
            options,
        )
    }

    /// [`Client::heartbeat`] for a caller that has no lease token: the task must be claimed by
    /// `worker_id`. Unfenced: prefer the token where the caller has it.
    pub fn heartbeat_as_worker(
        &self,
        id: i64,
        worker_id: &str,
        options: &HeartbeatOptions,
    ) -> Result<Heartbeat> {
        finish::heartbeat(
            &self.db,
            &self.config,
            id,
            Holder::Worker(worker_id),
            options,
        )
    }

    /// Completes a claimed task. Only the current lease token may; repeating the same call
    /// succeeds again with `repeated: true`.
    pub fn complete(&self, id: i64, lease_token: &str, result: &Value) -> Result<Finished> {
        self.signalled(finish::complete(
            &self.db,
            &self.config,
            id,
            Holder::Token(lease_token),
            result,
        ))
    }

    /// [`Client::complete`] for a caller that has no lease token (the original system's
    /// workers): the task must be claimed by `worker_id`, as the original checked it. A worker
    /// id is not a fence: if the lease ran out and the same id claimed the task again, this
    /// finishes the new attempt. Repeating the call succeeds again with `repeated: true`.
    pub fn complete_as_worker(&self, id: i64, worker_id: &str, result: &Value) -> Result<Finished> {
        self.signalled(finish::complete(
            &self.db,
            &self.config,
            id,
            Holder::Worker(worker_id),
            result,
        ))
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
        claim::complete_and_claim(
            &self.db,
            &self.config,
            (id, lease_token, result),
            worker_id,
            options,
        )
    }

    /// Completes many claimed tasks in one transaction, with an outcome per task.
    pub fn complete_batch(&self, items: &[CompleteItem]) -> Result<Vec<CompleteOutcome>> {
        self.signalled(finish::complete_batch(&self.db, &self.config, items))
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
        self.signalled(finish::fail(
            &self.db,
            &self.config,
            id,
            Holder::Token(lease_token),
            message,
            options,
        ))
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
        self.signalled(finish::fail(
            &self.db,
            &self.config,
            id,
            Holder::Worker(worker_id),
            message,
            options,
        ))
    }

    /// Gives a claimed task back to pending at once without counting the attempt.
    pub fn release(&self, id: i64, lease_token: &str) -> Result<Finished> {
        self.signalled(finish::release(&self.db, &self.config, id, lease_token))
    }

    /// Cancels a pending or claimed task; a finished one is `Conflict`.
    pub fn cancel(&self, id: i64, reason: Option<&str>) -> Result<Finished> {
        manage::cancel(&self.db, &self.config, id, reason)
    }

    /// Puts a failed or cancelled task back to pending with its attempts reset.
    pub fn retry(&self, id: i64) -> Result<Finished> {
        self.signalled(manage::retry(&self.db, &self.config, id))
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
        bulk::run(
            &self.db,
            &self.config,
            action,
            filter,
            options,
            &mut progress,
        )
    }

    /// Recovers every expired lease now (claims also do this lazily).
    pub fn recover_expired(&self) -> Result<Recovery> {
        crate::queue::claim::recover_expired(&self.db, &self.config)
    }

    /// One task with every column; `NotFound` for an unknown id.
    pub fn get_task(&self, id: i64) -> Result<Task> {
        read::get(&self.db, id)
    }

    /// A page of tasks, newest first, filtered by type and status.
    pub fn list_tasks(&self, filter: &ListFilter) -> Result<Vec<Task>> {
        read::list(&self.db, filter)
    }

    /// What an operator watches: counts by type and status, the oldest pending task, expired
    /// leases, the last hour's throughput per minute, the workers seen (see [`Stats`]).
    pub fn stats(&self) -> Result<Stats> {
        stats::stats(&self.db)
    }

    /// [`Client::stats`] as Prometheus text exposition.
    pub fn metrics(&self) -> Result<String> {
        self.stats().map(|s| stats::metrics(&s))
    }

    /// Deletes finished tasks older than `older_than_seconds` with their history, in small
    /// transactions by primary key while the queue keeps running.
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport> {
        prune::prune(&self.db, options, &mut |_| {})
    }

    /// [`Client::prune`], telling `progress` the running totals after every batch.
    pub fn prune_with_progress(
        &self,
        options: &PruneOptions,
        mut progress: impl FnMut(&PruneReport),
    ) -> Result<PruneReport> {
        prune::prune(&self.db, options, &mut progress)
    }

    /// The history rows of a task, oldest first (none when history is off).
    pub fn task_history(&self, id: i64) -> Result<Vec<HistoryEntry>> {
        read::history(&self.db, id)
    }

    /// Creates or replaces a recurring schedule (by name): a task of its type with its params
    /// at every occurrence of its cron expression in its time zone. Params are checked against
    /// the type's schema now. Putting the same schedule again keeps its next run.
    pub fn schedule_put(&self, definition: &ScheduleDefinition) -> Result<Schedule> {
        schedule::put(&self.db, &self.config, definition)
    }

    /// Deletes a schedule (its tasks stay) and answers it as it was; `NotFound` if none.
    pub fn schedule_delete(&self, name: &str) -> Result<Schedule> {
        schedule::delete(&self.db, name)
    }

    /// One schedule by name; `NotFound` if none.
    pub fn schedule_get(&self, name: &str) -> Result<Schedule> {
        schedule::get(&self.db, name)
    }

    /// Every schedule, by name, with its next run.
    pub fn schedule_list(&self) -> Result<Vec<Schedule>> {
        schedule::list(&self.db)
    }

    /// Enqueues every due occurrence of every schedule (claims also do this lazily, a few
    /// schedules at a time): each occurrence exactly once, whatever the number of tickers.
    pub fn schedules_tick(&self) -> Result<TickReport> {
        schedule::tick(&self.db, &self.config)
    }
}
