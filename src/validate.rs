//! JSON Schema handling: checking a type's schema against the meta-schema, compiling it once,
//! and listing every violation of a params document.

use crate::error::{Code, Error, Result};
use jsonschema::{PatternOptions, Validator};
use serde_json::{Value, json};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The drafts whose meta-schemas are built in; any other `$schema` is refused rather than
/// fetched.
const KNOWN_DRAFTS: &[&str] = &[
    "http://json-schema.org/draft-04/schema",
    "http://json-schema.org/draft-06/schema",
    "http://json-schema.org/draft-07/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "https://json-schema.org/draft/2020-12/schema",
];

/// Checks `schema` against its meta-schema and compiles it. Remote and file `$ref`s are never
/// fetched, and `pattern` uses a linear-time regex engine so a hostile pattern cannot stall
/// validation.
pub fn compile(schema: &Value) -> Result<Validator> {
    let invalid = |why: String| {
        Error::new(
            Code::InvalidSchema,
            format!("param_schema is not a valid JSON Schema: {why}"),
        )
    };
    if !schema.is_object() {
        return Err(invalid("it must be a JSON object".into()));
    }
    if let Some(declared) = schema.get("$schema") {
        let known = declared
            .as_str()
            .map(|s| s.trim_end_matches('#'))
            .is_some_and(|s| KNOWN_DRAFTS.contains(&s));
        if !known {
            return Err(invalid(format!(
                "unsupported $schema {declared}; use one of draft-04, -06, -07, 2019-09, 2020-12"
            )));
        }
    }
    // The library panics on a meta-schema it cannot resolve; the check above rules that out,
    // and the guard keeps any other surprise from unwinding into the caller.
    let meta = catch_unwind(AssertUnwindSafe(|| {
        jsonschema::meta::validate(schema).map_err(|e| {
            let path = e.instance_path().as_str().to_string();
            format!("{e} (at '{}')", if path.is_empty() { "/" } else { &path })
        })
    }))
    .map_err(|_| invalid("the meta-schema check failed".into()))?;
    meta.map_err(invalid)?;
    jsonschema::options()
        .with_pattern_options(PatternOptions::regex())
        .build(schema)
        .map_err(|e| invalid(e.to_string()))
}

/// Validates `params`, returning `ValidationFailed` with every violation as
/// `[{"path": "/to/field", "message": "..."}]` in the details.
pub fn check(validator: &Validator, type_name: &str, params: &Value) -> Result<()> {
    let violations: Vec<Value> = validator
        .iter_errors(params)
        .map(|e| {
            let path = e.instance_path().as_str();
            json!({"path": if path.is_empty() { "/" } else { path }, "message": e.to_string()})
        })
        .collect();
    if violations.is_empty() {
        return Ok(());
    }
    let summary: Vec<String> = violations
        .iter()
        .map(|v| {
            format!(
                "{}: {}",
                v["path"].as_str().unwrap_or(""),
                v["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    Err(Error::new(
        Code::ValidationFailed,
        format!(
            "params for task type '{type_name}' do not match its schema ({} violation{}): {}",
            violations.len(),
            if violations.len() == 1 { "" } else { "s" },
            summary.join("; ")
        ),
    )
    .with_details(json!({"violations": violations})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_violation_is_listed() {
        let v = compile(&json!({"type": "object", "required": ["to"],
            "properties": {"to": {"type": "string"}, "n": {"type": "integer", "maximum": 5}}}))
        .unwrap();
        let e = check(&v, "email", &json!({"n": 9})).unwrap_err();
        assert_eq!(e.code(), Code::ValidationFailed);
        let list = e.details().unwrap()["violations"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(list.len(), 2, "{list:?}");
        assert!(list.iter().any(|v| v["path"] == "/n"));
        assert!(list.iter().any(|v| v["path"] == "/"));
        assert!(check(&v, "email", &json!({"to": "x", "n": 5})).is_ok());
    }

    #[test]
    fn bad_schemas_are_refused_without_fetching() {
        for schema in [
            json!({"type": "no-such-type"}),
            json!({"$schema": "https://example.invalid/meta"}),
            json!({"$ref": "https://example.invalid/remote.json"}),
            json!({"$ref": "file:///etc/passwd"}),
            json!([1, 2]),
            json!({"minLength": -1}),
        ] {
            let e = compile(&schema).map(|_| ()).unwrap_err();
            assert_eq!(e.code(), Code::InvalidSchema, "{schema}");
        }
    }

    #[test]
    fn a_catastrophic_pattern_is_matched_in_linear_time() {
        // With a backtracking engine `^(a|aa)+$` against 40 a's and a '!' takes exponential
        // time; the linear-time engine answers at once (a hang here fails the suite).
        let v = compile(&json!({"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a|aa)+$"}}})).unwrap();
        let hostile = "a".repeat(40) + "!";
        let e = check(&v, "t", &json!({"s": hostile})).unwrap_err();
        assert_eq!(e.code(), Code::ValidationFailed);
        assert!(check(&v, "t", &json!({"s": "a".repeat(100_000)})).is_ok());
        // The price of the linear engine: backreferences and lookaround, which need
        // backtracking, are refused at registration instead of risking a stall on enqueue.
        for pattern in [r"^(a+)\1$", r"^(?=a)a+$"] {
            let e = compile(&json!({"properties": {"s": {"type": "string", "pattern": pattern}}}))
                .map(|_| ())
                .unwrap_err();
            assert_eq!(e.code(), Code::InvalidSchema, "{pattern}");
        }
    }
}
