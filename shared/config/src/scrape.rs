//! `scrape_configs` entries, as Prometheus reads them.

use serde::Deserialize;

use crate::PromDuration;

/// One scrape job.
#[derive(Debug, Clone, Deserialize)]
pub struct ScrapeConfig {
    /// The job name, the value of the `job` label.
    pub job_name: String,
    /// How often to scrape (defaults to `global.scrape_interval`).
    #[serde(default)]
    pub scrape_interval: Option<PromDuration>,
    /// How long a scrape may take (defaults to `global.scrape_timeout`).
    #[serde(default)]
    pub scrape_timeout: Option<PromDuration>,
    /// The HTTP path (default `/metrics`).
    #[serde(default)]
    pub metrics_path: Option<String>,
    /// `http` or `https`.
    #[serde(default)]
    pub scheme: Option<String>,
    /// Static targets.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
}

/// A static target group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` targets.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels for every target of the group.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}
