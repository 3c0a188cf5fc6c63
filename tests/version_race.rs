//! A type re-registered by another process is seen by this one at its next enqueue, although
//! this process has the old version cached. Its own test binary, because it forks: no other
//! test thread may hold a lock at that moment.

mod common;

use common::{TestDb, from};
use serde_json::json;
use taskmanager::*;

#[test]
fn a_version_registered_by_another_process_is_used_at_once() {
    let db = TestDb::server(json!({}));
    db.register(
        "v",
        json!({"type": "object", "properties": {"a": {"type": "string"}}}),
    );
    // This process validates against version 1 and caches it.
    db.client
        .enqueue("v", &json!({"a": "s"}), &EnqueueOptions::default())
        .unwrap();

    // Another process registers version 2, where `a` must be an integer.
    // SAFETY: the child only uses the library and then leaves with _exit, never unwinding.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let v2: TypeDefinition = from(json!({"name": "v", "version": 2, "param_schema":
            {"type": "object", "properties": {"a": {"type": "integer"}}}}));
        let ok = db.client.register_type(&v2).is_ok_and(|t| t.version == "2");
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);

    // The stale cached schema would accept a string; the version check inside the INSERT
    // refuses the write, and validation against version 2 explains why.
    let e = db
        .client
        .enqueue("v", &json!({"a": "t"}), &EnqueueOptions::default())
        .unwrap_err();
    assert_eq!(e.code(), Code::ValidationFailed, "{e}");
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 1, "nothing written");
    // ...and a task valid under version 2 goes in.
    db.client
        .enqueue("v", &json!({"a": 7}), &EnqueueOptions::default())
        .unwrap();
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 2);
}
