//! The evaluator: evaluates a parsed expression over a grid of step timestamps, in memory,
//! from series that the planner already fetched.
//!
//! Every node is evaluated once for all steps ("range evaluation"): instant vectors are lists
//! of series whose points sit on grid timestamps, scalars are one value per step. Selectors
//! walk their sorted samples with forward-only cursors, so no step re-scans a series.

mod selectors;

use std::collections::HashMap;
use std::time::Instant;

use ember_model::{Labels, METRIC_NAME, Sample, Series};
use promql_parser::parser::{AtModifier, Expr, Offset, SubqueryExpr};

use crate::PromqlError;
use crate::annotations::Annotations;

/// Milliseconds of the default subquery step when none is given (the global evaluation interval).
pub(crate) const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// The step timestamps a node is evaluated at: `start, start+step, …, ≤ end`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) step: i64,
}

impl Grid {
    /// An instant grid (one step).
    pub(crate) fn instant(t: i64) -> Self {
        Self {
            start: t,
            end: t,
            step: 1,
        }
    }

    /// Number of steps.
    pub(crate) fn len(&self) -> usize {
        if self.end < self.start {
            0
        } else {
            ((self.end - self.start) / self.step) as usize + 1
        }
    }

    /// Timestamp of step `i`.
    pub(crate) fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    /// Step index of an on-grid timestamp.
    pub(crate) fn idx(&self, t: i64) -> usize {
        ((t - self.start) / self.step) as usize
    }
}

/// Query-wide time context: the top-level start/end (for `@ start()`/`end()`) and lookback.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeCtx {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) step: i64,
    pub(crate) lookback: i64,
}

/// Timestamps and durations are clamped to this magnitude so that arithmetic on them
/// (offsets, ranges, lookback) can never overflow, whatever the query says.
pub(crate) const TIME_LIMIT_MS: i64 = 1 << 60;

/// The `@` time in ms, if any.
pub(crate) fn at_ms(at: &Option<AtModifier>, ctx: &TimeCtx) -> Option<i64> {
    at.as_ref().map(|a| match a {
        AtModifier::Start => ctx.start,
        AtModifier::End => ctx.end,
        AtModifier::At(st) => match st.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_millis().min(TIME_LIMIT_MS as u128) as i64,
            Err(e) => -(e.duration().as_millis().min(TIME_LIMIT_MS as u128) as i64),
        },
    })
}

/// The offset in ms (negative offsets look forward).
pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        Some(Offset::Pos(d)) => d.as_millis().min(TIME_LIMIT_MS as u128) as i64,
        Some(Offset::Neg(d)) => -(d.as_millis().min(TIME_LIMIT_MS as u128) as i64),
        None => 0,
    }
}

/// A range (matrix selector or subquery) in ms, clamped.
pub(crate) fn range_ms(d: &std::time::Duration) -> i64 {
    d.as_millis().min(TIME_LIMIT_MS as u128) as i64
}

/// The grid a subquery's inner expression is evaluated on, aligned to multiples of its step.
pub(crate) fn subquery_grid(outer: &Grid, sq: &SubqueryExpr, ctx: &TimeCtx) -> Grid {
    let step = sq
        .step
        .map(|d| range_ms(&d))
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
    let off = offset_ms(&sq.offset);
    let range = range_ms(&sq.range);
    let (lo, hi) = match at_ms(&sq.at, ctx) {
        Some(at) => (at - off, at - off),
        None => (outer.start - off, outer.end - off),
    };
    let first = lo - range;
    // Go's integer division truncates toward zero; mirror it.
    let mut start = step * (first / step);
    if start < first {
        start += step;
    }
    Grid {
        start,
        end: hi,
        step,
    }
}

/// A series flowing through evaluation: labels, a pending "drop the metric name" flag
/// (Prometheus' delayed name removal) and points.
#[derive(Debug, Clone)]
pub(crate) struct SeriesData {
    pub(crate) labels: Labels,
    pub(crate) drop_name: bool,
    pub(crate) points: Vec<Sample>,
}

impl SeriesData {
    pub(crate) fn new(labels: Labels, points: Vec<Sample>) -> Self {
        Self {
            labels,
            drop_name: false,
            points,
        }
    }

    /// The labels as they will appear in the result.
    pub(crate) fn visible_labels(&self) -> Labels {
        if self.drop_name {
            drop_name_labels(&self.labels)
        } else {
            self.labels.clone()
        }
    }
}

/// Removes the metric name and the metadata labels that travel with it (`__type__`,
/// `__unit__`), as Prometheus does when it drops a name.
pub(crate) fn drop_name_labels(l: &Labels) -> Labels {
    if !l.iter().any(|x| x.name.starts_with("__")) {
        return l.clone();
    }
    let mut b = l.to_builder();
    b.del(METRIC_NAME);
    b.del("__type__");
    b.del("__unit__");
    b.build()
}

/// An evaluated value over a grid.
#[derive(Debug)]
pub(crate) enum Val {
    /// One value per grid step.
    Scalar(Vec<f64>),
    /// A string literal.
    Str(String),
    /// An instant vector per step (points on grid timestamps).
    Vector(Vec<SeriesData>),
    /// A range vector (only at the top level of an instant query).
    Matrix(Vec<SeriesData>),
}

/// One series of a range-vector argument; selector samples are borrowed, not copied.
pub(crate) struct RangeSeries<'a> {
    pub(crate) labels: Labels,
    pub(crate) drop_name: bool,
    pub(crate) points: std::borrow::Cow<'a, [Sample]>,
}

/// A range-vector argument: raw series (stale markers removed) and how to window them.
pub(crate) struct RangeInput<'a> {
    pub(crate) series: Vec<RangeSeries<'a>>,
    pub(crate) range: i64,
    pub(crate) offset: i64,
    pub(crate) at: Option<i64>,
    /// The metric name the selector asked for, for annotations.
    pub(crate) pos: String,
}

impl RangeInput<'_> {
    /// Evaluation time of the window for step timestamp `t`.
    pub(crate) fn eval_time(&self, t: i64) -> i64 {
        self.at.unwrap_or(t) - self.offset
    }
}

/// Per-query evaluation state.
pub(crate) struct Evaluator<'a> {
    pub(crate) data: &'a HashMap<usize, Vec<Series>>,
    pub(crate) ctx: TimeCtx,
    pub(crate) annos: Annotations,
    pub(crate) query: &'a str,
    pub(crate) deadline: Instant,
    pub(crate) max_samples: usize,
    pub(crate) samples: u64,
    /// Prometheus' `promql-delayed-name-removal`: keep `__name__` until the end of the query
    /// instead of dropping it where an operation removes it.
    pub(crate) delayed_name_removal: bool,
}

impl<'a> Evaluator<'a> {
    /// Fails with `Timeout` once the deadline has passed.
    pub(crate) fn check_deadline(&self) -> Result<(), PromqlError> {
        if Instant::now() > self.deadline {
            Err(PromqlError::Timeout("query execution"))
        } else {
            Ok(())
        }
    }

    /// Accounts for `n` samples held by a node's output.
    pub(crate) fn account(&mut self, n: usize) -> Result<(), PromqlError> {
        self.samples += n as u64;
        if n > self.max_samples {
            return Err(PromqlError::TooManySamples("query execution"));
        }
        Ok(())
    }

    /// " (line:col)" of the first selector inside `e` (Prometheus annotates with positions).
    pub(crate) fn pos(&self, e: &Expr) -> String {
        // Prefer the expression exactly as printed, then the name followed by a range or
        // matchers, then the bare name.
        let printed = e.to_string();
        let name = first_selector_name(e).unwrap_or_default();
        let off = [
            printed,
            format!("{name}["),
            format!("{name}{{"),
            name.clone(),
        ]
        .iter()
        .filter(|n| !n.is_empty())
        .find_map(|n| self.query.find(n.as_str()))
        .unwrap_or(0);
        let (l, c) = crate::parse::line_col(self.query, off);
        format!(" ({l}:{c})")
    }

    /// " (line:col)" of a literal piece of text in the query, or of the query start.
    pub(crate) fn pos_text(&self, needle: &str) -> String {
        let off = self.query.find(needle).unwrap_or(0);
        let (l, c) = crate::parse::line_col(self.query, off);
        format!(" ({l}:{c})")
    }

    /// Evaluates `e` over `g`.
    pub(crate) fn eval(&mut self, e: &Expr, g: &Grid) -> Result<Val, PromqlError> {
        let v = self.eval_node(e, g)?;
        if self.delayed_name_removal {
            return Ok(v);
        }
        match v {
            Val::Vector(mut vs) if vs.iter().any(|s| s.drop_name) => {
                for s in vs.iter_mut().filter(|s| s.drop_name) {
                    s.labels = drop_name_labels(&s.labels);
                    s.drop_name = false;
                }
                check_unique_per_step(&vs, g)?;
                Ok(Val::Vector(vs))
            }
            other => Ok(other),
        }
    }

    fn eval_node(&mut self, e: &Expr, g: &Grid) -> Result<Val, PromqlError> {
        self.check_deadline()?;
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; g.len()])),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, g),
            Expr::VectorSelector(vs) => {
                let v = self.eval_vector_selector(vs, g, false)?;
                Ok(Val::Vector(v))
            }
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                if g.len() != 1 {
                    return Err(PromqlError::BadData(
                        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
                            .into(),
                    ));
                }
                let input = self.eval_range_input(e, g)?;
                let t = input.eval_time(g.start);
                let out = input
                    .series
                    .into_iter()
                    .filter_map(|s| {
                        let mut points = s.points.into_owned();
                        points.retain(|p| p.t > t - input.range && p.t <= t);
                        (!points.is_empty()).then_some(SeriesData {
                            labels: s.labels,
                            drop_name: s.drop_name,
                            points,
                        })
                    })
                    .collect();
                Ok(Val::Matrix(out))
            }
            Expr::Unary(u) => match self.eval(&u.expr, g)? {
                Val::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Ok(Val::Scalar(v))
                }
                Val::Vector(mut vs) => {
                    for s in &mut vs {
                        s.drop_name = true;
                        s.points.iter_mut().for_each(|p| p.v = -p.v);
                    }
                    Ok(Val::Vector(vs))
                }
                _ => Err(PromqlError::Execution(
                    "unary expression only allowed on scalars and vectors".into(),
                )),
            },
            Expr::Binary(b) => self.eval_binary(b, g),
            Expr::Aggregate(a) => self.eval_aggregate(a, g),
            Expr::Call(c) => self.eval_call(c, g),
            Expr::Extension(_) => Err(PromqlError::Execution("unsupported expression".into())),
        }
    }

    /// Evaluates `e` and expects a scalar (one value per step).
    pub(crate) fn eval_scalar(&mut self, e: &Expr, g: &Grid) -> Result<Vec<f64>, PromqlError> {
        match self.eval(e, g)? {
            Val::Scalar(v) => Ok(v),
            _ => Err(PromqlError::Execution("expected scalar".into())),
        }
    }

    /// Evaluates `e` and expects an instant vector.
    pub(crate) fn eval_vector(
        &mut self,
        e: &Expr,
        g: &Grid,
    ) -> Result<Vec<SeriesData>, PromqlError> {
        match self.eval(e, g)? {
            Val::Vector(v) => Ok(v),
            _ => Err(PromqlError::Execution("expected instant vector".into())),
        }
    }

    /// Evaluates a matrix selector or subquery into a windowable [`RangeInput`].
    pub(crate) fn eval_range_input(
        &mut self,
        e: &Expr,
        g: &Grid,
    ) -> Result<RangeInput<'a>, PromqlError> {
        match e {
            Expr::Paren(p) => self.eval_range_input(&p.expr, g),
            Expr::MatrixSelector(ms) => {
                let series = self.matrix_series(&ms.vs)?;
                Ok(RangeInput {
                    series,
                    range: range_ms(&ms.range),
                    offset: offset_ms(&ms.vs.offset),
                    at: at_ms(&ms.vs.at, &self.ctx),
                    pos: self.pos(e),
                })
            }
            Expr::Subquery(sq) => {
                let sub = subquery_grid(g, sq, &self.ctx);
                if sub.len() > self.max_samples {
                    return Err(PromqlError::TooManySamples("query execution"));
                }
                let series = match self.eval(&sq.expr, &sub)? {
                    Val::Vector(v) => v,
                    Val::Scalar(v) => vec![SeriesData::new(
                        Labels::empty(),
                        v.iter()
                            .enumerate()
                            .map(|(i, x)| Sample::new(sub.ts(i), *x))
                            .collect(),
                    )],
                    _ => {
                        return Err(PromqlError::Execution(
                            "subquery is only allowed on instant vector".into(),
                        ));
                    }
                };
                let series = series
                    .into_iter()
                    .map(|s| RangeSeries {
                        labels: s.labels,
                        drop_name: s.drop_name,
                        points: std::borrow::Cow::Owned(s.points),
                    })
                    .collect();
                Ok(RangeInput {
                    series,
                    range: range_ms(&sq.range),
                    offset: offset_ms(&sq.offset),
                    at: at_ms(&sq.at, &self.ctx),
                    pos: self.pos(e),
                })
            }
            _ => Err(PromqlError::Execution("expected range vector".into())),
        }
    }
}

/// Fails if two series with the same labels have a point at the same step (what Prometheus
/// reports when dropping metric names makes series collide).
fn check_unique_per_step(vs: &[SeriesData], g: &Grid) -> Result<(), PromqlError> {
    let mut by: HashMap<&Labels, Vec<usize>> = HashMap::new();
    for (i, s) in vs.iter().enumerate() {
        by.entry(&s.labels).or_default().push(i);
    }
    for idx in by.values().filter(|v| v.len() > 1) {
        let mut seen = vec![false; g.len()];
        for &i in idx {
            for p in &vs[i].points {
                let k = g.idx(p.t);
                if std::mem::replace(&mut seen[k], true) {
                    return Err(PromqlError::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The metric name of the first selector inside an expression.
pub(crate) fn first_selector_name(e: &Expr) -> Option<String> {
    match e {
        Expr::VectorSelector(vs) => vs.name.clone().or_else(|| {
            vs.matchers
                .matchers
                .iter()
                .find(|m| m.name == METRIC_NAME)
                .map(|m| m.value.clone())
        }),
        Expr::MatrixSelector(ms) => first_selector_name(&Expr::VectorSelector(ms.vs.clone())),
        Expr::Subquery(s) => first_selector_name(&s.expr),
        Expr::Paren(p) => first_selector_name(&p.expr),
        Expr::Unary(u) => first_selector_name(&u.expr),
        Expr::Aggregate(a) => first_selector_name(&a.expr),
        Expr::Binary(b) => first_selector_name(&b.lhs).or_else(|| first_selector_name(&b.rhs)),
        Expr::Call(c) => c.args.args.iter().find_map(|a| first_selector_name(a)),
        _ => None,
    }
}

/// Removes wrapping parentheses.
pub(crate) fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        _ => e,
    }
}
