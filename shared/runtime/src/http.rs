//! The HTTP functions (ingest, query): the same `ember_api::router` the local server
//! uses, served through `lambda_http` (API Gateway HTTP API, payload v2). `lambda_http`
//! decodes base64 bodies (`isBase64Encoded`) before the router sees them.

use std::sync::Arc;

use ember_api::{ApiState, WriteLimits};

use crate::Process;

/// Largest compressed remote-write body accepted behind API Gateway: a binary body
/// reaches Lambda base64-encoded inside a 6 MB event, which leaves about 4.4 MB. Bigger
/// bodies get a 413 that names this limit.
pub const API_GATEWAY_MAX_BODY: usize = 4_400_000;

/// Remote-write limits for the Lambda functions.
pub fn lambda_write_limits() -> WriteLimits {
    WriteLimits {
        max_body_bytes: API_GATEWAY_MAX_BODY,
        ..WriteLimits::default()
    }
}

/// The API state of an HTTP function over `process`'s storage.
pub fn api_state(process: &Process) -> ApiState {
    let mut state = ApiState::new(process.storage.clone());
    state.write_limits = lambda_write_limits();
    state
}

/// The token check of `EMBER_AUTH_TOKEN` (resolved once per container: SSM, Secrets
/// Manager or a file), or `None` when unset (local use only).
pub async fn auth(
    process: &Process,
) -> Result<Option<ember_api::auth::TokenAuth>, ember_secrets::SecretError> {
    let Some(reference) = &process.settings.auth_token else {
        return Ok(None);
    };
    let token = ember_secrets::SecretRef::parse(reference)?
        .resolve_from_env()
        .await?;
    Ok(Some(ember_api::auth::TokenAuth::single(token)))
}

/// The whole Prometheus API router over `process` (what the query function serves),
/// behind the token check when there is one.
pub fn app(process: &Process, auth: Option<ember_api::auth::TokenAuth>) -> axum::Router {
    ember_api::auth::protect_optional(ember_api::router(Arc::new(api_state(process))), auth)
}

/// Serves `app` through the Lambda Runtime API until the container stops.
pub async fn run(app: axum::Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(app).await
}

/// The router of the ingest function: the write routes only (remote write, AMP-style
/// `remote_write`, Pushgateway-style push, health); anything else is 404, so a misrouted
/// query cannot run on the ingest function's memory and timeout.
pub fn ingest_app(process: &Process, auth: Option<ember_api::auth::TokenAuth>) -> axum::Router {
    app(process, auth).layer(axum::middleware::from_fn(only_write_routes))
}

async fn only_write_routes(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if is_write_path(req.uri().path()) {
        next.run(req).await
    } else {
        (
            axum::http::StatusCode::NOT_FOUND,
            "not served by the ingest function (remote write and push only)\n",
        )
            .into_response()
    }
}

/// Whether the ingest function serves `path`.
pub fn is_write_path(path: &str) -> bool {
    let rest = match path.strip_prefix("/workspaces/") {
        Some(r) => match r.split_once('/') {
            Some((ws, tail)) if !ws.is_empty() => {
                if tail == "api/v1/remote_write" {
                    return true;
                }
                format!("/{tail}")
            }
            _ => return false,
        },
        None => path.to_string(),
    };
    rest == "/api/v1/write"
        || rest.starts_with("/metrics/job/")
        || rest.starts_with("/metrics/job@base64/")
        || (path == rest && (rest == "/-/healthy" || rest == "/-/ready"))
}

#[cfg(test)]
mod tests {
    use super::is_write_path;

    #[test]
    fn ingest_serves_write_routes_only() {
        for p in [
            "/api/v1/write",
            "/workspaces/ws-1/api/v1/write",
            "/workspaces/ws-1/api/v1/remote_write",
            "/metrics/job/batch",
            "/metrics/job@base64/YmF0Y2g=",
            "/workspaces/w/metrics/job/x/instance/y",
            "/-/healthy",
            "/-/ready",
        ] {
            assert!(is_write_path(p), "{p}");
        }
        for p in [
            "/api/v1/query",
            "/workspaces/ws-1/api/v1/query",
            "/workspaces//api/v1/write",
            "/workspaces/w/-/healthy",
            "/metrics",
            "/api/v1/writes",
            "/",
        ] {
            assert!(!is_write_path(p), "{p}");
        }
    }
}
