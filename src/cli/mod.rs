//! The `wharf` command line: `serve` runs the service; every other command is a client of a
//! running service over its HTTP API, one file per resource (`actor`, `state_machine`,
//! `blob`, `node`, `instance`) and one for `run`. Tables by default, `--json` for scripts.

mod actor;
mod blob;
mod client;
mod completion;
mod instance;
mod logs;
mod node;
mod run;
mod serve;
mod state_machine;
mod table;

pub use client::{CliError, Client};
pub use completion::CompletionArgs;
pub use serve::ServeArgs;

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "wharf", version, about = "A Docker-orchestrating distributed executor")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// How client commands reach the service and print.
#[derive(Debug, Args)]
pub struct Global {
    /// The service's address.
    #[arg(long, global = true, env = "WHARF_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token, when the service requires one.
    #[arg(long, global = true, env = "WHARF_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA that signed an https:// service's certificate (instead of the
    /// system's CAs).
    #[arg(long, global = true, env = "WHARF_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// PEM file of this client's certificate, for a service that requires one (with --key).
    #[arg(long, global = true, env = "WHARF_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// PEM file of the private key of --cert.
    #[arg(long, global = true, env = "WHARF_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Print the service's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: HTTP API, scheduler and database.
    Serve(ServeArgs),
    /// Programs that run in a container.
    #[command(subcommand)]
    Actor(actor::ActorCommand),
    /// Scripts that decide which actors run.
    #[command(subcommand, name = "statemachine", alias = "sm")]
    StateMachine(state_machine::StateMachineCommand),
    /// Files in and out of containers.
    #[command(subcommand)]
    Blob(blob::BlobCommand),
    /// Docker engines that run actors.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Runs of state machines.
    #[command(subcommand)]
    Instance(instance::InstanceCommand),
    /// Start a state machine on local files, and optionally wait for its end.
    Run(run::RunArgs),
    /// Print a shell completion script: `wharf completion bash > /etc/bash_completion.d/wharf`.
    Completion(CompletionArgs),
}

/// Commands that are not clients of a service, so the client flags are neither shown nor
/// taken there.
const LOCAL_COMMANDS: [&str; 2] = ["serve", "completion"];

/// The command line. The client flags are global, so they go before or after a client
/// command; `serve` and `completion` get hidden copies instead, which keep them out of their
/// help and let `parse` refuse them there.
pub fn command() -> clap::Command {
    let top = Cli::command();
    let client_flags: Vec<clap::Arg> = top.get_arguments().filter(|a| a.is_global_set()).cloned().collect();
    LOCAL_COMMANDS.iter().fold(top, |top, name| {
        top.mut_subcommand(name, |local| {
            client_flags.iter().fold(local, |local, flag| local.arg(flag.clone().global(false).hide(true)))
        })
    })
}

/// Parses the process's arguments; exits with clap's message on a usage error, as
/// `Cli::parse` does, and on a client flag given to `serve` or `completion`.
pub fn parse() -> Cli {
    let mut command = command();
    let matches = command.clone().get_matches();
    if let Some((name, local)) = matches.subcommand()
        && LOCAL_COMMANDS.contains(&name)
    {
        let given = command
            .get_arguments()
            .filter(|a| a.is_global_set())
            .find(|a| local.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine));
        if let Some(flag) = given {
            let flag = flag.get_long().unwrap_or_else(|| flag.get_id().as_str());
            command
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("--{flag} is for client commands; `wharf {name}` does not take it"),
                )
                .exit();
        }
    }
    Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.format(&mut command).exit())
}

/// Runs a client command. `serve` is handled by the binary.
pub async fn run_client(global: &Global, command: Command) -> Result<(), CliError> {
    let tls = client::TlsFiles { cacert: global.cacert.clone(), cert: global.cert.clone(), key: global.key.clone() };
    let client = Client::new(&global.server, global.token.clone(), &tls)?;
    match command {
        Command::Serve(_) | Command::Completion(_) => {
            Err(CliError::Usage("serve and completion are not client commands".into()))
        }
        Command::Actor(command) => actor::run(&client, global.json, command).await,
        Command::StateMachine(command) => state_machine::run(&client, global.json, command).await,
        Command::Blob(command) => blob::run(&client, global.json, command).await,
        Command::Node(command) => node::run(&client, global.json, command).await,
        Command::Instance(command) => instance::run(&client, global.json, command).await,
        Command::Run(args) => run::run(&client, global.json, args).await,
    }
}

/// Lists what `path` gives: the service's JSON with `--json`, else a table under `headers`
/// with a row per item.
async fn list(
    client: &Client,
    json: bool,
    path: &str,
    headers: &[&str],
    row: impl Fn(&serde_json::Value) -> Vec<String>,
) -> Result<(), CliError> {
    let items = client.get(path).await?;
    if json {
        print_json(&items);
    } else {
        table::print(headers, items.as_array().into_iter().flatten().map(row).collect());
    }
    Ok(())
}

/// Prints `value` as pretty JSON.
fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// A name from `--name`, else the file's stem.
fn name_of(name: Option<String>, path: &std::path::Path) -> Result<String, CliError> {
    name.or_else(|| path.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
        .ok_or_else(|| CliError::Usage(format!("give --name: {} has no usable file name", path.display())))
}

/// Creates a named resource (`kind` as in its route, `word` as people say it), or changes
/// it when the name is taken, and says which.
async fn put_named(
    client: &Client,
    json: bool,
    kind: &str,
    word: &str,
    name: &str,
    body: serde_json::Value,
) -> Result<(), CliError> {
    let done = match client.put(&format!("/api/v1/{kind}"), &body).await {
        Ok(_) => "created",
        Err(CliError::Api(message)) if message.contains("already exists") => {
            client.patch(&format!("/api/v1/{kind}/{}", client::segment(name)), &body).await?;
            "updated"
        }
        Err(err) => return Err(err),
    };
    if json {
        print_json(&serde_json::json!({"name": name, "result": done}));
    } else {
        println!("{word} {name} {done}");
    }
    Ok(())
}

/// Deletes a named resource and says so.
async fn remove_named(client: &Client, json: bool, kind: &str, word: &str, name: &str) -> Result<(), CliError> {
    client.delete(&format!("/api/v1/{kind}/{}", client::segment(name))).await?;
    if json {
        print_json(&serde_json::json!({"name": name, "deleted": 1}));
    } else {
        println!("{word} {name} deleted");
    }
    Ok(())
}

/// Lets a client command end as `cat` does when its reader goes away (`wharf blob list |
/// head -2`): quietly, by SIGPIPE. Rust ignores the signal by default, which turns the next
/// `println!` into a panic. The service keeps ignoring it: sockets report a closed peer as an
/// error (they are written with `MSG_NOSIGNAL`), and the service handles errors.
pub fn die_quietly_on_closed_pipe() {
    // SAFETY: restores the signal's default disposition; no handler, so no Rust code runs
    // in signal context.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    /// Every flag and argument of every command says what it is for.
    #[test]
    fn every_argument_has_help() {
        fn undocumented(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
                if arg.get_help().is_none() && !matches!(arg.get_id().as_str(), "help" | "version") {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                undocumented(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        let mut command = super::command();
        command.build();
        undocumented(&command, "wharf", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    }
}
