//! Parsing: `promql-parser` plus Prometheus-style error messages and matcher conversion.

use ember_model::{METRIC_NAME, Matcher};
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{Expr, VectorSelector};

use crate::PromqlError;

/// Parses a query, mapping errors to `PromqlError::Parse` with a Prometheus-like prefix.
pub(crate) fn parse_query(query: &str) -> Result<Expr, PromqlError> {
    if query.trim().is_empty() {
        return Err(PromqlError::Parse(
            "1:1: parse error: no expression found in input".into(),
        ));
    }
    promql_parser::parser::parse(query)
        .map_err(|msg| PromqlError::Parse(format_parse_error(query, &msg)))
}

fn format_parse_error(query: &str, msg: &str) -> String {
    let (line, col) = guess_position(query, msg);
    format!("{line}:{col}: parse error: {}", prometheus_wording(msg))
}

/// Rewrites promql-parser's type names and quoting into Prometheus' wording.
fn prometheus_wording(msg: &str) -> String {
    let Some(rest) = msg.strip_prefix("expected type ") else {
        return msg.to_string();
    };
    let ty = |t: &str| match t {
        "matrix" => "range vector".to_string(),
        "vector" => "instant vector".to_string(),
        other => other.to_string(),
    };
    // "expected type matrix in call to function 'rate', got vector"
    if let Some((want, tail)) = rest.split_once(" in call to function '")
        && let Some((func, got)) = tail.split_once("', got ")
    {
        return format!(
            "expected type {} in call to function {func:?}, got {}",
            ty(want),
            ty(got)
        );
    }
    msg.to_string()
}

/// A best-effort position for a parser message that carries none.
fn guess_position(query: &str, msg: &str) -> (usize, usize) {
    let at_end =
        msg.contains("end of input") || msg.contains("unclosed") || msg.contains("unterminated");
    let offset = if at_end { query.trim_end().len() } else { 0 };
    line_col(query, offset)
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(query: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(query.len());
    let before = &query[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |i| offset - i - 1) + 1;
    (line, col)
}

/// Converts a parsed selector's matchers into storage matchers. A selector with `or`
/// alternatives yields one matcher set per alternative.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, PromqlError> {
    let mut sets = Vec::new();
    if vs.matchers.or_matchers.is_empty() {
        sets.push(convert(vs, &vs.matchers.matchers)?);
    } else {
        for alt in &vs.matchers.or_matchers {
            let mut ms = convert(vs, alt)?;
            ms.extend(convert(vs, &vs.matchers.matchers)?);
            sets.push(ms);
        }
    }
    Ok(sets)
}

fn convert(
    vs: &VectorSelector,
    ms: &[promql_parser::label::Matcher],
) -> Result<Vec<Matcher>, PromqlError> {
    let mut out = Vec::with_capacity(ms.len() + 1);
    if let Some(name) = &vs.name
        && !ms
            .iter()
            .any(|m| m.name == METRIC_NAME && matches!(m.op, PMatchOp::Equal) && &m.value == name)
    {
        out.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    for m in ms {
        let bad =
            |e: ember_model::MatcherError| PromqlError::Parse(format!("1:1: parse error: {e}"));
        out.push(match &m.op {
            PMatchOp::Equal => Matcher::equal(m.name.clone(), m.value.clone()),
            PMatchOp::NotEqual => Matcher::not_equal(m.name.clone(), m.value.clone()),
            PMatchOp::Re(_) => Matcher::regex(m.name.clone(), m.value.clone()).map_err(bad)?,
            PMatchOp::NotRe(_) => {
                Matcher::not_regex(m.name.clone(), m.value.clone()).map_err(bad)?
            }
        });
    }
    Ok(out)
}

/// Labels implied by a selector's equality matchers (for `absent`): only `=` matchers whose
/// name appears once; never the metric name.
pub(crate) fn absent_labels(vs: &VectorSelector) -> ember_model::Labels {
    let mut b = ember_model::LabelsBuilder::new();
    let mut all: Vec<(&str, bool, &str)> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name != METRIC_NAME {
            all.push((&m.name, matches!(m.op, PMatchOp::Equal), &m.value));
        }
    }
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (n, _, _) in &all {
        *seen.entry(n).or_default() += 1;
    }
    for (n, eq, v) in &all {
        if *eq && seen.get(n) == Some(&1) {
            b.set(*n, *v);
        }
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_have_position_prefix() {
        let e = parse_query("sum(x").unwrap_err().to_string();
        assert!(e.starts_with("1:"), "{e}");
        assert!(e.contains("parse error"), "{e}");
        assert!(parse_query("").is_err());
        let e = parse_query("rate(x)").unwrap_err().to_string();
        assert!(
            e.ends_with(
                "expected type range vector in call to function \"rate\", got instant vector"
            ),
            "{e}"
        );
    }

    #[test]
    fn line_col_counts_lines() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("abc", 0), (1, 1));
    }
}
