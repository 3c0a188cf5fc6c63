//! The C ABI of an enqueue inside the caller's own transaction: `tm_task_enqueue_statement`,
//! thin like every export (see `exports`).

#![allow(clippy::missing_safety_doc)]

use super::{boundary, client_ref, json_value, options, text, tm_client, tm_error, write_json};
use crate::EnqueueOptions;
use std::ffi::c_char;

/// The enqueue of one task as SQL that the application runs on its own connection, inside its
/// own transaction, so that the task exists if and only if that transaction commits. The
/// params are validated (`TM_VALIDATION_FAILED`) and keyed now, with the options of
/// `tm_task_enqueue` but `"unique_for_seconds"` (`TM_INVALID_ARGUMENT`). Every value in the
/// SQL is a hexadecimal literal written by the library: nothing in the params can change the
/// statement.
///
/// Output: `{"sql", "history_sql", "statements", "select_sql", "type", "dedupe_key"}`:
/// - `"sql"`: the task's INSERT, one statement. A key already held by a committed task makes
///   it a no-op (a duplicate: the transaction adds no task); a key held by another open
///   transaction makes it wait for that one, as any unique insert does. Afterwards
///   `LAST_INSERT_ID()` is the id of the task holding the key, created or not;
/// - `"history_sql"`: with history on, the task's `created` history row (MySQL writes one
///   table per statement), to run after `"sql"` in the same transaction; it writes nothing for
///   a duplicate. `null` with history off;
/// - `"statements"`: `"sql"` then `"history_sql"`, everything to run, in order;
/// - `"select_sql"`: optional, after them: one row `id, status, created` (1 when these
///   statements created the task, 0 for a duplicate).
///
/// Each answer carries a token of its own: running its statements twice creates one task.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_task_enqueue_statement(
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
        let options: EnqueueOptions = options(options_json, "options_json")?;
        write_json(
            out_json,
            &c.enqueue_statement(type_name, &params, &options)?,
        )
    })
}
