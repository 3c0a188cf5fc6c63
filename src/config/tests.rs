//! The configuration's unit tests.

use super::*;
use crate::Code;
use serde_json::json;

fn parse(v: Value) -> Result<Config> {
    Config::from_map(v.as_object().unwrap())
}

#[test]
fn defaults_match_the_original_system() {
    let c = parse(json!({"db_name": "q", "db_user": "u"})).unwrap();
    assert_eq!(c.task_claim_timeout, 300);
    assert_eq!(c.max_task_attempts, 3);
    assert!(c.enable_task_history);
    assert!(c.enable_schema_validation);
    assert_eq!(c.connection.host, "localhost");
    assert_eq!(c.connection.port, 3306);
}

#[test]
fn url_is_parsed_and_password_never_printed() {
    let c = parse(
        json!({"database_url": "mysql://app:s%40cret@db.example:3307/jobs?socket=%2Frun%2Fm.sock"}),
    )
    .unwrap();
    assert_eq!(c.connection.user, "app");
    assert_eq!(c.connection.pass.expose(), "s@cret");
    assert_eq!(c.connection.port, 3307);
    assert_eq!(c.connection.name, "jobs");
    assert_eq!(c.connection.socket.as_deref(), Some("/run/m.sock"));
    let printed = format!("{c:?}");
    assert!(!printed.contains("s@cret"), "{printed}");
}

#[test]
fn bad_values_name_the_key() {
    let e = parse(json!({"db_name": "q", "db_user": "u", "max_task_attempts": 0})).unwrap_err();
    assert!(e.message().contains("max_task_attempts"));
    let e = parse(json!({"db_name": "q", "db_user": "u", "db_hots": "x"})).unwrap_err();
    assert!(e.message().contains("db_hots"));
    let e = parse(json!({"database_url": "mysql://u:topsecret@h/db", "db_user": "x"})).unwrap_err();
    assert!(!e.message().contains("topsecret"));
    let e = parse(json!({"database_url": "postgres://u:topsecret@h/db"})).unwrap_err();
    assert!(!e.message().contains("topsecret"));
}

#[test]
fn several_hosts_are_tried_in_order() {
    let hosts = |v: Value| {
        let c = parse(v).unwrap().connection;
        std::iter::once((c.host, c.port))
            .chain(c.failover_hosts)
            .collect::<Vec<_>>()
    };
    let expected = vec![
        ("a".to_string(), 3306),
        ("b".to_string(), 3307),
        ("::1".to_string(), 3308),
    ];
    for form in [
        json!({"db_name": "q", "db_user": "u", "db_hosts": ["a", "b:3307", "[::1]:3308"]}),
        json!({"db_name": "q", "db_user": "u", "db_hosts": "a, b:3307, [::1]:3308"}),
        json!({"db_name": "q", "db_user": "u", "db_host": "a,b:3307,[::1]:3308"}),
        json!({"database_url": "mysql://u:p@a,b:3307,[::1]:3308/q"}),
    ] {
        assert_eq!(hosts(form.clone()), expected, "{form}");
    }
    // db_port is the default for hosts without one; a bare IPv6 address takes it too.
    assert_eq!(
        hosts(json!({"db_name": "q", "db_user": "u", "db_host": "fe80::1", "db_port": 3310})),
        [("fe80::1".to_string(), 3310)]
    );
    for bad in [
        json!({"db_name": "q", "db_user": "u", "db_host": "a", "db_hosts": ["b"]}),
        json!({"db_name": "q", "db_user": "u", "db_hosts": []}),
        json!({"db_name": "q", "db_user": "u", "db_hosts": ["a:port"]}),
        json!({"db_name": "q", "db_user": "u", "db_hosts": [1]}),
        json!({"database_url": "mysql://u:topsecret@a,[::1/q"}),
    ] {
        let e = parse(bad.clone()).unwrap_err();
        assert_eq!(e.code(), crate::Code::Config, "{bad}");
        assert!(!e.message().contains("topsecret"), "{e}");
    }
}

#[test]
fn percent_escapes_are_two_hex_digits_and_nothing_else() {
    assert_eq!(
        percent_decode("a%2Fb%40%e2%82%ac").as_deref(),
        Some("a/b@€")
    );
    for bad in ["%+f", "%-1", "% f", "%f", "%", "%g0", "%0x", "%ff"] {
        assert_eq!(percent_decode(bad), None, "{bad}");
    }
    let e = parse(json!({"database_url": "mysql://u:p%+f@h/db"})).unwrap_err();
    assert_eq!(e.code(), crate::Code::Config);
}

#[test]
fn ports_are_plain_digits() {
    assert_eq!(parse_port("3307"), Some(3307));
    for bad in ["+3307", "-1", " 3307", "", "65536", "33o7"] {
        assert_eq!(parse_port(bad), None, "{bad}");
    }
    for bad in [
        json!({"db_name": "q", "db_user": "u", "db_host": "a:+3307"}),
        json!({"db_name": "q", "db_user": "u", "db_host": "[::1]:+3307"}),
        json!({"database_url": "mysql://u:p@a:+3307/q"}),
    ] {
        assert!(parse(bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn a_file_selects_the_embedded_engine() {
    let c = parse(json!({"db_path": "queue.db"})).unwrap();
    let file = c.embedded.unwrap();
    assert_eq!(file.path, std::path::PathBuf::from("queue.db"));
    assert_eq!(file.synchronous, Synchronous::Full);
    let c = parse(json!({"database_url": "sqlite:///var/lib/q%20x.db",
        "sqlite_synchronous": "NORMAL", "lock_wait_timeout": 3}))
    .unwrap();
    let file = c.embedded.unwrap();
    assert_eq!(file.path, std::path::PathBuf::from("/var/lib/q x.db"));
    assert_eq!(
        (file.synchronous, file.busy_timeout_secs),
        (Synchronous::Normal, 3)
    );
    let relative = parse(json!({"database_url": "sqlite://data/q.db"})).unwrap();
    assert_eq!(
        relative.embedded.unwrap().path,
        std::path::PathBuf::from("data/q.db")
    );
    // A server's keys beside the file are refused, naming both.
    for (given, names) in [
        (
            json!({"db_path": "q.db", "db_host": "h"}),
            ["db_path", "db_host"],
        ),
        (
            json!({"db_path": "q.db", "db_name": "x"}),
            ["db_path", "db_name"],
        ),
        (
            json!({"db_path": "q.db", "database_url": "mysql://u:topsecret@h/d"}),
            ["db_path", "database_url"],
        ),
        (
            json!({"database_url": "sqlite:///q.db", "db_user": "u"}),
            ["database_url", "db_user"],
        ),
        (
            json!({"sqlite_synchronous": "full", "db_name": "x", "db_user": "u"}),
            ["sqlite_synchronous", "db_path"],
        ),
    ] {
        let e = parse(given.clone()).unwrap_err();
        assert_eq!(e.code(), Code::Config, "{given}");
        for name in names {
            assert!(e.message().contains(name), "{given}: {}", e.message());
        }
        assert!(!e.message().contains("topsecret"));
    }
    for bad in ["sqlite://", "sqlite:///q.db?mode=ro"] {
        assert_eq!(
            parse(json!({"database_url": bad})).unwrap_err().code(),
            Code::Config
        );
    }
    let e = parse(json!({"db_path": "q.db", "sqlite_synchronous": "off"})).unwrap_err();
    assert!(
        e.message().contains("sqlite_synchronous"),
        "{}",
        e.message()
    );
}

#[test]
fn the_recovery_interval_is_a_hidden_setting() {
    let c = parse(json!({"db_name": "q", "db_user": "u"})).unwrap();
    assert_eq!(
        c.connection.lazy_recovery_interval_ms,
        DEFAULT_LAZY_RECOVERY_INTERVAL_MS
    );
    let c = parse(json!({"db_name": "q", "db_user": "u", "lazy_recovery_interval_ms": 0})).unwrap();
    assert_eq!(c.connection.lazy_recovery_interval_ms, 0);
    // Accepted, but not offered: unknown-key messages and the environment leave it out.
    assert!(!KEYS.contains(&"lazy_recovery_interval_ms"));
    let e = parse(json!({"db_name": "q", "db_user": "u", "nope": 1})).unwrap_err();
    assert!(!e.message().contains("lazy_recovery"), "{e}");
}

#[test]
fn php_style_values_are_accepted() {
    let c = parse(
        json!({"db_name": "q", "db_user": "u", "enable_task_history": "0",
        "task_claim_timeout": "60", "db_charset": "utf8"}),
    )
    .unwrap();
    assert!(!c.enable_task_history);
    assert_eq!(c.task_claim_timeout, 60);
}
