//! Typed configuration: the original system's settings plus the knobs a pool needs.
//!
//! Read from a JSON object (keys are the original constant names in lower case), from one
//! `database_url`, or from `TASKMANAGER_*` environment variables when no JSON is given.

mod embedded;

use embedded::embedded_settings;
pub use embedded::{FileSettings, Synchronous};

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::fmt;

/// A string that never shows itself in `Debug` or `Display` output.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value itself, for the one place that must send it (the connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where and how to connect. Two clients with equal `Connection`s share one pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connection {
    /// Host name or IP address of the server (`db_host`).
    pub host: String,
    /// TCP port (`db_port`).
    pub port: u16,
    /// Servers tried in order after `host:port` when a new connection cannot be made there
    /// (a failover pair, a Galera cluster); empty for one server.
    pub failover_hosts: Vec<(String, u16)>,
    /// A Unix socket to connect through instead of TCP (`db_socket`).
    pub socket: Option<String>,
    /// The database (`db_name`).
    pub name: String,
    /// The account (`db_user`).
    pub user: String,
    /// Its password (`db_pass`).
    pub pass: Secret,
    /// Longest wait for a new connection, in seconds.
    pub connect_timeout_secs: u64,
    /// Longest wait for the server on a read or write, in seconds.
    pub io_timeout_secs: u64,
    /// The session's `innodb_lock_wait_timeout`, in seconds.
    pub lock_wait_timeout_secs: u64,
    /// Most connections the pool keeps open at once.
    pub pool_max_connections: usize,
    /// How often a busy claimer stops to recover expired leases, in ms (the hidden key
    /// `lazy_recovery_interval_ms`). Part of the connection because the throttle belongs to
    /// the handle that clients with equal settings share.
    pub lazy_recovery_interval_ms: u64,
}

/// The whole configuration of a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where and how to connect.
    pub connection: Connection,
    /// The embedded engine's file when the queue lives in SQLite (`db_path`); `connection`
    /// then names no server and is not used.
    pub embedded: Option<FileSettings>,
    /// Default lease length in seconds (the original `TASK_CLAIM_TIMEOUT`).
    pub task_claim_timeout: u32,
    /// Default attempts before a task is dead (the original `MAX_TASK_ATTEMPTS`).
    pub max_task_attempts: u32,
    /// Whether every change writes a `task_history` row (`enable_task_history`).
    pub enable_task_history: bool,
    /// Whether params are checked against their type's JSON Schema
    /// (`enable_schema_validation`).
    pub enable_schema_validation: bool,
    /// Largest accepted params / result / schema JSON text, in bytes.
    pub max_payload_bytes: usize,
    /// First retry delay of the exponential backoff, in seconds.
    pub retry_backoff_base_secs: u32,
    /// Upper bound of the retry delay, in seconds.
    pub retry_backoff_max_secs: u32,
}

/// JSON nested deeper than this is refused before any other work (fixed, not configurable).
pub const MAX_JSON_DEPTH: usize = 64;

/// A year in seconds (365 days): the bound of every setting or option that is a duration.
const YEAR_SECONDS: u64 = 31_536_000;

/// The longest lease a setting or a claim may ask for.
pub const MAX_LEASE_SECONDS: u64 = YEAR_SECONDS;

/// The longest retry delay the backoff settings may give.
pub const MAX_RETRY_BACKOFF_SECONDS: u64 = YEAR_SECONDS;

/// The furthest into the future a delay may put a task (ten years).
pub const MAX_DELAY_SECONDS: u64 = 10 * YEAR_SECONDS;

/// The longest error message a failure may carry, in bytes: what the `error_message` TEXT
/// column holds.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 65_535;

/// The keys that say where and how to connect one by one; `database_url` says it all at once,
/// so it excludes each of them.
pub const CONNECTION_KEYS: &[&str] = &[
    "db_host",
    "db_hosts",
    "db_port",
    "db_name",
    "db_user",
    "db_pass",
    "db_socket",
];

/// The keys of everything else.
const OTHER_KEYS: &[&str] = &[
    "db_path",
    "sqlite_synchronous",
    "db_charset",
    "task_claim_timeout",
    "max_task_attempts",
    "enable_task_history",
    "enable_schema_validation",
    "max_payload_bytes",
    "retry_backoff_base",
    "retry_backoff_max",
    "connect_timeout",
    "io_timeout",
    "lock_wait_timeout",
    "pool_max_connections",
];

/// Keys accepted but not listed in [`KEYS`], the README or the environment: settings for tests
/// that must not wait on the clock, not for deployments.
const HIDDEN_KEYS: &[&str] = &["lazy_recovery_interval_ms"];

/// The default of `lazy_recovery_interval_ms`: a busy queue recovers an expired lease within
/// a second, and pays for the recovery pass at most once a second per process.
pub const DEFAULT_LAZY_RECOVERY_INTERVAL_MS: u64 = 1000;

/// Every key the JSON / environment form accepts; the environment variable is
/// `TASKMANAGER_` followed by the key in upper case.
pub const KEYS: &[&str] = &all_keys();

const KEY_COUNT: usize = 1 + CONNECTION_KEYS.len() + OTHER_KEYS.len();

/// `database_url`, [`CONNECTION_KEYS`] and [`OTHER_KEYS`], each listed once.
const fn all_keys() -> [&'static str; KEY_COUNT] {
    let mut keys = ["database_url"; KEY_COUNT];
    let mut i = 0;
    while i < CONNECTION_KEYS.len() {
        keys[1 + i] = CONNECTION_KEYS[i];
        i += 1;
    }
    let mut j = 0;
    while j < OTHER_KEYS.len() {
        keys[1 + i + j] = OTHER_KEYS[j];
        j += 1;
    }
    keys
}

impl Config {
    /// Parses a JSON object. `None`, empty text or `{}` read the environment instead.
    pub fn from_json_text(text: Option<&str>) -> Result<Config> {
        let object = match text.map(str::trim) {
            None | Some("") => Map::new(),
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(Error::config("the configuration must be a JSON object")),
                Err(e) => {
                    return Err(Error::config(format!(
                        "the configuration is not valid JSON: {e}"
                    )));
                }
            },
        };
        if object.is_empty() {
            Config::from_env()
        } else {
            Config::from_map(&object)
        }
    }

    /// The settings the `TASKMANAGER_*` environment variables give, as a map of the keys the README
    /// lists (for
    /// callers that layer them over a file, as the command line does).
    pub fn env_map() -> Map<String, Value> {
        KEYS.iter()
            .filter_map(|key| {
                std::env::var(format!("TASKMANAGER_{}", key.to_uppercase()))
                    .ok()
                    .map(|value| ((*key).to_string(), Value::String(value)))
            })
            .collect()
    }

    /// Reads `TASKMANAGER_DB_HOST`, `TASKMANAGER_DB_NAME`, ... (every key the README lists).
    pub fn from_env() -> Result<Config> {
        let map = Config::env_map();
        if map.is_empty() {
            return Err(Error::config(
                "no configuration given and no TASKMANAGER_* environment variable is set: \
                 set TASKMANAGER_DATABASE_URL or TASKMANAGER_DB_NAME and TASKMANAGER_DB_USER",
            ));
        }
        Config::from_map(&map)
    }

    /// Builds a config from a map of the keys the README lists; values may be JSON numbers and
    /// booleans or strings holding them (as the environment gives them).
    pub fn from_map(map: &Map<String, Value>) -> Result<Config> {
        if let Some(unknown) = map
            .keys()
            .find(|k| !KEYS.contains(&k.as_str()) && !HIDDEN_KEYS.contains(&k.as_str()))
        {
            return Err(Error::config(format!(
                "unknown configuration key '{unknown}'; known keys: {}",
                KEYS.join(", ")
            )));
        }
        let reader = Reader(map);
        let embedded = embedded_settings(map, &reader)?;
        let from_url = match reader
            .string("database_url")?
            .filter(|_| embedded.is_none())
        {
            Some(url) => {
                if let Some(clash) = CONNECTION_KEYS.iter().find(|k| map.contains_key(**k)) {
                    return Err(Error::config(format!(
                        "give either database_url or {clash}, not both"
                    )));
                }
                Some(parse_url(&url)?)
            }
            None => None,
        };
        let charset = reader
            .string("db_charset")?
            .unwrap_or_else(|| "utf8mb4".into());
        // The data is always stored and exchanged as utf8mb4; the older utf8 names are accepted
        // so an existing config.php keeps working, and utf8mb4 is used regardless.
        if !["utf8mb4", "utf8", "utf8mb3"].contains(&charset.to_lowercase().as_str()) {
            return Err(Error::config(format!(
                "db_charset '{charset}' is not supported: use utf8mb4"
            )));
        }
        let (hosts, socket, name, user, pass) = match from_url {
            Some(url) => url,
            // The embedded engine names no server: the connection is a placeholder.
            None if embedded.is_some() => (
                vec![(String::new(), 0)],
                None,
                "embedded".into(),
                "embedded".into(),
                Secret::new(""),
            ),
            None => {
                let port = reader.int("db_port", 1, u16::MAX.into())?.unwrap_or(3306) as u16;
                let hosts = match (reader.string("db_host")?, map.get("db_hosts")) {
                    (Some(_), Some(_)) => {
                        return Err(Error::config("give either db_host or db_hosts, not both"));
                    }
                    (Some(list), None) => host_list(&list, port)?,
                    (None, Some(Value::Array(items))) => {
                        let mut hosts = Vec::new();
                        for item in items {
                            let text = item.as_str().ok_or_else(|| {
                                Error::config("db_hosts must list host or host:port strings")
                            })?;
                            hosts.extend(host_list(text, port)?);
                        }
                        hosts
                    }
                    (None, Some(_)) => {
                        host_list(&reader.string("db_hosts")?.unwrap_or_default(), port)?
                    }
                    (None, None) => vec![("localhost".into(), port)],
                };
                (
                    hosts,
                    reader.string("db_socket")?.filter(|s| !s.is_empty()),
                    reader.string("db_name")?.unwrap_or_default(),
                    reader.string("db_user")?.unwrap_or_default(),
                    Secret::new(reader.string("db_pass")?.unwrap_or_default()),
                )
            }
        };
        let mut hosts = hosts.into_iter();
        let (host, port) = hosts
            .next()
            .ok_or_else(|| Error::config("db_hosts must name at least one host"))?;
        if name.is_empty() {
            return Err(Error::config(
                "db_name is required (or a database_url with a database)",
            ));
        }
        if user.is_empty() {
            return Err(Error::config(
                "db_user is required (or a database_url with a user)",
            ));
        }
        let connection = Connection {
            host,
            port,
            failover_hosts: hosts.collect(),
            socket,
            name,
            user,
            pass,
            connect_timeout_secs: reader.int("connect_timeout", 1, 3600)?.unwrap_or(10),
            io_timeout_secs: reader.int("io_timeout", 1, 86_400)?.unwrap_or(60),
            lock_wait_timeout_secs: reader.int("lock_wait_timeout", 1, 3600)?.unwrap_or(10),
            pool_max_connections: reader.int("pool_max_connections", 1, 1000)?.unwrap_or(16)
                as usize,
            lazy_recovery_interval_ms: reader
                .int("lazy_recovery_interval_ms", 0, YEAR_SECONDS * 1000)?
                .unwrap_or(DEFAULT_LAZY_RECOVERY_INTERVAL_MS),
        };
        let config = Config {
            connection,
            embedded,
            task_claim_timeout: reader
                .int("task_claim_timeout", 1, MAX_LEASE_SECONDS)?
                .unwrap_or(300) as u32,
            max_task_attempts: reader.int("max_task_attempts", 1, 1_000_000)?.unwrap_or(3) as u32,
            enable_task_history: reader.boolean("enable_task_history")?.unwrap_or(true),
            enable_schema_validation: reader.boolean("enable_schema_validation")?.unwrap_or(true),
            max_payload_bytes: reader
                .int("max_payload_bytes", 64, 64 * 1024 * 1024)?
                .unwrap_or(1 << 20) as usize,
            retry_backoff_base_secs: reader.int("retry_backoff_base", 0, 86_400)?.unwrap_or(10)
                as u32,
            retry_backoff_max_secs: reader
                .int("retry_backoff_max", 0, MAX_RETRY_BACKOFF_SECONDS)?
                .unwrap_or(3600) as u32,
        };
        Ok(config)
    }
}

struct Reader<'a>(&'a Map<String, Value>);

impl Reader<'_> {
    fn string(&self, key: &str) -> Result<Option<String>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(Error::config(format!("{key} must be a string"))),
        }
    }

    fn int(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>> {
        let value = match self.0.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        match value {
            Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(Error::config(format!(
                "{key} must be an integer from {min} to {max}"
            ))),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
            Some(Value::String(s)) => match s.trim().to_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(Some(true)),
                "0" | "false" | "no" | "off" | "" => Ok(Some(false)),
                _ => Err(Error::config(format!("{key} must be true or false"))),
            },
            Some(_) => Err(Error::config(format!("{key} must be true or false"))),
        }
    }
}

type UrlParts = (Vec<(String, u16)>, Option<String>, String, String, Secret);

/// Servers from `a`, `a:3307`, `[::1]:3307` or several of them separated by commas, in order;
/// an entry without a port takes `default_port`.
fn host_list(text: &str, default_port: u16) -> Result<Vec<(String, u16)>> {
    let bad = |entry: &str| {
        Error::config(format!(
            "'{entry}' is not a host, host:port or [IPv6]:port (several are separated by commas)"
        ))
    };
    let mut hosts = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad(entry))?;
            match after.strip_prefix(':') {
                Some(port) => (host, parse_port(port).ok_or_else(|| bad(entry))?),
                None if after.is_empty() => (host, default_port),
                None => return Err(bad(entry)),
            }
        } else if entry.matches(':').count() > 1 {
            // A bare IPv6 address: no port can follow it without brackets.
            (entry, default_port)
        } else {
            match entry.split_once(':') {
                Some((host, port)) => (host, parse_port(port).ok_or_else(|| bad(entry))?),
                None => (entry, default_port),
            }
        };
        if host.is_empty() || port == 0 {
            return Err(bad(entry));
        }
        hosts.push((host.to_string(), port));
    }
    if hosts.is_empty() {
        return Err(Error::config("no database host given"));
    }
    Ok(hosts)
}

/// A port: decimal digits only (`str::parse` would also take a leading `+`).
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses `mysql://user:pass@host:port/db?socket=/path`. Written here rather than delegated so
/// that no error message can ever echo the URL (and the password in it).
fn parse_url(url: &str) -> Result<UrlParts> {
    let bad = |why: &str| {
        Error::config(format!(
            "database_url is invalid: {why} (expected mysql://user:pass@host:port/database)"
        ))
    };
    let rest = url
        .strip_prefix("mysql://")
        .or_else(|| url.strip_prefix("mariadb://"))
        .ok_or_else(|| bad("it must start with mysql:// or mariadb://"))?;
    let (authority, path_and_query) = rest
        .split_once('/')
        .ok_or_else(|| bad("no database name"))?;
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let (userinfo, hostport) = authority.rsplit_once('@').ok_or_else(|| bad("no user"))?;
    let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let hosts = if hostport.is_empty() {
        vec![("localhost".to_string(), 3306)]
    } else {
        // Only the shape is reported: the URL itself never goes into a message.
        host_list(hostport, 3306)
            .map_err(|_| bad("a host is not host, host:port or [IPv6]:port"))?
    };
    let mut socket = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("socket", value)) => {
                socket = Some(percent_decode(value).ok_or_else(|| bad("bad %-escape"))?)
            }
            _ => return Err(bad("the only supported query parameter is socket")),
        }
    }
    Ok((
        hosts,
        socket,
        percent_decode(path).ok_or_else(|| bad("bad %-escape in the database name"))?,
        percent_decode(user).ok_or_else(|| bad("bad %-escape in the user"))?,
        Secret::new(percent_decode(pass).ok_or_else(|| bad("bad %-escape in the password"))?),
    ))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            // Checked first: from_str_radix alone takes a sign, so "%+f" would decode.
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
