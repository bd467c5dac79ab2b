//! Parsing of test scripts: commands, series descriptions and durations.

use std::sync::OnceLock;

use ember_model::{Labels, LabelsBuilder, METRIC_NAME, stale_nan};
use regex::Regex;

/// One point of a series description.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Point {
    /// No sample at this position (`_`).
    Omitted,
    /// A float sample.
    Value(f64),
    /// A native-histogram literal (`{{…}}`), not supported as data here.
    Histogram,
}

/// An `expect` line.
#[derive(Debug, Clone)]
pub(crate) struct Expect {
    pub(crate) kind: String,
    pub(crate) msg: Option<String>,
    pub(crate) regex: Option<Regex>,
}

impl Expect {
    pub(crate) fn matches(&self, s: &str) -> bool {
        match (&self.msg, &self.regex) {
            (Some(m), _) => m == s,
            (_, Some(r)) => r.is_match(s),
            _ => true,
        }
    }
}

/// What an eval expects as result.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expected {
    pub(crate) scalar: Option<f64>,
    pub(crate) string: Option<String>,
    pub(crate) series: Vec<(Labels, Vec<Point>)>,
    pub(crate) range_vector: Option<(i64, i64, i64)>,
}

/// One command of a script.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    Load {
        step: i64,
        series: Vec<(Labels, Vec<Point>)>,
        with_nhcb: bool,
    },
    Clear,
    Eval(Box<EvalCmd>),
}

/// An `eval` command.
#[derive(Debug, Clone)]
pub(crate) struct EvalCmd {
    pub(crate) line: usize,
    pub(crate) query: String,
    pub(crate) range: Option<(i64, i64, i64)>,
    pub(crate) at: i64,
    pub(crate) fail: bool,
    pub(crate) ordered: bool,
    pub(crate) warn: bool,
    pub(crate) info: bool,
    pub(crate) expects: Vec<Expect>,
    pub(crate) fail_msg: Option<String>,
    pub(crate) fail_regex: Option<Regex>,
    pub(crate) expected: Expected,
    pub(crate) uses_histogram_literal: bool,
}

fn re(cell: &'static OnceLock<Regex>, pat: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pat).expect("constant regex is valid"))
}

/// Parses a Prometheus duration (`1m`, `10s53ms`, `0`, `-5m`) into ms.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let mut total: i64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let d = rest.find(|c: char| !c.is_ascii_digit())?;
        if d == 0 {
            return None;
        }
        let num: i64 = rest[..d].parse().ok()?;
        rest = &rest[d..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        total += num * mult;
        rest = &rest[u..];
    }
    Some(if neg { -total } else { total })
}

/// Parses a number as Go's `strconv.ParseFloat` / PromQL literals do.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = match body.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        b if b.starts_with("0x") => i64::from_str_radix(&b[2..], 16).ok()? as f64,
        _ => {
            if body.is_empty()
                || !body
                    .chars()
                    .all(|c| c.is_ascii_digit() || "._eE+-".contains(c))
            {
                return None;
            }
            body.replace('_', "").parse::<f64>().ok()?
        }
    };
    Some(if neg { -v } else { v })
}

/// Parses a series description: `metric{a="b"} 1 2+3x4 _ stale {{…}}`.
pub(crate) fn parse_series(line: &str) -> Result<(Labels, Vec<Point>), String> {
    let (labels, rest) = parse_metric(line)?;
    let points = parse_values(rest)?;
    Ok((labels, points))
}

/// Parses the metric part of a series line; returns the labels and the remaining text.
pub(crate) fn parse_metric(line: &str) -> Result<(Labels, &str), String> {
    let line = line.trim_start();
    let mut b = LabelsBuilder::new();
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    if name_end > 0 {
        b.set(METRIC_NAME, &line[..name_end]);
    }
    let mut rest = &line[name_end..];
    if rest.starts_with('{') && !rest.starts_with("{{") {
        rest = &rest[1..];
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
                continue;
            }
            let (name, r) =
                if rest.starts_with('"') || rest.starts_with('\'') || rest.starts_with('`') {
                    let (s, r) = parse_quoted(rest)?;
                    (s, r)
                } else {
                    let e = rest
                        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '.'))
                        .unwrap_or(rest.len());
                    if e == 0 {
                        return Err(format!("bad label list near {rest:?}"));
                    }
                    (rest[..e].to_string(), &rest[e..])
                };
            let r = r.trim_start();
            if let Some(r2) = r.strip_prefix('=') {
                let (v, r3) = parse_quoted(r2.trim_start())?;
                b.set(name, v);
                rest = r3;
            } else {
                b.set(METRIC_NAME, name);
                rest = r;
            }
        }
    }
    Ok((b.build(), rest))
}

/// Parses a Go-style quoted string ("…", '…' or `…`), returning it and the rest.
pub(crate) fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    let mut chars = s.char_indices();
    let Some((_, q)) = chars.next() else {
        return Err("expected string".into());
    };
    if q == '`' {
        let end = s[1..].find('`').ok_or("unterminated raw string")?;
        return Ok((s[1..1 + end].to_string(), &s[end + 2..]));
    }
    let mut out = String::new();
    let mut bytes: Vec<u8> = Vec::new();
    let mut it = s[1..].char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if c == q {
            if !bytes.is_empty() {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
            return Ok((out, &s[1 + i + 1..]));
        }
        if c == '\\' {
            let Some((_, e)) = it.next() else { break };
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                'x' => {
                    let h: String = (0..2).filter_map(|_| it.next().map(|x| x.1)).collect();
                    let byte = u8::from_str_radix(&h, 16).map_err(|e| e.to_string())?;
                    bytes.push(byte);
                    if let Ok(s) = std::str::from_utf8(&bytes) {
                        out.push_str(s);
                        bytes.clear();
                    }
                    continue;
                }
                'u' => {
                    let h: String = (0..4).filter_map(|_| it.next().map(|x| x.1)).collect();
                    let cp = u32::from_str_radix(&h, 16).map_err(|e| e.to_string())?;
                    out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
            continue;
        }
        if !bytes.is_empty() {
            out.push_str(&String::from_utf8_lossy(&bytes));
            bytes.clear();
        }
        out.push(c);
    }
    Err("unterminated string".into())
}

fn parse_values(s: &str) -> Result<Vec<Point>, String> {
    static ITEM: OnceLock<Regex> = OnceLock::new();
    let num = r"[+-]?(?:[Ii]nf|NaN|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)";
    let item = re(
        &ITEM,
        &format!(r"^({num})(?:([+-])({num}))?(?:x([0-9]+))?$"),
    );
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        if rest.starts_with("{{") {
            // Native histogram literal, possibly with `+{{…}}xN` / `xN`.
            let mut depth = 0i32;
            let mut end = rest.len();
            let mut i = 0;
            let b = rest.as_bytes();
            while i < b.len() {
                match b[i] {
                    b'{' => depth += 1,
                    b'}' => depth -= 1,
                    b' ' | b'\t' if depth == 0 => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
            let tok = &rest[..end];
            let reps = tok
                .rsplit_once("}}x")
                .and_then(|(_, n)| n.parse::<usize>().ok())
                .unwrap_or(0);
            for _ in 0..=reps {
                out.push(Point::Histogram);
            }
            rest = rest[end..].trim_start();
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let tok = &rest[..end];
        rest = rest[end..].trim_start();
        if tok == "_" {
            out.push(Point::Omitted);
        } else if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad repeat {tok}"))?;
            out.extend(std::iter::repeat_n(Point::Omitted, n));
        } else if tok == "stale" {
            out.push(Point::Value(stale_nan()));
        } else if let Some(c) = item.captures(tok) {
            let mut v = parse_number(&c[1]).ok_or_else(|| format!("bad number {tok}"))?;
            let times: usize = c
                .get(4)
                .map_or(Ok(0), |m| m.as_str().parse())
                .map_err(|_| format!("bad {tok}"))?;
            let delta = match (c.get(2), c.get(3)) {
                (Some(sign), Some(d)) => {
                    let d = parse_number(d.as_str()).ok_or_else(|| format!("bad number {tok}"))?;
                    if sign.as_str() == "-" { -d } else { d }
                }
                _ => 0.0,
            };
            if c.get(4).is_none() && c.get(2).is_some() {
                return Err(format!("bad series value {tok}"));
            }
            for _ in 0..=times {
                out.push(Point::Value(v));
                v += delta;
            }
        } else {
            return Err(format!("bad series value {tok:?}"));
        }
    }
    Ok(out)
}

/// Parses a whole script into commands.
pub(crate) fn parse_script(text: &str) -> Result<Vec<Command>, String> {
    static LOAD: OnceLock<Regex> = OnceLock::new();
    static INSTANT: OnceLock<Regex> = OnceLock::new();
    static RANGE: OnceLock<Regex> = OnceLock::new();
    static EXPECT: OnceLock<Regex> = OnceLock::new();
    static EXPECT_RANGE: OnceLock<Regex> = OnceLock::new();
    let load_re = re(&LOAD, r"^load(?:_(with_nhcb))?\s+(.+?)$");
    let instant_re = re(
        &INSTANT,
        r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$",
    );
    let range_re = re(
        &RANGE,
        r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$",
    );
    let expect_re = re(
        &EXPECT,
        r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$",
    );
    let expect_range_re = re(
        &EXPECT_RANGE,
        r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$",
    );

    let lines: Vec<String> = text
        .split('\n')
        .map(|l| {
            let t = l.trim();
            if t.starts_with('#') {
                String::new()
            } else {
                t.to_string()
            }
        })
        .collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let word = l.split_whitespace().next().unwrap_or("").to_lowercase();
        if word == "clear" {
            cmds.push(Command::Clear);
            i += 1;
        } else if word.starts_with("load") {
            let c = load_re
                .captures(l)
                .ok_or_else(|| format!("line {}: bad load", i + 1))?;
            let step = parse_duration(&c[2]).ok_or_else(|| format!("line {}: bad step", i + 1))?;
            let with_nhcb = c.get(1).is_some();
            let mut series = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].is_empty() {
                // `metric@st …` / `@st …` lines give start timestamps, which this store
                // does not keep: skip them.
                let first = lines[i].split_whitespace().next().unwrap_or("");
                if !first.ends_with("@st") {
                    series
                        .push(parse_series(&lines[i]).map_err(|e| format!("line {}: {e}", i + 1))?);
                }
                i += 1;
            }

            cmds.push(Command::Load {
                step,
                series,
                with_nhcb,
            });
        } else if word.starts_with("eval") {
            let line = i + 1;
            let (modifier, range, at, query) = if let Some(c) = instant_re.captures(l) {
                let at = c.get(2).map_or(Some(0), |m| parse_duration(m.as_str()));
                let at = at.ok_or_else(|| format!("line {line}: bad time"))?;
                (
                    c.get(1).map(|m| m.as_str().to_string()),
                    None,
                    at,
                    c[3].to_string(),
                )
            } else if let Some(c) = range_re.captures(l) {
                let s = parse_duration(&c[2]).ok_or_else(|| format!("line {line}: bad start"))?;
                let e = parse_duration(&c[3]).ok_or_else(|| format!("line {line}: bad end"))?;
                let st = parse_duration(&c[4]).ok_or_else(|| format!("line {line}: bad step"))?;
                (
                    c.get(1).map(|m| m.as_str().to_string()),
                    Some((s, e, st)),
                    s,
                    c[5].to_string(),
                )
            } else {
                return Err(format!("line {line}: bad eval command"));
            };
            let mut cmd = EvalCmd {
                line,
                query,
                range,
                at,
                fail: modifier.as_deref() == Some("fail"),
                ordered: modifier.as_deref() == Some("ordered"),
                warn: modifier.as_deref() == Some("warn"),
                info: modifier.as_deref() == Some("info"),
                expects: Vec::new(),
                fail_msg: None,
                fail_regex: None,
                expected: Expected::default(),
                uses_histogram_literal: false,
            };
            i += 1;
            while i < lines.len() && !lines[i].is_empty() {
                let d = &lines[i];
                i += 1;
                if cmd.fail && d.starts_with("expected_fail_message") {
                    cmd.fail_msg = Some(d["expected_fail_message".len()..].trim().to_string());
                    break;
                }
                if cmd.fail && d.starts_with("expected_fail_regexp") {
                    cmd.fail_regex = Regex::new(d["expected_fail_regexp".len()..].trim()).ok();
                    break;
                }
                if let Some(c) = expect_range_re.captures(d) {
                    let s = parse_duration(&c[1]).ok_or("bad range vector start")?;
                    let e = parse_duration(&c[2]).ok_or("bad range vector end")?;
                    let st = parse_duration(&c[3]).ok_or("bad range vector step")?;
                    cmd.expected.range_vector = Some((s, e, st));
                    cmd.at = e;
                    continue;
                }
                if let Some(r) = d.strip_prefix("expect string") {
                    let (s, _) = parse_quoted(r.trim())?;
                    cmd.expected.string = Some(s);
                    continue;
                }
                if d.split(' ').next() == Some("expect") {
                    let c = expect_re
                        .captures(d)
                        .ok_or_else(|| format!("line {i}: bad expect"))?;
                    let mut e = Expect {
                        kind: c[1].to_string(),
                        msg: None,
                        regex: None,
                    };
                    match c.get(2).map(|m| m.as_str()) {
                        Some("msg") => e.msg = Some(c[3].trim().to_string()),
                        Some(_) => {
                            e.regex = Some(Regex::new(c[3].trim()).map_err(|e| e.to_string())?)
                        }
                        None => {}
                    }
                    cmd.expects.push(e);
                    continue;
                }
                if let Some(v) = parse_number(d) {
                    cmd.expected.scalar = Some(v);
                    break;
                }
                if d.contains("{{") {
                    cmd.uses_histogram_literal = true;
                }
                let (labels, pts) = parse_series(d).map_err(|e| format!("line {i}: {e}"))?;
                cmd.expected.series.push((labels, pts));
            }
            cmds.push(Command::Eval(Box::new(cmd)));
        } else {
            return Err(format!("line {}: invalid command {l:?}", i + 1));
        }
    }
    Ok(cmds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m"), Some(60_000));
        assert_eq!(parse_duration("10s53ms"), Some(10_053));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
    }

    #[test]
    fn series_lines() {
        let (l, p) = parse_series(r#"foo{a="b", "c.d"="e"} 1+2x2 _ stale -1-1x1 _x2 3x1"#).unwrap();
        assert_eq!(l.get("__name__"), Some("foo"));
        assert_eq!(l.get("c.d"), Some("e"));
        assert_eq!(
            p[..3],
            [Point::Value(1.0), Point::Value(3.0), Point::Value(5.0)]
        );
        assert_eq!(p[3], Point::Omitted);
        assert!(matches!(p[4], Point::Value(v) if ember_model::is_stale_nan(v)));
        assert_eq!(p[5..7], [Point::Value(-1.0), Point::Value(-2.0)]);
        assert_eq!(p.len(), 11);
        let (l, _) = parse_series(r#"{"my.metric", x="1"} 1"#).unwrap();
        assert_eq!(l.get("__name__"), Some("my.metric"));
    }
}
