//! `/api/v1/StateMachineInstance`: runs of state machines, in JoyOI's shape.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use chrono::{NaiveDate, NaiveDateTime};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::envelope::{Changed, Created, Envelope, ErrorBody, Listed, Reply};
use super::error::ApiError;
use super::extract::{JsonBody, Paging, QueryParams, parse_id};
use crate::model::blob::{BlobRef, validate_file_name};
use crate::model::instance::{INITIAL_STAGE, Instance, JoyStatus, Status};
use crate::model::limitation::Limitation;
use crate::store::{CallbackView, InstanceFilter, NewInstance};

/// A run to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "hello", "initialBlobs": [], "parameters": {}, "priority": 0}))]
pub struct InstanceInput {
    /// The state machine to run.
    #[serde(alias = "Name")]
    pub name: String,
    /// The files it starts with (`null` is none, as JoyOI's SDK may send).
    #[serde(alias = "InitialBlobs", default)]
    pub initial_blobs: Option<Vec<BlobRef>>,
    #[serde(alias = "Limitation", default)]
    pub limitation: Option<Limitation>,
    /// `Host` (callback URL), `Debug` (`"true"` keeps containers), and the script's own;
    /// a `null` value is the same as no value (JoyOI's SDK sends `"Host": null`).
    #[serde(alias = "Parameters", default)]
    pub parameters: BTreeMap<String, Option<String>>,
    /// Lower runs first.
    #[serde(alias = "Priority", default)]
    pub priority: i64,
}

/// What to change on an instance.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"stage": "Start"}))]
pub struct InstancePatch {
    /// Continue from this stage; `Start` (or none) re-runs from the top, as JoyOI does.
    #[serde(alias = "Stage")]
    #[schema(min_length = 1)]
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
    /// JoyOI's Running (queued or running), Failed (failed or cancelled) or Succeeded; or one
    /// of wharf's states (Queued, Cancelled); any case.
    #[param(value_type = Option<Status>)]
    pub status: Option<String>,
    /// wharf's state: Queued, Running, Succeeded, Failed or Cancelled; any case.
    #[param(value_type = Option<Status>)]
    pub state: Option<String>,
    /// Created at or after: RFC 3339, a date (YYYY-MM-DD), `MM/DD/YYYY hh:mm:ss [AM|PM]` (what
    /// .NET's `DateTime.ToString()` gives) or milliseconds since the epoch.
    #[serde(rename = "begin_time", alias = "beginTime", alias = "begin")]
    #[param(schema_with = crate::model::schemas::time_filter)]
    pub begin_time: Option<String>,
    /// Created at or before, in the same forms.
    #[serde(rename = "finish_time", alias = "finishTime", alias = "end")]
    #[param(schema_with = crate::model::schemas::time_filter)]
    pub finish_time: Option<String>,
    /// 1-based page number (default 1 when `pageSize` is given).
    #[param(minimum = 1)]
    pub page: Option<i64>,
    /// Items per page, 1 to 1000 (default 50 when `page` is given).
    #[serde(alias = "page_size")]
    #[param(minimum = 1, maximum = 1000)]
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
    for format in ["%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(time.and_utc().timestamp_millis());
        }
    }
    Err(ApiError::BadRequest(format!(
        "query parameter `{param}`: `{text}` is not a time (RFC 3339, YYYY-MM-DD, MM/DD/YYYY hh:mm:ss or milliseconds)"
    )))
}

/// Lists instances, newest first, filtered by name, stage, status and creation time.
#[utoipa::path(get, path = "/api/v1/StateMachineInstance/All", tag = "StateMachineInstance", params(InstanceQuery),
    responses((status = 200, body = Envelope<Vec<Instance>>), (status = 400, body = ErrorBody)))]
async fn list_instances(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<InstanceQuery>,
) -> Result<Listed<Instance>, ApiError> {
    let mut states: Vec<Status> = match &query.status {
        Some(text) => match JoyStatus::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(text)) {
            Some(joyoi) => joyoi.states().to_vec(),
            None => vec![Status::parse(text).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "query parameter `status`: `{text}` is not one of Running, Failed, Succeeded, Queued, Cancelled"
                ))
            })?],
        },
        None => Vec::new(),
    };
    // `status` and `state` that do not overlap match nothing (once the rest is checked).
    let mut disjoint = false;
    if let Some(text) = &query.state {
        let state = Status::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "query parameter `state`: `{text}` is not one of Queued, Running, Succeeded, Failed, Cancelled"
            ))
        })?;
        disjoint = !states.is_empty() && !states.contains(&state);
        states = vec![state];
    }
    let filter = InstanceFilter {
        name: query.name.clone(),
        stage: query.stage.clone(),
        states,
        created_from: query.begin_time.as_deref().map(|t| parse_time("begin_time", t, false)).transpose()?,
        created_to: query.finish_time.as_deref().map(|t| parse_time("finish_time", t, true)).transpose()?,
    };
    let page = Paging { page: query.page, page_size: query.page_size }.page()?;
    if disjoint {
        return Ok(Listed { items: Vec::new(), total: 0 });
    }
    let (mut items, total) = state.store.list_instances(&filter, page).await?;
    // A listing shows what a GET shows.
    state.store.fill_started_actors(&mut items).await?;
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
    instance.started_actors = state.store.started_actors(&instance).await?;
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
    let initial_blobs = input.initial_blobs.unwrap_or_default();
    for (i, blob) in initial_blobs.iter().enumerate() {
        validate_file_name(&blob.name).map_err(|m| ApiError::field(&format!("initialBlobs[{i}].name"), m))?;
    }
    if let Some(limitation) = &input.limitation {
        limitation.validate("limitation").map_err(ApiError::BadRequest)?;
    }
    let parameters: BTreeMap<String, String> =
        input.parameters.into_iter().filter_map(|(key, value)| Some((key, value?))).collect();
    if let Some(host) = parameters.get("Host")
        && !(host.starts_with("http://") || host.starts_with("https://"))
    {
        return Err(ApiError::field("parameters.Host", format!("`{host}` is not an http:// or https:// URL")));
    }
    let machine = state.store.get_state_machine(&input.name).await?;
    let ids: Vec<_> = initial_blobs.iter().map(|b| b.id).collect();
    if let Some(missing) = state.store.missing_blobs(&ids).await?.first() {
        let index = ids.iter().position(|id| id == missing).unwrap_or_default();
        return Err(ApiError::NotFound(format!("blob `{missing}` not found (initialBlobs[{index}].id)")));
    }
    let new = NewInstance {
        name: input.name,
        initial_blobs,
        limitation: input.limitation,
        parameters,
        priority: input.priority,
    };
    let id = state.store.create_instance(&new, &machine.body, &state.service_id).await?;
    state.runner.wake();
    tracing::info!(instance_id = %id, state_machine = %new.name, priority = new.priority, "instance queued");
    Ok(Reply(Created { id: id.to_string() }))
}

/// Re-runs an instance from a stage (from the top by default, as JoyOI does), with its
/// parameters changed; it gets a new execution key.
#[utoipa::path(patch, path = "/api/v1/StateMachineInstance/{id}", tag = "StateMachineInstance", request_body = InstancePatch,
    responses((status = 200, body = Envelope<Changed>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn patch_instance(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<InstancePatch>,
) -> Result<Reply<Changed>, ApiError> {
    let id = parse_id("instance", &id)?;
    let stage = patch.stage.as_deref().unwrap_or(INITIAL_STAGE);
    if stage.trim().is_empty() {
        return Err(ApiError::field("stage", "must not be empty"));
    }
    if let Some(host) = patch.parameters.as_ref().and_then(|p| p.get("Host")).and_then(Option::as_deref)
        && !(host.starts_with("http://") || host.starts_with("https://"))
    {
        return Err(ApiError::field("parameters.Host", format!("`{host}` is not an http:// or https:// URL")));
    }
    let execution_key = state.runner.rerun_from(id, stage, patch.parameters.as_ref()).await?;
    tracing::info!(instance_id = %id, stage, execution_key, "instance re-run");
    Ok(Reply(Changed::patched()))
}

/// Cancels a queued or running instance (its containers are killed; `{cancelled: 1}`), or
/// removes an ended one with its history (`{deleted: 1}`; then it is not found), as JoyOI does.
#[utoipa::path(delete, path = "/api/v1/StateMachineInstance/{id}", tag = "StateMachineInstance",
    responses((status = 200, body = Envelope<Changed>), (status = 404, body = ErrorBody)))]
async fn delete_instance(State(state): State<AppState>, Path(id): Path<String>) -> Result<Reply<Changed>, ApiError> {
    let id = parse_id("instance", &id)?;
    let instance = state.store.get_instance(id).await?;
    if instance.status.is_finished() {
        state.store.delete_instance(id).await?;
        tracing::info!(instance_id = %id, "instance deleted");
        return Ok(Reply(Changed::deleted()));
    }
    match state.runner.cancel(id).await {
        Ok(()) => {
            tracing::info!(instance_id = %id, "instance cancelled");
            Ok(Reply(Changed::cancelled()))
        }
        // It ended between the read and the cancel: it is removed as an ended one is.
        Err(crate::store::StoreError::Conflict(_)) => {
            state.store.delete_instance(id).await?;
            tracing::info!(instance_id = %id, "instance deleted");
            Ok(Reply(Changed::deleted()))
        }
        Err(err) => Err(err.into()),
    }
}
