//! `wharf node list|add|drain|rm`.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::client::{CliError, Client, segment};
use super::{list, print_json, table};

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
            list(
                client,
                json,
                "/api/v1/DockerNode/All",
                &["NAME", "HEALTH", "RUNNING", "ADDRESS", "LAST ERROR"],
                |n| {
                    let health = if n["nodeInfo"]["drained"] == true {
                        format!("{} (drained)", table::cell(&n["health"]))
                    } else {
                        table::cell(&n["health"])
                    };
                    vec![
                        table::cell(&n["name"]),
                        health,
                        format!("{}/{}", table::cell(&n["runningJobs"]), table::cell(&n["nodeInfo"]["capacity"])),
                        table::cell(&n["nodeInfo"]["address"]),
                        table::cell(&n["lastError"]),
                    ]
                },
            )
            .await?;
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
