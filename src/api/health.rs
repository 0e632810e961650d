//! `/healthz`: whether the service, its database and its background workers are well.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::envelope::{Envelope, ErrorBody, Reply};
use super::error::ApiError;
use crate::engine::workers::WorkerStatus;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when a worker has stopped or keeps failing.
    pub status: &'static str,
    pub version: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    /// This process's identity among the processes sharing the database.
    pub process: String,
    /// The background workers (`instances`, `callbacks`, `probes`, `heartbeat`) by name.
    pub workers: std::collections::BTreeMap<&'static str, WorkerStatus>,
}

/// Failures in a row after which a worker makes the service `degraded`.
const DEGRADED_AFTER: u64 = 3;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz))
}

/// Answers 200 when the database takes queries, 500 when it does not.
#[utoipa::path(get, path = "/healthz", tag = "Service",
    responses((status = 200, body = Envelope<Health>), (status = 500, body = ErrorBody)))]
async fn healthz(State(state): State<AppState>) -> Result<Reply<Health>, ApiError> {
    state.store.ping().await?;
    let database = match state.store.backend() {
        crate::store::Backend::Sqlite => "sqlite",
        crate::store::Backend::Postgres => "postgres",
    };
    let workers = state.workers.snapshot();
    let unwell = workers.values().any(|w| w.state != "running" || w.consecutive_errors >= DEGRADED_AFTER);
    let status = if unwell { "degraded" } else { "ok" };
    let process = state.pool.process_id().to_owned();
    Ok(Reply(Health { status, version: env!("CARGO_PKG_VERSION"), database, process, workers }))
}
