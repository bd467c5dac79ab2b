//! Ember's own metrics, served at `/metrics` in the Prometheus text format and
//! scraped by the default configuration.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters the API updates on every request. Cheap (relaxed atomics).
#[derive(Debug, Default)]
pub struct ApiMetrics {
    /// Samples accepted by remote write.
    pub samples_ingested: AtomicU64,
    /// Remote-write requests accepted.
    pub write_requests: AtomicU64,
    /// Remote-write requests refused as bad input (4xx).
    pub write_rejected_bad_request: AtomicU64,
    /// Remote-write requests failed by storage (5xx).
    pub write_failed_storage: AtomicU64,
    /// Queries evaluated (instant and range).
    pub queries: AtomicU64,
    /// Queries that failed.
    pub query_errors: AtomicU64,
    /// Total query time in microseconds.
    pub query_duration_us: AtomicU64,
}

/// Adds one to a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl ApiMetrics {
    /// Renders the counters in the Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, labels: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{labels} {v}"
            );
        };
        counter(
            "ember_samples_ingested_total",
            "Samples accepted by remote write.",
            "",
            g(&self.samples_ingested),
        );
        counter(
            "ember_remote_write_requests_total",
            "Remote-write requests accepted.",
            "",
            g(&self.write_requests),
        );
        counter(
            "ember_remote_write_rejected_total",
            "Remote-write requests refused, by reason.",
            "{reason=\"bad_request\"}",
            g(&self.write_rejected_bad_request),
        );
        counter(
            "ember_remote_write_failed_total",
            "Remote-write requests that failed in storage (the sender retries).",
            "",
            g(&self.write_failed_storage),
        );
        counter(
            "ember_queries_total",
            "PromQL queries evaluated.",
            "",
            g(&self.queries),
        );
        counter(
            "ember_query_errors_total",
            "PromQL queries that failed.",
            "",
            g(&self.query_errors),
        );
        let _ = writeln!(
            out,
            "# HELP ember_query_duration_seconds_total Time spent evaluating queries.\n# TYPE ember_query_duration_seconds_total counter\nember_query_duration_seconds_total {}",
            crate::json::format_float(g(&self.query_duration_us) as f64 / 1e6)
        );
        out
    }
}
