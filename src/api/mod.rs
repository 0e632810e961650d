//! The HTTP API: JoyOI's routes under `/api/v1`, wharf's additions, the OpenAPI document
//! generated from the handlers, Swagger UI, and the web console's files (`crate::ui`). The only module that knows status codes.

pub mod access;
mod actors;
mod blobs;
mod envelope;
mod error;
mod extract;
mod graph;
mod health;
mod instances;
mod logs;
mod metrics;
mod nodes;
mod openapi;
mod route_case;
mod state_machines;
mod timeline;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use envelope::Envelope;
pub use error::ApiError;

use crate::config::Config;
use crate::engine::{InstanceRunner, NodePool};
use crate::metrics::Metrics;
use crate::store::Store;

/// What every handler can reach: a cheap-to-clone handle.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub pool: NodePool,
    pub runner: InstanceRunner,
    pub config: Arc<Config>,
    /// The series recorded as things happen, shown by `/metrics`.
    pub metrics: Metrics,
    /// Identifies this service process in `fromManagementService`.
    pub service_id: Arc<str>,
    /// The background workers' health, for `/healthz`.
    pub workers: crate::engine::Workers,
    /// Permits for blob transfers of more than one chunk (`blobs.max_concurrent_transfers`).
    pub transfers: Arc<tokio::sync::Semaphore>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "wharf", description = "A Docker-orchestrating distributed executor with a JoyOI-compatible API. \
        Every answer is the envelope {code, msg, data}; request bodies accept camelCase and PascalCase."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "Actor", description = "Programs that run in a container"),
        (name = "StateMachine", description = "Scripts that decide which actors run"),
        (name = "StateMachineInstance", description = "Runs of state machines"),
        (name = "Blob", description = "Files in and out of containers"),
        (name = "DockerNode", description = "Docker engines that run actors"),
        (name = "Service", description = "The service itself"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            openapi::BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The documented routes and the OpenAPI document describing exactly them.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(actors::router())
        .merge(state_machines::router())
        .merge(blobs::router())
        .merge(instances::router())
        .merge(timeline::router())
        .merge(graph::router())
        .merge(logs::router())
        .merge(nodes::router())
        .merge(health::router())
        .merge(metrics::router())
        .split_for_parts()
}

/// The whole application: routes, docs, access checks, envelope fallbacks.
pub fn app(state: AppState, access: access::Access) -> Router {
    let (routes, openapi) = routes();
    let openapi = openapi::for_service(openapi, !access.tokens.is_empty());
    let route_case = route_case::RouteCase::new(openapi.paths.paths.keys().map(String::as_str));
    let max_json_body = usize::try_from(state.config.server.max_json_body).unwrap_or(usize::MAX);
    let metrics = state.metrics.clone();
    let routed = routes
        .merge(SwaggerUi::new("/swagger").url("/api-docs/openapi.json", openapi))
        .merge(crate::ui::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_json_body))
        .layer(axum::middleware::from_fn_with_state(Arc::new(access), access::check))
        .layer(axum::middleware::from_fn_with_state(metrics, log_request))
        .with_state(state);
    // Layers of a router run after its routing; the path must be rewritten before it, so
    // the routed application sits behind an outer router whose only route is the fallback.
    Router::new().fallback_service(routed).layer(axum::middleware::map_request(
        move |request: axum::extract::Request| {
            let rewritten = route_case.rewrite(request);
            async move { rewritten }
        },
    ))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

/// Logs each request with its outcome and duration, and counts it by route template.
async fn log_request(
    axum::extract::State(metrics): axum::extract::State<Metrics>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // The template, not the path: ids in paths would make a series per resource. Layers of
    // the router run after routing, so the match is known here; fallbacks have none.
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    metrics.http_request(method_label(&method), route.as_deref().unwrap_or("unmatched"), status, elapsed);
    let elapsed_ms = elapsed * 1000.0;
    if status >= 500 {
        tracing::warn!(%method, %path, status, elapsed_ms, "request");
    } else {
        tracing::debug!(%method, %path, status, elapsed_ms, "request");
    }
    response
}

/// The method as a metrics label: the standard ones by name, any other as `other`, since
/// callers choose the method and every label value is a series kept for good.
fn method_label(method: &axum::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"];
    KNOWN.into_iter().find(|known| *known == method.as_str()).unwrap_or("other")
}
