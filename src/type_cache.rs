//! The per-database cache of task types: name -> id, version and compiled validator, and
//! id -> name. The cache never decides anything on its own: every enqueue re-checks the id and
//! version inside its write and drops a stale entry (a new version, or a type deleted and
//! registered again with plain SQL), and a claim re-resolves its type names when it finds
//! nothing (see queue::enqueue and queue::claim).

use crate::error::{Code, Error, Result};
use crate::pool::Conn;
use crate::row::{self, Columns};
use crate::sql;
use crate::validate;
use jsonschema::Validator;
use mysql::prelude::Queryable;
use parking_lot::RwLock;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// What enqueue needs to know about a type, cached per database.
pub(crate) struct CachedType {
    pub id: i64,
    pub version: String,
    pub schema: Value,
    validator: parking_lot::Mutex<Option<Arc<Validator>>>,
}

impl CachedType {
    pub fn new(id: i64, version: String, schema: Value) -> CachedType {
        CachedType {
            id,
            version,
            schema,
            validator: Default::default(),
        }
    }

    /// The compiled validator, built on first use and then kept.
    pub fn validator(&self) -> Result<Arc<Validator>> {
        let mut slot = self.validator.lock();
        if let Some(v) = slot.as_ref() {
            return Ok(v.clone());
        }
        let compiled = Arc::new(validate::compile(&self.schema)?);
        *slot = Some(compiled.clone());
        Ok(compiled)
    }
}

/// Type ids and names, cached until a write or a claim finds them stale.
#[derive(Default)]
pub(crate) struct TypeCache {
    by_name: RwLock<HashMap<String, Arc<CachedType>>>,
    names: RwLock<HashMap<i64, String>>,
}

impl TypeCache {
    pub fn forget(&self, name: &str) {
        self.by_name.write().remove(name);
    }

    fn remember_name(&self, id: i64, name: &str) {
        self.names.write().insert(id, name.to_string());
    }

    /// The cached type, loading it when missing. `NotFound` when no such type exists.
    pub fn get(&self, conn: &mut Conn<'_>, name: &str) -> Result<Arc<CachedType>> {
        if let Some(t) = self.by_name.read().get(name) {
            return Ok(t.clone());
        }
        let row: Option<mysql::Row> = conn
            .exec_first(
                "SELECT id, version, param_schema_json FROM task_types WHERE name = ?",
                (name,),
            )
            .map_err(|e| conn.error(e))?;
        let mut c = Columns::new(
            row.ok_or_else(|| not_registered(name))?,
            format!("type '{name}'"),
        );
        let (id, version, schema): (i64, String, String) =
            (c.get("id")?, c.get("version")?, c.get("param_schema_json")?);
        let cached = Arc::new(CachedType {
            id,
            version,
            // Fail closed: a schema that cannot be read must not turn validation off.
            schema: serde_json::from_str(&schema).map_err(|e| {
                Error::new(
                    Code::InvalidSchema,
                    format!(
                        "the stored parameter schema of task type '{name}' is not valid JSON ({e}); \
                         register the type again with a valid schema"
                    ),
                )
            })?,
            validator: parking_lot::Mutex::new(None),
        });
        self.remember_name(id, name);
        self.by_name
            .write()
            .insert(name.to_string(), cached.clone());
        Ok(cached)
    }

    /// Type names for ids, loading the ones not cached yet in one query.
    pub fn names(&self, conn: &mut Conn<'_>, ids: &[i64]) -> Result<HashMap<i64, String>> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let names = self.names.read();
            for id in ids {
                match names.get(id) {
                    Some(n) => {
                        found.insert(*id, n.clone());
                    }
                    None => missing.push(*id),
                }
            }
        }
        if !missing.is_empty() {
            let list = sql::int_list(&missing);
            let rows: Vec<mysql::Row> = conn
                .query(format!(
                    "SELECT id, name FROM task_types WHERE id IN ({list})"
                ))
                .map_err(|e| conn.error(e))?;
            let rows = row::decode_all(rows, "a task type", |c| {
                Ok((c.id("type")?, c.get::<String>("name")?))
            })?;
            for (id, name) in rows {
                self.remember_name(id, &name);
                found.insert(id, name);
            }
        }
        Ok(found)
    }
}

/// The error for a type name that no row holds.
pub(crate) fn not_registered(name: &str) -> Error {
    Error::not_found(format!(
        "task type '{name}' is not registered (register it first)"
    ))
}
