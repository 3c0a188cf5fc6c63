//! `taskmanager`: the operator's command line. Settings come from the `TASKMANAGER_*`
//! environment variables, or from a JSON file given with `--config FILE`.
//!
//!     taskmanager migrate            create or upgrade the schema, printing each step
//!     taskmanager recover-expired    recover expired leases now (for cron)
//!     taskmanager stats              task counts by type and status, as JSON
//!     taskmanager version

use std::process::ExitCode;
use std::time::Instant;
use taskmanager::{Client, Config};

const USAGE: &str = "usage: taskmanager [--config FILE] <migrate|recover-expired|stats|version>";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let config_file = match args.iter().position(|a| a == "--config") {
        Some(i) if i + 1 < args.len() => {
            let file = args.remove(i + 1);
            args.remove(i);
            Some(file)
        }
        Some(_) => return fail("--config needs a file name"),
        None => None,
    };
    let [command] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if command == "version" {
        println!("taskmanager {}", taskmanager::VERSION);
        return ExitCode::SUCCESS;
    }
    let config = match &config_file {
        Some(file) => match std::fs::read_to_string(file) {
            Ok(text) => Config::from_json_text(Some(&text)),
            Err(e) => return fail(&format!("cannot read {file}: {e}")),
        },
        None => Config::from_env(),
    };
    let client = match config.and_then(Client::open) {
        Ok(client) => client,
        Err(e) => return fail(&e.to_string()),
    };
    let started = Instant::now();
    let outcome = match command.as_str() {
        "migrate" => {
            eprintln!(
                "migrating database '{}' ...",
                client.config().connection.name
            );
            client.migrate().map(|report| {
                if report.applied.is_empty() {
                    println!(
                        "schema already at version {}; nothing to do",
                        report.version
                    );
                } else {
                    println!(
                        "applied migrations {:?}; schema now at version {}",
                        report.applied, report.version
                    );
                }
            })
        }
        "recover-expired" => client.recover_expired().map(|r| {
            println!(
                "recovered {} expired lease(s): {} back to pending, {} failed",
                r.recovered, r.requeued, r.failed
            );
        }),
        "stats" => client.stats().map(|stats| println!("{stats:#}")),
        other => return fail(&format!("unknown command '{other}'\n{USAGE}")),
    };
    match outcome {
        Ok(()) => {
            eprintln!("done in {:.2}s", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("taskmanager: {message}");
    ExitCode::FAILURE
}
