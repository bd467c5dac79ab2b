//! Ember's configuration file: Prometheus' `prometheus.yml` shape, unchanged, plus an
//! `ember:` section for what Prometheus has no word for (storage backend, tenants, auth).
//!
//! Like Prometheus (go-yaml strict mode) unknown keys are errors, so typos surface at load.

pub mod cloudwatch;
pub mod duration;
pub mod relabel;
pub mod scrape;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use duration::PromDuration;
pub use scrape::ScrapeConfig;

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML is malformed or does not fit the schema (message carries line and column).
    #[error("parsing config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The YAML parsed but a value is not allowed.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Defaults for scraping and rule evaluation.
    #[serde(default)]
    pub global: GlobalConfig,
    /// Scrape jobs, as in Prometheus.
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Rule file globs, as in Prometheus.
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// Alertmanager settings, as in Prometheus (interpreted by the rules crate).
    #[serde(default)]
    pub alerting: Option<serde_saphyr_value::Value>,
    /// Prometheus' remote_write/remote_read and storage sections are accepted so an
    /// existing prometheus.yml loads unchanged; Ember does not act on them.
    #[serde(default)]
    pub remote_write: Option<serde_saphyr_value::Value>,
    /// See `remote_write`.
    #[serde(default)]
    pub remote_read: Option<serde_saphyr_value::Value>,
    /// See `remote_write`.
    #[serde(default)]
    pub storage: Option<serde_saphyr_value::Value>,
    /// Ember's own settings.
    #[serde(default)]
    pub ember: EmberConfig,
}

/// Opaque YAML values for sections another crate interprets.
pub mod serde_saphyr_value {
    /// Any YAML value, kept for later interpretation.
    pub type Value = serde_json::Value;
}

/// Prometheus' `global` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Default scrape interval (Prometheus: 1m).
    #[serde(default = "default_scrape_interval")]
    pub scrape_interval: PromDuration,
    /// Default scrape timeout (Prometheus: 10s).
    #[serde(default = "default_scrape_timeout")]
    pub scrape_timeout: PromDuration,
    /// Default rule evaluation interval (Prometheus: 1m).
    #[serde(default = "default_scrape_interval")]
    pub evaluation_interval: PromDuration,
    /// Default rule query offset.
    #[serde(default)]
    pub rule_query_offset: Option<PromDuration>,
    /// Labels added to every scraped series and alert.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// Accepted for compatibility; see Prometheus' docs.
    #[serde(default)]
    pub query_log_file: Option<String>,
    /// Default per-scrape limits, as in Prometheus.
    #[serde(default)]
    pub body_size_limit: Option<String>,
    /// Default sample limit.
    #[serde(default)]
    pub sample_limit: Option<u64>,
    /// Default label limit.
    #[serde(default)]
    pub label_limit: Option<u64>,
    /// Default label-name length limit.
    #[serde(default)]
    pub label_name_length_limit: Option<u64>,
    /// Default label-value length limit.
    #[serde(default)]
    pub label_value_length_limit: Option<u64>,
    /// Default target limit.
    #[serde(default)]
    pub target_limit: Option<u64>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub scrape_protocols: Option<Vec<String>>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        Self {
            scrape_interval: default_scrape_interval(),
            scrape_timeout: default_scrape_timeout(),
            evaluation_interval: default_scrape_interval(),
            rule_query_offset: None,
            external_labels: BTreeMap::new(),
            query_log_file: None,
            body_size_limit: None,
            sample_limit: None,
            label_limit: None,
            label_name_length_limit: None,
            label_value_length_limit: None,
            target_limit: None,
            scrape_protocols: None,
        }
    }
}

fn default_scrape_interval() -> PromDuration {
    PromDuration::from_secs(60)
}

fn default_scrape_timeout() -> PromDuration {
    PromDuration::from_secs(10)
}

/// The `ember:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmberConfig {
    /// Storage backend settings.
    #[serde(default)]
    pub storage: StorageConfig,
    /// CloudWatch metrics import jobs (see `cloudwatch`).
    #[serde(default)]
    pub cloudwatch: cloudwatch::CloudWatchConfig,
}

/// Which storage backend to run on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `local` (embedded, the default) or `aws` (DynamoDB + S3).
    #[serde(default)]
    pub backend: Option<String>,
    /// DynamoDB table name (aws backend).
    #[serde(default)]
    pub table: Option<String>,
    /// S3 bucket name (aws backend).
    #[serde(default)]
    pub bucket: Option<String>,
    /// How long to keep data (e.g. `15d`); unset keeps everything.
    #[serde(default)]
    pub retention: Option<PromDuration>,
    /// Create the DynamoDB table and S3 bucket when missing (development and tests).
    #[serde(default)]
    pub create_resources: Option<bool>,
}

impl Config {
    /// Parses a configuration from YAML text; `path` only names the source in errors.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: Config = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text, path)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.ember.cloudwatch.validate()?;
        let mut seen = std::collections::HashSet::new();
        for sc in &self.scrape_configs {
            if !seen.insert(sc.job_name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "found multiple scrape configs with job name {:?}",
                    sc.job_name
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_yaml_with_merge_keys() {
        let text = r#"
global:
  scrape_interval: 15s
  external_labels: {region: eu}
common: &common
  env: prod
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["127.0.0.1:9100"]
        labels: { <<: *common, role: node }
"#;
        // `common` is not a Prometheus key: strict parsing must reject it.
        assert!(Config::from_yaml(text, Path::new("x.yml")).is_err());
        let ok = text.replace("common: &common\n  env: prod\n", "");
        let ok = ok.replace("<<: *common, ", "");
        let cfg = Config::from_yaml(&ok, Path::new("x.yml")).unwrap();
        assert_eq!(cfg.global.scrape_interval.as_millis(), 15_000);
        assert_eq!(cfg.scrape_configs[0].job_name, "node");
    }

    #[test]
    fn duplicate_job_names_are_rejected() {
        let text = "scrape_configs:\n  - job_name: a\n  - job_name: a\n";
        assert!(matches!(
            Config::from_yaml(text, Path::new("x")),
            Err(ConfigError::Invalid(_))
        ));
    }
}
