//! Sending alerts to Alertmanager (`POST /api/v2/alerts`), as Prometheus' notifier does.

use std::collections::BTreeMap;
use std::time::Duration;

use ember_config::PromDuration;
use ember_config::relabel::{self, RelabelConfig};
use ember_model::Labels;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RulesError};

/// One alert as Alertmanager's API v2 takes it (`postableAlert`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// Labels (external labels added, relabeled).
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 start time (when the alert fired).
    pub starts_at: String,
    /// RFC 3339 end time: resolved time, or now + 4 × max(resend delay, interval).
    pub ends_at: String,
    /// Link back to the expression.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// A destination of alerts other than Alertmanager (Ember's built-in notifier): the
/// [`crate::RuleManager`] hands it every alert it would post to Alertmanager.
#[async_trait::async_trait]
pub trait AlertSink: Send + Sync {
    /// Takes alerts prepared as for Alertmanager (external labels added, relabeled).
    async fn send(&self, alerts: Vec<PostableAlert>);
}

/// `alerting:` as Prometheus writes it (only what the notifier uses).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AlertingConfig {
    /// Relabeling applied to every alert before sending.
    #[serde(default)]
    pub alert_relabel_configs: Vec<RelabelConfig>,
    /// The Alertmanagers; every alert goes to each of them.
    #[serde(default)]
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

/// One `alerting.alertmanagers[]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct AlertmanagerConfig {
    /// `http` (default) or `https`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Prefix of the API path (`/am` → `/am/api/v2/alerts`).
    #[serde(default)]
    pub path_prefix: String,
    /// Request timeout (default 10s).
    #[serde(default)]
    pub timeout: Option<PromDuration>,
    /// Only `v2` is supported (Alertmanager removed v1).
    #[serde(default)]
    pub api_version: Option<String>,
    /// Static targets.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// Basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization` header.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// Deprecated spelling of a bearer token.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Relabeling of this Alertmanager's alerts (after the global one).
    #[serde(default)]
    pub alert_relabel_configs: Vec<RelabelConfig>,
    /// Everything else (service discovery, TLS, proxies…): rejected when it would change where
    /// or how alerts are sent, so a config never silently sends nothing.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

fn default_scheme() -> String {
    "http".into()
}

/// `static_configs[]`.
#[derive(Debug, Clone, Deserialize)]
pub struct StaticConfig {
    /// `host:port` targets.
    #[serde(default)]
    pub targets: Vec<String>,
}

/// `basic_auth`.
#[derive(Debug, Clone, Deserialize)]
pub struct BasicAuth {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the password.
    #[serde(default)]
    pub password_file: Option<String>,
}

/// `authorization`.
#[derive(Debug, Clone, Deserialize)]
pub struct Authorization {
    /// Scheme (default `Bearer`).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Credentials.
    #[serde(default)]
    pub credentials: Option<String>,
    /// File holding the credentials.
    #[serde(default)]
    pub credentials_file: Option<String>,
}

impl AlertingConfig {
    /// Parses the raw `alerting` section of the configuration.
    pub fn from_value(v: &serde_json::Value) -> Result<Self> {
        let cfg: AlertingConfig = serde_json::from_value(v.clone())
            .map_err(|e| RulesError::AlertingConfig(e.to_string()))?;
        for am in &cfg.alertmanagers {
            if let Some(v) = &am.api_version
                && v != "v2"
            {
                return Err(RulesError::AlertingConfig(format!(
                    "api_version {v:?} is not supported (only v2)"
                )));
            }
            for k in am.other.keys() {
                let harmless = matches!(
                    k.as_str(),
                    "relabel_configs" | "follow_redirects" | "enable_http2"
                );
                if !harmless {
                    return Err(RulesError::AlertingConfig(format!(
                        "alertmanagers: {k:?} is not supported (use static_configs)"
                    )));
                }
            }
            if am.scheme != "http" && am.scheme != "https" {
                return Err(RulesError::AlertingConfig(format!(
                    "unknown scheme {:?}",
                    am.scheme
                )));
            }
        }
        for r in cfg.alert_relabel_configs.iter().chain(
            cfg.alertmanagers
                .iter()
                .flat_map(|a| a.alert_relabel_configs.iter()),
        ) {
            r.validate().map_err(|e| {
                RulesError::AlertingConfig(format!(
                    "alert_relabel_configs: {}: {}",
                    e.action, e.message
                ))
            })?;
        }
        Ok(cfg)
    }
}

/// One resolved Alertmanager endpoint.
#[derive(Debug, Clone)]
struct Endpoint {
    url: String,
    auth: Option<String>,
    timeout: Duration,
    relabel: Vec<RelabelConfig>,
}

/// Sends alerts to every configured Alertmanager. Failures are logged and counted, not retried:
/// the next resend covers them (as in Prometheus).
#[derive(Debug, Clone)]
pub struct Notifier {
    client: reqwest::Client,
    endpoints: Vec<Endpoint>,
    relabel: Vec<RelabelConfig>,
    external_labels: BTreeMap<String, String>,
    batch_size: usize,
}

/// What one send did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Alerts handed in (after relabeling dropped some).
    pub alerts: usize,
    /// Successful POSTs.
    pub ok: usize,
    /// Failed POSTs, with reasons.
    pub errors: Vec<String>,
    /// Per Alertmanager URL: alerts sent (attempted, as Prometheus counts them) and
    /// failed POSTs — what `prometheus_notifications_{sent,errors}_total` add up.
    pub per_alertmanager: Vec<(String, usize, usize)>,
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        o.push(T[(n >> 18) as usize & 63] as char);
        o.push(T[(n >> 12) as usize & 63] as char);
        o.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        o.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    o
}

fn read_secret(inline: &Option<String>, file: &Option<String>, what: &str) -> Result<String> {
    if let Some(f) = file {
        return std::fs::read_to_string(f)
            .map(|s| s.trim().to_string())
            .map_err(|e| RulesError::AlertingConfig(format!("reading {what} file {f}: {e}")));
    }
    Ok(inline.clone().unwrap_or_default())
}

impl Notifier {
    /// Builds a notifier from the `alerting` config and the global external labels.
    pub fn new(cfg: &AlertingConfig, external_labels: BTreeMap<String, String>) -> Result<Self> {
        let mut endpoints = Vec::new();
        for am in &cfg.alertmanagers {
            let auth = if let Some(b) = &am.basic_auth {
                let pw = read_secret(&b.password, &b.password_file, "password")?;
                Some(format!(
                    "Basic {}",
                    base64(format!("{}:{pw}", b.username).as_bytes())
                ))
            } else if let Some(a) = &am.authorization {
                let cred = read_secret(&a.credentials, &a.credentials_file, "credentials")?;
                Some(format!("{} {cred}", a.kind.as_deref().unwrap_or("Bearer")))
            } else {
                am.bearer_token.as_ref().map(|t| format!("Bearer {t}"))
            };
            let prefix = am.path_prefix.trim_end_matches('/');
            for sc in &am.static_configs {
                for t in &sc.targets {
                    endpoints.push(Endpoint {
                        url: format!("{}://{t}{prefix}/api/v2/alerts", am.scheme),
                        auth: auth.clone(),
                        timeout: am
                            .timeout
                            .map(|d| d.as_duration())
                            .unwrap_or(Duration::from_secs(10)),
                        relabel: am.alert_relabel_configs.clone(),
                    });
                }
            }
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("Ember/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RulesError::AlertingConfig(format!("building HTTP client: {e}")))?;
        Ok(Self {
            client,
            endpoints,
            relabel: cfg.alert_relabel_configs.clone(),
            external_labels,
            batch_size: 256,
        })
    }

    /// True when there is at least one Alertmanager.
    pub fn has_targets(&self) -> bool {
        !self.endpoints.is_empty()
    }

    /// The Alertmanager URLs alerts go to (for `/api/v1/alertmanagers`).
    pub fn urls(&self) -> Vec<String> {
        self.endpoints.iter().map(|e| e.url.clone()).collect()
    }

    /// Adds external labels (alert labels win) and applies `alert_relabel_configs`.
    pub fn prepare(&self, alerts: Vec<PostableAlert>) -> Vec<PostableAlert> {
        alerts
            .into_iter()
            .filter_map(|mut a| {
                for (k, v) in &self.external_labels {
                    a.labels.entry(k.clone()).or_insert_with(|| v.clone());
                }
                let labels =
                    relabel::process(&Labels::from_pairs(a.labels.clone()), &self.relabel)?;
                if labels.is_empty() {
                    return None;
                }
                a.labels = labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                Some(a)
            })
            .collect()
    }

    /// Sends `alerts` (already prepared with [`Notifier::prepare`]) to every Alertmanager.
    pub async fn send(&self, alerts: Vec<PostableAlert>) -> SendReport {
        let alerts = self.prepare(alerts);
        let mut report = SendReport {
            alerts: alerts.len(),
            ..SendReport::default()
        };
        if alerts.is_empty() {
            return report;
        }
        for ep in &self.endpoints {
            let own: Vec<PostableAlert> = if ep.relabel.is_empty() {
                alerts.clone()
            } else {
                alerts
                    .iter()
                    .filter_map(|a| {
                        let l =
                            relabel::process(&Labels::from_pairs(a.labels.clone()), &ep.relabel)?;
                        let mut a = a.clone();
                        a.labels = l
                            .iter()
                            .map(|l| (l.name.clone(), l.value.clone()))
                            .collect();
                        Some(a)
                    })
                    .collect()
            };
            let (mut sent, mut failed) = (0, 0);
            for batch in own.chunks(self.batch_size) {
                sent += batch.len();
                match self.post(ep, batch).await {
                    Ok(()) => report.ok += 1,
                    Err(e) => {
                        failed += 1;
                        tracing::warn!(url = %ep.url, error = %e, "sending alerts to Alertmanager failed");
                        report.errors.push(format!("{}: {e}", ep.url));
                    }
                }
            }
            report.per_alertmanager.push((ep.url.clone(), sent, failed));
        }
        report
    }

    async fn post(
        &self,
        ep: &Endpoint,
        batch: &[PostableAlert],
    ) -> std::result::Result<(), String> {
        let body = serde_json::to_vec(batch).map_err(|e| e.to_string())?;
        let mut req = self
            .client
            .post(&ep.url)
            .timeout(ep.timeout)
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(a) = &ep.auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(format!(
                "HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    }

    #[test]
    fn config_and_relabel() {
        let v = serde_json::json!({
            "alert_relabel_configs": [{"action": "labeldrop", "regex": "replica"}],
            "alertmanagers": [{"static_configs": [{"targets": ["127.0.0.1:9093"]}], "path_prefix": "/am/",
                "basic_auth": {"username": "u", "password": "p"}, "timeout": "5s"}]
        });
        let cfg = AlertingConfig::from_value(&v).expect("config");
        let ext = BTreeMap::from([
            ("cluster".to_string(), "eu".to_string()),
            ("replica".to_string(), "a".to_string()),
        ]);
        let n = Notifier::new(&cfg, ext).expect("notifier");
        assert_eq!(
            n.urls(),
            vec!["http://127.0.0.1:9093/am/api/v2/alerts".to_string()]
        );
        let a = PostableAlert {
            labels: BTreeMap::from([
                ("alertname".to_string(), "X".to_string()),
                ("cluster".to_string(), "us".to_string()),
            ]),
            annotations: BTreeMap::new(),
            starts_at: String::new(),
            ends_at: String::new(),
            generator_url: String::new(),
        };
        let out = n.prepare(vec![a]);
        assert_eq!(out[0].labels.get("cluster").map(String::as_str), Some("us"));
        assert!(!out[0].labels.contains_key("replica"));
        assert!(
            AlertingConfig::from_value(
                &serde_json::json!({"alertmanagers": [{"api_version": "v1"}]})
            )
            .is_err()
        );
        let e = AlertingConfig::from_value(
            &serde_json::json!({"alertmanagers": [{"dns_sd_configs": []}]}),
        );
        assert!(e.is_err_and(|e| e.to_string().contains("dns_sd_configs")));
    }
}
