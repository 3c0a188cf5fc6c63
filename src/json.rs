//! JSON at the edges: parsing with size and depth limits, and the canonical form used for
//! dedupe keys.

use crate::config::MAX_JSON_DEPTH;
use crate::error::{Code, Error, Result};
use serde_json::Value;

/// Parses `text` as JSON, refusing it before any database work when it is larger than
/// `max_bytes` or nested deeper than [`MAX_JSON_DEPTH`]. `what` names the input in messages.
pub fn parse_limited(text: &str, max_bytes: usize, what: &str) -> Result<Value> {
    check_size(text.len(), max_bytes, what)?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            too_deep(what)
        } else {
            Error::invalid(format!("{what} is not valid JSON: {e}"))
        }
    })?;
    check_depth(&value, what)?;
    Ok(value)
}

/// Applies the same limits to a value that arrived already parsed (the Rust API), and returns
/// its compact text, which is what gets stored.
pub fn check_value(value: &Value, max_bytes: usize, what: &str) -> Result<String> {
    check_depth(value, what)?;
    let text = value.to_string();
    check_size(text.len(), max_bytes, what)?;
    Ok(text)
}

fn check_size(len: usize, max_bytes: usize, what: &str) -> Result<()> {
    if len > max_bytes {
        return Err(Error::new(
            Code::PayloadTooLarge,
            format!(
                "{what} is {len} bytes, more than the limit of {max_bytes} (setting max_payload_bytes)"
            ),
        ));
    }
    Ok(())
}

fn check_depth(value: &Value, what: &str) -> Result<()> {
    if depth(value) > MAX_JSON_DEPTH {
        return Err(too_deep(what));
    }
    Ok(())
}

fn too_deep(what: &str) -> Error {
    Error::new(
        Code::PayloadTooLarge,
        format!("{what} is nested deeper than {MAX_JSON_DEPTH} levels"),
    )
}

fn depth(value: &Value) -> usize {
    // Iterative, so that checking a hostile value cannot overflow the stack.
    let mut max = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    max
}

/// The canonical text of a value: object keys sorted by their UTF-8 bytes, no whitespace, and
/// a number with an integral value written as an integer, so `{"b":2,"a":1}`, `{"a":1,"b":2}`
/// and `{"a":1.0,"b":2}` give the same text. This borrows from RFC 8785 (JCS) but is not it:
/// JCS sorts keys by UTF-16 code units and formats every number as ECMAScript does; keys
/// outside the Basic Multilingual Plane and non-integral numbers may be written differently.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Number(n) => match n.as_f64() {
            // 2^53: beyond it not every integer is a float, so keep the text as parsed.
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                out.push_str(&(f as i64).to_string())
            }
            _ => out.push_str(&n.to_string()),
        },
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let a = json!({"b": 2, "a": {"y": [1, {"d": 1, "c": 2}], "x": "é"}});
        assert_eq!(
            canonical(&a),
            r#"{"a":{"x":"é","y":[1,{"c":2,"d":1}]},"b":2}"#
        );
    }

    #[test]
    fn limits_are_enforced_before_anything_else() {
        let deep = "[".repeat(65) + &"]".repeat(65);
        assert_eq!(
            parse_limited(&deep, 1 << 20, "params").unwrap_err().code(),
            Code::PayloadTooLarge
        );
        let deeper = "[".repeat(5000) + &"]".repeat(5000);
        assert_eq!(
            parse_limited(&deeper, 1 << 20, "params")
                .unwrap_err()
                .code(),
            Code::PayloadTooLarge
        );
        let ok = "[".repeat(64) + &"]".repeat(64);
        assert!(parse_limited(&ok, 1 << 20, "params").is_ok());
        assert_eq!(
            parse_limited("\"0123456789\"", 8, "params")
                .unwrap_err()
                .code(),
            Code::PayloadTooLarge
        );
        assert_eq!(
            parse_limited("{", 100, "params").unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn integral_numbers_have_one_form() {
        let parsed: Value =
            serde_json::from_str(r#"[1.0, -0.0, 2.50, 1e2, 12345678901234567890, 0.1]"#).unwrap();
        assert_eq!(canonical(&parsed), "[1,0,2.5,100,12345678901234567890,0.1]");
    }
}
