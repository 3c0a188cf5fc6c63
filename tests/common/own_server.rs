//! MariaDB server instances of a test's own (own data directory, socket and ports), for the
//! tests that restart, crash or cluster servers and must never disturb the shared one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct OwnServer {
    pub dir: PathBuf,
    /// Extra `mariadbd` arguments (ports, Galera settings).
    args: Vec<String>,
    child: Option<Child>,
}

impl OwnServer {
    /// A fresh data directory under `dir`. Runs as the `mysql` account when the test runs as
    /// root (Galera's state transfer needs a server that is not root), else as the caller.
    pub fn install(dir: &Path, args: Vec<String>) -> OwnServer {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if running_as_root() {
            install.arg("--user=mysql");
        }
        assert!(
            install
                .status()
                .expect("mariadb-install-db (package mariadb-server) is needed")
                .success(),
            "mariadb-install-db failed in {}",
            dir.display()
        );
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "mysql:mysql"])
                .arg(dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown of {} failed", dir.display());
        }
        OwnServer {
            dir: dir.to_path_buf(),
            args,
            child: None,
        }
    }

    pub fn socket(&self) -> String {
        self.dir.join("sock").display().to_string()
    }

    /// Starts the server (with `extra` arguments this once) and waits until it answers.
    pub fn start_with(&mut self, extra: &[&str]) {
        let mut server = Command::new("/usr/sbin/mariadbd");
        server
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!("--socket={}", self.socket()))
            .arg(format!("--pid-file={}", self.dir.join("pid").display()))
            .arg(format!(
                "--log-error={}",
                self.dir.join("error.log").display()
            ))
            .args([
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
            ])
            .args(&self.args)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if running_as_root() {
            server.arg("--user=mysql");
        }
        self.child = Some(
            server
                .spawn()
                .expect("mariadbd (package mariadb-server) is needed"),
        );
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.admin().is_err() {
            assert!(
                Instant::now() < deadline,
                "the server in {} did not start; see its error.log",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// Stops the server with `signal` (SIGTERM: a clean shutdown; SIGKILL: a crash).
    pub fn stop(&mut self, signal: i32) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: the pid is our own child's.
            unsafe { libc::kill(child.id() as i32, signal) };
            child.wait().unwrap();
        }
    }

    /// Waits until at most `at_most` tasks of database `db` are not completed (the server may
    /// be restarting meanwhile).
    pub fn wait_for_drain(&self, db: &str, at_most: i64) {
        use mysql::prelude::Queryable;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left: Option<i64> = self.admin().ok().and_then(|mut c| {
                c.query_first(format!(
                    "SELECT COUNT(*) FROM {db}.tasks WHERE status <> 'completed'"
                ))
                .ok()
                .flatten()
            });
            if left.is_some_and(|n| n <= at_most) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the drain stalled ({left:?} left)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts that database `db` holds `tasks` tasks, all completed, each with exactly one
    /// `completed` history row.
    pub fn assert_completed_exactly_once(&self, db: &str, tasks: usize) {
        use mysql::prelude::Queryable;
        let mut admin = self.admin().unwrap();
        let completed: i64 = admin
            .query_first(format!(
                "SELECT COUNT(*) FROM {db}.tasks WHERE status = 'completed'"
            ))
            .unwrap()
            .unwrap();
        assert_eq!(completed, tasks as i64);
        let not_once: Vec<(i64, i64)> = admin
            .query(format!(
                "SELECT t.id, COUNT(h.id) FROM {db}.tasks t LEFT JOIN {db}.task_history h \
                 ON h.task_id = t.id AND h.status_change = 'completed' GROUP BY t.id \
                 HAVING COUNT(h.id) <> 1"
            ))
            .unwrap();
        assert!(
            not_once.is_empty(),
            "tasks not completed exactly once: {not_once:?}"
        );
    }

    /// A root session over the socket.
    pub fn admin(&self) -> Result<mysql::Conn, mysql::Error> {
        mysql::Conn::new(
            mysql::OptsBuilder::new()
                .socket(Some(self.socket()))
                .user(Some("root"))
                .prefer_socket(true),
        )
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop(libc::SIGKILL);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
