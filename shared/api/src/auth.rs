//! Token authentication for the HTTP API.
//!
//! When the caller configures one or more tokens ([`TokenAuth`]) and wraps the
//! router with [`protect`], every request except the health endpoints
//! (`/-/healthy`, `/-/ready`) must carry one of them, either as
//! `Authorization: Bearer <token>` or as HTTP Basic auth with the token as the
//! password and any user name (Grafana's basic auth, Prometheus' `authorization`
//! and `basic_auth` remote-write options, k6's headers all work). Anything else is
//! answered `401` with `WWW-Authenticate` challenges and Prometheus' JSON error
//! envelope, before the handler runs (so unauthenticated bodies are never read).
//!
//! Tokens are compared in constant time ([`ember_secrets::Secret::matches`]), every
//! configured token is compared on every request (no early exit that would tell
//! which one is close), and neither the header nor the token is ever logged.
//!
//! Requests already authenticated upstream (API Gateway routes with AWS_IAM
//! authorization, where the client signs with SigV4) are let through when the
//! adapter inserts a [`PreAuthenticated`] request extension; clients cannot set
//! extensions, only in-process code can.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use ember_secrets::Secret;

use crate::ApiError;

/// Paths that never require a token (load-balancer and uptime checks).
pub const UNAUTHENTICATED_PATHS: &[&str] = &["/-/healthy", "/-/ready"];

/// Why a [`TokenAuth`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// No token was given (an empty list would lock everyone out silently).
    #[error("token authentication needs at least one token")]
    NoTokens,
}

/// The accepted tokens (several during a rotation). `Debug` shows only how many.
#[derive(Clone)]
pub struct TokenAuth {
    tokens: Vec<Secret>,
}

impl std::fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuth")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

/// A request extension saying "this request was authenticated before it reached
/// the router" (API Gateway IAM authorization). Insert it in the Lambda adapter
/// only when the event's request context carries an IAM authorizer.
#[derive(Debug, Clone)]
pub struct PreAuthenticated {
    /// Who (for example the IAM caller ARN), for tracing; not used for decisions.
    pub principal: String,
}

/// How a request failed authentication (for the 401 message; never echoes input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// A header in a scheme other than Bearer or Basic, or malformed.
    Malformed,
    /// A well-formed credential that matches no token.
    Invalid,
}

impl AuthFailure {
    fn message(self) -> &'static str {
        match self {
            AuthFailure::Missing => {
                "authentication required: send Authorization: Bearer <token> or basic auth with the token as password"
            }
            AuthFailure::Malformed => {
                "unsupported Authorization header: use Bearer <token> or Basic with the token as password"
            }
            AuthFailure::Invalid => "invalid token",
        }
    }
}

impl TokenAuth {
    /// Accepts any of `tokens` (at least one).
    pub fn new(tokens: Vec<Secret>) -> Result<Self, AuthConfigError> {
        if tokens.is_empty() {
            return Err(AuthConfigError::NoTokens);
        }
        Ok(Self { tokens })
    }

    /// Accepts exactly one token (the usual case: one resolved `EMBER_AUTH_TOKEN`).
    pub fn single(token: Secret) -> Self {
        Self {
            tokens: vec![token],
        }
    }

    /// Checks the request headers. Every `Authorization` header is looked at; one
    /// valid credential is enough.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AuthFailure> {
        let mut failure = AuthFailure::Missing;
        for value in headers.get_all(header::AUTHORIZATION) {
            match credential(value) {
                Some(presented) => {
                    if self.matches_any(&presented) {
                        return Ok(());
                    }
                    failure = AuthFailure::Invalid;
                }
                None => {
                    if failure == AuthFailure::Missing {
                        failure = AuthFailure::Malformed;
                    }
                }
            }
        }
        Err(failure)
    }

    /// Compares against every token (no early exit), each in constant time.
    fn matches_any(&self, presented: &[u8]) -> bool {
        self.tokens
            .iter()
            .fold(false, |found, t| t.matches(presented) | found)
    }
}

/// The presented token of a Bearer or Basic header (Basic: the password part).
/// Scheme names are case-insensitive (RFC 9110).
fn credential(value: &HeaderValue) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    let bytes = value.as_bytes();
    let space = bytes.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = bytes.split_at(space);
    let rest = trim(&rest[1..]);
    if rest.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case(b"bearer") {
        Some(zeroize::Zeroizing::new(rest.to_vec()))
    } else if scheme.eq_ignore_ascii_case(b"basic") {
        let decoded = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?,
        );
        let colon = decoded.iter().position(|b| *b == b':')?;
        Some(zeroize::Zeroizing::new(decoded[colon + 1..].to_vec()))
    } else {
        None
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| *c != b' ').unwrap_or(b.len());
    let end = b.iter().rposition(|c| *c != b' ').map_or(start, |e| e + 1);
    &b[start..end]
}

/// The 401 answer: Prometheus' error envelope plus Basic and Bearer challenges.
pub fn unauthorized(failure: AuthFailure) -> Response {
    let mut resp = ApiError {
        error_type: "unauthorized",
        message: failure.message().to_string(),
        status: StatusCode::UNAUTHORIZED,
    }
    .into_response();
    let headers = resp.headers_mut();
    headers.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"ember\""),
    );
    headers.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"ember\""),
    );
    resp
}

async fn require_token(State(auth): State<Arc<TokenAuth>>, req: Request, next: Next) -> Response {
    if UNAUTHENTICATED_PATHS.contains(&req.uri().path())
        || req.extensions().get::<PreAuthenticated>().is_some()
    {
        return next.run(req).await;
    }
    match auth.check(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(failure) => {
            // Log the outcome and path only, never the header.
            tracing::debug!(
                path = req.uri().path(),
                ?failure,
                "request rejected: authentication"
            );
            unauthorized(failure)
        }
    }
}

/// Wraps `router` so every request but the health endpoints needs a token.
/// Apply it last (outermost), after all routes are added.
pub fn protect(router: Router, auth: TokenAuth) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        Arc::new(auth),
        require_token,
    ))
}

/// [`protect`] when `auth` is set, the router unchanged otherwise (no auth, local use).
pub fn protect_optional(router: Router, auth: Option<TokenAuth>) -> Router {
    match auth {
        Some(auth) => protect(router, auth),
        None => router,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    fn app() -> Router {
        let router = Router::new()
            .route("/api/v1/query", get(|| async { "query-ok" }))
            .route("/api/v1/write", post(|| async { "write-ok" }))
            .route("/-/healthy", get(|| async { "healthy" }))
            .route("/-/ready", get(|| async { "ready" }));
        let auth = TokenAuth::new(vec![Secret::new("tok-A1"), Secret::new("tok-B2")]).unwrap();
        protect(router, auth)
    }

    async fn call(app: Router, req: axum::http::Request<Body>) -> (StatusCode, HeaderMap, String) {
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    fn get_with(path: &str, auth: Option<&str>) -> axum::http::Request<Body> {
        let mut b = axum::http::Request::get(path);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Body::empty()).unwrap()
    }

    fn basic(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    #[tokio::test]
    async fn bearer_and_basic_tokens_pass() {
        for auth in [
            "Bearer tok-A1".to_string(),
            "bearer tok-B2".to_string(),
            "BEARER  tok-A1 ".to_string(),
            basic("grafana", "tok-A1"),
            basic("", "tok-B2"),
        ] {
            let (status, _, body) = call(app(), get_with("/api/v1/query", Some(&auth))).await;
            assert_eq!(status, StatusCode::OK, "{auth}");
            assert_eq!(body, "query-ok");
        }
        // A password containing ':' (only the first colon separates the user).
        let router = Router::new().route("/x", get(|| async { "x" }));
        let app = protect(router, TokenAuth::new(vec![Secret::new("a:b")]).unwrap());
        let (status, _, _) = call(app, get_with("/x", Some(&basic("u", "a:b")))).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn wrong_missing_or_malformed_credentials_get_401_envelope() {
        let cases = [
            (None, "authentication required"),
            (Some("Bearer tok-A"), "invalid token"),
            (Some("Bearer tok-A1x"), "invalid token"),
            (Some("Bearer "), "unsupported Authorization"),
            (Some("Token tok-A1"), "unsupported Authorization"),
            (Some("tok-A1"), "unsupported Authorization"),
            (Some("Basic !!!notbase64"), "unsupported Authorization"),
            (
                Some("AWS4-HMAC-SHA256 Credential=x"),
                "unsupported Authorization",
            ),
        ];
        for (auth, want) in cases {
            let (status, headers, body) = call(app(), get_with("/api/v1/query", auth)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["status"], "error");
            assert_eq!(v["errorType"], "unauthorized");
            assert!(
                v["error"].as_str().unwrap().contains(want),
                "{auth:?}: {body}"
            );
            let challenges: Vec<_> = headers
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            assert_eq!(
                challenges,
                ["Basic realm=\"ember\"", "Bearer realm=\"ember\""]
            );
            assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        }
        // Basic with the right token as the *user name* is not accepted.
        let (status, _, _) =
            call(app(), get_with("/api/v1/query", Some(&basic("tok-A1", "")))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn writes_are_rejected_before_the_handler() {
        let req = axum::http::Request::post("/api/v1/write")
            .body(Body::from(vec![0u8; 1024]))
            .unwrap();
        let (status, _, body) = call(app(), req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(!body.contains("write-ok"));
        let req = axum::http::Request::post("/api/v1/write")
            .header(header::AUTHORIZATION, "Bearer tok-B2")
            .body(Body::from(vec![0u8; 1024]))
            .unwrap();
        let (status, _, body) = call(app(), req).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "write-ok"));
    }

    #[tokio::test]
    async fn health_endpoints_and_pre_authenticated_requests_pass() {
        for path in UNAUTHENTICATED_PATHS {
            let (status, _, _) = call(app(), get_with(path, None)).await;
            assert_eq!(status, StatusCode::OK, "{path}");
        }
        // Similar-looking paths are not exempt.
        let (status, _, _) = call(app(), get_with("/-/healthy/x", None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let mut req = get_with("/api/v1/query", Some("AWS4-HMAC-SHA256 Credential=x"));
        req.extensions_mut().insert(PreAuthenticated {
            principal: "arn:aws:iam::123456789012:user/grafana".into(),
        });
        let (status, _, body) = call(app(), req).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "query-ok"));
    }

    #[tokio::test]
    async fn any_of_several_authorization_headers_may_carry_the_token() {
        let req = axum::http::Request::get("/api/v1/query")
            .header(header::AUTHORIZATION, "Bearer wrong")
            .header(header::AUTHORIZATION, "Bearer tok-A1")
            .body(Body::empty())
            .unwrap();
        let (status, _, _) = call(app(), req).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[test]
    fn config_and_debug() {
        assert!(matches!(
            TokenAuth::new(vec![]),
            Err(AuthConfigError::NoTokens)
        ));
        let a = TokenAuth::new(vec![Secret::new("very-secret")]).unwrap();
        let d = format!("{a:?}");
        assert!(!d.contains("very-secret"), "{d}");
        assert!(d.contains("tokens: 1"), "{d}");
    }

    #[tokio::test]
    async fn unprotected_router_is_unchanged() {
        let router = Router::new().route("/x", get(|| async { "x" }));
        let (status, _, _) = call(protect_optional(router, None), get_with("/x", None)).await;
        assert_eq!(status, StatusCode::OK);
    }
}
