//! Binary operators: arithmetic, comparison (with `bool`), set operators, and vector
//! matching (`on`/`ignoring`, `group_left`/`group_right`).
//!
//! Matching signatures are computed once per series and interned to small integers; the
//! per-step join then only touches integers and cached output-series indices.

use std::collections::{HashMap, HashSet};

use ember_model::{Labels, LabelsBuilder, METRIC_NAME, Sample};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use crate::PromqlError;
use crate::eval::{Evaluator, Grid, SeriesData, Val};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "^" => Op::Pow,
            "atan2" => Op::Atan2,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            "and" => Op::And,
            "or" => Op::Or,
            "unless" => Op::Unless,
            _ => return None,
        })
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Lt | Op::Ge | Op::Le)
    }

    /// Applies the operator; for comparisons returns (lhs, whether the comparison holds).
    fn apply(self, l: f64, r: f64) -> (f64, bool) {
        match self {
            Op::Add => (l + r, true),
            Op::Sub => (l - r, true),
            Op::Mul => (l * r, true),
            Op::Div => (l / r, true),
            Op::Mod => (l % r, true),
            Op::Pow => (l.powf(r), true),
            Op::Atan2 => (l.atan2(r), true),
            Op::Eq => (l, l == r),
            Op::Ne => (l, l != r),
            Op::Gt => (l, l > r),
            Op::Lt => (l, l < r),
            Op::Ge => (l, l >= r),
            Op::Le => (l, l <= r),
            Op::And | Op::Or | Op::Unless => (l, true),
        }
    }
}

/// Formats labels as Prometheus' `labels.String()` does: `{a="b", c="d"}` (name included).
pub(crate) fn prom_labels_string(l: &Labels) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// The matching signature labels of a series.
fn signature(s: &SeriesData, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(ls)) => {
            let mut b = LabelsBuilder::new();
            for n in &ls.labels {
                if n == METRIC_NAME && s.drop_name {
                    continue;
                }
                if let Some(v) = s.labels.get(n) {
                    b.set(n.as_str(), v);
                }
            }
            b.build()
        }
        Some(LabelModifier::Exclude(ls)) => {
            let mut b = s.labels.to_builder();
            b.del(METRIC_NAME);
            for n in &ls.labels {
                b.del(n);
            }
            b.build()
        }
        None => s.labels.without_metric_name(),
    }
}

/// Interns signatures of both sides to dense ids.
fn intern(
    sides: [&[SeriesData]; 2],
    matching: Option<&LabelModifier>,
) -> (Vec<usize>, Vec<usize>, Vec<Labels>) {
    let mut ids: HashMap<Labels, usize> = HashMap::new();
    let mut names = Vec::new();
    let mut out = [Vec::new(), Vec::new()];
    for (k, side) in sides.iter().enumerate() {
        for s in side.iter() {
            let sig = signature(s, matching);
            let id = *ids.entry(sig.clone()).or_insert_with(|| {
                names.push(sig);
                names.len() - 1
            });
            out[k].push(id);
        }
    }
    let [a, b] = out;
    (a, b, names)
}

impl Evaluator<'_> {
    /// Evaluates a binary expression.
    pub(crate) fn eval_binary(&mut self, b: &BinaryExpr, g: &Grid) -> Result<Val, PromqlError> {
        let op = Op::parse(&b.op.to_string())
            .ok_or_else(|| PromqlError::Execution(format!("unknown binary operator {}", b.op)))?;
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let lhs = self.eval(&b.lhs, g)?;
        let rhs = self.eval(&b.rhs, g)?;
        match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
                l.iter()
                    .zip(&r)
                    .map(|(a, c)| {
                        let (v, keep) = op.apply(*a, *c);
                        if op.is_comparison() {
                            if keep { 1.0 } else { 0.0 }
                        } else {
                            v
                        }
                    })
                    .collect(),
            )),
            (Val::Vector(v), Val::Scalar(s)) => {
                Ok(Val::Vector(vector_scalar(op, v, &s, false, return_bool, g)))
            }
            (Val::Scalar(s), Val::Vector(v)) => {
                Ok(Val::Vector(vector_scalar(op, v, &s, true, return_bool, g)))
            }
            (Val::Vector(l), Val::Vector(r)) => {
                let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
                match op {
                    Op::And | Op::Or | Op::Unless => Ok(Val::Vector(set_op(op, l, r, matching, g))),
                    _ => {
                        let card = b
                            .modifier
                            .as_ref()
                            .map(|m| m.card.clone())
                            .unwrap_or(VectorMatchCardinality::OneToOne);
                        let fill = b
                            .modifier
                            .as_ref()
                            .map_or((None, None), |m| (m.fill_values.lhs, m.fill_values.rhs));
                        let out =
                            self.vector_vector(op, l, r, matching, &card, return_bool, fill, g)?;
                        Ok(Val::Vector(out))
                    }
                }
            }
            _ => Err(PromqlError::Execution(
                "invalid operand types for binary expression".into(),
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn vector_vector(
        &mut self,
        op: Op,
        lhs: Vec<SeriesData>,
        rhs: Vec<SeriesData>,
        matching: Option<&LabelModifier>,
        card: &VectorMatchCardinality,
        return_bool: bool,
        fill: (Option<f64>, Option<f64>),
        g: &Grid,
    ) -> Result<Vec<SeriesData>, PromqlError> {
        // Experimental fill modifiers: a missing "one" side takes the right fill value, a
        // missing "many" side the left one (upstream swaps them along with group_right).
        let (fill_many, fill_one) = fill;
        let empty = Labels::empty();
        let swapped = matches!(card, VectorMatchCardinality::OneToMany(_));
        let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
        let include = match card {
            VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
                Some(&l.labels)
            }
            _ => None,
        };
        let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
        let (many_sig, one_sig, sig_labels) = intern([&many, &one], matching);
        let nsig = sig_labels.len();
        let n = g.len();
        let is_arith = !op.is_comparison();

        // Fast path: one-to-one matching where every signature has at most one series per
        // side (the common case). No step can then produce a conflict, so each pair is a
        // plain merge of two sorted point lists.
        if one_to_one && fill_many.is_none() && fill_one.is_none() {
            let mut one_by_sig = vec![usize::MAX; nsig];
            let mut unique = true;
            for (oi, &sig) in one_sig.iter().enumerate() {
                unique &= one_by_sig[sig] == usize::MAX;
                one_by_sig[sig] = oi;
            }
            let mut many_seen_sig = vec![false; nsig];
            for &sig in &many_sig {
                unique &= !many_seen_sig[sig];
                many_seen_sig[sig] = true;
            }
            if unique {
                let mut out = Vec::new();
                for (mi, s) in many.iter().enumerate() {
                    let oi = one_by_sig[many_sig[mi]];
                    let Some(o) = one.get(oi) else { continue };
                    let (a, b) = (&s.points, &o.points);
                    let mut pts = Vec::with_capacity(a.len().min(b.len()));
                    let (mut i, mut j) = (0, 0);
                    while i < a.len() && j < b.len() {
                        match a[i].t.cmp(&b[j].t) {
                            std::cmp::Ordering::Less => i += 1,
                            std::cmp::Ordering::Greater => j += 1,
                            std::cmp::Ordering::Equal => {
                                let (mut v, mut keep) = op.apply(a[i].v, b[j].v);
                                if return_bool {
                                    v = if keep { 1.0 } else { 0.0 };
                                    keep = true;
                                }
                                if keep {
                                    pts.push(Sample::new(a[i].t, v));
                                }
                                i += 1;
                                j += 1;
                            }
                        }
                    }
                    if !pts.is_empty() {
                        let labels = result_labels(&s.labels, &o.labels, matching, true, None);
                        let drop_name = s.drop_name || is_arith || return_bool;
                        out.push(SeriesData {
                            labels,
                            drop_name,
                            points: pts,
                        });
                    }
                }
                return Ok(out);
            }
        }

        // Which one-side series sit at each step, per signature (generation-stamped slots).
        let mut slot: Vec<(usize, usize, f64)> = vec![(usize::MAX, 0, 0.0); nsig];
        let mut matched_gen: Vec<usize> = vec![usize::MAX; nsig];
        let mut pair_index: HashMap<(usize, usize), usize> = HashMap::new();
        let mut label_index: HashMap<(Labels, bool), usize> = HashMap::new();
        let mut out: Vec<SeriesData> = Vec::new();
        let mut out_gen: Vec<usize> = Vec::new();
        let mut one_cur = vec![0usize; one.len()];
        let mut many_cur = vec![0usize; many.len()];
        let mut last_pair = vec![(usize::MAX - 1, 0usize); many.len()];
        let mut many_seen: Vec<usize> = vec![usize::MAX; nsig];
        let mut sig_index: HashMap<usize, usize> = HashMap::new();

        for i in 0..n {
            let t = g.ts(i);
            for (oi, s) in one.iter().enumerate() {
                let c = &mut one_cur[oi];
                if *c < s.points.len() && s.points[*c].t == t {
                    let v = s.points[*c].v;
                    *c += 1;
                    let sig = one_sig[oi];
                    if slot[sig].0 == i {
                        let prev = &one[slot[sig].1];
                        let side = if swapped { "left" } else { "right" };
                        return Err(PromqlError::Execution(format!(
                            "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                            prom_labels_string(&sig_labels[sig]),
                            prom_labels_string(&prev.labels),
                            prom_labels_string(&s.labels),
                        )));
                    }
                    slot[sig] = (i, oi, v);
                }
            }
            for (mi, s) in many.iter().enumerate() {
                let c = &mut many_cur[mi];
                if !(*c < s.points.len() && s.points[*c].t == t) {
                    continue;
                }
                let mv = s.points[*c].v;
                *c += 1;
                let sig = many_sig[mi];
                many_seen[sig] = i;
                let (oi, ov) = if slot[sig].0 == i {
                    (slot[sig].1, slot[sig].2)
                } else if let Some(f) = fill_one {
                    (usize::MAX, f)
                } else {
                    continue;
                };
                let (l, r) = if swapped { (ov, mv) } else { (mv, ov) };
                let (mut v, mut keep) = op.apply(l, r);
                if return_bool {
                    v = if keep { 1.0 } else { 0.0 };
                    keep = true;
                }
                if one_to_one {
                    if matched_gen[sig] == i {
                        return Err(PromqlError::Execution(
                            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                                .into(),
                        ));
                    }
                    matched_gen[sig] = i;
                }
                if !keep {
                    continue;
                }
                let cached = last_pair[mi];
                let idx = if cached.0 == oi {
                    cached.1
                } else {
                    match pair_index.get(&(mi, oi)) {
                        Some(&k) => k,
                        None => {
                            let one_labels = one.get(oi).map_or(&empty, |o| &o.labels);
                            let labels =
                                result_labels(&s.labels, one_labels, matching, one_to_one, include);
                            let drop_name = s.drop_name || is_arith || return_bool;
                            let k = *label_index
                                .entry((labels.clone(), drop_name))
                                .or_insert_with(|| {
                                    out.push(SeriesData {
                                        labels,
                                        drop_name,
                                        points: Vec::new(),
                                    });
                                    out_gen.push(usize::MAX);
                                    out.len() - 1
                                });
                            pair_index.insert((mi, oi), k);
                            k
                        }
                    }
                };
                last_pair[mi] = (oi, idx);
                if out_gen[idx] == i {
                    return Err(PromqlError::Execution(if one_to_one {
                        "vector cannot contain metrics with the same labelset".into()
                    } else {
                        "multiple matches for labels: grouping labels must ensure unique matches"
                            .into()
                    }));
                }
                out_gen[idx] = i;
                out[idx].points.push(Sample::new(t, v));
            }
            if let Some(mv) = fill_many {
                for (sig, &(gen_i, _, ov)) in slot.iter().enumerate() {
                    if gen_i != i || many_seen[sig] == i {
                        continue;
                    }
                    let (l, r) = if swapped { (ov, mv) } else { (mv, ov) };
                    let (mut v, mut keep) = op.apply(l, r);
                    if return_bool {
                        v = if keep { 1.0 } else { 0.0 };
                        keep = true;
                    }
                    if !keep {
                        continue;
                    }
                    let idx = *sig_index.entry(sig).or_insert_with(|| {
                        out.push(SeriesData::new(sig_labels[sig].clone(), Vec::new()));
                        out_gen.push(usize::MAX);
                        out.len() - 1
                    });
                    out[idx].points.push(Sample::new(t, v));
                }
            }
        }
        Ok(out)
    }
}

fn result_labels(
    many: &Labels,
    one: &Labels,
    matching: Option<&LabelModifier>,
    one_to_one: bool,
    include: Option<&Vec<String>>,
) -> Labels {
    let mut b = many.to_builder();
    if one_to_one {
        match matching {
            Some(LabelModifier::Include(ls)) => {
                b.retain(|l| ls.labels.contains(&l.name));
            }
            Some(LabelModifier::Exclude(ls)) => {
                for n in &ls.labels {
                    b.del(n);
                }
            }
            None => {}
        }
    }
    if let Some(inc) = include {
        for n in inc {
            match one.get(n) {
                Some(v) => {
                    b.set(n.as_str(), v);
                }
                None => {
                    b.del(n);
                }
            }
        }
    }
    b.build()
}

fn vector_scalar(
    op: Op,
    mut v: Vec<SeriesData>,
    s: &[f64],
    swap: bool,
    return_bool: bool,
    g: &Grid,
) -> Vec<SeriesData> {
    for ser in &mut v {
        if !op.is_comparison() || return_bool {
            ser.drop_name = true;
        }
        ser.points.retain_mut(|p| {
            let sv = s[g.idx(p.t)];
            let (l, r) = if swap { (sv, p.v) } else { (p.v, sv) };
            let (mut val, mut keep) = op.apply(l, r);
            if op.is_comparison() {
                val = p.v;
            }
            if return_bool {
                val = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            p.v = val;
            keep
        });
    }
    v.retain(|s| !s.points.is_empty());
    v
}

fn set_op(
    op: Op,
    lhs: Vec<SeriesData>,
    rhs: Vec<SeriesData>,
    matching: Option<&LabelModifier>,
    g: &Grid,
) -> Vec<SeriesData> {
    let (lsig, rsig, _) = intern([&lhs, &rhs], matching);
    let key = |sig: usize, t: i64| ((sig as u64) << 32) | g.idx(t) as u64;
    match op {
        Op::And | Op::Unless => {
            let present: HashSet<u64> = rhs
                .iter()
                .zip(&rsig)
                .flat_map(|(s, sig)| s.points.iter().map(move |p| key(*sig, p.t)))
                .collect();
            let want = op == Op::And;
            lhs.into_iter()
                .zip(lsig)
                .filter_map(|(mut s, sig)| {
                    s.points
                        .retain(|p| present.contains(&key(sig, p.t)) == want);
                    (!s.points.is_empty()).then_some(s)
                })
                .collect()
        }
        _ => {
            let present: HashSet<u64> = lhs
                .iter()
                .zip(&lsig)
                .flat_map(|(s, sig)| s.points.iter().map(move |p| key(*sig, p.t)))
                .collect();
            let mut out = lhs;
            for (mut s, sig) in rhs.into_iter().zip(rsig) {
                s.points.retain(|p| !present.contains(&key(sig, p.t)));
                if !s.points.is_empty() {
                    out.push(s);
                }
            }
            out
        }
    }
}
