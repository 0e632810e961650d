//! `wharf instance list|get|cancel|rm|rerun|graph|logs|wait|watch`.

use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{CliError, Client, segment};
use super::{list, print_json, table};

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// List instances, newest first.
    List {
        /// Only runs of this state machine.
        #[arg(long)]
        name: Option<String>,
        /// Queued, Running, Succeeded, Failed or Cancelled.
        #[arg(long)]
        status: Option<String>,
        /// Only instances at this stage.
        #[arg(long)]
        stage: Option<String>,
        /// The page to show, from 1.
        #[arg(long, default_value_t = 1)]
        page: u32,
        /// Instances per page, 1 to 1000.
        #[arg(long, default_value_t = 20)]
        page_size: u32,
    },
    /// Show an instance: status, actors, result.
    Get {
        /// The instance's id.
        id: String,
    },
    /// Stop an instance; its containers are killed.
    Cancel {
        /// The instance's id.
        id: String,
    },
    /// Remove an ended instance with its history.
    Rm {
        /// The instance's id.
        id: String,
    },
    /// Run an instance again from a stage; what came before is kept.
    Rerun {
        /// The instance's id.
        id: String,
        /// The stage to run again from, as `set_stage` named it.
        #[arg(long)]
        stage: String,
    },
    /// Print an instance's dataflow as Graphviz DOT (`| dot -Tsvg > graph.svg`).
    Graph {
        /// The instance's id.
        id: String,
    },
    /// Print what its actors wrote to stdout and stderr, line by line, in order.
    Logs {
        /// The instance's id.
        id: String,
        /// Only this actor's runs.
        #[arg(long)]
        actor: Option<String>,
        /// Only runs with this tag (e.g. a test's input file).
        #[arg(long)]
        tag: Option<String>,
        /// Keep printing as actors end, until the instance has ended.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Wait quietly until an instance ends, then show it; exits 0 only when it succeeded.
    Wait {
        /// The instance's id.
        id: String,
    },
    /// Follow an instance's progress until it ends, then show it; exits 0 only when it
    /// succeeded.
    Watch {
        /// The instance's id.
        id: String,
    },
}

pub async fn run(client: &Client, json: bool, command: InstanceCommand) -> Result<(), CliError> {
    match command {
        InstanceCommand::List { name, status, stage, page, page_size } => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("page", &page.to_string()).append_pair("pageSize", &page_size.to_string());
            for (key, value) in [("name", name), ("status", status), ("stage", stage)] {
                if let Some(value) = value {
                    query.append_pair(key, &value);
                }
            }
            list(
                client,
                json,
                &format!("/api/v1/StateMachineInstance/All?{}", query.finish()),
                &["ID", "STATE MACHINE", "STATUS", "STAGE", "CREATED"],
                |i| {
                    vec![
                        table::cell(&i["id"]),
                        table::cell(&i["name"]),
                        table::cell(&i["state"]),
                        table::cell(&i["stage"]),
                        table::time(&i["createdAt"]),
                    ]
                },
            )
            .await?;
        }
        InstanceCommand::Get { id } => {
            let instance = client.get(&format!("/api/v1/StateMachineInstance/{}", segment(&id))).await?;
            if json {
                print_json(&instance);
                return Ok(());
            }
            describe(&instance);
        }
        InstanceCommand::Cancel { id } => {
            // DELETE also removes an ended instance, which a cancel must not do.
            let path = format!("/api/v1/StateMachineInstance/{}", segment(&id));
            let state = client.get(&path).await?["state"].as_str().unwrap_or_default().to_owned();
            if matches!(state.as_str(), "Succeeded" | "Failed" | "Cancelled") {
                return Err(CliError::Api(format!("instance `{id}` has already ended ({state})")));
            }
            let data = client.delete(&path).await?;
            if json { print_json(&data) } else { println!("instance {id} cancelled") }
        }
        InstanceCommand::Rm { id } => {
            let path = format!("/api/v1/StateMachineInstance/{}", segment(&id));
            let state = client.get(&path).await?["state"].as_str().unwrap_or_default().to_owned();
            if !matches!(state.as_str(), "Succeeded" | "Failed" | "Cancelled") {
                return Err(CliError::Api(format!("instance `{id}` is {state}: cancel it first")));
            }
            let data = client.delete(&path).await?;
            if json { print_json(&data) } else { println!("instance {id} deleted") }
        }
        InstanceCommand::Rerun { id, stage } => {
            let data = client
                .patch(&format!("/api/v1/StateMachineInstance/{}", segment(&id)), &json!({"stage": stage}))
                .await?;
            if json { print_json(&data) } else { println!("instance {id} runs again from stage {stage}") }
        }
        InstanceCommand::Graph { id } => {
            print!("{}", client.get_text(&format!("/api/v1/StateMachineInstance/{}/graph", segment(&id))).await?);
        }
        InstanceCommand::Logs { id, actor, tag, follow } => {
            super::logs::run(client, json, super::logs::LogsRequest { id, actor, tag, follow }).await?;
        }
        InstanceCommand::Wait { id } => {
            let instance = super::run::follow(client, &id, true).await?;
            super::run::report(&instance, &id, json)?;
        }
        InstanceCommand::Watch { id } => {
            let instance = super::run::follow(client, &id, json).await?;
            super::run::report(&instance, &id, json)?;
        }
    }
    Ok(())
}

/// An instance for people: its state, its actors, its result.
pub fn describe(instance: &Value) {
    println!("id:        {}", table::cell(&instance["id"]));
    println!("machine:   {}", table::cell(&instance["name"]));
    println!("status:    {}", table::cell(&instance["state"]));
    println!("stage:     {}", table::cell(&instance["stage"]));
    println!("started:   {}", table::time(&instance["startTime"]));
    println!("ended:     {}", table::time(&instance["endTime"]));
    if !instance["exception"].is_null() {
        println!("exception: {}", table::cell(&instance["exception"]));
    }
    let actors = instance["startedActors"].as_array().cloned().unwrap_or_default();
    if !actors.is_empty() {
        println!();
        let rows = actors
            .iter()
            .map(|a| {
                let outputs: Vec<&str> =
                    a["outputs"].as_array().into_iter().flatten().filter_map(|o| o["name"].as_str()).collect();
                vec![
                    table::cell(&a["name"]),
                    table::cell(&a["tag"]),
                    table::cell(&a["state"]),
                    table::cell(&a["usedNode"]),
                    outputs.join(","),
                ]
            })
            .collect();
        table::print(&["ACTOR", "TAG", "STATUS", "NODE", "OUTPUTS"], rows);
    }
    if !instance["result"].is_null() {
        println!("\nresult:\n{}", serde_json::to_string_pretty(&instance["result"]).unwrap_or_default());
    }
}
