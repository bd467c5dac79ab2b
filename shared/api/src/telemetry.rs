//! Ember's own metrics, served at `/metrics` in the Prometheus text format and
//! scraped by the default configuration.
//!
//! Names follow Prometheus where Prometheus has the same measurement
//! (`prometheus_http_requests_total{handler,code}`,
//! `prometheus_http_request_duration_seconds`, `prometheus_rule_group_*`,
//! `process_start_time_seconds`), and use `ember_*` where it has none (ingest,
//! query and storage counters). docs/GRAFANA.md lists them all.
//!
//! Everything is cheap on the hot path: relaxed atomics, and one short mutex per HTTP
//! request for the per-handler table.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use ember_model::{Labels, Matcher, MetricMetadata, Series};
use ember_storage::{
    AppendBatch, AppendStats, Appender, Querier, Result as StorageResult, Storage, StorageError,
};

use crate::json::format_float;

/// Writes the metric families of a component beside the API (backend, compaction,
/// notifiers) in the text format; `/metrics` appends every source of the state.
pub type MetricsSource = Arc<dyn Fn(&mut String) + Send + Sync>;

/// Bucket bounds of `prometheus_http_request_duration_seconds` (Prometheus' own).
pub const HTTP_BUCKETS: &[f64] = &[0.1, 0.2, 0.4, 1.0, 3.0, 8.0, 20.0, 60.0, 120.0];
/// Bucket bounds of the query and storage latency histograms (finer at the low end,
/// where local queries and DynamoDB requests land).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A histogram with fixed bounds: cumulative counts are computed when rendering.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per-bucket (non-cumulative) counts; the last slot is `+Inf`.
    counts: Vec<AtomicU64>,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending upper bounds, `+Inf` implied).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = match self.bounds.get(i) {
                Some(b) => format_float(*b),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), format_float(sum));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

/// Per-handler HTTP statistics.
#[derive(Debug)]
struct HandlerStats {
    codes: BTreeMap<u16, u64>,
    duration: Histogram,
}

/// The storage operations counted by [`InstrumentedStorage`].
pub const STORAGE_OPS: &[&str] = &[
    "append",
    "select",
    "series",
    "label_names",
    "label_values",
    "metadata",
];
/// The storage error kinds, as [`StorageError`]'s variants.
pub const STORAGE_ERROR_KINDS: &[&str] = &["invalid_input", "unavailable", "internal"];

fn error_kind(e: &StorageError) -> usize {
    match e {
        StorageError::InvalidInput(_) => 0,
        StorageError::Unavailable(_) => 1,
        StorageError::Internal { .. } => 2,
    }
}

/// Storage request counters, shared between [`ApiMetrics`] and the
/// [`InstrumentedStorage`] wrapped around the API's storage.
#[derive(Debug)]
pub struct StorageMetrics {
    requests: Vec<AtomicU64>,
    /// `errors[op * kinds + kind]`.
    errors: Vec<AtomicU64>,
    durations: Vec<Histogram>,
}

impl Default for StorageMetrics {
    fn default() -> Self {
        Self {
            requests: STORAGE_OPS.iter().map(|_| AtomicU64::new(0)).collect(),
            errors: (0..STORAGE_OPS.len() * STORAGE_ERROR_KINDS.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            durations: STORAGE_OPS
                .iter()
                .map(|_| Histogram::new(LATENCY_BUCKETS))
                .collect(),
        }
    }
}

impl StorageMetrics {
    fn record<T>(&self, op: usize, started: Instant, r: &StorageResult<T>) {
        self.requests[op].fetch_add(1, Ordering::Relaxed);
        self.durations[op].observe(started.elapsed());
        if let Err(e) = r {
            self.errors[op * STORAGE_ERROR_KINDS.len() + error_kind(e)]
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests counted for operation `op` (one of [`STORAGE_OPS`]).
    pub fn requests(&self, op: &str) -> u64 {
        STORAGE_OPS
            .iter()
            .position(|o| *o == op)
            .map_or(0, |i| self.requests[i].load(Ordering::Relaxed))
    }
}

/// A [`Storage`] that counts requests, errors by kind and latency per operation, and
/// forwards everything to the wrapped storage unchanged.
pub struct InstrumentedStorage {
    inner: Arc<dyn Storage>,
    metrics: Arc<StorageMetrics>,
}

impl InstrumentedStorage {
    /// Wraps `inner`, counting into `metrics`.
    pub fn new(inner: Arc<dyn Storage>, metrics: Arc<StorageMetrics>) -> Self {
        Self { inner, metrics }
    }
}

macro_rules! timed {
    ($self:ident, $op:expr, $call:expr) => {{
        let started = Instant::now();
        let r = $call.await;
        $self.metrics.record($op, started, &r);
        r
    }};
}

#[async_trait]
impl Appender for InstrumentedStorage {
    async fn append(&self, tenant: &str, batch: AppendBatch) -> StorageResult<AppendStats> {
        timed!(self, 0, self.inner.append(tenant, batch))
    }
}

#[async_trait]
impl Querier for InstrumentedStorage {
    async fn select(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> StorageResult<Vec<Series>> {
        timed!(self, 1, self.inner.select(tenant, matchers, start, end))
    }

    async fn series(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> StorageResult<Vec<Labels>> {
        timed!(self, 2, self.inner.series(tenant, matcher_sets, start, end))
    }

    async fn label_names(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> StorageResult<Vec<String>> {
        timed!(
            self,
            3,
            self.inner.label_names(tenant, matcher_sets, start, end)
        )
    }

    async fn label_values(
        &self,
        tenant: &str,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> StorageResult<Vec<String>> {
        timed!(
            self,
            4,
            self.inner
                .label_values(tenant, name, matcher_sets, start, end)
        )
    }

    async fn metadata(
        &self,
        tenant: &str,
        metric: Option<&str>,
    ) -> StorageResult<Vec<MetricMetadata>> {
        timed!(self, 5, self.inner.metadata(tenant, metric))
    }
}

/// Reasons a remote-write request is refused, by HTTP status.
const REJECT_REASONS: &[(u16, &str)] = &[
    (400, "bad_request"),
    (413, "too_large"),
    (415, "unsupported_media_type"),
];

/// Counters the API updates on every request. Cheap (relaxed atomics).
#[derive(Debug)]
pub struct ApiMetrics {
    /// Samples accepted by remote write.
    pub samples_ingested: AtomicU64,
    /// Remote-write requests accepted.
    pub write_requests: AtomicU64,
    /// Remote-write requests refused as bad input (4xx), all reasons.
    pub write_rejected_bad_request: AtomicU64,
    /// Remote-write requests failed by storage (5xx).
    pub write_failed_storage: AtomicU64,
    /// Queries evaluated (instant and range).
    pub queries: AtomicU64,
    /// Queries that failed.
    pub query_errors: AtomicU64,
    /// Total query time in microseconds.
    pub query_duration_us: AtomicU64,
    /// Refused remote-write requests by reason (index into `REJECT_REASONS`, last = other).
    write_rejected_by_reason: Vec<AtomicU64>,
    /// Samples of decoded requests the storage refused, by [`STORAGE_ERROR_KINDS`].
    samples_rejected: Vec<AtomicU64>,
    /// Query latency: `[instant, range]`.
    query_duration: [Histogram; 2],
    /// Per-handler HTTP statistics.
    http: Mutex<BTreeMap<String, HandlerStats>>,
    /// Storage request counters (shared with the [`InstrumentedStorage`]).
    pub storage: Arc<StorageMetrics>,
    start_time: f64,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self {
            samples_ingested: AtomicU64::new(0),
            write_requests: AtomicU64::new(0),
            write_rejected_bad_request: AtomicU64::new(0),
            write_failed_storage: AtomicU64::new(0),
            queries: AtomicU64::new(0),
            query_errors: AtomicU64::new(0),
            query_duration_us: AtomicU64::new(0),
            write_rejected_by_reason: (0..=REJECT_REASONS.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            samples_rejected: STORAGE_ERROR_KINDS
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
            query_duration: [
                Histogram::new(LATENCY_BUCKETS),
                Histogram::new(LATENCY_BUCKETS),
            ],
            http: Mutex::new(BTreeMap::new()),
            storage: Arc::new(StorageMetrics::default()),
            start_time: chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
        }
    }
}

/// Adds one to a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The kind of a query, for `ember_query_duration_seconds{type}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// `/api/v1/query`.
    Instant,
    /// `/api/v1/query_range`.
    Range,
}

/// Prometheus-style handler label for a matched route: the workspace prefix removed
/// (both tenants' routes share one label) and `{param}` written `:param` as Prometheus'
/// router does.
pub fn handler_label(matched: &str) -> String {
    let path = matched
        .strip_prefix("/workspaces/{workspace}")
        .filter(|p| !p.is_empty())
        .unwrap_or(matched);
    path.replace("{*", ":").replace('{', ":").replace('}', "")
}

/// Middleware counting every routed request into `prometheus_http_requests_total` and
/// `prometheus_http_request_duration_seconds` (install with `route_layer`, so the
/// matched route is known).
pub async fn track_http(
    State(metrics): State<Arc<crate::ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| handler_label(m.as_str()))
        .unwrap_or_else(|| "other".to_string());
    let started = Instant::now();
    let resp = next.run(req).await;
    metrics
        .metrics
        .observe_http(&handler, resp.status().as_u16(), started.elapsed());
    resp
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn escape_label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('"', "\\\"")
}

impl ApiMetrics {
    /// Records one HTTP request.
    pub fn observe_http(&self, handler: &str, code: u16, d: Duration) {
        let mut http = lock(&self.http);
        let stats = http
            .entry(handler.to_string())
            .or_insert_with(|| HandlerStats {
                codes: BTreeMap::new(),
                duration: Histogram::new(HTTP_BUCKETS),
            });
        *stats.codes.entry(code).or_default() += 1;
        stats.duration.observe(d);
    }

    /// Records one query's duration and outcome.
    pub fn observe_query(&self, kind: QueryKind, d: Duration, failed: bool) {
        inc(&self.queries);
        add(
            &self.query_duration_us,
            d.as_micros().min(u64::MAX as u128) as u64,
        );
        if failed {
            inc(&self.query_errors);
        }
        self.query_duration[kind as usize].observe(d);
    }

    /// Records a refused remote-write request by its HTTP status (400, 413, 415, …).
    pub fn observe_write_rejected(&self, status: u16) {
        inc(&self.write_rejected_bad_request);
        let i = REJECT_REASONS
            .iter()
            .position(|(s, _)| *s == status)
            .unwrap_or(REJECT_REASONS.len());
        inc(&self.write_rejected_by_reason[i]);
    }

    /// Records a decoded remote-write request whose `samples` the storage refused.
    pub fn observe_write_failed(&self, e: &StorageError, samples: usize) {
        inc(&self.write_failed_storage);
        add(&self.samples_rejected[error_kind(e)], samples as u64);
    }

    /// Renders the metrics in the Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::with_capacity(16 << 10);
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            header(out, name, "counter", help);
            let _ = writeln!(out, "{name} {v}");
        };
        counter(
            &mut out,
            "ember_samples_ingested_total",
            "Samples accepted by remote write.",
            g(&self.samples_ingested),
        );
        counter(
            &mut out,
            "ember_remote_write_requests_total",
            "Remote-write requests accepted.",
            g(&self.write_requests),
        );
        counter(
            &mut out,
            "ember_remote_write_failed_total",
            "Remote-write requests that failed in storage (the sender retries).",
            g(&self.write_failed_storage),
        );
        counter(
            &mut out,
            "ember_queries_total",
            "PromQL queries evaluated.",
            g(&self.queries),
        );
        counter(
            &mut out,
            "ember_query_errors_total",
            "PromQL queries that failed.",
            g(&self.query_errors),
        );
        header(
            &mut out,
            "ember_query_duration_seconds_total",
            "counter",
            "Time spent evaluating queries.",
        );
        let _ = writeln!(
            out,
            "ember_query_duration_seconds_total {}",
            format_float(g(&self.query_duration_us) as f64 / 1e6)
        );

        header(
            &mut out,
            "ember_remote_write_rejected_total",
            "counter",
            "Remote-write requests refused as bad input (4xx; the sender drops them), by reason.",
        );
        for (i, c) in self.write_rejected_by_reason.iter().enumerate() {
            let reason = REJECT_REASONS.get(i).map_or("other", |(_, r)| r);
            let _ = writeln!(
                out,
                "ember_remote_write_rejected_total{{reason=\"{reason}\"}} {}",
                g(c)
            );
        }
        header(
            &mut out,
            "ember_samples_rejected_total",
            "counter",
            "Samples of decoded remote-write requests the storage refused, by storage error kind.",
        );
        for (i, c) in self.samples_rejected.iter().enumerate() {
            let _ = writeln!(
                out,
                "ember_samples_rejected_total{{reason=\"{}\"}} {}",
                STORAGE_ERROR_KINDS[i],
                g(c)
            );
        }

        header(
            &mut out,
            "ember_query_duration_seconds",
            "histogram",
            "PromQL query latency (parse, storage reads and evaluation), by query type.",
        );
        for (kind, h) in ["instant", "range"].iter().zip(&self.query_duration) {
            h.render(
                &mut out,
                "ember_query_duration_seconds",
                &format!("type=\"{kind}\""),
            );
        }

        {
            let http = lock(&self.http);
            header(
                &mut out,
                "prometheus_http_requests_total",
                "counter",
                "Counter of HTTP requests.",
            );
            for (handler, stats) in http.iter() {
                let handler = escape_label_value(handler);
                for (code, n) in &stats.codes {
                    let _ = writeln!(
                        out,
                        "prometheus_http_requests_total{{code=\"{code}\",handler=\"{handler}\"}} {n}"
                    );
                }
            }
            header(
                &mut out,
                "prometheus_http_request_duration_seconds",
                "histogram",
                "Histogram of latencies for HTTP requests.",
            );
            for (handler, stats) in http.iter() {
                stats.duration.render(
                    &mut out,
                    "prometheus_http_request_duration_seconds",
                    &format!("handler=\"{}\"", escape_label_value(handler)),
                );
            }
        }

        let s = &self.storage;
        header(
            &mut out,
            "ember_storage_requests_total",
            "counter",
            "Storage operations issued by the API (one call of the storage interface each), by operation.",
        );
        for (i, op) in STORAGE_OPS.iter().enumerate() {
            let _ = writeln!(
                out,
                "ember_storage_requests_total{{op=\"{op}\"}} {}",
                g(&s.requests[i])
            );
        }
        header(
            &mut out,
            "ember_storage_errors_total",
            "counter",
            "Storage operations that failed, by operation and error kind.",
        );
        for (i, op) in STORAGE_OPS.iter().enumerate() {
            for (k, kind) in STORAGE_ERROR_KINDS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "ember_storage_errors_total{{kind=\"{kind}\",op=\"{op}\"}} {}",
                    g(&s.errors[i * STORAGE_ERROR_KINDS.len() + k])
                );
            }
        }
        header(
            &mut out,
            "ember_storage_request_duration_seconds",
            "histogram",
            "Latency of storage operations, by operation.",
        );
        for (i, op) in STORAGE_OPS.iter().enumerate() {
            s.durations[i].render(
                &mut out,
                "ember_storage_request_duration_seconds",
                &format!("op=\"{op}\""),
            );
        }

        header(
            &mut out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
        );
        let _ = writeln!(
            out,
            "process_start_time_seconds {}",
            format_float(self.start_time)
        );
        if let Some(rss) = resident_memory_bytes() {
            header(
                &mut out,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
            );
            let _ = writeln!(out, "process_resident_memory_bytes {rss}");
        }
        out
    }
}

/// Resident set size from `/proc/self/status` (Linux, including Lambda); `None` elsewhere.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Rule-group metrics in Prometheus' names, derived from the `/api/v1/rules` data of the
/// rule manager: `prometheus_rule_group_rules`, `prometheus_rule_group_last_duration_seconds`,
/// `prometheus_rule_group_last_evaluation_timestamp_seconds`, and
/// `ember_rule_group_rules_failing` (rules whose last evaluation failed).
/// `rule_group` is `<file>;<name>`, as in Prometheus.
pub fn render_rule_groups(out: &mut String, rules: &serde_json::Value) {
    let Some(groups) = rules["groups"].as_array() else {
        return;
    };
    struct Row {
        group: String,
        rules: usize,
        failing: usize,
        duration: f64,
        last_eval: Option<f64>,
    }
    let rows: Vec<Row> = groups
        .iter()
        .map(|g| {
            let list = g["rules"].as_array();
            Row {
                group: escape_label_value(&format!(
                    "{};{}",
                    g["file"].as_str().unwrap_or(""),
                    g["name"].as_str().unwrap_or("")
                )),
                rules: list.map_or(0, Vec::len),
                failing: list.map_or(0, |l| l.iter().filter(|r| r["health"] == "err").count()),
                duration: g["evaluationTime"].as_f64().unwrap_or(0.0),
                last_eval: g["lastEvaluation"]
                    .as_str()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.timestamp_millis() as f64 / 1000.0)
                    .filter(|t| *t > 0.0),
            }
        })
        .collect();
    type Family = (&'static str, &'static str, fn(&Row) -> Option<f64>);
    let families: [Family; 4] = [
        ("prometheus_rule_group_rules", "The number of rules.", |r| {
            Some(r.rules as f64)
        }),
        (
            "ember_rule_group_rules_failing",
            "Rules whose last evaluation failed (health \"err\").",
            |r| Some(r.failing as f64),
        ),
        (
            "prometheus_rule_group_last_duration_seconds",
            "The duration of the last rule evaluation.",
            |r| Some(r.duration),
        ),
        (
            "prometheus_rule_group_last_evaluation_timestamp_seconds",
            "The timestamp of the last rule group evaluation in seconds.",
            |r| r.last_eval,
        ),
    ];
    for (name, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for r in &rows {
            if let Some(v) = value(r) {
                let _ = writeln!(
                    out,
                    "{name}{{rule_group=\"{}\"}} {}",
                    r.group,
                    format_float(v)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_formats::exposition::{Format, parse_all};

    #[test]
    fn handler_labels_like_prometheus() {
        assert_eq!(handler_label("/api/v1/query"), "/api/v1/query");
        assert_eq!(
            handler_label("/workspaces/{workspace}/api/v1/query"),
            "/api/v1/query"
        );
        assert_eq!(
            handler_label("/api/v1/label/{name}/values"),
            "/api/v1/label/:name/values"
        );
        assert_eq!(handler_label("/metrics/job/{*rest}"), "/metrics/job/:rest");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(5));
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.1\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_sum{a=\"b\"} 5.55\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
        assert_eq!(h.count(), 3);
    }

    #[test]
    fn rendered_page_parses_and_counts() {
        let m = ApiMetrics::default();
        m.observe_http("/api/v1/query", 200, Duration::from_millis(3));
        m.observe_http("/api/v1/query", 400, Duration::from_millis(1));
        m.observe_http("/api/v1/query", 200, Duration::from_millis(2));
        m.observe_query(QueryKind::Range, Duration::from_millis(20), true);
        m.observe_write_rejected(413);
        m.observe_write_rejected(999);
        m.observe_write_failed(&StorageError::Unavailable("x".into()), 7);
        let mut text = m.render();
        render_rule_groups(
            &mut text,
            &serde_json::json!({"groups": [{"name": "g", "file": "r.yml", "evaluationTime": 0.25,
                "lastEvaluation": "2026-01-01T00:00:00Z",
                "rules": [{"health": "ok"}, {"health": "err"}]}]}),
        );
        let page = parse_all(text.as_bytes(), Format::PrometheusText).expect("valid exposition");
        let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
            page.samples
                .iter()
                .find(|s| {
                    s.labels.metric_name() == Some(name)
                        && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
                })
                .map(|s| s.value)
        };
        assert_eq!(
            value(
                "prometheus_http_requests_total",
                &[("handler", "/api/v1/query"), ("code", "200")]
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                "prometheus_http_request_duration_seconds_count",
                &[("handler", "/api/v1/query")]
            ),
            Some(3.0)
        );
        assert_eq!(
            value("ember_query_duration_seconds_count", &[("type", "range")]),
            Some(1.0)
        );
        assert_eq!(value("ember_query_errors_total", &[]), Some(1.0));
        assert_eq!(
            value(
                "ember_remote_write_rejected_total",
                &[("reason", "too_large")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value("ember_remote_write_rejected_total", &[("reason", "other")]),
            Some(1.0)
        );
        assert_eq!(
            value("ember_samples_rejected_total", &[("reason", "unavailable")]),
            Some(7.0)
        );
        assert_eq!(
            value(
                "ember_storage_errors_total",
                &[("op", "select"), ("kind", "internal")]
            ),
            Some(0.0)
        );
        assert_eq!(
            value(
                "ember_rule_group_rules_failing",
                &[("rule_group", "r.yml;g")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                "prometheus_rule_group_last_evaluation_timestamp_seconds",
                &[("rule_group", "r.yml;g")]
            ),
            Some(1_767_225_600.0)
        );
        assert!(value("process_start_time_seconds", &[]).is_some_and(|v| v > 1e9));
    }

    #[tokio::test]
    async fn instrumented_storage_counts_operations_and_errors() {
        let metrics = Arc::new(StorageMetrics::default());
        let inner: Arc<dyn Storage> = Arc::new(ember_storage::MemStorage::new());
        let s = InstrumentedStorage::new(inner, metrics.clone());
        s.series("t", &[], 0, 10).await.unwrap();
        s.select("t", &[], 0, 10).await.unwrap();
        s.select("t", &[], 0, 10).await.unwrap();
        assert_eq!(metrics.requests("series"), 1);
        assert_eq!(metrics.requests("select"), 2);
        assert_eq!(metrics.requests("append"), 0);
    }

    /// A storage whose reads fail as a throttled backend would.
    struct Unavailable;

    #[async_trait]
    impl Appender for Unavailable {
        async fn append(&self, _: &str, _: AppendBatch) -> StorageResult<AppendStats> {
            Err(StorageError::Unavailable("throttled".into()))
        }
    }

    #[async_trait]
    impl Querier for Unavailable {
        async fn select(
            &self,
            _: &str,
            _: &[Matcher],
            _: i64,
            _: i64,
        ) -> StorageResult<Vec<Series>> {
            Err(StorageError::Unavailable("throttled".into()))
        }
        async fn series(
            &self,
            _: &str,
            _: &[Vec<Matcher>],
            _: i64,
            _: i64,
        ) -> StorageResult<Vec<Labels>> {
            Ok(Vec::new())
        }
        async fn metadata(&self, _: &str, _: Option<&str>) -> StorageResult<Vec<MetricMetadata>> {
            Ok(Vec::new())
        }
    }

    async fn call(app: &axum::Router, method: &str, uri: &str) -> (u16, String) {
        use tower::ServiceExt;
        let req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn router_counts_requests_queries_and_storage_errors() {
        let app = crate::router(Arc::new(crate::ApiState::new(Arc::new(Unavailable))));
        assert_eq!(
            call(&app, "GET", "/api/v1/query?query=up&time=10").await.0,
            503
        );
        assert_eq!(
            call(
                &app,
                "GET",
                "/workspaces/w1/api/v1/query?query=1%2B1&time=10"
            )
            .await
            .0,
            200
        );
        assert_eq!(call(&app, "GET", "/api/v1/label/job/values").await.0, 200);
        assert_eq!(call(&app, "GET", "/no/such/path").await.0, 404);
        let (status, text) = call(&app, "GET", "/metrics").await;
        assert_eq!(status, 200);
        let page = parse_all(text.as_bytes(), Format::PrometheusText).expect("valid exposition");
        let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
            page.samples
                .iter()
                .find(|s| {
                    s.labels.metric_name() == Some(name)
                        && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
                })
                .map(|s| s.value)
        };
        let http = |handler: &str, code: &str| {
            value(
                "prometheus_http_requests_total",
                &[("handler", handler), ("code", code)],
            )
        };
        assert_eq!(http("/api/v1/query", "503"), Some(1.0));
        assert_eq!(
            http("/api/v1/query", "200"),
            Some(1.0),
            "workspace routes share the label"
        );
        assert_eq!(http("/api/v1/label/:name/values", "200"), Some(1.0));
        assert!(
            !text.contains("/no/such/path"),
            "unrouted paths get no label of their own"
        );
        assert_eq!(
            value(
                "ember_storage_errors_total",
                &[("op", "select"), ("kind", "unavailable")]
            ),
            Some(1.0)
        );
        assert_eq!(value("ember_query_errors_total", &[]), Some(1.0));
        assert_eq!(
            value("ember_query_duration_seconds_count", &[("type", "instant")]),
            Some(2.0)
        );
        // Remote write into a failing store: the request is a 503 and its samples are
        // counted as refused.
        let body = {
            use prost::Message;
            let req = ember_formats::remote::pb::WriteRequest {
                timeseries: vec![ember_formats::remote::pb::TimeSeries {
                    labels: vec![ember_formats::remote::pb::Label {
                        name: "__name__".into(),
                        value: "x".into(),
                    }],
                    samples: vec![
                        ember_formats::remote::pb::Sample {
                            value: 1.0,
                            timestamp: 1,
                        },
                        ember_formats::remote::pb::Sample {
                            value: 2.0,
                            timestamp: 2,
                        },
                    ],
                    ..Default::default()
                }],
                metadata: vec![],
            };
            snap::raw::Encoder::new()
                .compress_vec(&req.encode_to_vec())
                .unwrap()
        };
        use tower::ServiceExt;
        let resp = app
            .clone()
            .oneshot(
                axum::http::Request::post("/api/v1/write")
                    .header("Content-Type", "application/x-protobuf")
                    .header("Content-Encoding", "snappy")
                    .body(axum::body::Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 503);
        let (_, text) = call(&app, "GET", "/metrics").await;
        assert!(
            text.contains("ember_samples_rejected_total{reason=\"unavailable\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("ember_remote_write_failed_total 1\n"),
            "{text}"
        );
    }
}
