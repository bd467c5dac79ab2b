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
    let query = go_string_bytes(query);
    promql_parser::parser::parse(&query)
        .map_err(|msg| PromqlError::Parse(format_parse_error(&query, &msg)))
}

/// Gives byte escapes (`\xNN`, octal `\NNN`) in quoted strings Go's meaning before
/// promql-parser sees them. In Go they are raw bytes: `"\xc3\xa9"` is `é`, and `"\xff"` is
/// invalid UTF-8 (so, e.g., an invalid label name). promql-parser reads each as a code
/// point instead (`\xff` = `ÿ`). Literals with byte escapes ≥ 0x80 are rewritten as their
/// decoded text, with bytes that do not form UTF-8 written as U+FFFD, which the engine
/// treats as invalid in label names as Prometheus does. Everything else is untouched.
fn go_string_bytes(query: &str) -> std::borrow::Cow<'_, str> {
    let b = query.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0; // bytes of `query` already copied to `out`
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'#' => i = memchr_or_end(b, i, b'\n'),
            b'`' => i = memchr_or_end(b, i + 1, b'`') + 1,
            q @ (b'"' | b'\'') => {
                let start = i;
                let Some((end, bytes, high_escape)) = go_unquote(b, i + 1, q) else {
                    return out.map_or(std::borrow::Cow::Borrowed(query), |mut o| {
                        o.push_str(&query[copied..]);
                        std::borrow::Cow::Owned(o)
                    });
                };
                if high_escape {
                    let o = out.get_or_insert_with(String::new);
                    o.push_str(&query[copied..start]);
                    o.push(q as char);
                    for c in String::from_utf8_lossy(&bytes).chars() {
                        match c {
                            '\\' => o.push_str("\\\\"),
                            '\n' => o.push_str("\\n"),
                            c if c as u32 == u32::from(q) => {
                                o.push('\\');
                                o.push(c);
                            }
                            c => o.push(c),
                        }
                    }
                    o.push(q as char);
                    copied = end + 1;
                }
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    match out {
        None => std::borrow::Cow::Borrowed(query),
        Some(mut o) => {
            o.push_str(&query[copied..]);
            std::borrow::Cow::Owned(o)
        }
    }
}

fn memchr_or_end(b: &[u8], from: usize, needle: u8) -> usize {
    b[from.min(b.len())..]
        .iter()
        .position(|&c| c == needle)
        .map_or(b.len(), |p| from + p)
}

/// Decodes a Go-quoted string body starting at `i` (after the opening quote `q`): the index
/// of the closing quote, the bytes, and whether a byte escape ≥ 0x80 occurred. `None` when
/// the literal is malformed (the parser will report it).
fn go_unquote(b: &[u8], mut i: usize, q: u8) -> Option<(usize, Vec<u8>, bool)> {
    let mut bytes = Vec::new();
    let mut high = false;
    let hex = |s: &[u8]| u32::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok();
    while i < b.len() {
        let c = b[i];
        if c == q {
            return Some((i, bytes, high));
        }
        if c == b'\n' {
            return None;
        }
        if c != b'\\' {
            bytes.push(c);
            i += 1;
            continue;
        }
        let e = *b.get(i + 1)?;
        i += 2;
        match e {
            b'x' => {
                let v = hex(b.get(i..i + 2)?)?;
                high |= v >= 0x80;
                bytes.push(v as u8);
                i += 2;
            }
            b'0'..=b'7' => {
                let v = u32::from_str_radix(std::str::from_utf8(b.get(i - 1..i + 2)?).ok()?, 8)
                    .ok()
                    .filter(|v| *v <= 255)?;
                high |= v >= 0x80;
                bytes.push(v as u8);
                i += 2;
            }
            b'u' | b'U' => {
                let n = if e == b'u' { 4 } else { 8 };
                let ch = char::from_u32(hex(b.get(i..i + n)?)?)?;
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                i += n;
            }
            b'a' => bytes.push(0x07),
            b'b' => bytes.push(0x08),
            b'f' => bytes.push(0x0c),
            b'n' => bytes.push(b'\n'),
            b'r' => bytes.push(b'\r'),
            b't' => bytes.push(b'\t'),
            b'v' => bytes.push(0x0b),
            b'\\' | b'"' | b'\'' => bytes.push(e),
            _ => return None,
        }
    }
    None
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
    fn byte_escapes_mean_bytes_as_in_go() {
        // Untouched: no byte escapes ≥ 0x80 (also inside comments and raw strings).
        for q in [
            r#"x{a="\x41"}"#,
            "x # \"\\xff\"",
            r#"label_replace(x, `\xff`, "", "", "")"#,
            r#"x{a='it\'s'}"#,
        ] {
            assert!(
                matches!(go_string_bytes(q), std::borrow::Cow::Borrowed(_)),
                "{q}"
            );
        }
        // Two bytes forming UTF-8 decode to that character.
        assert_eq!(go_string_bytes(r#"x{a="\xc3\xa9"}"#), r#"x{a="é"}"#);
        assert_eq!(go_string_bytes(r#"x{a="\303\251!"}"#), r#"x{a="é!"}"#);
        // An invalid byte becomes U+FFFD; quotes and backslashes stay escaped.
        assert_eq!(
            go_string_bytes(r#"f("\xff", 'a\'\xff', "\\\xff\"")"#),
            "f(\"\u{fffd}\", 'a\\'\u{fffd}', \"\\\\\u{fffd}\\\"\")"
        );
        let e = parse_query(r#"label_replace(x, "\xff", "", "src", "(.*)")"#).unwrap();
        assert!(format!("{e:?}").contains('\u{fffd}'));
    }

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
