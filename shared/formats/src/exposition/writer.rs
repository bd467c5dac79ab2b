//! Writing metric families in the text format 0.0.4, for Ember's own `/metrics`:
//! components (backend, compaction, notifiers) write their families with these two
//! functions so every line is well formed and label values are escaped.

use std::fmt::Write;

/// Writes the `# HELP` and `# TYPE` lines of a family (`kind`: counter, gauge, …).
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Writes one sample line; label values are escaped (`\`, `"`, newline).
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let v = v
                .replace('\\', "\\\\")
                .replace('\n', "\\n")
                .replace('"', "\\\"");
            let _ = write!(out, "{k}=\"{v}\"");
        }
        out.push('}');
    }
    let _ = match value {
        v if v.is_nan() => writeln!(out, " NaN"),
        v if v == f64::INFINITY => writeln!(out, " +Inf"),
        v if v == f64::NEG_INFINITY => writeln!(out, " -Inf"),
        v => writeln!(out, " {v}"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{Entry, Format, Parser};

    #[test]
    fn lines_escape_and_parse_back() {
        let mut out = String::new();
        family(&mut out, "x_total", "counter", "An x.");
        sample(&mut out, "x_total", &[("a", "q\"\\\n")], 1.5);
        sample(&mut out, "x_total", &[], 2.0);
        sample(&mut out, "y", &[("b", "c"), ("d", "")], f64::INFINITY);
        assert_eq!(
            out,
            "# HELP x_total An x.\n# TYPE x_total counter\nx_total{a=\"q\\\"\\\\\\n\"} 1.5\nx_total 2\ny{b=\"c\",d=\"\"} +Inf\n"
        );
        let mut p = Parser::new(out.as_bytes(), Format::PrometheusText).unwrap();
        let mut values = Vec::new();
        while let Some(e) = p.next_entry().unwrap() {
            if let Entry::Sample(s) = e {
                values.push(s.value);
            }
        }
        assert_eq!(
            values,
            vec![1.5, 2.0, f64::INFINITY],
            "the parser reads every line back"
        );
    }
}
