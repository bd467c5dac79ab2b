//! The `data` of `/api/v1/rules` and `/api/v1/alerts`, in Prometheus' JSON shapes.

use serde_json::{Map, Value, json};

use crate::manager::{AlertState, GroupState, Health, RuleManager, rfc3339, rule_key};
use crate::rulefile::{RuleGroup, RuleKind};

/// Filters of `/api/v1/rules`.
#[derive(Debug, Clone, Default)]
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
    /// `match[]`: rules whose configured labels match any of these selectors.
    pub matchers: Vec<Vec<ember_model::Matcher>>,
    /// `group_limit`: at most this many groups per page (0 = all).
    pub group_limit: usize,
    /// `group_next_token`: continue after a previous page.
    pub group_next_token: Option<String>,
}

fn parse_selector(s: &str) -> Result<Vec<ember_model::Matcher>, String> {
    use promql_parser::label::MatchOp as Op;
    let expr = promql_parser::parser::parse(s)
        .map_err(|e| format!("invalid parameter \"match[]\": {e}"))?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(format!(
            "invalid parameter \"match[]\": {s:?} is not a selector"
        ));
    };
    let mut out = Vec::new();
    if let Some(n) = vs.name {
        out.push(ember_model::Matcher::equal("__name__", n));
    }
    for m in vs.matchers.matchers {
        let bad = |e: ember_model::MatcherError| format!("invalid parameter \"match[]\": {e}");
        out.push(match m.op {
            Op::Equal => ember_model::Matcher::equal(m.name, m.value),
            Op::NotEqual => ember_model::Matcher::not_equal(m.name, m.value),
            Op::Re(_) => ember_model::Matcher::regex(m.name, m.value).map_err(bad)?,
            Op::NotRe(_) => ember_model::Matcher::not_regex(m.name, m.value).map_err(bad)?,
        });
    }
    Ok(out)
}

/// The pagination token of a group: a hash of its key.
pub fn group_token(g: &RuleGroup) -> String {
    format!("{:016x}", crate::state::fnv1a64(g.key().as_bytes()))
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
                "match[]" => f.matchers.push(parse_selector(v)?),
                "group_limit" => {
                    f.group_limit = match v.parse::<i64>() {
                        Ok(n) if n > 0 => n as usize,
                        _ => return Err(format!("group_limit needs to be greater than 0: {v:?}")),
                    }
                }
                "group_next_token" => {
                    f.group_next_token = Some(v.to_string()).filter(|s| !s.is_empty())
                }
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
        if !f.matchers.is_empty() {
            let mut all = g.labels.clone();
            all.extend(r.labels.clone());
            let l = ember_model::Labels::from_pairs(all);
            if !f
                .matchers
                .iter()
                .any(|set| ember_model::matcher::matches_all(set, &l))
            {
                continue;
            }
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
    let rule_filtered =
        !f.rule_names.is_empty() || f.alerting_only.is_some() || !f.matchers.is_empty();
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

/// The `data` of `GET /api/v1/rules`: `{"groups":[…], "groupNextToken"?}`. An unknown
/// `group_next_token` is an error (answer 400 `bad_data`).
pub fn rules_data(mgr: &RuleManager, filter: &RulesFilter) -> Result<Value, String> {
    let groups: Vec<(String, Value)> = mgr
        .snapshot()
        .iter()
        .filter(|(g, _)| filter.rule_groups.is_empty() || filter.rule_groups.contains(&g.name))
        .filter(|(g, _)| filter.files.is_empty() || filter.files.contains(&g.file))
        .filter_map(|(g, st)| group_json(g, st, filter).map(|v| (group_token(g), v)))
        .collect();
    let start = match &filter.group_next_token {
        Some(tok) => groups
            .iter()
            .position(|(t, _)| t == tok)
            .ok_or_else(|| "invalid group_next_token".to_string())?,
        None => 0,
    };
    let rest = &groups[start..];
    let (page, next) = if filter.group_limit > 0 && rest.len() > filter.group_limit {
        (
            &rest[..filter.group_limit],
            Some(rest[filter.group_limit].0.clone()),
        )
    } else {
        (rest, None)
    };
    let mut out = Map::new();
    out.insert(
        "groups".into(),
        Value::Array(page.iter().map(|(_, v)| v.clone()).collect()),
    );
    if let Some(n) = next {
        out.insert("groupNextToken".into(), json!(n));
    }
    Ok(Value::Object(out))
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
        assert!(RulesFilter::from_pairs([("group_limit", "0")]).is_err());
        assert!(RulesFilter::from_pairs([("match[]", "{")]).is_err());
        let f = RulesFilter::from_pairs([("match[]", "{severity=~\"crit.*\"}")]).expect("ok");
        assert_eq!(f.matchers.len(), 1);
    }
}
