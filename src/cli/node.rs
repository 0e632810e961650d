//! `wharf node list|add|drain|rm`.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::client::{CliError, Client, segment};
use super::{print_json, table};

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List nodes with their health and load.
    List,
    /// Register a Docker engine as a node.
    Add {
        /// The node's name: letters, digits, `.`, `_` and `-`.
        name: String,
        /// unix:///var/run/docker.sock, tcp://host:2375 or https://host:2376.
        address: String,
        /// Most actors it runs at once, 1 to 1024 [default: 8].
        #[arg(long)]
        capacity: Option<u32>,
        /// The image actors run in when they name none [default: wharf/actor:latest].
        #[arg(long)]
        image: Option<String>,
        /// CA, client certificate and key files (on the service's host) for https://.
        #[arg(long, requires_all = ["cert", "key"])]
        ca: Option<PathBuf>,
        /// Client certificate file (PEM, on the service's host), with --ca and --key.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Private key file of --cert (PEM, on the service's host).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Stop giving a node new work (`--undo` to give it work again).
    Drain {
        /// The node's name.
        name: String,
        /// Give the node work again.
        #[arg(long)]
        undo: bool,
    },
    /// Remove a node.
    Rm {
        /// The node's name.
        name: String,
    },
}

pub async fn run(client: &Client, json: bool, command: NodeCommand) -> Result<(), CliError> {
    let (what, data) = match command {
        NodeCommand::List => {
            let nodes = client.get("/api/v1/DockerNode/All").await?;
            if json {
                print_json(&nodes);
                return Ok(());
            }
            let nodes = nodes.as_array().cloned().unwrap_or_default();
            let rows = nodes
                .iter()
                .map(|n| {
                    let health = if n["nodeInfo"]["drained"] == true {
                        format!("{} (drained)", table::cell(&n["health"]))
                    } else {
                        table::cell(&n["health"])
                    };
                    let image = match n["imagePresent"].as_bool() {
                        Some(true) => table::cell(&n["nodeInfo"]["image"]),
                        Some(false) => format!("{} (missing)", table::cell(&n["nodeInfo"]["image"])),
                        None => format!("{} (?)", table::cell(&n["nodeInfo"]["image"])),
                    };
                    vec![
                        table::cell(&n["name"]),
                        health,
                        format!("{}/{}", table::cell(&n["runningJobs"]), table::cell(&n["nodeInfo"]["capacity"])),
                        table::cell(&n["nodeInfo"]["address"]),
                        image,
                        table::cell(&n["lastError"]),
                    ]
                })
                .collect();
            table::print(&["NAME", "HEALTH", "RUNNING", "ADDRESS", "IMAGE", "LAST ERROR"], rows);
            for node in &nodes {
                for job in node["runningJobDescriptions"].as_array().into_iter().flatten() {
                    println!("{}: {}", table::cell(&node["name"]), job.as_str().unwrap_or_default());
                }
            }
            let waiting = client.get("/api/v1/DockerNode/WaitingTasks").await?;
            let by_priority: Vec<String> = waiting
                .as_object()
                .into_iter()
                .flatten()
                .map(|(priority, count)| format!("priority {priority}: {count}"))
                .collect();
            if by_priority.is_empty() {
                println!("queued actors: none");
            } else {
                println!("queued actors: {}", by_priority.join(", "));
            }
            return Ok(());
        }
        NodeCommand::Add { name, address, capacity, image, ca, cert, key } => {
            let mut body = json!({"name": name, "address": address, "capacity": capacity, "image": image});
            if let (Some(ca), Some(cert), Some(key)) = (ca, cert, key) {
                body["tls"] = json!({"ca": ca, "cert": cert, "key": key});
            }
            let data = client.put("/api/v1/DockerNode", &body).await?;
            (format!("node {name} added"), data)
        }
        NodeCommand::Drain { name, undo } => {
            let data =
                client.patch(&format!("/api/v1/DockerNode/{}", segment(&name)), &json!({"drained": !undo})).await?;
            (format!("node {name} {}", if undo { "takes work again" } else { "drained" }), data)
        }
        NodeCommand::Rm { name } => {
            let data = client.delete(&format!("/api/v1/DockerNode/{}", segment(&name))).await?;
            (format!("node {name} removed"), data)
        }
    };
    if json {
        print_json(&data)
    } else {
        println!("{what}")
    }
    Ok(())
}
