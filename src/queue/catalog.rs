//! Every statement of every step, rendered as the text a reviewer reads: the committed file
//! `sql/mysql/steps.sql`, which `tests/sql_steps.rs` checks against this rendering. A change to
//! a lifecycle rule therefore shows as an SQL diff.
//!
//! Each step is built by the same functions the queue calls, with recognisable example values
//! that are then written as named placeholders (`:id`, `:lease_token`, ...): the file shows
//! exactly what is sent, with the values the encoder in [`crate::sql`] writes in their place.

use crate::queue::lifecycle::Read;
use crate::queue::lifecycle::{self, ClaimOrder, ClaimRequest, Holder, NewTask, SortColumn};
use crate::queue::procedures;
use crate::queue::read::Selection;
use crate::schedule::steps as schedule;
use crate::sql;

/// Example values, each written back as its placeholder. Numbers are large and distinct so
/// that no other number of a statement can be mistaken for one.
const ID: i64 = 900_000_001;
const ID_2: i64 = 900_000_002;
const TYPE_ID: i64 = 900_000_003;
const TYPE_ID_2: i64 = 900_000_004;
const LIMIT: u32 = 900_000_005;
const LEASE_SECONDS: u32 = 900_000_006;
const CLAIM_TIMEOUT: u32 = 900_000_007;
const OLDER_THAN: u64 = 900_000_008;
const PRIORITY: i32 = 900_000_009;
const MAX_ATTEMPTS: u32 = 900_000_010;
const DELAY_MICROS: i64 = 900_000_011;
const PROGRESS: u8 = 77;
const BACKOFF_BASE: u32 = 900_000_012;
const BACKOFF_MAX: u32 = 900_000_013;
const WINDOW_SECONDS: u32 = 900_000_014;
const JITTER: f64 = 0.625;

/// Text example values and their placeholders.
const TEXTS: &[(&str, &str)] = &[
    ("<worker_id>", ":worker_id"),
    ("<token_prefix>", ":token_prefix"),
    ("<lease_token>", ":lease_token"),
    ("<lease_token_2>", ":lease_token_2"),
    ("<result_json>", ":result_json"),
    ("<result_json_2>", ":result_json_2"),
    ("<params_json>", ":params_json"),
    ("<dedupe_key>", ":dedupe_key"),
    ("<dedupe_scope>", ":dedupe_scope"),
    ("<run_at>", ":run_at"),
    ("<version>", ":version"),
    ("<enqueue_token>", ":enqueue_token"),
    ("<error_message>", ":error_message"),
    ("<reason>", ":reason"),
    ("progress 77%", ":progress_note"),
    ("<scheduled_for>", ":scheduled_for"),
    ("<next_run_at>", ":next_run_at"),
    ("<last_run_at>", ":last_run_at"),
];

const NUMBERS: &[(i64, &str)] = &[
    (ID, ":id"),
    (ID_2, ":id_2"),
    (TYPE_ID, ":type_id"),
    (TYPE_ID_2, ":type_id_2"),
    (LIMIT as i64, ":limit"),
    (LEASE_SECONDS as i64, ":lease_seconds"),
    (CLAIM_TIMEOUT as i64, ":claim_timeout"),
    (OLDER_THAN as i64, ":older_than_seconds"),
    (PRIORITY as i64, ":priority"),
    (MAX_ATTEMPTS as i64, ":max_attempts"),
    (DELAY_MICROS, ":delay_micros"),
    (BACKOFF_BASE as i64, ":retry_backoff_base"),
    (BACKOFF_MAX as i64, ":retry_backoff_max"),
    (WINDOW_SECONDS as i64, ":unique_for_seconds"),
];

/// Constant texts of this crate that the encoder writes as hex too, shown quoted here.
const CONSTANT_TEXTS: &[&str] = &["operator", "lease expired: counted as a failed attempt"];

/// Writes the example values of `text` as their placeholders.
fn placeholders(text: &str) -> String {
    let mut out = text.to_string();
    for constant in CONSTANT_TEXTS {
        out = out.replace(&sql::text(constant), &format!("'{constant}'"));
    }
    for (value, name) in TEXTS {
        out = out.replace(&sql::text(value), name);
    }
    for (value, name) in NUMBERS {
        out = out.replace(&sql::int(*value), name);
    }
    out = out.replace(&sql::float(JITTER), ":jitter");
    // The batch's rows document: one literal, whatever its content.
    const ROWS: &str = "SET @tm_rows = _utf8mb4 X'";
    if let Some(start) = out.find(ROWS) {
        let rest = &out[start + ROWS.len()..];
        let end = start + ROWS.len() + rest.find('\'').unwrap_or(0) + 1;
        out.replace_range(start..end, "SET @tm_rows = :rows_json");
    }
    out.replace("progress = 77", "progress = :progress")
}

fn task<'a>(type_id: i64, key: &'a str) -> NewTask<'a> {
    NewTask {
        type_id,
        params_text: "<params_json>",
        key,
        scope: "<dedupe_scope>",
        priority: PRIORITY,
        max_attempts: MAX_ATTEMPTS,
        run_at: Some("<run_at>"),
        delay_micros: DELAY_MICROS,
    }
}

fn request(limit: u32, type_ids: Option<&[i64]>, order: ClaimOrder) -> ClaimRequest<'_> {
    ClaimRequest {
        worker_id: "<worker_id>",
        type_ids,
        limit,
        lease_seconds: LEASE_SECONDS,
        token_prefix: "<token_prefix>",
        order,
        claim_timeout: CLAIM_TIMEOUT,
        gated: &[],
        report: false,
    }
}

/// The whole file: one section per step and variant, its statements one per line.
pub(crate) fn render() -> String {
    let mut out = String::from(
        "-- Every statement of every step of a task's life, as the library sends it to MySQL or\n\
         -- MariaDB. Generated from src/queue/lifecycle.rs, src/queue/procedures.rs and\n\
         -- src/schedule/steps.rs by\n\
         -- src/queue/catalog.rs; tests/sql_steps.rs fails when the code and this file differ\n\
         -- (TASKMANAGER_BLESS=1 cargo test --test sql_steps writes it anew).\n\
         -- Values are named placeholders (:id, :lease_token, ...); the library writes them as\n\
         -- literals of src/sql.rs (integers, and text as _utf8mb4 X'<hex>', constant text as\n\
         -- well, shown quoted here), and a step's\n\
         -- statements travel together as one multi-statement text in one round trip.\n\
         -- The reads (get, list, history, stats) and selections are prepared statements: `?`\n\
         -- marks a value bound by the driver.\n\
         -- A step marked `procedure` is a CALL of the stored procedure of that name (its body:\n\
         -- sql/migrations/0011_hot_path_procedures_v11.sql); the script after it is the fallback.\n",
    );
    let mut section = |name: &str, statements: String| {
        out.push_str(&format!(
            "\n-- name: {name}\n{};\n",
            placeholders(&statements)
        ));
    };
    let history_variants = [(true, ""), (false, ", history off")];

    // enqueue
    let one = [task(TYPE_ID, "<dedupe_key>")];
    let types = [(TYPE_ID, "<version>")];
    let two = [
        task(TYPE_ID, "<dedupe_key>"),
        task(TYPE_ID_2, "<dedupe_key>"),
    ];
    let two_types = [(TYPE_ID, "<version>"), (TYPE_ID_2, "<version>")];
    section(
        "enqueue one (procedure)",
        procedures::enqueue(&one[0], "<version>", "<enqueue_token>", true).text(),
    );
    for (history, label) in history_variants {
        section(
            &format!("enqueue one{label}"),
            lifecycle::enqueue(&one, &types, "<enqueue_token>", history)
                .script
                .text(),
        );
    }
    for (history, label) in history_variants {
        section(
            &format!("enqueue one with a unique window (unique_for_seconds){label}"),
            lifecycle::enqueue_windowed(
                &one[0],
                "<version>",
                "<enqueue_token>",
                history,
                WINDOW_SECONDS,
            )
            .script
            .text(),
        );
    }
    let caller = lifecycle::enqueue_in_caller_transaction(&one[0], "<enqueue_token>");
    section(
        "enqueue in the caller's transaction (enqueue_statement: the caller runs these on its own connection)",
        [caller.insert, caller.history, caller.select].join(";\n"),
    );
    section(
        "enqueue one, after it created nothing: the types' states and the key's holder",
        lifecycle::enqueue_lookup(&one, &types, "<enqueue_token>")
            .0
            .text(),
    );
    section(
        "enqueue batch (two tasks of two types; :rows_json is the batch as one JSON document)",
        lifecycle::enqueue(&two, &two_types, "<enqueue_token>", true)
            .script
            .text(),
    );
    section(
        "enqueue batch, after it created nothing: the types' states",
        lifecycle::type_states(&two, &two_types, "<enqueue_token>"),
    );

    // claim
    let any = request(1, None, ClaimOrder::PriorityThenAge);
    let of_one_type = request(1, Some(&[TYPE_ID]), ClaimOrder::PriorityThenAge);
    section(
        "claim one, any type (procedure)",
        procedures::claim(&any, true)
            .map(|s| s.text())
            .unwrap_or_default(),
    );
    section(
        "claim one, one type (procedure)",
        procedures::claim(&of_one_type, true)
            .map(|s| s.text())
            .unwrap_or_default(),
    );
    section(
        "claim one",
        lifecycle::claim(&any, false, true).script.text(),
    );
    let many_types = [TYPE_ID, TYPE_ID_2];
    let many = request(LIMIT, Some(&many_types), ClaimOrder::PriorityThenAge);
    for (history, label) in history_variants {
        section(
            &format!("claim many of listed types, with the lazy recovery of expired leases{label}"),
            lifecycle::claim(&many, true, history).script.text(),
        );
    }
    for (column, name) in [
        (SortColumn::CreatedAt, "created_at"),
        (SortColumn::Priority, "priority"),
        (SortColumn::Id, "id"),
        (SortColumn::Attempts, "attempts"),
    ] {
        for (descending, direction) in [(false, "ASC"), (true, "DESC")] {
            let order = ClaimOrder::By(column, descending);
            section(
                &format!("claim many, ordered by {name} {direction}"),
                lifecycle::claim(&request(LIMIT, None, order), false, true)
                    .script
                    .text(),
            );
        }
    }
    let limited = [lifecycle::Limited {
        type_id: TYPE_ID_2,
        running: true,
        rate: true,
    }];
    section(
        "claim many of listed types, one of them limited (max_running and a rate: its gated pick), \
         with the report of when a held-back type may start",
        lifecycle::claim(
            &ClaimRequest {
                gated: &limited,
                report: true,
                ..many
            },
            true,
            true,
        )
        .script
        .text(),
    );
    section(
        "claim, repeated after a lost connection: the tasks its first run leased",
        lifecycle::claimed_rows("<token_prefix>", ClaimOrder::PriorityThenAge),
    );
    section(
        "recover expired leases (cron, operator)",
        lifecycle::recovery(LIMIT, CLAIM_TIMEOUT, true)
            .script
            .text(),
    );

    // finishing what a worker holds
    let token = Holder::Token("<lease_token>");
    let worker = Holder::Worker("<worker_id>");
    section(
        "complete by lease token (procedure)",
        procedures::complete(ID, "<lease_token>", "<result_json>", true).text(),
    );
    for (history, label) in history_variants {
        section(
            &format!("complete by lease token{label}"),
            lifecycle::complete(ID, token, "<result_json>", history)
                .script
                .text(),
        );
    }
    section(
        "complete by worker id (the original's workers)",
        lifecycle::complete(ID, worker, "<result_json>", true)
            .script
            .text(),
    );
    section(
        "a guarded step that matched nothing: the task's status and holder",
        lifecycle::task_lease(ID, token),
    );
    section(
        "complete and claim the next (procedure)",
        procedures::complete_and_claim(ID, "<lease_token>", "<result_json>", &any, true)
            .map(|s| s.text())
            .unwrap_or_default(),
    );
    section(
        "complete and claim the next ones, with the lazy recovery",
        lifecycle::complete_and_claim(ID, "<lease_token>", "<result_json>", &many, true, true)
            .script
            .text(),
    );
    section(
        "complete a batch",
        lifecycle::complete_batch(
            &[
                (ID, "<lease_token>", "<result_json>".into()),
                (ID_2, "<lease_token_2>", "<result_json_2>".into()),
            ],
            true,
        )
        .script
        .text(),
    );
    section(
        "fail, retried with the exponential backoff while attempts remain (:jitter is random, from 0.5 to 1)",
        lifecycle::fail(
            ID,
            token,
            "<error_message>",
            true,
            &lifecycle::backoff_micros(BACKOFF_BASE, BACKOFF_MAX, JITTER),
            true,
        )
        .script
        .text(),
    );
    section(
        "fail, retried after a fixed delay (retry_in_seconds)",
        lifecycle::fail(ID, token, "<error_message>", true, ":delay_micros", true)
            .script
            .text(),
    );
    section(
        "heartbeat with progress",
        lifecycle::heartbeat(ID, token, LEASE_SECONDS, Some(PROGRESS), None, true)
            .script
            .text(),
    );
    section(
        "heartbeat without progress",
        lifecycle::heartbeat(ID, token, LEASE_SECONDS, None, None, true)
            .script
            .text(),
    );
    section(
        "release",
        lifecycle::release(ID, "<lease_token>", true).script.text(),
    );

    // operators and retention
    for transition in [lifecycle::CANCEL, lifecycle::RETRY] {
        section(
            &format!(
                "{} by an operator (after a locking read of the task's status)",
                transition.name
            ),
            format!(
                "{};\n{}",
                lifecycle::manual(&transition, ID, Some("<reason>")),
                lifecycle::manual_history(&transition, ID, Some("<reason>"))
            ),
        );
    }
    let status = lifecycle::Status::Completed;
    section(
        "prune: a page of finished tasks",
        lifecycle::prune_page(status, OLDER_THAN, LIMIT),
    );
    section(
        "prune, dry run: how many",
        lifecycle::prune_count(&lifecycle::PRUNABLE, OLDER_THAN),
    );
    section(
        "cancel or retry by an operator: the locking read first (`?`: the id)",
        Read::LockStatus.sql(),
    );

    // The reads and selections: prepared statements, `?` marking each bound value.
    let every_filter = Selection {
        type_name: Some("type"),
        status: Some("pending"),
        ids: Some(&[ID]),
        before_id: Some(ID),
        older_than_seconds: Some(60),
        newer_than_seconds: Some(60),
        worker_id: Some("worker"),
        text: Some("text"),
        params_text: Some("text"),
        error_text: Some("text"),
    };
    let conditions = every_filter
        .conditions()
        .map(|(conditions, _)| conditions)
        .unwrap_or_else(|e| format!("-- {e}"));
    for (name, read) in [
        ("get a task", Read::Task),
        (
            "list tasks, every filter given",
            Read::Tasks {
                conditions: &conditions,
            },
        ),
        (
            "bulk cancel or retry: a page of the selected tasks, every filter given",
            Read::Selected {
                conditions: &conditions,
            },
        ),
        ("a task's history", Read::History),
        ("stats: tasks per type and status", Read::StatusCounts),
        (
            "stats: the oldest runnable pending task per type",
            Read::OldestPending,
        ),
        ("stats: expired leases per type", Read::ExpiredLeases),
        (
            "stats: finished tasks per minute over the last day",
            Read::FinishedPerMinute,
        ),
        (
            "stats: claims per worker in the last hour",
            Read::ClaimsPerWorker,
        ),
        ("stats: tasks each worker holds", Read::HeldPerWorker),
        ("stats: the database's clock", Read::Now),
    ] {
        section(name, read.sql());
    }
    section(
        "prune: delete a page and its history",
        lifecycle::prune(status, &[ID, ID_2], OLDER_THAN)
            .script
            .text(),
    );

    // recurring tasks (src/schedule): put, list and delete are prepared statements; a tick is
    // a read of the clock, a locking read, then one script that writes every occurrence.
    section(
        "schedules: put's locking read of the schedule and the clock",
        schedule::put_lock(),
    );
    section("schedules: put a new one", schedule::INSERT.into());
    section("schedules: put one again", schedule::UPDATE.into());
    section(
        "schedules: delete one, with its runs",
        schedule::DELETE.into(),
    );
    section("schedules: list", schedule::list());
    section("schedules: one by name", schedule::by_name());
    section(
        "schedules tick: the clock and the earliest next run",
        schedule::due_check(),
    );
    section(
        "schedules tick: lock the due schedules",
        schedule::lock_due(LIMIT).join(";\n"),
    );
    let occurrence = NewTask {
        run_at: None,
        delay_micros: 0,
        priority: 0,
        ..task(TYPE_ID, "<dedupe_key>")
    };
    for (history, label) in history_variants {
        section(
            &format!("schedules tick: enqueue one occurrence{label}"),
            schedule::enqueue_occurrence(
                &occurrence,
                "<version>",
                "<enqueue_token>",
                ID,
                "<scheduled_for>",
                history,
            )
            .join(";\n"),
        );
    }
    section(
        "schedules tick: move a schedule on, drop its old runs; then COMMIT",
        schedule::advance(ID, Some("<next_run_at>"), Some("<last_run_at>")).join(";\n"),
    );
    out
}
