//! From discovered label sets to scrape targets (Prometheus' `PopulateLabels`).

use std::time::Duration;

use ember_config::PromDuration;
use ember_config::relabel::{self, RelabelConfig};
use ember_config::scrape::ResolvedScrapeConfig;
use ember_model::{Labels, LabelsBuilder};

use crate::discovery::{ADDRESS_LABEL, TargetGroup};

/// `__scheme__`.
pub const SCHEME_LABEL: &str = "__scheme__";
/// `__metrics_path__`.
pub const METRICS_PATH_LABEL: &str = "__metrics_path__";
/// `__scrape_interval__`.
pub const SCRAPE_INTERVAL_LABEL: &str = "__scrape_interval__";
/// `__scrape_timeout__`.
pub const SCRAPE_TIMEOUT_LABEL: &str = "__scrape_timeout__";
/// Prefix of URL parameter labels.
pub const PARAM_LABEL_PREFIX: &str = "__param_";
/// Prefix of discovery metadata labels, removed after relabeling.
pub const META_LABEL_PREFIX: &str = "__meta_";

/// A target to scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The job (scrape pool).
    pub job: String,
    /// Labels before relabeling (`__address__`, `__meta_*`, defaults).
    pub discovered_labels: Labels,
    /// Labels after relabeling, including internal `__` labels (not `__meta_*`).
    pub labels: Labels,
    /// The URL to scrape.
    pub url: String,
    /// Scrape interval (from `__scrape_interval__`).
    pub interval: Duration,
    /// Scrape timeout (from `__scrape_timeout__`).
    pub timeout: Duration,
}

impl Target {
    /// The labels every scraped series gets: the target labels without `__` names.
    pub fn target_labels(&self) -> Labels {
        Labels::from_sorted_unchecked(
            self.labels
                .iter()
                .filter(|l| !l.name.starts_with("__"))
                .cloned()
                .collect(),
        )
    }

    /// A stable identity for the target within its job (labels hash, as Prometheus uses).
    pub fn key(&self) -> String {
        format!("{:016x}", self.labels.stable_hash())
    }
}

/// The result of turning one discovered label set into a target.
#[derive(Debug, Clone, PartialEq)]
pub enum Populated {
    /// Scrape it.
    Active(Target),
    /// Dropped by relabeling (or invalid); the discovered labels are kept for the API.
    Dropped(Labels),
}

/// Builds targets for every discovered label set of `groups`.
pub fn targets_from_groups(
    groups: &[TargetGroup],
    cfg: &ResolvedScrapeConfig,
    relabel_configs: &[RelabelConfig],
) -> Vec<Populated> {
    let mut out = Vec::new();
    for g in groups {
        for t in &g.targets {
            let mut lb = LabelsBuilder::new();
            for (k, v) in &g.labels {
                lb.set(k.as_str(), v.as_str());
            }
            for (k, v) in t {
                lb.set(k.as_str(), v.as_str());
            }
            out.push(populate(lb, cfg, relabel_configs));
        }
    }
    out
}

/// Applies defaults, relabeling and validation to one discovered label set.
pub fn populate(
    mut lb: LabelsBuilder,
    cfg: &ResolvedScrapeConfig,
    relabel_configs: &[RelabelConfig],
) -> Populated {
    let defaults = [
        ("job", cfg.job_name.clone()),
        (
            SCRAPE_INTERVAL_LABEL,
            PromDuration::from_millis(cfg.interval.as_millis() as u64).to_string(),
        ),
        (
            SCRAPE_TIMEOUT_LABEL,
            PromDuration::from_millis(cfg.timeout.as_millis() as u64).to_string(),
        ),
        (METRICS_PATH_LABEL, cfg.metrics_path.clone()),
        (SCHEME_LABEL, cfg.scheme.clone()),
    ];
    for (k, v) in defaults {
        if lb.get(k).is_none() {
            lb.set(k, v);
        }
    }
    for (k, v) in &cfg.params {
        let name = format!("{PARAM_LABEL_PREFIX}{k}");
        if lb.get(&name).is_none()
            && let Some(first) = v.first()
        {
            lb.set(name, first.as_str());
        }
    }
    let discovered = lb.build();
    let Some(relabeled) = relabel::process(&discovered, relabel_configs) else {
        return Populated::Dropped(discovered);
    };
    let Some(address) = relabeled.get(ADDRESS_LABEL).map(str::to_string) else {
        return Populated::Dropped(discovered);
    };
    if address.contains('/') {
        tracing::warn!(job = %cfg.job_name, %address, "invalid target address");
        return Populated::Dropped(discovered);
    }
    let dur = |name: &str, default: Duration| -> Option<Duration> {
        match relabeled.get(name) {
            None => Some(default),
            Some(s) => PromDuration::parse(s).ok().map(|d| d.as_duration()),
        }
    };
    let (Some(interval), Some(timeout)) = (
        dur(SCRAPE_INTERVAL_LABEL, cfg.interval),
        dur(SCRAPE_TIMEOUT_LABEL, cfg.timeout),
    ) else {
        tracing::warn!(job = %cfg.job_name, "invalid __scrape_interval__/__scrape_timeout__ after relabeling");
        return Populated::Dropped(discovered);
    };
    if interval.is_zero() || timeout.is_zero() || timeout > interval {
        return Populated::Dropped(discovered);
    }
    let mut out = relabeled.to_builder();
    out.retain(|l| !l.name.starts_with(META_LABEL_PREFIX));
    if out.get("instance").is_none() {
        out.set("instance", address.clone());
    }
    let labels = out.build();
    let url = build_url(&labels, cfg, &address);
    Populated::Active(Target {
        job: cfg.job_name.clone(),
        discovered_labels: discovered,
        labels,
        url,
        interval,
        timeout,
    })
}

fn build_url(labels: &Labels, cfg: &ResolvedScrapeConfig, address: &str) -> String {
    let scheme = labels.get(SCHEME_LABEL).unwrap_or(&cfg.scheme);
    let path = labels.get(METRICS_PATH_LABEL).unwrap_or(&cfg.metrics_path);
    let mut params: Vec<(String, String)> = Vec::new();
    for (k, vs) in &cfg.params {
        let override_value = labels.get(&format!("{PARAM_LABEL_PREFIX}{k}"));
        match override_value {
            Some(v) => params.push((k.clone(), v.to_string())),
            None => params.extend(vs.iter().map(|v| (k.clone(), v.clone()))),
        }
    }
    for l in labels.iter() {
        if let Some(k) = l.name.strip_prefix(PARAM_LABEL_PREFIX)
            && !cfg.params.contains_key(k)
        {
            params.push((k.to_string(), l.value.clone()));
        }
    }
    let sep = if path.starts_with('/') { "" } else { "/" };
    let mut url = format!("{scheme}://{address}{sep}{path}");
    if !params.is_empty() {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params {
            ser.append_pair(k, v);
        }
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&ser.finish());
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_config::GlobalConfig;
    use ember_config::scrape::ScrapeConfig;
    use std::collections::BTreeMap;

    fn job(yaml: &str) -> (ResolvedScrapeConfig, Vec<RelabelConfig>) {
        let sc: ScrapeConfig = serde_saphyr::from_str(yaml).unwrap();
        (
            sc.resolve(&GlobalConfig::default()).unwrap(),
            sc.relabel_configs,
        )
    }

    #[test]
    fn defaults_instance_url_and_meta_removal() {
        let (cfg, rc) = job("job_name: node\nparams: {module: [a, b]}\nmetrics_path: /probe\n");
        let group = TargetGroup {
            source: "s".into(),
            targets: vec![BTreeMap::from([
                ("__address__".to_string(), "127.0.0.1:9100".to_string()),
                ("__meta_x".to_string(), "y".to_string()),
            ])],
            labels: BTreeMap::from([("env".to_string(), "dev".to_string())]),
        };
        let out = targets_from_groups(&[group], &cfg, &rc);
        let Populated::Active(t) = &out[0] else {
            panic!("dropped")
        };
        assert_eq!(t.url, "http://127.0.0.1:9100/probe?module=a");
        assert_eq!(t.labels.get("__meta_x"), None);
        assert_eq!(t.discovered_labels.get("__meta_x"), Some("y"));
        assert_eq!(t.discovered_labels.get("job"), Some("node"));
        let tl = t.target_labels();
        assert_eq!(
            tl.to_string(),
            r#"{env="dev", instance="127.0.0.1:9100", job="node"}"#
        );
        assert_eq!(
            (t.interval, t.timeout),
            (Duration::from_secs(60), Duration::from_secs(10))
        );
    }

    #[test]
    fn relabeling_drops_and_rewrites() {
        let (cfg, rc) = job(
            "job_name: j\nrelabel_configs:\n  - {source_labels: [__address__], regex: '10\\..*', action: drop}\n  - {source_labels: [__address__], regex: '(.*):.*', target_label: instance}\n  - {target_label: __scheme__, replacement: https}\n",
        );
        let g = TargetGroup {
            source: "s".into(),
            targets: vec![
                BTreeMap::from([("__address__".to_string(), "10.1.2.3:80".to_string())]),
                BTreeMap::from([("__address__".to_string(), "127.0.0.1:8080".to_string())]),
            ],
            labels: BTreeMap::new(),
        };
        let out = targets_from_groups(&[g], &cfg, &rc);
        assert!(matches!(out[0], Populated::Dropped(_)));
        let Populated::Active(t) = &out[1] else {
            panic!("dropped")
        };
        assert_eq!(t.labels.get("instance"), Some("127.0.0.1"));
        assert_eq!(t.url, "https://127.0.0.1:8080/metrics");
    }
}
