//! Alertmanager's silence API (v2) as an axum router, to `.merge()` into the HTTP API:
//! `GET|POST /api/v2/silences`, `GET|DELETE /api/v2/silence/{id}`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::Error;
use crate::matcher::{Matcher, Matchers};
use crate::silence::{PostableSilence, Silence, Silences, filter_matches, state_at};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The silence routes over `silences`.
pub fn router(silences: Silences) -> Router {
    Router::new()
        .route("/api/v2/silences", get(list).post(create))
        .route("/api/v2/silence/{id}", get(get_one).delete(expire))
        .with_state(silences)
}

fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    // Alertmanager answers errors as a JSON string.
    (status, Json(serde_json::Value::String(msg.to_string()))).into_response()
}

fn store_error(e: Error) -> Response {
    tracing::warn!(error = %e, "silence store failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, e)
}

async fn list(State(s): State<Silences>, RawQuery(q): RawQuery) -> Response {
    let mut filter = Matchers::default();
    for (k, v) in form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
        if k == "filter" {
            match Matchers::parse(&v) {
                Ok(m) => filter.0.extend(m.0),
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            }
        }
    }
    let now = now_ms();
    let mut all: Vec<Silence> = match s.list().await {
        Ok(a) => a,
        Err(e) => return store_error(e),
    };
    all.retain(|x| filter_matches(&filter, x));
    // Alertmanager's order: active by end, pending by start, expired by end (latest first).
    let rank = |x: &Silence| match state_at(x, now) {
        "active" => (0, x.ends_at),
        "pending" => (1, x.starts_at),
        _ => (2, -x.ends_at),
    };
    all.sort_by_key(rank);
    let out: Vec<serde_json::Value> = all.iter().map(|x| x.to_api(now)).collect();
    Json(out).into_response()
}

async fn create(State(s): State<Silences>, body: axum::body::Bytes) -> Response {
    let p: PostableSilence = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid silence: {e}")),
    };
    match s.upsert(p, now_ms()).await {
        Ok(id) => Json(serde_json::json!({ "silenceID": id })).into_response(),
        Err(Error::Silence(m)) if m.ends_with("not found") => error(StatusCode::NOT_FOUND, m),
        Err(e @ Error::Silence(_)) => error(StatusCode::BAD_REQUEST, e),
        Err(e) => store_error(e),
    }
}

async fn get_one(State(s): State<Silences>, Path(id): Path<String>) -> Response {
    match s.get(&id).await {
        Ok(Some(x)) => Json(x.to_api(now_ms())).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("silence {id} not found")),
        Err(e) => store_error(e),
    }
}

async fn expire(State(s): State<Silences>, Path(id): Path<String>) -> Response {
    match s.expire(&id, now_ms()).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(Error::Silence(m)) if m.ends_with("not found") => error(StatusCode::NOT_FOUND, m),
        Err(e @ Error::Silence(_)) => error(StatusCode::BAD_REQUEST, e),
        Err(e) => store_error(e),
    }
}

/// Parses one `filter` matcher (exposed for clients and tests).
pub fn parse_filter(s: &str) -> crate::Result<Matcher> {
    Matcher::parse(s)
}
