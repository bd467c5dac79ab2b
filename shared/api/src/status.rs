//! Build info, health, readiness, targets, Ember's own `/metrics`, the auxiliary
//! status endpoints Grafana calls, and the 404 fallback.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::SharedState;
use crate::error::ApiError;
use crate::json;
use crate::params::Params;
use crate::query::json_response;

/// The Prometheus version whose API and PromQL semantics Ember follows; Grafana picks
/// its feature set from this semver.
pub const PROMETHEUS_COMPAT_VERSION: &str = "3.5.0";

fn ok_json(data: &serde_json::Value) -> Response {
    json_response(json::success_envelope(&data.to_string(), &[], &[]))
}

/// `/api/v1/status/buildinfo`.
pub async fn buildinfo() -> Response {
    ok_json(&serde_json::json!({
        "version": PROMETHEUS_COMPAT_VERSION,
        "revision": env!("CARGO_PKG_VERSION"),
        "branch": "ember",
        "buildUser": "ember",
        "buildDate": "",
        "goVersion": "rust",
    }))
}

/// `/api/v1/targets`: scrape targets, from the scrape manager when one runs.
pub async fn targets(State(state): State<SharedState>, p: Params) -> Response {
    let mut data = match &state.targets {
        Some(source) => source.targets_json(),
        None => {
            serde_json::json!({"activeTargets": [], "droppedTargets": [], "droppedTargetCounts": {}})
        }
    };
    match p.get_non_empty("state") {
        Some("active") => {
            data["droppedTargets"] = serde_json::json!([]);
        }
        Some("dropped") => {
            data["activeTargets"] = serde_json::json!([]);
        }
        _ => {}
    }
    ok_json(&data)
}

/// `/api/v1/rules`: rule groups with their health and alerts.
pub async fn rules(State(state): State<SharedState>, p: Params) -> Result<Response, ApiError> {
    match &state.rules {
        Some(source) => source
            .rules_json(p.pairs())
            .map(|d| ok_json(&d))
            .map_err(ApiError::bad_data),
        None => Ok(ok_json(&serde_json::json!({"groups": []}))),
    }
}

/// `/api/v1/alerts`: active alerts.
pub async fn alerts(State(state): State<SharedState>) -> Response {
    match &state.rules {
        Some(source) => ok_json(&source.alerts_json()),
        None => ok_json(&serde_json::json!({"alerts": []})),
    }
}

/// `/metrics`: Ember's own metrics in the Prometheus text format.
pub async fn self_metrics(State(state): State<SharedState>) -> Response {
    let mut text = state.metrics.render();
    if let Some(rules) = &state.rules {
        crate::telemetry::render_rule_groups(&mut text, &rules.rules_json(&[]).unwrap_or_default());
    }
    for source in &state.metric_sources {
        source(&mut text);
    }
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// `/api/v1/status/flags`, `/api/v1/status/runtimeinfo`, `/api/v1/status/config`:
/// valid answers so Grafana's and promtool's calls succeed.
pub async fn flags() -> Response {
    ok_json(
        &serde_json::json!({"query.lookback-delta": "5m", "query.max-samples": "50000000", "query.timeout": "2m"}),
    )
}

/// `/api/v1/status/runtimeinfo`.
pub async fn runtimeinfo() -> Response {
    ok_json(&serde_json::json!({
        "startTime": "", "CWD": "", "reloadConfigSuccess": true, "lastConfigTime": "",
        "corruptionCount": 0, "goroutineCount": 0, "GOMAXPROCS": 0, "GOGC": "", "GODEBUG": "",
        "storageRetention": "unlimited"
    }))
}

/// `/api/v1/status/config`.
pub async fn config(State(state): State<SharedState>) -> Response {
    ok_json(&serde_json::json!({"yaml": state.config_yaml}))
}

/// `/api/v1/query_exemplars`: Ember does not store exemplars yet; an empty, valid answer
/// keeps Grafana's exemplar toggle working.
pub async fn query_exemplars() -> Response {
    ok_json(&serde_json::json!([]))
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
