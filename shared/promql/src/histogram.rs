//! `histogram_quantile` and `histogram_fraction` over classic (`le`-labelled) buckets.

use std::collections::HashMap;

use ember_model::{Labels, Sample};
use promql_parser::parser::Expr;

use crate::PromqlError;
use crate::eval::{Evaluator, Grid, SeriesData};
use crate::util::{almost_equal, format_float_g};

#[derive(Clone, Copy)]
struct Bucket {
    upper: f64,
    count: f64,
}

struct Group {
    labels: Labels,
    members: Vec<(usize, f64)>,
}

impl Evaluator<'_> {
    /// Groups bucket series by their labels without `le`; warns about malformed `le` values.
    fn bucket_groups(&mut self, vs: &[SeriesData], arg: &Expr) -> Vec<Group> {
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut groups: Vec<Group> = Vec::new();
        for (si, s) in vs.iter().enumerate() {
            let le = s.labels.get("le");
            let upper = le.and_then(parse_le);
            let Some(upper) = upper else {
                let name = s.labels.metric_name().unwrap_or("").to_string();
                let pos = self.pos(arg);
                self.annos.warn(format!(
                    "bucket label \"le\" is missing or has a malformed value of {:?} for metric name {name:?}{pos}",
                    le.unwrap_or("")
                ));
                continue;
            };
            let mut b = s.labels.to_builder();
            b.del("le");
            let key = b.build();
            let gi = *index.entry(key.clone()).or_insert_with(|| {
                groups.push(Group {
                    labels: key,
                    members: Vec::new(),
                });
                groups.len() - 1
            });
            groups[gi].members.push((si, upper));
        }
        groups
    }

    /// Per group and step, the buckets present at that step.
    fn for_each_bucket_set(
        vs: &[SeriesData],
        groups: &[Group],
        g: &Grid,
        mut f: impl FnMut(usize, usize, &mut Vec<Bucket>),
    ) {
        let n = g.len();
        let mut per_step: Vec<Vec<Bucket>> = vec![Vec::new(); n];
        for (gi, grp) in groups.iter().enumerate() {
            for b in per_step.iter_mut() {
                b.clear();
            }
            for (si, upper) in &grp.members {
                for p in &vs[*si].points {
                    per_step[g.idx(p.t)].push(Bucket {
                        upper: *upper,
                        count: p.v,
                    });
                }
            }
            for (i, b) in per_step.iter_mut().enumerate() {
                if !b.is_empty() {
                    f(gi, i, b);
                }
            }
        }
    }

    /// `histogram_quantile(φ, buckets)`.
    pub(crate) fn histogram_quantile(
        &mut self,
        q: &[f64],
        vs: Vec<SeriesData>,
        g: &Grid,
        arg: &Expr,
    ) -> Result<Vec<SeriesData>, PromqlError> {
        let groups = self.bucket_groups(&vs, arg);
        let mut out: Vec<Vec<Sample>> = vec![Vec::new(); groups.len()];
        let mut forced: Vec<bool> = vec![false; groups.len()];
        let bad_q: Vec<f64> = q
            .iter()
            .copied()
            .filter(|x| !(0.0..=1.0).contains(x))
            .collect();
        Self::for_each_bucket_set(&vs, &groups, g, |gi, i, b| {
            let (v, f) = bucket_quantile(q[i], b);
            forced[gi] |= f;
            out[gi].push(Sample::new(g.ts(i), v));
        });
        if let Some(qv) = bad_q.first() {
            let pos = self.pos_text("histogram_quantile");
            self.annos.warn(format!(
                "quantile value should be between 0 and 1, got {}{pos}",
                format_float_g(*qv)
            ));
        }
        let mut res = Vec::new();
        for ((grp, pts), f) in groups.into_iter().zip(out).zip(forced) {
            if f {
                let name = grp.labels.metric_name().unwrap_or("").to_string();
                let pos = self.pos(arg);
                self.annos.info(format!(
                    "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {name:?}{pos}"
                ));
            }
            if !pts.is_empty() {
                res.push(SeriesData {
                    labels: grp.labels,
                    drop_name: true,
                    points: pts,
                });
            }
        }
        Ok(res)
    }

    /// `histogram_fraction(lower, upper, buckets)`.
    pub(crate) fn histogram_fraction(
        &mut self,
        lo: &[f64],
        hi: &[f64],
        vs: Vec<SeriesData>,
        g: &Grid,
        arg: &Expr,
    ) -> Result<Vec<SeriesData>, PromqlError> {
        let groups = self.bucket_groups(&vs, arg);
        let mut out: Vec<Vec<Sample>> = vec![Vec::new(); groups.len()];
        Self::for_each_bucket_set(&vs, &groups, g, |gi, i, b| {
            out[gi].push(Sample::new(g.ts(i), bucket_fraction(lo[i], hi[i], b)));
        });
        Ok(groups
            .into_iter()
            .zip(out)
            .filter(|(_, p)| !p.is_empty())
            .map(|(grp, pts)| SeriesData {
                labels: grp.labels,
                drop_name: true,
                points: pts,
            })
            .collect())
    }
}

fn parse_le(s: &str) -> Option<f64> {
    let v = match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => f64::INFINITY,
        "-Inf" | "-inf" => f64::NEG_INFINITY,
        t => t.parse::<f64>().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

fn sort_and_coalesce(b: &mut Vec<Bucket>) {
    b.sort_by(|x, y| {
        x.upper
            .partial_cmp(&y.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut out: Vec<Bucket> = Vec::with_capacity(b.len());
    for x in b.iter() {
        match out.last_mut() {
            Some(l) if l.upper == x.upper => l.count += x.count,
            _ => out.push(*x),
        }
    }
    *b = out;
}

/// Returns the quantile and whether monotonicity had to be forced.
fn bucket_quantile(q: f64, b: &mut Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    sort_and_coalesce(b);
    if b.last().is_none_or(|l| l.upper != f64::INFINITY) {
        return (f64::NAN, false);
    }
    // Ensure monotonicity, ignoring numerically insignificant differences.
    let mut forced = false;
    let mut prev = b[0].count;
    for x in b.iter_mut().skip(1) {
        let cur = x.count;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) {
            x.count = prev;
            continue;
        }
        if cur < prev {
            x.count = prev;
            forced = true;
            continue;
        }
        prev = cur;
    }
    if b.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = b[b.len() - 1].count;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let idx = b[..b.len() - 1].partition_point(|x| x.count < rank);
    if idx == b.len() - 1 {
        return (b[b.len() - 2].upper, forced);
    }
    if idx == 0 && b[0].upper <= 0.0 {
        return (b[0].upper, forced);
    }
    let mut start = 0.0;
    let end = b[idx].upper;
    let mut count = b[idx].count;
    if idx > 0 {
        start = b[idx - 1].upper;
        count -= b[idx - 1].count;
        rank -= b[idx - 1].count;
    }
    (start + (end - start) * (rank / count), forced)
}

fn bucket_fraction(lower: f64, upper: f64, b: &mut Vec<Bucket>) -> f64 {
    sort_and_coalesce(b);
    if b.last().is_none_or(|l| l.upper != f64::INFINITY) {
        return f64::NAN;
    }
    let count = b[b.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for (i, x) in b.iter().enumerate() {
        let mut lb = if i > 0 {
            b[i - 1].upper
        } else {
            f64::NEG_INFINITY
        };
        let ub = x.upper;
        if i == 0 && ub > 0.0 {
            lb = 0.0;
        }
        // Within the infinitely wide first bucket nothing can be interpolated: the part
        // below `upper` or above `lower` contributes no observations.
        let interp_lower = |v: f64| {
            if lb.is_infinite() {
                x.count
            } else {
                rank + (x.count - rank) * (v - lb) / (ub - lb)
            }
        };
        let interp_upper = |v: f64| {
            if lb.is_infinite() {
                rank
            } else {
                rank + (x.count - rank) * (v - lb) / (ub - lb)
            }
        };
        if !lower_set && lb >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lb >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lb < lower && ub > lower {
            lower_rank = interp_lower(lower);
            lower_set = true;
        }
        if !upper_set && lb < upper && ub > upper {
            upper_rank = interp_upper(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = x.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bk(v: &[(f64, f64)]) -> Vec<Bucket> {
        v.iter()
            .map(|(u, c)| Bucket {
                upper: *u,
                count: *c,
            })
            .collect()
    }

    #[test]
    fn quantile_interpolates_in_bucket() {
        let mut b = bk(&[(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)]);
        assert_eq!(bucket_quantile(0.75, &mut b).0, 1.5);
        let mut b = bk(&[(1.0, 10.0), (2.0, 20.0)]);
        assert!(bucket_quantile(0.5, &mut b).0.is_nan());
    }

    #[test]
    fn fraction_of_whole_is_one() {
        let mut b = bk(&[(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)]);
        assert_eq!(
            bucket_fraction(f64::NEG_INFINITY, f64::INFINITY, &mut b),
            1.0
        );
    }
}
