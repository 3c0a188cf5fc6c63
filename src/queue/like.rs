//! LIKE patterns from callers (`ClaimOptions::type_pattern`). A caller writes SQL's own
//! syntax: `%` any run of characters, `_` one character, `\` before a character makes it
//! literal. The library sends the pattern as a bound value under `ESCAPE '!'`: a backslash
//! escape written in the statement would depend on the `NO_BACKSLASH_ESCAPES` sql_mode, and
//! the prefix filter already uses `!` (see `sql::escape_like`).

use crate::error::{Error, Result};
use crate::types::MAX_NAME_CHARS;

/// Longest pattern, in characters: a longest name with every character escaped.
pub const MAX_PATTERN_CHARS: usize = 2 * MAX_NAME_CHARS;

/// Checks `pattern` (named `field` in messages) and rewrites it for `LIKE ? ESCAPE '!'`.
/// Refused: empty, longer than [`MAX_PATTERN_CHARS`], control characters, and a trailing
/// lone `\` (it escapes nothing; guessing whether a literal backslash was meant would turn a
/// typo into a pattern that silently matches no type).
pub(crate) fn like_pattern(pattern: &str, field: &str) -> Result<String> {
    let chars = pattern.chars().count();
    if chars == 0 || chars > MAX_PATTERN_CHARS {
        return Err(Error::invalid(format!(
            "{field} must be 1 to {MAX_PATTERN_CHARS} characters, got {chars}"
        )));
    }
    if pattern.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        let literal = match c {
            '\\' => match chars.next() {
                Some(next) => next,
                None => {
                    return Err(Error::invalid(format!(
                        "{field} '{pattern}' ends with the escape character \\: write \\\\ to \
                         match a backslash, or remove it"
                    )));
                }
            },
            '%' | '_' => {
                out.push(c);
                continue;
            }
            other => other,
        };
        if matches!(literal, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(literal);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn wildcards_stay_and_escapes_become_bang_escapes() {
        let p = |s| like_pattern(s, "type_pattern");
        assert_eq!(p("report.%").unwrap(), "report.%");
        assert_eq!(p("a_b").unwrap(), "a_b");
        assert_eq!(p(r"a\_b\%c\\d").unwrap(), r"a!_b!%c\d");
        assert_eq!(p("wow!").unwrap(), "wow!!");
        assert_eq!(p(r"\!").unwrap(), "!!");
        assert_eq!(p(r"\x").unwrap(), "x");
    }

    #[test]
    fn bad_patterns_are_refused_with_the_rule() {
        let p = |s: &str| {
            like_pattern(s, "type_pattern")
                .unwrap_err()
                .message()
                .to_string()
        };
        assert!(p("").contains("1 to 510 characters, got 0"));
        assert!(p(&"x".repeat(511)).contains("got 511"));
        assert!(p("a\nb").contains("control characters"));
        assert!(p(r"abc\").contains("ends with the escape character"));
        assert!(like_pattern(r"abc\\", "type_pattern").is_ok());
    }
}
