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

impl Code {
    /// The symbolic name, as in the C header (`TM_NOT_FOUND`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "TM_OK",
            Code::NullParameter => "TM_NULL_PARAMETER",
            Code::InvalidArgument => "TM_INVALID_ARGUMENT",
            Code::PayloadTooLarge => "TM_PAYLOAD_TOO_LARGE",
            Code::Config => "TM_CONFIG",
            Code::NotFound => "TM_NOT_FOUND",
            Code::TypeInactive => "TM_TYPE_INACTIVE",
            Code::InvalidSchema => "TM_INVALID_SCHEMA",
            Code::ValidationFailed => "TM_VALIDATION_FAILED",
            Code::LeaseLost => "TM_LEASE_LOST",
            Code::Conflict => "TM_CONFLICT",
            Code::Connection => "TM_CONNECTION",
            Code::Database => "TM_DATABASE",
            Code::OutcomeUnknown => "TM_OUTCOME_UNKNOWN",
            Code::UnsupportedServer => "TM_UNSUPPORTED_SERVER",
            Code::SchemaOutdated => "TM_SCHEMA_OUTDATED",
            Code::Panic => "TM_PANIC",
        }
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
