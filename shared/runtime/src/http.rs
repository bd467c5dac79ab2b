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
    state.metric_sources = process.metric_sources.clone();
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
    app_with(process, auth, axum::Router::new())
}

/// [`app`] plus `extra` routes behind the same token check (the query function adds the
/// Alertmanager-compatible `/api/v2/silences` this way).
pub fn app_with(
    process: &Process,
    auth: Option<ember_api::auth::TokenAuth>,
    extra: axum::Router,
) -> axum::Router {
    let api = ember_api::router(Arc::new(api_state(process))).merge(extra);
    ember_api::auth::protect_optional(api, auth)
        .layer(axum::middleware::from_fn(trust_api_gateway_iam))
}

/// Marks requests that API Gateway already authenticated with SigV4 (routes with
/// `AWS_IAM` authorization) so the token check lets them through: the caller identity
/// comes from the event's request context, which only API Gateway fills in.
async fn trust_api_gateway_iam(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(principal) = iam_principal(req.extensions()) {
        req.extensions_mut()
            .insert(ember_api::auth::PreAuthenticated { principal });
    }
    next.run(req).await
}

/// The IAM caller API Gateway verified for this request, if any.
fn iam_principal(ext: &axum::http::Extensions) -> Option<String> {
    use lambda_http::request::RequestContext;
    let Some(RequestContext::ApiGatewayV2(ctx)) = ext.get::<RequestContext>() else {
        return None;
    };
    let iam = ctx.authorizer.as_ref()?.iam.as_ref()?;
    Some(
        iam.user_arn
            .clone()
            .or_else(|| iam.caller_id.clone())
            .unwrap_or_else(|| "aws-iam".into()),
    )
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
        || rest == "/api/v1/otlp/v1/metrics"
        || rest.starts_with("/metrics/job/")
        || rest.starts_with("/metrics/job@base64/")
        || (path == rest && (rest == "/-/healthy" || rest == "/-/ready"))
}

#[cfg(test)]
mod tests {
    use super::{is_write_path, trust_api_gateway_iam};
    use tower::ServiceExt;

    /// A request as lambda_http hands it over, with API Gateway's request context.
    fn request(iam: bool) -> axum::extract::Request {
        let authorizer = if iam {
            serde_json::json!({"iam": {"accountId": "123456789012",
                "userArn": "arn:aws:iam::123456789012:user/grafana"}})
        } else {
            serde_json::json!({})
        };
        let ctx = serde_json::json!({"routeKey": "$default", "accountId": "123456789012",
            "stage": "$default", "requestId": "r", "apiId": "a", "domainName": "d",
            "time": "t", "timeEpoch": 0, "authorizer": authorizer,
            "http": {"method": "GET", "path": "/x", "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1", "userAgent": "test"}});
        let mut req = axum::extract::Request::new(axum::body::Body::empty());
        *req.uri_mut() = "/x".parse().unwrap();
        req.extensions_mut()
            .insert(lambda_http::request::RequestContext::ApiGatewayV2(
                serde_json::from_value(ctx).unwrap(),
            ));
        req
    }

    #[tokio::test]
    async fn sigv4_requests_verified_by_api_gateway_skip_the_token() {
        let inner = axum::Router::new().route("/x", axum::routing::get(|| async { "ok" }));
        let auth = ember_api::auth::TokenAuth::single(ember_secrets::Secret::new("s3cret"));
        let app = ember_api::auth::protect_optional(inner, Some(auth))
            .layer(axum::middleware::from_fn(trust_api_gateway_iam));
        let status = |iam| {
            let app = app.clone();
            async move { app.oneshot(request(iam)).await.unwrap().status() }
        };
        assert_eq!(status(true).await, 200);
        assert_eq!(status(false).await, 401);
    }

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
            "/api/v1/otlp/v1/metrics",
            "/workspaces/w/api/v1/otlp/v1/metrics",
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
