//! `wharf instance logs <id> [--actor A] [--tag T] [-f]`: what an instance's actors printed,
//! each line prefixed with the actor, its tag and the stream; `-f` keeps printing as actors
//! end until the instance has ended.

use std::time::Duration;

use serde_json::Value;

use super::client::{CliError, Client, segment};
use super::print_json;

/// Which logs to print.
#[derive(Debug, Clone, Default)]
pub struct LogsRequest {
    pub id: String,
    pub actor: Option<String>,
    pub tag: Option<String>,
    pub follow: bool,
}

pub async fn run(client: &Client, json: bool, request: LogsRequest) -> Result<(), CliError> {
    let instance_path = format!("/api/v1/StateMachineInstance/{}", segment(&request.id));
    let mut after: Option<i64> = None;
    loop {
        // The state first: when it says ended, the logs read after it are complete.
        let ended = if request.follow {
            let state = client.get(&instance_path).await?["state"].as_str().unwrap_or_default().to_owned();
            matches!(state.as_str(), "Succeeded" | "Failed" | "Cancelled")
        } else {
            true
        };
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [("actor", &request.actor), ("tag", &request.tag)] {
            if let Some(value) = value {
                query.append_pair(key, value);
            }
        }
        if let Some(after) = after {
            query.append_pair("after", &after.to_string());
        }
        let logs = client.get(&format!("{instance_path}/logs?{}", query.finish())).await?;
        for record in logs.as_array().into_iter().flatten() {
            if json {
                print_json(record);
            } else {
                print_record(record);
            }
            after = record["cursor"].as_i64().or(after);
        }
        if ended {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `actor[tag] stream: text`, one line per line the actor printed.
fn print_record(record: &Value) {
    let mut who = record["actor"].as_str().unwrap_or("?").to_owned();
    if let Some(tag) = record["tag"].as_str() {
        who = format!("{who}[{tag}]");
    }
    let dropped = record["droppedLines"].as_i64().unwrap_or(0);
    if dropped > 0 {
        println!(
            "{who} ({dropped} earlier lines, {} bytes, were over executor.log_max_bytes and not kept)",
            record["droppedBytes"].as_i64().unwrap_or(0)
        );
    }
    for line in record["lines"].as_array().into_iter().flatten() {
        println!("{who} {}: {}", line["stream"].as_str().unwrap_or("?"), line["text"].as_str().unwrap_or_default());
    }
    println!(
        "{who} ended {} on {} (container {})",
        record["state"].as_str().unwrap_or("?"),
        record["node"].as_str().unwrap_or("?"),
        record["container"].as_str().map(|c| &c[..c.len().min(12)]).unwrap_or("?")
    );
}
