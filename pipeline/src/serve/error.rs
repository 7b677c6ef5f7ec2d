//! Every error the API returns: an HTTP status and `{"error": {"code", "message"}}`, with codes
//! that never change (the same as the failure records' reasons where a picture failed).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: String,
    /// For people; never holds a token.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self { status, code: code.to_string(), message: message.into() }
    }

    /// 400 with this code.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 for a store failure (details logged, not sent).
    pub fn store(e: impl std::fmt::Display) -> Self {
        tracing::error!("store: {e}");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "the store failed; try again")
    }

    /// The status a picture's failure reason maps to.
    pub fn from_failure(reason: &str, message: &str) -> Self {
        let status = match reason {
            "file_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
            "inference_error" | "decoder_panic" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, reason, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}
