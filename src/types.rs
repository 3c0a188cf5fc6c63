//! Task types: registration with a JSON Schema, lookup, listing and activation. The
//! per-database cache of types and their compiled validators is `type_cache`.

use crate::database::{Database, commit};
use crate::error::{Code, Error, Result};
use crate::flow::{self, RateLimit};
use crate::json;
use crate::row::Columns;
use crate::type_cache::not_registered;
use crate::validate;
use mysql::TxOpts;
use mysql::prelude::Queryable;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest type name, in characters (the column is VARCHAR(255)).
pub const MAX_NAME_CHARS: usize = 255;

/// Longest version label, in characters (the column is VARCHAR(50), as in the original).
pub const MAX_VERSION_CHARS: usize = 50;

/// What a caller registers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeDefinition {
    /// The type's name, 1 to 255 characters.
    pub name: String,
    /// A label such as `"1.0.0"`; a JSON integer is taken as its decimal text.
    #[serde(default = "first_version", deserialize_with = "version_text")]
    pub version: String,
    /// The JSON Schema every task's params must satisfy.
    pub param_schema: Value,
}

fn first_version() -> String {
    "1".into()
}

/// Versions are text, as in the original; integers are accepted for callers that send them.
fn version_text<'de, D: serde::Deserializer<'de>>(de: D) -> std::result::Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Label {
        Text(String),
        Number(i64),
    }
    match Label::deserialize(de) {
        Ok(Label::Text(text)) => Ok(text),
        Ok(Label::Number(n)) => Ok(n.to_string()),
        Err(_) => Err(serde::de::Error::custom(
            "version must be a string such as \"1.0.0\" (or an integer)",
        )),
    }
}

pub(crate) fn check_version(version: &str) -> Result<()> {
    check_label(version, "a version", MAX_VERSION_CHARS)
}

/// A name-like text: 1 to `max` characters, none of them control characters.
fn check_label(text: &str, what: &str, max: usize) -> Result<()> {
    let chars = text.chars().count();
    if chars == 0 || chars > max {
        return Err(Error::invalid(format!(
            "{what} must be 1 to {max} characters, got {chars}"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// A registered task type.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskType {
    /// The type's id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The version label its schema was registered under.
    pub version: String,
    /// The JSON Schema of its tasks' params.
    pub param_schema: Value,
    /// Whether it accepts new tasks.
    pub is_active: bool,
    /// When it was first registered (RFC 3339, UTC).
    pub created_at: String,
    /// When it last changed (RFC 3339, UTC).
    pub updated_at: String,
    /// Whether claims leave its tasks alone now (see [`Client::pause_type`](crate::Client::pause_type)).
    pub paused: bool,
    /// When its pause ends by itself (RFC 3339, UTC); null when not paused, or paused until
    /// resumed.
    pub paused_until: Option<String>,
    /// At most this many of its tasks claimed at any moment; null: no limit.
    pub max_running: Option<u32>,
    /// Its rate limit; null: none.
    pub rate: Option<RateLimit>,
    /// Whether this call changed anything (false for a repeated identical registration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
}

pub(crate) fn check_name(name: &str) -> Result<()> {
    check_label(name, "a task type name", MAX_NAME_CHARS)
}

/// A type's columns with its pause and limits, over [`TYPES_FROM`].
fn type_columns() -> String {
    format!(
        "tt.id, tt.name, tt.version, tt.param_schema_json, tt.is_active, \
         DATE_FORMAT(tt.created_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS created_at, \
         DATE_FORMAT(tt.updated_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS updated_at, {}",
        flow::type_columns()
    )
}

/// The types, each with its flow-control row if it has one.
const TYPES_FROM: &str = "task_types tt LEFT JOIN task_type_flow f ON f.type_id = tt.id";

/// A row of [`type_columns`] as a type, read by column name (a value changed by hand into
/// something unreadable is an error naming it).
fn to_type(row: mysql::Row) -> Result<TaskType> {
    let mut c = Columns::new(row, "a task type");
    let id = c.id("type")?;
    let schema: String = c.get("param_schema_json")?;
    let flow = flow::read_type_flow(&mut c)?;
    Ok(TaskType {
        id,
        name: c.get("name")?,
        version: c.get("version")?,
        param_schema: serde_json::from_str(&schema).unwrap_or(Value::Null),
        is_active: c.get("is_active")?,
        created_at: c.get("created_at")?,
        updated_at: c.get("updated_at")?,
        paused: flow.paused,
        paused_until: flow.paused_until,
        max_running: flow.max_running,
        rate: flow.rate,
        changed: None,
    })
}

/// A type definition's checks, before the database (both engines): its schema as stored text.
pub(crate) fn check_definition(def: &TypeDefinition, max_payload: usize) -> Result<String> {
    check_name(&def.name)?;
    check_version(&def.version)?;
    json::check_value(&def.param_schema, max_payload, "param_schema")?;
    validate::compile(&def.param_schema)?;
    Ok(json::canonical(&def.param_schema))
}

/// Registers a type, or a new version of it. The same name + version + schema again is a
/// no-op; another version replaces the schema for new tasks (versions are labels, not
/// ordered); the same version with another schema is a conflict.
pub(crate) fn register(
    db: &Database,
    def: &TypeDefinition,
    max_payload: usize,
) -> Result<TaskType> {
    let schema_text = check_definition(def, max_payload)?;
    let attempt = || {
        db.run(|conn, _| {
        let mut tx = conn.start_transaction(TxOpts::default()).map_err(|e| db.error(e))?;
        let current: Option<mysql::Row> = tx
            .exec_first(
                "SELECT version, param_schema_json FROM task_types WHERE name = ? FOR UPDATE",
                (&def.name,),
            )
            .map_err(|e| db.error(e))?;
        let current: Option<(String, String)> = match current {
            Some(row) => {
                let mut c = Columns::new(row, format!("type '{}'", def.name));
                Some((c.get("version")?, c.get("param_schema_json")?))
            }
            None => None,
        };
        let changed = match current {
            None => {
                tx.exec_drop(
                    "INSERT INTO task_types (name, version, param_schema_json, is_active) VALUES (?, ?, ?, 1)",
                    (&def.name, &def.version, &schema_text),
                )
                .map_err(|e| db.error(e))?;
                true
            }
            Some((version, text)) if version == def.version => {
                let same = serde_json::from_str::<Value>(&text).ok().as_ref() == Some(&def.param_schema);
                if !same {
                    return Err(Error::new(
                        Code::Conflict,
                        format!(
                            "version '{}' of task type '{}' is already registered with a different schema; \
                             register the new schema under a new version",
                            def.version, def.name
                        ),
                    ));
                }
                false
            }
            Some(_) => {
                tx.exec_drop(
                    "UPDATE task_types SET version = ?, param_schema_json = ? WHERE name = ?",
                    (&def.version, &schema_text, &def.name),
                )
                .map_err(|e| db.error(e))?;
                true
            }
        };
        commit(db, tx)?;
        Ok(changed)
    })
    };
    let changed = match attempt() {
        // Another caller inserted the same new name at the same moment: the second try sees
        // its row and behaves like a repeat (or a version change).
        Err(e) if e.server_code() == Some(1062) => attempt()?,
        other => other?,
    };
    db.types.forget(&def.name);
    let mut registered = get(db, &def.name)?;
    registered.changed = Some(changed);
    Ok(registered)
}

pub(crate) fn get(db: &Database, name: &str) -> Result<TaskType> {
    check_name(name)?;
    db.run(|conn, _| {
        let row: Option<mysql::Row> = conn
            .exec_first(
                format!(
                    "SELECT {} FROM {TYPES_FROM} WHERE tt.name = ?",
                    type_columns()
                ),
                (name,),
            )
            .map_err(|e| db.error(e))?;
        row.map(to_type).ok_or_else(|| not_registered(name))?
    })
}

pub(crate) fn list(db: &Database) -> Result<Vec<TaskType>> {
    db.run(|conn, _| {
        let rows: Vec<mysql::Row> = conn
            .query(format!(
                "SELECT {} FROM {TYPES_FROM} ORDER BY tt.name",
                type_columns()
            ))
            .map_err(|e| db.error(e))?;
        rows.into_iter().map(to_type).collect()
    })
}

/// Activates or deactivates a type. A deactivated type accepts no new tasks; its existing
/// tasks still run. Types are never deleted, so their tasks and history stay.
pub(crate) fn set_active(db: &Database, name: &str, active: bool) -> Result<TaskType> {
    check_name(name)?;
    db.run(|conn, _| {
        conn.exec_drop(
            "UPDATE task_types SET is_active = ? WHERE name = ?",
            (active, name),
        )
        .map_err(|e| db.error(e))
    })?;
    // A missing type matched nothing above; get() reports it as NotFound.
    get(db, name)
}
