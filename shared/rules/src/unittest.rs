//! Rule unit tests in promtool's format (`promtool test rules`): `rule_files`,
//! `evaluation_interval`, `tests[]` with `input_series` (series notation `1+1x10`),
//! `alert_rule_test` and `promql_expr_test`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ember_config::PromDuration;
use ember_model::{Labels, Sample, Series, stale_nan};
use ember_promql::{Engine, EngineOptions, QueryOptions, Value as PromValue};
use ember_storage::{AppendBatch, MemStorage};
use serde::Deserialize;

use crate::manager::{AlertState, ManagerOptions, RuleManager};
use crate::rulefile::{GroupDefaults, load_rule_files};
use crate::state::MemStateStore;

#[derive(Debug, Deserialize)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<PromDuration>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
struct TestGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interval: Option<PromDuration>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct InputSeries {
    series: String,
    #[serde(default)]
    values: String,
}

#[derive(Debug, Deserialize)]
struct AlertTest {
    eval_time: PromDuration,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct ExprTest {
    expr: String,
    eval_time: PromDuration,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    value: f64,
}

/// An alert as a unit test compares it: labels and annotations.
type LabelsAndAnnotations = (BTreeMap<String, String>, BTreeMap<String, String>);

/// The outcome of one test file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleTestReport {
    /// The file.
    pub file: String,
    /// Test groups run.
    pub tests: usize,
    /// Failures, one message each (`test name: what differed`). Empty means SUCCESS.
    pub failures: Vec<String>,
}

impl RuleTestReport {
    /// True when every test passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl std::fmt::Display for RuleTestReport {
    /// promtool's output: `Unit Testing:  FILE` then `  SUCCESS` or `  FAILED:` and the failures.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Unit Testing:  {}", self.file)?;
        if self.passed() {
            writeln!(f, "  SUCCESS")
        } else {
            writeln!(f, "  FAILED:")?;
            for m in &self.failures {
                writeln!(f, "    {m}")?;
            }
            Ok(())
        }
    }
}

/// Parses a series selector such as `up{job="x"}` into labels (equality matchers only).
pub fn parse_series_labels(s: &str) -> Result<Labels, String> {
    let expr = promql_parser::parser::parse(s).map_err(|e| format!("parsing series {s:?}: {e}"))?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(format!("{s:?} is not a series selector"));
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(n) = vs.name {
        pairs.push(("__name__".into(), n));
    }
    for m in vs.matchers.matchers {
        if !matches!(m.op, promql_parser::label::MatchOp::Equal) {
            return Err(format!("{s:?}: only = matchers describe a series"));
        }
        if m.name == "__name__" && pairs.iter().any(|(k, _)| k == "__name__") {
            continue;
        }
        pairs.push((m.name, m.value));
    }
    Ok(Labels::from_pairs(pairs))
}

fn parse_float(s: &str) -> Result<f64, String> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad number {s:?}")),
    }
}

/// Expands promtool's series notation (`1 2 _ stale 1+1x3 5x2 -2-1x2 _x3`) to optional values,
/// one per step (`None` = no sample, `Some(stale NaN)` = staleness marker).
pub fn expand_series_values(s: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        let (base, count) = match tok.rfind('x') {
            Some(i) => {
                let n: usize = tok[i + 1..]
                    .parse()
                    .map_err(|_| format!("bad repetition in {tok:?}"))?;
                (&tok[..i], Some(n))
            }
            None => (tok, None),
        };
        if base == "_" {
            out.extend(std::iter::repeat_n(None, count.unwrap_or(0) + 1));
            if count.is_some() {
                // `_xN` means N missing values.
                out.pop();
            }
            continue;
        }
        if base == "stale" {
            out.extend(std::iter::repeat_n(
                Some(stale_nan()),
                count.unwrap_or(0).max(1),
            ));
            continue;
        }
        let Some(n) = count else {
            out.push(Some(parse_float(base)?));
            continue;
        };
        // a+b / a-b / a
        let bytes = base.as_bytes();
        let op = (1..bytes.len()).find(|&i| {
            (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E')
        });
        let (start, step) = match op {
            Some(i) => {
                let a = parse_float(&base[..i])?;
                let b = parse_float(&base[i + 1..])?;
                (a, if bytes[i] == b'-' { -b } else { b })
            }
            None => (parse_float(base)?, 0.0),
        };
        let mut v = start;
        for _ in 0..=n {
            out.push(Some(v));
            v += step;
        }
    }
    Ok(out)
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Runs one promtool-format rule test file (relative `rule_files` against its directory).
pub async fn run_rule_tests(path: &Path) -> RuleTestReport {
    let mut report = RuleTestReport {
        file: path.display().to_string(),
        ..RuleTestReport::default()
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            report
                .failures
                .push(format!("reading {}: {e}", path.display()));
            return report;
        }
    };
    let tf: TestFile = match serde_saphyr::from_str(&text) {
        Ok(t) => t,
        Err(e) => {
            report
                .failures
                .push(format!("parsing {}: {e}", path.display()));
            return report;
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let eval_ms = tf
        .evaluation_interval
        .map(|d| d.as_millis())
        .unwrap_or(60_000)
        .max(1);
    let defaults = GroupDefaults {
        interval_ms: eval_ms,
        query_offset_ms: 0,
    };
    let mut groups = match load_rule_files(&tf.rule_files, base, defaults) {
        Ok(g) => g,
        Err(e) => {
            report.failures.push(e.to_string());
            return report;
        }
    };
    if !tf.group_eval_order.is_empty() {
        groups.sort_by_key(|g| {
            tf.group_eval_order
                .iter()
                .position(|n| *n == g.name)
                .unwrap_or(usize::MAX)
        });
    }
    for (i, t) in tf.tests.iter().enumerate() {
        report.tests += 1;
        let name = if t.name.is_empty() {
            format!("test {i}")
        } else {
            t.name.clone()
        };
        if let Err(msg) = run_one(t, &groups, eval_ms).await {
            for m in msg {
                report.failures.push(format!("{name}: {m}"));
            }
        }
    }
    report
}

async fn run_one(
    t: &TestGroup,
    groups: &[crate::rulefile::RuleGroup],
    eval_ms: i64,
) -> Result<(), Vec<String>> {
    let step = t.interval.map(|d| d.as_millis()).unwrap_or(eval_ms).max(1);
    let storage = Arc::new(MemStorage::new());
    let tenant = ember_model::DEFAULT_TENANT;
    let mut series = Vec::new();
    for s in &t.input_series {
        let labels = parse_series_labels(&s.series).map_err(|e| vec![e])?;
        let vals =
            expand_series_values(&s.values).map_err(|e| vec![format!("{}: {e}", s.series)])?;
        let samples: Vec<Sample> = vals
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| Sample::new(i as i64 * step, v)))
            .collect();
        series.push(Series::new(labels, samples));
    }
    storage
        .append_sync(
            tenant,
            AppendBatch {
                series,
                metadata: Vec::new(),
            },
        )
        .map_err(|e| vec![e.to_string()])?;
    let engine = Arc::new(Engine::new(EngineOptions::default()));
    let opts = ManagerOptions {
        external_labels: t.external_labels.clone(),
        external_url: t
            .external_url
            .clone()
            .unwrap_or_else(|| "http://localhost:9090".into()),
        ..ManagerOptions::default()
    };
    let mgr = RuleManager::new(
        storage.clone(),
        engine.clone(),
        Arc::new(MemStateStore::new()),
        opts,
    );
    mgr.set_groups(groups.to_vec());
    let mut alert_times: Vec<i64> = t
        .alert_rule_test
        .iter()
        .map(|a| a.eval_time.as_millis())
        .collect();
    alert_times.sort_unstable();
    alert_times.dedup();
    let maxt = alert_times
        .iter()
        .copied()
        .chain(t.promql_expr_test.iter().map(|e| e.eval_time.as_millis()))
        .max()
        .unwrap_or(0);
    let mut errors = Vec::new();
    // Firing alerts (labels, annotations) per alert name, captured at each alert eval time.
    let mut captured: BTreeMap<i64, BTreeMap<String, Vec<LabelsAndAnnotations>>> = BTreeMap::new();
    let mut ts = 0;
    let mut next_alert = 0;
    while ts <= maxt {
        for g in groups {
            if let Err(e) = mgr.evaluate_group_at(&g.key(), ts).await {
                errors.push(e.to_string());
            }
        }
        while next_alert < alert_times.len()
            && alert_times[next_alert] >= ts
            && alert_times[next_alert] < ts + eval_ms
        {
            let mut by_name: BTreeMap<String, Vec<_>> = BTreeMap::new();
            for (_, st) in mgr.snapshot() {
                for rt in st.rules.values() {
                    for a in rt.alerts.values().filter(|a| a.state == AlertState::Firing) {
                        let name = a.labels.get("alertname").cloned().unwrap_or_default();
                        by_name
                            .entry(name)
                            .or_default()
                            .push((a.labels.clone(), a.annotations.clone()));
                    }
                }
            }
            captured.insert(alert_times[next_alert], by_name);
            next_alert += 1;
        }
        ts += eval_ms;
    }
    for at in &t.alert_rule_test {
        let t_ms = at.eval_time.as_millis();
        let mut got = captured
            .get(&t_ms)
            .and_then(|m| m.get(&at.alertname))
            .cloned()
            .unwrap_or_default();
        let mut want: Vec<_> = at
            .exp_alerts
            .iter()
            .map(|e| {
                let mut l = e.exp_labels.clone();
                l.insert("alertname".into(), at.alertname.clone());
                (l, e.exp_annotations.clone())
            })
            .collect();
        got.sort();
        want.sort();
        if got != want {
            errors.push(format!(
                "alertname: {}, time: {}, exp: {want:?}, got: {got:?}",
                at.alertname,
                PromDuration::from_millis(t_ms.max(0) as u64)
            ));
        }
    }
    for et in &t.promql_expr_test {
        let t_ms = et.eval_time.as_millis();
        let res = engine
            .instant_query(&*storage, tenant, &et.expr, t_ms, &QueryOptions::default())
            .await;
        let mut got: Vec<(Labels, f64)> = match res {
            Ok(r) => match r.value {
                PromValue::Vector(v) => v.into_iter().map(|s| (s.labels, s.v)).collect(),
                PromValue::Scalar { v, .. } => vec![(Labels::empty(), v)],
                other => {
                    errors.push(format!(
                        "expr: {:?}: unexpected {} result",
                        et.expr,
                        other.type_name()
                    ));
                    continue;
                }
            },
            Err(e) => {
                errors.push(format!("expr: {:?}, time: {}: {e}", et.expr, et.eval_time));
                continue;
            }
        };
        let mut want = Vec::new();
        for s in &et.exp_samples {
            let l = if s.labels.trim().is_empty() {
                Ok(Labels::empty())
            } else {
                parse_series_labels(&s.labels)
            };
            match l {
                Ok(l) => want.push((l, s.value)),
                Err(e) => errors.push(e),
            }
        }
        got.sort_by(|a, b| a.0.cmp(&b.0));
        want.sort_by(|a, b| a.0.cmp(&b.0));
        let same = got.len() == want.len()
            && got
                .iter()
                .zip(&want)
                .all(|(g, w)| g.0 == w.0 && close(g.1, w.1));
        if !same {
            let fmt = |v: &[(Labels, f64)]| -> String {
                v.iter()
                    .map(|(l, x)| format!("{l} {x}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            errors.push(format!(
                "expr: {:?}, time: {}, exp: [{}], got: [{}]",
                et.expr,
                et.eval_time,
                fmt(&want),
                fmt(&got)
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_notation() {
        let v = expand_series_values("1+1x3 _ stale 5x2 -2-1x2 _x2 1e3").expect("parse");
        let nums: Vec<String> = v
            .iter()
            .map(|x| match x {
                None => "_".into(),
                Some(f) if ember_model::is_stale_nan(*f) => "stale".into(),
                Some(f) => f.to_string(),
            })
            .collect();
        assert_eq!(
            nums,
            vec![
                "1", "2", "3", "4", "_", "stale", "5", "5", "5", "-2", "-3", "-4", "_", "_", "1000"
            ]
        );
        assert!(expand_series_values("1+x").is_err());
    }

    #[test]
    fn series_labels() {
        let l = parse_series_labels("up{job=\"a\", instance=\"b\"}").expect("labels");
        assert_eq!(l.get("__name__"), Some("up"));
        assert_eq!(l.get("job"), Some("a"));
        assert!(parse_series_labels("up{job=~\"a\"}").is_err());
    }
}
