//! The experimental `info(v, [selector])` function: enriches series with the data labels
//! of info metrics (default `target_info`) that share their identifying labels
//! (`instance`, `job`).

use std::collections::HashMap;

use ember_model::{Labels, METRIC_NAME, Sample};
use promql_parser::label::{MatchOp, Matcher as PMatcher};
use promql_parser::parser::{Call, Expr, VectorSelector};

use crate::PromqlError;
use crate::eval::{Evaluator, Grid, SeriesData, Val, unparen};

const IDENTIFYING: [&str; 2] = ["instance", "job"];
const DEFAULT_INFO_METRIC: &str = "target_info";

/// Rewrites every `info()` call so its second argument is an explicit selector with a
/// `__name__` matcher (default `target_info`); the planner then fetches it like any other.
pub(crate) fn prepare(mut e: Expr) -> Result<Expr, PromqlError> {
    rewrite(&mut e)?;
    Ok(e)
}

fn rewrite(e: &mut Expr) -> Result<(), PromqlError> {
    match e {
        Expr::Call(c) => {
            for a in c.args.args.iter_mut() {
                rewrite(a)?;
            }
            if c.func.name == "info" {
                if c.args.args.len() < 2 {
                    let vs = VectorSelector::new(
                        Some(DEFAULT_INFO_METRIC.to_string()),
                        promql_parser::label::Matchers::empty(),
                    );
                    c.args.args.push(Box::new(Expr::VectorSelector(vs)));
                }
                let Expr::VectorSelector(vs) = &mut *c.args.args[1] else {
                    return Err(PromqlError::Parse(
                        "1:1: parse error: expected label selectors as the second argument to \"info\"".into(),
                    ));
                };
                let has_name =
                    vs.name.is_some() || vs.matchers.matchers.iter().any(|m| m.name == METRIC_NAME);
                if !has_name {
                    vs.matchers.matchers.push(PMatcher::new(
                        MatchOp::Equal,
                        METRIC_NAME,
                        DEFAULT_INFO_METRIC,
                    ));
                }
            }
        }
        Expr::Aggregate(a) => {
            rewrite(&mut a.expr)?;
            if let Some(p) = &mut a.param {
                rewrite(p)?;
            }
        }
        Expr::Unary(u) => rewrite(&mut u.expr)?,
        Expr::Binary(b) => {
            rewrite(&mut b.lhs)?;
            rewrite(&mut b.rhs)?;
        }
        Expr::Paren(p) => rewrite(&mut p.expr)?,
        Expr::Subquery(s) => rewrite(&mut s.expr)?,
        _ => {}
    }
    Ok(())
}

impl Evaluator<'_> {
    /// Evaluates `info(v, selector)` (after [`prepare`]).
    pub(crate) fn eval_info(&mut self, c: &Call, g: &Grid) -> Result<Val, PromqlError> {
        let base = self.eval_vector(&c.args.args[0], g)?;
        let Expr::VectorSelector(sel) = unparen(&c.args.args[1]) else {
            return Err(PromqlError::Execution("info: expected a selector".into()));
        };
        let mut name_matchers: Vec<&PMatcher> = Vec::new();
        let mut data_matchers: Vec<&PMatcher> = Vec::new();
        for m in &sel.matchers.matchers {
            if m.name == METRIC_NAME {
                name_matchers.push(m)
            } else {
                data_matchers.push(m)
            }
        }
        let name_eq = sel.name.clone();
        let is_info_metric = |name: &str| {
            name_eq.as_deref().is_none_or(|n| n == name)
                && name_matchers.iter().all(|m| m.is_match(name))
        };
        let infos = self.eval_vector_selector(sel, g, false)?;
        let key = |l: &Labels| IDENTIFYING.map(|n| l.get(n).unwrap_or("").to_string());
        let mut by_key: HashMap<[String; 2], Vec<usize>> = HashMap::new();
        for (i, s) in infos.iter().enumerate() {
            by_key.entry(key(&s.labels)).or_default().push(i);
        }
        let empty_ok = data_matchers.iter().all(|m| m.is_match(""));
        let wanted: Vec<&str> = data_matchers.iter().map(|m| m.name.as_str()).collect();

        let mut out: Vec<SeriesData> = Vec::new();
        let mut index: HashMap<(Labels, bool), usize> = HashMap::new();
        for s in base {
            if is_info_metric(s.labels.metric_name().unwrap_or("")) {
                out.push(s);
                continue;
            }
            let cands = by_key.get(&key(&s.labels));
            for p in &s.points {
                let mut b = s.labels.to_builder();
                let mut matched = false;
                for &ii in cands.into_iter().flatten() {
                    let info = &infos[ii];
                    if info.points.binary_search_by_key(&p.t, |q| q.t).is_err() {
                        continue;
                    }
                    matched = true;
                    for l in info.labels.iter() {
                        if l.name == METRIC_NAME || IDENTIFYING.contains(&l.name.as_str()) {
                            continue;
                        }
                        if !wanted.is_empty() && !wanted.contains(&l.name.as_str()) {
                            continue;
                        }
                        if s.labels.get(&l.name).is_none() {
                            b.set(l.name.as_str(), l.value.as_str());
                        }
                    }
                }
                if !matched && !empty_ok {
                    continue;
                }
                let labels = b.build();
                let k = (labels, s.drop_name);
                let idx = match index.get(&k) {
                    Some(&i) => i,
                    None => {
                        out.push(SeriesData {
                            labels: k.0.clone(),
                            drop_name: k.1,
                            points: Vec::new(),
                        });
                        index.insert(k, out.len() - 1);
                        out.len() - 1
                    }
                };
                out[idx].points.push(Sample::new(p.t, p.v));
            }
        }
        out.retain(|s| !s.points.is_empty());
        Ok(Val::Vector(out))
    }
}
