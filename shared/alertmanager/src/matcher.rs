//! Label matchers as Alertmanager writes them: `name="value"`, `name!="value"`,
//! `name=~"regex"`, `name!~"regex"` (regexes anchored), also unquoted values and `{…}` lists.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A matcher's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// Value or regex source.
    pub value: String,
    re: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.op == o.op && self.value == o.value
    }
}

impl Matcher {
    /// Builds a matcher, compiling regexes (anchored, as Alertmanager does).
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self> {
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| Error::Config(format!("bad regex in matcher {name}: {e}")))?,
            ),
            _ => None,
        };
        Ok(Self {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// `name="value"`.
    pub fn equal(name: &str, value: &str) -> Self {
        Self {
            name: name.to_string(),
            op: MatchOp::Equal,
            value: value.to_string(),
            re: None,
        }
    }

    /// `name=~"re"`.
    pub fn regex(name: &str, re: &str) -> Result<Self> {
        Self::new(name, MatchOp::Regex, re)
    }

    /// Whether `value` (empty when the label is missing) matches.
    pub fn matches_value(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether the label set matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_value(labels.get(&self.name).map(String::as_str).unwrap_or(""))
    }

    /// Parses one matcher (`a="b"`, `a=~b`, …).
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        let bad = |why: &str| Error::Config(format!("bad matcher {s:?}: {why}"));
        let pos = s.find(['=', '!']).ok_or_else(|| bad("no operator"))?;
        let name = s[..pos].trim();
        let name = name.trim_matches('"');
        if name.is_empty() {
            return Err(bad("empty label name"));
        }
        let rest = &s[pos..];
        let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
            (MatchOp::Regex, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (MatchOp::Equal, r)
        } else {
            return Err(bad("unknown operator"));
        };
        let rest = rest.trim();
        let value = if let Some(inner) = rest.strip_prefix('"') {
            let inner = inner
                .strip_suffix('"')
                .ok_or_else(|| bad("unterminated quote"))?;
            unescape(inner).map_err(|e| bad(&e))?
        } else {
            rest.to_string()
        };
        Self::new(name, op, &value)
    }
}

fn unescape(s: &str) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some(o) => {
                // Regex escapes (`\.`) pass through unchanged.
                out.push('\\');
                out.push(o);
            }
            None => return Err("trailing backslash".into()),
        }
    }
    Ok(out)
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.name,
            self.op.as_str(),
            serde_json::to_string(&self.value).unwrap_or_default()
        )
    }
}

/// A conjunction of matchers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    /// Parses `a="b"`, `a="b",c=~"d"` or `{a="b", c=~"d"}`.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        let s = s
            .strip_prefix('{')
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or(s);
        let mut out = Vec::new();
        for part in split_top(s) {
            if !part.trim().is_empty() {
                out.push(Matcher::parse(&part)?);
            }
        }
        Ok(Self(out))
    }

    /// Whether every matcher matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|m| m.matches(labels))
    }
}

impl std::fmt::Display for Matchers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "{{{}}}", parts.join(","))
    }
}

/// Splits on commas outside quotes.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    let mut esc = false;
    for c in s.chars() {
        if esc {
            cur.push(c);
            esc = false;
            continue;
        }
        match c {
            '\\' if in_q => {
                esc = true;
                cur.push(c);
            }
            '"' => {
                in_q = !in_q;
                cur.push(c);
            }
            ',' if !in_q => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Prometheus' label-set string: `{a="1", b="2"}` (sorted, as `model.LabelSet.String()`).
pub fn labelset_string(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap_or_default()))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Prometheus' label-set fingerprint (FNV-1a over sorted `name 0xff value 0xff`), as
/// Alertmanager prints it in webhook messages (`%016x`).
pub fn fingerprint(labels: &BTreeMap<String, String>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut add = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for (k, v) in labels {
        k.bytes().for_each(&mut add);
        add(0xff);
        v.bytes().for_each(&mut add);
        add(0xff);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parses_all_operators() {
        let m = Matchers::parse(r#"{severity="critical", env=~"prod|stage",team!="a", x!~b.*}"#)
            .unwrap();
        assert_eq!(m.0.len(), 4);
        assert_eq!(m.0[1].op, MatchOp::Regex);
        assert_eq!(m.0[3].value, "b.*");
        assert!(m.matches(&l(&[("severity", "critical"), ("env", "prod"), ("x", "c")])));
        assert!(!m.matches(&l(&[("severity", "critical"), ("env", "production")])));
        assert!(!m.matches(&l(&[
            ("severity", "critical"),
            ("env", "prod"),
            ("x", "bb")
        ])));
        assert_eq!(
            m.to_string(),
            r#"{severity="critical",env=~"prod|stage",team!="a",x!~"b.*"}"#
        );
        assert!(Matcher::parse("noop").is_err());
        assert!(Matcher::parse(r#"a=~"("#).is_err());
    }

    #[test]
    fn fingerprint_is_prometheus_fnv() {
        // Empty set: FNV offset basis, as model.LabelSet{}.Fingerprint().
        assert_eq!(fingerprint(&BTreeMap::new()), 0xcbf2_9ce4_8422_2325);
        let a = fingerprint(&l(&[("alertname", "A"), ("x", "1")]));
        let b = fingerprint(&l(&[("alertname", "A"), ("x", "2")]));
        assert_ne!(a, b);
        assert_eq!(
            labelset_string(&l(&[("b", "2"), ("a", "1")])),
            r#"{a="1", b="2"}"#
        );
    }
}
