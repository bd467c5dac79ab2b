//! `scrape_configs` entries, as Prometheus reads them (strictly: unknown keys are errors).
//!
//! Values left out fall back the way Prometheus' `ScrapeConfig.Validate` does: interval and
//! limits from `global`, a timeout of `min(global.scrape_timeout, scrape_interval)`, and
//! fixed defaults for the rest. [`ScrapeConfig::resolve`] returns the effective values.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::relabel::RelabelConfig;
use crate::{ConfigError, GlobalConfig, PromDuration};

/// One scrape job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The job name, the value of the `job` label.
    pub job_name: String,
    /// How often to scrape (defaults to `global.scrape_interval`).
    #[serde(default)]
    pub scrape_interval: Option<PromDuration>,
    /// How long a scrape may take (defaults to `global.scrape_timeout`, capped at the interval).
    #[serde(default)]
    pub scrape_timeout: Option<PromDuration>,
    /// Formats to negotiate, in order of preference (Prometheus 3 names, e.g. `OpenMetricsText1.0.0`).
    #[serde(default)]
    pub scrape_protocols: Option<Vec<String>>,
    /// Format to assume when a target sends no or an unknown `Content-Type`.
    #[serde(default)]
    pub fallback_scrape_protocol: Option<String>,
    /// Accepted for compatibility (native histograms are not scraped).
    #[serde(default)]
    pub scrape_classic_histograms: Option<bool>,
    /// Accepted for compatibility (classic histograms are always kept).
    #[serde(default)]
    pub always_scrape_classic_histograms: Option<bool>,
    /// Accepted for compatibility; Ember does not convert classic histograms.
    #[serde(default)]
    pub convert_classic_histograms_to_nhcb: Option<bool>,
    /// Whether to ask for gzip (default true).
    #[serde(default)]
    pub enable_compression: Option<bool>,
    /// The HTTP path (default `/metrics`).
    #[serde(default)]
    pub metrics_path: Option<String>,
    /// `http` (default) or `https`.
    #[serde(default)]
    pub scheme: Option<String>,
    /// URL query parameters.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// Keep the target's labels on conflict instead of renaming them to `exported_*` (default false).
    #[serde(default)]
    pub honor_labels: bool,
    /// Use timestamps the target exposes (default true).
    #[serde(default)]
    pub honor_timestamps: Option<bool>,
    /// Write stale markers for series with explicit timestamps too (default false).
    #[serde(default)]
    pub track_timestamps_staleness: bool,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// The `Authorization` header.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// Deprecated Prometheus spelling of `authorization: {credentials: …}`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Deprecated Prometheus spelling of `authorization: {credentials_file: …}`.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// Not supported by Ember; rejected with a clear message if set.
    #[serde(default)]
    pub oauth2: Option<serde_json::Value>,
    /// TLS settings.
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    /// Follow HTTP redirects (default true).
    #[serde(default)]
    pub follow_redirects: Option<bool>,
    /// Accepted for compatibility (Ember scrapes over HTTP/1.1).
    #[serde(default)]
    pub enable_http2: Option<bool>,
    /// An HTTP proxy for scrapes.
    #[serde(default)]
    pub proxy_url: Option<String>,
    /// Hosts that bypass the proxy (comma-separated).
    #[serde(default)]
    pub no_proxy: Option<String>,
    /// Take the proxy from `HTTP(S)_PROXY`/`NO_PROXY`.
    #[serde(default)]
    pub proxy_from_environment: Option<bool>,
    /// Extra HTTP headers: `name: {values: […], secrets: […], files: […]}`.
    #[serde(default)]
    pub http_headers: BTreeMap<String, HttpHeader>,
    /// Static target groups.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// File-based discovery.
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// EC2 discovery.
    #[serde(default)]
    pub ec2_sd_configs: Vec<Ec2SdConfig>,
    /// Relabeling of discovered targets.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabeling of scraped series.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Maximum uncompressed body size (`10MB`, `1GiB`; 0 = none).
    #[serde(default)]
    pub body_size_limit: Option<String>,
    /// Maximum samples per scrape after metric relabeling (0 = none).
    #[serde(default)]
    pub sample_limit: Option<u64>,
    /// Maximum targets after relabeling (0 = none).
    #[serde(default)]
    pub target_limit: Option<u64>,
    /// Maximum labels per series (0 = none).
    #[serde(default)]
    pub label_limit: Option<u64>,
    /// Maximum label name length (0 = none).
    #[serde(default)]
    pub label_name_length_limit: Option<u64>,
    /// Maximum label value length (0 = none).
    #[serde(default)]
    pub label_value_length_limit: Option<u64>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub native_histogram_bucket_limit: Option<u64>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub native_histogram_min_bucket_factor: Option<f64>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub keep_dropped_targets: Option<u64>,
    /// Accepted for compatibility (`utf8` or `legacy`).
    #[serde(default)]
    pub metric_name_validation_scheme: Option<String>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub metric_name_escaping_scheme: Option<String>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub scrape_failure_log_file: Option<String>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub enable_scrape_metrics: Option<bool>,
}

/// A static target group.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` targets.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels for every target of the group.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `file_sd_configs` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// File globs (`*.json`, `*.yml`, `*.yaml`); the last path component may contain `*`.
    pub files: Vec<String>,
    /// How often to re-read the files (default 5m).
    #[serde(default = "default_file_sd_refresh")]
    pub refresh_interval: PromDuration,
}

fn default_file_sd_refresh() -> PromDuration {
    PromDuration::from_secs(300)
}

/// `ec2_sd_configs` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2SdConfig {
    /// AWS region (default: `AWS_REGION`/`AWS_DEFAULT_REGION`).
    #[serde(default)]
    pub region: Option<String>,
    /// A custom endpoint (`http://127.0.0.1:5000` for moto); `AWS_ENDPOINT_URL` also works.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Static access key (default: `AWS_ACCESS_KEY_ID`).
    #[serde(default)]
    pub access_key: Option<String>,
    /// Static secret key (default: `AWS_SECRET_ACCESS_KEY`).
    #[serde(default)]
    pub secret_key: Option<String>,
    /// Named profile: not supported by Ember (rejected if set).
    #[serde(default)]
    pub profile: Option<String>,
    /// Role to assume: not supported by Ember (rejected if set).
    #[serde(default)]
    pub role_arn: Option<String>,
    /// How often to re-list instances (default 60s).
    #[serde(default = "default_ec2_refresh")]
    pub refresh_interval: PromDuration,
    /// Port for `__address__` (default 80).
    #[serde(default = "default_ec2_port")]
    pub port: u16,
    /// `DescribeInstances` filters.
    #[serde(default)]
    pub filters: Vec<Ec2Filter>,
    /// TLS settings for the EC2 API.
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub follow_redirects: Option<bool>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub enable_http2: Option<bool>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub proxy_url: Option<String>,
}

fn default_ec2_refresh() -> PromDuration {
    PromDuration::from_secs(60)
}

fn default_ec2_port() -> u16 {
    80
}

/// An EC2 `DescribeInstances` filter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Filter {
    /// Filter name (`tag:Name`, `instance-state-name`, …).
    pub name: String,
    /// Accepted values.
    pub values: Vec<String>,
}

/// HTTP basic authentication.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    #[serde(default)]
    pub username: String,
    /// A file holding the user name.
    #[serde(default)]
    pub username_file: Option<String>,
    /// The password.
    #[serde(default)]
    pub password: Option<String>,
    /// A file holding the password (re-read on every scrape, as Prometheus does).
    #[serde(default)]
    pub password_file: Option<String>,
}

/// The `Authorization` header.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The scheme (default `Bearer`).
    #[serde(default, rename = "type")]
    pub auth_type: Option<String>,
    /// The credentials.
    #[serde(default)]
    pub credentials: Option<String>,
    /// A file holding the credentials (re-read on every scrape).
    #[serde(default)]
    pub credentials_file: Option<String>,
}

/// TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate (PEM text).
    #[serde(default)]
    pub ca: Option<String>,
    /// CA certificate file.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Client certificate (PEM text).
    #[serde(default)]
    pub cert: Option<String>,
    /// Client certificate file.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// Client key (PEM text).
    #[serde(default)]
    pub key: Option<String>,
    /// Client key file.
    #[serde(default)]
    pub key_file: Option<String>,
    /// Server name to verify (Ember verifies the URL's host; a different name is rejected).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Skip certificate verification.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Minimum TLS version (`TLS12`, `TLS13`).
    #[serde(default)]
    pub min_version: Option<String>,
    /// Maximum TLS version.
    #[serde(default)]
    pub max_version: Option<String>,
}

/// An extra HTTP header.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHeader {
    /// Plain values.
    #[serde(default)]
    pub values: Vec<String>,
    /// Secret values.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Files whose contents are values.
    #[serde(default)]
    pub files: Vec<String>,
}

/// A scrape job with every default applied.
#[derive(Debug, Clone)]
pub struct ResolvedScrapeConfig {
    /// The job name.
    pub job_name: String,
    /// Scrape interval.
    pub interval: Duration,
    /// Scrape timeout (≤ interval).
    pub timeout: Duration,
    /// `/metrics` unless set.
    pub metrics_path: String,
    /// `http` unless set.
    pub scheme: String,
    /// Query parameters.
    pub params: BTreeMap<String, Vec<String>>,
    /// `honor_labels`.
    pub honor_labels: bool,
    /// `honor_timestamps` (default true).
    pub honor_timestamps: bool,
    /// `track_timestamps_staleness`.
    pub track_timestamps_staleness: bool,
    /// Ask for gzip.
    pub enable_compression: bool,
    /// Follow redirects.
    pub follow_redirects: bool,
    /// Format name to use when the Content-Type is missing or unknown.
    pub fallback_scrape_protocol: Option<String>,
    /// Body size limit in bytes (0 = none).
    pub body_size_limit: u64,
    /// Sample limit (0 = none).
    pub sample_limit: u64,
    /// Target limit (0 = none).
    pub target_limit: u64,
    /// Label count limit (0 = none).
    pub label_limit: u64,
    /// Label name length limit (0 = none).
    pub label_name_length_limit: u64,
    /// Label value length limit (0 = none).
    pub label_value_length_limit: u64,
    /// `global.external_labels`, applied to stored series (series labels win on conflict).
    pub external_labels: BTreeMap<String, String>,
}

impl ScrapeConfig {
    /// A job with only a name and static targets (everything else default).
    pub fn new_static(job_name: &str, targets: &[&str]) -> Self {
        let yaml = serde_json::json!({
            "job_name": job_name,
            "static_configs": [{"targets": targets}],
        });
        // A fixed, valid document: deserialisation cannot fail.
        serde_json::from_value(yaml).unwrap_or_else(|e| unreachable!("static scrape config: {e}"))
    }

    /// The effective settings, with Prometheus' fallbacks to `global` applied and validated.
    pub fn resolve(&self, global: &GlobalConfig) -> Result<ResolvedScrapeConfig, ConfigError> {
        let job = &self.job_name;
        let invalid = |m: String| ConfigError::Invalid(format!("scrape config {job:?}: {m}"));
        if job.is_empty() {
            return Err(ConfigError::Invalid(
                "scrape config has an empty job_name".into(),
            ));
        }
        let interval = self
            .scrape_interval
            .unwrap_or(global.scrape_interval)
            .as_duration();
        if interval.is_zero() {
            return Err(invalid("scrape_interval must be greater than 0".into()));
        }
        let timeout = match self.scrape_timeout {
            Some(t) => {
                if t.as_duration() > interval {
                    return Err(invalid(
                        "scrape timeout greater than scrape interval".into(),
                    ));
                }
                t.as_duration()
            }
            None => global.scrape_timeout.as_duration().min(interval),
        };
        let scheme = self.scheme.clone().unwrap_or_else(|| "http".into());
        if scheme != "http" && scheme != "https" {
            return Err(invalid(format!(
                "invalid scheme {scheme:?}: must be http or https"
            )));
        }
        let metrics_path = self
            .metrics_path
            .clone()
            .unwrap_or_else(|| "/metrics".into());
        if self.oauth2.is_some() {
            return Err(invalid("oauth2 is not supported by Ember".into()));
        }
        if self.basic_auth.is_some()
            && (self.authorization.is_some()
                || self.bearer_token.is_some()
                || self.bearer_token_file.is_some())
        {
            return Err(invalid("at most one of basic_auth, authorization and bearer_token(_file) must be configured".into()));
        }
        if self.authorization.is_some()
            && (self.bearer_token.is_some() || self.bearer_token_file.is_some())
        {
            return Err(invalid(
                "at most one of authorization and bearer_token(_file) must be configured".into(),
            ));
        }
        if let Some(a) = &self.authorization {
            if a.credentials.is_some() && a.credentials_file.is_some() {
                return Err(invalid("at most one of authorization credentials and credentials_file must be configured".into()));
            }
            if a.auth_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("basic"))
            {
                return Err(invalid(
                    "authorization type cannot be set to \"basic\", use \"basic_auth\" instead"
                        .into(),
                ));
            }
        }
        if let Some(b) = &self.basic_auth {
            if b.password.is_some() && b.password_file.is_some() {
                return Err(invalid(
                    "at most one of basic_auth password and password_file must be configured"
                        .into(),
                ));
            }
            if !b.username.is_empty() && b.username_file.is_some() {
                return Err(invalid(
                    "at most one of basic_auth username and username_file must be configured"
                        .into(),
                ));
            }
        }
        for (i, r) in self
            .relabel_configs
            .iter()
            .chain(&self.metric_relabel_configs)
            .enumerate()
        {
            r.validate()
                .map_err(|e| invalid(format!("relabel step {i}: {e}")))?;
        }
        if let Some(p) = &self.fallback_scrape_protocol
            && !matches!(
                p.as_str(),
                "PrometheusText0.0.4"
                    | "PrometheusText1.0.0"
                    | "OpenMetricsText0.0.1"
                    | "OpenMetricsText1.0.0"
            )
        {
            return Err(invalid(format!(
                "unsupported fallback_scrape_protocol {p:?}"
            )));
        }
        for ec2 in &self.ec2_sd_configs {
            if ec2.profile.is_some() || ec2.role_arn.is_some() {
                return Err(invalid("ec2_sd_configs: profile and role_arn are not supported; use environment credentials".into()));
            }
        }
        for f in &self.file_sd_configs {
            for pat in &f.files {
                let ok = [".json", ".yml", ".yaml"]
                    .iter()
                    .any(|ext| pat.ends_with(ext));
                if !ok {
                    return Err(invalid(format!(
                        "file_sd_configs: path {pat:?} is not a valid file path (json, yml or yaml)"
                    )));
                }
            }
        }
        let limit =
            |own: Option<u64>, global: Option<u64>| own.filter(|v| *v != 0).or(global).unwrap_or(0);
        let body = match self
            .body_size_limit
            .as_deref()
            .or(global.body_size_limit.as_deref())
        {
            Some(s) => parse_bytes(s).map_err(invalid)?,
            None => 0,
        };
        Ok(ResolvedScrapeConfig {
            job_name: self.job_name.clone(),
            interval,
            timeout,
            metrics_path,
            scheme,
            params: self.params.clone(),
            honor_labels: self.honor_labels,
            honor_timestamps: self.honor_timestamps.unwrap_or(true),
            track_timestamps_staleness: self.track_timestamps_staleness,
            enable_compression: self.enable_compression.unwrap_or(true),
            follow_redirects: self.follow_redirects.unwrap_or(true),
            fallback_scrape_protocol: self.fallback_scrape_protocol.clone(),
            body_size_limit: body,
            sample_limit: limit(self.sample_limit, global.sample_limit),
            target_limit: limit(self.target_limit, global.target_limit),
            label_limit: limit(self.label_limit, global.label_limit),
            label_name_length_limit: limit(
                self.label_name_length_limit,
                global.label_name_length_limit,
            ),
            label_value_length_limit: limit(
                self.label_value_length_limit,
                global.label_value_length_limit,
            ),
            external_labels: global.external_labels.clone(),
        })
    }
}

/// Parses a byte size the way Prometheus' `units.ParseBase2Bytes` does (`512`, `10MB`,
/// `1GiB`, `1KB` = 1024 bytes).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() || s == "0" {
        return Ok(0);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid byte size {s:?}"))?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KB" | "KiB" => 1 << 10,
        "MB" | "MiB" => 1 << 20,
        "GB" | "GiB" => 1 << 30,
        "TB" | "TiB" => 1 << 40,
        "PB" | "PiB" => 1 << 50,
        "EB" | "EiB" => 1 << 60,
        _ => return Err(format!("invalid byte size {s:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("byte size {s:?} out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use std::path::Path;

    const FULL: &str = r#"
global:
  scrape_interval: 30s
  scrape_timeout: 20s
  external_labels: {cluster: eu1}
  sample_limit: 5000
scrape_configs:
  - job_name: spring
    scrape_interval: 15s
    metrics_path: /actuator/prometheus
    scheme: https
    params: {module: [http_2xx]}
    honor_labels: true
    honor_timestamps: false
    basic_auth: {username: u, password_file: /etc/pw}
    tls_config: {ca_file: /etc/ca.pem, cert_file: /etc/c.pem, key_file: /etc/k.pem, insecure_skip_verify: true}
    body_size_limit: 10MB
    label_limit: 30
    label_name_length_limit: 100
    label_value_length_limit: 200
    static_configs:
      - targets: ['127.0.0.1:8080']
        labels: {team: shop}
    relabel_configs:
      - source_labels: [__address__]
        target_label: instance
        regex: '([^:]+):.*'
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'jvm_.*'
        action: drop
  - job_name: app
    authorization: {credentials_file: /etc/token}
    file_sd_configs:
      - files: ['/etc/ember/targets/*.json']
        refresh_interval: 1m
    ec2_sd_configs:
      - region: us-east-1
        endpoint: http://127.0.0.1:5000
        port: 9100
        filters: [{name: 'tag:prometheus', values: [scrape]}]
"#;

    #[test]
    fn full_job_parses_and_resolves_with_global_fallbacks() {
        let cfg = Config::from_yaml(FULL, Path::new("p.yml")).unwrap();
        let spring = cfg.scrape_configs[0].resolve(&cfg.global).unwrap();
        assert_eq!(spring.interval, Duration::from_secs(15));
        assert_eq!(
            spring.timeout,
            Duration::from_secs(15),
            "global timeout capped at the interval"
        );
        assert_eq!(spring.metrics_path, "/actuator/prometheus");
        assert_eq!(spring.scheme, "https");
        assert!(spring.honor_labels && !spring.honor_timestamps);
        assert_eq!(spring.body_size_limit, 10 << 20);
        assert_eq!(
            spring.sample_limit, 5000,
            "sample_limit falls back to global"
        );
        assert_eq!(
            (
                spring.label_limit,
                spring.label_name_length_limit,
                spring.label_value_length_limit
            ),
            (30, 100, 200)
        );
        assert_eq!(
            spring.external_labels.get("cluster").map(String::as_str),
            Some("eu1")
        );
        let app = cfg.scrape_configs[1].resolve(&cfg.global).unwrap();
        assert_eq!(
            (app.interval, app.timeout),
            (Duration::from_secs(30), Duration::from_secs(20))
        );
        assert_eq!(app.metrics_path, "/metrics");
        assert!(app.honor_timestamps && app.enable_compression);
        let ec2 = &cfg.scrape_configs[1].ec2_sd_configs[0];
        assert_eq!((ec2.port, ec2.refresh_interval.as_millis()), (9100, 60_000));
        assert_eq!(
            cfg.scrape_configs[1].file_sd_configs[0]
                .refresh_interval
                .as_millis(),
            60_000
        );
    }

    #[test]
    fn invalid_jobs_are_rejected() {
        let global = GlobalConfig::default();
        let job = |yaml: &str| -> Result<ResolvedScrapeConfig, ConfigError> {
            let sc: ScrapeConfig =
                serde_saphyr::from_str(yaml).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            sc.resolve(&global)
        };
        assert!(job("job_name: a\nscrape_interval: 10s\nscrape_timeout: 20s\n").is_err());
        assert!(job("job_name: a\nscheme: ftp\n").is_err());
        assert!(
            job("job_name: a\nkubernetes_sd_configs: []\n").is_err(),
            "unknown keys are errors"
        );
        assert!(
            job("job_name: a\nbasic_auth: {username: u}\nauthorization: {credentials: t}\n")
                .is_err()
        );
        assert!(
            job("job_name: a\nrelabel_configs: [{action: hashmod, target_label: x}]\n").is_err()
        );
        assert!(job("job_name: a\nbody_size_limit: 10XB\n").is_err());
        assert!(job("job_name: a\nfile_sd_configs: [{files: [targets.txt]}]\n").is_err());
        let ok = job("job_name: a\n").unwrap();
        assert_eq!(
            (ok.interval, ok.timeout),
            (Duration::from_secs(60), Duration::from_secs(10))
        );
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert_eq!(parse_bytes("1KB").unwrap(), 1024);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert!(parse_bytes("1.5MB").is_err());
    }

    #[test]
    fn new_static_builds_a_job() {
        let sc = ScrapeConfig::new_static("ember", &["127.0.0.1:9090"]);
        assert_eq!(
            sc.static_configs[0].targets,
            vec!["127.0.0.1:9090".to_string()]
        );
        assert!(sc.resolve(&GlobalConfig::default()).is_ok());
    }
}
