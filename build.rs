//! Build script. The C header is *not* generated here: build scripts must not write outside
//! `OUT_DIR`, so `include/taskmanager.h` is produced by the pinned cbindgen CLI
//! (`scripts/gen-headers`), committed, and checked for drift in CI.
fn main() {
    // The migrations are compiled in with include_str!; rebuild when any of them changes.
    println!("cargo:rerun-if-changed=sql/migrations");
    println!("cargo:rerun-if-changed=build.rs");
}
