//! Fork safety: after `fork()` the child gets its own connections and never touches the
//! parent's (the server's sockets, or the SQLite file's descriptors, whose locks a child's use
//! would break); both keep working. Its own test binary, so no other test thread holds a lock
//! at the moment of the fork. On either engine.

mod common;

use common::{Engine, TestDb, any_object};
use mysql::prelude::Queryable;
use serde_json::json;
use taskmanager::*;

/// This process's connections to the queue: the server's session ids, or the descriptors
/// open on the SQLite file.
fn connection_ids(db: &TestDb) -> Vec<u64> {
    match db.engine {
        Engine::Mysql => db.sql()
            .exec("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID() ORDER BY ID", (&db.name,))
            .unwrap(),
        Engine::Sqlite => {
            let file = std::fs::canonicalize(db.path()).unwrap();
            let mut fds: Vec<u64> = std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|entry| {
                    let entry = entry.ok()?;
                    let target = std::fs::read_link(entry.path()).ok()?;
                    (target == file).then(|| entry.file_name().to_str()?.parse().ok())?
                })
                .collect();
            fds.sort();
            fds
        }
    }
}

#[test]
fn parent_and_child_both_keep_working_after_fork() {
    let db = TestDb::new(json!({"pool_max_connections": 2}));
    db.register("forked", any_object());
    db.client
        .enqueue(
            "forked",
            &json!({"by": "parent-before"}),
            &EnqueueOptions::default(),
        )
        .unwrap();
    let before = connection_ids(&db);
    assert!(!before.is_empty());

    // SAFETY: the child only uses the library and then leaves with _exit, never unwinding.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = (|| -> Result<bool> {
            let e = db.client.enqueue(
                "forked",
                &json!({"by": "child"}),
                &EnqueueOptions::default(),
            )?;
            let t = db.client.claim("child", &ClaimOptions::default())?;
            // The child must have opened a connection of its own rather than reuse the parent's.
            let own = connection_ids(&db).iter().any(|id| !before.contains(id));
            Ok(own
                && !e.deduplicated
                && t.len() == 1
                && db.client.get_task(e.id)?.status == "pending")
        })();
        unsafe { libc::_exit(if matches!(ok, Ok(true)) { 0 } else { 1 }) };
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child failed to use the library"
    );

    // The parent's connections survived the child's use and exit...
    let after = connection_ids(&db);
    for id in &before {
        assert!(
            after.contains(id),
            "parent connection {id} was closed by the child: {before:?} -> {after:?}"
        );
    }
    // ...and the parent carries on with them.
    let t = db.client.claim("parent", &ClaimOptions::default()).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(
        connection_ids(&db),
        after
            .iter()
            .copied()
            .filter(|id| before.contains(id))
            .collect::<Vec<_>>()
    );
    // (Counted last: SQLite keeps the descriptor of a closed connection open while others in
    // the process hold locks on the file.)
    assert_eq!(db.count("SELECT COUNT(*) FROM tasks"), 2);
}
