//! The worker loops both benches drain with: claim + complete, `complete_and_claim`, and
//! claim 100 + `complete_batch`, each answering how many tasks it finished. Every task's type
//! is `bench`.

use serde_json::Value;
use taskmanager::{ClaimOptions, Client, CompleteItem};

pub fn claim_opts(limit: u32) -> ClaimOptions {
    serde_json::from_value(serde_json::json!({"limit": limit})).unwrap()
}

pub fn ours_drain(client: &Client) -> usize {
    let mut done = 0;
    while let Some(t) = client.claim("bench", &claim_opts(1)).unwrap().pop() {
        client.complete(t.id, &t.lease_token, &Value::Null).unwrap();
        done += 1;
    }
    done
}

/// The worker loop with `complete_and_claim`: one round trip and one commit per task.
pub fn ours_drain_looped(client: &Client) -> usize {
    let mut done = 0;
    let mut held = client.claim("bench", &claim_opts(1)).unwrap();
    while let Some(t) = held.pop() {
        held = client
            .complete_and_claim(t.id, &t.lease_token, &Value::Null, "bench", &claim_opts(1))
            .unwrap()
            .claimed;
        done += 1;
        if held.is_empty() {
            held = client.claim("bench", &claim_opts(1)).unwrap();
        }
    }
    done
}

/// Claims 100 at a time and completes them with one `complete_batch`; answers how many.
pub fn ours_drain_batched(client: &Client) -> usize {
    let mut done = 0;
    loop {
        let tasks = client.claim("bench", &claim_opts(100)).unwrap();
        if tasks.is_empty() {
            return done;
        }
        complete_all(client, &tasks);
        done += tasks.len();
    }
}

pub fn complete_all(client: &Client, tasks: &[taskmanager::ClaimedTask]) {
    let items: Vec<CompleteItem> = tasks
        .iter()
        .map(|t| CompleteItem {
            id: t.id,
            lease_token: t.lease_token.clone(),
            result: Value::Null,
        })
        .collect();
    client.complete_batch(&items).unwrap();
}
