//! API errors in Prometheus' envelope: `{"status":"error","errorType":…,"error":…}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ember_promql::PromqlError;
use ember_storage::StorageError;

/// An error answered in Prometheus' JSON envelope with the matching status code.
#[derive(Debug, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct ApiError {
    /// Prometheus' `errorType` (`bad_data`, `execution`, `timeout`, `internal`, `unavailable`, …).
    pub error_type: &'static str,
    /// Human-readable message.
    pub message: String,
    /// HTTP status.
    pub status: StatusCode,
}

impl ApiError {
    /// A 400 `bad_data` error.
    pub fn bad_data(message: impl Into<String>) -> Self {
        Self {
            error_type: "bad_data",
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    /// A 400 error about one parameter, worded as Prometheus does.
    pub fn invalid_param(name: &str, err: impl std::fmt::Display) -> Self {
        Self::bad_data(format!("invalid parameter {name:?}: {err}"))
    }

    /// A 404 `not_found` error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            error_type: "not_found",
            message: message.into(),
            status: StatusCode::NOT_FOUND,
        }
    }

    /// Maps a storage error: bad input 400, unavailable 503, internal 500.
    pub fn from_storage(e: StorageError) -> Self {
        let (error_type, status) = match &e {
            StorageError::InvalidInput(_) => ("bad_data", StatusCode::BAD_REQUEST),
            StorageError::Unavailable(_) => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
            StorageError::Internal { .. } => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        };
        Self {
            error_type,
            message: e.to_string(),
            status,
        }
    }

    /// Maps a query error to Prometheus' error types and status codes.
    pub fn from_promql(e: PromqlError) -> Self {
        match e {
            PromqlError::Parse(msg) => Self::invalid_param("query", msg),
            PromqlError::Storage(se) => Self::from_storage(se),
            other => {
                let error_type = other.error_type();
                let status = match error_type {
                    "bad_data" => StatusCode::BAD_REQUEST,
                    "execution" => StatusCode::UNPROCESSABLE_ENTITY,
                    "timeout" | "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                Self {
                    error_type,
                    message: other.to_string(),
                    status,
                }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = String::from("{\"status\":\"error\",\"errorType\":");
        crate::json::write_str(&mut body, self.error_type);
        body.push_str(",\"error\":");
        crate::json::write_str(&mut body, &self.message);
        body.push('}');
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}
