//! Prometheus rule files: parsing, validation and loading from `rule_files` globs.

use std::collections::BTreeMap;
use std::path::Path;

use ember_config::PromDuration;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::{Result, RulesError};
use crate::template;

/// A rule file as written on disk: `groups:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<Spanned<RawGroup>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: String,
    #[serde(default)]
    interval: Option<PromDuration>,
    #[serde(default)]
    query_offset: Option<PromDuration>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    expr: Spanned<String>,
    #[serde(default, rename = "for")]
    for_: Option<PromDuration>,
    #[serde(default)]
    keep_firing_for: Option<PromDuration>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// `record: NAME` — the result is stored as series named NAME.
    Recording,
    /// `alert: NAME` — every result element is an alert.
    Alerting {
        /// `for`: how long the condition must hold before firing (ms).
        for_ms: i64,
        /// `keep_firing_for`: how long to keep firing after the condition clears (ms).
        keep_firing_for_ms: i64,
        /// Annotations (templates).
        annotations: BTreeMap<String, String>,
    },
}

/// One validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The recorded metric name or the alert name.
    pub name: String,
    /// The PromQL expression.
    pub expr: String,
    /// Labels added to results (templates for alerting rules).
    pub labels: BTreeMap<String, String>,
    /// Recording or alerting, with the alerting specifics.
    pub kind: RuleKind,
}

impl Rule {
    /// True for alerting rules.
    pub fn is_alerting(&self) -> bool {
        matches!(self.kind, RuleKind::Alerting { .. })
    }
}

/// One validated rule group.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    /// The file the group came from.
    pub file: String,
    /// Group name (unique per file).
    pub name: String,
    /// Evaluation interval (ms); the global `evaluation_interval` when absent.
    pub interval_ms: i64,
    /// Query offset (ms); the global `rule_query_offset` (or 0) when absent.
    pub query_offset_ms: i64,
    /// Maximum number of series a rule may produce (0 = no limit).
    pub limit: u64,
    /// Labels added to every rule of the group (rule labels win).
    pub labels: BTreeMap<String, String>,
    /// The rules, in file order.
    pub rules: Vec<Rule>,
}

impl RuleGroup {
    /// The key identifying the group: `file;name` (as Prometheus' `GroupKey`).
    pub fn key(&self) -> String {
        format!("{};{}", self.file, self.name)
    }
}

/// Defaults a file takes from the global configuration.
#[derive(Debug, Clone, Copy)]
pub struct GroupDefaults {
    /// `global.evaluation_interval` (ms).
    pub interval_ms: i64,
    /// `global.rule_query_offset` (ms).
    pub query_offset_ms: i64,
}

impl Default for GroupDefaults {
    fn default() -> Self {
        Self {
            interval_ms: 60_000,
            query_offset_ms: 0,
        }
    }
}

fn invalid(file: &str, line: u64, reason: impl Into<String>) -> RulesError {
    RulesError::Invalid {
        file: file.to_string(),
        line,
        reason: reason.into(),
    }
}

fn yaml_error_line(msg: &str) -> u64 {
    // serde-saphyr reports "... at line N, column M".
    let re = regex::Regex::new(r"line (\d+)").ok();
    re.and_then(|re| {
        re.captures(msg)
            .and_then(|c| c.get(1)?.as_str().parse().ok())
    })
    .unwrap_or(0)
}

/// Parses and validates one rule file's text. Any error rejects the whole file.
pub fn parse_rule_file(text: &str, file: &str, defaults: GroupDefaults) -> Result<Vec<RuleGroup>> {
    let raw: RawFile = serde_saphyr::from_str(text).map_err(|e| {
        let msg = e.to_string();
        invalid(file, yaml_error_line(&msg), msg)
    })?;
    let mut groups = Vec::new();
    let mut names = std::collections::HashSet::new();
    for g in raw.groups {
        let line = g.referenced.line();
        let g = g.value;
        if g.name.is_empty() {
            return Err(invalid(file, line, "group name must not be empty"));
        }
        if !names.insert(g.name.clone()) {
            return Err(invalid(
                file,
                line,
                format!("groupname: \"{}\" is repeated in the same file", g.name),
            ));
        }
        for k in g.labels.keys() {
            check_label_name(file, line, k)?;
        }
        let mut rules = Vec::new();
        for r in g.rules {
            let rline = r.referenced.line();
            rules.push(validate_rule(file, rline, r.value)?);
        }
        let interval_ms = g
            .interval
            .map(|d| d.as_millis())
            .unwrap_or(defaults.interval_ms);
        if interval_ms <= 0 {
            return Err(invalid(file, line, "group interval must be positive"));
        }
        groups.push(RuleGroup {
            file: file.to_string(),
            name: g.name,
            interval_ms,
            query_offset_ms: g
                .query_offset
                .map(|d| d.as_millis())
                .unwrap_or(defaults.query_offset_ms),
            limit: g.limit.unwrap_or(0),
            labels: g.labels,
            rules,
        });
    }
    Ok(groups)
}

fn check_label_name(file: &str, line: u64, name: &str) -> Result<()> {
    if !ember_model::labels::is_valid_legacy_label_name(name) {
        return Err(invalid(file, line, format!("invalid label name: {name}")));
    }
    Ok(())
}

fn validate_rule(file: &str, line: u64, r: RawRule) -> Result<Rule> {
    let expr_line = r.expr.referenced.line();
    let expr = r.expr.value;
    if expr.trim().is_empty() {
        return Err(invalid(file, line, "field 'expr' must be set in rule"));
    }
    if let Err(e) = promql_parser::parser::parse(&expr) {
        return Err(invalid(
            file,
            expr_line,
            format!("could not parse expression: {e}"),
        ));
    }
    for k in r.labels.keys() {
        check_label_name(file, line, k)?;
    }
    let (name, kind) = match (r.record, r.alert) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                file,
                line,
                "only one of 'record' and 'alert' must be set",
            ));
        }
        (None, None) => {
            return Err(invalid(
                file,
                line,
                "one of 'record' or 'alert' must be set",
            ));
        }
        (Some(record), None) => {
            if !ember_model::labels::is_valid_legacy_metric_name(&record) {
                return Err(invalid(
                    file,
                    line,
                    format!("invalid recording rule name: {record}"),
                ));
            }
            if !r.annotations.is_empty() {
                return Err(invalid(
                    file,
                    line,
                    "invalid field 'annotations' in recording rule",
                ));
            }
            if r.for_.is_some() {
                return Err(invalid(file, line, "invalid field 'for' in recording rule"));
            }
            if r.keep_firing_for.is_some() {
                return Err(invalid(
                    file,
                    line,
                    "invalid field 'keep_firing_for' in recording rule",
                ));
            }
            (record, RuleKind::Recording)
        }
        (None, Some(alert)) => {
            if alert.is_empty() {
                return Err(invalid(file, line, "alert name must not be empty"));
            }
            for (k, v) in r.labels.iter().chain(r.annotations.iter()) {
                if let Err(e) = template::parse(v) {
                    return Err(invalid(file, line, format!("template {k}: {e}")));
                }
            }
            for k in r.annotations.keys() {
                check_label_name(file, line, k)?;
            }
            (
                alert,
                RuleKind::Alerting {
                    for_ms: r.for_.map(|d| d.as_millis()).unwrap_or(0),
                    keep_firing_for_ms: r.keep_firing_for.map(|d| d.as_millis()).unwrap_or(0),
                    annotations: r.annotations,
                },
            )
        }
    };
    Ok(Rule {
        name,
        expr,
        labels: r.labels,
        kind,
    })
}

/// Reads and validates one rule file.
pub fn load_rule_file(path: &Path, defaults: GroupDefaults) -> Result<Vec<RuleGroup>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| RulesError::Io {
        file: file.clone(),
        message: e.to_string(),
    })?;
    parse_rule_file(&text, &file, defaults)
}

/// Expands `rule_files` globs (relative to `base_dir`) and loads every matching file, sorted by
/// path. The first invalid file fails the whole load, so a caller can keep its running rules.
pub fn load_rule_files(
    patterns: &[String],
    base_dir: &Path,
    defaults: GroupDefaults,
) -> Result<Vec<RuleGroup>> {
    let mut paths = Vec::new();
    for p in patterns {
        let full = if Path::new(p).is_absolute() {
            p.clone()
        } else {
            base_dir.join(p).display().to_string()
        };
        let entries = glob::glob(&full).map_err(|e| RulesError::Glob {
            pattern: p.clone(),
            message: e.to_string(),
        })?;
        for entry in entries {
            let path = entry.map_err(|e| RulesError::Io {
                file: e.path().display().to_string(),
                message: e.to_string(),
            })?;
            paths.push(path);
        }
    }
    paths.sort();
    paths.dedup();
    let mut groups = Vec::new();
    for p in paths {
        groups.extend(load_rule_file(&p, defaults)?);
    }
    Ok(groups)
}
