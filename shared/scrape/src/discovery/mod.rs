//! Target discovery: `static_configs`, `file_sd_configs` and `ec2_sd_configs`.
//!
//! Each provider returns [`TargetGroup`]s like Prometheus' discovery manager: a list of
//! targets (label sets holding at least `__address__`) plus labels common to the group.
//! Providers cache their last result and only refresh after their `refresh_interval`;
//! a failed refresh keeps the previous groups (as Prometheus does) and reports the error.

pub mod ec2;
pub mod file;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ember_config::scrape::{ScrapeConfig, StaticConfig};

/// The `__address__` label.
pub const ADDRESS_LABEL: &str = "__address__";

/// A group of targets from one source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetGroup {
    /// Where the group came from (for logs and stable ordering).
    pub source: String,
    /// One label set per target (`__address__` plus `__meta_*` labels).
    pub targets: Vec<BTreeMap<String, String>>,
    /// Labels shared by every target of the group (target labels win on conflict).
    pub labels: BTreeMap<String, String>,
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// A file could not be read or parsed.
    #[error("file_sd {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The EC2 API call failed.
    #[error("ec2_sd: {0}")]
    Ec2(String),
}

/// Converts `static_configs` into groups.
pub fn static_groups(configs: &[StaticConfig]) -> Vec<TargetGroup> {
    configs
        .iter()
        .enumerate()
        .map(|(i, sc)| TargetGroup {
            source: i.to_string(),
            targets: sc
                .targets
                .iter()
                .map(|t| BTreeMap::from([(ADDRESS_LABEL.to_string(), t.clone())]))
                .collect(),
            labels: sc.labels.clone(),
        })
        .collect()
}

enum ProviderKind {
    Static(Vec<TargetGroup>),
    File(file::FileProvider),
    Ec2(Box<ec2::Ec2Provider>),
}

/// One discovery mechanism of a job, with its cache.
pub struct Provider {
    kind: ProviderKind,
    refresh: Duration,
    last_refresh: Option<Instant>,
    groups: Vec<TargetGroup>,
    last_error: Option<String>,
}

impl Provider {
    /// Every provider a scrape config names.
    pub fn for_job(cfg: &ScrapeConfig) -> Vec<Provider> {
        let mut out = Vec::new();
        if !cfg.static_configs.is_empty() {
            out.push(Provider::new(
                ProviderKind::Static(static_groups(&cfg.static_configs)),
                Duration::MAX,
            ));
        }
        for f in &cfg.file_sd_configs {
            out.push(Provider::new(
                ProviderKind::File(file::FileProvider::new(f.files.clone())),
                f.refresh_interval.as_duration(),
            ));
        }
        for e in &cfg.ec2_sd_configs {
            out.push(Provider::new(
                ProviderKind::Ec2(Box::new(ec2::Ec2Provider::new(e.clone()))),
                e.refresh_interval.as_duration(),
            ));
        }
        out
    }

    fn new(kind: ProviderKind, refresh: Duration) -> Self {
        Self {
            kind,
            refresh,
            last_refresh: None,
            groups: Vec::new(),
            last_error: None,
        }
    }

    /// The current groups, refreshed first if the refresh interval has passed.
    pub async fn groups(&mut self) -> &[TargetGroup] {
        let due = match self.last_refresh {
            None => true,
            Some(t) => t.elapsed() >= self.refresh,
        };
        if due {
            self.last_refresh = Some(Instant::now());
            let result = match &mut self.kind {
                ProviderKind::Static(groups) => Ok(groups.clone()),
                ProviderKind::File(f) => f.refresh().await,
                ProviderKind::Ec2(e) => e.refresh().await,
            };
            match result {
                Ok(groups) => {
                    self.groups = groups;
                    self.last_error = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "target discovery failed; keeping the previous targets");
                    self.last_error = Some(e.to_string());
                }
            }
        }
        &self.groups
    }

    /// The error of the last refresh, if it failed.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}
