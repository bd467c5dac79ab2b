//! Build info, health and readiness, and the 404 fallback.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::json;
use crate::query::json_response;

/// The Prometheus version whose API and PromQL semantics Ember follows; Grafana picks
/// its feature set from this semver.
pub const PROMETHEUS_COMPAT_VERSION: &str = "3.5.0";

/// `/api/v1/status/buildinfo`.
pub async fn buildinfo() -> Response {
    let data = serde_json::json!({
        "version": PROMETHEUS_COMPAT_VERSION,
        "revision": env!("CARGO_PKG_VERSION"),
        "branch": "ember",
        "buildUser": "ember",
        "buildDate": "",
        "goVersion": "rust",
    });
    json_response(json::success_envelope(&data.to_string(), &[], &[]))
}

/// `/-/healthy`.
pub async fn healthy() -> &'static str {
    "Ember is Healthy.\n"
}

/// `/-/ready`.
pub async fn ready() -> &'static str {
    "Ember is Ready.\n"
}

/// Unknown paths: 404 in the API envelope.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    let mut r = ApiError::not_found(format!("no such endpoint: {}", uri.path())).into_response();
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}
