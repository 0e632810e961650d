//! `/healthz`: whether the service and its database answer.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::envelope::{Envelope, ErrorBody, Reply};
use super::error::ApiError;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
}

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
    Ok(Reply(Health { status: "ok", version: env!("CARGO_PKG_VERSION"), database }))
}
