//! `GET /api/v1/StateMachineInstance/{id}/logs`: what an instance's actors printed, one
//! record per actor run with its stdout and stderr lines in order, filtered by actor and tag;
//! `follow=true` streams records as actors end until the instance has ended.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::envelope::{Envelope, ErrorBody, Reply};
use super::error::ApiError;
use super::extract::{QueryParams, parse_id};
use crate::model::log::ActorLog;
use crate::store::{LogFilter, Store, StoreError};

/// How often a follow looks for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

/// Which logs to give.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only this actor's runs.
    pub actor: Option<String>,
    /// Only runs with this tag.
    pub tag: Option<String>,
    /// Only records whose `cursor` is above this (from an earlier answer).
    pub after: Option<i64>,
    /// Stream records as newline-delimited JSON (`application/x-ndjson`, one record per line,
    /// no envelope) as actors end, until the instance has ended.
    pub follow: Option<bool>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_logs))
}

/// The logs of an instance's actors, in the order they ended; each line says whether it went
/// to stdout or stderr. Every actor that got a container is here, succeeded ones too.
#[utoipa::path(get, path = "/api/v1/StateMachineInstance/{id}/logs", tag = "StateMachineInstance", params(LogQuery),
    responses((status = 200, body = Envelope<Vec<ActorLog>>,
        description = "the records; with `follow=true`, one record per line as application/x-ndjson"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<LogQuery>,
) -> Result<Response, ApiError> {
    let id = parse_id("instance", &id)?;
    // A 404 for an unknown instance, rather than an empty list.
    state.store.get_instance(id).await?;
    let filter = LogFilter { actor: query.actor, tag: query.tag, after: query.after };
    if query.follow != Some(true) {
        return Ok(Reply(state.store.actor_logs(id, &filter).await?).into_response());
    }
    let body = Body::from_stream(follow(state.store.clone(), id, filter));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// Records as they are stored, one JSON line each, until the instance has ended and its last
/// records were sent.
fn follow(store: Store, id: Uuid, filter: LogFilter) -> impl futures::Stream<Item = Result<Bytes, StoreError>> {
    futures::stream::try_unfold((store, filter, false), move |(store, mut filter, done)| async move {
        if done {
            return Ok(None);
        }
        loop {
            // Read the state before the logs: an instance that has ended has all its logs.
            let ended = match store.get_instance(id).await {
                Ok(instance) => instance.status.is_finished(),
                Err(StoreError::NotFound { .. }) => true,
                Err(err) => return Err(err),
            };
            let logs = store.actor_logs(id, &filter).await?;
            if logs.is_empty() && !ended {
                tokio::time::sleep(FOLLOW_POLL).await;
                continue;
            }
            let mut chunk = Vec::new();
            for log in &logs {
                // Plain data: serialising it cannot fail.
                let _ = serde_json::to_writer(&mut chunk, log);
                chunk.push(b'\n');
                filter.after = Some(log.cursor);
            }
            return Ok(Some((Bytes::from(chunk), (store, filter, ended))));
        }
    })
}
