//! The C ABI. Conventions (see `include/taskmanager.h`):
//!
//! - every fallible function returns `tm_error *`, NULL on success, and writes its outputs
//!   only on success;
//! - inputs are NUL-terminated UTF-8, structured data is JSON text;
//! - output strings belong to the caller and are freed with `tm_string_free`;
//! - no panic crosses the boundary: `boundary()` turns one into `TM_PANIC`.
//!
//! Arguments and outputs cross as pointers through this module's helpers (`client_ref`,
//! `text`, `json_arg`, `write_json`, ...), so the exports stay thin. The only other unsafe code
//! makes and frees handles: `tm_client_open`, `tm_client_free` and `tm_string_free` in
//! `exports`, and the `tm_error` accessors and `tm_error_free` in `error`.

#![allow(non_camel_case_types)]

mod error;
mod exports;
mod flow;
mod in_transaction;
mod schedules;

pub use error::{
    tm_code, tm_error, tm_error_code, tm_error_details, tm_error_free, tm_error_message,
};
pub use exports::*;
pub use in_transaction::*;
pub use schedules::*;

use crate::Client;
use crate::error::{Code, Error, Result};
use crate::json::parse_limited;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

/// A connection to one queue database. Thread-safe: share one handle between threads.
/// Created by `tm_client_open`, freed by `tm_client_free`.
pub struct tm_client {
    pub(crate) inner: Client,
}

/// Largest options / filter JSON accepted from C, independent of the payload setting.
const MAX_OPTIONS_BYTES: usize = 64 * 1024;

/// Runs `body`, turning its error, or a panic, into an owned `tm_error`.
pub(crate) fn boundary(body: impl FnOnce() -> Result<()>) -> *mut tm_error {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => ptr::null_mut(),
        Ok(Err(e)) => error::into_raw(e),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            error::into_raw(Error::new(
                Code::Panic,
                format!("internal error (a bug in TaskManager, please report it): {what}"),
            ))
        }
    }
}

/// The client behind a handle; NULL is `TM_NULL_PARAMETER`.
pub(crate) fn client_ref<'a>(ptr: *const tm_client) -> Result<&'a Client> {
    // SAFETY: a non-NULL handle comes from tm_client_open and lives until tm_client_free.
    unsafe { ptr.as_ref() }
        .map(|c| &c.inner)
        .ok_or_else(|| null_parameter("client"))
}

fn null_parameter(name: &str) -> Error {
    Error::new(Code::NullParameter, format!("{name} must not be NULL"))
}

/// A required string argument.
pub(crate) fn text<'a>(ptr: *const c_char, name: &str) -> Result<&'a str> {
    optional_text(ptr, name)?.ok_or_else(|| null_parameter(name))
}

/// A string argument where NULL means "not given".
pub(crate) fn optional_text<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller passes a NUL-terminated string that outlives this call.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map(Some).map_err(|e| {
        Error::invalid(format!(
            "{name} is not valid UTF-8 (bad byte at offset {})",
            e.valid_up_to()
        ))
    })
}

/// A required JSON argument, parsed with the size and depth limits.
pub(crate) fn json_value(
    ptr: *const c_char,
    name: &str,
    max_bytes: usize,
) -> Result<serde_json::Value> {
    parse_limited(text(ptr, name)?, max_bytes, name)
}

/// A required JSON argument of a known shape.
pub(crate) fn json_arg<T: DeserializeOwned>(
    ptr: *const c_char,
    name: &str,
    max_bytes: usize,
) -> Result<T> {
    shaped(json_value(ptr, name, max_bytes)?, name)
}

/// An options argument: NULL means all defaults.
pub(crate) fn options<T: DeserializeOwned + Default>(ptr: *const c_char, name: &str) -> Result<T> {
    match optional_text(ptr, name)? {
        None => Ok(T::default()),
        Some(text) => shaped(parse_limited(text, MAX_OPTIONS_BYTES, name)?, name),
    }
}

fn shaped<T: DeserializeOwned>(value: serde_json::Value, name: &str) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|e| Error::invalid(format!("{name} has the wrong shape: {e}")))
}

/// Writes `value` as JSON to `*out` (if `out` is not NULL). Call it last, so that an output is
/// written only when the whole call succeeded.
pub(crate) fn write_json(out: *mut *mut c_char, value: &impl Serialize) -> Result<()> {
    if out.is_null() {
        return Ok(());
    }
    let text = serde_json::to_string(value)
        .map_err(|e| Error::new(Code::Panic, format!("cannot serialize output: {e}")))?;
    write_text(out, text)
}

/// Hands `text` to the caller as a string it frees with `tm_string_free`.
pub(crate) fn write_text(out: *mut *mut c_char, text: String) -> Result<()> {
    if out.is_null() {
        return Ok(());
    }
    let owned =
        CString::new(text).map_err(|_| Error::new(Code::Panic, "output contains a NUL byte"))?;
    // SAFETY: `out` is non-NULL and points to writable storage for one pointer.
    unsafe { *out = owned.into_raw() };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_tm_panic() {
        let err = boundary(|| panic!("boom"));
        assert!(!err.is_null());
        // SAFETY: err is a live error from boundary.
        unsafe {
            assert_eq!(tm_error_code(err), tm_code::TM_PANIC);
            let msg = CStr::from_ptr(tm_error_message(err)).to_str().unwrap();
            assert!(msg.contains("boom"));
            tm_error_free(err);
        }
    }

    #[test]
    fn every_code_keeps_its_number() {
        for code in [
            Code::Ok,
            Code::NullParameter,
            Code::InvalidArgument,
            Code::PayloadTooLarge,
            Code::Config,
            Code::NotFound,
            Code::TypeInactive,
            Code::InvalidSchema,
            Code::ValidationFailed,
            Code::LeaseLost,
            Code::Conflict,
            Code::Connection,
            Code::Database,
            Code::OutcomeUnknown,
            Code::UnsupportedServer,
            Code::SchemaOutdated,
            Code::Panic,
        ] {
            assert_eq!(tm_code::from(code) as i32, code as i32, "{code:?}");
            assert_eq!(format!("{:?}", tm_code::from(code)), code.name());
        }
    }
}
