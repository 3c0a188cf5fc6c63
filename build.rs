//! Build script. The C header is *not* generated here: build scripts must not write outside
//! `OUT_DIR`, so `include/taskmanager.h` is produced by the pinned cbindgen CLI
//! (`scripts/gen-headers`), committed, and checked for drift in CI.
fn main() {
    // The original schema (sql/migrations/0001_original_schema.sql) is compiled in with
    // include_str!, which cargo already tracks; this also catches a migration file added there.
    println!("cargo:rerun-if-changed=sql/migrations");
    println!("cargo:rerun-if-changed=build.rs");
}
