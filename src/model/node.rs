//! DockerNode: a Docker engine the service runs actors on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A registered node as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    pub name: String,
    pub address: String,
    pub image: String,
    pub capacity: i64,
    pub drained: bool,
    pub tls: Option<NodeTls>,
    /// `config` for nodes from the config file, `api` for nodes registered over HTTP.
    pub source: String,
    pub created_at: i64,
}

/// Client certificate files for a TLS-protected engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeTls {
    #[serde(alias = "Ca")]
    pub ca: String,
    #[serde(alias = "Cert")]
    pub cert: String,
    #[serde(alias = "Key")]
    pub key: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub image: String,
    pub address: String,
    pub capacity: i64,
    pub drained: bool,
    pub tls: bool,
}

/// A node as `GET /api/v1/DockerNode/All` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DockerNode {
    pub name: String,
    pub node_info: NodeInfo,
    pub running_jobs: i64,
    pub running_job_descriptions: Vec<String>,
    /// Consecutive failed probes.
    pub error_flags: i64,
    /// `unknown` until the node has been probed, then `healthy` or `unhealthy`.
    pub health: String,
    pub last_error: Option<String>,
    /// Whether the node's engine has `nodeInfo.image`, as of the last probe (`null` before
    /// one). Actors can still run when another node has it: it is copied over.
    pub image_present: Option<bool>,
    pub source: String,
    pub created_at: DateTime<Utc>,
}

pub fn validate_node_name(name: &str) -> Result<(), String> {
    super::validate_name(name)
}

/// Accepts the engine addresses the service can reach.
pub fn validate_address(address: &str) -> Result<(), String> {
    let rest = ["unix://", "tcp://", "http://", "https://"].iter().find_map(|scheme| address.strip_prefix(scheme));
    match rest {
        Some(rest) if !rest.is_empty() => Ok(()),
        _ => Err(format!(
            "`{address}` is not an engine address: use unix:///path/docker.sock, tcp://host:port or https://host:port"
        )),
    }
}

impl NodeRecord {
    pub fn view(&self) -> DockerNode {
        DockerNode {
            name: self.name.clone(),
            node_info: NodeInfo {
                image: self.image.clone(),
                address: self.address.clone(),
                capacity: self.capacity,
                drained: self.drained,
                tls: self.tls.is_some(),
            },
            running_jobs: 0,
            running_job_descriptions: Vec::new(),
            error_flags: 0,
            health: "unknown".into(),
            last_error: None,
            image_present: None,
            source: self.source.clone(),
            created_at: super::to_time(self.created_at),
        }
    }
}
