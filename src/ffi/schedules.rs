//! The C ABI of recurring tasks: `tm_schedule_put`, `_get`, `_list`, `_delete` and
//! `tm_schedules_tick`, thin like every export (see `exports`).

#![allow(clippy::missing_safety_doc)]

use super::{boundary, client_ref, json_arg, text, tm_client, tm_error, write_json};
use crate::ScheduleDefinition;
use std::ffi::c_char;

/// Creates or replaces (by name) a recurring schedule: a task of `"type"` with `"params"` at
/// every occurrence of `"cron"` in `"timezone"`. `schedule_json`:
/// `{"name": "nightly", "type": "report", "cron": "0 3 * * *", "timezone": "Europe/Prague",
/// "params": {...}, "enabled": true, "misfire": "skip", "misfire_grace_seconds": 300}`;
/// `name` (1 to 150 characters), `type` (a registered type) and `cron` (five fields, six
/// with seconds first, or `@daily`...) are required; `timezone` defaults to `"UTC"`, `params`
/// to `{}` (checked against the type's schema now: `TM_VALIDATION_FAILED`), `enabled` to
/// true. `misfire` says what happens to occurrences more than `misfire_grace_seconds`
/// (0..=604800, default 300) old when a tick finds them: `"skip"` (default) drops them,
/// `"once"` runs the latest of them once, `"backfill"` runs each, up to the latest 10000.
/// A bad field is `TM_INVALID_ARGUMENT` whose message and details (`{"field": ...}`) name it;
/// an unknown type is `TM_NOT_FOUND`. Putting the same cron, time zone and enabled state
/// again keeps the next run. Output: the schedule (`id`, `name`, `type`, `cron`, `timezone`,
/// `params`, `enabled`, `misfire`, `misfire_grace_seconds`, `next_run_at` (UTC; null when
/// disabled), `last_run_at`, `created_at`, `updated_at`, `changed`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_schedule_put(
    client: *const tm_client,
    schedule_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let definition: ScheduleDefinition =
            json_arg(schedule_json, "schedule_json", c.config().max_payload_bytes)?;
        write_json(out_json, &c.schedule_put(&definition)?)
    })
}

/// One schedule by name. Output: the schedule; an unknown name is `TM_NOT_FOUND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_schedule_get(
    client: *const tm_client,
    name: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        write_json(out_json, &c.schedule_get(text(name, "name")?)?)
    })
}

/// Every schedule, by name. Output: a JSON array of schedules, each with its `next_run_at`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_schedule_list(
    client: *const tm_client,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| write_json(out_json, &client_ref(client)?.schedule_list()?))
}

/// Deletes a schedule with its runs; the tasks it made stay. Output: the schedule as it was;
/// an unknown name is `TM_NOT_FOUND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_schedule_delete(
    client: *const tm_client,
    name: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        write_json(out_json, &c.schedule_delete(text(name, "name")?)?)
    })
}

/// Enqueues every due occurrence of every schedule that no other ticker holds at the moment
/// (claims also tick, a few schedules at a time: call this from cron where no worker runs).
/// Each occurrence becomes exactly one task, whatever the number of tickers and hosts; the
/// database's clock decides what is due. Output: `{"enqueued": [{"schedule", "type",
/// "scheduled_for", "task_id", "deduplicated"}], "missed": [{"schedule", "first", "last"}],
/// "errors": [{"schedule", "scheduled_for", "message"}]}`: the tasks made, the occurrences the
/// misfire policy dropped, and occurrences that made no task (type deactivated, params no
/// longer valid) with the reason.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_schedules_tick(
    client: *const tm_client,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| write_json(out_json, &client_ref(client)?.schedules_tick()?))
}
