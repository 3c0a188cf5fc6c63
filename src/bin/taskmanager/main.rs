//! `taskmanager`: the operator's command line. `taskmanager --help` lists the commands and
//! `taskmanager <command> --help` explains each. Settings: flags over the `TASKMANAGER_*`
//! environment variables over a JSON file given with `--config`, with the library's keys.
//!
//! Output is a table or a line for people, and JSON with `--json` for scripts. Long work
//! (batch enqueue, prune, retry and cancel by filter) shows a progress bar on a terminal and
//! ends with a count. The exit code says what kind of failure it was (see `EXIT_CODES`).

mod commands;
mod flow;
mod output;
mod schedules;
mod settings;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::process::ExitCode;
use taskmanager::{Code, Error};

const EXIT_CODES: &str = "Exit codes: 0 success; 2 bad usage; 3 invalid input or configuration \
(TM_INVALID_ARGUMENT, TM_CONFIG, ...); 4 a queue outcome (TM_NOT_FOUND, TM_CONFLICT, \
TM_LEASE_LOST, ...); 5 the database (TM_CONNECTION, TM_DATABASE, TM_SCHEMA_OUTDATED, ...); \
1 anything else.";

#[derive(Parser)]
#[command(
    name = "taskmanager",
    version,
    about = "Operate a TaskManager queue: schema, types, tasks, statistics and retention",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    settings: settings::Flags,
    /// Print JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or upgrade the database schema (idempotent; the only command that runs DDL).
    Migrate {
        /// Stop at this schema version: 6 during a rolling deploy, while processes of the
        /// previous release still run; a plain `migrate` once they are gone.
        #[arg(long)]
        to: Option<i64>,
    },
    /// Register, list, show, activate and deactivate task types; pause, resume and limit them.
    #[command(subcommand)]
    Type(TypeCommand),
    /// Enqueue one task, or many from a JSON-lines file in batches.
    Enqueue(EnqueueArgs),
    /// Show one task with every column.
    Get {
        /// Task id.
        id: i64,
    },
    /// List tasks, newest first, with filters and paging.
    List(ListArgs),
    /// Show the history of a task, oldest first.
    History {
        /// Task id.
        id: i64,
    },
    /// Counts per type and status, oldest pending, expired leases, the last hour, workers.
    Stats {
        /// Print Prometheus text exposition instead.
        #[arg(long, conflicts_with = "json")]
        prometheus: bool,
    },
    /// Recover expired leases now (claims also do it as they go; for cron).
    #[command(alias = "recover-expired")]
    Recover,
    /// Put failed or cancelled tasks back to pending: by id, or by filter.
    Retry(BulkArgs),
    /// Cancel pending or claimed tasks: by id, or by filter.
    Cancel(CancelArgs),
    /// Delete finished tasks older than an age, with their history, in small batches.
    Prune(PruneArgs),
    /// Recurring tasks: put, list, show and delete schedules; tick enqueues what is due.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum TypeCommand {
    /// Register a type, or a new version of it, with a JSON Schema for its params.
    Register {
        name: String,
        /// File holding the JSON Schema of the params (`-` reads standard input).
        #[arg(long, value_name = "FILE")]
        schema: String,
        /// Version label, e.g. 1.0.0.
        #[arg(long, default_value = "1")]
        version: String,
    },
    /// List every type.
    List,
    /// Show one type with its schema.
    Show { name: String },
    /// Let a type accept new tasks again.
    Activate { name: String },
    /// Refuse new tasks of a type (queued ones still run).
    Deactivate { name: String },
    /// Hold a type's tasks back: claims hand out none of them until it is resumed (or
    /// --until passes). Enqueues still work; tasks already claimed finish.
    Pause {
        name: String,
        /// Resume by itself at this UTC time (RFC 3339, e.g. 2026-12-24T18:00:00Z), in the
        /// future and at most a year ahead.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
    /// Let a paused type's tasks be claimed again.
    Resume { name: String },
    /// Show or set a type's limits: how many of its tasks may run at once, how many may
    /// start per window. Limits not named keep their value.
    Limits(LimitsArgs),
}

#[derive(Args)]
struct LimitsArgs {
    name: String,
    /// At most this many of its tasks hold a lease at once, on every host (1..=100000), or
    /// `none` to remove the limit.
    #[arg(long, value_name = "N|none", value_parser = flow::max_running)]
    max_running: Option<flow::MaxRunning>,
    /// At most N tasks start in any window of SECONDS (sliding), e.g. 100/60, 10/1s, 5000/1h.
    #[arg(long, value_name = "N/SECONDS", value_parser = flow::rate, conflicts_with = "no_rate")]
    rate: Option<flow::Rate>,
    /// Starts allowed in a window on top of the rate (0..=1000000; default 0). Alone, it
    /// changes the burst of the current rate.
    #[arg(long, value_name = "B", conflicts_with = "no_rate")]
    burst: Option<u32>,
    /// Remove the rate limit.
    #[arg(long)]
    no_rate: bool,
}

#[derive(Subcommand)]
enum ScheduleCommand {
    /// Create or replace a schedule: a task of --type with --params at every occurrence of
    /// --cron in --timezone. Putting the same cron, time zone and state again keeps its next run.
    Put {
        name: String,
        /// The task type it enqueues.
        #[arg(long = "type", value_name = "TYPE")]
        task_type: String,
        /// A cron expression: five fields ("0 3 * * *"), six with seconds first, or @daily...
        #[arg(long)]
        cron: String,
        /// The IANA time zone the expression is read in, e.g. Europe/Prague (default UTC).
        #[arg(long)]
        timezone: Option<String>,
        /// The params of each task, a JSON object (default {}).
        #[arg(long)]
        params: Option<String>,
        /// After downtime: skip (default) the missed occurrences, run the latest once, or
        /// backfill every one (up to the latest 10000).
        #[arg(long)]
        misfire: Option<String>,
        /// An occurrence found at most this many seconds late is on time (default 300).
        #[arg(long, value_name = "SECONDS")]
        misfire_grace: Option<u32>,
        /// Store it disabled (it enqueues nothing until put again without this).
        #[arg(long)]
        disabled: bool,
    },
    /// List every schedule with its next run.
    List,
    /// Show one schedule.
    Show { name: String },
    /// Delete a schedule (the tasks it made stay).
    Delete { name: String },
    /// Enqueue every due occurrence now: for hosts that run this from cron (workers' claims
    /// tick too). Each occurrence is enqueued once, however many hosts tick.
    Tick,
}

#[derive(Args)]
struct EnqueueArgs {
    /// Task type (leave out with --file).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    task_type: Option<String>,
    /// Params as a JSON object (default {}).
    #[arg(default_value = "{}")]
    params: String,
    /// A JSON-lines file, one task per line: {"type": ..., "params": {...}, "options": {...}}.
    #[arg(long, value_name = "FILE")]
    file: Option<String>,
    /// Tasks per transaction with --file (1..=1000).
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Higher runs first.
    #[arg(long)]
    priority: Option<i32>,
    /// Not before this many seconds from now.
    #[arg(long, value_name = "SECONDS")]
    delay: Option<f64>,
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Your own dedupe key instead of the hash of type and params.
    #[arg(long)]
    dedupe_key: Option<String>,
    #[arg(long, value_enum)]
    dedupe_scope: Option<Scope>,
    /// The dedupe key blocks a new task only this long after the first was created (1s to
    /// 365d, e.g. 3600, 90s, 30m, 12h, 7d); after it, the same enqueue creates a new task.
    #[arg(long, value_name = "SECONDS", value_parser = settings::seconds)]
    unique_for: Option<u64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Scope {
    Always,
    Active,
}

#[derive(Args, Clone, Default)]
struct Filter {
    /// Only tasks in this status.
    #[arg(long)]
    status: Option<String>,
    /// Only tasks of this type.
    #[arg(long = "type", value_name = "TYPE")]
    task_type: Option<String>,
    /// Only tasks created at least this long ago (e.g. 90s, 30m, 12h, 7d).
    #[arg(long, value_name = "AGE", value_parser = settings::seconds)]
    older_than: Option<u64>,
    /// Only tasks created at most this long ago.
    #[arg(long, value_name = "AGE", value_parser = settings::seconds)]
    newer_than: Option<u64>,
    /// Only tasks claimed by this worker id.
    #[arg(long)]
    worker: Option<String>,
    /// Only tasks whose params or error contain this text.
    #[arg(long)]
    text: Option<String>,
}

#[derive(Args)]
struct ListArgs {
    #[command(flatten)]
    filter: Filter,
    /// Page size (1..=1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Only tasks with an id below this one (the next page after the last id shown).
    #[arg(long)]
    before_id: Option<i64>,
    /// Skip this many tasks first.
    #[arg(long)]
    offset: Option<u32>,
}

#[derive(Args)]
struct BulkArgs {
    /// Task ids; or leave out and select with the filter options.
    ids: Vec<i64>,
    #[command(flatten)]
    filter: Filter,
    /// At most this many tasks (1..=10000).
    #[arg(long, default_value_t = taskmanager::MAX_BULK)]
    limit: u32,
    /// Only tasks with an id below this one (to go on where a run stopped by --limit ended).
    #[arg(long)]
    before_id: Option<i64>,
    /// Show what would change and change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct CancelArgs {
    #[command(flatten)]
    bulk: BulkArgs,
    /// Why, recorded as the tasks' error message and in their history.
    #[arg(long)]
    reason: Option<String>,
}

#[derive(Args)]
struct PruneArgs {
    /// Delete tasks that finished at least this long ago (e.g. 30d, 12h).
    #[arg(long, value_name = "AGE", value_parser = settings::seconds)]
    older_than: u64,
    /// Only these finished statuses (completed, failed, cancelled); default all three.
    #[arg(long = "status", value_name = "STATUS")]
    statuses: Vec<String>,
    /// Tasks per transaction (1..=5000).
    #[arg(long, default_value_t = 500)]
    batch_size: u32,
    /// Count what would be deleted and delete nothing.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "taskmanager",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    let out = output::Output { json: cli.json };
    let result =
        settings::open(&cli.settings).and_then(|client| commands::run(&client, cli.command, &out));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("taskmanager: {} {}", e.code().name(), e.message());
            if e.code() == Code::SchemaOutdated {
                eprintln!("taskmanager: run `taskmanager migrate` to upgrade the schema");
            }
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The exit code of an error's family (see `EXIT_CODES`).
fn exit_code(e: &Error) -> u8 {
    match e.code() as i32 / 100 {
        1 => 3,
        2 => 4,
        3 => 5,
        _ => 1,
    }
}
