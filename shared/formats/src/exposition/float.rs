//! Float rendering as OpenMetrics (and Go's `strconv.FormatFloat(f, 'g', -1, 64)`) writes it.

/// Formats `f` the way Prometheus' `FormatOpenMetricsFloat` does: Go's shortest `%g`
/// rendering (exponent form below 1e-4 and from 1e6 on, exponent with at least two
/// digits), `.0` appended to integers, and `NaN`, `+Inf`, `-Inf`.
pub fn format_openmetrics_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // Shortest round-trip digits in scientific form, e.g. "1.5e-7", "-1e6".
    let sci = format!("{f:e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.unsigned_abs());
    }
    let mut s = format!("{f}");
    if !s.contains('.') {
        s.push_str(".0");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::format_openmetrics_float as fmt;

    #[test]
    fn matches_go_rendering() {
        assert_eq!(fmt(1.0), "1.0");
        assert_eq!(fmt(0.0), "0.0");
        assert_eq!(fmt(0.25), "0.25");
        assert_eq!(fmt(0.005), "0.005");
        assert_eq!(fmt(0.0001), "0.0001");
        assert_eq!(fmt(0.00001), "1e-05");
        assert_eq!(fmt(100000.0), "100000.0");
        assert_eq!(fmt(1e6), "1e+06");
        assert_eq!(fmt(1234567.0), "1.234567e+06");
        assert_eq!(fmt(123456.7), "123456.7");
        assert_eq!(fmt(-2.5), "-2.5");
        assert_eq!(fmt(f64::INFINITY), "+Inf");
        assert_eq!(fmt(f64::NEG_INFINITY), "-Inf");
        assert_eq!(fmt(f64::NAN), "NaN");
        assert_eq!(fmt(1e21), "1e+21");
    }
}
