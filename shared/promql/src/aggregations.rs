//! Aggregation operators (`sum`, `topk`, `quantile`, …) with `by`/`without`.
//!
//! Series are assigned to groups once (not per step); simple aggregators then fold each
//! group's points into one dense per-step accumulator.

use std::collections::HashMap;

use ember_model::{Labels, LabelsBuilder, METRIC_NAME, Sample};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use crate::PromqlError;
use crate::eval::{Evaluator, Grid, SeriesData, Val};
use crate::range_functions::quantile;
use crate::util::{format_float, format_float_g, kahan_sum_inc};

/// The simple (fold-per-step) aggregators.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fold {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
}

impl Fold {
    fn parse(op: &str) -> Option<Fold> {
        Some(match op {
            "sum" => Fold::Sum,
            "avg" => Fold::Avg,
            "count" => Fold::Count,
            "min" => Fold::Min,
            "max" => Fold::Max,
            "group" => Fold::Group,
            "stddev" => Fold::Stddev,
            "stdvar" => Fold::Stdvar,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Default)]
struct Acc {
    seen: bool,
    v: f64,
    c: f64,
    mean: f64,
    count: f64,
    incremental: bool,
}

/// The grouping labels of a series under `by`/`without`.
fn group_labels(s: &SeriesData, m: &Option<LabelModifier>) -> Labels {
    match m {
        None => Labels::empty(),
        Some(LabelModifier::Include(ls)) => {
            let mut b = LabelsBuilder::new();
            for l in &ls.labels {
                if let Some(v) = s.labels.get(l) {
                    b.set(l.as_str(), v);
                }
            }
            b.build()
        }
        Some(LabelModifier::Exclude(ls)) => {
            let mut b = s.labels.to_builder();
            b.del(METRIC_NAME);
            for l in &ls.labels {
                b.del(l);
            }
            b.build()
        }
    }
}

impl Evaluator<'_> {
    /// Evaluates an aggregation.
    pub(crate) fn eval_aggregate(
        &mut self,
        a: &AggregateExpr,
        g: &Grid,
    ) -> Result<Val, PromqlError> {
        let op = a.op.to_string();
        let n = g.len();
        let mut param = Vec::new();
        let mut label_param = String::new();
        if let Some(p) = &a.param {
            if op == "count_values" {
                label_param = self.eval_string(p, g)?;
            } else {
                param = self.eval_scalar(p, g)?;
            }
        }
        let needs_param = matches!(
            op.as_str(),
            "topk" | "bottomk" | "limitk" | "limit_ratio" | "quantile"
        );
        if needs_param && param.len() != n {
            return Err(PromqlError::Execution(format!(
                "{op} requires a scalar parameter"
            )));
        }
        let vs = self.eval_vector(&a.expr, g)?;

        // Assign series to groups.
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut groups: Vec<(Labels, Vec<usize>)> = Vec::new();
        // With delayed name removal, `by (__name__)` groups by the pending name; the group
        // then drops its name if any member would have.
        let mut group_drop: Vec<bool> = Vec::new();
        for (si, s) in vs.iter().enumerate() {
            let key = group_labels(s, &a.modifier);
            let gi = *index.entry(key.clone()).or_insert_with(|| {
                groups.push((key, Vec::new()));
                group_drop.push(false);
                groups.len() - 1
            });
            groups[gi].1.push(si);
            group_drop[gi] |= s.drop_name;
        }

        match op.as_str() {
            "topk" | "bottomk" | "limitk" | "limit_ratio" => {
                self.select_series(&op, &param, vs, &groups, g)
            }
            "quantile" => {
                if let Some(q) = param.iter().find(|q| !(0.0..=1.0).contains(*q)) {
                    let pos = self.pos_text("quantile");
                    self.annos.warn(format!(
                        "quantile value should be between 0 and 1, got {}{pos}",
                        format_float_g(*q)
                    ));
                }
                let mut out = Vec::new();
                let mut per_step: Vec<Vec<f64>> = vec![Vec::new(); n];
                for ((labels, members), drop) in groups.into_iter().zip(group_drop.iter()) {
                    per_step.iter_mut().for_each(Vec::clear);
                    for si in members {
                        for p in &vs[si].points {
                            per_step[g.idx(p.t)].push(p.v);
                        }
                    }
                    let pts: Vec<Sample> = per_step
                        .iter_mut()
                        .enumerate()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(i, v)| Sample::new(g.ts(i), quantile(param[i], v)))
                        .collect();
                    out.push(SeriesData {
                        labels,
                        drop_name: *drop,
                        points: pts,
                    });
                }
                Ok(Val::Vector(out))
            }
            "count_values" => {
                if label_param.is_empty() {
                    return Err(PromqlError::Execution(format!(
                        "invalid label name {label_param:?}"
                    )));
                }
                let mut out_index: HashMap<(usize, String), usize> = HashMap::new();
                let mut out: Vec<SeriesData> = Vec::new();
                let mut counts: HashMap<usize, f64> = HashMap::new();
                let mut per_step: Vec<Vec<f64>> = vec![Vec::new(); n];
                for (gi, (labels, members)) in groups.iter().enumerate() {
                    per_step.iter_mut().for_each(Vec::clear);
                    for si in members {
                        for p in &vs[*si].points {
                            per_step[g.idx(p.t)].push(p.v);
                        }
                    }
                    for (i, vals) in per_step.iter().enumerate() {
                        counts.clear();
                        let mut order = Vec::new();
                        for v in vals {
                            let key = format_float(*v);
                            let oi = *out_index.entry((gi, key.clone())).or_insert_with(|| {
                                let mut b = labels.to_builder();
                                b.set(label_param.as_str(), key.clone());
                                out.push(SeriesData::new(b.build(), Vec::new()));
                                out.len() - 1
                            });
                            let c = counts.entry(oi).or_insert(0.0);
                            if *c == 0.0 {
                                order.push(oi);
                            }
                            *c += 1.0;
                        }
                        for oi in order {
                            out[oi].points.push(Sample::new(g.ts(i), counts[&oi]));
                        }
                    }
                }
                Ok(Val::Vector(out))
            }
            other => {
                let Some(fold) = Fold::parse(other) else {
                    return Err(PromqlError::Execution(format!(
                        "unsupported aggregation {other:?}"
                    )));
                };
                let mut out = Vec::with_capacity(groups.len());
                let mut acc = vec![Acc::default(); n];
                for ((labels, members), drop) in groups.into_iter().zip(group_drop.iter()) {
                    acc.iter_mut().for_each(|x| *x = Acc::default());
                    for si in members {
                        for p in &vs[si].points {
                            accumulate(fold, &mut acc[g.idx(p.t)], p.v);
                        }
                    }
                    let pts: Vec<Sample> = acc
                        .iter()
                        .enumerate()
                        .filter(|(_, x)| x.seen)
                        .map(|(i, x)| Sample::new(g.ts(i), finish(fold, x)))
                        .collect();
                    out.push(SeriesData {
                        labels,
                        drop_name: *drop,
                        points: pts,
                    });
                }
                Ok(Val::Vector(out))
            }
        }
    }

    /// `topk`, `bottomk`, `limitk`, `limit_ratio`: keep whole input series per step.
    fn select_series(
        &mut self,
        op: &str,
        param: &[f64],
        vs: Vec<SeriesData>,
        groups: &[(Labels, Vec<usize>)],
        g: &Grid,
    ) -> Result<Val, PromqlError> {
        let n = g.len();
        for p in param {
            if p.is_nan() {
                return Err(PromqlError::Execution(
                    if op == "limit_ratio" {
                        "Ratio value is NaN"
                    } else {
                        "Parameter value is NaN"
                    }
                    .into(),
                ));
            }
        }
        let mut ratio = param.to_vec();
        if op == "limit_ratio" {
            for r in ratio.iter_mut() {
                if *r < -1.0 || *r > 1.0 {
                    let capped = r.clamp(-1.0, 1.0);
                    self.annos.warn(format!(
                        "ratio value should be between -1 and 1, got {}, capping to {}{}",
                        format_float_g(*r),
                        format_float_g(capped),
                        self.pos_text("limit_ratio")
                    ));
                    *r = capped;
                }
            }
        }
        let mut out: Vec<Vec<Sample>> = vec![Vec::new(); vs.len()];
        let mut order: Vec<usize> = Vec::new();
        let mut per_step: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        let hashes: Vec<f64> = if op == "limit_ratio" {
            vs.iter()
                .map(|s| s.labels.stable_hash() as f64 / u64::MAX as f64)
                .collect()
        } else {
            Vec::new()
        };
        for (_, members) in groups {
            per_step.iter_mut().for_each(Vec::clear);
            for &si in members {
                for p in &vs[si].points {
                    per_step[g.idx(p.t)].push((si, p.v));
                }
            }
            for (i, cands) in per_step.iter_mut().enumerate() {
                if cands.is_empty() {
                    continue;
                }
                let t = g.ts(i);
                let chosen: Vec<(usize, f64)> = if op == "limit_ratio" {
                    let r = ratio[i];
                    cands
                        .iter()
                        .copied()
                        .filter(|(si, _)| {
                            if r >= 0.0 {
                                hashes[*si] < r
                            } else {
                                hashes[*si] >= 1.0 + r
                            }
                        })
                        .collect()
                } else {
                    let k = param[i];
                    if k < 1.0 {
                        continue;
                    }
                    let k = if k >= cands.len() as f64 {
                        cands.len()
                    } else {
                        k as usize
                    };
                    match op {
                        "topk" => sort_nan_last(cands, true),
                        "bottomk" => sort_nan_last(cands, false),
                        _ => {}
                    }
                    cands[..k].to_vec()
                };
                for (si, v) in chosen {
                    out[si].push(Sample::new(t, v));
                    if n == 1 {
                        order.push(si);
                    }
                }
            }
        }
        let mut vs: Vec<Option<SeriesData>> = vs.into_iter().map(Some).collect();
        let mut res = Vec::new();
        if n == 1 {
            for si in order {
                if let Some(mut s) = vs[si].take() {
                    s.points = std::mem::take(&mut out[si]);
                    res.push(s);
                }
            }
        } else {
            for (si, pts) in out.into_iter().enumerate() {
                if !pts.is_empty()
                    && let Some(mut s) = vs[si].take()
                {
                    s.points = pts;
                    res.push(s);
                }
            }
        }
        Ok(Val::Vector(res))
    }
}

fn sort_nan_last(c: &mut [(usize, f64)], desc: bool) {
    c.sort_by(|a, b| match (a.1.is_nan(), b.1.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ if desc => b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal),
        _ => a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal),
    });
}

fn accumulate(op: Fold, a: &mut Acc, x: f64) {
    if !a.seen {
        *a = Acc {
            seen: true,
            v: x,
            c: 0.0,
            mean: x,
            count: 1.0,
            incremental: false,
        };
        match op {
            Fold::Stddev | Fold::Stdvar => {
                a.v = if x.is_nan() || x.is_infinite() {
                    f64::NAN
                } else {
                    0.0
                }
            }
            Fold::Group => a.v = 1.0,
            _ => {}
        }
        return;
    }
    a.count += 1.0;
    match op {
        Fold::Sum => (a.v, a.c) = kahan_sum_inc(x, a.v, a.c),
        Fold::Avg => {
            if !a.incremental {
                let (nv, nc) = kahan_sum_inc(x, a.v, a.c);
                if !nv.is_infinite() {
                    a.v = nv;
                    a.c = nc;
                    return;
                }
                a.incremental = true;
                a.mean = a.v / (a.count - 1.0);
                a.c /= a.count - 1.0;
            }
            let q = (a.count - 1.0) / a.count;
            (a.mean, a.c) = kahan_sum_inc(x / a.count, q * a.mean, q * a.c);
        }
        Fold::Min if x < a.v || a.v.is_nan() => a.v = x,
        Fold::Max if x > a.v || a.v.is_nan() => a.v = x,
        Fold::Stddev | Fold::Stdvar => {
            let delta = x - a.mean;
            a.mean += delta / a.count;
            a.v += delta * (x - a.mean);
        }
        _ => {}
    }
}

fn finish(op: Fold, a: &Acc) -> f64 {
    match op {
        Fold::Sum if a.v.is_infinite() => a.v,
        Fold::Sum => a.v + a.c,
        Fold::Avg if a.incremental => a.mean + a.c,
        Fold::Avg => a.v / a.count + a.c / a.count,
        Fold::Count => a.count,
        Fold::Stdvar => a.v / a.count,
        Fold::Stddev => (a.v / a.count).sqrt(),
        _ => a.v,
    }
}
