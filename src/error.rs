//! One error type for the whole library. Its `Code` maps 1:1 onto the C ABI's `tm_code`.

use serde_json::Value;
use std::fmt;

/// The error table, the one definition of the codes: each row gives the variant of [`Code`]
/// and its documentation, the number (part of the C ABI: never renumbered, never reused), the
/// symbolic name of the C header, what it means in one line (the README's table) and what to
/// do about it (docs/troubleshooting.md). It hands the rows to `$callback`, a macro that
/// generates code from them: [`Code`] and [`CODES`] here, the conversion to the C ABI's
/// `tm_code` in `ffi::error`. The C header's `tm_code`, PHP's and Python's `Code` and
/// exception classes, the README table and docs/troubleshooting.md are checked against it by
/// `tests/error_table.rs`.
macro_rules! with_error_table {
    ($callback:ident) => {
        $callback! {
            /// Success (only ever seen across the C ABI).
            Ok = 0, TM_OK:
                "success",
                "Nothing.";
            /// A required pointer argument was NULL.
            NullParameter = 100, TM_NULL_PARAMETER:
                "a required pointer was NULL",
                "Pass the argument the message names; only `options_json` and `out_json` may be NULL.";
            /// An argument is malformed: bad UTF-8, bad JSON, wrong JSON shape, out-of-range number.
            InvalidArgument = 101, TM_INVALID_ARGUMENT:
                "bad UTF-8, bad JSON, wrong shape, out-of-range value",
                "Fix the input the message names (field, rule, what was given); retrying the same call fails again.";
            /// A payload is larger or deeper than the configured limit.
            PayloadTooLarge = 102, TM_PAYLOAD_TOO_LARGE:
                "over `max_payload_bytes` or nested deeper than 64",
                "Send less (store big data elsewhere and pass a reference), or raise `max_payload_bytes`.";
            /// The configuration is incomplete or invalid.
            Config = 103, TM_CONFIG:
                "bad settings, or the server refused the credentials",
                "Check the setting the message names; for a refused login check db_user, db_pass, db_name and the grants.";
            /// The task or task type does not exist.
            NotFound = 200, TM_NOT_FOUND:
                "no such task or type",
                "Check the id or name; register the type first; a pruned task is gone for good.";
            /// The task type exists but is deactivated.
            TypeInactive = 201, TM_TYPE_INACTIVE:
                "the type is deactivated",
                "Activate the type (`taskmanager type activate NAME`) or stop enqueuing it; queued tasks still run.";
            /// A parameter schema is not a valid JSON Schema.
            InvalidSchema = 202, TM_INVALID_SCHEMA:
                "the param schema is not a valid JSON Schema",
                "Fix the schema (the message says where); a stored schema that is not JSON must be registered again.";
            /// Params do not validate against the type's schema; details list every violation.
            ValidationFailed = 203, TM_VALIDATION_FAILED:
                "params do not match; details: `{\"violations\": [{\"path\", \"message\"}]}`",
                "Fix the params: the details list every violation with its path; nothing was written.";
            /// The lease token no longer owns the task.
            LeaseLost = 204, TM_LEASE_LOST:
                "the token no longer owns the task; nothing changed",
                "Drop the result: the lease ran out and the task went back to the queue or to another worker. Heartbeat more often than the lease.";
            /// The request conflicts with the task's current state.
            Conflict = 205, TM_CONFLICT:
                "not allowed in the current state",
                "Read the task or type again: e.g. a finished task cannot be cancelled, a version's schema cannot change.";
            /// The database could not be reached or the connection broke before commit (retryable).
            Connection = 300, TM_CONNECTION:
                "cannot reach the server; nothing committed; retry",
                "Retry after a pause; check that the server runs and the host list is right.";
            /// The database refused a statement.
            Database = 301, TM_DATABASE:
                "the server refused a statement; details: `{\"server_code\": n}`",
                "Look up `server_code` in the server's error list; grants (1142) and a full disk are the usual causes.";
            /// The connection broke during commit: the change may or may not have been applied.
            OutcomeUnknown = 302, TM_OUTCOME_UNKNOWN:
                "the connection broke during commit; repeat the call",
                "Repeat the same call: every step is safe to repeat and answers `repeated` if it had committed.";
            /// The server lacks a feature the queue needs (e.g. `SKIP LOCKED`).
            UnsupportedServer = 303, TM_UNSUPPORTED_SERVER:
                "needs MariaDB 10.6+ or MySQL 8.0.1+ (SKIP LOCKED)",
                "Upgrade the server: the queue needs FOR UPDATE SKIP LOCKED on InnoDB.";
            /// The database schema is older than this library needs: run the migrations.
            SchemaOutdated = 304, TM_SCHEMA_OUTDATED:
                "run the migrations",
                "Run `taskmanager migrate` (or tm_migrate) with an account that may run DDL.";
            /// A bug: a panic was caught at the C boundary.
            Panic = 900, TM_PANIC:
                "a bug in the library, caught at the boundary",
                "Report it with the message. The process is unharmed, but the call may have committed \
                 part of its work before the bug struck: read the task (get or list) before \
                 repeating the call.";

            // Retired numbers: a code that is removed moves here as a comment, so that its
            // number is never given to another (`Name = n, TM_NAME: retired in x.y, why`).
            // None so far.
        }
    };
}
pub(crate) use with_error_table;

/// Generates [`Code`], [`CODES`] and [`Code::name`] from the table.
macro_rules! define_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $number:literal, $name:ident:
        $meaning:literal, $remedy:literal;)*) => {
        /// Stable error codes. The numbers are part of the C ABI and are never renumbered or
        /// reused.
        #[repr(C)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[doc = $doc])* $variant = $number,)*
        }

        /// Every code with its name, meaning and remedy: the one table the C header, the README
        /// and the bindings are checked against.
        pub static CODES: &[CodeInfo] = &[
            $(CodeInfo {
                code: Code::$variant,
                name: stringify!($name),
                meaning: $meaning,
                remedy: $remedy,
            },)*
        ];

        impl Code {
            /// The symbolic name, as in the C header (`TM_NOT_FOUND`, ...).
            pub fn name(self) -> &'static str {
                match self {
                    $(Code::$variant => stringify!($name),)*
                }
            }
        }
    };
}

with_error_table!(define_codes);

/// One row of the error table ([`CODES`]): a code's name, what it means and what to do about
/// it.
#[derive(Debug, Clone, Copy)]
pub struct CodeInfo {
    /// The code this row describes.
    pub code: Code,
    /// The symbolic name, as in the C header.
    pub name: &'static str,
    /// What it means, in one line (the README's table).
    pub meaning: &'static str,
    /// What to do about it (docs/troubleshooting.md).
    pub remedy: &'static str,
}

impl Code {
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

/// The result of every fallible call of this library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `code` with a message that says what happened and what to do.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// The same error with structured details (see [`Error::details`]).
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Its stable code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// Its message, for a person.
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
