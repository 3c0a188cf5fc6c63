//! The one place where values become SQL text.
//!
//! A step of a task's life is sent as one multi-statement script (one round trip), and the text
//! protocol has no placeholders, so values are written into the text. Only these functions do
//! that, and none of them can be broken out of:
//! - integers and finite floats are formatted by Rust (digits, sign, point, exponent only);
//! - text becomes a hexadecimal literal with a charset introducer, `_utf8mb4 X'6869'`: the
//!   server reads hex digits only, so no quote, backslash, comment or NUL in the input can end
//!   the literal, whatever `sql_mode` says.
//!
//! Everything else in a script is a constant of this crate.

/// An integer literal.
pub(crate) fn int(value: i64) -> String {
    value.to_string()
}

/// A floating-point literal. Only finite values are written (digits, sign, point, exponent);
/// anything else is a bug in the caller and becomes 0.
pub(crate) fn float(value: f64) -> String {
    if value.is_finite() {
        format!("{value:e}")
    } else {
        "0".into()
    }
}

/// A text literal: utf8mb4 text, compared under the column's collation like a quoted string.
pub(crate) fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2 + 12);
    out.push_str("_utf8mb4 X'");
    // Two digits per byte from a table: a batch's document is most of what a client sends, and
    // formatting each byte through `write!` was a quarter of a batch enqueue's client time.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in value.bytes() {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    out.push('\'');
    out
}

/// A text literal or `NULL`.
pub(crate) fn opt_text(value: Option<&str>) -> String {
    value.map_or_else(|| "NULL".to_string(), text)
}

/// A comma-separated list of integer literals for `IN (...)`.
pub(crate) fn int_list(values: &[i64]) -> String {
    values.iter().map(|v| int(*v)).collect::<Vec<_>>().join(",")
}

/// A comma-separated list of text literals for `IN (...)`.
pub(crate) fn text_list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    values.into_iter().map(text).collect::<Vec<_>>().join(",")
}

/// Makes a prefix literal for `LIKE ... ESCAPE '!'`: `%`, `_` and `!` match only themselves.
/// Used for text bound as a parameter that becomes a LIKE pattern.
pub(crate) fn escape_like(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_carry_only_hex_digits() {
        assert_eq!(text("hi"), "_utf8mb4 X'6869'");
        assert_eq!(text(""), "_utf8mb4 X''");
        assert_eq!(opt_text(None), "NULL");
        assert_eq!(int(-42), "-42");
        assert_eq!(int_list(&[1, 2, 3]), "1,2,3");
        assert_eq!(float(0.75), "7.5e-1");
        assert_eq!(float(f64::NAN), "0");
        assert_eq!(escape_like("a%b_c!d"), "a!%b!_c!!d");
        let hostile = "x'); DROP TABLE tasks; -- \\' \" /* \0 \u{2028} é 🎉";
        let literal = text(hostile);
        let inner = &literal["_utf8mb4 X'".len()..literal.len() - 1];
        assert!(inner.bytes().all(|b| b.is_ascii_hexdigit()), "{literal}");
        assert_eq!(inner.len(), hostile.len() * 2);
    }
}
