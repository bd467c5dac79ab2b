//! Prometheus-compatible scraping for Ember.
//!
//! * [`discovery`]: `static_configs`, `file_sd_configs`, `ec2_sd_configs` (DescribeInstances
//!   signed with `aws-sigv4`, XML parsed with `quick-xml`; no `aws-sdk-ec2`).
//! * [`target`]: discovered label sets → targets (defaults, `relabel_configs`, URL).
//! * [`client`]: HTTP scrapes with `reqwest` (auth, TLS, gzip, body size limit, timeout).
//! * [`process`]: page → series (`honor_labels`, `metric_relabel_configs`, limits,
//!   `honor_timestamps`, external labels), cached per target.
//! * [`ScrapeManager`]: per-target report series (`up`, `scrape_duration_seconds`,
//!   `scrape_samples_scraped`, `scrape_samples_post_metric_relabeling`,
//!   `scrape_series_added`), staleness markers for vanished series and vanished targets,
//!   the `ember serve` scheduler ([`ScrapeManager::run`]) and the one-pass entry point of
//!   the scrape Lambda ([`ScrapeManager::run_pass`]), with serialisable [`ScrapeState`].
//! * [`api`]: `/api/v1/targets` in Prometheus' JSON shape.
//!
//! Exemplars are parsed (OpenMetrics) and dropped: the storage has no exemplar API.
//! `global.external_labels` are added to every stored series (series labels win), the way
//! a Prometheus agent's remote write would deliver them to a backend.

pub mod api;
pub mod client;
pub mod discovery;
mod manager;
pub mod process;
pub mod state;
pub mod target;

pub use api::TargetsResponse;
pub use manager::{
    PassReport, ScrapeManager, ScrapeOptions, Shard, TickReport, default_self_scrape_config,
};
pub use state::ScrapeState;

/// Why a scrape failed (the text becomes the target's `lastError`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScrapeError {
    /// Connection, HTTP status or timeout problem.
    #[error("{0}")]
    Http(String),
    /// The body exceeded `body_size_limit`.
    #[error("body size limit exceeded (limit {0} bytes)")]
    BodySizeLimit(u64),
    /// The page is not valid exposition text; nothing of it was stored.
    #[error("invalid exposition: {0}")]
    Parse(String),
    /// A `sample_limit`/`label_limit`/length limit or `target_limit` was exceeded, or a
    /// series lost its name in relabeling.
    #[error("{0}")]
    Limit(String),
    /// The job's configuration cannot be used.
    #[error("invalid scrape config: {0}")]
    Config(String),
}
