//! The Prometheus HTTP API (Prometheus' `web/api/v1`) as one axum [`Router`].
//!
//! An axum router is a `tower::Service<http::Request>` returning `http::Response`,
//! so the same router serves the local server (`axum::serve`) and the Lambda
//! functions (`lambda_http::run`): one implementation of every endpoint.
//! Every route exists twice: under `/` for the default tenant and under
//! `/workspaces/<id>/` (Amazon Managed Prometheus style) for tenant `<id>`.

pub mod auth;
pub mod error;
mod format_query;
pub mod json;
pub mod otlp;
pub mod params;
mod push;
mod query;
mod series;
mod status;
pub mod telemetry;
mod tenant;
mod tsdb_status;
mod write;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};
use ember_promql::Engine;
use ember_storage::Storage;

pub use error::ApiError;
pub use tenant::Tenant;

/// Limits of the remote-write receiver.
#[derive(Debug, Clone, Copy)]
pub struct WriteLimits {
    /// Largest compressed body accepted (413 above). Behind API Gateway + Lambda,
    /// about 4.4 MB fits in the 6 MB base64-encoded event.
    pub max_body_bytes: usize,
    /// Largest decompressed body accepted (413 above).
    pub max_decoded_bytes: usize,
}

impl Default for WriteLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
            max_decoded_bytes: 256 << 20,
        }
    }
}

/// Where `/api/v1/targets` gets its data (the scrape manager, when one runs); kept as a
/// trait so the API does not depend on the scrape crate's HTTP client.
pub trait TargetsSource: Send + Sync {
    /// The `data` of `/api/v1/targets` (`activeTargets`, `droppedTargets`, …).
    fn targets_json(&self) -> serde_json::Value;
}

/// Where `/api/v1/rules` and `/api/v1/alerts` get their data (the rule manager, when
/// rules run in this process).
pub trait RulesSource: Send + Sync {
    /// The `data` of `/api/v1/rules` for the request's parameters (`type`, `rule_name[]`,
    /// `rule_group[]`, `file[]`, `exclude_alerts`, …); `Err` is a bad parameter.
    fn rules_json(&self, params: &[(String, String)]) -> Result<serde_json::Value, String>;
    /// The `data` of `/api/v1/alerts`.
    fn alerts_json(&self) -> serde_json::Value;
}

/// Everything the handlers need.
pub struct ApiState {
    /// The storage every endpoint reads and writes.
    pub storage: Arc<dyn Storage>,
    /// The PromQL engine.
    pub engine: Engine,
    /// Remote-write limits.
    pub write_limits: WriteLimits,
    /// Scrape targets for `/api/v1/targets`, when scraping runs in this process.
    pub targets: Option<Arc<dyn TargetsSource>>,
    /// Rules and alerts for `/api/v1/rules` and `/api/v1/alerts`, when rules run here.
    pub rules: Option<Arc<dyn RulesSource>>,
    /// Ember's own counters, served at `/metrics`.
    pub metrics: telemetry::ApiMetrics,
    /// The configuration text `/api/v1/status/config` shows.
    pub config_yaml: String,
    /// Metrics of components beside the API (backend, compaction, notifiers), appended
    /// to `/metrics`.
    pub metric_sources: Vec<telemetry::MetricsSource>,
}

impl ApiState {
    /// State over a storage with default engine options and limits.
    /// The storage is wrapped in [`telemetry::InstrumentedStorage`], so `/metrics`
    /// counts its requests, errors and latency.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        let metrics = telemetry::ApiMetrics::default();
        let storage: Arc<dyn Storage> = Arc::new(telemetry::InstrumentedStorage::new(
            storage,
            metrics.storage.clone(),
        ));
        Self {
            storage,
            engine: Engine::default(),
            write_limits: WriteLimits::default(),
            targets: None,
            rules: None,
            metrics,
            config_yaml: String::new(),
            metric_sources: Vec::new(),
        }
    }
}

/// Shared handler state.
pub type SharedState = Arc<ApiState>;

fn api_routes(prefix: &str) -> Router<SharedState> {
    let p = |path: &str| format!("{prefix}{path}");
    Router::new()
        .route(&p("/api/v1/write"), post(write::remote_write))
        .route(
            &p("/api/v1/query"),
            get(query::instant).post(query::instant),
        )
        .route(
            &p("/api/v1/query_range"),
            get(query::range).post(query::range),
        )
        .route(
            &p("/api/v1/series"),
            get(series::series).post(series::series),
        )
        .route(
            &p("/api/v1/labels"),
            get(series::label_names).post(series::label_names),
        )
        .route(&p("/api/v1/label/{name}/values"), get(series::label_values))
        .route(&p("/api/v1/metadata"), get(series::metadata))
        .route(
            &p("/metrics/job/{*rest}"),
            put(push::push).post(push::push).delete(push::push),
        )
        .route(
            &p("/metrics/job@base64/{*rest}"),
            put(push::push_base64_job)
                .post(push::push_base64_job)
                .delete(push::push_base64_job),
        )
        .route(
            &p("/api/v1/status/buildinfo"),
            get(status::buildinfo).post(status::buildinfo),
        )
        .route(&p("/api/v1/status/flags"), get(status::flags))
        .route(&p("/api/v1/status/runtimeinfo"), get(status::runtimeinfo))
        .route(&p("/api/v1/status/config"), get(status::config))
        .route(&p("/api/v1/status/tsdb"), get(tsdb_status::tsdb_status))
        .route(&p("/api/v1/otlp/v1/metrics"), post(otlp::receive))
        .route(
            &p("/api/v1/format_query"),
            get(format_query::handler).post(format_query::handler),
        )
        .route(
            &p("/api/v1/query_exemplars"),
            get(status::query_exemplars).post(status::query_exemplars),
        )
        .route(&p("/api/v1/targets"), get(status::targets))
        .route(&p("/api/v1/rules"), get(status::rules).post(status::rules))
        .route(
            &p("/api/v1/alerts"),
            get(status::alerts).post(status::alerts),
        )
}

/// The whole API: Prometheus paths for the default tenant, AMP-style workspace paths,
/// and the health endpoints.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .merge(api_routes(""))
        .merge(api_routes("/workspaces/{workspace}"))
        .route(
            "/workspaces/{workspace}/api/v1/remote_write",
            post(write::remote_write),
        )
        .route("/metrics", get(status::self_metrics))
        .route("/-/healthy", get(status::healthy).head(status::healthy))
        .route("/-/ready", get(status::ready).head(status::ready))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            telemetry::track_http,
        ))
        .fallback(status::not_found)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

#[cfg(test)]
mod tests;
