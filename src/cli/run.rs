//! `wharf run`: upload local files, start a state machine on them, and with `--wait` follow
//! it to its end — a live line on a terminal, plain lines otherwise — then print the result
//! and fetch the actors' outputs (`-o`). The exit code is 0 only when it succeeded.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use super::client::{CliError, Client, segment};
use super::instance::describe;
use super::print_json;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The state machine to run.
    pub machine: String,
    /// An initial blob: `name=path`, or `path` to use the file's name (repeatable).
    #[arg(short = 'i', long = "input")]
    pub inputs: Vec<String>,
    /// A parameter: `key=value` (repeatable), e.g. `-p Host=http://...`.
    #[arg(short = 'p', long = "param")]
    pub params: Vec<String>,
    /// Lower runs first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    /// Follow the instance until it ends.
    #[arg(long)]
    pub wait: bool,
    /// Download the actors' outputs into this folder (implies --wait).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

fn split_pair<'a>(text: &'a str, what: &str) -> Result<(&'a str, &'a str), CliError> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| CliError::Usage(format!("{what} `{text}` is not key=value")))
}

pub async fn run(client: &Client, json: bool, args: RunArgs) -> Result<(), CliError> {
    let mut blobs = Vec::new();
    for input in &args.inputs {
        let (name, path) = match input.split_once('=') {
            Some((name, path)) => (name.to_owned(), PathBuf::from(path)),
            None => {
                let path = PathBuf::from(input);
                let name = path.file_name().and_then(|n| n.to_str()).map(str::to_owned);
                let name = name.ok_or_else(|| CliError::Usage(format!("-i `{input}`: give it as name=path")))?;
                (name, path)
            }
        };
        let id = client.upload(&path, &name).await?;
        blobs.push(json!({"id": id, "name": name}));
    }
    let mut parameters = serde_json::Map::new();
    for param in &args.params {
        let (key, value) = split_pair(param, "-p")?;
        parameters.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    let body =
        json!({"name": args.machine, "initialBlobs": blobs, "parameters": parameters, "priority": args.priority});
    let started = client.put("/api/v1/StateMachineInstance", &body).await?;
    let id = started["id"].as_str().unwrap_or_default().to_owned();
    if !args.wait && args.output.is_none() {
        if json {
            print_json(&started)
        } else {
            println!("{id}")
        }
        return Ok(());
    }
    if !json {
        eprintln!("instance {id} started");
    }
    let instance = follow(client, &id, json).await?;
    if let Some(dir) = &args.output {
        fetch_outputs(client, &instance, dir, json).await?;
    }
    report(&instance, &id, json)
}

/// Prints an ended instance; an error (a non-zero exit) unless it succeeded.
pub(super) fn report(instance: &Value, id: &str, json: bool) -> Result<(), CliError> {
    if json {
        print_json(instance);
    } else {
        describe(instance);
    }
    match instance["state"].as_str() {
        Some("Succeeded") => Ok(()),
        status => Err(CliError::Ended(format!(
            "instance {id} {}: {}",
            status.unwrap_or("ended"),
            instance["exception"].as_str().unwrap_or("no reason given")
        ))),
    }
}

/// Polls until the instance ends, showing progress on standard error unless `quiet`.
pub(super) async fn follow(client: &Client, id: &str, quiet: bool) -> Result<Value, CliError> {
    let clock = Instant::now();
    let live = std::io::stderr().is_terminal();
    let mut last = String::new();
    loop {
        let instance = client.get(&format!("/api/v1/StateMachineInstance/{}", segment(id))).await?;
        let status = instance["state"].as_str().unwrap_or("?").to_owned();
        let ended = matches!(status.as_str(), "Succeeded" | "Failed" | "Cancelled");
        if !quiet {
            let line = progress(&instance);
            if live {
                eprint!("\r\x1b[2K[{:>6.1}s] {line}", clock.elapsed().as_secs_f64());
                if ended {
                    eprintln!();
                }
                let _ = std::io::stderr().flush();
            } else if line != last {
                eprintln!("[{:>6.1}s] {line}", clock.elapsed().as_secs_f64());
            }
            last = line;
        }
        if ended {
            return Ok(instance);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `Running  stage Run  actors: 2 queued, 3 running, 5 done, 0 failed`.
fn progress(instance: &Value) -> String {
    let actors = instance["startedActors"].as_array().cloned().unwrap_or_default();
    let count = |status: &str| actors.iter().filter(|a| a["state"] == status).count();
    let failed = count("Failed") + count("Cancelled");
    format!(
        "{:<9} stage {:<10} actors: {} queued, {} running, {} done, {} failed",
        instance["state"].as_str().unwrap_or("?"),
        instance["stage"].as_str().unwrap_or("-"),
        count("Queued"),
        count("Running"),
        count("Succeeded"),
        failed
    )
}

/// Saves every actor output as `dir/<actor>[-<tag>]/<file>`.
async fn fetch_outputs(client: &Client, instance: &Value, dir: &std::path::Path, quiet: bool) -> Result<(), CliError> {
    for actor in instance["startedActors"].as_array().into_iter().flatten() {
        let mut folder = actor["name"].as_str().unwrap_or("actor").to_owned();
        if let Some(tag) = actor["tag"].as_str() {
            folder = format!("{folder}-{tag}");
        }
        let folder: String = folder.chars().map(|c| if c == '/' { '_' } else { c }).collect();
        for output in actor["outputs"].as_array().into_iter().flatten() {
            let (Some(id), Some(name)) = (output["id"].as_str(), output["name"].as_str()) else { continue };
            let path = dir.join(&folder).join(name);
            client.download(id, Some(&path)).await?;
            if !quiet {
                eprintln!("saved {}", path.display());
            }
        }
    }
    Ok(())
}
