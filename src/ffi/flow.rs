//! The C ABI of flow control: `tm_type_pause`, `tm_type_resume` and `tm_type_set_limits`, thin
//! like every export (see `exports`).

#![allow(clippy::missing_safety_doc)]

use super::{boundary, client_ref, json_value, options, text, tm_client, tm_error, write_json};
use crate::PauseOptions;
use crate::flow::limits_from_json;
use std::ffi::c_char;

/// Pauses a task type: claims that begin after this call returns hand out none of its tasks,
/// in every process and on every host, until `tm_type_resume` (or the pause's end). The type
/// keeps accepting tasks, and tasks already claimed finish normally. `options_json` may be
/// NULL or `{"until": "2026-12-24T18:00:00Z"}`: the pause ends by itself then (RFC 3339, in
/// the future, at most a year ahead, else `TM_INVALID_ARGUMENT` naming `until`). Pausing again
/// replaces the end. Output: the type, with `"paused": true` and `"paused_until"` (null when
/// paused until resumed). An unknown type is `TM_NOT_FOUND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_type_pause(
    client: *const tm_client,
    name: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let options: PauseOptions = options(options_json, "options_json")?;
        write_json(out_json, &c.pause_type(text(name, "name")?, &options)?)
    })
}

/// Ends a type's pause (a type that is not paused stays as it is). Output: the type. An
/// unknown type is `TM_NOT_FOUND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_type_resume(
    client: *const tm_client,
    name: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        write_json(out_json, &c.resume_type(text(name, "name")?)?)
    })
}

/// Sets or removes a type's limits. `limits_json`: `{"max_running": n | null, "rate":
/// {"limit": n, "per_seconds": s, "burst": b} | null}`; a key left out keeps its value, `null`
/// removes that limit.
/// - `"max_running"` (1 to 100000): at no moment do more than n of the type's tasks hold a
///   lease, whatever the number of claimers, processes and hosts. A crashed worker's slot
///   comes back when its lease expires; a claim that finds the type saturated takes other
///   types' tasks and never waits.
/// - `"rate"`: claims start at most `limit + burst` of the type's tasks in any window of
///   `per_seconds` seconds, a sliding window counted when a claim hands them out (`limit` 1 to
///   100000, `per_seconds` 1 to 31536000, `burst` 0 (the default) to 100000 - `limit`).
///
/// Tasks held back stay pending and spend no attempt. A bad value is `TM_INVALID_ARGUMENT`
/// naming the field in its message and in its details (`{"field": "rate.limit"}`; one of
/// `max_running`, `rate`, `rate.limit`, `rate.per_seconds`, `rate.burst`). Output:
/// the type, with `"max_running"` and `"rate"`. An unknown type is `TM_NOT_FOUND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_type_set_limits(
    client: *const tm_client,
    name: *const c_char,
    limits_json: *const c_char,
    out_json: *mut *mut c_char,
) -> *mut tm_error {
    boundary(|| {
        let c = client_ref(client)?;
        let limits = limits_from_json(&json_value(limits_json, "limits_json", 4096)?)?;
        write_json(out_json, &c.set_type_limits(text(name, "name")?, &limits)?)
    })
}
