//! `/api/v1/StateMachineInstance`: runs of state machines, in JoyOI's shape.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::envelope::{Changed, Created, Envelope, ErrorBody, Listed, Reply};
use super::error::ApiError;
use super::extract::{JsonBody, Paging, QueryParams, parse_id};
use crate::model::blob::{BlobRef, validate_file_name};
use crate::model::instance::{Instance, Status};
use crate::model::limitation::Limitation;
use crate::store::{CallbackView, InstanceFilter, NewInstance};

/// A run to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInput {
    /// The state machine to run.
    #[serde(alias = "Name")]
    pub name: String,
    #[serde(alias = "InitialBlobs", default)]
    pub initial_blobs: Vec<BlobRef>,
    #[serde(alias = "Limitation", default)]
    pub limitation: Option<Limitation>,
    /// `Host` (callback URL), `Debug` (`"true"` keeps containers), and the script's own.
    #[serde(alias = "Parameters", default)]
    pub parameters: BTreeMap<String, String>,
    /// Lower runs first.
    #[serde(alias = "Priority", default)]
    pub priority: i64,
}

/// What to change on an instance.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstancePatch {
    /// Continue from this stage.
    #[serde(alias = "Stage")]
    pub stage: Option<String>,
    /// Parameters to set; a `null` value removes the key.
    #[serde(alias = "Parameters")]
    pub parameters: Option<BTreeMap<String, Option<String>>>,
}

/// Filters of the instance list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct InstanceQuery {
    /// State machine name.
    pub name: Option<String>,
    pub stage: Option<String>,
    /// Queued, Running, Succeeded, Failed or Cancelled.
    pub status: Option<String>,
    /// Created at or after: RFC 3339, a date (YYYY-MM-DD) or milliseconds since the epoch.
    #[serde(rename = "begin_time", alias = "beginTime")]
    pub begin_time: Option<String>,
    /// Created at or before, in the same forms.
    #[serde(rename = "finish_time", alias = "finishTime")]
    pub finish_time: Option<String>,
    pub page: Option<i64>,
    #[serde(alias = "page_size")]
    pub page_size: Option<i64>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_instances)).routes(routes!(put_instance)).routes(routes!(
        get_instance,
        patch_instance,
        delete_instance
    ))
}

/// Reads a time filter; a bare date means its first (`end = false`) or last millisecond.
fn parse_time(param: &str, text: &str, end: bool) -> Result<i64, ApiError> {
    if let Ok(millis) = text.parse::<i64>() {
        return Ok(millis);
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let start = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or_default();
        return Ok(if end { start + 86_400_000 - 1 } else { start });
    }
    Err(ApiError::BadRequest(format!(
        "query parameter `{param}`: `{text}` is not a time (RFC 3339, YYYY-MM-DD or milliseconds)"
    )))
}

/// Lists instances, newest first, filtered by name, stage, status and creation time.
#[utoipa::path(get, path = "/api/v1/StateMachineInstance/All", tag = "StateMachineInstance", params(InstanceQuery),
    responses((status = 200, body = Envelope<Vec<Instance>>), (status = 400, body = ErrorBody)))]
async fn list_instances(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<InstanceQuery>,
) -> Result<Listed<Instance>, ApiError> {
    let status = match &query.status {
        Some(text) => Some(Status::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "query parameter `status`: `{text}` is not one of Queued, Running, Succeeded, Failed, Cancelled"
            ))
        })?),
        None => None,
    };
    let filter = InstanceFilter {
        name: query.name.clone(),
        stage: query.stage.clone(),
        status,
        created_from: query.begin_time.as_deref().map(|t| parse_time("begin_time", t, false)).transpose()?,
        created_to: query.finish_time.as_deref().map(|t| parse_time("finish_time", t, true)).transpose()?,
    };
    let page = Paging { page: query.page, page_size: query.page_size }.page()?;
    let (items, total) = state.store.list_instances(&filter, page).await?;
    Ok(Listed { items, total })
}

/// Reads one instance.
#[utoipa::path(get, path = "/api/v1/StateMachineInstance/{id}", tag = "StateMachineInstance",
    responses((status = 200, body = Envelope<InstanceDetail>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_instance(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Reply<InstanceDetail>, ApiError> {
    let id = parse_id("instance", &id)?;
    let mut instance = state.store.get_instance(id).await?;
    instance.started_actors = state.store.started_actors(id).await?;
    let callbacks = state.store.callbacks_of(id).await?.iter().map(CallbackView::from).collect();
    Ok(Reply(InstanceDetail { instance, callbacks }))
}

/// An instance with the deliveries of its callback.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct InstanceDetail {
    #[serde(flatten)]
    pub instance: Instance,
    /// Deliveries to `Parameters.Host`: status, attempts, last error.
    pub callbacks: Vec<CallbackView>,
}

/// Starts a run of a stored state machine on the given blobs.
#[utoipa::path(put, path = "/api/v1/StateMachineInstance", tag = "StateMachineInstance", request_body = InstanceInput,
    responses((status = 200, body = Envelope<Created>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_instance(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<InstanceInput>,
) -> Result<Reply<Created>, ApiError> {
    for (i, blob) in input.initial_blobs.iter().enumerate() {
        validate_file_name(&blob.name).map_err(|m| ApiError::field(&format!("initialBlobs[{i}].name"), m))?;
    }
    if let Some(limitation) = &input.limitation {
        limitation.validate("limitation").map_err(ApiError::BadRequest)?;
    }
    if let Some(host) = input.parameters.get("Host")
        && !(host.starts_with("http://") || host.starts_with("https://"))
    {
        return Err(ApiError::field("parameters.Host", format!("`{host}` is not an http:// or https:// URL")));
    }
    let machine = state.store.get_state_machine(&input.name).await?;
    let ids: Vec<_> = input.initial_blobs.iter().map(|b| b.id).collect();
    if let Some(missing) = state.store.missing_blobs(&ids).await?.first() {
        let index = ids.iter().position(|id| id == missing).unwrap_or_default();
        return Err(ApiError::NotFound(format!("blob `{missing}` not found (initialBlobs[{index}].id)")));
    }
    let new = NewInstance {
        name: input.name,
        initial_blobs: input.initial_blobs,
        limitation: input.limitation,
        parameters: input.parameters,
        priority: input.priority,
    };
    let id = state.store.create_instance(&new, &machine.body, &state.service_id).await?;
    state.runner.wake();
    tracing::info!(instance_id = %id, state_machine = %new.name, priority = new.priority, "instance queued");
    Ok(Reply(Created { id: id.to_string() }))
}

/// Changes an instance's stage (to continue from) or parameters.
#[utoipa::path(patch, path = "/api/v1/StateMachineInstance/{id}", tag = "StateMachineInstance", request_body = InstancePatch,
    responses((status = 200, body = Envelope<Changed>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn patch_instance(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<InstancePatch>,
) -> Result<Reply<Changed>, ApiError> {
    let id = parse_id("instance", &id)?;
    if patch.stage.is_none() && patch.parameters.is_none() {
        return Err(ApiError::BadRequest("nothing to change: give `stage` and/or `parameters`".into()));
    }
    if let Some(stage) = &patch.stage
        && stage.trim().is_empty()
    {
        return Err(ApiError::field("stage", "must not be empty"));
    }
    if let Some(parameters) = &patch.parameters {
        state.store.patch_instance(id, None, Some(parameters)).await?;
    }
    if let Some(stage) = &patch.stage {
        state.runner.rerun_from(id, stage).await?;
    }
    tracing::info!(instance_id = %id, stage = ?patch.stage, at = %Utc::now(), "instance patched");
    Ok(Reply(Changed::patched()))
}

/// Stops an instance and marks it Cancelled.
#[utoipa::path(delete, path = "/api/v1/StateMachineInstance/{id}", tag = "StateMachineInstance",
    responses((status = 200, body = Envelope<Changed>), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_instance(State(state): State<AppState>, Path(id): Path<String>) -> Result<Reply<Changed>, ApiError> {
    let id = parse_id("instance", &id)?;
    state.runner.cancel(id).await?;
    tracing::info!(instance_id = %id, "instance cancelled");
    Ok(Reply(Changed::cancelled()))
}
