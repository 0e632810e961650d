//! `/api/v1/Blob`: files. JoyOI's base64 JSON routes, for blobs up to `blobs.max_inline_size`,
//! plus raw upload and streaming download that never hold a whole file in memory: uploads are
//! hashed and written to the database chunk by chunk as they arrive, downloads are streamed
//! chunk by chunk, the next chunk read while the last one is sent. Transfers of more than one
//! chunk take a permit of `blobs.max_concurrent_transfers` first, so memory and database load
//! are bounded by configuration, not by the number of callers.

use axum::body::Body;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::envelope::{Created, Envelope, ErrorBody, Listed, Reply};
use super::error::ApiError;
use super::extract::{JsonBody, Paging, QueryParams, parse_id};
use crate::model::blob::{Blob, validate_file_name};
use crate::store::BlobUpload;

/// A blob uploaded as base64 in JSON (JoyOI's way).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"body": "d29ybGQK", "name": "name.txt"}))]
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
    #[schema(
        pattern = "^([^/\\x00.][^/\\x00]{0,254}|\\.[^/\\x00.][^/\\x00]{0,253}|\\.\\.[^/\\x00]{1,253})$",
        min_length = 1,
        max_length = 255
    )]
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
    #[param(
        example = "name.txt",
        pattern = "^([^/\\x00.][^/\\x00]{0,254}|\\.[^/\\x00.][^/\\x00]{0,253}|\\.\\.[^/\\x00]{1,253})$",
        min_length = 1,
        max_length = 255
    )]
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

/// Refusal of a blob too large for base64 JSON, pointing to the raw route.
fn too_large_inline(max: u64, instead: &str) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "blob is larger than the {max} bytes the base64 JSON routes carry (blobs.max_inline_size); \
         use {instead}, which streams"
    ))
}

/// A permit of `blobs.max_concurrent_transfers` for a transfer of `size` bytes (unknown:
/// `None`); small transfers need none.
/// The request's declared body length, when it has one.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
}

/// The largest JSON body a blob of `content` bytes comes in: its base64 and room for the
/// other fields.
fn max_json_for(content: u64) -> u64 {
    content.div_ceil(3).saturating_mul(4).saturating_add(64 << 10)
}

async fn transfer_permit(state: &AppState, size: Option<u64>) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
    if size.is_some_and(|size| size <= state.config.blobs.chunk_size) {
        return Ok(None);
    }
    let permit = state.transfers.clone().acquire_owned().await;
    permit.map(Some).map_err(|_| ApiError::Internal("the service is shutting down".into()))
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
async fn get_blob(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (blob, content) = state.store.get_blob(parse_id("blob", &id)?).await?;
    let max = state.config.blobs.max_inline_size;
    if blob.size as u64 > max {
        return Err(too_large_inline(max, &format!("GET /api/v1/Blob/{}/content", blob.id)));
    }
    let permit = transfer_permit(&state, Some(blob.size as u64)).await?;
    let body = base64_of(&state, &content).await?;
    let reply = Reply(BlobWithBody {
        id: blob.id.to_string(),
        body,
        time_stamp: blob.time_stamp,
        remark: blob.remark,
        name: blob.name,
        size: blob.size,
        sha256: blob.sha256,
    });
    Ok(held_until_sent(reply.into_response(), permit).await)
}

/// `response` with its body sent in pieces of 1 MiB that hold `permit` until the last one is
/// taken: the server takes the next piece only once the previous one is mostly written, so
/// a slow reader keeps its permit instead of letting more replies pile up behind it.
async fn held_until_sent(response: Response, permit: Option<OwnedSemaphorePermit>) -> Response {
    const PIECE: usize = 1 << 20;
    let (mut parts, body) = response.into_parts();
    // The JSON reply is one buffer already: taking it out copies nothing.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::Internal("the reply could not be read back".into()).into_response();
    };
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    let pieces = (0..bytes.len())
        .step_by(PIECE)
        .map(move |at| Ok::<_, std::io::Error>(bytes.slice(at..(at + PIECE).min(bytes.len()))));
    let pieces = futures::stream::iter(pieces).inspect(move |_| {
        let _held = &permit;
    });
    Response::from_parts(parts, Body::from_stream(pieces))
}

/// A blob's content in base64, encoded chunk by chunk: the raw bytes are never all held.
async fn base64_of(state: &AppState, content: &crate::model::blob::Content) -> Result<String, ApiError> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut text = String::with_capacity(base64::encoded_len(content.size.max(0) as usize, true).unwrap_or(0));
    // Bytes left over from a chunk whose length is not a multiple of 3, encoded with the next.
    let mut carry = Vec::new();
    for index in 0..content.chunk_count {
        let mut chunk = state.store.blob_chunk(&content.chunk_key, index).await?;
        if !carry.is_empty() {
            carry.append(&mut chunk);
            chunk = std::mem::take(&mut carry);
        }
        let whole = if index + 1 == content.chunk_count { chunk.len() } else { chunk.len() / 3 * 3 };
        engine.encode_string(&chunk[..whole], &mut text);
        carry = chunk.split_off(whole);
    }
    Ok(text)
}

/// Streams a blob's raw bytes.
#[utoipa::path(get, path = "/api/v1/Blob/{id}/content", tag = "Blob",
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = ErrorBody)))]
async fn get_blob_content(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (blob, content) = state.store.get_blob(parse_id("blob", &id)?).await?;
    let permit = transfer_permit(&state, Some(blob.size as u64)).await?;
    let store = state.store.clone();
    let key = content.chunk_key.clone();
    let chunks = futures::stream::iter(0..content.chunk_count)
        .map(move |index| {
            let (store, key) = (store.clone(), key.clone());
            async move {
                store.blob_chunk(&key, index).await.map(axum::body::Bytes::from).inspect_err(|err| {
                    tracing::error!(error = %err, blob = %key, index, "blob download broken off");
                })
            }
        })
        // The next chunk is read from the database while this one is sent.
        .buffered(2)
        // The permit goes when the body is done with (sent, or the client gone).
        .inspect(move |_| {
            let _held = &permit;
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
async fn put_blob(State(state): State<AppState>, request: Request) -> Result<Reply<Created>, ApiError> {
    let max = state.config.blobs.max_inline_size;
    let raw = "PUT /api/v1/Blob/raw?name=…";
    let max_size = state.config.blobs.max_size;
    // The body is refused by its declared length, and waits for a transfer permit, before any
    // of it is read: callers at once hold at most `max_concurrent_transfers` bodies.
    let declared = content_length(request.headers());
    if declared.is_some_and(|len| len > max_json_for(max.min(max_size))) {
        return Err(too_large_inline(max, raw));
    }
    let _permit = transfer_permit(&state, declared.map(|len| len / 4 * 3)).await?;
    let JsonBody(input) = JsonBody::<BlobInput>::from_request(request, &state).await?;
    let remark = input.remark.unwrap_or_default();
    let name = blob_name(input.name, &remark)?;
    let decoded = (input.body.len() as u64 / 4).saturating_mul(3);
    if decoded > max_size.min(max) + 3 && input.is_compressed != Some(true) {
        return Err(if decoded > max_size + 3 { too_large(max_size) } else { too_large_inline(max, raw) });
    }
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(input.body.trim())
        .map_err(|e| ApiError::field("body", format!("not valid base64: {e}")))?;
    if input.is_compressed == Some(true) {
        // Decompressed no further than the smaller limit: a small body cannot take much memory.
        let over = || if max_size < max { too_large(max_size) } else { too_large_inline(max, raw) };
        bytes = gunzip(&bytes, max.min(max_size)).ok_or_else(over)??;
    }
    if bytes.len() as u64 > max_size {
        return Err(too_large(max_size));
    }
    if bytes.len() as u64 > max {
        return Err(too_large_inline(max, raw));
    }
    if let Some(existing) = state.store.first_blob_with(&crate::store::sha256_hex(&bytes)).await? {
        tracing::debug!(blob = %existing.id, "blob content already stored");
        return Ok(Reply(Created { id: existing.id.to_string() }));
    }
    let upload = BlobUpload { name, remark, time_stamp: input.time_stamp.unwrap_or_else(crate::model::now_secs) };
    let blob = state.store.put_blob(&upload, &bytes, state.config.blobs.chunk_size).await?;
    tracing::info!(blob = %blob.id, size = blob.size, sha256 = %blob.sha256, "blob stored");
    Ok(Reply(Created { id: blob.id.to_string() }))
}

/// Decompresses a gzip body; `None` when it grows past `max` bytes.
fn gunzip(compressed: &[u8], max: u64) -> Option<Result<Vec<u8>, ApiError>> {
    use std::io::Read as _;
    let mut plain = Vec::new();
    let read = flate2::read::GzDecoder::new(compressed).take(max.saturating_add(1)).read_to_end(&mut plain);
    if let Err(e) = read {
        return Some(Err(ApiError::field("body", format!("isCompressed is true but the body is not valid gzip: {e}"))));
    }
    (plain.len() as u64 <= max).then_some(Ok(plain))
}

/// Stores the request body as a blob, streamed: for files of any size.
#[utoipa::path(put, path = "/api/v1/Blob/raw", tag = "Blob", params(RawUpload),
    request_body(content = Option<Vec<u8>>, content_type = "application/octet-stream", description = "The file's bytes; none is an empty file"),
    responses((status = 200, body = Envelope<Created>), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn put_blob_raw(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<RawUpload>,
    headers: HeaderMap,
    body: Body,
) -> Result<Reply<Created>, ApiError> {
    validate_file_name(&query.name).map_err(|m| ApiError::BadRequest(format!("query parameter `name`: {m}")))?;
    let max = state.config.blobs.max_size;
    let declared = content_length(&headers);
    if declared.is_some_and(|len| len > max) {
        return Err(too_large(max));
    }
    let _permit = transfer_permit(&state, declared).await?;
    let mut writer = state.store.blob_writer(state.config.blobs.chunk_size);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("upload broken off: {e}")))?;
        if writer.size() + chunk.len() as u64 > max {
            return Err(too_large(max));
        }
        writer.write(&chunk).await?;
    }
    let upload = BlobUpload {
        name: query.name,
        remark: query.remark.unwrap_or_default(),
        time_stamp: query.time_stamp.unwrap_or_else(crate::model::now_secs),
    };
    let blob = writer.finish(&upload).await?;
    tracing::info!(blob = %blob.id, size = blob.size, sha256 = %blob.sha256, "blob stored");
    Ok(Reply(Created { id: blob.id.to_string() }))
}
