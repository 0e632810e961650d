//! `/api/v1/Blob`: files. JoyOI's base64 JSON routes, plus raw upload and streaming download
//! that never hold a whole file in memory: uploads are spooled to a temporary file while
//! they are hashed, downloads are streamed chunk by chunk from the database.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::envelope::{Created, Envelope, ErrorBody, Listed, Reply};
use super::error::ApiError;
use super::extract::{JsonBody, Paging, QueryParams, parse_id};
use crate::model::blob::{Blob, validate_file_name};
use crate::store::{BlobUpload, ContentSource};

/// A blob uploaded as base64 in JSON (JoyOI's way).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlobInput {
    /// The content, base64-encoded.
    #[serde(alias = "Body")]
    pub body: String,
    #[serde(alias = "TimeStamp", default)]
    pub time_stamp: Option<i64>,
    #[serde(alias = "Remark", default)]
    pub remark: Option<String>,
    /// A file name for the blob (defaults to the remark, then `blob`).
    #[serde(alias = "Name", default)]
    pub name: Option<String>,
    /// The body is gzip: it is decompressed, and the plain content is stored.
    #[serde(alias = "IsCompressed", default)]
    pub is_compressed: Option<bool>,
}

/// A blob with its content, base64-encoded.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlobWithBody {
    pub id: String,
    pub body: String,
    pub time_stamp: i64,
    pub remark: String,
    pub name: String,
    pub size: i64,
    pub sha256: String,
}

/// Query of a raw upload.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct RawUpload {
    /// The blob's file name.
    pub name: String,
    pub remark: Option<String>,
    #[serde(alias = "time_stamp")]
    pub time_stamp: Option<i64>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_blobs))
        .routes(routes!(get_blob))
        .routes(routes!(get_blob_content))
        .routes(routes!(put_blob))
        .routes(routes!(put_blob_raw))
}

fn blob_name(name: Option<String>, remark: &str) -> Result<String, ApiError> {
    match name {
        Some(name) => {
            validate_file_name(&name).map_err(|m| ApiError::field("name", m))?;
            Ok(name)
        }
        None if validate_file_name(remark).is_ok() => Ok(remark.to_owned()),
        None => Ok("blob".to_owned()),
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!("blob is larger than the maximum of {max} bytes (blobs.max_size)"))
}

/// Lists blobs without their content, newest first.
#[utoipa::path(get, path = "/api/v1/Blob/All", tag = "Blob", params(Paging),
    responses((status = 200, body = Envelope<Vec<Blob>>)))]
async fn list_blobs(
    State(state): State<AppState>,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Listed<Blob>, ApiError> {
    let (items, total) = state.store.list_blobs(paging.page()?).await?;
    Ok(Listed { items, total })
}

/// Reads a blob with its content as base64.
#[utoipa::path(get, path = "/api/v1/Blob/{id}", tag = "Blob",
    responses((status = 200, body = Envelope<BlobWithBody>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_blob(State(state): State<AppState>, Path(id): Path<String>) -> Result<Reply<BlobWithBody>, ApiError> {
    let (blob, content) = state.store.get_blob(parse_id("blob", &id)?).await?;
    let bytes = state.store.read_blob(&content).await?;
    Ok(Reply(BlobWithBody {
        id: blob.id.to_string(),
        body: base64::engine::general_purpose::STANDARD.encode(bytes),
        time_stamp: blob.time_stamp,
        remark: blob.remark,
        name: blob.name,
        size: blob.size,
        sha256: blob.sha256,
    }))
}

/// Streams a blob's raw bytes.
#[utoipa::path(get, path = "/api/v1/Blob/{id}/content", tag = "Blob",
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = ErrorBody)))]
async fn get_blob_content(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (blob, content) = state.store.get_blob(parse_id("blob", &id)?).await?;
    let store = state.store.clone();
    let sha256 = content.sha256.clone();
    let chunks = futures::stream::iter(0..content.chunk_count).then(move |index| {
        let store = store.clone();
        let sha256 = sha256.clone();
        async move {
            store.blob_chunk(&sha256, index).await.map(axum::body::Bytes::from).inspect_err(|err| {
                tracing::error!(error = %err, blob = %sha256, index, "blob download broken off");
            })
        }
    });
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.size));
    let disposition = format!("attachment; filename=\"{}\"", blob.name.replace(['"', '\\'], "_"));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert("x-blob-sha256", HeaderValue::from_str(&blob.sha256).unwrap_or(HeaderValue::from_static("")));
    Ok((headers, Body::from_stream(chunks)).into_response())
}

/// Stores a blob sent as base64 in JSON (gzip first when `isCompressed`). Content that is
/// already stored gives back the first blob with it, as JoyOI does.
#[utoipa::path(put, path = "/api/v1/Blob", tag = "Blob", request_body = BlobInput,
    responses((status = 200, body = Envelope<Created>), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn put_blob(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<BlobInput>,
) -> Result<Reply<Created>, ApiError> {
    let remark = input.remark.unwrap_or_default();
    let name = blob_name(input.name, &remark)?;
    let max = state.config.blobs.max_size;
    if (input.body.len() as u64 / 4).saturating_mul(3) > max + 3 && input.is_compressed != Some(true) {
        return Err(too_large(max));
    }
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(input.body.trim())
        .map_err(|e| ApiError::field("body", format!("not valid base64: {e}")))?;
    if input.is_compressed == Some(true) {
        bytes = gunzip(&bytes, max)?;
    }
    if bytes.len() as u64 > max {
        return Err(too_large(max));
    }
    if let Some(existing) = state.store.first_blob_with(&crate::store::sha256_hex(&bytes)).await? {
        tracing::debug!(blob = %existing.id, "blob content already stored");
        return Ok(Reply(Created { id: existing.id.to_string() }));
    }
    let upload = BlobUpload { name, remark, time_stamp: input.time_stamp.unwrap_or_else(crate::model::now_secs) };
    let blob = state.store.put_blob(&upload, ContentSource::Bytes(&bytes), state.config.blobs.chunk_size).await?;
    tracing::info!(blob = %blob.id, size = blob.size, sha256 = %blob.sha256, "blob stored");
    Ok(Reply(Created { id: blob.id.to_string() }))
}

/// Decompresses a gzip body, refusing one that grows past `max` bytes.
fn gunzip(compressed: &[u8], max: u64) -> Result<Vec<u8>, ApiError> {
    use std::io::Read as _;
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(compressed)
        .take(max.saturating_add(1))
        .read_to_end(&mut plain)
        .map_err(|e| ApiError::field("body", format!("isCompressed is true but the body is not valid gzip: {e}")))?;
    if plain.len() as u64 > max {
        return Err(too_large(max));
    }
    Ok(plain)
}

/// Stores the request body as a blob, streamed: for files of any size.
#[utoipa::path(put, path = "/api/v1/Blob/raw", tag = "Blob", params(RawUpload),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = Envelope<Created>), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn put_blob_raw(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<RawUpload>,
    headers: HeaderMap,
    body: Body,
) -> Result<Reply<Created>, ApiError> {
    validate_file_name(&query.name).map_err(|m| ApiError::BadRequest(format!("query parameter `name`: {m}")))?;
    let max = state.config.blobs.max_size;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(too_large(max));
    }
    let spool_err = |e: std::io::Error| ApiError::Internal(format!("cannot spool the upload: {e}"));
    let mut file = tokio::fs::File::from_std(tempfile::tempfile().map_err(spool_err)?);
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("upload broken off: {e}")))?;
        size += chunk.len() as u64;
        if size > max {
            return Err(too_large(max));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(spool_err)?;
    }
    file.flush().await.map_err(spool_err)?;
    let upload = BlobUpload {
        name: query.name,
        remark: query.remark.unwrap_or_default(),
        time_stamp: query.time_stamp.unwrap_or_else(crate::model::now_secs),
    };
    let source = ContentSource::File { file: &mut file, sha256: hex::encode(hasher.finalize()), size };
    let blob = state.store.put_blob(&upload, source, state.config.blobs.chunk_size).await?;
    tracing::info!(blob = %blob.id, size = blob.size, sha256 = %blob.sha256, "blob stored");
    Ok(Reply(Created { id: blob.id.to_string() }))
}
