//! The embedded engine when the disk fills up: a clear error naming the file and the cause,
//! nothing half-written (each step's transaction is whole or absent), the process unharmed.
//! Mounts a 1 MiB tmpfs, so it runs as root (as the suite does in CI).

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use taskmanager::{BatchItem, Client, Code, EnqueueOptions};

/// A small file system of its own, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(kib: u32) -> SmallDisk {
        let dir = std::env::temp_dir().join(format!("tm_full_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount must be available");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (the suite runs as root)"
        );
        SmallDisk(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: the process keeps its queue file open until it exits.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn tasks_in(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT COUNT(*) FROM tasks", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_full_disk_is_a_clear_error_and_nothing_is_half_written() {
    let disk = SmallDisk::mount(1024);
    let file = disk.path().join("queue.db");
    let client = Client::open_json(Some(
        &json!({"db_path": file, "enable_task_history": true}).to_string(),
    ))
    .unwrap();
    client.migrate().unwrap();
    client
        .register_type(
            &serde_json::from_value(json!({"name": "big", "param_schema": {"type": "object"}}))
                .unwrap(),
        )
        .unwrap();
    // Batches of 20 tasks of 4 KB each until the disk is full.
    let blob = "x".repeat(4096);
    let mut stored = 0i64;
    let error = loop {
        let batch: Vec<BatchItem> = (0..20)
            .map(|i| {
                serde_json::from_value(json!({"type": "big",
                    "params": {"n": stored + i, "blob": blob}}))
                .unwrap()
            })
            .collect();
        match client.enqueue_batch(&batch) {
            Ok(done) => stored += done.len() as i64,
            Err(e) => break e,
        }
        assert!(stored < 10_000, "a 1 MiB disk took {stored} tasks of 4 KB");
    };
    assert_eq!(error.code(), Code::Database, "{error:?}");
    let message = error.message();
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("full"), "{message}");
    assert_eq!(
        error.details().unwrap()["sqlite_code"],
        json!(13),
        "{error:?}"
    );
    // The failed batch left nothing: every task on disk is one an acknowledged batch wrote.
    assert!(stored > 0);
    assert_eq!(tasks_in(&file), stored);
    // The process carries on: reads answer, and a small write fits once room is made.
    let task = client
        .enqueue("big", &json!({"n": stored}), &EnqueueOptions::default())
        .map(|e| e.id);
    match task {
        Ok(id) => assert!(id > 0),
        Err(e) => assert_eq!(e.code(), Code::Database, "{e:?}"),
    }
    let types = client.list_types().unwrap();
    assert_eq!(types.len(), 1);
}
