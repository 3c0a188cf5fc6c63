//! Dedupe keys: SHA-256 over the type name and the canonical JSON of the params.

use crate::error::{Error, Result};
use crate::json::canonical;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Longest caller-supplied dedupe key, in characters (the column is VARCHAR(191)).
pub const MAX_KEY_CHARS: usize = 191;

/// How long a dedupe key blocks a new task with the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DedupeScope {
    /// A key once used is used forever (the original behaviour).
    #[default]
    Always,
    /// Only a pending or claimed task blocks; once it is finished the work can be enqueued again.
    Active,
}

impl DedupeScope {
    pub(crate) fn as_sql(self) -> &'static str {
        match self {
            DedupeScope::Always => "always",
            DedupeScope::Active => "active",
        }
    }
}

/// The key computed from the type name and params: lowercase hex SHA-256.
pub fn compute_key(type_name: &str, params: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(type_name.as_bytes());
    // NUL cannot occur in a type name, so name and params cannot run into each other.
    hasher.update([0u8]);
    hasher.update(canonical(params).as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a caller-supplied key.
pub fn check_custom_key(key: &str) -> Result<()> {
    let chars = key.chars().count();
    if chars == 0 || chars > MAX_KEY_CHARS {
        return Err(Error::invalid(format!(
            "dedupe_key must be 1 to {MAX_KEY_CHARS} characters, got {chars}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_ignores_key_order_but_not_type_or_values() {
        let a = compute_key("email", &json!({"a": 1, "b": 2}));
        assert_eq!(a, compute_key("email", &json!({"b": 2, "a": 1})));
        assert_ne!(a, compute_key("sms", &json!({"a": 1, "b": 2})));
        assert_ne!(a, compute_key("email", &json!({"a": 1, "b": 3})));
        assert_eq!(a.len(), 64);
        let float: Value = serde_json::from_str(r#"{"b": 2.0, "a": 1}"#).unwrap();
        assert_eq!(
            a,
            compute_key("email", &float),
            "1.0 and 1 are the same number"
        );
    }
}
