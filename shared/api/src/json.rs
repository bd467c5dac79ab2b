//! Prometheus' JSON encodings: floats as strings (`"NaN"`, `"+Inf"`, Go's shortest
//! format), timestamps as seconds with at most three decimals, and the result
//! shapes of `/api/v1/query`. Written by hand into a buffer: large matrices are
//! the query path's biggest output, and building a `serde_json::Value` would
//! double the work.

use std::fmt::Write;

use ember_model::Labels;
use ember_promql::Value;

/// Formats a float as Go's `strconv.FormatFloat(f, 'f' or 'e', -1, 64)` as Prometheus uses it.
pub fn format_float(v: f64) -> String {
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
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        // Rust writes `1e-7` / `1.5e21`; Go writes `1e-07` / `1.5e+21`.
        let s = format!("{v:e}");
        if let Some((mant, exp)) = s.split_once('e') {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            return format!("{mant}e{sign}{digits:0>2}");
        }
        return s;
    }
    format!("{v}")
}

/// Writes a millisecond timestamp as Prometheus does: seconds, `.` and up to 3 digits.
pub fn write_timestamp(out: &mut String, ms: i64) {
    if ms < 0 {
        out.push('-');
    }
    let abs = ms.unsigned_abs();
    let (secs, frac) = (abs / 1000, abs % 1000);
    let _ = write!(out, "{secs}");
    if frac != 0 {
        let f = format!("{frac:03}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
}

/// Writes a JSON string literal.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes a label set as a JSON object.
pub fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, &l.name);
        out.push(':');
        write_str(out, &l.value);
    }
    out.push('}');
}

fn write_point(out: &mut String, t: i64, v: &str) {
    out.push('[');
    write_timestamp(out, t);
    out.push(',');
    write_str(out, v);
    out.push(']');
}

/// Writes `{"resultType":…,"result":…}` for a query value.
pub fn write_query_data(out: &mut String, value: &Value) {
    out.push_str("{\"resultType\":");
    write_str(out, value.type_name());
    out.push_str(",\"result\":");
    match value {
        Value::Scalar { t, v } => write_point(out, *t, &format_float(*v)),
        Value::String { t, s } => write_point(out, *t, s),
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(out, &s.labels);
                out.push_str(",\"value\":");
                write_point(out, s.t, &format_float(s.v));
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, p) in s.samples.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_point(out, p.t, &format_float(p.v));
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
}

/// Wraps already-encoded `data` in the success envelope, with optional annotations.
pub fn success_envelope(data: &str, warnings: &[String], infos: &[String]) -> String {
    let mut out = String::with_capacity(data.len() + 64);
    out.push_str("{\"status\":\"success\",\"data\":");
    out.push_str(data);
    for (key, list) in [("warnings", warnings), ("infos", infos)] {
        if !list.is_empty() {
            let _ = write!(out, ",\"{key}\":[");
            for (i, w) in list.iter().take(10).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(&mut out, w);
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_go() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.5), "0.5");
        assert_eq!(format_float(1e-7), "1e-07");
        assert_eq!(format_float(1e21), "1e+21");
        assert_eq!(format_float(1.5e300), "1.5e+300");
        assert_eq!(format_float(123456789.0), "123456789");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(0.000001), "0.000001");
        assert_eq!(format_float(-2.5), "-2.5");
    }

    #[test]
    fn timestamps_like_prometheus() {
        let f = |ms| {
            let mut s = String::new();
            write_timestamp(&mut s, ms);
            s
        };
        assert_eq!(f(1_435_781_451_781), "1435781451.781");
        assert_eq!(f(1_435_781_451_000), "1435781451");
        assert_eq!(f(1_435_781_451_070), "1435781451.07");
        assert_eq!(f(-1500), "-1.5");
    }
}
