//! Query evaluation: parse, plan, fetch (async), evaluate (sync), shape the result.

use std::collections::HashMap;
use std::time::Instant;

use ember_model::{Labels, Series};
use ember_storage::Querier;
use promql_parser::parser::value::ValueType;

use crate::eval::{Evaluator, Grid, SeriesData, TimeCtx, Val};
use crate::parse::{parse_query, selector_matchers};
use crate::plan::{Plan, plan};
use crate::{EngineOptions, InstantSample, PromqlError, QueryOptions, QueryResult, Value};

/// The most points a range query may return per series (Prometheus' limit).
const MAX_POINTS: i64 = 11_000;

/// Evaluates PromQL queries over a [`Querier`]. Cheap to clone and share.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
    delayed_name_removal: bool,
}

impl Engine {
    /// An engine with the given limits.
    pub fn new(opts: EngineOptions) -> Self {
        Self {
            opts,
            delayed_name_removal: false,
        }
    }

    /// Switches Prometheus' `promql-delayed-name-removal` feature on or off (default off, as
    /// in Prometheus 3). When on, `__name__` is kept until the end of the query, so e.g.
    /// `sum by (__name__) (rate(x[5m]))` groups by name; upstream's test corpus assumes it.
    pub fn with_delayed_name_removal(mut self, on: bool) -> Self {
        self.delayed_name_removal = on;
        self
    }

    /// The engine's limits.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at time `t` (ms) for `tenant`.
    pub async fn instant_query(
        &self,
        storage: &dyn Querier,
        tenant: &str,
        query: &str,
        t: i64,
        opts: &QueryOptions,
    ) -> Result<QueryResult, PromqlError> {
        check_time(t)?;
        let expr = crate::info::prepare(parse_query(query)?)?;
        let ctx = TimeCtx {
            start: t,
            end: t,
            step: 0,
            lookback: self.lookback(opts),
        };
        self.exec(
            storage,
            tenant,
            query,
            &expr,
            Grid::instant(t),
            ctx,
            opts,
            false,
        )
        .await
    }

    /// Evaluates `query` from `start` to `end` (ms, inclusive) every `step` ms for `tenant`;
    /// the result is always a matrix.
    #[allow(clippy::too_many_arguments)]
    pub async fn range_query(
        &self,
        storage: &dyn Querier,
        tenant: &str,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
        opts: &QueryOptions,
    ) -> Result<QueryResult, PromqlError> {
        if step <= 0 {
            return Err(PromqlError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        check_time(start)?;
        check_time(end)?;
        if end < start {
            return Err(PromqlError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        if (end - start) / step > MAX_POINTS {
            return Err(PromqlError::BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                    .into(),
            ));
        }
        let expr = crate::info::prepare(parse_query(query)?)?;
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            other => {
                let name = if other == ValueType::Matrix {
                    "range vector"
                } else {
                    "string"
                };
                return Err(PromqlError::BadData(format!(
                    "invalid expression type \"{name}\" for range query, must be Scalar or instant Vector"
                )));
            }
        }
        let ctx = TimeCtx {
            start,
            end,
            step,
            lookback: self.lookback(opts),
        };
        let grid = Grid { start, end, step };
        self.exec(storage, tenant, query, &expr, grid, ctx, opts, true)
            .await
    }

    fn lookback(&self, opts: &QueryOptions) -> i64 {
        opts.lookback_delta_ms
            .filter(|l| *l > 0)
            .unwrap_or(self.opts.lookback_delta_ms)
            .clamp(1, crate::eval::TIME_LIMIT_MS)
    }

    #[allow(clippy::too_many_arguments)]
    async fn exec(
        &self,
        storage: &dyn Querier,
        tenant: &str,
        query: &str,
        expr: &promql_parser::parser::Expr,
        grid: Grid,
        ctx: TimeCtx,
        opts: &QueryOptions,
        is_range: bool,
    ) -> Result<QueryResult, PromqlError> {
        let started = Instant::now();
        let timeout = opts
            .timeout
            .map_or(self.opts.timeout, |t| t.min(self.opts.timeout));
        let deadline = started + timeout;

        let mut p: Plan<'_> = HashMap::new();
        plan(expr, &grid, &ctx, &mut p);
        let mut data: HashMap<usize, Vec<Series>> = HashMap::with_capacity(p.len());
        for (key, (lo, hi, vs)) in &p {
            let mut all: Vec<Series> = Vec::new();
            let sets = selector_matchers(vs)?;
            let multi = sets.len() > 1;
            for set in sets {
                all.extend(storage.select(tenant, &set, *lo, *hi).await?);
                if Instant::now() > deadline {
                    return Err(PromqlError::Timeout("query execution"));
                }
            }
            all.sort_by(|a, b| a.labels.cmp(&b.labels));
            if multi {
                all.dedup_by(|a, b| a.labels == b.labels);
            }
            data.insert(*key, all);
        }

        let mut ev = Evaluator {
            data: &data,
            ctx,
            annos: Default::default(),
            query,
            deadline,
            max_samples: self.opts.max_samples,
            samples: 0,
            delayed_name_removal: self.delayed_name_removal,
        };
        let val = ev.eval(expr, &grid)?;
        let value = shape(val, &grid, is_range)?;
        Ok(QueryResult {
            value,
            warnings: ev.annos.warnings,
            infos: ev.annos.infos,
            samples_processed: ev.samples,
        })
    }
}

/// Rejects timestamps so far out that time arithmetic could overflow.
fn check_time(t: i64) -> Result<(), PromqlError> {
    if t.abs() > crate::eval::TIME_LIMIT_MS {
        return Err(PromqlError::BadData(format!("timestamp out of range: {t}")));
    }
    Ok(())
}

/// Turns the evaluator's value into the API's value: drops pending metric names, checks for
/// duplicate label sets, and for range queries sorts series by labels.
fn shape(val: Val, grid: &Grid, is_range: bool) -> Result<Value, PromqlError> {
    let dup =
        || PromqlError::Execution("vector cannot contain metrics with the same labelset".into());
    match val {
        Val::Scalar(v) if !is_range => Ok(Value::Scalar {
            t: grid.start,
            v: v.first().copied().unwrap_or(f64::NAN),
        }),
        Val::Scalar(v) => Ok(Value::Matrix(vec![Series::new(
            Labels::empty(),
            v.iter()
                .enumerate()
                .map(|(i, x)| ember_model::Sample::new(grid.ts(i), *x))
                .collect(),
        )])),
        Val::Str(s) => Ok(Value::String { t: grid.start, s }),
        Val::Vector(vs) if !is_range => {
            let mut out = Vec::with_capacity(vs.len());
            for s in vs {
                let labels = if s.drop_name {
                    crate::eval::drop_name_labels(&s.labels)
                } else {
                    s.labels
                };
                if let Some(p) = s.points.first() {
                    out.push(InstantSample {
                        labels,
                        t: p.t,
                        v: p.v,
                    });
                }
            }
            let mut seen = std::collections::HashSet::with_capacity(out.len());
            if !out.iter().all(|s| seen.insert(&s.labels)) {
                return Err(dup());
            }
            Ok(Value::Vector(out))
        }
        Val::Vector(vs) => Ok(Value::Matrix(merge_series(vs, true)?)),
        Val::Matrix(vs) => Ok(Value::Matrix(merge_series(vs, false)?)),
    }
}

/// Drops pending names and merges series that end up with the same labels (an error if they
/// overlap in time); returns them sorted by labels.
fn merge_series(vs: Vec<SeriesData>, allow_merge: bool) -> Result<Vec<Series>, PromqlError> {
    let mut by: HashMap<Labels, usize> = HashMap::with_capacity(vs.len());
    let mut out: Vec<Series> = Vec::with_capacity(vs.len());
    for s in vs {
        if s.points.is_empty() {
            continue;
        }
        let labels = s.visible_labels();
        match by.get(&labels) {
            Some(&k) if allow_merge => {
                let m = &mut out[k];
                m.samples.extend(s.points);
                m.samples.sort_by_key(|p| p.t);
                if m.samples.windows(2).any(|w| w[0].t == w[1].t) {
                    return Err(PromqlError::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    ));
                }
            }
            Some(_) => {
                return Err(PromqlError::Execution(
                    "vector cannot contain metrics with the same labelset".into(),
                ));
            }
            None => {
                by.insert(labels.clone(), out.len());
                out.push(Series::new(labels, s.points));
            }
        }
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}
