//! Every exported `tm_*` function. Each one checks its pointers through the helpers in
//! `ffi/mod.rs`, calls the Rust API, and writes its JSON output last.
//!
//! Shared rules, stated once here and in the header: a `const tm_client *` must come from
//! `tm_client_open` and may be used from many threads at once; `out_json` may be NULL when the
//! output is not needed, and otherwise receives a string the caller frees with
//! `tm_string_free`; nothing is written to an output when the call fails.

#![allow(clippy::missing_safety_doc)]

use super::{
    boundary, client_ref, json_arg, json_value, optional_text, options, text, tm_client, tm_error,
    write_json, write_text,
};
use crate::error::Error;
use crate::{
    BatchItem, BulkAction, BulkFilter, BulkOptions, ClaimOptions, Client, CompleteItem,
    PruneOptions, TypeDefinition,
};
use std::ffi::{CString, c_char};

/// The largest batch text accepted: 64 payloads' worth. Each item inside is still held to
/// `max_payload_bytes` on its own.
fn batch_text_limit(c: &Client) -> usize {
    c.config().max_payload_bytes.saturating_mul(64)
}

/// The library version, e.g. "0.1.0". A static string: do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn tm_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Opens a client. `config_json` is a JSON object of settings, or NULL / `"{}"` to read the
/// same keys from `TASKMANAGER_<KEY>` environment variables. Keys (numbers and booleans may
/// also be strings holding them):
/// - connection: `"database_url"` (`mysql://user:pass@host:port/db`, several hosts separated by
///   commas), or `"db_host"` (string, several comma-separated; default `localhost`) or
///   `"db_hosts"` (array), `"db_port"` (1..=65535, default 3306), `"db_socket"` (path),
///   `"db_name"`, `"db_user"`, `"db_pass"` (strings), `"db_charset"` (`utf8mb4`; `utf8` accepted);
/// - or the embedded engine: `"db_path"` (a SQLite file, created by `tm_migrate`; or
///   `"database_url"` `sqlite:///abs/path.db`), `"sqlite_synchronous"` (`full`, the default, or
///   `normal`); with any server key it is `TM_CONFIG` naming both;
/// - `"task_claim_timeout"`: default lease in seconds (default 300);
///   `"max_task_attempts"`: 1..=1000000 (default 3); `"enable_task_history"` and
///   `"enable_schema_validation"`: booleans (default true);
/// - `"max_payload_bytes"`: largest params/result/schema JSON (default 1048576);
///   `"retry_backoff_base"` (0..=86400, default 10) and `"retry_backoff_max"` (default 3600):
///   seconds of the retry backoff;
/// - `"connect_timeout"` (1..=3600, default 10), `"io_timeout"` (1..=86400, default 60),
///   `"lock_wait_timeout"` (1..=3600, default 10): seconds; `"pool_max_connections"`
///   (1..=1000, default 16).
///
/// Unknown keys are `TM_CONFIG`. Clients with the same connection settings share one
/// connection pool. Checks that the server is reachable and supported. On success
/// `*out_client` receives a handle to free with `tm_client_free`; the handle may be used from
/// any number of threads at once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_client_open(
    config_json: *const c_char,
    out_client: *mut *mut tm_client,
) -> *mut tm_error {
    boundary(|| {
        if out_client.is_null() {
            return Err(Error::new(
                crate::Code::NullParameter,
                "out_client must not be NULL",
            ));
        }
        let config = optional_text(config_json, "config_json")?;
        let inner = Client::open_json(config)?;
        // SAFETY: out_client is non-NULL and writable.
        unsafe { *out_client = Box::into_raw(Box::new(tm_client { inner })) };
        Ok(())
    })
}

/// Frees a client handle. NULL is ignored. The shared pool stays for other handles.
/// Must not be called while another thread still uses the handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_client_free(client: *mut tm_client) {
    if !client.is_null() {
        // SAFETY: client came from Box::into_raw in tm_client_open and is freed once.
        drop(unsafe { Box::from_raw(client) });
    }
}

/// Creates or upgrades the database schema (the only call that runs DDL). Idempotent and safe
/// to run from several processes at once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_migrate(client: *const tm_client) -> *mut tm_error {
    boundary(|| client_ref(client)?.migrate().map(|_| ()))
}

/// Migrates up to schema version `version` only. During a rolling deploy: `tm_migrate_to(6)`
/// while processes of the previous release still run (it keeps the indexes and procedures they
/// use), then `tm_migrate` once they are gone. `TM_INVALID_ARGUMENT` for a version this library
/// does not stop at (6, the oldest it runs on, up to the latest).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_migrate_to(client: *const tm_client, version: i64) -> *mut tm_error {
    boundary(|| client_ref(client)?.migrate_to(version).map(|_| ()))
}

/// Registers a task type: `{"name": "...", "version": "1.0.0", "param_schema": {...}}`.
/// `version` is a label of 1 to 50 characters (default `"1"`; a JSON integer is taken as its
/// decimal text). The same name, version and schema again is a no-op; another version replaces
/// the schema for new tasks (labels are not ordered); the same version with another schema is
/// `TM_CONFLICT`. Output: the type (`id`, `name`, `version` as a string, `is_active`,
/// `changed`, ...).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_type_register(
    client: *const tm_client,
    type_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let definition: TypeDefinition =
            json_arg(type_json, "type_json", c.config().max_payload_bytes)?;
        write_json(out_json, &c.register_type(&definition)?)
    })
}

/// One task type by name. Output: the type. Unknown name: `TM_NOT_FOUND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_type_get(
    client: *const tm_client,
    name: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        write_json(out_json, &c.get_type(text(name, "name")?)?)
    })
}

/// Every task type, by name. Output: a JSON array of types.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_type_list(
    client: *const tm_client,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| write_json(out_json, &client_ref(client)?.list_types()?))
}

/// Activates (`active` true) or deactivates a task type. A deactivated type refuses new tasks
/// with `TM_TYPE_INACTIVE`; its queued tasks still run. Output: the type.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_type_set_active(
    client: *const tm_client,
    name: *const c_char,
    active: bool,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        write_json(out_json, &c.set_type_active(text(name, "name")?, active)?)
    })
}

/// Enqueues a task. `params_json` is the params document (validated against the type's
/// schema). `options_json` may be NULL or an object with these keys, all optional:
/// - `"priority"`: integer (32-bit), higher runs first, default 0;
/// - `"delay_seconds"`: 0..=315360000, or `"run_at"`: UTC `"YYYY-MM-DD HH:MM:SS[.ffffff]"`
///   (not both); default: now;
/// - `"max_attempts"`: 1..=1000000, default the `max_task_attempts` setting;
/// - `"dedupe_key"`: 1..=191 characters, default the SHA-256 of type name and canonical params;
/// - `"dedupe_scope"`: `"always"` (default: a key once used blocks forever) or `"active"`
///   (only a pending or claimed task blocks);
/// - `"unique_for_seconds"`: 1..=31536000 (a year): the key blocks a new task only while the
///   task holding it is younger than this (by its `created_at`, the database's clock); an
///   enqueue that finds the holder older releases the key and creates a new task. Race-free:
///   of many identical enqueues at once, one creates. The window is the caller's: an enqueue
///   without it keeps finding the holder. Not accepted by `tm_task_enqueue_batch` with more
///   than one task.
///
/// Output: `{"id", "type", "status", "deduplicated", "dedupe_key"}`; a duplicate returns the
/// existing task with `"deduplicated": true`. A bad option is `TM_INVALID_ARGUMENT` naming it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_enqueue(
    client: *const tm_client,
    type_name: *const c_char,
    params_json: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let type_name = text(type_name, "type_name")?;
        let params = json_value(params_json, "params_json", c.config().max_payload_bytes)?;
        let options = options(options_json, "options_json")?;
        write_json(out_json, &c.enqueue(type_name, &params, &options)?)
    })
}

/// Enqueues many tasks in one transaction: `[{"type", "params", "options"}, ...]` (at most
/// 1000). All or nothing: when any task is invalid nothing is written and the details list
/// every violation with its `index`. Output: an array of enqueue results, in input order.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_enqueue_batch(
    client: *const tm_client,
    items_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let limit = c
            .config()
            .max_payload_bytes
            .saturating_mul(crate::queue::MAX_BATCH.min(64));
        let items: Vec<BatchItem> = json_arg(items_json, "items_json", limit)?;
        write_json(out_json, &c.enqueue_batch(&items)?)
    })
}

/// Claims up to `limit` runnable tasks for `worker_id`: highest priority first, then oldest.
/// `options_json` may be NULL or an object with these keys, all optional:
/// - `"types"`: array of type names, or `"type_prefix"`: a literal name prefix, or
///   `"type_pattern"`: an SQL LIKE pattern (`%`, `_`, `\` escapes the next character;
///   case-insensitive; a trailing lone `\` is `TM_INVALID_ARGUMENT`): at most one of the three;
/// - `"type_ids"`: array of 1..=1000 type ids; with a name filter a type must pass both;
/// - `"limit"`: 1..=1000, default 1;
/// - `"lease_seconds"`: 1..=31536000, default the `task_claim_timeout` setting;
/// - `"sort_by"`: `"created_at"`, `"priority"`, `"id"` or `"attempts"` instead of the default
///   order, with `"sort_order"`: `"asc"` (default) or `"desc"`; ties go by id in the same
///   direction;
/// - `"wait_seconds"`: 0 to 60: when nothing is runnable, wait up to this long for a task
///   (holding no transaction or lock); a task enqueued or finished in this process wakes the
///   wait at once, others are seen within a second;
/// - `"report"`: true answers `{"tasks": [...], "next_allowed_at": ...}` (see below).
///
/// Paused types' tasks are not handed out; a type with `max_running` or a rate limit (see
/// `tm_type_set_limits`) only within them: a saturated type is skipped, never waited for.
///
/// Output: a JSON array of `{"id", "type", "params", "priority",
/// "attempts", "max_attempts", "lease_token", "lease_expires_at"}`; `[]` when nothing is
/// runnable (not an error). With `"report": true`: `{"tasks": [that array],
/// "next_allowed_at": "<RFC 3339 UTC>" | null}`, the earliest moment a type held back by its
/// rate limit or by a pause with an end, that has runnable tasks, may start one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_claim(
    client: *const tm_client,
    worker_id: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let worker_id = text(worker_id, "worker_id")?;
        let options: ClaimOptions = options(options_json, "options_json")?;
        if options.report == Some(true) {
            write_json(out_json, &c.claim_report(worker_id, &options)?)
        } else {
            write_json(out_json, &c.claim(worker_id, &options)?)
        }
    })
}

/// Extends the lease of a claimed task (and records progress) if `lease_token` still owns it.
/// `options_json` may be NULL or `{"progress": 0..=100, "lease_seconds": 1..=31536000,
/// "message": "a note for the history"}`
/// (all optional; the lease defaults to the `task_claim_timeout` setting from now).
/// Output: `{"id", "lease_expires_at", "progress"}`. A stale token: `TM_LEASE_LOST`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_heartbeat(
    client: *const tm_client,
    task_id: i64,
    lease_token: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let token = text(lease_token, "lease_token")?;
        write_json(
            out_json,
            &c.heartbeat(task_id, token, &options(options_json, "options_json")?)?,
        )
    })
}

/// `tm_task_heartbeat` for a caller that has no lease token: the task must be claimed by
/// `worker_id` (see `tm_task_complete_as_worker`). Options and output as for
/// `tm_task_heartbeat`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_heartbeat_as_worker(
    client: *const tm_client,
    task_id: i64,
    worker_id: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let worker_id = text(worker_id, "worker_id")?;
        write_json(
            out_json,
            &c.heartbeat_as_worker(task_id, worker_id, &options(options_json, "options_json")?)?,
        )
    })
}

/// Completes a claimed task with a result (`result_json` NULL means JSON null). Only the
/// current lease token may do this; a stale one gets `TM_LEASE_LOST` and changes nothing.
/// Repeating the call with the same token succeeds again (`"repeated": true`), so it is safe to
/// retry after `TM_OUTCOME_UNKNOWN`. Output: `{"id", "status", "repeated"}`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_complete(
    client: *const tm_client,
    task_id: i64,
    lease_token: *const c_char,
    result_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let token = text(lease_token, "lease_token")?;
        let result = result_arg(c, result_json)?;
        write_json(out_json, &c.complete(task_id, token, &result)?)
    })
}

/// `tm_task_complete` for a caller that has no lease token (the original system's workers):
/// the task must be claimed by `worker_id`, as the original checked it. A worker id is no
/// fence (the same id may have claimed the task again after its lease ran out); use the token
/// where you have it. Otherwise a task claimed by another worker, or not claimed at all, is
/// `TM_LEASE_LOST` (details: `{"status"}`). Output: `{"id", "status", "repeated"}`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_complete_as_worker(
    client: *const tm_client,
    task_id: i64,
    worker_id: *const c_char,
    result_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let worker_id = text(worker_id, "worker_id")?;
        let result = result_arg(c, result_json)?;
        write_json(
            out_json,
            &c.complete_as_worker(task_id, worker_id, &result)?,
        )
    })
}

/// A worker's loop step in one round trip and one commit: completes `task_id` with
/// `lease_token` (`result_json` may be NULL for JSON null) and, only if that matched, claims
/// the next tasks for `worker_id` (`options_json` as for `tm_task_claim`, may be NULL).
/// Output: `{"completed": {"id", "status", "repeated"}, "claimed": [...]}` with `claimed` as
/// `tm_task_claim` returns it. A stale token: `TM_LEASE_LOST`, and nothing is claimed; a repeat
/// of an earlier identical call: `"repeated": true`, and the next tasks as well.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_complete_and_claim(
    client: *const tm_client,
    task_id: i64,
    lease_token: *const c_char,
    result_json: *const c_char,
    worker_id: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let token = text(lease_token, "lease_token")?;
        let result = result_arg(c, result_json)?;
        let worker_id = text(worker_id, "worker_id")?;
        let options = options(options_json, "options_json")?;
        write_json(
            out_json,
            &c.complete_and_claim(task_id, token, &result, worker_id, &options)?,
        )
    })
}

/// A task's result from C: NULL is JSON null.
fn result_arg(c: &Client, result_json: *const c_char) -> crate::Result<serde_json::Value> {
    match optional_text(result_json, "result_json")? {
        None => Ok(serde_json::Value::Null),
        Some(_) => json_value(result_json, "result_json", c.config().max_payload_bytes),
    }
}

/// Completes many claimed tasks in one transaction: `[{"id", "lease_token", "result"}, ...]`.
/// Output: an array of `{"id", "ok"}` plus `"code"` and `"message"` for each task that could
/// not be completed (e.g. `"TM_LEASE_LOST"`); the others are completed regardless.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_complete_batch(
    client: *const tm_client,
    items_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let items: Vec<CompleteItem> = json_arg(items_json, "items_json", batch_text_limit(c))?;
        write_json(out_json, &c.complete_batch(&items)?)
    })
}

/// Fails a claimed task. `options_json` may be NULL or `{"retry": true|false (default true),
/// "retry_in_seconds": 0..=315360000 (default: the backoff)}`. A retryable failure with attempts left goes back to pending with
/// `run_at` pushed out by exponential backoff with jitter; otherwise the task is `failed`.
/// Output: `{"id", "status", "attempts", "max_attempts", "run_at", "repeated"}`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_fail(
    client: *const tm_client,
    task_id: i64,
    lease_token: *const c_char,
    error_message: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let token = text(lease_token, "lease_token")?;
        let message = text(error_message, "error_message")?;
        write_json(
            out_json,
            &c.fail(
                task_id,
                token,
                message,
                &options(options_json, "options_json")?,
            )?,
        )
    })
}

/// `tm_task_fail` for a caller that has no lease token: the task must be claimed by
/// `worker_id` (see `tm_task_complete_as_worker`). Options and output as for `tm_task_fail`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_fail_as_worker(
    client: *const tm_client,
    task_id: i64,
    worker_id: *const c_char,
    error_message: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let worker_id = text(worker_id, "worker_id")?;
        let message = text(error_message, "error_message")?;
        write_json(
            out_json,
            &c.fail_as_worker(
                task_id,
                worker_id,
                message,
                &options(options_json, "options_json")?,
            )?,
        )
    })
}

/// Gives a claimed task back to pending at once without counting the attempt (for a worker
/// that is shutting down). Output: `{"id", "status", "repeated"}`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_release(
    client: *const tm_client,
    task_id: i64,
    lease_token: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        write_json(
            out_json,
            &c.release(task_id, text(lease_token, "lease_token")?)?,
        )
    })
}

/// Cancels a pending or claimed task (`reason` may be NULL). A finished task: `TM_CONFLICT`.
/// Output: `{"id", "status", "repeated"}`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_cancel(
    client: *const tm_client,
    task_id: i64,
    reason: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        write_json(
            out_json,
            &c.cancel(task_id, optional_text(reason, "reason")?)?,
        )
    })
}

/// Puts a failed or cancelled task back to pending with its attempts reset.
/// Output: `{"id", "status", "repeated"}`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_retry(
    client: *const tm_client,
    task_id: i64,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| write_json(out_json, &client_ref(client)?.retry(task_id)?))
}

/// Cancels every task `filter_json` selects, each as `tm_task_cancel` would (its own
/// transaction and history row), newest first. `filter_json` (required): an object with at
/// least one of `"ids"` (array of 1..=10000 task ids), `"type"`, `"status"`, `"worker_id"`,
/// `"text"`, and optionally `"before_id"`, `"older_than_seconds"`, `"newer_than_seconds"`,
/// with the meanings of `tm_task_list`; an empty filter is `TM_INVALID_ARGUMENT`.
/// `options_json` may be NULL or `{"dry_run": bool (default false), "reason": "...",
/// "limit": 1..=10000 (default 1000)}`. Output: `{"action", "dry_run", "matched", "changed":
/// [ids], "unchanged": [ids already cancelled], "skipped": [{"id", "code", "message"}],
/// "next_before_id": id or null}`; a task whose status refuses the action is skipped with
/// `"TM_CONFLICT"`, a given id not selected with `"TM_NOT_FOUND"`. When `next_before_id` is
/// set the limit stopped the call: pass it as `"before_id"` to go on. Any other error stops
/// the call; the tasks changed before it stay changed (the message says how many).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_tasks_cancel_where(
    client: *const tm_client,
    filter_json: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        bulk(
            client,
            BulkAction::Cancel,
            filter_json,
            options_json,
            out_json,
        )
    })
}

/// Puts every failed or cancelled task `filter_json` selects back to pending, each as
/// `tm_task_retry` would. Filter, options (no `"reason"`: a retry records none) and output as
/// for `tm_tasks_cancel_where`; `"unchanged"` is always empty, and a task whose dedupe key an
/// active task holds is skipped with `"TM_CONFLICT"`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_tasks_retry_where(
    client: *const tm_client,
    filter_json: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        bulk(
            client,
            BulkAction::Retry,
            filter_json,
            options_json,
            out_json,
        )
    })
}

/// The body of the bulk exports.
fn bulk(
    client: *const tm_client,
    action: BulkAction,
    filter_json: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> crate::Result<()> {
    let c = client_ref(client)?;
    let filter: BulkFilter = json_arg(filter_json, "filter_json", BULK_FILTER_BYTES)?;
    let options: BulkOptions = options(options_json, "options_json")?;
    write_json(out_json, &c.bulk(action, &filter, &options, |_| {})?)
}

/// Largest bulk filter text: room for the longest list of ids (10,000 of up to 19 digits,
/// with separators) besides the other fields.
const BULK_FILTER_BYTES: usize = 256 * 1024;

/// Recovers every expired lease now (claims also do this lazily; call it from cron if you
/// like). Output: `{"recovered", "requeued", "failed"}`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_tasks_recover_expired(
    client: *const tm_client,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| write_json(out_json, &client_ref(client)?.recover_expired()?))
}

/// One task with every column, params and result as JSON values. An id below 1 is
/// `TM_INVALID_ARGUMENT`; an unknown id `TM_NOT_FOUND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_get(
    client: *const tm_client,
    task_id: i64,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| write_json(out_json, &client_ref(client)?.get_task(task_id)?))
}

/// A page of tasks, newest first. `filter_json` may be NULL or an object with these keys, all
/// optional: `"type"` (name), `"status"`, `"limit"` (1..=1000, default 100), `"before_id"`
/// (pass the last id of a page for the next), `"offset"` (0..=1000000), `"older_than_seconds"`
/// and `"newer_than_seconds"` (by creation time), `"worker_id"` (claimed by), `"text"` (1..=200
/// characters found in params or error message). Output: a JSON array of tasks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_list(
    client: *const tm_client,
    filter_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        write_json(
            out_json,
            &c.list_tasks(&options(filter_json, "filter_json")?)?,
        )
    })
}

/// The history rows of a task, oldest first: `[{"id", "task_id", "status_change",
/// "worker_id", "message", "created_at"}, ...]` (empty when history is off).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_history(
    client: *const tm_client,
    task_id: i64,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| write_json(out_json, &client_ref(client)?.task_history(task_id)?))
}

/// What an operator watches, as JSON:
/// - `"types"`: `{"name": {"pending": n, "claimed": n, "completed": n, "failed": n,
///   "cancelled": n}}`, and `"totals"` the same summed;
/// - `"queue"`: `{"name": {"oldest_pending_seconds": x or null, "expired_leases": n}}`;
/// - `"throughput"`: `{"name": {"completed_per_minute": [60 counts], "failed_per_minute":
///   [...], "completed_per_hour": [24 counts], "failed_per_hour": [...]}}`, index 0 the most
///   recent minute or hour;
/// - `"workers"`: `[{"worker_id", "last_claim_at", "claims_last_hour", "holding"}]`;
/// - `"generated_at"`: the server's time.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_stats(
    client: *const tm_client,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| write_json(out_json, &client_ref(client)?.stats()?))
}

/// The same figures as `tm_stats`, as Prometheus text exposition (`out_text` is plain text,
/// not JSON; free it with `tm_string_free`). Metric names start with `taskmanager_`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_stats_prometheus(
    client: *const tm_client,
    out_text: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| write_text(out_text, client_ref(client)?.metrics()?))
}

/// Deletes tasks that finished (completed, failed, cancelled) at least `older_than_seconds`
/// ago, with their history, in short transactions by primary key, so workers keep running.
/// `options_json` (required): `{"older_than_seconds": n}` and, optional, `"statuses": [...]`
/// (a subset of the finished ones), `"batch_size"`: 1..=5000 (default 500), `"dry_run"`:
/// true to count only, `"max_batches"`: n to bound this call. Output: `{"tasks", "history",
/// "batches", "done", "dry_run"}`; `done` is false when `max_batches` stopped it early (call
/// again to go on). A pruned task's dedupe key is free again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_tasks_prune(
    client: *const tm_client,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let options: PruneOptions = json_arg(options_json, "options_json", 4096)?;
        write_json(out_json, &c.prune(&options)?)
    })
}

/// Frees a string returned by this library. NULL is ignored. Never use libc `free` on it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: s came from CString::into_raw in write_json and is freed once.
        drop(unsafe { CString::from_raw(s) });
    }
}
