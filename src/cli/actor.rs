//! `wharf actor list|get|put|rm`.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{CliError, Client, read_file, segment};
use super::{list, name_of, print_json, put_named, remove_named, table};

#[derive(Debug, Subcommand)]
pub enum ActorCommand {
    /// List actors.
    List,
    /// Show one actor.
    Get {
        /// The actor's name.
        name: String,
    },
    /// Store an actor from a file: TOML (body, outputs, image, limitation) or a script.
    Put {
        /// A `.toml` file (body, outputs, image, limitation), or any other file as the script.
        file: PathBuf,
        /// The actor's name [default: the file name without extension].
        #[arg(long)]
        name: Option<String>,
        /// A file the actor leaves in /workdir (for a script file; repeatable).
        #[arg(long = "output")]
        outputs: Vec<String>,
        /// An image to run in instead of the node's (for a script file).
        #[arg(long)]
        image: Option<String>,
    },
    /// Delete an actor.
    Rm {
        /// The actor's name.
        name: String,
    },
}

pub async fn run(client: &Client, json: bool, command: ActorCommand) -> Result<(), CliError> {
    match command {
        ActorCommand::List => {
            list(client, json, "/api/v1/Actor/All", &["NAME", "IMAGE", "OUTPUTS", "UPDATED"], |a| {
                vec![table::cell(&a["name"]), table::cell(&a["image"]), outputs(a), table::time(&a["updatedAt"])]
            })
            .await?;
        }
        ActorCommand::Get { name } => {
            let actor = client.get(&format!("/api/v1/Actor/{}", segment(&name))).await?;
            if json {
                print_json(&actor);
                return Ok(());
            }
            println!("name:     {}", table::cell(&actor["name"]));
            println!("image:    {}", table::cell(&actor["image"]));
            println!("outputs:  {}", outputs(&actor));
            println!("limits:   {}", table::cell(&actor["limitation"]));
            println!("sandbox:  {}", table::cell(&actor["sandbox"]));
            println!("body:\n{}", actor["body"].as_str().unwrap_or_default());
        }
        ActorCommand::Put { file, name, outputs, image } => {
            let name = name_of(name, &file)?;
            let text = read_file(&file)?;
            let mut body = if file.extension().is_some_and(|e| e == "toml") {
                let refused = |message: String| CliError::File { path: file.display().to_string(), message };
                crate::model::actor::ActorFile::parse(&text).map_err(refused)?;
                let parsed: toml::Value = toml::from_str(&text).map_err(|e| refused(e.to_string()))?;
                serde_json::to_value(parsed).unwrap_or_default()
            } else {
                json!({"body": text, "outputs": outputs, "image": image})
            };
            body["name"] = Value::String(name.clone());
            put_named(client, json, "Actor", "actor", &name, body).await?;
        }
        ActorCommand::Rm { name } => remove_named(client, json, "Actor", "actor", &name).await?,
    }
    Ok(())
}

fn outputs(actor: &Value) -> String {
    let names: Vec<&str> = actor["outputs"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if names.is_empty() { "-".into() } else { names.join(",") }
}
