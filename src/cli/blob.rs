//! `wharf blob put|get|list`: files of any size, streamed both ways.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::client::{CliError, Client};
use super::{list, print_json, table};

#[derive(Debug, Subcommand)]
pub enum BlobCommand {
    /// Upload a file; prints its blob id.
    Put {
        /// The file to upload.
        file: PathBuf,
        /// The blob's name [default: the file's name].
        #[arg(long)]
        name: Option<String>,
    },
    /// Write a blob's content to a file (`-o`) or to standard output.
    Get {
        /// The blob's id (a UUID).
        id: String,
        /// Where to write the content.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// List blobs, newest first.
    List {
        /// The page to show, from 1.
        #[arg(long, default_value_t = 1)]
        page: u32,
        /// Blobs per page, 1 to 1000.
        #[arg(long, default_value_t = 50)]
        page_size: u32,
    },
}

pub async fn run(client: &Client, json: bool, command: BlobCommand) -> Result<(), CliError> {
    match command {
        BlobCommand::Put { file, name } => {
            let name = match name.or_else(|| file.file_name().and_then(|n| n.to_str()).map(str::to_owned)) {
                Some(name) => name,
                None => return Err(CliError::Usage(format!("give --name: {} has no file name", file.display()))),
            };
            let id = client.upload(&file, &name).await?;
            if json {
                print_json(&json!({"id": id, "name": name}));
            } else {
                println!("{id}");
            }
        }
        BlobCommand::Get { id, output } => match output {
            Some(path) => {
                let bytes = client.download(&id, Some(&path)).await?;
                if json {
                    print_json(&json!({"id": id, "path": path.display().to_string(), "bytes": bytes}));
                } else {
                    eprintln!("{} bytes written to {}", bytes, path.display());
                }
            }
            None => {
                client.download(&id, None).await?;
            }
        },
        BlobCommand::List { page, page_size } => {
            list(
                client,
                json,
                &format!("/api/v1/Blob/All?page={page}&pageSize={page_size}"),
                &["ID", "NAME", "SIZE", "CREATED"],
                |b| {
                    vec![
                        table::cell(&b["id"]),
                        table::cell(&b["name"]),
                        table::cell(&b["size"]),
                        table::time(&b["createdAt"]),
                    ]
                },
            )
            .await?;
        }
    }
    Ok(())
}
