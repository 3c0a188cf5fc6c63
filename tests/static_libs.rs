//! `scripts/install` writes the system libraries a C program must add when it links the static
//! library (`Libs.private` of taskmanager.pc). They are whatever rustc says the static library
//! needs, which changes with the Rust version and the dependencies: this test asks rustc and
//! fails, naming the line to write, when the script says something else.

use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The flags `scripts/install` writes, from its `static_libs="..."` line.
fn installed_flags() -> Vec<String> {
    let script = std::fs::read_to_string(format!("{ROOT}/scripts/install")).unwrap();
    let line = script
        .lines()
        .find_map(|l| l.strip_prefix("static_libs=\""))
        .expect("scripts/install sets static_libs=\"...\"");
    line.trim_end_matches('"')
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// What rustc prints for the static library with `--print native-static-libs`.
fn rustc_flags() -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "rustc",
            "--lib",
            "--crate-type",
            "staticlib",
            "--color",
            "never",
        ])
        .args(["--", "--print", "native-static-libs"])
        .current_dir(ROOT)
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo rustc failed:\n{stderr}");
    let flags: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.split("native-static-libs: ").nth(1))
        .flat_map(|l| l.split_whitespace().map(String::from))
        .collect();
    assert!(
        !flags.is_empty(),
        "rustc printed no native-static-libs line:\n{stderr}"
    );
    flags
}

#[test]
fn the_installed_static_link_flags_are_what_rustc_says() {
    let wanted = rustc_flags();
    assert_eq!(
        installed_flags(),
        wanted,
        "scripts/install must say: static_libs=\"{}\"",
        wanted.join(" ")
    );
}
