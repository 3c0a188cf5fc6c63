//! The error table (`taskmanager::CODES`) is the one definition of the codes. Every other place
//! that lists them is checked against it here, and a difference fails with what to write:
//! the C header (generated from `tm_code`), PHP's `Code` and its exception classes, Python's
//! `Code` and exception classes, the README table, and docs/troubleshooting.md.

use std::collections::BTreeMap;
use taskmanager::{CODES, Code};

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// name -> value, from the table.
fn table() -> BTreeMap<String, i64> {
    CODES
        .iter()
        .map(|row| (row.name.to_string(), row.code as i64))
        .collect()
}

/// `NAME = 123` pairs (optionally `const NAME = 123;`) found in `text`, with `prefix` added
/// to the name.
fn assignments(
    text: &str,
    prefix: &str,
    line_filter: impl Fn(&str) -> bool,
) -> BTreeMap<String, i64> {
    text.lines()
        .filter(|l| line_filter(l))
        .filter_map(|l| {
            let (left, right) = l.split_once('=')?;
            let name = left.split_whitespace().last()?.to_string();
            let value: i64 = right
                .trim()
                .trim_end_matches([',', ';'])
                .trim()
                .parse()
                .ok()?;
            Some((format!("{prefix}{name}"), value))
        })
        .collect()
}

#[test]
fn every_code_has_one_row_with_its_name_and_number() {
    let mut names: Vec<&str> = CODES.iter().map(|r| r.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CODES.len(), "a name appears twice");
    for row in CODES {
        assert_eq!(row.code.name(), row.name);
        assert!(std::ptr::eq(row.code.info(), row));
        assert!(
            !row.meaning.is_empty() && row.remedy.ends_with('.'),
            "{}",
            row.name
        );
    }
    assert_eq!(Code::LeaseLost as i64, 204);
}

#[test]
fn the_c_header_lists_exactly_the_table() {
    let header = read("include/taskmanager.h");
    let before_name = header
        .split("} tm_code;")
        .next()
        .expect("typedef enum {...} tm_code;");
    let in_enum = before_name.rsplit("typedef enum {").next().unwrap();
    let found = assignments(in_enum, "", |l| l.trim_start().starts_with("TM_"));
    assert_eq!(found, table());
}

#[test]
fn php_lists_exactly_the_table_and_maps_every_code_to_its_exception() {
    let php = read("php/src/Code.php");
    let found = assignments(&php, "TM_", |l| l.contains("public const"));
    assert_eq!(found, table());
    let mapping = php.split("match ($code)").nth(1).expect("exceptionClass");
    for row in CODES.iter().filter(|r| r.code != Code::Ok) {
        let constant = format!("self::{}", &row.name[3..]);
        let line = mapping
            .lines()
            .find(|l| l.contains(&format!("{constant},")) || l.contains(&format!("{constant} =>")))
            .unwrap_or_else(|| panic!("PHP maps no exception class for {}", row.name));
        let class = line
            .split("Exception\\")
            .nth(1)
            .and_then(|c| c.split("::").next())
            .unwrap();
        assert!(
            std::path::Path::new(&format!(
                "{}/php/src/Exception/{class}.php",
                env!("CARGO_MANIFEST_DIR")
            ))
            .exists(),
            "{class} for {}",
            row.name
        );
    }
}

#[test]
fn python_lists_exactly_the_table_and_maps_every_code_to_its_exception() {
    let py = read("python/taskmanager/_errors.py");
    let class_code = py
        .split("class ErrorCode(IntEnum):")
        .nth(1)
        .expect("class ErrorCode")
        .split("\n\n\n")
        .next()
        .unwrap();
    let found = assignments(class_code, "TM_", |l| {
        l.starts_with("    ") && l.contains(" = ")
    });
    assert_eq!(found, table());
    let mapping = py
        .split("_BY_CODE = {")
        .nth(1)
        .expect("_BY_CODE")
        .split('}')
        .next()
        .unwrap();
    for row in CODES.iter().filter(|r| r.code != Code::Ok) {
        let key = format!("Code.{}:", &row.name[3..]);
        let line = mapping
            .lines()
            .find(|l| l.contains(&key))
            .unwrap_or_else(|| panic!("Python maps no exception class for {}", row.name));
        let class = line.split(':').nth(1).unwrap().trim().trim_end_matches(',');
        assert!(
            py.contains(&format!("class {class}(")),
            "{class} for {}",
            row.name
        );
    }
}

/// The README's table, as it must read.
fn readme_table() -> String {
    let mut out = String::from("| code | value | meaning |\n| --- | --- | --- |\n");
    for row in CODES {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            row.name, row.code as i64, row.meaning
        ));
    }
    out
}

#[test]
fn the_readme_table_is_the_table() {
    let readme = read("README.md");
    let expected = readme_table();
    assert!(
        readme.contains(&expected),
        "README.md's error table differs from taskmanager::CODES; it must read:\n{expected}"
    );
}

/// docs/troubleshooting.md's section of one code, as it must read.
fn troubleshooting_section(row: &taskmanager::CodeInfo) -> String {
    format!(
        "### `{}` ({})\n\nMeans: {}.\n\nDo: {}\n",
        row.name, row.code as i64, row.meaning, row.remedy
    )
}

#[test]
fn troubleshooting_explains_every_code() {
    let doc = read("docs/troubleshooting.md");
    let missing: Vec<String> = CODES
        .iter()
        .map(troubleshooting_section)
        .filter(|section| !doc.contains(section.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/troubleshooting.md lacks or differs in these sections (write them as shown):\n\n{}",
        missing.join("\n")
    );
}

/// The numbers in the table's comment block of retired codes (`// Name = n, TM_NAME: ...`).
fn retired_numbers() -> Vec<i64> {
    let source = read("src/error.rs");
    let block = source
        .split("// Retired numbers")
        .nth(1)
        .expect("the error table's block of retired numbers");
    let block = block.split("\n        }").next().unwrap();
    block
        .lines()
        .filter_map(|l| {
            let (_, right) = l.trim_start().strip_prefix("// ")?.split_once(" = ")?;
            right.split(',').next()?.trim().parse().ok()
        })
        .collect()
}

#[test]
fn a_retired_number_is_never_given_again() {
    let retired = retired_numbers();
    for row in CODES {
        assert!(
            !retired.contains(&(row.code as i64)),
            "{} reuses the retired number {}",
            row.name,
            row.code as i64
        );
    }
}
