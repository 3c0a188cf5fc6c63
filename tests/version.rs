//! One version number for the three packages: the crate (Cargo.toml), the Python package
//! (python/pyproject.toml) and the PHP package (`TaskManager::VERSION`; Composer takes the
//! version from the release tag, so composer.json carries none). The changelog has a section
//! for the version being prepared, or for this one.

use std::path::Path;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The quoted value after `prefix` on the first line that starts with it (after indentation),
/// within the lines from `section` (a header line) up to the next header.
fn quoted_after(text: &str, section: Option<&str>, prefix: &str) -> Option<String> {
    let mut inside = section.is_none();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = section.is_none_or(|s| line == s);
            continue;
        }
        if inside && let Some(rest) = line.strip_prefix(prefix) {
            let rest = rest.trim_start();
            let quote = rest.chars().next()?;
            return rest[1..].split(quote).next().map(str::to_string);
        }
    }
    None
}

#[test]
fn the_crate_the_python_package_and_the_php_package_carry_one_version() {
    let crate_version = env!("CARGO_PKG_VERSION");
    assert_eq!(taskmanager::VERSION, crate_version);

    let python = quoted_after(
        &read("python/pyproject.toml"),
        Some("[project]"),
        "version =",
    );
    assert_eq!(
        python.as_deref(),
        Some(crate_version),
        "python/pyproject.toml [project] version"
    );

    let php = quoted_after(
        &read("php/src/TaskManager.php"),
        None,
        "public const VERSION =",
    );
    assert_eq!(
        php.as_deref(),
        Some(crate_version),
        "TaskManager::VERSION in php/src/TaskManager.php"
    );

    // A "version" in composer.json would be a second place to keep in step, and Composer's
    // strict validation warns against it: the tag gives the version.
    assert!(
        !read("php/composer.json").contains("\"version\""),
        "php/composer.json carries a version; the release tag gives it"
    );
}

#[test]
fn the_changelog_has_a_section_for_this_version_or_the_next() {
    let changelog = read("CHANGELOG.md");
    let heading = format!("## [{}]", env!("CARGO_PKG_VERSION"));
    assert!(
        changelog
            .lines()
            .any(|l| l == "## [Unreleased]" || l.starts_with(&heading)),
        "CHANGELOG.md has neither an [Unreleased] section nor {heading}"
    );
}

#[test]
fn the_parser_reads_only_the_section_it_is_given() {
    // So the test above cannot pass by reading another table's version (a build requirement).
    let text = "[build-system]\nversion = \"9\"\n[project]\nname = \"x\"\nversion = \"1.2.3\"\n";
    assert_eq!(
        quoted_after(text, Some("[project]"), "version =").as_deref(),
        Some("1.2.3")
    );
    assert_eq!(quoted_after(text, Some("[tool]"), "version ="), None);
    assert_eq!(
        quoted_after(
            "  public const VERSION = '0.9';",
            None,
            "public const VERSION ="
        )
        .as_deref(),
        Some("0.9")
    );
}
