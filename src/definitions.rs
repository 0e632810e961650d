//! Definitions loaded from a folder at start-up, so that a fresh install has working
//! examples: `actors/<name>.toml` (body, outputs, image, limitation) and
//! `state_machines/<name>.rhai` (the script). The file name is the resource's name; a file's
//! definition replaces a stored one of the same name.

use std::path::{Path, PathBuf};

use crate::model::actor::ActorFile;
use crate::store::{ActorFields, StateMachineFields, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What was loaded.
#[derive(Debug, Default, PartialEq)]
pub struct Loaded {
    pub actors: Vec<String>,
    pub state_machines: Vec<String>,
}

/// Files of `dir` with `extension`, sorted, with their names (the stem).
fn files(dir: &Path, extension: &str) -> Result<Vec<(String, PathBuf)>, DefinitionError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(
                folder = %dir.display(),
                "definitions folder not found: nothing loaded from it (set server.definitions, or start from the repository's folder)"
            );
            return Ok(Vec::new());
        }
        Err(source) => return Err(DefinitionError::Read { path: dir.to_owned(), source }),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| DefinitionError::Read { path: dir.to_owned(), source })?.path();
        if path.extension().and_then(|e| e.to_str()) == Some(extension)
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            found.push((stem.to_owned(), path.clone()));
        }
    }
    found.sort();
    Ok(found)
}

fn read(path: &Path) -> Result<String, DefinitionError> {
    std::fs::read_to_string(path).map_err(|source| DefinitionError::Read { path: path.to_owned(), source })
}

/// Checks every file under `dir` first, then stores them all; nothing is stored when one is bad.
pub async fn load(store: &Store, dir: &Path) -> Result<Loaded, DefinitionError> {
    let invalid = |path: &Path, message: String| DefinitionError::Invalid { path: path.to_owned(), message };
    let mut actors = Vec::new();
    for (name, path) in files(&dir.join("actors"), "toml")? {
        crate::model::validate_name(&name).map_err(|m| invalid(&path, m))?;
        let file = ActorFile::parse(&read(&path)?).map_err(|m| invalid(&path, m))?;
        if let Some(limitation) = &file.limitation {
            limitation.validate("limitation").map_err(|m| invalid(&path, m))?;
        }
        for output in &file.outputs {
            crate::model::blob::validate_file_name(output).map_err(|m| invalid(&path, format!("outputs: {m}")))?;
        }
        actors.push(ActorFields {
            name,
            body: file.body,
            image: file.image,
            outputs: file.outputs,
            limitation: file.limitation,
            sandbox: file.sandbox,
        });
    }
    let mut machines = Vec::new();
    for (name, path) in files(&dir.join("state_machines"), "rhai")? {
        crate::model::validate_name(&name).map_err(|m| invalid(&path, m))?;
        let body = read(&path)?;
        crate::script::check(&body).map_err(|m| invalid(&path, m))?;
        machines.push(StateMachineFields { name, body, limitation: None });
    }
    let mut loaded = Loaded::default();
    for actor in actors {
        match store.update_actor(&actor.name, &actor).await {
            Err(StoreError::NotFound { .. }) => {
                store.create_actor(&actor).await?;
            }
            other => other?,
        }
        loaded.actors.push(actor.name);
    }
    for machine in machines {
        match store.update_state_machine(&machine.name, &machine).await {
            Err(StoreError::NotFound { .. }) => {
                store.create_state_machine(&machine).await?;
            }
            other => other?,
        }
        loaded.state_machines.push(machine.name);
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    #[test]
    fn shipped_scripts_compile() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/definitions/state_machines");
        for entry in std::fs::read_dir(dir).expect("definitions folder") {
            let path = entry.expect("entry").path();
            let body = std::fs::read_to_string(&path).expect("read");
            if let Err(message) = crate::script::check(&body) {
                panic!("{}: {message}", path.display());
            }
        }
    }
}
