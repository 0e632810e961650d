//! `/api/v1/Actor`: stored actor definitions.

use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::envelope::{Changed, Created, Envelope, ErrorBody, Listed, Reply};
use super::error::ApiError;
use super::extract::{JsonBody, Paging, QueryParams};
use crate::model::actor::Actor;
use crate::model::blob::validate_file_name;
use crate::model::limitation::Limitation;
use crate::model::sandbox::Sandbox;
use crate::model::validate_name;
use crate::store::ActorFields;

/// A new actor.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "word-count", "body": "wc -w < input.txt > count.txt", "outputs": ["count.txt"],
    "limitation": {"executionTimeout": 10000, "memory": 134217728}}))]
pub struct ActorInput {
    #[serde(alias = "Name")]
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$", min_length = 1, max_length = 128)]
    pub name: String,
    /// The script run in the container as `/actor/run`.
    #[serde(alias = "Body")]
    #[schema(schema_with = crate::model::schemas::body)]
    pub body: String,
    #[serde(alias = "Image", default)]
    #[schema(schema_with = crate::model::schemas::optional_image)]
    pub image: Option<String>,
    #[serde(alias = "Outputs", default)]
    #[schema(schema_with = crate::model::schemas::output_names)]
    pub outputs: Vec<String>,
    #[serde(alias = "Limitation", default)]
    pub limitation: Option<Limitation>,
    /// `fresh` (the default: a container of its own) or `warm` (a run in a warm container of
    /// its instance); a script's call may ask otherwise.
    #[serde(alias = "Sandbox", default)]
    pub sandbox: Sandbox,
}

/// Changes to an actor; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"body": "wc -l < input.txt > count.txt"}))]
pub struct ActorPatch {
    #[serde(alias = "Name")]
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$", min_length = 1, max_length = 128)]
    pub name: Option<String>,
    #[serde(alias = "Body")]
    #[schema(schema_with = crate::model::schemas::optional_body)]
    pub body: Option<String>,
    /// An empty string goes back to the node's image.
    #[serde(alias = "Image")]
    #[schema(schema_with = crate::model::schemas::image_or_empty)]
    pub image: Option<String>,
    #[serde(alias = "Outputs")]
    #[schema(schema_with = crate::model::schemas::optional_output_names)]
    pub outputs: Option<Vec<String>>,
    #[serde(alias = "Limitation")]
    pub limitation: Option<Limitation>,
    #[serde(alias = "Sandbox")]
    pub sandbox: Option<Sandbox>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_actors)).routes(routes!(put_actor)).routes(routes!(
        get_actor,
        patch_actor,
        delete_actor
    ))
}

/// Checks an actor's fields before anything is written.
fn validate(fields: &ActorFields) -> Result<(), ApiError> {
    validate_name(&fields.name).map_err(|m| ApiError::field("name", m))?;
    if fields.body.trim().is_empty() {
        return Err(ApiError::field("body", "must not be empty"));
    }
    if let Some(image) = &fields.image
        && (image.is_empty() || image.contains(char::is_whitespace))
    {
        return Err(ApiError::field("image", format!("`{image}` is not an image reference")));
    }
    for (i, output) in fields.outputs.iter().enumerate() {
        validate_file_name(output).map_err(|m| ApiError::field(&format!("outputs[{i}]"), m))?;
    }
    if let Some(limitation) = &fields.limitation {
        limitation.validate("limitation").map_err(ApiError::BadRequest)?;
    }
    Ok(())
}

/// Lists actors, newest first.
#[utoipa::path(get, path = "/api/v1/Actor/All", tag = "Actor", params(Paging),
    responses((status = 200, body = Envelope<Vec<Actor>>)))]
async fn list_actors(
    State(state): State<AppState>,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Listed<Actor>, ApiError> {
    let (items, total) = state.store.list_actors(paging.page()?).await?;
    Ok(Listed { items, total })
}

/// Reads one actor.
#[utoipa::path(get, path = "/api/v1/Actor/{name}", tag = "Actor",
    responses((status = 200, body = Envelope<Actor>), (status = 404, body = ErrorBody)))]
async fn get_actor(State(state): State<AppState>, Path(name): Path<String>) -> Result<Reply<Actor>, ApiError> {
    Ok(Reply(state.store.get_actor(&name).await?))
}

/// Stores a new actor; names are unique.
#[utoipa::path(put, path = "/api/v1/Actor", tag = "Actor", request_body = ActorInput,
    responses((status = 200, body = Envelope<Created>), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn put_actor(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<ActorInput>,
) -> Result<Reply<Created>, ApiError> {
    let fields = ActorFields {
        name: input.name,
        body: input.body,
        image: input.image,
        outputs: input.outputs,
        limitation: input.limitation,
        sandbox: input.sandbox,
    };
    validate(&fields)?;
    let id = state.store.create_actor(&fields).await?;
    tracing::info!(actor = %fields.name, %id, "actor stored");
    Ok(Reply(Created { id: id.to_string() }))
}

/// Changes an actor.
#[utoipa::path(patch, path = "/api/v1/Actor/{name}", tag = "Actor", request_body = ActorPatch,
    responses((status = 200, body = Envelope<Changed>), (status = 404, body = ErrorBody),
        (status = 409, description = "The new name is another actor's", body = ErrorBody)))]
async fn patch_actor(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(patch): JsonBody<ActorPatch>,
) -> Result<Reply<Changed>, ApiError> {
    let mut fields = ActorFields::from(state.store.get_actor(&name).await?);
    if let Some(new_name) = patch.name {
        fields.name = new_name;
    }
    if let Some(body) = patch.body {
        fields.body = body;
    }
    if let Some(image) = patch.image {
        fields.image = Some(image).filter(|i| !i.is_empty());
    }
    if let Some(outputs) = patch.outputs {
        fields.outputs = outputs;
    }
    if let Some(limitation) = patch.limitation {
        fields.limitation = Some(limitation);
    }
    if let Some(sandbox) = patch.sandbox {
        fields.sandbox = sandbox;
    }
    validate(&fields)?;
    state.store.update_actor(&name, &fields).await?;
    Ok(Reply(Changed::patched()))
}

/// Deletes an actor.
#[utoipa::path(delete, path = "/api/v1/Actor/{name}", tag = "Actor",
    responses((status = 200, body = Envelope<Changed>), (status = 404, body = ErrorBody)))]
async fn delete_actor(State(state): State<AppState>, Path(name): Path<String>) -> Result<Reply<Changed>, ApiError> {
    state.store.delete_actor(&name).await?;
    tracing::info!(actor = %name, "actor deleted");
    Ok(Reply(Changed::deleted()))
}
