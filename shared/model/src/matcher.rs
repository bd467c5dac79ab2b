//! Label matchers, with Prometheus semantics (fully anchored regexes; an empty
//! value matches a missing label).

use regex::Regex;

/// How a matcher compares a label value.
#[derive(Debug, Clone)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` with the compiled, anchored regex.
    Regex(Regex),
    /// `!~` with the compiled, anchored regex.
    NotRegex(Regex),
}

/// A label matcher such as `job=~"api|web"`.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The operator (with its compiled regex).
    pub op: MatchOp,
    /// The value or regex source as written.
    pub value: String,
}

/// A matcher that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    /// The regex did not compile.
    #[error("invalid regular expression {pattern:?}: {source}")]
    BadRegex {
        /// The regex as written.
        pattern: String,
        /// Why it failed.
        source: regex::Error,
    },
}

impl Matcher {
    /// `name = value`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
        }
    }

    /// `name != value`.
    pub fn not_equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::NotEqual,
            value: value.into(),
        }
    }

    /// `name =~ pattern` (anchored as `^(?:pattern)$`).
    pub fn regex(
        name: impl Into<String>,
        pattern: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let value = pattern.into();
        Ok(Self {
            name: name.into(),
            op: MatchOp::Regex(anchored(&value)?),
            value,
        })
    }

    /// `name !~ pattern` (anchored as `^(?:pattern)$`).
    pub fn not_regex(
        name: impl Into<String>,
        pattern: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let value = pattern.into();
        Ok(Self {
            name: name.into(),
            op: MatchOp::NotRegex(anchored(&value)?),
            value,
        })
    }

    /// Whether a label value (`""` when the label is absent) matches.
    pub fn matches(&self, value: &str) -> bool {
        match &self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex(re) => re.is_match(value),
            MatchOp::NotRegex(re) => !re.is_match(value),
        }
    }

    /// Whether this matcher matches the empty string, i.e. also series without the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// The operator as PromQL writes it.
    pub fn op_str(&self) -> &'static str {
        match self.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex(_) => "=~",
            MatchOp::NotRegex(_) => "!~",
        }
    }

    /// Whether a whole label set matches.
    pub fn matches_labels(&self, labels: &crate::Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op_str(), self.value)
    }
}

/// Whether every matcher matches `labels`.
pub fn matches_all(matchers: &[Matcher], labels: &crate::Labels) -> bool {
    matchers.iter().all(|m| m.matches_labels(labels))
}

fn anchored(pattern: &str) -> Result<Regex, MatcherError> {
    Regex::new(&format!("^(?s:{pattern})$")).map_err(|source| MatcherError::BadRegex {
        pattern: pattern.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Labels;

    #[test]
    fn regex_is_anchored() {
        let m = Matcher::regex("job", "api|web").unwrap();
        assert!(m.matches("api"));
        assert!(!m.matches("xapi"));
        assert!(!m.matches_empty());
    }

    #[test]
    fn empty_value_matches_missing_label() {
        let l = Labels::from_pairs([("a", "1")]);
        assert!(Matcher::equal("b", "").matches_labels(&l));
        assert!(!Matcher::not_equal("b", "").matches_labels(&l));
        assert!(Matcher::regex("b", ".*").unwrap().matches_labels(&l));
    }
}
