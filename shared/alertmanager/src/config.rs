//! Alertmanager's configuration file (`alertmanager.yml`), parsed strictly: unknown fields
//! and receiver types are errors, so a configuration never silently notifies nobody.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ember_config::PromDuration;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::matcher::{Matcher, Matchers};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `global:` defaults.
    #[serde(default)]
    pub global: GlobalConfig,
    /// The routing tree's root.
    pub route: RouteConfig,
    /// Inhibition rules.
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitRule>,
    /// Receivers, referenced by name from routes.
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    /// Template files (globs relative to the config file) with `define`s.
    #[serde(default)]
    pub templates: Vec<String>,
}

/// `global:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// How long an alert without `endsAt` stays firing (default 5m).
    #[serde(default)]
    pub resolve_timeout: Option<PromDuration>,
    /// Default Slack webhook URL.
    #[serde(default)]
    pub slack_api_url: Option<SecretString>,
    /// File holding the default Slack webhook URL.
    #[serde(default)]
    pub slack_api_url_file: Option<String>,
    /// Accepted for compatibility (HTTP client settings are Ember's own).
    #[serde(default)]
    pub http_config: Option<serde_json::Value>,
}

/// A string that must never reach logs (webhook URLs embed credentials).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretString(pub String);

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// One node of the routing tree.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver name (inherited when unset).
    #[serde(default)]
    pub receiver: Option<String>,
    /// Labels to group by; `...` groups by all labels (inherited when unset).
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// New-style matchers: `a="b"`, `a=~"re"`, `a!="b"`, `a!~"re"`.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Legacy equality matchers.
    #[serde(default, rename = "match")]
    pub match_: BTreeMap<String, String>,
    /// Legacy regex matchers.
    #[serde(default)]
    pub match_re: BTreeMap<String, String>,
    /// Keep matching siblings after this route matched.
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    /// Wait before the first notification of a new group (default 30s).
    #[serde(default)]
    pub group_wait: Option<PromDuration>,
    /// Wait between notifications of a changed group (default 5m).
    #[serde(default)]
    pub group_interval: Option<PromDuration>,
    /// Wait before re-sending an unchanged notification (default 4h).
    #[serde(default)]
    pub repeat_interval: Option<PromDuration>,
    /// Rejected when set (time intervals are not supported yet).
    #[serde(default)]
    pub mute_time_intervals: Vec<String>,
    /// Rejected when set (time intervals are not supported yet).
    #[serde(default)]
    pub active_time_intervals: Vec<String>,
    /// Child routes.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// `inhibit_rules[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    /// Matchers a firing source alert must satisfy.
    #[serde(default)]
    pub source_matchers: Vec<String>,
    /// Matchers a muted target alert must satisfy.
    #[serde(default)]
    pub target_matchers: Vec<String>,
    /// Legacy source equality matchers.
    #[serde(default)]
    pub source_match: BTreeMap<String, String>,
    /// Legacy source regex matchers.
    #[serde(default)]
    pub source_match_re: BTreeMap<String, String>,
    /// Legacy target equality matchers.
    #[serde(default)]
    pub target_match: BTreeMap<String, String>,
    /// Legacy target regex matchers.
    #[serde(default)]
    pub target_match_re: BTreeMap<String, String>,
    /// Labels that must be equal in source and target.
    #[serde(default)]
    pub equal: Vec<String>,
}

/// `receivers[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Unique name.
    pub name: String,
    /// Slack incoming webhooks.
    #[serde(default)]
    pub slack_configs: Vec<SlackConfig>,
    /// Generic webhooks (Alertmanager's JSON, version 4).
    #[serde(default)]
    pub webhook_configs: Vec<WebhookConfig>,
    /// Amazon SNS topics.
    #[serde(default)]
    pub sns_configs: Vec<SnsConfig>,
}

/// `slack_configs[]` (the incoming-webhook subset).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Send resolved notifications (default false, as Alertmanager).
    #[serde(default)]
    pub send_resolved: Option<bool>,
    /// Webhook URL, or a secret reference (`ssm:/…`, `secretsmanager:…`, `file:/…`).
    #[serde(default)]
    pub api_url: Option<SecretString>,
    /// File holding the webhook URL.
    #[serde(default)]
    pub api_url_file: Option<String>,
    /// Channel override.
    #[serde(default)]
    pub channel: Option<String>,
    /// User name (template).
    #[serde(default)]
    pub username: Option<String>,
    /// Color (template).
    #[serde(default)]
    pub color: Option<String>,
    /// Title (template).
    #[serde(default)]
    pub title: Option<String>,
    /// Title link (template).
    #[serde(default)]
    pub title_link: Option<String>,
    /// Pretext (template).
    #[serde(default)]
    pub pretext: Option<String>,
    /// Text (template).
    #[serde(default)]
    pub text: Option<String>,
    /// Fallback (template).
    #[serde(default)]
    pub fallback: Option<String>,
    /// Footer (template).
    #[serde(default)]
    pub footer: Option<String>,
    /// Icon emoji (template).
    #[serde(default)]
    pub icon_emoji: Option<String>,
    /// Icon URL (template).
    #[serde(default)]
    pub icon_url: Option<String>,
    /// Callback id (template).
    #[serde(default)]
    pub callback_id: Option<String>,
    /// `link_names`.
    #[serde(default)]
    pub link_names: bool,
    /// Fields rendered as Markdown.
    #[serde(default)]
    pub mrkdwn_in: Option<Vec<String>>,
    /// Accepted for compatibility (HTTP client settings are Ember's own).
    #[serde(default)]
    pub http_config: Option<serde_json::Value>,
}

/// `webhook_configs[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Send resolved notifications (default true, as Alertmanager).
    #[serde(default)]
    pub send_resolved: Option<bool>,
    /// URL, or a secret reference (`ssm:/…`, `secretsmanager:…`, `file:/…`).
    #[serde(default)]
    pub url: Option<SecretString>,
    /// File holding the URL.
    #[serde(default)]
    pub url_file: Option<String>,
    /// At most this many alerts per message (0 = all); the rest are counted in `truncatedAlerts`.
    #[serde(default)]
    pub max_alerts: u64,
    /// Accepted for compatibility (HTTP client settings are Ember's own).
    #[serde(default)]
    pub http_config: Option<serde_json::Value>,
}

/// `sns_configs[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsConfig {
    /// Send resolved notifications (default true, as Alertmanager).
    #[serde(default)]
    pub send_resolved: Option<bool>,
    /// Topic ARN.
    #[serde(default)]
    pub topic_arn: Option<String>,
    /// Subject (template).
    #[serde(default)]
    pub subject: Option<String>,
    /// Message (template).
    #[serde(default)]
    pub message: Option<String>,
    /// Message attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Rejected when set: the function's own credentials and region are used.
    #[serde(default)]
    pub sigv4: Option<serde_json::Value>,
    /// Rejected when set (SMS and target ARNs are not supported).
    #[serde(default)]
    pub phone_number: Option<String>,
    /// Rejected when set (SMS and target ARNs are not supported).
    #[serde(default)]
    pub target_arn: Option<String>,
}

impl Config {
    /// Parses and validates YAML; `base` is the directory relative paths resolve against.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let cfg: Config = serde_saphyr::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            what: format!("reading {}", path.display()),
            source: e,
        })?;
        Self::from_yaml(&text).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    fn validate(&self) -> Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for r in &self.receivers {
            if !names.insert(r.name.as_str()) {
                return Err(Error::Config(format!(
                    "receiver {:?} is defined twice",
                    r.name
                )));
            }
            for s in &r.sns_configs {
                if s.topic_arn.is_none() {
                    return Err(Error::Config(format!(
                        "receiver {:?}: sns_configs needs topic_arn (phone_number and target_arn are not supported)",
                        r.name
                    )));
                }
                if s.phone_number.is_some() || s.target_arn.is_some() || s.sigv4.is_some() {
                    return Err(Error::Config(format!(
                        "receiver {:?}: sns_configs: phone_number, target_arn and sigv4 are not supported",
                        r.name
                    )));
                }
            }
            for w in &r.webhook_configs {
                if w.url.is_some() == w.url_file.is_some() {
                    return Err(Error::Config(format!(
                        "receiver {:?}: webhook_configs needs exactly one of url and url_file",
                        r.name
                    )));
                }
            }
            for s in &r.slack_configs {
                if s.api_url.is_some() && s.api_url_file.is_some() {
                    return Err(Error::Config(format!(
                        "receiver {:?}: slack_configs: api_url and api_url_file are exclusive",
                        r.name
                    )));
                }
                if s.api_url.is_none()
                    && s.api_url_file.is_none()
                    && self.global.slack_api_url.is_none()
                    && self.global.slack_api_url_file.is_none()
                {
                    return Err(Error::Config(format!(
                        "receiver {:?}: slack_configs needs api_url (or global.slack_api_url)",
                        r.name
                    )));
                }
            }
        }
        if self.route.receiver.is_none() {
            return Err(Error::Config("the root route needs a receiver".into()));
        }
        if !self.route.matchers.is_empty()
            || !self.route.match_.is_empty()
            || !self.route.match_re.is_empty()
        {
            return Err(Error::Config(
                "the root route must not have matchers".into(),
            ));
        }
        check_route(&self.route, &names)?;
        for r in &self.inhibit_rules {
            r.source()?;
            r.target()?;
        }
        Ok(())
    }
}

fn check_route(r: &RouteConfig, names: &std::collections::BTreeSet<&str>) -> Result<()> {
    if let Some(n) = &r.receiver
        && !names.contains(n.as_str())
    {
        return Err(Error::Config(format!(
            "route uses undefined receiver {n:?}"
        )));
    }
    if !r.mute_time_intervals.is_empty() || !r.active_time_intervals.is_empty() {
        return Err(Error::Config(
            "mute_time_intervals/active_time_intervals are not supported".into(),
        ));
    }
    if let Some(g) = &r.group_by
        && g.iter().any(|l| l == "...")
        && g.len() > 1
    {
        return Err(Error::Config(
            "group_by: '...' must be the only entry".into(),
        ));
    }
    if r.group_interval.is_some_and(|d| d.as_millis() <= 0) {
        return Err(Error::Config("group_interval must be positive".into()));
    }
    if r.repeat_interval.is_some_and(|d| d.as_millis() <= 0) {
        return Err(Error::Config("repeat_interval must be positive".into()));
    }
    route_matchers(r)?;
    for c in &r.routes {
        check_route(c, names)?;
    }
    Ok(())
}

/// A route's matchers: new-style then legacy, as one list.
pub fn route_matchers(r: &RouteConfig) -> Result<Matchers> {
    combine(&r.matchers, &r.match_, &r.match_re)
}

fn combine(
    new: &[String],
    eq: &BTreeMap<String, String>,
    re: &BTreeMap<String, String>,
) -> Result<Matchers> {
    let mut out = Vec::new();
    for m in new {
        out.extend(Matchers::parse(m)?.0);
    }
    for (k, v) in eq {
        out.push(Matcher::equal(k, v));
    }
    for (k, v) in re {
        out.push(Matcher::regex(k, v)?);
    }
    Ok(Matchers(out))
}

impl InhibitRule {
    /// The source side's matchers.
    pub fn source(&self) -> Result<Matchers> {
        combine(
            &self.source_matchers,
            &self.source_match,
            &self.source_match_re,
        )
    }

    /// The target side's matchers.
    pub fn target(&self) -> Result<Matchers> {
        combine(
            &self.target_matchers,
            &self.target_match,
            &self.target_match_re,
        )
    }
}

/// Template file globs resolved against the config's directory.
pub fn template_paths(cfg: &Config, base: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for pat in &cfg.templates {
        let full = if Path::new(pat).is_absolute() {
            PathBuf::from(pat)
        } else {
            base.join(pat)
        };
        let text = full.to_string_lossy().to_string();
        if !text.contains(['*', '?', '[']) {
            out.push(full);
            continue;
        }
        // A small glob: only the file-name part may have wildcards.
        let dir = full.parent().map(Path::to_path_buf).unwrap_or_default();
        let name = full
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let re = glob_to_regex(&name)?;
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| Error::Io {
                what: format!("listing {}", dir.display()),
                source: e,
            })?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| re.is_match(&n.to_string_lossy()))
            })
            .collect();
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

fn glob_to_regex(pat: &str) -> Result<regex::Regex> {
    let mut re = String::from("^");
    for c in pat.chars() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| Error::Config(format!("template glob {pat:?}: {e}")))
}
