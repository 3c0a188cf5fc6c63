//! What each command does: one or a few library calls, then output.

use crate::output::{Output, cell, progress, table};
use crate::{BulkArgs, Command, EnqueueArgs, Filter, ListArgs, PruneArgs, TypeCommand};
use serde_json::{Value, json};
use std::io::BufRead;
use taskmanager::{
    BatchItem, BulkAction, BulkFilter, BulkOptions, Client, Code, EnqueueOptions, Error,
    ListFilter, PruneOptions, Result, Stats, Status, Task, TaskType, Throughput, TypeDefinition,
};

pub fn run(client: &Client, command: Command, out: &Output) -> Result<()> {
    match command {
        Command::Migrate { to } => migrate(client, to, out),
        Command::Type(command) => task_type(client, command, out),
        Command::Enqueue(args) => enqueue(client, args, out),
        Command::Get { id } => {
            let task = client.get_task(id)?;
            out.show(&task, || show_task(&task));
            Ok(())
        }
        Command::List(args) => list(client, args, out),
        Command::History { id } => {
            let rows = client.task_history(id)?;
            out.show(&rows, || {
                table(
                    &["at", "change", "worker", "message"],
                    rows.iter()
                        .map(|h| {
                            vec![
                                h.created_at.clone(),
                                h.status_change.clone(),
                                h.worker_id.clone().unwrap_or_default(),
                                h.message.clone().unwrap_or_default(),
                            ]
                        })
                        .collect(),
                )
            });
            Ok(())
        }
        Command::Stats { prometheus } => {
            if prometheus {
                print!("{}", client.metrics()?);
                return Ok(());
            }
            let stats = client.stats()?;
            out.show(&stats, || show_stats(&stats));
            Ok(())
        }
        Command::Recover => {
            let r = client.recover_expired()?;
            out.show(&r, || {
                println!(
                    "recovered {} expired lease(s): {} back to pending, {} failed",
                    r.recovered, r.requeued, r.failed
                )
            });
            Ok(())
        }
        Command::Retry(args) => bulk(client, BulkAction::Retry, args, None, out),
        Command::Cancel(args) => bulk(client, BulkAction::Cancel, args.bulk, args.reason, out),
        Command::Prune(args) => prune(client, args, out),
        Command::Schedule(command) => crate::schedules::run(client, command, out),
        Command::Completions { .. } => Ok(()),
    }
}

fn migrate(client: &Client, to: Option<i64>, out: &Output) -> Result<()> {
    eprintln!(
        "migrating database '{}' ...",
        client.config().connection.name
    );
    let report = match to {
        Some(version) => client.migrate_to(version)?,
        None => client.migrate()?,
    };
    out.show(&report, || {
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
    });
    Ok(())
}

fn task_type(client: &Client, command: TypeCommand, out: &Output) -> Result<()> {
    let shown = match command {
        TypeCommand::Register {
            name,
            schema,
            version,
        } => {
            let text = if schema == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&schema)
            }
            .map_err(|e| invalid(format!("cannot read the schema file {schema}: {e}")))?;
            let param_schema: Value = serde_json::from_str(&text)
                .map_err(|e| invalid(format!("the schema file {schema} is not JSON: {e}")))?;
            let definition: TypeDefinition = serde_json::from_value(
                json!({"name": name, "version": version, "param_schema": param_schema}),
            )
            .map_err(|e| invalid(e.to_string()))?;
            client.register_type(&definition)?
        }
        TypeCommand::List => {
            let types = client.list_types()?;
            out.show(&types, || {
                table(
                    &["id", "name", "version", "active", "flow", "updated"],
                    types
                        .iter()
                        .map(|t| {
                            vec![
                                t.id.to_string(),
                                t.name.clone(),
                                t.version.clone(),
                                yes_no(t.is_active),
                                crate::flow::words(t),
                                t.updated_at.clone(),
                            ]
                        })
                        .collect(),
                )
            });
            return Ok(());
        }
        TypeCommand::Show { name } => client.get_type(&name)?,
        TypeCommand::Activate { name } => client.set_type_active(&name, true)?,
        TypeCommand::Deactivate { name } => client.set_type_active(&name, false)?,
        TypeCommand::Pause { name, until } => crate::flow::pause(client, &name, until)?,
        TypeCommand::Resume { name } => client.resume_type(&name)?,
        TypeCommand::Limits(args) => crate::flow::limits(client, args)?,
    };
    out.show(&shown, || show_type(&shown));
    Ok(())
}

fn show_type(t: &TaskType) {
    let mut rows = vec![
        vec!["id".into(), t.id.to_string()],
        vec!["name".into(), t.name.clone()],
        vec!["version".into(), t.version.clone()],
        vec!["active".into(), yes_no(t.is_active)],
    ];
    rows.extend(crate::flow::rows(t));
    rows.extend([
        vec!["schema".into(), t.param_schema.to_string()],
        vec!["created".into(), t.created_at.clone()],
        vec!["updated".into(), t.updated_at.clone()],
    ]);
    table(&["field", "value"], rows);
}

fn enqueue(client: &Client, args: EnqueueArgs, out: &Output) -> Result<()> {
    if let Some(file) = &args.file {
        return enqueue_file(client, file, args.batch_size, out);
    }
    let task_type = args.task_type.unwrap_or_default();
    let params: Value = serde_json::from_str(&args.params)
        .map_err(|e| invalid(format!("params are not JSON: {e}")))?;
    let mut options = json!({});
    let set = |options: &mut Value, key: &str, value: Value| {
        if !value.is_null() {
            options[key] = value;
        }
    };
    set(&mut options, "priority", json!(args.priority));
    set(&mut options, "delay_seconds", json!(args.delay));
    set(&mut options, "max_attempts", json!(args.max_attempts));
    set(&mut options, "dedupe_key", json!(args.dedupe_key));
    set(&mut options, "unique_for_seconds", json!(args.unique_for));
    set(
        &mut options,
        "dedupe_scope",
        json!(args.dedupe_scope.map(|s| match s {
            crate::Scope::Always => "always",
            crate::Scope::Active => "active",
        })),
    );
    let options: EnqueueOptions =
        serde_json::from_value(options).map_err(|e| invalid(e.to_string()))?;
    let task = client.enqueue(&task_type, &params, &options)?;
    out.show(&task, || {
        if task.deduplicated {
            println!("task {} already exists ({})", task.id, task.status);
        } else {
            println!("enqueued task {} ({})", task.id, task.type_name);
        }
    });
    Ok(())
}

/// Many tasks from a JSON-lines file, `batch` per transaction, with a progress bar. Every line
/// is read and checked before the first batch is sent, so a bad line enqueues nothing.
fn enqueue_file(client: &Client, file: &str, batch: usize, out: &Output) -> Result<()> {
    if batch == 0 || batch > 1000 {
        return Err(invalid("--batch-size must be from 1 to 1000"));
    }
    let reader: Box<dyn BufRead> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).map_err(|e| invalid(format!("cannot read {file}: {e}")))?,
        ))
    };
    let mut items: Vec<BatchItem> = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| invalid(format!("cannot read {file}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        items.push(serde_json::from_str(&line).map_err(|e| {
            invalid(format!(
                "{file} line {}: {e} (each line: {{\"type\": ..., \"params\": {{...}}, \"options\": {{...}}}})",
                number + 1
            ))
        })?);
    }
    let bar = progress(Some(items.len() as u64), "tasks");
    let (mut created, mut duplicates) = (0u64, 0u64);
    for chunk in items.chunks(batch) {
        for task in client.enqueue_batch(chunk)? {
            if task.deduplicated {
                duplicates += 1;
            } else {
                created += 1;
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let summary = json!({"tasks": items.len(), "created": created, "deduplicated": duplicates});
    out.show(&summary, || {
        println!(
            "enqueued {} task(s) from {file}: {created} new, {duplicates} already there",
            items.len()
        )
    });
    Ok(())
}

fn filter(f: &Filter, limit: u32) -> ListFilter {
    ListFilter {
        type_name: f.task_type.clone(),
        status: f.status.clone(),
        limit: Some(limit),
        older_than_seconds: f.older_than,
        newer_than_seconds: f.newer_than,
        worker_id: f.worker.clone(),
        text: f.text.clone(),
        ..ListFilter::default()
    }
}

fn list(client: &Client, args: ListArgs, out: &Output) -> Result<()> {
    let mut query = filter(&args.filter, args.limit);
    query.before_id = args.before_id;
    query.offset = args.offset;
    let tasks = client.list_tasks(&query)?;
    out.show(&tasks, || {
        table(
            &[
                "id", "type", "status", "prio", "attempts", "worker", "created", "error",
            ],
            tasks
                .iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        t.type_name.clone(),
                        t.status.to_string(),
                        t.priority.to_string(),
                        format!("{}/{}", t.attempts, t.max_attempts),
                        t.claimed_by.clone().unwrap_or_default(),
                        t.created_at.clone(),
                        t.error_message.clone().unwrap_or_default(),
                    ]
                })
                .collect(),
        );
        if let Some(last) = tasks.last() {
            if tasks.len() == args.limit as usize {
                println!("next page: --before-id {}", last.id);
            }
        }
    });
    Ok(())
}

fn show_task(t: &Task) {
    let value = serde_json::to_value(t).unwrap_or_default();
    let rows = value
        .as_object()
        .map(|m| m.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect())
        .unwrap_or_default();
    table(&["field", "value"], rows);
}

/// Retry or cancel: the ids given, or every task the filter selects (up to `limit`), by the
/// library's bulk call, with a spinner; `--dry-run` reports and changes nothing. By id, a
/// task the action was refused for makes the exit code; by filter, refusals are reported.
fn bulk(
    client: &Client,
    action: BulkAction,
    args: BulkArgs,
    reason: Option<String>,
    out: &Output,
) -> Result<()> {
    let by_ids = !args.ids.is_empty();
    let f = &args.filter;
    let filter = BulkFilter {
        type_name: f.task_type.clone(),
        status: f.status.clone(),
        ids: by_ids.then(|| args.ids.clone()),
        before_id: args.before_id,
        older_than_seconds: f.older_than,
        newer_than_seconds: f.newer_than,
        worker_id: f.worker.clone(),
        text: f.text.clone(),
        ..BulkFilter::default()
    };
    let options = BulkOptions {
        dry_run: args.dry_run,
        reason,
        limit: Some(args.limit),
    };
    let done = match action {
        BulkAction::Cancel => "cancelled",
        BulkAction::Retry => "retried",
    };
    let bar = progress(None, "tasks looked at");
    let report = client.bulk(action, &filter, &options, |r| bar.set_position(r.matched))?;
    bar.finish_and_clear();
    let ids = |ids: &[i64]| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(" ");
    out.show(&report, || {
        if report.dry_run {
            println!(
                "would change {} task(s): {}",
                report.changed.len(),
                ids(&report.changed)
            );
        } else {
            println!("{done} {} task(s)", report.changed.len());
        }
        if !report.unchanged.is_empty() {
            println!("  already {done}: {}", ids(&report.unchanged));
        }
        for s in &report.skipped {
            println!("  task {}: {} {}", s.id, s.code.name(), s.message);
        }
        if let Some(next) = report.next_before_id {
            println!("the limit stopped it; more tasks match: go on with --before-id {next}");
        }
    });
    match report.skipped.first() {
        Some(first) if by_ids => Err(Error::new(
            first.code,
            format!(
                "{} of {} task(s) refused; first: {}",
                report.skipped.len(),
                report.matched,
                first.message
            ),
        )),
        _ => Ok(()),
    }
}

fn prune(client: &Client, args: PruneArgs, out: &Output) -> Result<()> {
    let options: PruneOptions = serde_json::from_value(json!({
        "older_than_seconds": args.older_than,
        "statuses": if args.statuses.is_empty() { Value::Null } else { json!(args.statuses) },
        "batch_size": args.batch_size,
        "dry_run": args.dry_run,
    }))
    .map_err(|e| invalid(e.to_string()))?;
    let bar = progress(None, "tasks pruned");
    let report = client.prune_with_progress(&options, |r| bar.set_position(r.tasks))?;
    bar.finish_and_clear();
    out.show(&report, || {
        if report.dry_run {
            println!("would prune {} task(s)", report.tasks);
        } else {
            println!(
                "pruned {} task(s) and {} history row(s) in {} batch(es)",
                report.tasks, report.history, report.batches
            );
        }
    });
    Ok(())
}

fn show_stats(stats: &Stats) {
    let mut headers = vec!["type"];
    headers.extend(Status::ALL.map(Status::as_str));
    headers.extend(["oldest pending", "expired", "done/h", "failed/h"]);
    let rows = stats
        .types
        .iter()
        .map(|(name, counts)| {
            let mut row = vec![name.clone()];
            row.extend(Status::ALL.map(|s| counts.get(s).to_string()));
            let queue = stats.queue.get(name);
            row.push(
                queue
                    .and_then(|q| q.oldest_pending_seconds)
                    .map(|s| format!("{s:.0}s"))
                    .unwrap_or_default(),
            );
            // Empty for a type that is not in `queue`, as the column always showed it.
            row.push(
                queue
                    .map(|q| q.expired_leases.to_string())
                    .unwrap_or_default(),
            );
            let hour = stats.throughput.get(name);
            let sum = |series: fn(&Throughput) -> &Vec<i64>| -> String {
                hour.map_or(0, |h| series(h).iter().sum::<i64>())
                    .to_string()
            };
            row.push(sum(|h| &h.completed_per_minute));
            row.push(sum(|h| &h.failed_per_minute));
            row
        })
        .collect();
    table(&headers, rows);
    crate::flow::show_stats(stats);
    if !stats.workers.is_empty() {
        table(
            &["worker", "last claim", "claims last hour", "holding"],
            stats
                .workers
                .iter()
                .map(|w| {
                    vec![
                        w.worker_id.clone(),
                        w.last_claim_at.clone().unwrap_or_default(),
                        w.claims_last_hour.to_string(),
                        w.holding.to_string(),
                    ]
                })
                .collect(),
        );
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(Code::InvalidArgument, message)
}
