//! Docker engines, reached through bollard: connecting to a node, running one actor's
//! container from create to remove, moving images between nodes, and finding containers
//! this service left behind. The only module that imports bollard.

mod agent;
mod archive;
pub(crate) mod container;
mod image;
mod logs;
mod outputs;

pub use agent::{FIRST_RUN_UID, WarmAgent, WarmRun};
pub use container::{ContainerOutcome, ContainerSpec, ContentStream, InputContent, InputFile, Limits, Timings};
pub use outputs::OutputSink;

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::{API_DEFAULT_VERSION, Docker};

use crate::model::node::NodeTls;

/// Labels every container carries, so it can be found again.
pub const LABEL_SERVICE: &str = "wharf.service";
pub const LABEL_INSTANCE: &str = "wharf.instance";
pub const LABEL_ACTOR: &str = "wharf.actor";
/// The identity of the service process that made the container.
pub const LABEL_PROCESS: &str = "wharf.process";

/// What failed, on which node, doing what.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("node {node}: cannot connect to {address}: {}", crate::errors::with_causes(.source))]
    Connect { node: String, address: String, source: bollard::errors::Error },
    #[error("node {node}: {doing} failed: {}", crate::errors::with_causes(.source))]
    Engine { node: String, doing: &'static str, source: bollard::errors::Error },
    #[error("node {node}: {doing} took longer than {secs} s")]
    Timeout { node: String, doing: &'static str, secs: u64 },
    #[error("node {node}: {doing}: {message}")]
    Broken { node: String, doing: &'static str, message: String },
    #[error(
        "image {image} is on no reachable node, so it cannot be loaded onto node {node}; provide it on any node's \
         engine (for wharf/actor:latest: `bash images/build.sh`; for wharf/full:latest: `bash images/build-full.sh`), \
         or give the node or actor an image it has (`PATCH /api/v1/DockerNode/{node}` with `image`)"
    )]
    ImageUnavailable { node: String, image: String },
    /// The node is fine; what it was asked to do cannot be done (the actor's doing).
    #[error("node {node}: {message}")]
    Refused { node: String, message: String },
}

impl DockerError {
    /// Whether the node, not the actor, is to blame: the work may go to another node.
    pub fn is_node_fault(&self) -> bool {
        match self {
            DockerError::Connect { .. } | DockerError::Timeout { .. } | DockerError::Broken { .. } => true,
            // A container of ours that the engine no longer knows (wiped, engine restarted)
            // is the node's doing too; a 404 when creating one is about the request.
            DockerError::Engine { source, doing, .. } => {
                is_engine_fault(source) || (is_not_found(source) && *doing != "creating a container")
            }
            DockerError::ImageUnavailable { .. } | DockerError::Refused { .. } => false,
        }
    }

    pub fn node(&self) -> &str {
        match self {
            DockerError::Connect { node, .. }
            | DockerError::Engine { node, .. }
            | DockerError::Timeout { node, .. }
            | DockerError::Broken { node, .. }
            | DockerError::ImageUnavailable { node, .. }
            | DockerError::Refused { node, .. } => node,
        }
    }
}

fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(err, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

/// Transport failures and 5xx answers are the engine's; 4xx answers are about the request.
fn is_engine_fault(err: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    match err {
        E::DockerResponseServerError { status_code, .. } => *status_code >= 500,
        E::DockerContainerWaitError { .. } | E::JsonDataError { .. } | E::JsonSerdeError { .. } => false,
        _ => true,
    }
}

/// A connected Docker engine: a cheap-to-clone handle.
#[derive(Clone)]
pub struct DockerClient {
    pub node: String,
    docker: Docker,
    call_timeout: Duration,
}

impl std::fmt::Debug for DockerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerClient").field("node", &self.node).finish()
    }
}

impl DockerClient {
    /// Connects to `address` and agrees on an API version with the engine.
    pub async fn connect(
        node: &str,
        address: &str,
        tls: Option<&NodeTls>,
        call_timeout: Duration,
    ) -> Result<DockerClient, DockerError> {
        let err = |source| DockerError::Connect { node: node.to_owned(), address: address.to_owned(), source };
        let secs = call_timeout.as_secs().max(1);
        let docker = if let Some(path) = address.strip_prefix("unix://") {
            Docker::connect_with_unix(path, secs, API_DEFAULT_VERSION).map_err(err)?
        } else if let Some(tls) = tls {
            let host = address.replacen("https://", "tcp://", 1);
            Docker::connect_with_ssl(
                &host,
                std::path::Path::new(&tls.key),
                std::path::Path::new(&tls.cert),
                std::path::Path::new(&tls.ca),
                secs,
                API_DEFAULT_VERSION,
            )
            .map_err(err)?
        } else {
            let host = address.replacen("tcp://", "http://", 1);
            Docker::connect_with_http(&host, secs, API_DEFAULT_VERSION).map_err(err)?
        };
        let docker =
            timed(node, "negotiating the API version", call_timeout, docker.negotiate_version()).await?.map_err(err)?;
        Ok(DockerClient { node: node.to_owned(), docker, call_timeout })
    }

    /// Answers whether the engine responds.
    pub async fn ping(&self) -> Result<(), DockerError> {
        self.call("ping", self.docker.ping()).await.map(|_| ())
    }

    /// Runs `future` (an engine call) under the call timeout, naming what it does on failure.
    async fn call<T>(
        &self,
        doing: &'static str,
        future: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, DockerError> {
        timed(&self.node, doing, self.call_timeout, future).await?.map_err(|source| DockerError::Engine {
            node: self.node.clone(),
            doing,
            source,
        })
    }

    /// Ids of the containers carrying `label=value` (running or not).
    pub async fn containers_labelled(&self, label: &str, value: &str) -> Result<Vec<String>, DockerError> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{label}={value}")])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let list = self.call("listing containers", self.docker.list_containers(Some(options))).await?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Force-removes a container and its anonymous volumes; a missing one, or one already being
    /// removed, is not an error.
    pub async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.call("removing a container", self.docker.remove_container(id, Some(options))).await {
            Err(DockerError::Engine {
                source: bollard::errors::Error::DockerResponseServerError { status_code: 404, .. },
                ..
            }) => Ok(()),
            Err(DockerError::Engine {
                source: bollard::errors::Error::DockerResponseServerError { status_code: 409, message },
                ..
            }) if message.contains("already in progress") => Ok(()),
            other => other,
        }
    }

    /// The deployment's containers on this node, with the process each was made by (none for
    /// containers made before processes had identities).
    pub async fn containers_of(&self, deployment: &str) -> Result<Vec<(String, Option<String>)>, DockerError> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{LABEL_SERVICE}={deployment}")])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let list = self.call("listing containers", self.docker.list_containers(Some(options))).await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let process = c.labels.as_ref().and_then(|labels| labels.get(LABEL_PROCESS).cloned());
                c.id.map(|id| (id, process))
            })
            .collect())
    }
}

/// Bounds an engine call in time.
async fn timed<T>(
    node: &str,
    doing: &'static str,
    limit: Duration,
    future: impl Future<Output = T>,
) -> Result<T, DockerError> {
    tokio::time::timeout(limit, future).await.map_err(|_| DockerError::Timeout {
        node: node.to_owned(),
        doing,
        secs: limit.as_secs(),
    })
}
