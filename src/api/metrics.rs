//! `/metrics`: the service's series in the OpenMetrics text format. Instances by status and the
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
use crate::metrics::{CONTENT_TYPE, CountGauge, Labels, labels};
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// OpenMetrics text, which Prometheus reads: build info, instances by status, nodes (up,
/// load, capacity, drained), the actor queue, actor queue wait and run time, engine errors by
/// node and operation, image loads, callback deliveries and HTTP requests by route template.
/// Needs no token.
#[utoipa::path(get, path = "/metrics", tag = "Service", security(()),
    responses(
        (status = 200, description = "Every series, with `# HELP` and `# TYPE`", content_type = "application/openmetrics-text; version=1.0.0", body = String),
        (status = 500, description = "The database did not answer", body = ErrorBody)))]
async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let instances: Family<Labels<1>, CountGauge> = Family::default();
    for (status, count) in state.store.count_instances_by_status().await? {
        instances.get_or_create(&labels([("status", status.as_str())])).set(count);
    }
    let up: Family<Labels<1>, CountGauge> = Family::default();
    let running: Family<Labels<1>, CountGauge> = Family::default();
    let capacity: Family<Labels<1>, CountGauge> = Family::default();
    let drained: Family<Labels<1>, CountGauge> = Family::default();
    for node in state.pool.view() {
        let name = labels([("node", node.name.as_str())]);
        up.get_or_create(&name).set(i64::from(node.health == Health::Healthy.as_str()));
        running.get_or_create(&name).set(node.running_jobs);
        capacity.get_or_create(&name).set(node.node_info.capacity);
        drained.get_or_create(&name).set(i64::from(node.node_info.drained));
    }
    let queued = CountGauge::default();
    queued.set(state.pool.queued() as i64);
    let worker_up: Family<Labels<1>, CountGauge> = Family::default();
    let worker_errors: Family<Labels<1>, CountGauge> = Family::default();
    for (name, worker) in state.workers.snapshot() {
        let name = labels([("worker", name)]);
        worker_up.get_or_create(&name).set(i64::from(worker.state == "running"));
        worker_errors.get_or_create(&name).set(i64::try_from(worker.consecutive_errors).unwrap_or(i64::MAX));
    }

    let mut scraped = Registry::with_prefix("wharf");
    scraped.register("instances", "State machine instances by status", instances);
    scraped.register("node_up", "Whether the node's last probe succeeded (1) or not (0)", up);
    scraped.register("node_running_actors", "Actors running on the node", running);
    scraped.register("node_capacity", "Most actors the node runs at once", capacity);
    scraped.register("node_drained", "Whether the node is drained: it gets no new work (1) or it does (0)", drained);
    scraped.register("actors_queued", "Actors waiting for a free slot on a node", queued);
    scraped.register("worker_up", "Whether the background worker runs (1) or has stopped (0)", worker_up);
    scraped.register("worker_consecutive_errors", "Failures in a row of the background worker", worker_errors);
    let text = state.metrics.encode(&scraped);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
