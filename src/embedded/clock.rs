//! The embedded engine's clock: microseconds since the Unix epoch, UTC, from the host's
//! real-time clock. Every process on the host reads the same clock, so leases, delays and
//! backoffs written by one process mean the same to all the others.

use crate::error::{Error, Result};
use chrono::{DateTime, NaiveDateTime};

/// Now, in microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A time as the API answers it everywhere: RFC 3339, UTC, six fraction digits (as the server
/// engine's `DATE_FORMAT(..., '%Y-%m-%dT%H:%i:%s.%fZ')`).
pub(crate) fn iso(micros: i64) -> String {
    match DateTime::from_timestamp_micros(micros) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        None => String::new(),
    }
}

/// Reads a UTC time as the enqueue checks normalize it (`YYYY-MM-DD HH:MM:SS[.ffffff]`).
pub(crate) fn parse_utc(text: &str) -> Result<i64> {
    let format = if text.contains('.') {
        "%Y-%m-%d %H:%M:%S%.f"
    } else {
        "%Y-%m-%d %H:%M:%S"
    };
    NaiveDateTime::parse_from_str(text, format)
        .map(|t| t.and_utc().timestamp_micros())
        .map_err(|_| {
            Error::invalid(format!(
                "'{text}' is not a UTC time like 2026-01-31T12:00:00Z"
            ))
        })
}

/// Seconds as microseconds.
pub(crate) fn seconds(s: impl Into<i64>) -> i64 {
    s.into().saturating_mul(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = parse_utc("2030-01-02 03:04:05.123456").unwrap();
        assert_eq!(iso(t), "2030-01-02T03:04:05.123456Z");
        assert_eq!(
            iso(parse_utc("1970-01-01 00:00:01").unwrap()),
            "1970-01-01T00:00:01.000000Z"
        );
    }
}
