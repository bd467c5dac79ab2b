//! `relabel_configs` / `metric_relabel_configs`, with Prometheus' defaults, validation and semantics.
//!
//! * Defaults: `action: replace`, `separator: ";"`, `regex: "(.*)"`, `replacement: "$1"`.
//! * Regexes are fully anchored, as Prometheus compiles them: `^(?s:<regex>)$`.
//! * `$1`, `${1}`, `$name`, `${name}` and `$$` in `replacement` and `target_label` expand
//!   like Go's `Regexp.Expand` (the longest name wins: `$1x` is the group named `1x`).
//! * Setting a label to the empty string deletes it.

use std::fmt;

use ember_model::{Labels, LabelsBuilder};
use md5::{Digest, Md5};
use serde::{Deserialize, Deserializer};

/// A relabeling action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Sets `target_label` to the expanded `replacement` when `regex` matches the joined source labels.
    #[default]
    Replace,
    /// Keeps the target/series only if `regex` matches.
    Keep,
    /// Drops the target/series if `regex` matches.
    Drop,
    /// Keeps it only if the joined source labels equal the value of `target_label`.
    KeepEqual,
    /// Drops it if the joined source labels equal the value of `target_label`.
    DropEqual,
    /// Sets `target_label` to the MD5 hash of the joined source labels modulo `modulus`.
    HashMod,
    /// Copies labels whose names match `regex` to the names given by `replacement`.
    LabelMap,
    /// Removes labels whose names match `regex`.
    LabelDrop,
    /// Removes labels whose names do not match `regex`.
    LabelKeep,
    /// Sets `target_label` to the lowercased joined source labels.
    Lowercase,
    /// Sets `target_label` to the uppercased joined source labels.
    Uppercase,
}

impl Action {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

/// A regex as Prometheus uses it in relabeling: anchored at both ends, `.` matching newlines.
#[derive(Clone)]
pub struct RelabelRegex {
    source: String,
    regex: regex::Regex,
}

impl RelabelRegex {
    /// Compiles `source` anchored (`^(?s:source)$`).
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let regex = regex::Regex::new(&format!("^(?s:{source})$"))?;
        Ok(Self {
            source: source.to_string(),
            regex,
        })
    }

    /// The regex as written in the config.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }

    /// The compiled, anchored regex.
    pub fn regex(&self) -> &regex::Regex {
        &self.regex
    }
}

impl Default for RelabelRegex {
    fn default() -> Self {
        // The default pattern always compiles; fall back to a regex that matches everything.
        Self::new(DEFAULT_REGEX).unwrap_or_else(|_| Self {
            source: DEFAULT_REGEX.to_string(),
            regex: regex_match_all(),
        })
    }
}

fn regex_match_all() -> regex::Regex {
    // `(?s).*` is a fixed, valid pattern.
    regex::Regex::new("(?s)^(.*)$").unwrap_or_else(|_| unreachable!("fixed pattern compiles"))
}

impl fmt::Debug for RelabelRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelabelRegex({:?})", self.source)
    }
}

impl PartialEq for RelabelRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl<'de> Deserialize<'de> for RelabelRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RelabelRegex::new(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid regex {s:?}: {e}")))
    }
}

const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REPLACEMENT: &str = "$1";

fn default_separator() -> String {
    DEFAULT_SEPARATOR.to_string()
}

fn default_replacement() -> String {
    DEFAULT_REPLACEMENT.to_string()
}

/// One relabeling step.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` to form the input.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Separator for the joined source label values (default `;`).
    #[serde(default = "default_separator")]
    pub separator: String,
    /// The anchored regex (default `(.*)`).
    #[serde(default)]
    pub regex: RelabelRegex,
    /// Modulus for `hashmod`.
    #[serde(default)]
    pub modulus: u64,
    /// The label written by `replace`, `hashmod`, `lowercase`, `uppercase`, and compared by
    /// `keepequal`/`dropequal`.
    #[serde(default)]
    pub target_label: String,
    /// The replacement template (default `$1`).
    #[serde(default = "default_replacement")]
    pub replacement: String,
    /// The action (default `replace`).
    #[serde(default)]
    pub action: Action,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        Self {
            source_labels: Vec::new(),
            separator: default_separator(),
            regex: RelabelRegex::default(),
            modulus: 0,
            target_label: String::new(),
            replacement: default_replacement(),
            action: Action::Replace,
        }
    }
}

/// A relabel config that Prometheus would refuse to load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("relabel config (action {action}): {message}")]
pub struct RelabelConfigError {
    /// The action of the offending step.
    pub action: &'static str,
    /// What is wrong.
    pub message: String,
}

impl RelabelConfig {
    /// Checks the step the way Prometheus' `RelabelConfig.Validate` does.
    pub fn validate(&self) -> Result<(), RelabelConfigError> {
        let err = |m: &str| {
            Err(RelabelConfigError {
                action: self.action.as_str(),
                message: m.to_string(),
            })
        };
        let a = self.action;
        if a == Action::HashMod && self.modulus == 0 {
            return err("relabel configuration for hashmod requires non-zero modulus");
        }
        let needs_target = matches!(
            a,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && self.target_label.is_empty() {
            return err(&format!(
                "relabel configuration for {} action requires 'target_label' value",
                a.as_str()
            ));
        }
        if a == Action::Replace
            && !self.target_label.contains('$')
            && !is_label_name(&self.target_label)
        {
            return err(&format!(
                "{:?} is invalid 'target_label' for replace action",
                self.target_label
            ));
        }
        if matches!(
            a,
            Action::Lowercase
                | Action::Uppercase
                | Action::HashMod
                | Action::KeepEqual
                | Action::DropEqual
        ) && !is_label_name(&self.target_label)
        {
            return err(&format!(
                "{:?} is invalid 'target_label' for {} action",
                self.target_label,
                a.as_str()
            ));
        }
        if matches!(
            a,
            Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual
        ) && self.replacement != DEFAULT_REPLACEMENT
        {
            return err(&format!(
                "'replacement' can not be set for {} action",
                a.as_str()
            ));
        }
        if a == Action::LabelMap
            && !self.replacement.contains('$')
            && !is_label_name(&self.replacement)
        {
            return err(&format!(
                "{:?} is invalid 'replacement' for labelmap action",
                self.replacement
            ));
        }
        if matches!(a, Action::LabelDrop | Action::LabelKeep)
            && (!self.source_labels.is_empty()
                || !self.target_label.is_empty()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return err(&format!(
                "{} action requires only 'regex', and no other fields",
                a.as_str()
            ));
        }
        if matches!(a, Action::KeepEqual | Action::DropEqual)
            && (self.regex.as_str() != DEFAULT_REGEX
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR)
        {
            return err(&format!(
                "{} action requires only 'source_labels' and `target_label`, and no other fields",
                a.as_str()
            ));
        }
        Ok(())
    }
}

fn is_label_name(s: &str) -> bool {
    ember_model::labels::is_valid_legacy_label_name(s)
}

/// Applies `configs` in order to `labels`. Returns `None` when a step drops the set.
pub fn process(labels: &Labels, configs: &[RelabelConfig]) -> Option<Labels> {
    if configs.is_empty() {
        return Some(labels.clone());
    }
    let mut lb = labels.to_builder();
    for cfg in configs {
        if !apply(cfg, &mut lb) {
            return None;
        }
    }
    Some(lb.build())
}

/// Applies one step to a builder; returns `false` when the set is dropped.
pub fn apply(cfg: &RelabelConfig, lb: &mut LabelsBuilder) -> bool {
    let val = match cfg.source_labels.len() {
        0 => String::new(),
        1 => lb.get(&cfg.source_labels[0]).unwrap_or("").to_string(),
        _ => {
            let mut v = String::new();
            for (i, name) in cfg.source_labels.iter().enumerate() {
                if i > 0 {
                    v.push_str(&cfg.separator);
                }
                v.push_str(lb.get(name).unwrap_or(""));
            }
            v
        }
    };
    match cfg.action {
        Action::Drop => {
            if cfg.regex.is_match(&val) {
                return false;
            }
        }
        Action::Keep => {
            if !cfg.regex.is_match(&val) {
                return false;
            }
        }
        Action::DropEqual => {
            if lb.get(&cfg.target_label).unwrap_or("") == val {
                return false;
            }
        }
        Action::KeepEqual => {
            if lb.get(&cfg.target_label).unwrap_or("") != val {
                return false;
            }
        }
        Action::Replace => {
            let Some(caps) = cfg.regex.regex().captures(&val) else {
                return true;
            };
            let mut target = String::new();
            caps.expand(&cfg.target_label, &mut target);
            if !is_label_name(&target) {
                return true;
            }
            let mut res = String::new();
            caps.expand(&cfg.replacement, &mut res);
            if res.is_empty() {
                lb.del(&target);
            } else {
                lb.set(target, res);
            }
        }
        Action::Lowercase => {
            lb.set(cfg.target_label.clone(), val.to_lowercase());
        }
        Action::Uppercase => {
            lb.set(cfg.target_label.clone(), val.to_uppercase());
        }
        Action::HashMod => {
            let hash = Md5::digest(val.as_bytes());
            let mut last8 = [0u8; 8];
            last8.copy_from_slice(&hash[8..16]);
            let m = u64::from_be_bytes(last8) % cfg.modulus.max(1);
            lb.set(cfg.target_label.clone(), m.to_string());
        }
        Action::LabelMap => {
            let current = lb.build();
            for l in current.iter() {
                if let Some(caps) = cfg.regex.regex().captures(&l.name) {
                    let mut name = String::new();
                    caps.expand(&cfg.replacement, &mut name);
                    lb.set(name, l.value.clone());
                }
            }
        }
        Action::LabelDrop => {
            lb.retain(|l| !cfg.regex.is_match(&l.name));
        }
        Action::LabelKeep => {
            lb.retain(|l| cfg.regex.is_match(&l.name));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> RelabelConfig {
        let c: RelabelConfig =
            serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        c.validate().unwrap_or_else(|e| panic!("{yaml}: {e}"));
        c
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn run(yaml: &str, input: &[(&str, &str)]) -> Option<Labels> {
        process(&labels(input), &[cfg(yaml)])
    }

    #[test]
    fn defaults_match_prometheus() {
        let c = cfg("target_label: x");
        assert_eq!(c.action, Action::Replace);
        assert_eq!(c.separator, ";");
        assert_eq!(c.regex.as_str(), "(.*)");
        assert_eq!(c.replacement, "$1");
        assert_eq!(c.modulus, 0);
    }

    #[test]
    fn replace_with_expansion_and_anchoring() {
        let input = [("__address__", "10.0.0.1:9100"), ("env", "prod")];
        // `$1`, `${1}` and named groups, on joined source labels.
        let out = run(
            "{source_labels: [__address__, env], regex: '(.+):(\\d+);(.*)', target_label: instance, replacement: '${1}-$3'}",
            &input,
        )
        .unwrap();
        assert_eq!(out.get("instance"), Some("10.0.0.1-prod"));
        let out =
            run("{source_labels: [__address__], regex: '(?P<host>[^:]+):.*', target_label: host, replacement: '$host'}", &input)
                .unwrap();
        assert_eq!(out.get("host"), Some("10.0.0.1"));
        // Anchored: "0.0.1" alone does not match the whole value, so nothing changes.
        let out = run(
            "{source_labels: [__address__], regex: '0\\.0\\.1', target_label: x, replacement: y}",
            &input,
        )
        .unwrap();
        assert_eq!(out.get("x"), None);
        // `$1x` is the (missing) group named `1x`: empty, so the target label is deleted.
        let out = run(
            "{source_labels: [env], target_label: env, replacement: '$1x'}",
            &input,
        )
        .unwrap();
        assert_eq!(out.get("env"), None);
        // `$$` is a literal dollar; target label may be templated.
        let out = run(
            "{source_labels: [env], regex: '(p)rod', target_label: 'lbl_$1', replacement: '$$5'}",
            &input,
        )
        .unwrap();
        assert_eq!(out.get("lbl_p"), Some("$5"));
        // The default regex matches a missing label (empty string): static replacement sets a label.
        let out = run("{target_label: team, replacement: core}", &input).unwrap();
        assert_eq!(out.get("team"), Some("core"));
        // An invalid expanded target label name is skipped.
        let out = run("{source_labels: [env], target_label: '${1}-x'}", &input).unwrap();
        assert_eq!(out, labels(&input));
        // `.` matches newlines (Prometheus compiles with (?s)).
        let out = run(
            "{source_labels: [m], regex: 'a.b', target_label: ok, replacement: yes}",
            &[("m", "a\nb")],
        )
        .unwrap();
        assert_eq!(out.get("ok"), Some("yes"));
    }

    #[test]
    fn keep_and_drop() {
        let input = [("__meta_ec2_private_ip", "127.0.0.1"), ("job", "node")];
        assert!(
            run(
                "{source_labels: [__meta_ec2_private_ip], regex: '127\\..*', action: keep}",
                &input
            )
            .is_some()
        );
        assert!(
            run(
                "{source_labels: [__meta_ec2_private_ip], regex: '10\\..*', action: keep}",
                &input
            )
            .is_none()
        );
        assert!(
            run(
                "{source_labels: [__meta_ec2_private_ip], regex: '127\\..*', action: drop}",
                &input
            )
            .is_none()
        );
        // Anchoring: a partial match does not count.
        assert!(run("{source_labels: [job], regex: 'no', action: drop}", &input).is_some());
        // Missing labels join as empty strings.
        assert!(
            run(
                "{source_labels: [missing, job], regex: ';node', action: keep}",
                &input
            )
            .is_some()
        );
    }

    #[test]
    fn keepequal_and_dropequal() {
        let input = [("a", "x"), ("b", "x"), ("c", "y")];
        assert!(
            run(
                "{source_labels: [a], target_label: b, action: keepequal}",
                &input
            )
            .is_some()
        );
        assert!(
            run(
                "{source_labels: [a], target_label: c, action: keepequal}",
                &input
            )
            .is_none()
        );
        assert!(
            run(
                "{source_labels: [a], target_label: b, action: dropequal}",
                &input
            )
            .is_none()
        );
        assert!(
            run(
                "{source_labels: [a], target_label: c, action: dropequal}",
                &input
            )
            .is_some()
        );
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // MD5("foo") = acbd18db4cc2f85cedef654fccc4a4d8; last 8 bytes 0xedef654fccc4a4d8.
        let out = run(
            "{source_labels: [a], modulus: 1000, target_label: shard, action: hashmod}",
            &[("a", "foo")],
        )
        .unwrap();
        assert_eq!(
            out.get("shard"),
            Some(((0xedef_654f_ccc4_a4d8u64) % 1000).to_string().as_str())
        );
    }

    #[test]
    fn labelmap_labeldrop_labelkeep() {
        let input = [
            ("__meta_ec2_tag_Name", "web"),
            ("__meta_ec2_tag_env", "prod"),
            ("job", "node"),
        ];
        let out = run("{regex: '__meta_ec2_tag_(.+)', action: labelmap}", &input).unwrap();
        assert_eq!(out.get("Name"), Some("web"));
        assert_eq!(out.get("env"), Some("prod"));
        assert_eq!(
            out.get("__meta_ec2_tag_env"),
            Some("prod"),
            "labelmap copies, it does not move"
        );
        let out = run(
            "{regex: '__meta_ec2_tag_(.+)', replacement: 'tag_${1}', action: labelmap}",
            &input,
        )
        .unwrap();
        assert_eq!(out.get("tag_env"), Some("prod"));
        let out = run("{regex: '__meta_.*', action: labeldrop}", &input).unwrap();
        assert_eq!(out, labels(&[("job", "node")]));
        let out = run("{regex: '__meta_ec2_tag_.*', action: labelkeep}", &input).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out.get("job"), None);
    }

    #[test]
    fn lowercase_and_uppercase() {
        let input = [("a", "MiXeD"), ("b", "Two")];
        let out = run(
            "{source_labels: [a, b], target_label: low, action: lowercase}",
            &input,
        )
        .unwrap();
        assert_eq!(out.get("low"), Some("mixed;two"));
        let out = run(
            "{source_labels: [a], target_label: up, action: uppercase}",
            &input,
        )
        .unwrap();
        assert_eq!(out.get("up"), Some("MIXED"));
    }

    #[test]
    fn invalid_configs_are_rejected_like_prometheus() {
        let bad = |yaml: &str| {
            let c: Result<RelabelConfig, _> = serde_saphyr::from_str(yaml);
            if let Ok(c) = c {
                assert!(c.validate().is_err(), "{yaml} should be invalid");
            }
        };
        bad("{action: hashmod, target_label: x}");
        bad("{action: replace}");
        bad("{action: replace, target_label: '1bad'}");
        bad("{action: labeldrop, regex: x, source_labels: [a]}");
        bad("{action: keepequal, source_labels: [a]}");
        bad("{action: lowercase, target_label: x, replacement: y}");
        bad("{action: frobnicate}");
        bad("{regex: '(', target_label: x}");
        bad("{target_label: x, unknown_field: 1}");
    }

    #[test]
    fn steps_apply_in_order_and_empty_result_deletes() {
        let configs = [
            cfg("{source_labels: [__address__], target_label: instance}"),
            cfg("{source_labels: [nope], target_label: instance}"),
        ];
        let out = process(&labels(&[("__address__", "h:1")]), &configs).unwrap();
        assert_eq!(out.get("instance"), None);
    }
}
