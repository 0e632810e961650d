//! Request extractors whose failures are envelope errors naming the field at fault:
//! JSON bodies (camelCase or PascalCase), query strings, ids in paths, paging.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;
use uuid::Uuid;

use super::error::ApiError;
use crate::store::Page;

/// A JSON request body; wrong types and missing fields are 400s naming the field.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(
                    "request body is larger than server.max_json_body; upload large files with PUT /api/v1/Blob/raw"
                        .into(),
                )
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {}", rejection.body_text()))
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON, naming the path of the offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(ApiError::BadRequest("request body is empty: expected a JSON object".into())),
        Some(b'{') => {}
        Some(_) => return Err(ApiError::BadRequest("invalid request body: expected a JSON object".into())),
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut deserializer);
    if let Err(err) = &parsed
        && err.inner().to_string().starts_with("invalid type: floating point")
        && let Some(value) = with_integral_floats_as_integers(bytes)
    {
        // JSON has one number type: `5.0` is the integer 5 to JSON Schema and to .NET's
        // serialiser alike, so an integer field takes it. Rare, so only tried after a miss.
        return serde_path_to_error::deserialize(value).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if path == "." {
                ApiError::BadRequest(format!("invalid request body: {inner}"))
            } else {
                ApiError::field(&path, inner)
            }
        });
    }
    let value = parsed.map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::BadRequest(format!("malformed JSON: {inner}"))
        } else if path == "." {
            ApiError::BadRequest(format!("invalid request body: {inner}"))
        } else {
            ApiError::field(&path, inner)
        }
    })?;
    deserializer.end().map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// `bytes` as a JSON value in which every number with no fractional part is an integer.
fn with_integral_floats_as_integers(bytes: &[u8]) -> Option<serde_json::Value> {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Number(n) if n.is_f64() => {
                if let Some(f) = n.as_f64()
                    && f.fract() == 0.0
                    && f.abs() < 9.0e15
                {
                    // Within 2^53, so the conversion is exact.
                    *value = serde_json::Value::from(f as i64);
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            serde_json::Value::Object(fields) => fields.values_mut().for_each(walk),
            _ => {}
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    walk(&mut value);
    Some(value)
}

/// A query string; bad values are 400s naming the parameter.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(QueryParams).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if path == "." {
                ApiError::BadRequest(format!("query string: {inner}"))
            } else {
                ApiError::BadRequest(format!("query parameter `{path}`: {inner}"))
            }
        })
    }
}

/// Parses an id from a URL path.
pub fn parse_id(kind: &str, text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text)
        .map_err(|_| ApiError::BadRequest(format!("`{text}` is not a valid {kind} id (expected a UUID)")))
}

/// `?page=&pageSize=` of every `All` route. Without either, everything is listed.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// 1-based page number (default 1 when `pageSize` is given).
    #[param(minimum = 1)]
    pub page: Option<i64>,
    /// Items per page, 1 to 1000 (default 50 when `page` is given).
    #[serde(alias = "page_size")]
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<i64>,
}

pub const MAX_PAGE_SIZE: i64 = 1000;

impl Paging {
    pub fn page(&self) -> Result<Page, ApiError> {
        if self.page.is_none() && self.page_size.is_none() {
            return Ok(Page::ALL);
        }
        let page = self.page.unwrap_or(1);
        let size = self.page_size.unwrap_or(50);
        if page < 1 {
            return Err(ApiError::BadRequest("query parameter `page`: must be 1 or more".into()));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(ApiError::BadRequest(format!(
                "query parameter `pageSize`: must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        Ok(Page { offset: (page - 1).saturating_mul(size), limit: size })
    }
}
