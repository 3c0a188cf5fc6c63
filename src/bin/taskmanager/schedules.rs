//! `taskmanager schedule put|list|show|delete|tick`: recurring tasks.

use crate::ScheduleCommand;
use crate::output::{Output, table};
use serde_json::{Value, json};
use taskmanager::{Client, Code, Error, Result, Schedule, ScheduleDefinition};

pub fn run(client: &Client, command: ScheduleCommand, out: &Output) -> Result<()> {
    let shown = match command {
        ScheduleCommand::Put {
            name,
            task_type,
            cron,
            timezone,
            params,
            misfire,
            misfire_grace,
            disabled,
        } => {
            let params: Option<Value> = params
                .map(|text| {
                    serde_json::from_str(&text).map_err(|e| {
                        Error::new(Code::InvalidArgument, format!("--params is not JSON: {e}"))
                    })
                })
                .transpose()?;
            let definition: ScheduleDefinition = serde_json::from_value(json!({
                "name": name, "type": task_type, "cron": cron, "timezone": timezone,
                "params": params, "misfire": misfire, "misfire_grace_seconds": misfire_grace,
                "enabled": !disabled,
            }))
            .map_err(|e| Error::new(Code::InvalidArgument, e.to_string()))?;
            client.schedule_put(&definition)?
        }
        ScheduleCommand::List => {
            let schedules = client.schedule_list()?;
            out.show(&schedules, || {
                table(
                    &[
                        "name", "type", "cron", "timezone", "enabled", "misfire", "next run",
                        "last run",
                    ],
                    schedules.iter().map(row).collect(),
                )
            });
            return Ok(());
        }
        ScheduleCommand::Show { name } => client.schedule_get(&name)?,
        ScheduleCommand::Delete { name } => client.schedule_delete(&name)?,
        ScheduleCommand::Tick => {
            let report = client.schedules_tick()?;
            out.show(&report, || {
                println!("enqueued {} task(s)", report.enqueued.len());
                if !report.enqueued.is_empty() {
                    table(
                        &["schedule", "type", "scheduled for", "task", "new"],
                        report
                            .enqueued
                            .iter()
                            .map(|t| {
                                vec![
                                    t.schedule.clone(),
                                    t.type_name.clone(),
                                    t.scheduled_for.clone(),
                                    t.task_id.to_string(),
                                    if t.deduplicated { "no" } else { "yes" }.into(),
                                ]
                            })
                            .collect(),
                    );
                }
                for m in &report.missed {
                    println!(
                        "{}: missed occurrences {} to {} dropped by its misfire policy",
                        m.schedule, m.first, m.last
                    );
                }
                for e in &report.errors {
                    let at = e.scheduled_for.as_deref().unwrap_or("-");
                    eprintln!("{} at {at}: {}", e.schedule, e.message);
                }
            });
            return Ok(());
        }
    };
    out.show(&shown, || {
        table(
            &[
                "name", "type", "cron", "timezone", "enabled", "misfire", "next run", "last run",
            ],
            vec![row(&shown)],
        );
        println!("params: {}", shown.params);
    });
    Ok(())
}

fn row(s: &Schedule) -> Vec<String> {
    vec![
        s.name.clone(),
        s.type_name.clone(),
        s.cron.clone(),
        s.timezone.clone(),
        if s.enabled { "yes" } else { "no" }.into(),
        s.misfire.as_str().into(),
        s.next_run_at.clone().unwrap_or_default(),
        s.last_run_at.clone().unwrap_or_default(),
    ]
}
