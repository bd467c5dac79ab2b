//! The `data` of `/api/v1/rules` and `/api/v1/alerts`, in Prometheus' JSON shapes.

use serde_json::{Map, Value, json};

use crate::manager::{AlertState, GroupState, Health, RuleManager, rfc3339, rule_key};
use crate::rulefile::{RuleGroup, RuleKind};

/// Filters of `/api/v1/rules`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulesFilter {
    /// `type=alert` → Some(true), `type=record` → Some(false).
    pub alerting_only: Option<bool>,
    /// `rule_name[]`.
    pub rule_names: Vec<String>,
    /// `rule_group[]`.
    pub rule_groups: Vec<String>,
    /// `file[]`.
    pub files: Vec<String>,
    /// `exclude_alerts=true`.
    pub exclude_alerts: bool,
}

impl RulesFilter {
    /// Builds the filter from decoded query/form pairs. An unknown `type` or a malformed
    /// `exclude_alerts` is an error (answer 400 `bad_data` with the message).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut f = RulesFilter::default();
        for (k, v) in pairs {
            match k {
                "type" => {
                    f.alerting_only = match v.to_ascii_lowercase().as_str() {
                        "" => None,
                        "alert" => Some(true),
                        "record" => Some(false),
                        other => return Err(format!("not supported value {other:?}")),
                    }
                }
                "rule_name[]" => f.rule_names.push(v.to_string()),
                "rule_group[]" => f.rule_groups.push(v.to_string()),
                "file[]" => f.files.push(v.to_string()),
                "exclude_alerts" => {
                    f.exclude_alerts = match v {
                        "" | "false" | "0" | "f" | "F" | "FALSE" | "False" => false,
                        "true" | "1" | "t" | "T" | "TRUE" | "True" => true,
                        other => {
                            return Err(format!("parsing exclude_alerts: invalid value {other:?}"));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(f)
    }
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)` (the `value` of alerts).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = format!("{v:e}");
    let (m, e) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

fn ts_or_zero(ms: Option<i64>) -> String {
    ms.map(rfc3339)
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string())
}

fn health(h: Health) -> &'static str {
    match h {
        Health::Unknown => "unknown",
        Health::Ok => "ok",
        Health::Err => "err",
    }
}

fn alert_json(a: &crate::manager::Alert) -> Value {
    let mut m = Map::new();
    m.insert("labels".into(), json!(a.labels));
    m.insert("annotations".into(), json!(a.annotations));
    m.insert("state".into(), json!(a.state.as_str()));
    m.insert("activeAt".into(), json!(rfc3339(a.active_at)));
    if let Some(k) = a.keep_firing_since {
        m.insert("keepFiringSince".into(), json!(rfc3339(k)));
    }
    m.insert("value".into(), json!(format_value(a.value)));
    Value::Object(m)
}

fn group_json(g: &RuleGroup, st: &GroupState, f: &RulesFilter) -> Option<Value> {
    let mut rules = Vec::new();
    for r in &g.rules {
        if !f.rule_names.is_empty() && !f.rule_names.contains(&r.name) {
            continue;
        }
        if let Some(alerting) = f.alerting_only
            && alerting != r.is_alerting()
        {
            continue;
        }
        let rt = st.rules.get(&rule_key(r)).cloned().unwrap_or_default();
        let mut labels = g.labels.clone();
        labels.extend(r.labels.clone());
        let mut m = Map::new();
        m.insert("name".into(), json!(r.name));
        m.insert("query".into(), json!(r.expr));
        m.insert("health".into(), json!(health(rt.health)));
        if let Some(e) = &rt.last_error {
            m.insert("lastError".into(), json!(e));
        }
        m.insert("evaluationTime".into(), json!(rt.eval_seconds));
        m.insert("lastEvaluation".into(), json!(ts_or_zero(rt.last_eval_ms)));
        match &r.kind {
            RuleKind::Recording => {
                if !labels.is_empty() {
                    m.insert("labels".into(), json!(labels));
                }
                m.insert("type".into(), json!("recording"));
            }
            RuleKind::Alerting {
                for_ms,
                keep_firing_for_ms,
                annotations,
            } => {
                let active: Vec<_> = rt
                    .alerts
                    .values()
                    .filter(|a| a.state != AlertState::Inactive)
                    .collect();
                let state = active
                    .iter()
                    .map(|a| a.state)
                    .max()
                    .unwrap_or(AlertState::Inactive);
                m.insert("state".into(), json!(state.as_str()));
                m.insert("duration".into(), json!(*for_ms as f64 / 1000.0));
                m.insert(
                    "keepFiringFor".into(),
                    json!(*keep_firing_for_ms as f64 / 1000.0),
                );
                m.insert("labels".into(), json!(labels));
                m.insert("annotations".into(), json!(annotations));
                if !f.exclude_alerts {
                    m.insert(
                        "alerts".into(),
                        Value::Array(active.iter().map(|a| alert_json(a)).collect()),
                    );
                }
                m.insert("type".into(), json!("alerting"));
            }
        }
        rules.push(Value::Object(m));
    }
    let rule_filtered = !f.rule_names.is_empty() || f.alerting_only.is_some();
    if rule_filtered && rules.is_empty() {
        return None;
    }
    Some(json!({
        "name": g.name,
        "file": g.file,
        "rules": rules,
        "interval": g.interval_ms as f64 / 1000.0,
        "limit": g.limit,
        "evaluationTime": st.eval_seconds,
        "lastEvaluation": ts_or_zero(st.last_eval_ms),
    }))
}

/// The `data` of `GET /api/v1/rules`: `{"groups":[…]}`.
pub fn rules_data(mgr: &RuleManager, filter: &RulesFilter) -> Value {
    let groups: Vec<Value> = mgr
        .snapshot()
        .iter()
        .filter(|(g, _)| filter.rule_groups.is_empty() || filter.rule_groups.contains(&g.name))
        .filter(|(g, _)| filter.files.is_empty() || filter.files.contains(&g.file))
        .filter_map(|(g, st)| group_json(g, st, filter))
        .collect();
    json!({ "groups": groups })
}

/// The `data` of `GET /api/v1/alerts`: `{"alerts":[…]}` (pending and firing alerts).
pub fn alerts_data(mgr: &RuleManager) -> Value {
    let mut alerts = Vec::new();
    for (g, st) in mgr.snapshot() {
        for r in &g.rules {
            if let Some(rt) = st.rules.get(&rule_key(r)) {
                for a in rt
                    .alerts
                    .values()
                    .filter(|a| a.state != AlertState::Inactive)
                {
                    alerts.push(alert_json(a));
                }
            }
        }
    }
    json!({ "alerts": alerts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_format_matches_go() {
        assert_eq!(format_value(1.0), "1e+00");
        assert_eq!(format_value(69.6890019778219), "6.96890019778219e+01");
        assert_eq!(format_value(0.00012), "1.2e-04");
        assert_eq!(format_value(0.0), "0e+00");
    }

    #[test]
    fn filter_parsing() {
        let f = RulesFilter::from_pairs([
            ("type", "alert"),
            ("rule_name[]", "A"),
            ("exclude_alerts", "true"),
        ])
        .expect("ok");
        assert_eq!(f.alerting_only, Some(true));
        assert!(f.exclude_alerts);
        assert!(RulesFilter::from_pairs([("type", "bogus")]).is_err());
    }
}
