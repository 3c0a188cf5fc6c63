//! The main job, end to end: a producer enqueues tasks and a worker claims, heartbeats and
//! completes them, all through the real database. Settings come from TASKMANAGER_* variables
//! (see the README); `scripts/demo` sets them up (a SQLite file, or a local server with
//! `--mysql`).
//!
//!     TASKMANAGER_DB_PATH=queue.db cargo run --example roundtrip
//!     TASKMANAGER_DATABASE_URL=mysql://user:pass@127.0.0.1:3306/queue cargo run --example roundtrip

use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};
use taskmanager::{ClaimOptions, Client, EnqueueOptions, HeartbeatOptions, TypeDefinition};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::open_json(None)?;
    let report = client.migrate()?;
    println!(
        "schema at version {} (applied now: {:?})",
        report.version, report.applied
    );

    client.register_type(&serde_json::from_value::<TypeDefinition>(json!({
        "name": "demo.thumbnail",
        "version": 1,
        "param_schema": {
            "type": "object",
            "required": ["image", "width"],
            "properties": {"image": {"type": "string"}, "width": {"type": "integer", "minimum": 1}}
        }
    }))?)?;

    // Producer: a run id keeps this run's tasks distinct from earlier runs (dedupe is forever).
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let images = [
        "cat.jpg",
        "dog.png",
        "žluťoučký-kůň.webp",
        "sunset.jpg",
        "map.gif",
    ];
    for (i, image) in images.iter().enumerate() {
        let params = json!({"image": image, "width": 128, "run": run.to_string()});
        let options = serde_json::from_value::<EnqueueOptions>(json!({"priority": i}))?;
        let e = client.enqueue("demo.thumbnail", &params, &options)?;
        println!("producer: enqueued task {} ({image})", e.id);
    }

    // Worker: claim in small batches until nothing is runnable.
    let claim: ClaimOptions = serde_json::from_value(
        json!({"types": ["demo.thumbnail"], "limit": 2, "lease_seconds": 30}),
    )?;
    let mut done = 0;
    loop {
        let tasks = client.claim("roundtrip-worker", &claim)?;
        if tasks.is_empty() {
            break;
        }
        for task in tasks {
            let progress: HeartbeatOptions = serde_json::from_value(json!({"progress": 50}))?;
            client.heartbeat(task.id, &task.lease_token, &progress)?;
            let result = json!({"thumbnail": format!("thumbs/{}", task.params["image"].as_str().unwrap_or("?")), "width": 128});
            client.complete(task.id, &task.lease_token, &result)?;
            done += 1;
            println!(
                "worker: task {} (priority {}) completed -> {}",
                task.id, task.priority, result["thumbnail"]
            );
        }
    }
    let stats = client.stats()?;
    println!(
        "worker: {done} task(s) done; demo.thumbnail counts: {}",
        serde_json::json!(stats.types.get("demo.thumbnail"))
    );
    if done < images.len() {
        return Err(format!("expected at least {} tasks, did {done}", images.len()).into());
    }
    Ok(())
}
