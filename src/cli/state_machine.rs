//! `wharf statemachine list|get|put|rm`.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::client::{CliError, Client, read_file, segment};
use super::{list, name_of, print_json, put_named, remove_named, table};

#[derive(Debug, Subcommand)]
pub enum StateMachineCommand {
    /// List state machines.
    List,
    /// Show one state machine with its script.
    Get {
        /// The state machine's name.
        name: String,
    },
    /// Store a state machine from a Rhai script file (refused, with line and column, if it
    /// does not compile).
    Put {
        /// The Rhai script file.
        file: PathBuf,
        /// Its name [default: the file name without extension].
        #[arg(long)]
        name: Option<String>,
    },
    /// Delete a state machine.
    Rm {
        /// The state machine's name.
        name: String,
    },
}

pub async fn run(client: &Client, json: bool, command: StateMachineCommand) -> Result<(), CliError> {
    match command {
        StateMachineCommand::List => {
            list(client, json, "/api/v1/StateMachine/All", &["NAME", "LINES", "UPDATED"], |m| {
                let lines = m["body"].as_str().map_or(0, |b| b.lines().count());
                vec![table::cell(&m["name"]), lines.to_string(), table::time(&m["updatedAt"])]
            })
            .await?;
        }
        StateMachineCommand::Get { name } => {
            let machine = client.get(&format!("/api/v1/StateMachine/{}", segment(&name))).await?;
            if json {
                print_json(&machine);
                return Ok(());
            }
            println!("name:   {}", table::cell(&machine["name"]));
            println!("limits: {}", table::cell(&machine["limitation"]));
            println!("script:\n{}", machine["body"].as_str().unwrap_or_default());
        }
        StateMachineCommand::Put { file, name } => {
            let name = name_of(name, &file)?;
            let body = json!({"name": name, "body": read_file(&file)?});
            // The service names the field it refused; the user knows the script by its file.
            put_named(client, json, "StateMachine", "state machine", &name, body).await.map_err(|err| match err {
                CliError::Api(message) if message.starts_with("field `body`: ") => CliError::File {
                    path: file.display().to_string(),
                    message: message.trim_start_matches("field `body`: ").to_owned(),
                },
                other => other,
            })?;
        }
        StateMachineCommand::Rm { name } => remove_named(client, json, "StateMachine", "state machine", &name).await?,
    }
    Ok(())
}
