//! `/metrics`: the service's series in the Prometheus text format. Instances by status and the
//! nodes are read at scrape time; the rest comes from the `Metrics` handle in the state.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::envelope::ErrorBody;
use super::error::ApiError;
use crate::engine::Health;
use crate::metrics::{CONTENT_TYPE, Family, Gauge};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus text exposition (version 0.0.4): instances by status, nodes, the actor queue,
/// actor durations, callback deliveries and HTTP requests by route template. Needs no token.
#[utoipa::path(get, path = "/metrics", tag = "Service", security(()),
    responses(
        (status = 200, description = "Every series, with `# HELP` and `# TYPE`", content_type = "text/plain; version=0.0.4", body = String),
        (status = 500, description = "The database did not answer", body = ErrorBody)))]
async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let instances: Family<Gauge, 1> = Family::new("wharf_instances", "State machine instances by status.", ["status"]);
    for (status, count) in state.store.count_instances_by_status().await? {
        instances.with([status.as_str()]).set(count as f64);
    }

    let up: Family<Gauge, 1> =
        Family::new("wharf_node_up", "Whether the node's last probe succeeded (1) or not (0).", ["node"]);
    let running: Family<Gauge, 1> = Family::new("wharf_node_running_actors", "Actors running on the node.", ["node"]);
    let capacity: Family<Gauge, 1> = Family::new("wharf_node_capacity", "Most actors the node runs at once.", ["node"]);
    for node in state.pool.view() {
        let name = node.name.as_str();
        up.with([name]).set(if node.health == Health::Healthy.as_str() { 1.0 } else { 0.0 });
        running.with([name]).set(node.running_jobs as f64);
        capacity.with([name]).set(node.node_info.capacity as f64);
    }
    let queued: Family<Gauge, 0> = Family::new("wharf_actors_queued", "Actors waiting for a free slot on a node.", []);
    queued.with([]).set(state.pool.queued() as f64);
    let worker_up: Family<Gauge, 1> =
        Family::new("wharf_worker_up", "Whether the background worker runs (1) or has stopped (0).", ["worker"]);
    let worker_errors: Family<Gauge, 1> =
        Family::new("wharf_worker_consecutive_errors", "Failures in a row of the background worker.", ["worker"]);
    for (name, worker) in state.workers.snapshot() {
        worker_up.with([name]).set(if worker.state == "running" { 1.0 } else { 0.0 });
        worker_errors.with([name]).set(worker.consecutive_errors as f64);
    }

    let mut text = String::new();
    instances.encode(&mut text);
    up.encode(&mut text);
    running.encode(&mut text);
    capacity.encode(&mut text);
    queued.encode(&mut text);
    worker_up.encode(&mut text);
    worker_errors.encode(&mut text);
    state.metrics.encode(&mut text);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
