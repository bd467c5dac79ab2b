//! The `ember.cloudwatch` section: which CloudWatch metrics to import, in the spirit of
//! YACE's jobs and the CloudWatch exporter's `metrics` list (see `docs/CLOUDWATCH.md`).
//!
//! ```yaml
//! ember:
//!   cloudwatch:
//!     jobs:
//!       - name: rds
//!         regions: [eu-west-1]
//!         namespace: AWS/RDS
//!         period: 5m            # CloudWatch aggregation period (default 5m)
//!         length: 10m           # window asked for on each pass (default 2 × period)
//!         delay: 2m             # leave the newest, still-filling minutes out (default 2m)
//!         statistics: [Average, Maximum]
//!         metrics:
//!           - name: CPUUtilization
//!           - name: FreeableMemory
//!             statistics: [Minimum]
//!         dimension_filters:    # discovery with ListMetrics
//!           - name: DBInstanceIdentifier
//!             regex: "prod-.*"
//!         labels: {team: db}
//! ```
//!
//! Exact dimensions (`dimensions: [{DBInstanceIdentifier: db-1}]`) skip `ListMetrics`.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::{ConfigError, PromDuration};

/// The `ember.cloudwatch` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchConfig {
    /// Import jobs; none means no CloudWatch import.
    #[serde(default)]
    pub jobs: Vec<CloudWatchJob>,
}

/// One import job: one namespace, its metrics, the regions to read them from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchJob {
    /// Unique job name; keys the job's import state.
    pub name: String,
    /// Regions to read from (each region is queried separately).
    pub regions: Vec<String>,
    /// CloudWatch namespace, e.g. `AWS/RDS`, `AWS/Lambda` or a custom one.
    pub namespace: String,
    /// A role to assume (sts:AssumeRole) before calling CloudWatch, e.g. in another account.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// The external id the role's trust policy asks for, if any.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Aggregation period of the datapoints (default 5m). 1s, 5s, 10s, 20s, 30s or a
    /// multiple of 60s, as CloudWatch allows.
    #[serde(default)]
    pub period: Option<PromDuration>,
    /// How far back each pass asks (default 2 × period). Overlaps between passes are
    /// de-duplicated, and GetMetricData is billed per metric, not per datapoint.
    #[serde(default)]
    pub length: Option<PromDuration>,
    /// How far the window's end stays behind now, so still-filling periods are not read
    /// (default 2m).
    #[serde(default)]
    pub delay: Option<PromDuration>,
    /// How often the job runs (default: the shortest period): `ember serve` at interval
    /// boundaries, the Lambda function on its first invocation in each interval slot.
    #[serde(default)]
    pub interval: Option<PromDuration>,
    /// Statistics for metrics that name none (default `[Average]`).
    #[serde(default)]
    pub statistics: Option<Vec<String>>,
    /// The metrics to import.
    pub metrics: Vec<CloudWatchMetric>,
    /// Exact dimension sets (name → value). When given, `ListMetrics` is not called.
    #[serde(default)]
    pub dimensions: Vec<BTreeMap<String, String>>,
    /// Discovery: the dimension names a series must have (exactly), each with an optional
    /// exact value or anchored regex. Empty (and no `dimensions`): every listed series.
    #[serde(default)]
    pub dimension_filters: Vec<DimensionFilter>,
    /// Discover only series with datapoints in the last three hours (ListMetrics
    /// `RecentlyActive=PT3H`), which leaves out long-gone resources (default true).
    #[serde(default)]
    pub recently_active: Option<bool>,
    /// Static labels added to every imported series.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One metric of a job, with optional per-metric overrides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchMetric {
    /// The CloudWatch metric name, e.g. `CPUUtilization`.
    pub name: String,
    /// Statistics for this metric (default: the job's).
    #[serde(default)]
    pub statistics: Option<Vec<String>>,
    /// Period override.
    #[serde(default)]
    pub period: Option<PromDuration>,
    /// Length override.
    #[serde(default)]
    pub length: Option<PromDuration>,
    /// Delay override.
    #[serde(default)]
    pub delay: Option<PromDuration>,
}

/// A dimension a discovered series must carry, optionally with a value constraint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DimensionFilter {
    /// The dimension name, e.g. `DBInstanceIdentifier`.
    pub name: String,
    /// An exact value (passed to ListMetrics, so CloudWatch filters server-side).
    #[serde(default)]
    pub value: Option<String>,
    /// An anchored regular expression the value must match (filtered client-side).
    #[serde(default)]
    pub regex: Option<String>,
}

/// The default delay: most AWS metrics land in CloudWatch within two minutes, and a
/// datapoint imported before its period is complete would stay incomplete (the watermark
/// skips it when it is read again).
pub const DEFAULT_DELAY_SECS: u64 = 120;

/// The default aggregation period.
pub const DEFAULT_PERIOD_SECS: u64 = 300;

/// A metric of a job with every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMetric {
    /// CloudWatch metric name.
    pub name: String,
    /// Statistics to request.
    pub statistics: Vec<String>,
    /// Period in seconds.
    pub period_secs: u64,
    /// Window length in seconds.
    pub length_secs: u64,
    /// Delay in seconds.
    pub delay_secs: u64,
}

impl CloudWatchJob {
    /// The job's metrics with the job's defaults applied.
    pub fn resolved_metrics(&self) -> Vec<ResolvedMetric> {
        let job_stats = self
            .statistics
            .clone()
            .unwrap_or_else(|| vec!["Average".to_string()]);
        self.metrics
            .iter()
            .map(|m| {
                let period = m
                    .period
                    .or(self.period)
                    .map(|d| d.as_duration().as_secs())
                    .unwrap_or(DEFAULT_PERIOD_SECS);
                let length = m
                    .length
                    .or(self.length)
                    .map(|d| d.as_duration().as_secs())
                    .unwrap_or(2 * period);
                let delay = m
                    .delay
                    .or(self.delay)
                    .map(|d| d.as_duration().as_secs())
                    .unwrap_or(DEFAULT_DELAY_SECS);
                ResolvedMetric {
                    name: m.name.clone(),
                    statistics: m.statistics.clone().unwrap_or_else(|| job_stats.clone()),
                    period_secs: period,
                    length_secs: length,
                    delay_secs: delay,
                }
            })
            .collect()
    }

    /// How often `ember serve` runs this job: `interval`, else the shortest metric period.
    pub fn run_interval_secs(&self) -> u64 {
        if let Some(i) = self.interval {
            return i.as_duration().as_secs().max(1);
        }
        self.resolved_metrics()
            .iter()
            .map(|m| m.period_secs)
            .min()
            .unwrap_or(DEFAULT_PERIOD_SECS)
            .max(1)
    }

    /// Whether discovery only lists recently active series.
    pub fn recently_active(&self) -> bool {
        self.recently_active.unwrap_or(true)
    }
}

/// Whether `s` is a statistic GetMetricData accepts here: `Average`, `Sum`, `Minimum`,
/// `Maximum`, `SampleCount`, or a percentile `pNN` / `pNN.N…` (0–100).
pub fn is_valid_statistic(s: &str) -> bool {
    match s {
        "Average" | "Sum" | "Minimum" | "Maximum" | "SampleCount" => true,
        _ => {
            let Some(rest) = s.strip_prefix('p') else {
                return false;
            };
            let (int, frac) = match rest.split_once('.') {
                Some((i, f)) => (i, Some(f)),
                None => (rest, None),
            };
            let int_ok =
                !int.is_empty() && int.len() <= 3 && int.bytes().all(|b| b.is_ascii_digit());
            let frac_ok =
                frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
            int_ok
                && frac_ok
                && rest
                    .parse::<f64>()
                    .is_ok_and(|v| (0.0..=100.0).contains(&v))
        }
    }
}

/// Whether CloudWatch accepts `secs` as a GetMetricData period.
pub fn is_valid_period(secs: u64) -> bool {
    matches!(secs, 1 | 5 | 10 | 20 | 30) || (secs >= 60 && secs.is_multiple_of(60))
}

impl CloudWatchConfig {
    /// Checks names, statistics, periods and filters so mistakes surface at load time.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = HashSet::new();
        for job in &self.jobs {
            let bad =
                |msg: String| ConfigError::Invalid(format!("cloudwatch job {:?}: {msg}", job.name));
            if job.name.is_empty() {
                return Err(ConfigError::Invalid("cloudwatch job without a name".into()));
            }
            if !names.insert(job.name.as_str()) {
                return Err(bad("duplicate job name".into()));
            }
            if job.regions.is_empty() || job.regions.iter().any(|r| r.is_empty()) {
                return Err(bad("needs at least one region".into()));
            }
            if job.namespace.is_empty() {
                return Err(bad("needs a namespace".into()));
            }
            if job.metrics.is_empty() {
                return Err(bad("needs at least one metric".into()));
            }
            if let Some(role) = &job.role_arn
                && !role.starts_with("arn:")
            {
                return Err(bad(format!("role_arn {role:?} is not an ARN")));
            }
            if !job.dimensions.is_empty() && !job.dimension_filters.is_empty() {
                return Err(bad(
                    "give either exact dimensions or dimension_filters (discovery), not both"
                        .into(),
                ));
            }
            if job.dimensions.iter().any(|d| d.len() > 30) {
                return Err(bad(
                    "CloudWatch allows at most 30 dimensions per metric".into()
                ));
            }
            let mut filter_names = HashSet::new();
            for f in &job.dimension_filters {
                if f.name.is_empty() || !filter_names.insert(f.name.as_str()) {
                    return Err(bad(format!(
                        "dimension filter name {:?} empty or repeated",
                        f.name
                    )));
                }
                if f.value.is_some() && f.regex.is_some() {
                    return Err(bad(format!(
                        "dimension filter {:?}: value and regex are exclusive",
                        f.name
                    )));
                }
                if let Some(re) = &f.regex {
                    regex::Regex::new(&format!("^(?:{re})$")).map_err(|e| {
                        bad(format!("dimension filter {:?}: bad regex: {e}", f.name))
                    })?;
                }
            }
            for m in job.resolved_metrics() {
                if m.name.is_empty() {
                    return Err(bad("metric without a name".into()));
                }
                if m.statistics.is_empty() {
                    return Err(bad(format!("metric {}: no statistics", m.name)));
                }
                if let Some(s) = m.statistics.iter().find(|s| !is_valid_statistic(s)) {
                    return Err(bad(format!(
                        "metric {}: unknown statistic {s:?} (Average, Sum, Minimum, Maximum, SampleCount or pNN)",
                        m.name
                    )));
                }
                if !is_valid_period(m.period_secs) {
                    return Err(bad(format!(
                        "metric {}: period {}s is not 1, 5, 10, 20, 30 or a multiple of 60 seconds",
                        m.name, m.period_secs
                    )));
                }
                if m.length_secs < m.period_secs {
                    return Err(bad(format!(
                        "metric {}: length is shorter than period",
                        m.name
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CloudWatchConfig, ConfigError> {
        let cfg: CloudWatchConfig =
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    #[test]
    fn defaults_and_overrides_resolve() {
        let cfg = parse(
            r#"
jobs:
  - name: rds
    regions: [eu-west-1, us-east-1]
    namespace: AWS/RDS
    statistics: [Average, p99.9]
    delay: 2m
    metrics:
      - name: CPUUtilization
      - name: FreeableMemory
        statistics: [Minimum]
        period: 1m
    dimension_filters:
      - name: DBInstanceIdentifier
        regex: "prod-.*"
    labels: {team: db}
"#,
        )
        .unwrap();
        let job = &cfg.jobs[0];
        let m = job.resolved_metrics();
        assert_eq!(m[0].statistics, vec!["Average", "p99.9"]);
        assert_eq!(
            (m[0].period_secs, m[0].length_secs, m[0].delay_secs),
            (300, 600, 120)
        );
        assert_eq!(m[1].statistics, vec!["Minimum"]);
        assert_eq!((m[1].period_secs, m[1].length_secs), (60, 120));
        assert_eq!(job.run_interval_secs(), 60);
        assert!(job.recently_active());
    }

    #[test]
    fn rejects_mistakes() {
        let base = "jobs:\n  - name: a\n    regions: [us-east-1]\n    namespace: AWS/EC2\n";
        let metrics = "    metrics: [{name: CPUUtilization}]\n";
        assert!(parse(&format!("{base}{metrics}")).is_ok());
        // unknown statistic, bad period, unknown key, both dimension kinds, bad regex, no region
        assert!(parse(&format!("{base}    statistics: [Median]\n{metrics}")).is_err());
        assert!(parse(&format!("{base}    period: 90s\n{metrics}")).is_err());
        assert!(parse(&format!("{base}    perod: 60s\n{metrics}")).is_err());
        assert!(
            parse(&format!(
                "{base}{metrics}    dimensions: [{{InstanceId: i-1}}]\n    dimension_filters: [{{name: InstanceId}}]\n"
            ))
            .is_err()
        );
        assert!(
            parse(&format!(
                "{base}{metrics}    dimension_filters: [{{name: X, regex: \"(\"}}]\n"
            ))
            .is_err()
        );
        assert!(parse(&format!("{base}    length: 1m\n{metrics}")).is_err());
        assert!(
            parse("jobs:\n  - name: a\n    regions: []\n    namespace: AWS/EC2\n    metrics: [{name: X}]\n")
                .is_err()
        );
        assert!(
            parse(&format!(
                "{base}{metrics}{}",
                base.replace("jobs:\n", "") + metrics
            ))
            .is_err()
        );
    }

    #[test]
    fn statistics_and_periods() {
        for ok in [
            "Average",
            "Sum",
            "Minimum",
            "Maximum",
            "SampleCount",
            "p99",
            "p99.9",
            "p50",
            "p0",
            "p100",
        ] {
            assert!(is_valid_statistic(ok), "{ok}");
        }
        for bad in [
            "average", "p", "p101", "p9.", "p.9", "pxx", "tm99", "p99.9.9",
        ] {
            assert!(!is_valid_statistic(bad), "{bad}");
        }
        assert!(is_valid_period(1) && is_valid_period(60) && is_valid_period(3600));
        assert!(!is_valid_period(0) && !is_valid_period(45) && !is_valid_period(90));
    }
}
