//! Scrape state kept between scrapes and between Lambda invocations: what each target
//! returned last time (for staleness markers), its health for `/api/v1/targets`, and
//! which interval boundary each job last ran for.
//!
//! The whole state is `serde`-serialisable; the scrape Lambda stores it (e.g. as one JSON
//! object in S3 or DynamoDB) after a pass and restores it before the next one with
//! [`crate::ScrapeManager::export_state`] / [`crate::ScrapeManager::import_state`].

use std::collections::BTreeMap;

use ember_model::Labels;
use serde::{Deserialize, Serialize};

/// Version of the serialised layout.
pub const STATE_VERSION: u32 = 1;

/// Health of a target, as `/api/v1/targets` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Last scrape succeeded.
    Up,
    /// Last scrape failed.
    Down,
    /// Not scraped yet.
    #[default]
    Unknown,
}

impl Health {
    /// `up`, `down` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Unknown => "unknown",
        }
    }
}

/// Everything the scraper remembers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScrapeState {
    /// Layout version ([`STATE_VERSION`]).
    #[serde(default)]
    pub version: u32,
    /// Per job (scrape pool).
    #[serde(default)]
    pub jobs: BTreeMap<String, JobState>,
}

impl ScrapeState {
    /// Serialises to JSON.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Restores from JSON; an unknown version gives an empty state (staleness is then
    /// only lost for one pass).
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let s: ScrapeState = serde_json::from_slice(bytes)?;
        if s.version != STATE_VERSION {
            return Ok(ScrapeState {
                version: STATE_VERSION,
                jobs: BTreeMap::new(),
            });
        }
        Ok(s)
    }
}

/// State of one job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    /// The last interval boundary (ms) this job was scraped for.
    #[serde(default)]
    pub last_tick_ms: i64,
    /// Active targets by key.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetState>,
    /// Discovered label sets of the targets relabeling dropped.
    #[serde(default)]
    pub dropped: Vec<BTreeMap<String, String>>,
}

/// State of one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetState {
    /// The URL scraped.
    pub scrape_url: String,
    /// Labels before relabeling.
    pub discovered_labels: BTreeMap<String, String>,
    /// Target labels (no `__` names).
    pub labels: BTreeMap<String, String>,
    /// Labels of the report series (`up`, …) without `__name__`: target + external labels.
    pub report_labels: Labels,
    /// Health of the last scrape.
    pub health: Health,
    /// Error of the last scrape ("" if none).
    pub last_error: String,
    /// Start of the last scrape (ms), 0 if never.
    pub last_scrape_ms: i64,
    /// Duration of the last scrape in seconds.
    pub last_scrape_duration_s: f64,
    /// Scrape interval as Prometheus writes durations (`15s`).
    pub scrape_interval: String,
    /// Scrape timeout (`10s`).
    pub scrape_timeout: String,
    /// Series the last successful scrape wrote that take part in staleness tracking.
    pub series: Vec<Labels>,
    /// Hash of the metadata last stored.
    #[serde(default)]
    pub metadata_hash: u64,
}
