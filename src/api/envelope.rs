//! The `{code, msg, data}` envelope every answer is wrapped in, as JoyOI clients expect.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Equal to the HTTP status.
    pub code: u16,
    /// What went wrong, on errors.
    pub msg: Option<String>,
    pub data: T,
}

/// A successful answer carrying `data`.
pub struct Reply<T>(pub T);

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        (StatusCode::OK, axum::Json(Envelope { code: 200, msg: None, data: self.0 })).into_response()
    }
}

/// A page of a listing; the total across all pages goes in the `X-Total-Count` header.
pub struct Listed<T> {
    pub items: Vec<T>,
    pub total: i64,
}

impl<T: Serialize> IntoResponse for Listed<T> {
    fn into_response(self) -> Response {
        let mut response = Reply(self.items).into_response();
        response.headers_mut().insert("x-total-count", HeaderValue::from(self.total));
        response
    }
}

/// `{id}` answers to creations.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: String,
}

/// `{patched: 1}`, `{deleted: 1}`, `{cancelled: 1}`: how many resources a request changed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Changed {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patched: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<u32>,
}

impl Changed {
    pub fn patched() -> Self {
        Changed { patched: Some(1), deleted: None, cancelled: None }
    }
    pub fn deleted() -> Self {
        Changed { patched: None, deleted: Some(1), cancelled: None }
    }
    pub fn cancelled() -> Self {
        Changed { patched: None, deleted: None, cancelled: Some(1) }
    }
}

/// The envelope of an error: `data` is always null and `msg` says what was wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub code: u16,
    pub msg: String,
    /// Always null.
    #[schema(value_type = Option<Object>)]
    pub data: Option<()>,
}
