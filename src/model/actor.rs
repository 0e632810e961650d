//! Actor: a named program that runs inside one container.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::limitation::Limitation;
use super::sandbox::Sandbox;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    pub id: Uuid,
    pub name: String,
    /// The script run as `/actor/run` (shell unless it starts with `#!`).
    pub body: String,
    /// Image to run in instead of the node's.
    pub image: Option<String>,
    /// Files the actor must leave in `/workdir`; each becomes a blob.
    pub outputs: Vec<String>,
    pub limitation: Option<Limitation>,
    /// Where it runs unless a script's call asks otherwise: `fresh` (a container of its own)
    /// or `warm` (a fresh directory and uid in a running container of its instance).
    pub sandbox: Sandbox,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An actor as a TOML file: `wharf actor put <name>.toml` and the definitions loaded at start.
#[derive(Debug, Deserialize)]
pub struct ActorFile {
    pub body: String,
    #[serde(default)]
    pub outputs: Vec<String>,
    pub image: Option<String>,
    pub limitation: Option<Limitation>,
    #[serde(default)]
    pub sandbox: Sandbox,
}

impl ActorFile {
    /// Parses an actor file. A key it does not know, at the top or in `limitation`, is
    /// refused by name: a misspelt `output` would otherwise surface only when the actor runs.
    pub fn parse(text: &str) -> Result<ActorFile, String> {
        let mut unknown = Vec::new();
        let document = toml::Deserializer::parse(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        let file: ActorFile = serde_ignored::deserialize(document, |path| {
            // `?` stands for the `Some` of an optional table; people name keys without it.
            unknown.push(path.to_string().replace(".?", ""))
        })
        .map_err(|e| e.to_string().trim_end().to_owned())?;
        match unknown.first() {
            None => Ok(file),
            Some(key) if key.starts_with("limitation.") => Err(format!(
                "unknown key `{key}`: limitation takes cpuPeriod, cpuQuota, memory, memorySwap, \
                 blkioDeviceReadBps, blkioDeviceWriteBps, executionTimeout, enableNetwork, ulimit, pidsLimit, outputLimit"
            )),
            Some(key) => {
                Err(format!("unknown key `{key}`: an actor file takes body, outputs, image, limitation and sandbox"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ActorFile;

    #[test]
    fn actor_files_refuse_unknown_keys_by_name() {
        let file =
            ActorFile::parse("body = \"true\"\noutputs = [\"a\"]\n[limitation]\nmemory = 5000000\n").expect("parses");
        assert_eq!(file.outputs, ["a"]);
        assert_eq!(file.limitation.and_then(|l| l.memory), Some(5_000_000));
        assert_eq!(file.sandbox, super::Sandbox::Fresh, "fresh unless the file says otherwise");
        let warm = ActorFile::parse("body = \"true\"\nsandbox = \"warm\"\n").expect("parses");
        assert_eq!(warm.sandbox, super::Sandbox::Warm);
        for (text, key) in [
            ("body = \"true\"\noutput = [\"a\"]\n", "`output`"),
            ("body = \"true\"\n[limitation]\ncpu_period = 1\n", "`limitation.cpu_period`"),
            ("outputs = []\n", "body"),
            ("body = \"true\"\nsandbox = \"hot\"\n", "sandbox"),
        ] {
            let err = ActorFile::parse(text).expect_err(text);
            assert!(err.contains(key), "`{err}` should name {key}");
        }
    }
}
