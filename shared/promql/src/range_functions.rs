//! Functions over range vectors (`rate`, `*_over_time`, …): each series is windowed per
//! step with two forward-only cursors, then reduced.

use ember_model::Sample;
use promql_parser::parser::Call;

use crate::PromqlError;
use crate::annotations::{is_counter_like, possible_non_counter};
use crate::eval::{Evaluator, Grid, RangeInput, SeriesData, unparen};
use crate::util::{format_float_g, kahan_sum_inc};

/// The names this module evaluates.
pub(crate) fn is_range_function(name: &str) -> bool {
    matches!(
        name,
        "rate"
            | "increase"
            | "delta"
            | "irate"
            | "idelta"
            | "deriv"
            | "predict_linear"
            | "resets"
            | "changes"
            | "avg_over_time"
            | "sum_over_time"
            | "count_over_time"
            | "min_over_time"
            | "max_over_time"
            | "last_over_time"
            | "first_over_time"
            | "present_over_time"
            | "stddev_over_time"
            | "stdvar_over_time"
            | "quantile_over_time"
            | "mad_over_time"
            | "ts_of_min_over_time"
            | "ts_of_max_over_time"
            | "ts_of_last_over_time"
            | "ts_of_first_over_time"
            | "double_exponential_smoothing"
            | "holt_winters"
            | "absent_over_time"
    )
}

/// Calls `f(series, step index, step ts, window)` for every non-empty window.
/// A range-vector function, resolved once per call (not per window).
#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeFn {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    PredictLinear,
    Resets,
    Changes,
    AvgOverTime,
    SumOverTime,
    CountOverTime,
    MinOverTime,
    MaxOverTime,
    LastOverTime,
    FirstOverTime,
    PresentOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    MadOverTime,
    TsOfMinOverTime,
    TsOfMaxOverTime,
    TsOfLastOverTime,
    TsOfFirstOverTime,
    DoubleExponentialSmoothing,
    HoltWinters,
    AbsentOverTime,
}

impl RangeFn {
    fn parse(name: &str) -> Option<RangeFn> {
        Some(match name {
            "rate" => RangeFn::Rate,
            "increase" => RangeFn::Increase,
            "delta" => RangeFn::Delta,
            "irate" => RangeFn::Irate,
            "idelta" => RangeFn::Idelta,
            "deriv" => RangeFn::Deriv,
            "predict_linear" => RangeFn::PredictLinear,
            "resets" => RangeFn::Resets,
            "changes" => RangeFn::Changes,
            "avg_over_time" => RangeFn::AvgOverTime,
            "sum_over_time" => RangeFn::SumOverTime,
            "count_over_time" => RangeFn::CountOverTime,
            "min_over_time" => RangeFn::MinOverTime,
            "max_over_time" => RangeFn::MaxOverTime,
            "last_over_time" => RangeFn::LastOverTime,
            "first_over_time" => RangeFn::FirstOverTime,
            "present_over_time" => RangeFn::PresentOverTime,
            "stddev_over_time" => RangeFn::StddevOverTime,
            "stdvar_over_time" => RangeFn::StdvarOverTime,
            "quantile_over_time" => RangeFn::QuantileOverTime,
            "mad_over_time" => RangeFn::MadOverTime,
            "ts_of_min_over_time" => RangeFn::TsOfMinOverTime,
            "ts_of_max_over_time" => RangeFn::TsOfMaxOverTime,
            "ts_of_last_over_time" => RangeFn::TsOfLastOverTime,
            "ts_of_first_over_time" => RangeFn::TsOfFirstOverTime,
            "double_exponential_smoothing" => RangeFn::DoubleExponentialSmoothing,
            "holt_winters" => RangeFn::HoltWinters,
            "absent_over_time" => RangeFn::AbsentOverTime,
            _ => return None,
        })
    }
}

/// Stops with `Timeout` once `deadline` passes.
fn windows(
    input: &RangeInput,
    g: &Grid,
    deadline: std::time::Instant,
    mut f: impl FnMut(usize, usize, i64, usize, &[Sample]),
) -> Result<(), PromqlError> {
    let n = g.len();
    for (si, s) in input.series.iter().enumerate() {
        if si % 512 == 511 && std::time::Instant::now() > deadline {
            return Err(PromqlError::Timeout("query execution"));
        }
        let pts = &s.points;
        let (mut lo, mut hi) = (0usize, 0usize);
        for i in 0..n {
            let t = g.ts(i);
            let tt = input.eval_time(t);
            while hi < pts.len() && pts[hi].t <= tt {
                hi += 1;
            }
            while lo < hi && pts[lo].t <= tt - input.range {
                lo += 1;
            }
            if lo < hi {
                f(si, i, t, lo, &pts[lo..hi]);
            }
        }
    }
    Ok(())
}

impl Evaluator<'_> {
    /// Evaluates a range-vector function call.
    pub(crate) fn eval_range_function(
        &mut self,
        c: &Call,
        g: &Grid,
    ) -> Result<Vec<SeriesData>, PromqlError> {
        let name = c.func.name;
        let args = &c.args.args;
        let (matrix_arg, params): (
            &promql_parser::parser::Expr,
            Vec<&promql_parser::parser::Expr>,
        ) = if name == "quantile_over_time" {
            (&args[1], vec![&*args[0]])
        } else {
            (&args[0], args[1..].iter().map(|a| &**a).collect())
        };
        let mut pvals = Vec::new();
        for p in &params {
            pvals.push(self.eval_scalar(p, g)?);
        }
        let input = self.eval_range_input(matrix_arg, g)?;
        let n = g.len();

        if name == "absent_over_time" {
            let mut present = vec![false; n];
            let deadline = self.deadline;
            windows(&input, g, deadline, |_, i, _, _, _| present[i] = true)?;
            let labels = absent_labels_of(unparen(matrix_arg));
            let points: Vec<Sample> = (0..n)
                .filter(|i| !present[*i])
                .map(|i| Sample::new(g.ts(i), 1.0))
                .collect();
            return Ok(if points.is_empty() {
                vec![]
            } else {
                vec![SeriesData::new(labels, points)]
            });
        }

        match name {
            "quantile_over_time" => {
                for q in &pvals[0] {
                    if !(0.0..=1.0).contains(q) {
                        let pos = self.pos_text("quantile_over_time(");
                        self.annos.warn(format!(
                            "quantile value should be between 0 and 1, got {}{pos}",
                            format_float_g(*q)
                        ));
                    }
                }
            }
            "double_exponential_smoothing" | "holt_winters" => {
                for sf in &pvals[0] {
                    if !(*sf > 0.0 && *sf < 1.0) {
                        return Err(PromqlError::Execution(format!(
                            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                        )));
                    }
                }
                for tf in &pvals[1] {
                    if !(*tf > 0.0 && *tf < 1.0) {
                        return Err(PromqlError::Execution(format!(
                            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                        )));
                    }
                }
            }
            _ => {}
        }

        let keep_name = matches!(name, "last_over_time" | "first_over_time");
        let mut out: Vec<Vec<Sample>> = vec![Vec::new(); input.series.len()];
        let range = input.range;
        let mut scratch: Vec<f64> = Vec::new();
        // Counter resets per series (indices i with v[i] < v[i-1]), so each window adds only
        // its own resets instead of re-scanning every sample.
        let resets: Vec<Vec<usize>> = if matches!(name, "rate" | "increase") {
            input
                .series
                .iter()
                .map(|s| {
                    (1..s.points.len())
                        .filter(|&i| s.points[i].v < s.points[i - 1].v)
                        .collect()
                })
                .collect()
        } else {
            Vec::new()
        };
        let Some(fun) = RangeFn::parse(name) else {
            return Err(PromqlError::Execution(format!(
                "unsupported function {name:?}"
            )));
        };
        {
            let input_ref = &input;
            let deadline = self.deadline;
            windows(input_ref, g, deadline, |si, i, t, lo, w| {
                let tt = input_ref.eval_time(t);
                let v = match fun {
                    RangeFn::Rate | RangeFn::Increase => {
                        let pts = &input_ref.series[si].points;
                        let rs = &resets[si];
                        let hi = lo + w.len();
                        let from = rs.partition_point(|&r| r <= lo);
                        let to = rs.partition_point(|&r| r < hi);
                        let correction = rs[from..to].iter().map(|&r| pts[r - 1].v);
                        extrapolated_rate(
                            w,
                            tt - range,
                            tt,
                            range,
                            Some(correction),
                            fun == RangeFn::Rate,
                        )
                    }
                    RangeFn::Delta => extrapolated_rate(
                        w,
                        tt - range,
                        tt,
                        range,
                        None::<std::iter::Empty<f64>>,
                        false,
                    ),
                    RangeFn::Irate => instant_value(w, true),
                    RangeFn::Idelta => instant_value(w, false),
                    RangeFn::Deriv => (w.len() >= 2).then(|| linear_regression(w, w[0].t).0),
                    RangeFn::PredictLinear => (w.len() >= 2).then(|| {
                        let (slope, intercept) = linear_regression(w, t);
                        intercept + slope * pvals[0][i]
                    }),
                    RangeFn::Resets => {
                        Some(w.windows(2).filter(|p| p[1].v < p[0].v).count() as f64)
                    }
                    RangeFn::Changes => Some(
                        w.windows(2)
                            .filter(|p| !(p[1].v == p[0].v || (p[1].v.is_nan() && p[0].v.is_nan())))
                            .count() as f64,
                    ),
                    RangeFn::AvgOverTime => Some(avg(w.iter().map(|p| p.v))),
                    RangeFn::SumOverTime => {
                        let (mut s, mut c) = (0.0, 0.0);
                        for p in w {
                            (s, c) = kahan_sum_inc(p.v, s, c);
                        }
                        Some(if s.is_infinite() { s } else { s + c })
                    }
                    RangeFn::CountOverTime => Some(w.len() as f64),
                    RangeFn::MinOverTime => Some(
                        w.iter()
                            .fold(w[0].v, |m, p| if p.v < m || m.is_nan() { p.v } else { m }),
                    ),
                    RangeFn::MaxOverTime => Some(
                        w.iter()
                            .fold(w[0].v, |m, p| if p.v > m || m.is_nan() { p.v } else { m }),
                    ),
                    RangeFn::LastOverTime => Some(w[w.len() - 1].v),
                    RangeFn::FirstOverTime => Some(w[0].v),
                    RangeFn::PresentOverTime => Some(1.0),
                    RangeFn::StddevOverTime => Some(stdvar(w.iter().map(|p| p.v)).sqrt()),
                    RangeFn::StdvarOverTime => Some(stdvar(w.iter().map(|p| p.v))),
                    RangeFn::QuantileOverTime => {
                        scratch.clear();
                        scratch.extend(w.iter().map(|p| p.v));
                        Some(quantile(pvals[0][i], &mut scratch))
                    }
                    RangeFn::MadOverTime if w.iter().any(|p| p.v.is_nan()) => Some(f64::NAN),
                    RangeFn::MadOverTime => {
                        scratch.clear();
                        scratch.extend(w.iter().map(|p| p.v));
                        let med = quantile(0.5, &mut scratch);
                        for x in scratch.iter_mut() {
                            *x = (*x - med).abs();
                        }
                        Some(quantile(0.5, &mut scratch))
                    }
                    RangeFn::TsOfMinOverTime => {
                        let mut best = w[0];
                        for p in w {
                            if p.v <= best.v || best.v.is_nan() {
                                best = *p;
                            }
                        }
                        Some(best.t as f64 / 1000.0)
                    }
                    RangeFn::TsOfMaxOverTime => {
                        let mut best = w[0];
                        for p in w {
                            if p.v >= best.v || best.v.is_nan() {
                                best = *p;
                            }
                        }
                        Some(best.t as f64 / 1000.0)
                    }
                    RangeFn::TsOfLastOverTime => Some(w[w.len() - 1].t as f64 / 1000.0),
                    RangeFn::TsOfFirstOverTime => Some(w[0].t as f64 / 1000.0),
                    RangeFn::DoubleExponentialSmoothing | RangeFn::HoltWinters => {
                        double_exponential_smoothing(w, pvals[0][i], pvals[1][i])
                    }
                    _ => None,
                };
                if let Some(v) = v {
                    out[si].push(Sample::new(t, v));
                }
            })?;
        }
        let mut res = Vec::new();
        let mut total = 0;
        for (s, pts) in input.series.into_iter().zip(out) {
            if pts.is_empty() {
                continue;
            }
            if matches!(name, "rate" | "increase")
                && let Some(mn) = s.labels.metric_name()
                && !is_counter_like(mn)
            {
                let msg = possible_non_counter(mn, &input.pos);
                self.annos.info(msg);
            }
            total += pts.len();
            res.push(SeriesData {
                labels: s.labels,
                drop_name: s.drop_name || !keep_name,
                points: pts,
            });
        }
        self.account(total)?;
        Ok(res)
    }
}

/// Labels for `absent`/`absent_over_time` from the selector inside the argument.
pub(crate) fn absent_labels_of(e: &promql_parser::parser::Expr) -> ember_model::Labels {
    use promql_parser::parser::Expr;
    match e {
        Expr::VectorSelector(vs) => crate::parse::absent_labels(vs),
        Expr::MatrixSelector(ms) => crate::parse::absent_labels(&ms.vs),
        Expr::Subquery(sq) => match unparen(&sq.expr) {
            Expr::VectorSelector(vs) => crate::parse::absent_labels(vs),
            _ => ember_model::Labels::empty(),
        },
        _ => ember_model::Labels::empty(),
    }
}

/// `rate`/`increase`/`delta` with Prometheus' extrapolation to the window boundaries.
/// `counter_resets` yields, in order, the value before each counter reset inside the window
/// (`None` for gauges).
fn extrapolated_rate(
    w: &[Sample],
    range_start: i64,
    range_end: i64,
    range: i64,
    counter_resets: Option<impl Iterator<Item = f64>>,
    is_rate: bool,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let first = w[0];
    let last = w[w.len() - 1];
    let mut result = last.v - first.v;
    let is_counter = counter_resets.is_some();
    if let Some(resets) = counter_resets {
        for prev in resets {
            result += prev;
        }
    }
    let mut duration_to_start = (first.t - range_start) as f64 / 1000.0;
    let mut duration_to_end = (range_end - last.t) as f64 / 1000.0;
    let sampled_interval = (last.t - first.t) as f64 / 1000.0;
    let avg_between = sampled_interval / (w.len() - 1) as f64;
    let threshold = avg_between * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = avg_between / 2.0;
    }
    if is_counter && result > 0.0 && first.v >= 0.0 {
        let duration_to_zero = sampled_interval * (first.v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= threshold {
        duration_to_end = avg_between / 2.0;
    }
    let mut factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    if is_rate {
        factor /= range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate`/`idelta` from the last two samples.
fn instant_value(w: &[Sample], is_rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let last = w[w.len() - 1];
    let prev = w[w.len() - 2];
    let mut result = if is_rate && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    let interval = last.t - prev.t;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares slope and intercept with x in seconds relative to `intercept_t`.
pub(crate) fn linear_regression(w: &[Sample], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = w[0].v;
    let mut const_y = true;
    for (i, p) in w.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_sum_inc(x, sx, cx);
        (sy, cy) = kahan_sum_inc(p.v, sy, cy);
        (sxy, cxy) = kahan_sum_inc(x * p.v, sxy, cxy);
        (sx2, cx2) = kahan_sum_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    let intercept = sy / n - slope * sx / n;
    (slope, intercept)
}

/// Mean with Kahan summation, switching to an incremental mean if the sum would overflow.
pub(crate) fn avg(mut it: impl Iterator<Item = f64>) -> f64 {
    let Some(first) = it.next() else {
        return f64::NAN;
    };
    let (mut sum, mut count, mut c, mut mean) = (first, 1.0f64, 0.0, 0.0);
    let mut incremental = false;
    for v in it {
        count += 1.0;
        if !incremental {
            let (ns, nc) = kahan_sum_inc(v, sum, c);
            if !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_sum_inc(v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

/// Population variance (Welford with Kahan-compensated mean).
pub(crate) fn stdvar(it: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for v in it {
        count += 1.0;
        let delta = v - (mean + cmean);
        (mean, cmean) = kahan_sum_inc(delta / count, mean, cmean);
        (aux, caux) = kahan_sum_inc(delta * (v - (mean + cmean)), aux, caux);
    }
    (aux + caux) / count
}

/// The φ-quantile of `values` (sorted in place; NaN sorts first), as Prometheus computes it.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn double_exponential_smoothing(w: &[Sample], sf: f64, tf: f64) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, w[0].v);
    let mut b = w[1].v - w[0].v;
    for (i, p) in w.iter().enumerate().skip(1) {
        let x = sf * p.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_extrapolates_like_prometheus() {
        // 0,10,20,…,100 every 30s over a 5m window ending at 300s.
        let w: Vec<Sample> = (0..=10)
            .map(|i| Sample::new(i * 30_000, i as f64 * 10.0))
            .collect();
        let r = extrapolated_rate(&w[1..], 0, 300_000, 300_000, Some(std::iter::empty()), true)
            .unwrap();
        assert!((r - 1.0 / 3.0).abs() < 1e-9, "{r}");
        assert!(
            extrapolated_rate(&w[..1], 0, 300_000, 300_000, Some(std::iter::empty()), true)
                .is_none()
        );
    }

    #[test]
    fn quantile_interpolates() {
        let mut v = vec![4.0, 1.0, 2.0, 3.0];
        assert_eq!(quantile(0.5, &mut v), 2.5);
        assert_eq!(quantile(-1.0, &mut v), f64::NEG_INFINITY);
    }

    #[test]
    fn regression_slope() {
        let w: Vec<Sample> = (0..5)
            .map(|i| Sample::new(i * 1000, 2.0 * i as f64))
            .collect();
        let (s, _) = linear_regression(&w, 0);
        assert!((s - 2.0).abs() < 1e-12);
    }
}
