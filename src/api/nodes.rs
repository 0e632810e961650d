//! `/api/v1/DockerNode`: the Docker engines actors run on, registered at run time and persisted.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::envelope::{Changed, Envelope, ErrorBody, Listed, Reply};
use super::error::ApiError;
use super::extract::{JsonBody, Paging, QueryParams};
use crate::config::{DEFAULT_CAPACITY, DEFAULT_IMAGE};
use crate::model::node::{DockerNode, NodeRecord, NodeTls, validate_address, validate_node_name};
use crate::store::NodePatch;

/// Most containers one node may be asked to run at once.
const MAX_CAPACITY: i64 = 1024;

/// A node to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "node-2", "address": "tcp://127.0.0.1:2375", "capacity": 4}))]
pub struct NodeInput {
    #[serde(alias = "Name")]
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$", min_length = 1, max_length = 128)]
    pub name: String,
    /// `unix:///var/run/docker.sock`, `tcp://host:2375` or `https://host:2376`.
    #[serde(alias = "Address")]
    #[schema(pattern = "^(unix|tcp|http|https)://.")]
    pub address: String,
    #[serde(alias = "Image", default)]
    #[schema(schema_with = crate::model::schemas::optional_image)]
    pub image: Option<String>,
    /// Most actors run at once (default 8).
    #[serde(alias = "Capacity", default)]
    #[schema(minimum = 1, maximum = 1024)]
    pub capacity: Option<i64>,
    /// Client certificate files on the service's host, for `https://` engines.
    #[serde(alias = "Tls", default)]
    pub tls: Option<NodeTls>,
}

/// Changes to a node.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"drained": true}))]
pub struct NodePatchInput {
    /// A drained node takes no new work.
    #[serde(alias = "Drained")]
    pub drained: Option<bool>,
    /// Most actors run at once.
    #[serde(alias = "Capacity")]
    #[schema(minimum = 1, maximum = 1024)]
    pub capacity: Option<i64>,
    #[serde(alias = "Image")]
    #[schema(schema_with = crate::model::schemas::optional_image)]
    pub image: Option<String>,
}

/// The answer to a registration.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct NodeCreated {
    pub name: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_nodes))
        .routes(routes!(waiting_tasks))
        .routes(routes!(timeout_errors))
        .routes(routes!(put_node))
        .routes(routes!(patch_node, delete_node))
}

fn check_capacity(capacity: i64) -> Result<(), ApiError> {
    if (1..=MAX_CAPACITY).contains(&capacity) {
        Ok(())
    } else {
        Err(ApiError::field("capacity", format!("must be between 1 and {MAX_CAPACITY}")))
    }
}

fn check_image(image: &str) -> Result<(), ApiError> {
    if image.is_empty() || image.contains(char::is_whitespace) {
        return Err(ApiError::field("image", format!("`{image}` is not an image reference")));
    }
    Ok(())
}

fn check_tls(address: &str, tls: Option<&NodeTls>) -> Result<(), ApiError> {
    match tls {
        None if address.starts_with("https://") => {
            Err(ApiError::field("tls", "an https:// address needs client certificates (ca, cert, key)"))
        }
        None => Ok(()),
        Some(_) if address.starts_with("unix://") => Err(ApiError::field("tls", "a unix socket takes no certificates")),
        Some(tls) => {
            for (field, path) in [("tls.ca", &tls.ca), ("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
                std::fs::metadata(path).map_err(|e| ApiError::field(field, format!("cannot read `{path}`: {e}")))?;
            }
            Ok(())
        }
    }
}

/// Lists the nodes with their settings, load and health, by name.
#[utoipa::path(get, path = "/api/v1/DockerNode/All", tag = "DockerNode", params(Paging),
    responses((status = 200, body = Envelope<Vec<DockerNode>>)))]
async fn list_nodes(
    State(state): State<AppState>,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Listed<DockerNode>, ApiError> {
    let page = paging.page()?;
    let nodes = state.pool.view();
    let total = nodes.len() as i64;
    let items =
        nodes.into_iter().skip(page.offset as usize).take(page.limit.min(i64::from(u32::MAX)) as usize).collect();
    Ok(Listed { items, total })
}

/// How many actors of this service wait for a node slot, by priority (JoyOI's shape: an
/// object whose keys are priorities).
#[utoipa::path(get, path = "/api/v1/DockerNode/WaitingTasks", tag = "DockerNode",
    responses((status = 200, body = Envelope<crate::model::schemas::CountsByPriority>)))]
async fn waiting_tasks(State(state): State<AppState>) -> Reply<BTreeMap<i64, usize>> {
    Reply(state.pool.queued_by_priority())
}

/// Engine calls of this service that timed out lately, oldest first, each as
/// `(<time>): <what timed out>` (JoyOI's shape: a list of strings).
#[utoipa::path(get, path = "/api/v1/DockerNode/TimeoutErrors", tag = "DockerNode",
    responses((status = 200, body = Envelope<Vec<String>>)))]
async fn timeout_errors(State(state): State<AppState>) -> Reply<Vec<String>> {
    Reply(state.pool.timeout_errors())
}

/// Makes the pool see a change of the registered nodes now, and probe them soon.
async fn nodes_changed(state: &AppState) -> Result<(), ApiError> {
    state.pool.reload().await?;
    state.pool.request_reload();
    Ok(())
}

/// Registers a Docker engine as a node.
#[utoipa::path(put, path = "/api/v1/DockerNode", tag = "DockerNode", request_body = NodeInput,
    responses((status = 200, body = Envelope<NodeCreated>), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn put_node(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<NodeInput>,
) -> Result<Reply<NodeCreated>, ApiError> {
    validate_node_name(&input.name).map_err(|m| ApiError::field("name", m))?;
    validate_address(&input.address).map_err(|m| ApiError::field("address", m))?;
    let capacity = input.capacity.unwrap_or(i64::from(DEFAULT_CAPACITY));
    check_capacity(capacity)?;
    let image = input.image.unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
    check_image(&image)?;
    check_tls(&input.address, input.tls.as_ref())?;
    let record = NodeRecord {
        name: input.name,
        address: input.address,
        image,
        capacity,
        drained: false,
        tls: input.tls,
        source: "api".into(),
        created_at: crate::model::now_millis(),
    };
    state.store.create_node(&record).await?;
    nodes_changed(&state).await?;
    tracing::info!(node = %record.name, address = %record.address, "node registered");
    Ok(Reply(NodeCreated { name: record.name }))
}

/// Drains or undrains a node, or changes its capacity or image.
#[utoipa::path(patch, path = "/api/v1/DockerNode/{name}", tag = "DockerNode", request_body = NodePatchInput,
    responses((status = 200, body = Envelope<Changed>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn patch_node(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(input): JsonBody<NodePatchInput>,
) -> Result<Reply<Changed>, ApiError> {
    if let Some(capacity) = input.capacity {
        check_capacity(capacity)?;
    }
    if let Some(image) = &input.image {
        check_image(image)?;
    }
    let patch = NodePatch { drained: input.drained, capacity: input.capacity, image: input.image };
    let node = state.store.patch_node(&name, &patch).await?;
    nodes_changed(&state).await?;
    tracing::info!(node = %name, drained = node.drained, capacity = node.capacity, "node changed");
    Ok(Reply(Changed::patched()))
}

/// Removes a node (a node from the config file comes back at the next start).
#[utoipa::path(delete, path = "/api/v1/DockerNode/{name}", tag = "DockerNode",
    responses((status = 200, body = Envelope<Changed>), (status = 404, body = ErrorBody)))]
async fn delete_node(State(state): State<AppState>, Path(name): Path<String>) -> Result<Reply<Changed>, ApiError> {
    state.store.delete_node(&name).await?;
    nodes_changed(&state).await?;
    tracing::info!(node = %name, "node removed");
    Ok(Reply(Changed::deleted()))
}
