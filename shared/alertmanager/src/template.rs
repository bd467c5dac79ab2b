//! Notification templates: Alertmanager's template data (`.Status`, `.Alerts`, `.GroupLabels`,
//! `.CommonLabels`, …) and its default templates, executed by the Go-template engine of
//! `ember-rules` (one engine for alert and notification templates).

use std::collections::BTreeMap;

use ember_rules::template::{Context, Template, TemplateSet, Value, labels_value};

use crate::error::{Error, Result};

/// Alertmanager's default templates that Slack, SNS and webhook receivers use
/// (same names and output as Alertmanager 0.25's `default.tmpl`).
pub const DEFAULT_TEMPLATES: &str = r#"
{{ define "__alertmanager" }}Alertmanager{{ end }}
{{ define "__alertmanagerURL" }}{{ .ExternalURL }}/#/alerts?receiver={{ .Receiver | urlquery }}{{ end }}

{{ define "__subject" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .GroupLabels.SortedPairs.Values | join " " }} {{ if gt (len .CommonLabels) (len .GroupLabels) }}({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join " " }}{{ end }}){{ end }}{{ end }}
{{ define "__description" }}{{ end }}

{{ define "__text_alert_list" }}{{ range . }}Labels:
{{ range .Labels.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Annotations:
{{ range .Annotations.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Source: {{ .GeneratorURL }}
{{ end }}{{ end }}

{{ define "slack.default.title" }}{{ template "__subject" . }}{{ end }}
{{ define "slack.default.username" }}{{ template "__alertmanager" . }}{{ end }}
{{ define "slack.default.fallback" }}{{ template "slack.default.title" . }} | {{ template "slack.default.titlelink" . }}{{ end }}
{{ define "slack.default.callbackid" }}{{ end }}
{{ define "slack.default.pretext" }}{{ end }}
{{ define "slack.default.titlelink" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "slack.default.iconemoji" }}{{ end }}
{{ define "slack.default.iconurl" }}{{ end }}
{{ define "slack.default.text" }}{{ end }}
{{ define "slack.default.footer" }}{{ end }}

{{ define "sns.default.subject" }}{{ template "__subject" . }}{{ end }}
{{ define "sns.default.message" }}{{ .CommonAnnotations.SortedPairs.Values | join " " }}
{{ if gt (len .Alerts.Firing) 0 -}}
Alerts Firing:
{{ template "__text_alert_list" .Alerts.Firing }}
{{- end }}
{{ if gt (len .Alerts.Resolved) 0 -}}
Alerts Resolved:
{{ template "__text_alert_list" .Alerts.Resolved }}
{{- end }}
{{- end }}
"#;

/// One alert as templates and the webhook see it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertData {
    /// `firing` or `resolved`.
    pub status: &'static str,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 start.
    pub starts_at: String,
    /// RFC 3339 end (`0001-01-01T00:00:00Z` while firing).
    pub ends_at: String,
    /// Link to the expression.
    pub generator_url: String,
    /// `%016x` label fingerprint.
    pub fingerprint: String,
}

/// The data of one notification (Alertmanager's `template.Data`).
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    /// Receiver name (regex-quoted, as Alertmanager does).
    pub receiver: String,
    /// `firing` when any alert fires, else `resolved`.
    pub status: &'static str,
    /// The alerts.
    pub alerts: Vec<AlertData>,
    /// The group's labels.
    pub group_labels: BTreeMap<String, String>,
    /// Labels all alerts share.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations all alerts share.
    pub common_annotations: BTreeMap<String, String>,
    /// Where the notifier is reachable (`externalURL`).
    pub external_url: String,
}

/// Go's `regexp.QuoteMeta` (Alertmanager applies it to `.Receiver`): escapes `\.+*?()|[]{}^$`.
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn common(maps: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let Some(first) = maps.first() else {
        return BTreeMap::new();
    };
    first
        .iter()
        .filter(|(k, v)| maps[1..].iter().all(|m| m.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Data {
    /// Builds the data: status and common labels/annotations from `alerts`.
    pub fn new(
        receiver: &str,
        alerts: Vec<AlertData>,
        group_labels: BTreeMap<String, String>,
        external_url: &str,
    ) -> Self {
        let labels: Vec<&BTreeMap<String, String>> = alerts.iter().map(|a| &a.labels).collect();
        let anns: Vec<&BTreeMap<String, String>> = alerts.iter().map(|a| &a.annotations).collect();
        Self {
            receiver: quote_meta(receiver),
            status: if alerts.iter().any(|a| a.status == "firing") {
                "firing"
            } else {
                "resolved"
            },
            common_labels: common(&labels),
            common_annotations: common(&anns),
            alerts,
            group_labels,
            external_url: external_url.to_string(),
        }
    }

    /// The template value (`.`).
    pub fn to_value(&self) -> Value {
        let alerts = self
            .alerts
            .iter()
            .map(|a| {
                Value::Map(BTreeMap::from([
                    ("Status".to_string(), Value::Str(a.status.to_string())),
                    ("Labels".to_string(), labels_value(&a.labels)),
                    ("Annotations".to_string(), labels_value(&a.annotations)),
                    ("StartsAt".to_string(), Value::Str(a.starts_at.clone())),
                    ("EndsAt".to_string(), Value::Str(a.ends_at.clone())),
                    (
                        "GeneratorURL".to_string(),
                        Value::Str(a.generator_url.clone()),
                    ),
                    ("Fingerprint".to_string(), Value::Str(a.fingerprint.clone())),
                ]))
            })
            .collect();
        Value::Map(BTreeMap::from([
            ("Receiver".to_string(), Value::Str(self.receiver.clone())),
            ("Status".to_string(), Value::Str(self.status.to_string())),
            ("Alerts".to_string(), Value::List(alerts)),
            ("GroupLabels".to_string(), labels_value(&self.group_labels)),
            (
                "CommonLabels".to_string(),
                labels_value(&self.common_labels),
            ),
            (
                "CommonAnnotations".to_string(),
                labels_value(&self.common_annotations),
            ),
            (
                "ExternalURL".to_string(),
                Value::Str(self.external_url.clone()),
            ),
        ]))
    }
}

/// The default templates plus the user's template files, ready to expand fields.
#[derive(Debug, Clone)]
pub struct Templates {
    set: TemplateSet,
    external_url: String,
}

impl Templates {
    /// Alertmanager's defaults plus `user` template file texts (later definitions win).
    pub fn new(user: &[(String, String)], external_url: &str) -> Result<Self> {
        let mut set = TemplateSet::new();
        set.add(DEFAULT_TEMPLATES)
            .map_err(|message| Error::Template {
                name: "default.tmpl".into(),
                message,
            })?;
        for (name, text) in user {
            set.add(text).map_err(|message| Error::Template {
                name: name.clone(),
                message,
            })?;
        }
        Ok(Self {
            set,
            external_url: external_url.to_string(),
        })
    }

    /// `.ExternalURL`.
    pub fn external_url(&self) -> &str {
        &self.external_url
    }

    /// Parses a field's template (at config load, so errors show early).
    pub fn parse(&self, field: &str, src: &str) -> Result<Template> {
        self.set.parse(src).map_err(|message| Error::Template {
            name: field.to_string(),
            message,
        })
    }

    /// Executes a parsed template on `data`.
    pub fn execute(&self, field: &str, t: &Template, data: &Data) -> Result<String> {
        let ctx = Context {
            labels: BTreeMap::new(),
            external_labels: BTreeMap::new(),
            external_url: self.external_url.clone(),
            value: 0.0,
            query: None,
        };
        self.set
            .execute(t, data.to_value(), &ctx)
            .map_err(|message| Error::Template {
                name: field.to_string(),
                message,
            })
    }
}
