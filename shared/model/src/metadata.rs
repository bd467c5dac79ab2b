//! Metric metadata (type, help, unit), as remote write and scrapes carry it.

use serde::{Deserialize, Serialize};

/// The type of a metric family, as `/api/v1/metadata` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// A monotonically increasing counter.
    Counter,
    /// A gauge.
    Gauge,
    /// A classic or native histogram.
    Histogram,
    /// An OpenMetrics gauge histogram.
    Gaugehistogram,
    /// A summary.
    Summary,
    /// An OpenMetrics info metric.
    Info,
    /// An OpenMetrics state set.
    Stateset,
    /// Type not known.
    #[default]
    Unknown,
}

impl MetricType {
    /// The lowercase name Prometheus uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Gaugehistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::Stateset => "stateset",
            MetricType::Unknown => "unknown",
        }
    }

    /// Parses a type name (`untyped` is `unknown`, as in Prometheus).
    pub fn parse(s: &str) -> Self {
        match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::Gaugehistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::Stateset,
            _ => MetricType::Unknown,
        }
    }
}

/// Metadata of one metric family.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetricMetadata {
    /// The metric family name (e.g. `node_cpu_seconds_total`).
    pub metric_family_name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub metric_type: MetricType,
    /// The HELP text.
    pub help: String,
    /// The unit (may be empty).
    pub unit: String,
}
