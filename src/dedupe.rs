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

    /// Fixed params -> fixed keys. The expected hex was computed outside this code, as
    /// `sha256(type_name + "\0" + text)` over the canonical text written out by hand, so a
    /// change of the canonical form (key order, number form, escaping) cannot pass silently:
    /// it would change the key of every task already stored.
    #[test]
    fn keys_are_fixed() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "email",
                r#"{"b": 2, "a": 1}"#,
                "cc27ed88adb4d6bf742016988979b48985c337b1546d1489dcca9509a1149e8e",
            ),
            (
                "email",
                r#"{"a": 1.0, "b": 2.00}"#,
                "cc27ed88adb4d6bf742016988979b48985c337b1546d1489dcca9509a1149e8e",
            ),
            (
                "email",
                "{}",
                "baa4c8580b701ccac8c638d06643d18a7e7c806ca37eae72abcaf5c16f218ce8",
            ),
            (
                "email",
                r#"{"name": "Zoë", "emoji": "😀", "city": "東京"}"#,
                "1afb832dee9e1d112b3c525ce3b05df35ede54d96b79ee21004262cfef69506d",
            ),
            (
                "email",
                r#"{"b": [3, {"z": 1, "y": 2.0}], "a": {"d": null, "c": true}}"#,
                "97e0bfff0653a50d02134ef56645c4d93dcc1f820a16762b9563424846aa4adf",
            ),
            // Keys sort by their UTF-8 bytes: "é" (0xC3 0xA9) after "z".
            (
                "email",
                r#"{"é": 1, "z": 2, "a": 3}"#,
                "ea97dd566a7beca84e8ad3b6cf54f8a13d6617632674aee27383957c48ed77cf",
            ),
            (
                "email",
                r#"{"n": [2.50, 0.1, -0.0, 12345678901234567890, -7]}"#,
                "46db6a4ecb05e36fff713f2613b9015d543fe17ceb82c2eddda7d9ae4e33e7c8",
            ),
            // Arrays keep their order.
            (
                "email",
                "[2, 1]",
                "6f509cbfc57082c2caaf534a54c0d5f3c17f065be9b19bb78ae1659e9b1878f5",
            ),
            (
                "rapport-été",
                r#"{"quote": "\"x\"\n", "path": "a/b"}"#,
                "d8da11f2dbce5695bd349f4436fc00b37a2362e107cb0bf0f398a977e757a641",
            ),
        ];
        for (type_name, params, expected) in cases {
            let params: Value = serde_json::from_str(params).unwrap();
            assert_eq!(
                compute_key(type_name, &params),
                *expected,
                "{type_name} {params}"
            );
        }
    }

    /// The original system's key was `sha256(type_name + "\0" + json_encode(params))` with
    /// `JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES`, keys in the order sent. For params
    /// sent with sorted keys and no fractional or float-typed numbers its text is the canonical
    /// text, so the keys it stored keep deduplicating. The texts below are what PHP's
    /// json_encode writes for them, hashed outside this code.
    #[test]
    fn sorted_params_get_the_original_systems_key() {
        let original: &[(&str, &str, &str)] = &[
            (
                "email",
                r#"{"a":1,"b":2}"#,
                "cc27ed88adb4d6bf742016988979b48985c337b1546d1489dcca9509a1149e8e",
            ),
            (
                "email",
                r#"{"city":"東京","emoji":"😀","name":"Zoë"}"#,
                "1afb832dee9e1d112b3c525ce3b05df35ede54d96b79ee21004262cfef69506d",
            ),
            (
                "email",
                r#"{"a":{"c":true,"d":null},"b":[3,{"y":2,"z":1}]}"#,
                "97e0bfff0653a50d02134ef56645c4d93dcc1f820a16762b9563424846aa4adf",
            ),
            (
                "rapport-été",
                r#"{"path":"a/b","quote":"\"x\"\n"}"#,
                "d8da11f2dbce5695bd349f4436fc00b37a2362e107cb0bf0f398a977e757a641",
            ),
        ];
        for (type_name, php_text, expected) in original {
            let params: Value = serde_json::from_str(php_text).unwrap();
            assert_eq!(canonical(&params), *php_text);
            assert_eq!(compute_key(type_name, &params), *expected, "{php_text}");
        }
    }
}
