//! Where the command line's settings come from: flags over the `TASKMANAGER_*` environment
//! variables over a JSON file (`--config`), all with the library's keys. The password is never
//! a flag (it would show in the process list): set it in the file or the environment.

use clap::Args;
use serde_json::{Map, Value};
use taskmanager::CONNECTION_KEYS;
use taskmanager::{Client, Code, Config, Error, Result};

#[derive(Args)]
pub struct Flags {
    /// JSON file with settings (keys as in the README: db_host, db_name, ...).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<String>,
    /// mysql://user:pass@host:port/database (or TASKMANAGER_DATABASE_URL).
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    #[arg(long, global = true, value_name = "HOST")]
    db_host: Option<String>,
    #[arg(long, global = true, value_name = "PORT")]
    db_port: Option<u16>,
    #[arg(long, global = true, value_name = "NAME")]
    db_name: Option<String>,
    #[arg(long, global = true, value_name = "USER")]
    db_user: Option<String>,
    /// A unix socket path instead of host and port.
    #[arg(long, global = true, value_name = "PATH")]
    db_socket: Option<String>,
    /// The embedded engine: the queue in this SQLite file instead of on a server.
    #[arg(long, global = true, value_name = "FILE")]
    db_path: Option<String>,
}

/// Opens a client with the layered settings.
pub fn open(flags: &Flags) -> Result<Client> {
    let mut map = match &flags.config {
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                Error::new(Code::Config, format!("cannot read --config {file}: {e}"))
            })?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(map)) => map,
                Ok(_) => {
                    return Err(Error::new(
                        Code::Config,
                        format!("{file} must hold a JSON object"),
                    ));
                }
                Err(e) => {
                    return Err(Error::new(
                        Code::Config,
                        format!("{file} is not valid JSON: {e}"),
                    ));
                }
            }
        }
        None => Map::new(),
    };
    layer(&mut map, Config::env_map());
    let given: [(&str, Option<Value>); 7] = [
        (
            "database_url",
            flags.database_url.clone().map(Value::String),
        ),
        ("db_host", flags.db_host.clone().map(Value::String)),
        ("db_port", flags.db_port.map(Value::from)),
        ("db_name", flags.db_name.clone().map(Value::String)),
        ("db_user", flags.db_user.clone().map(Value::String)),
        ("db_socket", flags.db_socket.clone().map(Value::String)),
        ("db_path", flags.db_path.clone().map(Value::String)),
    ];
    layer(
        &mut map,
        given
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect(),
    );
    if map.is_empty() {
        return Err(Error::new(
            Code::Config,
            "no settings: set TASKMANAGER_DATABASE_URL (or TASKMANAGER_DB_NAME and \
             TASKMANAGER_DB_USER, or TASKMANAGER_DB_PATH), give --config FILE, --database-url \
             or --db-path",
        ));
    }
    Client::open(Config::from_map(&map)?)
}

/// Puts `over` on top of `map`. A database URL, the separate connection keys and the embedded
/// engine's `db_path` exclude each other, so whichever a higher layer gives replaces the
/// other forms from the layers below.
fn layer(map: &mut Map<String, Value>, over: Map<String, Value>) {
    let forms: [&[&str]; 3] = [&["database_url"], CONNECTION_KEYS, &["db_path"]];
    for (i, form) in forms.iter().enumerate() {
        if form.iter().any(|k| over.contains_key(*k)) {
            let others = forms.iter().enumerate().filter(|(j, _)| *j != i);
            others.flat_map(|(_, keys)| keys.iter()).for_each(|k| {
                map.remove(*k);
            });
        }
    }
    map.extend(over);
}

/// An age: seconds, or a number with s, m, h, d or w (`90s`, `30m`, `12h`, `7d`, `2w`).
pub fn seconds(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not an age such as 90s, 30m, 12h or 7d"))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("unknown unit in '{text}': use s, m, h, d or w")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("'{text}' is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ages_and_layers() {
        assert_eq!(seconds("90"), Ok(90));
        assert_eq!(seconds("30m"), Ok(1800));
        assert_eq!(seconds("7d"), Ok(604_800));
        assert!(seconds("7y").is_err() && seconds("").is_err() && seconds("m").is_err());
        let mut map = json!({"database_url": "mysql://a@b/c", "io_timeout": 5})
            .as_object()
            .cloned()
            .unwrap();
        layer(
            &mut map,
            json!({"db_name": "x"}).as_object().cloned().unwrap(),
        );
        assert_eq!(
            Value::Object(map.clone()),
            json!({"db_name": "x", "io_timeout": 5})
        );
        layer(
            &mut map,
            json!({"database_url": "mysql://u@h/d"})
                .as_object()
                .cloned()
                .unwrap(),
        );
        assert_eq!(
            Value::Object(map.clone()),
            json!({"database_url": "mysql://u@h/d", "io_timeout": 5})
        );
        // --db-path over a server's settings selects the file, and the other way round.
        layer(
            &mut map,
            json!({"db_path": "q.db"}).as_object().cloned().unwrap(),
        );
        assert_eq!(
            Value::Object(map.clone()),
            json!({"db_path": "q.db", "io_timeout": 5})
        );
        layer(
            &mut map,
            json!({"db_host": "h"}).as_object().cloned().unwrap(),
        );
        assert_eq!(Value::Object(map), json!({"db_host": "h", "io_timeout": 5}));
    }
}
