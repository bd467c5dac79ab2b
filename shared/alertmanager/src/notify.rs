//! Receivers' integrations: Slack incoming webhooks, Alertmanager-format webhooks and (with the
//! `sns` feature) Amazon SNS. HTTP sends retry with backoff on 5xx and connection errors within
//! the call; a failure is returned so the dispatcher does not advance the group's state.

use std::path::PathBuf;
use std::time::Duration;

use ember_rules::template::Template;
use serde_json::json;

use crate::config::{Config, ReceiverConfig, SecretString};
use crate::error::{Error, Result};
use crate::template::{Data, Templates};

/// Where a webhook URL comes from; resolved at send time so rotated secrets are picked up.
#[derive(Clone)]
pub enum UrlSource {
    /// Written in the config.
    Inline(SecretString),
    /// `*_file` or `file:/path`: the file's trimmed content.
    File(PathBuf),
    /// `ssm:/name`, `secretsmanager:name` or `env:NAME`, resolved through `ember-secrets` once per
    /// process (cached: a rotated secret is picked up at the next cold start).
    Secret(
        ember_secrets::SecretRef,
        std::sync::Arc<tokio::sync::OnceCell<ember_secrets::Secret>>,
    ),
}

impl std::fmt::Debug for UrlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlSource::Inline(_) => f.write_str("Inline(<secret>)"),
            UrlSource::File(p) => write!(f, "File({})", p.display()),
            UrlSource::Secret(r, _) => write!(f, "Secret({r})"),
        }
    }
}

impl UrlSource {
    fn from_fields(inline: Option<&SecretString>, file: Option<&String>) -> Option<Self> {
        if let Some(f) = file {
            return Some(UrlSource::File(PathBuf::from(f)));
        }
        let v = inline?;
        let s = v.0.trim();
        if let Some(p) = s.strip_prefix("file:") {
            Some(UrlSource::File(PathBuf::from(p)))
        } else if s.starts_with("ssm:") || s.starts_with("secretsmanager:") || s.starts_with("env:")
        {
            Some(match ember_secrets::SecretRef::parse(s) {
                Ok(r) => UrlSource::Secret(r, Default::default()),
                // Kept as text so `check_secret_ref` reports the parse error at load.
                Err(_) => UrlSource::Inline(v.clone()),
            })
        } else {
            Some(UrlSource::Inline(v.clone()))
        }
    }

    /// The URL.
    pub async fn resolve(&self) -> Result<String> {
        match self {
            UrlSource::Inline(s) => Ok(s.0.trim().to_string()),
            UrlSource::File(p) => tokio::fs::read_to_string(p)
                .await
                .map(|s| s.trim().to_string())
                .map_err(|e| Error::Io {
                    what: format!("reading URL file {}", p.display()),
                    source: e,
                }),
            UrlSource::Secret(r, cache) => {
                let secret = cache
                    .get_or_try_init(|| r.resolve_from_env())
                    .await
                    .map_err(|e| Error::Config(format!("resolving webhook URL: {e}")))?;
                Ok(secret.expose().trim().to_string())
            }
        }
    }
}

/// Slack fields with their parsed templates.
#[derive(Debug, Clone)]
pub struct SlackTemplates {
    fields: Vec<(&'static str, Template)>,
}

/// What one integration sends.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Alertmanager's webhook JSON (version 4).
    Webhook {
        /// Target.
        url: UrlSource,
        /// Alert limit per message (0 = unlimited).
        max_alerts: u64,
    },
    /// Slack incoming webhook.
    Slack {
        /// Target.
        url: UrlSource,
        /// Channel override.
        channel: Option<String>,
        /// `link_names`.
        link_names: bool,
        /// Markdown fields.
        mrkdwn_in: Vec<String>,
        /// Templated fields.
        templates: SlackTemplates,
    },
    /// Amazon SNS.
    Sns {
        /// Topic.
        topic_arn: String,
        /// Subject template.
        subject: Template,
        /// Message template.
        message: Template,
        /// Message attributes.
        attributes: std::collections::BTreeMap<String, String>,
    },
}

impl Kind {
    /// The `integration` label of Alertmanager's notification metrics.
    pub fn integration(&self) -> &'static str {
        match self {
            Kind::Webhook { .. } => "webhook",
            Kind::Slack { .. } => "slack",
            Kind::Sns { .. } => "sns",
        }
    }
}

/// One integration of a receiver (`slack_configs[1]`, …).
#[derive(Debug, Clone)]
pub struct Integration {
    /// Receiver name.
    pub receiver: String,
    /// `webhook[0]`, `slack[1]`, `sns[0]` (state key and error context).
    pub name: String,
    /// Whether resolved alerts are sent.
    pub send_resolved: bool,
    /// What and where.
    pub kind: Kind,
}

fn slack_field(
    t: &Templates,
    field: &'static str,
    v: &Option<String>,
    default: &str,
) -> Result<(&'static str, Template)> {
    Ok((field, t.parse(field, v.as_deref().unwrap_or(default))?))
}

/// Builds every receiver's integrations from the config (templates parsed now).
pub fn build(
    cfg: &Config,
    templates: &Templates,
) -> Result<std::collections::BTreeMap<String, Vec<Integration>>> {
    let mut out = std::collections::BTreeMap::new();
    for r in &cfg.receivers {
        out.insert(r.name.clone(), build_receiver(cfg, r, templates)?);
    }
    Ok(out)
}

fn build_receiver(cfg: &Config, r: &ReceiverConfig, t: &Templates) -> Result<Vec<Integration>> {
    let mut out = Vec::new();
    for (i, w) in r.webhook_configs.iter().enumerate() {
        let url = UrlSource::from_fields(w.url.as_ref(), w.url_file.as_ref())
            .ok_or_else(|| Error::Config(format!("receiver {:?}: webhook needs url", r.name)))?;
        check_secret_ref(&url)?;
        out.push(Integration {
            receiver: r.name.clone(),
            name: format!("webhook[{i}]"),
            send_resolved: w.send_resolved.unwrap_or(true),
            kind: Kind::Webhook {
                url,
                max_alerts: w.max_alerts,
            },
        });
    }
    for (i, s) in r.slack_configs.iter().enumerate() {
        let url = UrlSource::from_fields(s.api_url.as_ref(), s.api_url_file.as_ref())
            .or_else(|| {
                UrlSource::from_fields(
                    cfg.global.slack_api_url.as_ref(),
                    cfg.global.slack_api_url_file.as_ref(),
                )
            })
            .ok_or_else(|| Error::Config(format!("receiver {:?}: slack needs api_url", r.name)))?;
        check_secret_ref(&url)?;
        let fields = vec![
            slack_field(
                t,
                "username",
                &s.username,
                r#"{{ template "slack.default.username" . }}"#,
            )?,
            slack_field(
                t,
                "color",
                &s.color,
                r#"{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}"#,
            )?,
            slack_field(
                t,
                "title",
                &s.title,
                r#"{{ template "slack.default.title" . }}"#,
            )?,
            slack_field(
                t,
                "title_link",
                &s.title_link,
                r#"{{ template "slack.default.titlelink" . }}"#,
            )?,
            slack_field(
                t,
                "pretext",
                &s.pretext,
                r#"{{ template "slack.default.pretext" . }}"#,
            )?,
            slack_field(
                t,
                "text",
                &s.text,
                r#"{{ template "slack.default.text" . }}"#,
            )?,
            slack_field(
                t,
                "fallback",
                &s.fallback,
                r#"{{ template "slack.default.fallback" . }}"#,
            )?,
            slack_field(
                t,
                "footer",
                &s.footer,
                r#"{{ template "slack.default.footer" . }}"#,
            )?,
            slack_field(
                t,
                "icon_emoji",
                &s.icon_emoji,
                r#"{{ template "slack.default.iconemoji" . }}"#,
            )?,
            slack_field(
                t,
                "icon_url",
                &s.icon_url,
                r#"{{ template "slack.default.iconurl" . }}"#,
            )?,
            slack_field(
                t,
                "callback_id",
                &s.callback_id,
                r#"{{ template "slack.default.callbackid" . }}"#,
            )?,
        ];
        out.push(Integration {
            receiver: r.name.clone(),
            name: format!("slack[{i}]"),
            send_resolved: s.send_resolved.unwrap_or(false),
            kind: Kind::Slack {
                url,
                channel: s.channel.clone(),
                link_names: s.link_names,
                mrkdwn_in: s
                    .mrkdwn_in
                    .clone()
                    .unwrap_or_else(|| vec!["fallback".into(), "pretext".into(), "text".into()]),
                templates: SlackTemplates { fields },
            },
        });
    }
    for (i, s) in r.sns_configs.iter().enumerate() {
        if !cfg!(feature = "sns") {
            return Err(Error::Config(format!(
                "receiver {:?}: sns_configs need Ember built with the `sns` feature (the rules Lambda has it)",
                r.name
            )));
        }
        out.push(Integration {
            receiver: r.name.clone(),
            name: format!("sns[{i}]"),
            send_resolved: s.send_resolved.unwrap_or(true),
            kind: Kind::Sns {
                topic_arn: s.topic_arn.clone().unwrap_or_default(),
                subject: t.parse(
                    "subject",
                    s.subject
                        .as_deref()
                        .unwrap_or(r#"{{ template "sns.default.subject" . }}"#),
                )?,
                message: t.parse(
                    "message",
                    s.message
                        .as_deref()
                        .unwrap_or(r#"{{ template "sns.default.message" . }}"#),
                )?,
                attributes: s.attributes.clone(),
            },
        });
    }
    Ok(out)
}

fn check_secret_ref(u: &UrlSource) -> Result<()> {
    match u {
        UrlSource::Secret(r, _) if r.needs_aws() && !cfg!(feature = "aws-secrets") => {
            Err(Error::Config(format!(
                "{r}: SSM/Secrets Manager references need Ember built with the `aws-secrets` feature (the rules Lambda has it); use *_file"
            )))
        }
        UrlSource::Inline(s)
            if s.0.trim().starts_with("ssm:") || s.0.trim().starts_with("secretsmanager:") =>
        {
            // Not parseable as a reference (the parse error does not contain the secret).
            match ember_secrets::SecretRef::parse(s.0.trim()) {
                Err(e) => Err(Error::Config(e.to_string())),
                Ok(_) => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// The HTTP client and retry policy shared by all integrations.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    /// Attempts per send (first try included).
    pub attempts: u32,
    /// First backoff; doubles per retry.
    pub backoff: Duration,
    /// AWS configuration (region, credentials chain), loaded on the first SNS send.
    #[cfg(feature = "sns")]
    sns: std::sync::Arc<tokio::sync::OnceCell<aws_config::SdkConfig>>,
}

impl Sender {
    /// A client with a 10 s timeout and 3 attempts (200 ms, 400 ms backoff).
    pub fn new() -> Result<Self> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("Ember/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Config(format!("building HTTP client: {e}")))?;
        Ok(Self {
            client,
            attempts: 3,
            backoff: Duration::from_millis(200),
            #[cfg(feature = "sns")]
            sns: Default::default(),
        })
    }

    /// Runs `attempt` up to [`Sender::attempts`] times with doubling backoff while it
    /// fails with a retryable error (`Err((message, true))`); returns the last message.
    async fn with_retries<F, Fut>(&self, mut attempt: F) -> std::result::Result<(), String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(), (String, bool)>>,
    {
        let mut delay = self.backoff;
        let mut last = String::new();
        for n in 0..self.attempts.max(1) {
            if n > 0 {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            match attempt().await {
                Ok(()) => return Ok(()),
                Err((message, true)) => last = message,
                Err((message, false)) => return Err(message),
            }
        }
        Err(last)
    }

    /// Posts JSON, retrying 5xx, 429 and transport errors. Errors never contain the URL.
    async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> std::result::Result<(), String> {
        let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        self.with_retries(|| async {
            let req = self
                .client
                .post(url)
                .header("Content-Type", "application/json")
                .body(body.clone());
            match req.send().await {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    let message = format!(
                        "HTTP {status}: {}",
                        text.chars().take(200).collect::<String>()
                    );
                    Err((message, status.is_server_error() || status.as_u16() == 429))
                }
                Err(e) => Err((e.without_url().to_string(), true)),
            }
        })
        .await
    }

    /// Sends one notification through `i`.
    pub async fn notify(
        &self,
        i: &Integration,
        t: &Templates,
        data: &Data,
        group_key: &str,
    ) -> Result<()> {
        let fail = |message: String| Error::Notify {
            receiver: i.receiver.clone(),
            integration: i.name.clone(),
            message,
        };
        match &i.kind {
            Kind::Webhook { url, max_alerts } => {
                let url = url.resolve().await?;
                let body = webhook_body(data, group_key, *max_alerts);
                self.post_json(&url, &body).await.map_err(fail)
            }
            Kind::Slack {
                url,
                channel,
                link_names,
                mrkdwn_in,
                templates,
            } => {
                let url = url.resolve().await?;
                let body = slack_body(t, data, channel, *link_names, mrkdwn_in, templates)?;
                self.post_json(&url, &body).await.map_err(fail)
            }
            Kind::Sns {
                topic_arn,
                subject,
                message,
                attributes,
            } => {
                let subject = t.execute("subject", subject, data)?;
                let message = t.execute("message", message, data)?;
                self.publish_sns(topic_arn, &subject, &message, attributes)
                    .await
                    .map_err(fail)
            }
        }
    }

    #[cfg(feature = "sns")]
    async fn publish_sns(
        &self,
        topic_arn: &str,
        subject: &str,
        message: &str,
        attributes: &std::collections::BTreeMap<String, String>,
    ) -> std::result::Result<(), String> {
        use aws_credential_types::provider::ProvideCredentials;
        let aws = self
            .sns
            .get_or_init(|| async {
                aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
            })
            .await;
        let region = aws
            .region()
            .map(|r| r.to_string())
            .ok_or("no AWS region (set AWS_REGION)")?;
        let credentials = aws
            .credentials_provider()
            .ok_or("no AWS credentials")?
            .provide_credentials()
            .await
            .map_err(|e| format!("AWS credentials: {e}"))?;
        let sns = ember_aws_query::QueryService::from_env("sns", "2010-03-31", &region);
        // SNS subjects: at most 100 printable ASCII characters, no line breaks.
        let subject: String = subject
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    ' '
                }
            })
            .take(100)
            .collect();
        let mut params: Vec<(String, String)> = vec![
            ("TopicArn".into(), topic_arn.into()),
            ("Subject".into(), subject.trim().into()),
            ("Message".into(), message.into()),
        ];
        for (i, (k, v)) in attributes.iter().enumerate() {
            let entry = format!("MessageAttributes.entry.{}", i + 1);
            params.push((format!("{entry}.Name"), k.clone()));
            params.push((format!("{entry}.Value.DataType"), "String".into()));
            params.push((format!("{entry}.Value.StringValue"), v.clone()));
        }
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.with_retries(|| async {
            sns.call(&self.client, &credentials, "Publish", &params)
                .await
                .map(|_| ())
                .map_err(|e| (e.to_string(), e.is_retryable()))
        })
        .await
    }

    #[cfg(not(feature = "sns"))]
    async fn publish_sns(
        &self,
        _topic_arn: &str,
        _subject: &str,
        _message: &str,
        _attributes: &std::collections::BTreeMap<String, String>,
    ) -> std::result::Result<(), String> {
        Err("built without the `sns` feature".into())
    }
}

/// Alertmanager's webhook message, version 4.
pub fn webhook_body(data: &Data, group_key: &str, max_alerts: u64) -> serde_json::Value {
    let limit = if max_alerts == 0 {
        data.alerts.len()
    } else {
        (max_alerts as usize).min(data.alerts.len())
    };
    let alerts: Vec<serde_json::Value> = data.alerts[..limit]
        .iter()
        .map(|a| {
            json!({
                "status": a.status,
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": a.starts_at,
                "endsAt": a.ends_at,
                "generatorURL": a.generator_url,
                "fingerprint": a.fingerprint,
            })
        })
        .collect();
    json!({
        "receiver": data.receiver,
        "status": data.status,
        "alerts": alerts,
        "groupLabels": data.group_labels,
        "commonLabels": data.common_labels,
        "commonAnnotations": data.common_annotations,
        "externalURL": data.external_url,
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": data.alerts.len() - limit,
    })
}

/// A Slack incoming-webhook message as Alertmanager builds it (one attachment).
pub fn slack_body(
    t: &Templates,
    data: &Data,
    channel: &Option<String>,
    link_names: bool,
    mrkdwn_in: &[String],
    templates: &SlackTemplates,
) -> Result<serde_json::Value> {
    let mut f = std::collections::BTreeMap::new();
    for (name, tpl) in &templates.fields {
        f.insert(*name, t.execute(name, tpl, data)?);
    }
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let mut att = serde_json::Map::new();
    let mut opt = |k: &str, v: String| {
        if !v.is_empty() {
            att.insert(k.to_string(), json!(v));
        }
    };
    opt("title", get("title"));
    opt("title_link", get("title_link"));
    opt("pretext", get("pretext"));
    opt("color", get("color"));
    att.insert("text".into(), json!(get("text")));
    att.insert("fallback".into(), json!(get("fallback")));
    att.insert("callback_id".into(), json!(get("callback_id")));
    att.insert("footer".into(), json!(get("footer")));
    if !mrkdwn_in.is_empty() {
        att.insert("mrkdwn_in".into(), json!(mrkdwn_in));
    }
    let mut body = serde_json::Map::new();
    if let Some(c) = channel.as_deref().filter(|c| !c.is_empty()) {
        body.insert("channel".into(), json!(c));
    }
    for k in ["username", "icon_emoji", "icon_url"] {
        let v = get(k);
        if !v.is_empty() {
            body.insert(k.into(), json!(v));
        }
    }
    if link_names {
        body.insert("link_names".into(), json!(true));
    }
    body.insert("attachments".into(), json!([att]));
    Ok(serde_json::Value::Object(body))
}
