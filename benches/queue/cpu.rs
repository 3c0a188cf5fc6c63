//! CPU time of the server and of this process, from /proc (Linux).

/// CPU seconds (user + system) a process has used, from /proc (Linux); `None` elsewhere.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    Some(ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
}

/// The pid of a MariaDB/MySQL server on this machine, if there is one.
fn local_server_pid() -> Option<String> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            matches!(comm.trim(), "mariadbd" | "mysqld")
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
}

/// Server and client CPU microseconds per task while `run` processes `tasks` tasks.
pub fn cpu_per_task(tasks: usize, run: impl FnOnce()) -> (Option<f64>, f64) {
    let server = local_server_pid();
    let server_before = server.as_deref().and_then(cpu_seconds);
    let client_before = cpu_seconds("self").unwrap_or(0.0);
    run();
    let per = |seconds: f64| seconds * 1e6 / tasks as f64;
    let server_used = server
        .as_deref()
        .and_then(cpu_seconds)
        .zip(server_before)
        .map(|(after, before)| per(after - before));
    (
        server_used,
        per(cpu_seconds("self").unwrap_or(0.0) - client_before),
    )
}
