//! API errors: a stable code, an HTTP status and one sentence, as JSON.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ward_api::{ErrorBody, ErrorDetail};
use ward_core::ErrorCode;

/// An error answered to an API client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidField, message)
    }

    pub fn internal() -> Self {
        ApiError::new(ErrorCode::Internal, "internal error; the server log has the details")
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_owned(),
                message: self.message,
            },
        };
        (status, Json(body)).into_response()
    }
}

impl From<ward_store::StoreError> for ApiError {
    fn from(e: ward_store::StoreError) -> Self {
        use ward_store::StoreError as E;
        match e {
            E::Conflict(what) => ApiError::new(ErrorCode::Conflict, format!("{what} already exists")),
            E::Connect(..) => {
                tracing::error!(error = %e, "store unreachable");
                ApiError::new(ErrorCode::Unavailable, "the store is unreachable; try again shortly")
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::internal()
            }
        }
    }
}

impl From<ward_core::NameError> for ApiError {
    fn from(e: ward_core::NameError) -> Self {
        ApiError::invalid(e.to_string())
    }
}
