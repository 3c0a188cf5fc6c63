//! The embedded engine's settings: which SQLite file (`db_path`, or a `sqlite:` `database_url`),
//! how durable its commits are, and how long a writer waits for another process's lock.

use super::{
    CONNECTION_KEYS, DEFAULT_LAZY_RECOVERY_INTERVAL_MS, Reader, YEAR_SECONDS, percent_decode,
};
use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// Where the embedded engine keeps the queue: one SQLite file (`db_path`, or a `sqlite:`
/// `database_url`). Two clients with equal settings share one store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileSettings {
    /// The file (created by the migration when missing); relative to the working directory.
    pub path: std::path::PathBuf,
    /// `sqlite_synchronous`: `full` (the default: a commit survives power loss) or `normal`
    /// (a commit survives the crash of any process; the last ones may be lost on power loss).
    pub synchronous: Synchronous,
    /// How long a writer waits for another process's write lock (`lock_wait_timeout`).
    pub busy_timeout_secs: u64,
    /// How often a busy claimer stops to recover expired leases, in ms (the hidden key
    /// `lazy_recovery_interval_ms`, as for a server).
    pub lazy_recovery_interval_ms: u64,
}

/// SQLite's `synchronous` setting for the queue file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Synchronous {
    /// Every commit is on disk before the call returns.
    Full,
    /// Commits survive any process crash; in WAL mode the last may be lost on power loss.
    Normal,
}

impl Synchronous {
    pub(crate) fn as_sql(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// The embedded engine's settings when `db_path` or a `sqlite:` URL selects it. A server's
/// keys beside them are refused, naming both, rather than one silently ignored.
pub(super) fn embedded_settings(
    map: &Map<String, Value>,
    reader: &Reader<'_>,
) -> Result<Option<FileSettings>> {
    let url = reader.string("database_url")?;
    let from_url = match url.as_deref() {
        Some(url) if url.starts_with("sqlite:") => Some(sqlite_url_path(url)?),
        _ => None,
    };
    let path = match (
        reader.string("db_path")?.filter(|p| !p.is_empty()),
        from_url,
    ) {
        (Some(_), Some(_)) => {
            return Err(Error::config(
                "give either db_path or a sqlite: database_url, not both",
            ));
        }
        (Some(_), None) if url.is_some() => {
            return Err(Error::config(
                "db_path (the embedded engine's file) and database_url (a server) were both                  given: keep one",
            ));
        }
        (Some(path), None) | (None, Some(path)) => path,
        (None, None) => {
            if map.contains_key("sqlite_synchronous") {
                return Err(Error::config(
                    "sqlite_synchronous is a setting of the embedded engine: give db_path too",
                ));
            }
            return Ok(None);
        }
    };
    let chosen = if map.contains_key("db_path") {
        "db_path"
    } else {
        "database_url"
    };
    if let Some(clash) = CONNECTION_KEYS.iter().find(|k| map.contains_key(**k)) {
        return Err(Error::config(format!(
            "{chosen} selects the embedded engine (a SQLite file) but {clash} is a server              setting: give one or the other, not both"
        )));
    }
    let synchronous = match reader
        .string("sqlite_synchronous")?
        .map(|s| s.to_lowercase())
    {
        None => Synchronous::Full,
        Some(s) if s == "full" => Synchronous::Full,
        Some(s) if s == "normal" => Synchronous::Normal,
        Some(other) => {
            return Err(Error::config(format!(
                "sqlite_synchronous must be full or normal, got '{other}'"
            )));
        }
    };
    Ok(Some(FileSettings {
        path: path.into(),
        synchronous,
        busy_timeout_secs: reader.int("lock_wait_timeout", 1, 3600)?.unwrap_or(10),
        lazy_recovery_interval_ms: reader
            .int("lazy_recovery_interval_ms", 0, YEAR_SECONDS * 1000)?
            .unwrap_or(DEFAULT_LAZY_RECOVERY_INTERVAL_MS),
    }))
}

/// The file of a `sqlite:` URL, in sqlx's spelling: `sqlite://relative/path.db`,
/// `sqlite:///absolute/path.db` (also `sqlite:path.db`).
fn sqlite_url_path(url: &str) -> Result<String> {
    let rest = url.strip_prefix("sqlite:").unwrap_or(url);
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    if rest.contains('?') {
        return Err(Error::config(
            "a sqlite: database_url takes no query parameters; use sqlite_synchronous and              lock_wait_timeout",
        ));
    }
    let path = percent_decode(rest)
        .ok_or_else(|| Error::config("database_url has a bad %-escape in its path"))?;
    if path.is_empty() {
        return Err(Error::config(
            "database_url sqlite: names no file (expected sqlite://relative/path.db or              sqlite:///absolute/path.db)",
        ));
    }
    Ok(path)
}
