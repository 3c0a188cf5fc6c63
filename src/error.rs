//! One error type for the whole library. Its `Code` maps 1:1 onto the C ABI's `tm_code`.

use serde_json::Value;
use std::fmt;

/// Stable error codes. The numbers are part of the C ABI and are never renumbered or reused.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// Success (only ever seen across the C ABI).
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 100,
    /// An argument is malformed: bad UTF-8, bad JSON, wrong JSON shape, out-of-range number.
    InvalidArgument = 101,
    /// A payload is larger or deeper than the configured limit.
    PayloadTooLarge = 102,
    /// The configuration is incomplete or invalid.
    Config = 103,
    /// The task or task type does not exist.
    NotFound = 200,
    /// The task type exists but is deactivated.
    TypeInactive = 201,
    /// A parameter schema is not a valid JSON Schema.
    InvalidSchema = 202,
    /// Params do not validate against the type's schema; details list every violation.
    ValidationFailed = 203,
    /// The lease token no longer owns the task.
    LeaseLost = 204,
    /// The request conflicts with the task's current state.
    Conflict = 205,
    /// The database could not be reached or the connection broke before commit (retryable).
    Connection = 300,
    /// The database refused a statement.
    Database = 301,
    /// The connection broke during commit: the change may or may not have been applied.
    OutcomeUnknown = 302,
    /// The server lacks a feature the queue needs (e.g. `SKIP LOCKED`).
    UnsupportedServer = 303,
    /// The database schema is older than this library needs: run the migrations.
    SchemaOutdated = 304,
    /// A bug: a panic was caught at the C boundary.
    Panic = 900,
}

/// One row of the error table: every code's name, what it means and what to do about it.
/// This table is the one definition; the C header's `tm_code`, PHP's `Code` and exception
/// classes, Python's `Code` and exception classes, the README table and
/// docs/troubleshooting.md are checked against it by `tests/error_table.rs`.
#[derive(Debug, Clone, Copy)]
pub struct CodeInfo {
    pub code: Code,
    /// The symbolic name, as in the C header.
    pub name: &'static str,
    /// What it means, in one line (the README's table).
    pub meaning: &'static str,
    /// What to do about it (docs/troubleshooting.md).
    pub remedy: &'static str,
}

const fn row(
    code: Code,
    name: &'static str,
    meaning: &'static str,
    remedy: &'static str,
) -> CodeInfo {
    CodeInfo {
        code,
        name,
        meaning,
        remedy,
    }
}

pub static CODES: &[CodeInfo] = &[
    row(Code::Ok, "TM_OK", "success", "Nothing."),
    row(
        Code::NullParameter,
        "TM_NULL_PARAMETER",
        "a required pointer was NULL",
        "Pass the argument the message names; only `options_json` and `out_json` may be NULL.",
    ),
    row(
        Code::InvalidArgument,
        "TM_INVALID_ARGUMENT",
        "bad UTF-8, bad JSON, wrong shape, out-of-range value",
        "Fix the input the message names (field, rule, what was given); retrying the same call fails again.",
    ),
    row(
        Code::PayloadTooLarge,
        "TM_PAYLOAD_TOO_LARGE",
        "over `max_payload_bytes` or nested deeper than 64",
        "Send less (store big data elsewhere and pass a reference), or raise `max_payload_bytes`.",
    ),
    row(
        Code::Config,
        "TM_CONFIG",
        "bad settings, or the server refused the credentials",
        "Check the setting the message names; for a refused login check db_user, db_pass, db_name and the grants.",
    ),
    row(
        Code::NotFound,
        "TM_NOT_FOUND",
        "no such task or type",
        "Check the id or name; register the type first; a pruned task is gone for good.",
    ),
    row(
        Code::TypeInactive,
        "TM_TYPE_INACTIVE",
        "the type is deactivated",
        "Activate the type (`taskmanager type activate NAME`) or stop enqueuing it; queued tasks still run.",
    ),
    row(
        Code::InvalidSchema,
        "TM_INVALID_SCHEMA",
        "the param schema is not a valid JSON Schema",
        "Fix the schema (the message says where); a stored schema that is not JSON must be registered again.",
    ),
    row(
        Code::ValidationFailed,
        "TM_VALIDATION_FAILED",
        "params do not match; details: `{\"violations\": [{\"path\", \"message\"}]}`",
        "Fix the params: the details list every violation with its path; nothing was written.",
    ),
    row(
        Code::LeaseLost,
        "TM_LEASE_LOST",
        "the token no longer owns the task; nothing changed",
        "Drop the result: the lease ran out and the task went back to the queue or to another worker. Heartbeat more often than the lease.",
    ),
    row(
        Code::Conflict,
        "TM_CONFLICT",
        "not allowed in the current state",
        "Read the task or type again: e.g. a finished task cannot be cancelled, a version's schema cannot change.",
    ),
    row(
        Code::Connection,
        "TM_CONNECTION",
        "cannot reach the server; nothing committed; retry",
        "Retry after a pause; check that the server runs and the host list is right.",
    ),
    row(
        Code::Database,
        "TM_DATABASE",
        "the server refused a statement; details: `{\"server_code\": n}`",
        "Look up `server_code` in the server's error list; grants (1142) and a full disk are the usual causes.",
    ),
    row(
        Code::OutcomeUnknown,
        "TM_OUTCOME_UNKNOWN",
        "the connection broke during commit; repeat the call",
        "Repeat the same call: every step is safe to repeat and answers `repeated` if it had committed.",
    ),
    row(
        Code::UnsupportedServer,
        "TM_UNSUPPORTED_SERVER",
        "needs MariaDB 10.6+ or MySQL 8.0.1+ (SKIP LOCKED)",
        "Upgrade the server: the queue needs FOR UPDATE SKIP LOCKED on InnoDB.",
    ),
    row(
        Code::SchemaOutdated,
        "TM_SCHEMA_OUTDATED",
        "run the migrations",
        "Run `taskmanager migrate` (or tm_migrate) with an account that may run DDL.",
    ),
    row(
        Code::Panic,
        "TM_PANIC",
        "a bug in the library, caught at the boundary",
        "Report it with the message; the process is unharmed and the call changed nothing it did not report.",
    ),
];

impl Code {
    /// The symbolic name, as in the C header (`TM_NOT_FOUND`, ...).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// This code's row of [`CODES`].
    pub fn info(self) -> &'static CodeInfo {
        CODES
            .iter()
            .find(|row| row.code == self)
            .unwrap_or(&CODES[CODES.len() - 1])
    }
}

/// An error with a code, a message a person can act on, and optional structured details.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    code: Code,
    message: String,
    details: Option<Value>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Structured details: the violation list for `ValidationFailed`, `{"server_code": n}` for
    /// database errors.
    pub fn details(&self) -> Option<&Value> {
        self.details.as_ref()
    }

    /// The server's error number, for errors the database reported.
    pub fn server_code(&self) -> Option<u64> {
        self.details.as_ref()?.get("server_code")?.as_u64()
    }

    /// Whether the connection this error came from can no longer be trusted (it broke, timed
    /// out, or may have committed without saying so): such a connection is closed, not pooled.
    pub(crate) fn leaves_connection_in_doubt(&self) -> bool {
        matches!(self.code, Code::Connection | Code::OutcomeUnknown)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(Code::InvalidArgument, message)
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::new(Code::Config, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Error::new(Code::NotFound, message)
    }

    /// Replaces every occurrence of `secret` in the message and details; used so that the
    /// database password can never leak through a driver message.
    pub(crate) fn redact(mut self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        if self.message.contains(secret) {
            self.message = self.message.replace(secret, "***");
        }
        if let Some(details) = &self.details {
            let text = details.to_string();
            if text.contains(secret) {
                self.details = serde_json::from_str(&text.replace(secret, "***")).ok();
            }
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

impl std::error::Error for Error {}
