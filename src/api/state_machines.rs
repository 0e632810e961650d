//! `/api/v1/StateMachine`: stored state machine scripts. A script that does not compile is
//! refused with its line and column, so errors surface when it is stored, not when it runs.

use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::envelope::{Changed, Created, Envelope, ErrorBody, Listed, Reply};
use super::error::ApiError;
use super::extract::{JsonBody, Paging, QueryParams};
use crate::model::limitation::Limitation;
use crate::model::state_machine::StateMachine;
use crate::model::validate_name;
use crate::store::StateMachineFields;

/// A new state machine.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "count-words",
    "body": "set_stage(\"Count\");\nlet counted = run_actor(\"word-count\", instance.initial_blobs);\n#{ words: counted.output(\"count.txt\").text() }"}))]
pub struct StateMachineInput {
    #[serde(alias = "Name")]
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$", min_length = 1, max_length = 128)]
    pub name: String,
    /// The Rhai script.
    #[serde(alias = "Body")]
    #[schema(schema_with = crate::model::schemas::body)]
    pub body: String,
    /// Default limits of the actors it runs (JoyOI's SDK names it `ContainerLimitation`).
    #[serde(alias = "Limitation", alias = "ContainerLimitation", alias = "containerLimitation", default)]
    pub limitation: Option<Limitation>,
}

/// Changes to a state machine; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"limitation": {"executionTimeout": 20000}}))]
pub struct StateMachinePatch {
    #[serde(alias = "Name")]
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$", min_length = 1, max_length = 128)]
    pub name: Option<String>,
    #[serde(alias = "Body")]
    #[schema(schema_with = crate::model::schemas::optional_body)]
    pub body: Option<String>,
    #[serde(alias = "Limitation", alias = "ContainerLimitation", alias = "containerLimitation")]
    pub limitation: Option<Limitation>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_state_machines)).routes(routes!(put_state_machine)).routes(routes!(
        get_state_machine,
        patch_state_machine,
        delete_state_machine
    ))
}

fn validate(fields: &StateMachineFields) -> Result<(), ApiError> {
    validate_name(&fields.name).map_err(|m| ApiError::field("name", m))?;
    if fields.body.trim().is_empty() {
        return Err(ApiError::field("body", "must not be empty"));
    }
    crate::script::check(&fields.body).map_err(|e| ApiError::field("body", e))?;
    if let Some(limitation) = &fields.limitation {
        limitation.validate("limitation").map_err(ApiError::BadRequest)?;
    }
    Ok(())
}

/// Lists state machines, newest first.
#[utoipa::path(get, path = "/api/v1/StateMachine/All", tag = "StateMachine", params(Paging),
    responses((status = 200, body = Envelope<Vec<StateMachine>>)))]
async fn list_state_machines(
    State(state): State<AppState>,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Listed<StateMachine>, ApiError> {
    let (items, total) = state.store.list_state_machines(paging.page()?).await?;
    Ok(Listed { items, total })
}

/// Reads one state machine.
#[utoipa::path(get, path = "/api/v1/StateMachine/{name}", tag = "StateMachine",
    responses((status = 200, body = Envelope<StateMachine>), (status = 404, body = ErrorBody)))]
async fn get_state_machine(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Reply<StateMachine>, ApiError> {
    Ok(Reply(state.store.get_state_machine(&name).await?))
}

/// Stores a new state machine after compiling its script.
#[utoipa::path(put, path = "/api/v1/StateMachine", tag = "StateMachine", request_body = StateMachineInput,
    responses((status = 200, body = Envelope<Created>), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn put_state_machine(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<StateMachineInput>,
) -> Result<Reply<Created>, ApiError> {
    let fields = StateMachineFields { name: input.name, body: input.body, limitation: input.limitation };
    validate(&fields)?;
    let id = state.store.create_state_machine(&fields).await?;
    tracing::info!(state_machine = %fields.name, %id, "state machine stored");
    Ok(Reply(Created { id: id.to_string() }))
}

/// Changes a state machine.
#[utoipa::path(patch, path = "/api/v1/StateMachine/{name}", tag = "StateMachine", request_body = StateMachinePatch,
    responses((status = 200, body = Envelope<Changed>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The new name is another state machine's", body = ErrorBody)))]
async fn patch_state_machine(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(patch): JsonBody<StateMachinePatch>,
) -> Result<Reply<Changed>, ApiError> {
    let mut fields = StateMachineFields::from(state.store.get_state_machine(&name).await?);
    if let Some(new_name) = patch.name {
        fields.name = new_name;
    }
    if let Some(body) = patch.body {
        fields.body = body;
    }
    if let Some(limitation) = patch.limitation {
        fields.limitation = Some(limitation);
    }
    validate(&fields)?;
    state.store.update_state_machine(&name, &fields).await?;
    Ok(Reply(Changed::patched()))
}

/// Deletes a state machine.
#[utoipa::path(delete, path = "/api/v1/StateMachine/{name}", tag = "StateMachine",
    responses((status = 200, body = Envelope<Changed>), (status = 404, body = ErrorBody)))]
async fn delete_state_machine(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Reply<Changed>, ApiError> {
    state.store.delete_state_machine(&name).await?;
    tracing::info!(state_machine = %name, "state machine deleted");
    Ok(Reply(Changed::deleted()))
}
