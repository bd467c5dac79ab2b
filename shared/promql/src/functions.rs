//! Instant-vector and scalar functions, and the function-call dispatcher.

use ember_model::{LabelsBuilder, METRIC_NAME, Sample};
use promql_parser::parser::{Call, Expr};

use crate::PromqlError;
use crate::eval::{Evaluator, Grid, SeriesData, Val, unparen};
use crate::range_functions::{absent_labels_of, is_range_function};

impl Evaluator<'_> {
    /// Evaluates a function call.
    pub(crate) fn eval_call(&mut self, c: &Call, g: &Grid) -> Result<Val, PromqlError> {
        let name = c.func.name;
        let args = &c.args.args;
        if is_range_function(name) {
            return Ok(Val::Vector(self.eval_range_function(c, g)?));
        }
        let n = g.len();
        match name {
            "time" => Ok(Val::Scalar(
                (0..n).map(|i| g.ts(i) as f64 / 1000.0).collect(),
            )),
            "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; n])),
            "start" => Ok(Val::Scalar(vec![self.ctx.start as f64 / 1000.0; n])),
            "end" => Ok(Val::Scalar(vec![self.ctx.end as f64 / 1000.0; n])),
            "range" => Ok(Val::Scalar(vec![
                (self.ctx.end - self.ctx.start) as f64
                    / 1000.0;
                n
            ])),
            "step" => Ok(Val::Scalar(vec![self.ctx.step as f64 / 1000.0; n])),
            "vector" => {
                let v = self.eval_scalar(&args[0], g)?;
                let pts = v
                    .iter()
                    .enumerate()
                    .map(|(i, x)| Sample::new(g.ts(i), *x))
                    .collect();
                Ok(Val::Vector(vec![SeriesData::new(
                    ember_model::Labels::empty(),
                    pts,
                )]))
            }
            "scalar" => {
                let vs = self.eval_vector(&args[0], g)?;
                let mut count = vec![0u32; n];
                let mut val = vec![f64::NAN; n];
                for s in &vs {
                    for p in &s.points {
                        let i = g.idx(p.t);
                        count[i] += 1;
                        val[i] = p.v;
                    }
                }
                Ok(Val::Scalar(
                    val.into_iter()
                        .zip(count)
                        .map(|(v, c)| if c == 1 { v } else { f64::NAN })
                        .collect(),
                ))
            }
            "timestamp" => {
                let mut vs = match unparen(&args[0]) {
                    Expr::VectorSelector(sel) => self.eval_vector_selector(sel, g, true)?,
                    _ => {
                        let mut vs = self.eval_vector(&args[0], g)?;
                        for s in &mut vs {
                            s.points.iter_mut().for_each(|p| p.v = p.t as f64 / 1000.0);
                        }
                        vs
                    }
                };
                vs.iter_mut().for_each(|s| s.drop_name = true);
                Ok(Val::Vector(vs))
            }
            "absent" => {
                let vs = self.eval_vector(&args[0], g)?;
                let mut present = vec![false; n];
                for s in &vs {
                    for p in &s.points {
                        present[g.idx(p.t)] = true;
                    }
                }
                let pts: Vec<Sample> = (0..n)
                    .filter(|i| !present[*i])
                    .map(|i| Sample::new(g.ts(i), 1.0))
                    .collect();
                let labels = absent_labels_of(unparen(&args[0]));
                Ok(Val::Vector(if pts.is_empty() {
                    vec![]
                } else {
                    vec![SeriesData::new(labels, pts)]
                }))
            }
            "sort" | "sort_desc" => {
                self.warn_sort_in_range(name, n);
                let mut vs = self.eval_vector(&args[0], g)?;
                let key = |s: &SeriesData| s.points.first().map_or(f64::NAN, |p| p.v);
                let desc = name == "sort_desc";
                vs.sort_by(|a, b| {
                    let (x, y) = (key(a), key(b));
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if desc => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
                        _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                    }
                });
                Ok(Val::Vector(vs))
            }
            "sort_by_label" | "sort_by_label_desc" => {
                self.warn_sort_in_range(name, n);
                let mut vs = self.eval_vector(&args[0], g)?;
                let mut names = Vec::new();
                for a in &args[1..] {
                    names.push(self.eval_string(a, g)?);
                }
                let desc = name == "sort_by_label_desc";
                vs.sort_by(|a, b| {
                    let mut ord = std::cmp::Ordering::Equal;
                    for l in &names {
                        let (x, y) = (a.labels.get(l).unwrap_or(""), b.labels.get(l).unwrap_or(""));
                        ord = natural_cmp(x, y);
                        if ord.is_ne() {
                            break;
                        }
                    }
                    if ord.is_eq() {
                        ord = a.labels.cmp(&b.labels);
                    }
                    if desc { ord.reverse() } else { ord }
                });
                Ok(Val::Vector(vs))
            }
            "min_of" | "max_of" => {
                let a = self.eval_scalar(&args[0], g)?;
                let b = self.eval_scalar(&args[1], g)?;
                let min = name == "min_of";
                Ok(Val::Scalar(
                    a.iter()
                        .zip(&b)
                        .map(|(x, y)| {
                            if x.is_nan() || y.is_nan() {
                                f64::NAN
                            } else if min {
                                x.min(*y)
                            } else {
                                x.max(*y)
                            }
                        })
                        .collect(),
                ))
            }
            "histogram_quantiles" => {
                let vs = self.eval_vector(&args[0], g)?;
                let label = self.eval_string(&args[1], g)?;
                let mut out = Vec::new();
                for a in &args[2..] {
                    let q = self.eval_scalar(a, g)?;
                    let qv = q.first().copied().unwrap_or(f64::NAN);
                    let qs = if qv.is_finite() && qv.fract() == 0.0 {
                        format!("{qv:.1}")
                    } else {
                        crate::util::format_float(qv)
                    };
                    for mut s in self.histogram_quantile(&q, vs.clone(), g, &args[0])? {
                        let mut b = s.labels.to_builder();
                        b.set(label.as_str(), qs.clone());
                        s.labels = b.build();
                        out.push(s);
                    }
                }
                Ok(Val::Vector(out))
            }
            "info" => self.eval_info(c, g),
            "label_replace" => self.label_replace(c, g),
            "label_join" => self.label_join(c, g),
            "histogram_quantile" => {
                let q = self.eval_scalar(&args[0], g)?;
                let vs = self.eval_vector(&args[1], g)?;
                Ok(Val::Vector(self.histogram_quantile(&q, vs, g, &args[1])?))
            }
            "histogram_fraction" => {
                let lo = self.eval_scalar(&args[0], g)?;
                let hi = self.eval_scalar(&args[1], g)?;
                let vs = self.eval_vector(&args[2], g)?;
                Ok(Val::Vector(
                    self.histogram_fraction(&lo, &hi, vs, g, &args[2])?,
                ))
            }
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
            | "histogram_stdvar" => {
                // Float samples are ignored: only native histograms carry these.
                let _ = self.eval_vector(&args[0], g)?;
                Ok(Val::Vector(Vec::new()))
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let mut vs = self.eval_vector(&args[0], g)?;
                let p1 = self.eval_scalar(&args[1], g)?;
                let p2 = if name == "clamp" {
                    self.eval_scalar(&args[2], g)?
                } else {
                    Vec::new()
                };
                for s in &mut vs {
                    s.drop_name = true;
                    s.points.retain_mut(|p| {
                        let i = g.idx(p.t);
                        match name {
                            "clamp" => {
                                let (lo, hi) = (p1[i], p2[i]);
                                if hi < lo {
                                    return false;
                                }
                                p.v = p.v.max(lo).min(hi);
                                if lo.is_nan() || hi.is_nan() {
                                    p.v = f64::NAN;
                                }
                            }
                            "clamp_min" => {
                                p.v = if p1[i].is_nan() {
                                    f64::NAN
                                } else {
                                    p.v.max(p1[i])
                                }
                            }
                            _ => {
                                p.v = if p1[i].is_nan() {
                                    f64::NAN
                                } else {
                                    p.v.min(p1[i])
                                }
                            }
                        }
                        true
                    });
                }
                vs.retain(|s| !s.points.is_empty());
                Ok(Val::Vector(vs))
            }
            "round" => {
                let mut vs = self.eval_vector(&args[0], g)?;
                let to = if args.len() > 1 {
                    self.eval_scalar(&args[1], g)?
                } else {
                    vec![1.0; n]
                };
                for s in &mut vs {
                    s.drop_name = true;
                    for p in &mut s.points {
                        let inv = 1.0 / to[g.idx(p.t)];
                        p.v = (p.v * inv + 0.5).floor() / inv;
                    }
                }
                Ok(Val::Vector(vs))
            }
            "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year"
            | "days_in_month" | "month" | "year" => {
                let mut vs = if args.is_empty() {
                    let pts = (0..n)
                        .map(|i| Sample::new(g.ts(i), g.ts(i) as f64 / 1000.0))
                        .collect();
                    vec![SeriesData::new(ember_model::Labels::empty(), pts)]
                } else {
                    self.eval_vector(&args[0], g)?
                };
                for s in &mut vs {
                    s.drop_name = true;
                    for p in &mut s.points {
                        p.v = date_part(name, p.v);
                    }
                }
                Ok(Val::Vector(vs))
            }
            _ => {
                let Some(f) = math_fn(name) else {
                    return Err(PromqlError::Execution(format!(
                        "function {name:?} is not supported"
                    )));
                };
                let mut vs = self.eval_vector(&args[0], g)?;
                for s in &mut vs {
                    s.drop_name = true;
                    s.points.iter_mut().for_each(|p| p.v = f(p.v));
                }
                Ok(Val::Vector(vs))
            }
        }
    }

    fn warn_sort_in_range(&mut self, name: &str, steps: usize) {
        if steps > 1 {
            let pos = self.pos_text(name);
            self.annos.warn(format!(
                "sort is ineffective for range queries since results are always ordered by labels{pos}"
            ));
        }
    }

    /// Evaluates a string argument.
    pub(crate) fn eval_string(&mut self, e: &Expr, g: &Grid) -> Result<String, PromqlError> {
        match self.eval(e, g)? {
            Val::Str(s) => Ok(s),
            _ => Err(PromqlError::Execution("expected string".into())),
        }
    }

    fn label_replace(&mut self, c: &Call, g: &Grid) -> Result<Val, PromqlError> {
        let args = &c.args.args;
        let mut vs = self.eval_vector(&args[0], g)?;
        let dst = self.eval_string(&args[1], g)?;
        let repl = self.eval_string(&args[2], g)?;
        let src = self.eval_string(&args[3], g)?;
        let re_src = self.eval_string(&args[4], g)?;
        let re = regex::Regex::new(&format!("^(?s:{re_src})$")).map_err(|_| {
            PromqlError::Execution(format!(
                "invalid regular expression in label_replace(): {re_src}"
            ))
        })?;
        if !valid_label_name(&dst) {
            return Err(PromqlError::Execution(format!(
                "invalid destination label name in label_replace(): {dst}"
            )));
        }
        for s in &mut vs {
            let val = s.labels.get(&src).unwrap_or("").to_string();
            if let Some(caps) = re.captures(&val) {
                let mut out = String::new();
                caps.expand(&repl, &mut out);
                let mut b = s.labels.to_builder();
                b.set(dst.as_str(), out);
                s.labels = b.build();
                if dst == METRIC_NAME {
                    s.drop_name = false;
                }
            }
        }
        Ok(Val::Vector(vs))
    }

    fn label_join(&mut self, c: &Call, g: &Grid) -> Result<Val, PromqlError> {
        let args = &c.args.args;
        let mut vs = self.eval_vector(&args[0], g)?;
        let dst = self.eval_string(&args[1], g)?;
        let sep = self.eval_string(&args[2], g)?;
        let mut srcs = Vec::new();
        for a in &args[3..] {
            srcs.push(self.eval_string(a, g)?);
        }
        if !valid_label_name(&dst) {
            return Err(PromqlError::Execution(format!(
                "invalid destination label name in label_join(): {dst}"
            )));
        }
        for s in &mut vs {
            let joined: Vec<&str> = srcs.iter().map(|l| s.labels.get(l).unwrap_or("")).collect();
            let joined = joined.join(&sep);
            let mut b: LabelsBuilder = s.labels.to_builder();
            b.set(dst.as_str(), joined);
            s.labels = b.build();
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
        Ok(Val::Vector(vs))
    }
}

/// Whether a label name is valid (UTF-8 names are allowed in Prometheus 3; a replacement
/// character stands for bytes that were not valid UTF-8).
fn valid_label_name(n: &str) -> bool {
    !n.is_empty() && !n.contains('\u{fffd}')
}

/// Element-wise math functions.
fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "sgn" => |v: f64| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

/// Calendar fields of a Unix time in seconds (UTC).
fn date_part(name: &str, secs: f64) -> f64 {
    if secs.is_nan() || secs.is_infinite() {
        return f64::NAN;
    }
    let s = secs.floor() as i64;
    let days = s.div_euclid(86_400);
    let sod = s.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    match name {
        "minute" => ((sod / 60) % 60) as f64,
        "hour" => (sod / 3600) as f64,
        "day_of_week" => ((days + 4).rem_euclid(7)) as f64,
        "day_of_month" => d as f64,
        "day_of_year" => {
            let jan1 = days_from_civil(y, 1, 1);
            (days - jan1 + 1) as f64
        }
        "days_in_month" => {
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)) as f64
        }
        "month" => m as f64,
        _ => y as f64,
    }
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Natural ("version") ordering: digit runs compare numerically.
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let x = a[si..i].trim_start_matches('0');
            let y = b[sj..j].trim_start_matches('0');
            let ord = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            if ord.is_ne() {
                return ord;
            }
        } else {
            let ord = ab[i].cmp(&bb[j]);
            if ord.is_ne() {
                return ord;
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        // 2024-02-29T12:34:56Z
        let t = 1_709_210_096.0;
        assert_eq!(date_part("year", t), 2024.0);
        assert_eq!(date_part("month", t), 2.0);
        assert_eq!(date_part("day_of_month", t), 29.0);
        assert_eq!(date_part("days_in_month", t), 29.0);
        assert_eq!(date_part("hour", t), 12.0);
        assert_eq!(date_part("minute", t), 34.0);
        assert_eq!(date_part("day_of_week", t), 4.0);
        assert_eq!(date_part("day_of_year", t), 60.0);
    }

    #[test]
    fn natural_order() {
        assert!(natural_cmp("a2", "a10").is_lt());
        assert!(natural_cmp("b", "a10").is_gt());
    }
}
