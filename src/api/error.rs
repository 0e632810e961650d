//! The HTTP layer's error: the only place where failures become status codes. 4xx messages
//! say what was wrong with the request; 5xx details go to the log, not to the caller.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::envelope::Envelope;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A 400 about one field of the request.
    pub fn field(field: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError::BadRequest(format!("field `{field}`: {message}"))
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { .. } => ApiError::NotFound(err.to_string()),
            StoreError::Duplicate { .. } | StoreError::Conflict(_) => ApiError::Conflict(err.to_string()),
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::Internal("internal storage error; the service log has the details".into())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), message = %self, "request failed");
        }
        let envelope = Envelope { code: status.as_u16(), msg: Some(self.to_string()), data: () };
        (status, axum::Json(envelope)).into_response()
    }
}
