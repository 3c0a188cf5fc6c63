//! `tm_error` and `tm_code`: what every fallible C call returns.

use crate::error::{Code, Error};
use std::ffi::{CString, c_char};

// The error table in `crate::error` is the definition of these codes; this copy, from which
// cbindgen makes the header's `tm_code`, is checked against it when the crate compiles.
/// Result codes. The values are stable: never renumbered, never reused.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tm_code {
    // Undocumented on purpose: a doc comment here would change the generated C header.
    #[allow(missing_docs)]
    TM_OK = 0,
    /// A required pointer argument was NULL.
    TM_NULL_PARAMETER = 100,
    /// Malformed argument: bad UTF-8, bad JSON, wrong JSON shape, out-of-range number.
    TM_INVALID_ARGUMENT = 101,
    /// A payload is larger or deeper than the configured limit.
    TM_PAYLOAD_TOO_LARGE = 102,
    /// The configuration is incomplete or invalid, or the database refused the credentials.
    TM_CONFIG = 103,
    /// No such task or task type.
    TM_NOT_FOUND = 200,
    /// The task type is deactivated.
    TM_TYPE_INACTIVE = 201,
    /// The parameter schema is not a valid JSON Schema.
    TM_INVALID_SCHEMA = 202,
    /// Params do not match the schema; `tm_error_details` lists every violation.
    TM_VALIDATION_FAILED = 203,
    /// The lease token no longer owns the task; nothing was changed.
    TM_LEASE_LOST = 204,
    /// The request conflicts with the current state.
    TM_CONFLICT = 205,
    /// The database could not be reached; nothing was committed. Retry.
    TM_CONNECTION = 300,
    /// The database refused a statement; details carry `server_code`.
    TM_DATABASE = 301,
    /// The connection broke during commit; repeat the call (it is idempotent).
    TM_OUTCOME_UNKNOWN = 302,
    /// The server lacks FOR UPDATE SKIP LOCKED (needs MariaDB 10.6+ or MySQL 8.0.1+).
    TM_UNSUPPORTED_SERVER = 303,
    /// The schema is older than the library needs: call tm_migrate.
    TM_SCHEMA_OUTDATED = 304,
    /// A bug inside the library; the process is unharmed.
    TM_PANIC = 900,
}

/// Generates the conversion from [`Code`] to [`tm_code`] from the error table, and checks at
/// compile time that [`tm_code`] is the table: the same names, each with the table's number,
/// and no other. (`tm_code` is written out above because cbindgen, which makes the C header,
/// reads the source as written and does not expand macros.)
macro_rules! define_c_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $number:literal, $name:ident:
        $meaning:literal, $remedy:literal;)*) => {
        impl From<Code> for tm_code {
            fn from(code: Code) -> tm_code {
                match code {
                    $(Code::$variant => tm_code::$name,)*
                }
            }
        }

        $(const _: () = assert!(tm_code::$name as i64 == $number, stringify!($name));)*

        // Exhaustive: a variant of `tm_code` the table lacks does not compile.
        const _: fn(tm_code) -> Code = |code| match code {
            $(tm_code::$name => Code::$variant,)*
        };
    };
}

crate::error::with_error_table!(define_c_codes);

/// An error: a code, a message, and optional JSON details. Owned by the caller, freed with
/// `tm_error_free`. It never changes, so it may be read from any thread or handed to another;
/// free it once, when no thread reads it any more. Output strings (freed with `tm_string_free`)
/// follow the same rule.
pub struct tm_error {
    pub(crate) code: tm_code,
    pub(crate) message: CString,
    pub(crate) details: Option<CString>,
}

/// Strips NUL bytes, which C strings cannot hold, from text headed for C.
fn c_text(text: &str) -> CString {
    CString::new(text.replace('\0', "")).unwrap_or_default()
}

pub(crate) fn into_raw(e: Error) -> *mut tm_error {
    let details = e.details().map(|d| c_text(&d.to_string()));
    Box::into_raw(Box::new(tm_error {
        code: e.code().into(),
        message: c_text(e.message()),
        details,
    }))
}

/// The code of `err`; `TM_OK` for NULL.
///
/// # Safety
/// `err` must be NULL or a live error returned by this library.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_error_code(err: *const tm_error) -> tm_code {
    // SAFETY: a non-NULL err comes from this library and has not been freed.
    unsafe { err.as_ref() }.map_or(tm_code::TM_OK, |e| e.code)
}

/// The message of `err`: NUL-terminated UTF-8, valid until `tm_error_free(err)`. Never NULL
/// (an empty string for a NULL `err`).
///
/// # Safety
/// `err` must be NULL or a live error returned by this library.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_error_message(err: *const tm_error) -> *const c_char {
    // SAFETY: as above.
    unsafe { err.as_ref() }.map_or(c"".as_ptr(), |e| e.message.as_ptr())
}

/// Structured details of `err` as JSON text (the violation list for
/// `TM_VALIDATION_FAILED`, `{"server_code": n}` for database errors), or NULL when there are
/// none. Valid until `tm_error_free(err)`.
///
/// # Safety
/// `err` must be NULL or a live error returned by this library.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_error_details(err: *const tm_error) -> *const c_char {
    // SAFETY: as above.
    unsafe { err.as_ref() }
        .and_then(|e| e.details.as_ref())
        .map_or(std::ptr::null(), |d| d.as_ptr())
}

/// Frees an error. NULL is allowed and ignored.
///
/// # Safety
/// `err` must be NULL or an error returned by this library and not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tm_error_free(err: *mut tm_error) {
    if !err.is_null() {
        // SAFETY: per the contract above, err came from Box::into_raw in into_raw.
        drop(unsafe { Box::from_raw(err) });
    }
}
