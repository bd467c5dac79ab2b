//! Executing parsed scripts against the engine and comparing results.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use ember_model::{Labels, Sample, Series};
use ember_storage::{AppendBatch, MemStorage};

use super::EXPERIMENTAL_FUNCTIONS;
use super::parse::{Command, EvalCmd, Point, parse_script};
use crate::util::almost_equal;
use crate::{Engine, EngineOptions, QueryOptions, QueryResult, Value};

const TENANT: &str = "promqltest";
const EPSILON: f64 = 0.000_001;

/// Which group a case is reported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CaseGroup {
    /// Stable PromQL over float samples.
    Float,
    /// The case involves native-histogram literals.
    NativeHistogram,
    /// The case uses an experimental function.
    ExperimentalFunction,
}

impl CaseGroup {
    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            CaseGroup::Float => "float",
            CaseGroup::NativeHistogram => "native-histogram",
            CaseGroup::ExperimentalFunction => "experimental-fn",
        }
    }
}

/// How one eval case went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseOutcome {
    /// The case passed.
    Pass,
    /// The case failed, with a reason.
    Fail(String),
    /// The case was not run: it expects native-histogram values, which a float-only
    /// engine cannot produce.
    Skip(String),
}

/// One eval case's report.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// 1-based line of the `eval` command.
    pub line: usize,
    /// The query.
    pub query: String,
    /// Its group.
    pub group: CaseGroup,
    /// The outcome.
    pub outcome: CaseOutcome,
}

/// The report of one script.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    /// Every eval case.
    pub cases: Vec<CaseReport>,
    /// Set when the script itself could not be parsed.
    pub script_error: Option<String>,
}

/// Drives a future that never waits on I/O (the in-memory store) to completion.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// Runs a test script and reports every eval case.
pub fn run_script(text: &str) -> FileReport {
    let cmds = match parse_script(text) {
        Ok(c) => c,
        Err(e) => {
            return FileReport {
                cases: Vec::new(),
                script_error: Some(e),
            };
        }
    };
    let engine = Engine::new(EngineOptions {
        lookback_delta_ms: 5 * 60 * 1000,
        max_samples: 50_000_000,
        timeout: std::time::Duration::from_secs(100),
    })
    // Upstream runs its corpus with delayed name removal switched on.
    // (`PROMQLTEST_IMMEDIATE_NAMES=1` switches it off to see where the default differs.)
    .with_delayed_name_removal(std::env::var_os("PROMQLTEST_IMMEDIATE_NAMES").is_none());
    let mut store = MemStorage::new();
    let mut hist_series: Vec<Labels> = Vec::new();
    let mut report = FileReport::default();
    for cmd in cmds {
        match cmd {
            Command::Clear => {
                store = MemStorage::new();
                hist_series.clear();
            }
            Command::Load {
                step,
                series,
                with_nhcb,
            } => {
                let mut batch = AppendBatch::default();
                for (labels, pts) in series {
                    if with_nhcb {
                        // The loader also derives native histograms with custom buckets.
                        let name = labels.metric_name().unwrap_or("");
                        if let Some(base) = ["_bucket", "_count", "_sum"]
                            .iter()
                            .find_map(|s| name.strip_suffix(s))
                        {
                            let mut b = labels.to_builder();
                            b.del("le");
                            b.set(ember_model::METRIC_NAME, base);
                            let l = b.build();
                            if !hist_series.contains(&l) {
                                hist_series.push(l);
                            }
                        }
                    }
                    let mut samples = Vec::new();
                    for (i, p) in pts.iter().enumerate() {
                        match p {
                            Point::Value(v) => samples.push(Sample::new(i as i64 * step, *v)),
                            Point::Histogram => {
                                if !hist_series.contains(&labels) {
                                    hist_series.push(labels.clone());
                                }
                            }
                            Point::Omitted => {}
                        }
                    }
                    batch.series.push(Series::new(labels, samples));
                }
                if let Err(e) = store.append_sync(TENANT, batch) {
                    report.script_error = Some(e.to_string());
                    return report;
                }
            }
            Command::Eval(ev) => {
                let group = classify(&ev, &hist_series);
                let outcome = if ev.uses_histogram_literal {
                    CaseOutcome::Skip("expects native-histogram values".into())
                } else {
                    match run_eval(&engine, &store, &ev) {
                        Ok(()) => CaseOutcome::Pass,
                        Err(e) => CaseOutcome::Fail(e),
                    }
                };
                report.cases.push(CaseReport {
                    line: ev.line,
                    query: ev.query.clone(),
                    group,
                    outcome,
                });
            }
        }
    }
    report
}

fn classify(ev: &EvalCmd, hist_series: &[Labels]) -> CaseGroup {
    let q = &ev.query;
    if ev.uses_histogram_literal || touches_histograms(q, hist_series) {
        return CaseGroup::NativeHistogram;
    }
    let uses_experimental = EXPERIMENTAL_FUNCTIONS.iter().any(|f| {
        q.match_indices(f).any(|(i, _)| {
            let before_ok = i == 0
                || !q.as_bytes()[i - 1].is_ascii_alphanumeric() && q.as_bytes()[i - 1] != b'_';
            let after = q[i + f.len()..].trim_start();
            before_ok && after.starts_with('(')
        })
    });
    if uses_experimental {
        CaseGroup::ExperimentalFunction
    } else {
        CaseGroup::Float
    }
}

fn run_eval(engine: &Engine, store: &MemStorage, ev: &EvalCmd) -> Result<(), String> {
    run_eval_at(engine, store, ev, &ev.query, ev.at)?;
    if ev.range.is_none() {
        // Like upstream: pin every selector with `@` at the eval time and evaluate the
        // pinned query at other times; the result must not change.
        for (q, t) in at_modifier_variants(&ev.query, ev.at) {
            run_eval_at(engine, store, ev, &q, t)
                .map_err(|e| format!("@ variant {q} at {t}: {e}"))?;
        }
    }
    Ok(())
}

/// Functions whose result depends on the evaluation time even with `@` on all selectors.
const AT_UNSAFE: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    "timestamp",
    "start",
    "end",
    "range",
    "step",
];

fn at_modifier_variants(query: &str, ts: i64) -> Vec<(String, i64)> {
    use promql_parser::parser::{AtModifier, Expr};
    fn pin(e: &mut Expr, at: &AtModifier, unsafe_fn: &mut bool) {
        match e {
            Expr::VectorSelector(vs) if vs.at.is_none() => vs.at = Some(at.clone()),
            Expr::MatrixSelector(ms) if ms.vs.at.is_none() => ms.vs.at = Some(at.clone()),
            Expr::Subquery(sq) => {
                if sq.at.is_none() {
                    sq.at = Some(at.clone());
                }
                // Selectors inside a pinned subquery are left alone.
                check_unsafe(&sq.expr, unsafe_fn);
            }
            Expr::Paren(p) => pin(&mut p.expr, at, unsafe_fn),
            Expr::Unary(u) => pin(&mut u.expr, at, unsafe_fn),
            Expr::Binary(b) => {
                pin(&mut b.lhs, at, unsafe_fn);
                pin(&mut b.rhs, at, unsafe_fn);
            }
            Expr::Aggregate(a) => {
                pin(&mut a.expr, at, unsafe_fn);
                if let Some(p) = &mut a.param {
                    pin(p, at, unsafe_fn);
                }
            }
            Expr::Call(c) => {
                if AT_UNSAFE.contains(&c.func.name) {
                    *unsafe_fn = true;
                }
                for a in &mut c.args.args {
                    pin(a, at, unsafe_fn);
                }
            }
            _ => {}
        }
    }
    fn check_unsafe(e: &Expr, unsafe_fn: &mut bool) {
        match e {
            Expr::Call(c) => {
                if AT_UNSAFE.contains(&c.func.name) {
                    *unsafe_fn = true;
                }
                c.args.args.iter().for_each(|a| check_unsafe(a, unsafe_fn));
            }
            Expr::Subquery(s) => check_unsafe(&s.expr, unsafe_fn),
            Expr::Paren(p) => check_unsafe(&p.expr, unsafe_fn),
            Expr::Unary(u) => check_unsafe(&u.expr, unsafe_fn),
            Expr::Binary(b) => {
                check_unsafe(&b.lhs, unsafe_fn);
                check_unsafe(&b.rhs, unsafe_fn);
            }
            Expr::Aggregate(a) => {
                check_unsafe(&a.expr, unsafe_fn);
                if let Some(p) = &a.param {
                    check_unsafe(p, unsafe_fn);
                }
            }
            _ => {}
        }
    }
    let Ok(mut expr) = crate::parse::parse_query(query) else {
        return Vec::new();
    };
    let Ok(at) = AtModifier::try_from(ts as f64 / 1000.0) else {
        return Vec::new();
    };
    let mut unsafe_fn = false;
    pin(&mut expr, &at, &mut unsafe_fn);
    if unsafe_fn {
        return Vec::new();
    }
    let q = expr.to_string();
    let times: Vec<i64> = if ts == 0 {
        vec![-1000, 0, 1000]
    } else {
        vec![-10 * ts, 0, ts / 5, ts, 10 * ts]
    };
    times.into_iter().map(|t| (q.clone(), t)).collect()
}

fn run_eval_at(
    engine: &Engine,
    store: &MemStorage,
    ev: &EvalCmd,
    query: &str,
    at: i64,
) -> Result<(), String> {
    let opts = QueryOptions::default();
    let expects_fail = ev.fail || ev.expects.iter().any(|e| e.kind == "fail");
    let res = match ev.range {
        Some((s, e, st)) => block_on(engine.range_query(store, TENANT, query, s, e, st, &opts)),
        None => block_on(engine.instant_query(store, TENANT, query, at, &opts)),
    };
    let res = match res {
        Err(err) => {
            if !expects_fail {
                return Err(format!("unexpected error: {err}"));
            }
            let msg = err.to_string();
            if let Some(m) = &ev.fail_msg
                && *m != msg
            {
                return Err(format!("expected error {m:?}, got {msg:?}"));
            }
            if let Some(r) = &ev.fail_regex
                && !r.is_match(&msg)
            {
                return Err(format!("expected error matching {r}, got {msg:?}"));
            }
            if let Some(e) = ev.expects.iter().find(|e| e.kind == "fail")
                && !e.matches(&msg)
            {
                return Err(format!(
                    "expected error matching {:?}, got {msg:?}",
                    e.msg.clone().unwrap_or_default()
                ));
            }
            return Ok(());
        }
        Ok(r) => r,
    };
    if expects_fail {
        return Err("expected error, got none".into());
    }
    check_annotations(ev, &res)?;
    let ordered = ev.ordered || ev.expects.iter().any(|e| e.kind == "ordered");
    compare(ev, &res.value, ordered)?;

    // Instant queries must give the same answer in range mode (checked at the middle step).
    let excluded = ev.expected.range_vector.is_some() || ev.expected.string.is_some();
    let ctx_fn = ["start()", "end()", "range()", "step()"]
        .iter()
        .any(|f| query.contains(f));
    if ev.range.is_none() && !excluded && !ctx_fn && !ordered {
        let rr = block_on(engine.range_query(
            store,
            TENANT,
            query,
            at - 60_000,
            at + 60_000,
            60_000,
            &opts,
        ))
        .map_err(|e| format!("range mode: unexpected error: {e}"))?;
        let Value::Matrix(m) = rr.value else {
            return Err("range mode: not a matrix".into());
        };
        if m.windows(2).any(|w| w[0].labels > w[1].labels) {
            return Err("range mode: matrix not sorted".into());
        }
        let picked: Vec<crate::InstantSample> = m
            .iter()
            .filter_map(|s| {
                s.samples
                    .iter()
                    .find(|p| p.t == at)
                    .map(|p| crate::InstantSample {
                        labels: s.labels.clone(),
                        t: p.t,
                        v: p.v,
                    })
            })
            .collect();
        let as_val = match res.value {
            Value::Scalar { .. } => match picked.first() {
                Some(p) => Value::Scalar { t: p.t, v: p.v },
                None => return Err("range mode: scalar missing".into()),
            },
            _ => Value::Vector(picked),
        };
        compare(ev, &as_val, false).map_err(|e| format!("range mode: {e}"))?;
    }
    Ok(())
}

fn check_annotations(ev: &EvalCmd, res: &QueryResult) -> Result<(), String> {
    if ev.warn && res.warnings.is_empty() {
        return Err("expected warnings, got none".into());
    }
    if ev.info && res.infos.is_empty() {
        return Err("expected infos, got none".into());
    }
    for (kind, actual) in [("warn", &res.warnings), ("info", &res.infos)] {
        let exp: Vec<_> = ev.expects.iter().filter(|e| e.kind == kind).collect();
        if !exp.is_empty() {
            if actual.is_empty() {
                return Err(format!("expected {kind} annotations, got none"));
            }
            for e in &exp {
                if !actual.iter().any(|a| e.matches(a)) {
                    return Err(format!(
                        "expected {kind} {:?}, got {actual:?}",
                        e.msg.clone().unwrap_or_default()
                    ));
                }
            }
            for a in actual.iter() {
                if !exp.iter().any(|e| e.matches(a)) {
                    return Err(format!("unexpected {kind} annotation {a:?}"));
                }
            }
        }
        let no = if kind == "warn" { "no_warn" } else { "no_info" };
        if ev.expects.iter().any(|e| e.kind == no) && !actual.is_empty() {
            return Err(format!("unexpected {kind} annotations: {actual:?}"));
        }
    }
    Ok(())
}

fn fmt_labels(l: &Labels) -> String {
    crate::binary::prom_labels_string(l)
}

fn compare(ev: &EvalCmd, val: &Value, ordered: bool) -> Result<(), String> {
    let exp = &ev.expected;
    match val {
        Value::Scalar { v, .. } => {
            let Some(e) = exp.scalar else {
                return Err(format!("expected vector or matrix, got scalar {v}"));
            };
            if !almost_equal(e, *v, EPSILON) {
                return Err(format!("expected scalar {e}, got {v}"));
            }
            Ok(())
        }
        Value::String { s, .. } => match &exp.string {
            Some(e) if e == s => Ok(()),
            _ => Err(format!("expected string {:?}, got {s:?}", exp.string)),
        },
        Value::Vector(vs) => {
            if exp.scalar.is_some() {
                return Err("expected scalar, got vector".into());
            }
            let index: HashMap<&Labels, (usize, &Vec<Point>)> = exp
                .series
                .iter()
                .enumerate()
                .map(|(i, (l, p))| (l, (i, p)))
                .collect();
            let mut seen = HashSet::new();
            for (pos, s) in vs.iter().enumerate() {
                let Some((epos, pts)) = index.get(&s.labels) else {
                    return Err(format!(
                        "unexpected metric {} in result, has value {}",
                        fmt_labels(&s.labels),
                        s.v
                    ));
                };
                if ordered && *epos != pos {
                    return Err(format!(
                        "expected {} at position {}, was at {}",
                        fmt_labels(&s.labels),
                        epos + 1,
                        pos + 1
                    ));
                }
                match pts.first() {
                    Some(Point::Value(e)) if almost_equal(*e, s.v, EPSILON) => {}
                    other => {
                        return Err(format!(
                            "expected {other:?} for {}, got {}",
                            fmt_labels(&s.labels),
                            s.v
                        ));
                    }
                }
                seen.insert(&s.labels);
            }
            for (l, _) in &exp.series {
                if !seen.contains(l) {
                    return Err(format!("expected metric {} not found", fmt_labels(l)));
                }
            }
            Ok(())
        }
        Value::Matrix(m) => {
            if ordered {
                return Err("expected ordered result, but query returned a matrix".into());
            }
            if exp.scalar.is_some() {
                return Err("expected scalar, got matrix".into());
            }
            let (start, end, step) = match (ev.range, exp.range_vector) {
                (Some(r), _) => r,
                (None, Some(r)) => r,
                (None, None) => return Err("unexpected matrix result".into()),
            };
            let index: HashMap<&Labels, &Vec<Point>> =
                exp.series.iter().map(|(l, p)| (l, p)).collect();
            let mut seen = HashSet::new();
            for s in m {
                let Some(pts) = index.get(&s.labels) else {
                    return Err(format!(
                        "unexpected metric {} in result",
                        fmt_labels(&s.labels)
                    ));
                };
                seen.insert(&s.labels);
                let mut want = Vec::new();
                for (i, p) in pts.iter().enumerate() {
                    let t = start + i as i64 * step;
                    if t > end {
                        return Err(format!(
                            "expected {} points, but range cannot return that many",
                            pts.len()
                        ));
                    }
                    match p {
                        Point::Value(v) => want.push((t, *v)),
                        Point::Omitted => {}
                        Point::Histogram => return Err("histogram points are not supported".into()),
                    }
                }
                if want.len() != s.samples.len() {
                    return Err(format!(
                        "expected {} points for {}, got {:?}",
                        want.len(),
                        fmt_labels(&s.labels),
                        s.samples.iter().map(|p| (p.t, p.v)).collect::<Vec<_>>()
                    ));
                }
                for ((t, v), got) in want.iter().zip(&s.samples) {
                    if *t != got.t || !almost_equal(*v, got.v, EPSILON) {
                        return Err(format!(
                            "expected ({t}, {v}) for {}, got ({}, {})",
                            fmt_labels(&s.labels),
                            got.t,
                            got.v
                        ));
                    }
                }
            }
            for (l, _) in &exp.series {
                if !seen.contains(l) {
                    return Err(format!("expected metric {} not found", fmt_labels(l)));
                }
            }
            Ok(())
        }
    }
}

/// Whether any selector of the query matches a series that was loaded with histogram samples.
fn touches_histograms(q: &str, hist_series: &[Labels]) -> bool {
    use promql_parser::parser::Expr;
    fn walk(e: &Expr, out: &mut Vec<promql_parser::parser::VectorSelector>) {
        match e {
            Expr::VectorSelector(vs) => out.push(vs.clone()),
            Expr::MatrixSelector(ms) => out.push(ms.vs.clone()),
            Expr::Subquery(s) => walk(&s.expr, out),
            Expr::Paren(p) => walk(&p.expr, out),
            Expr::Unary(u) => walk(&u.expr, out),
            Expr::Aggregate(a) => {
                walk(&a.expr, out);
                if let Some(p) = &a.param {
                    walk(p, out);
                }
            }
            Expr::Binary(b) => {
                walk(&b.lhs, out);
                walk(&b.rhs, out);
            }
            Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, out)),
            _ => {}
        }
    }
    if hist_series.is_empty() {
        return false;
    }
    let Ok(expr) = promql_parser::parser::parse(q) else {
        // Unparseable here: fall back to a name check.
        return hist_series
            .iter()
            .any(|l| l.metric_name().is_some_and(|n| q.contains(n)));
    };
    let mut sels = Vec::new();
    walk(&expr, &mut sels);
    sels.iter().any(|vs| {
        crate::parse::selector_matchers(vs).is_ok_and(|sets| {
            sets.iter().any(|set| {
                hist_series
                    .iter()
                    .any(|l| ember_model::matcher::matches_all(set, l))
            })
        })
    })
}
