//! Differential PromQL test: the same generated data is remote-written into `ember serve`
//! and into a real Prometheus 2.42 (Debian), then a broad set of queries runs through
//! both HTTP APIs, as instant queries at several times and as a range query, and the
//! answers are compared series by series.
//!
//! Ember implements Prometheus 3.x semantics; 2.42 is the only reference binary here.
//! The data keeps every sample off whole seconds and every query time, window boundary
//! and subquery step on whole seconds (7 s past a minute), so 2.x's closed and 3.x's
//! left-open range/lookback windows select the same samples. Constructs whose semantics
//! really differ between 2.42 and 3.x are left out; see [`EXCLUDED`].
//!
//! Comparison rules: same result type; same label sets; same timestamps (to the
//! millisecond); floats equal within 1e-9 relative (NaN equals NaN); series order is
//! compared only for queries rooted in `sort`, `sort_desc` or an ungrouped
//! `topk`/`bottomk`. When both servers reject a query, their `errorType`s must match.
//!
//! Run: `cargo build -p ember && cargo test -p ember-e2e --test promql_differential -- --nocapture`
//! (Prometheus from `tests/run --setup-only`; `EMBER_BIN` selects another ember build).

use ember_e2e::binaries::{self, Profile};
use ember_e2e::promql_data::{self, DataSpec};
use ember_e2e::servers::{EmberServer, PrometheusMode, PrometheusServer};
use ember_e2e::{PromApi, now_millis, test_dir};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

/// Relative tolerance for floats: 2.42 and 3.x sum in different orders (3.x uses
/// Kahan summation in several places), so the last bits may differ.
const RELATIVE_TOLERANCE: f64 = 1e-9;

/// Seconds past the minute of every query time: whole seconds, never a sample time
/// (those have a non-zero millisecond part) and never a multiple of a subquery step.
const QUERY_SECOND: i64 = 7;

/// Constructs deliberately not compared, and why.
const EXCLUDED: &[(&str, &str)] = &[
    (
        "samples exactly on a window boundary",
        "2.x range and lookback windows are closed [t-r, t], 3.x's are left-open (t-r, t]; the data never puts a sample on a boundary",
    ),
    (
        "holt_winters / double_exponential_smoothing",
        "renamed in 3.x (and experimental there); 2.42 knows only holt_winters",
    ),
    (
        "info(), sort_by_label, sort_by_label_desc, limitk, limit_ratio, mad_over_time, histogram_avg/count/sum/fraction/stddev/stdvar over classic buckets, first_over_time, ts_of_*",
        "not in Prometheus 2.42 (or native-histogram only there)",
    ),
    (
        "delayed name removal (promql-delayed-name-removal)",
        "a 3.x feature flag; both servers run the default immediate name removal, which 2.42 shares",
    ),
    (
        "`vector atan2 scalar` with a metric name",
        "2.42 keeps `__name__` on `atan2` results, 3.x drops it like the other arithmetic operators; compared on name-less input",
    ),
    (
        "rate/increase at a series start when the counter starts near zero",
        "2.42 applies the zero-point clamp before the 1.1 x average-interval threshold, 3.x after it; the generated counters start far from zero",
    ),
    (
        "regex `.` against newlines",
        "3.x matches newlines with `.`, 2.x does not; no label value here contains one",
    ),
    (
        "annotations (warnings/infos)",
        "2.42 emits far fewer of them; only data is compared",
    ),
    (
        "native histograms",
        "only classic `le` buckets are compared (Ember's scope for float samples)",
    ),
];

/// One query of the set; `{mid}` in the text is replaced by a timestamp inside the data.
struct Query {
    expr: &'static str,
    /// Whether the series order of instant results is part of the answer.
    ordered: bool,
}

const fn q(expr: &'static str) -> Query {
    Query {
        expr,
        ordered: false,
    }
}

const fn ordered(expr: &'static str) -> Query {
    Query {
        expr,
        ordered: true,
    }
}

/// The queries: every family of the language, over float samples.
const QUERIES: &[Query] = &[
    // Selectors with every matcher type, offset, @.
    q("http_requests_total"),
    q(r#"http_requests_total{job="api"}"#),
    q(r#"http_requests_total{job!="api", code="500"}"#),
    q(r#"http_requests_total{code=~"5.."}"#),
    q(r#"http_requests_total{instance!~"host-[01]:.*", method="GET"}"#),
    q(r#"{__name__=~"node_.*", job="db"}"#),
    q(r#"{__name__=~"http_request_duration_seconds_(sum|count)", method!="GET"}"#),
    q(r#"up{job=~"api|cache"}"#),
    q("http_requests_total offset 10m"),
    q("node_temperature_celsius offset -7m"),
    q("node_memory_free_bytes @ {mid}"),
    q("node_memory_free_bytes @ {mid} offset 3m"),
    q("rate(http_requests_total[5m] @ end())"),
    q("cpu_usage_ratio @ start()"),
    q("job_queue_length"),
    q(r#"job_queue_length{pod="pod-1"}[3m]"#),
    q("up[1m]"),
    q("timestamp(job_queue_length)"),
    // Counter and gauge range functions.
    q("rate(http_requests_total[5m])"),
    q("rate(http_requests_total[1m])"),
    q("irate(http_requests_total[5m])"),
    q("increase(http_requests_total[10m])"),
    q("increase(http_request_duration_seconds_count[7m])"),
    q("delta(node_temperature_celsius[10m])"),
    q("idelta(node_memory_free_bytes[2m])"),
    q("deriv(node_memory_free_bytes[15m])"),
    q("predict_linear(node_memory_free_bytes[15m], 3600)"),
    q("resets(http_requests_total[30m])"),
    q("resets(http_request_duration_seconds_bucket[1h])"),
    q("changes(up[30m])"),
    q("changes(job_queue_length[10m])"),
    // *_over_time.
    q("avg_over_time(node_temperature_celsius[10m])"),
    q("min_over_time(cpu_usage_ratio[7m])"),
    q("max_over_time(job_queue_length[20m])"),
    q("sum_over_time(up[30m])"),
    q("count_over_time(job_queue_length[30m])"),
    q("last_over_time(job_queue_length[15m])"),
    q("quantile_over_time(0.9, node_temperature_celsius[30m])"),
    q("quantile_over_time(0.25, cpu_usage_ratio[5m])"),
    q("stddev_over_time(node_temperature_celsius[10m])"),
    q("stdvar_over_time(cpu_usage_ratio[10m])"),
    q("present_over_time(job_queue_length[5m])"),
    q(r#"absent_over_time(job_queue_length{pod="pod-2", job="db"}[5m])"#),
    q(r#"absent_over_time(nonexistent_metric{job="x"}[5m])"#),
    // Classic histograms.
    q("histogram_quantile(0.9, rate(http_request_duration_seconds_bucket[5m]))"),
    q(
        "histogram_quantile(0.5, sum by (job, le) (rate(http_request_duration_seconds_bucket[10m])))",
    ),
    q(
        "histogram_quantile(0.99, sum without (instance, method) (increase(http_request_duration_seconds_bucket[15m])))",
    ),
    q("histogram_quantile(1.5, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"),
    q(
        "rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m])",
    ),
    // Labels.
    q(r#"label_replace(up, "host", "$1", "instance", "(.*):.*")"#),
    q(r#"label_replace(http_requests_total, "class", "${1}xx", "code", "(.).*")"#),
    q(r#"label_replace(up, "job", "", "job", ".*")"#),
    q(r#"label_join(up, "target", "/", "job", "instance")"#),
    // Math, trigonometry, time.
    q("abs(delta(node_temperature_celsius[5m]))"),
    q("ceil(node_temperature_celsius)"),
    q("floor(node_temperature_celsius)"),
    q("round(node_temperature_celsius)"),
    q("round(node_temperature_celsius, 0.25)"),
    q("exp(cpu_usage_ratio)"),
    q("ln(node_memory_free_bytes)"),
    q("log2(node_memory_free_bytes)"),
    q("log10(node_memory_free_bytes)"),
    q("sqrt(node_temperature_celsius)"),
    q("clamp(node_temperature_celsius, 20, 30)"),
    q("clamp_min(cpu_usage_ratio, 0.5)"),
    q("clamp_max(cpu_usage_ratio, 0.5)"),
    q("sgn(delta(node_temperature_celsius[5m]))"),
    q("sin(node_temperature_celsius)"),
    q("cos(node_temperature_celsius)"),
    q("tan(cpu_usage_ratio)"),
    q("asin(cpu_usage_ratio)"),
    q("acos(cpu_usage_ratio)"),
    q("atan(node_temperature_celsius)"),
    q("sinh(cpu_usage_ratio)"),
    q("cosh(cpu_usage_ratio)"),
    q("tanh(node_temperature_celsius / 10)"),
    q("asinh(node_temperature_celsius)"),
    q("acosh(node_temperature_celsius)"),
    q("atanh(cpu_usage_ratio)"),
    q("deg(cpu_usage_ratio)"),
    q("rad(node_temperature_celsius)"),
    q("cpu_usage_ratio * pi()"),
    q("time()"),
    q("timestamp(node_memory_free_bytes)"),
    q("minute()"),
    q("hour(timestamp(up))"),
    q("day_of_week()"),
    q("day_of_month(timestamp(up))"),
    q("day_of_year()"),
    q("days_in_month()"),
    q("month()"),
    q("year(vector(1700000000))"),
    // Aggregations.
    q("sum(rate(http_requests_total[5m]))"),
    q("sum by (job) (rate(http_requests_total[5m]))"),
    q("sum without (instance) (http_requests_total)"),
    q("avg by (job, sensor) (node_temperature_celsius)"),
    q("min without (cpu) (cpu_usage_ratio)"),
    q("max by (job) (node_memory_free_bytes)"),
    q("count by (code) (http_requests_total)"),
    q("count(job_queue_length)"),
    q("group by (job) (up)"),
    q("stddev by (job) (node_temperature_celsius)"),
    q("stdvar without (sensor, instance) (node_temperature_celsius)"),
    ordered("topk(5, node_temperature_celsius)"),
    ordered("bottomk(3, rate(http_requests_total[5m]))"),
    q("topk by (job) (2, node_memory_free_bytes)"),
    q("bottomk without (sensor) (1, node_temperature_celsius)"),
    q("quantile(0.75, cpu_usage_ratio)"),
    q("quantile by (job) (0.1, node_temperature_celsius)"),
    q(r#"count_values("value", up)"#),
    q(r#"count_values by (job) ("queue", job_queue_length)"#),
    q("sum by (job) (up) / count by (job) (up)"),
    q("avg(count_over_time(up[1h]))"),
    // Binary operators, matching, set operators.
    q("http_requests_total - http_requests_total offset 5m"),
    q(
        r#"rate(http_requests_total{code="500"}[5m]) / ignoring(code) rate(http_requests_total{code="200"}[5m])"#,
    ),
    q("rate(http_requests_total[5m]) * on(job, instance) group_left up"),
    q(
        r#"cpu_usage_ratio * on(instance) group_left(team) label_replace(up, "team", "team-$1", "job", "(.*)")"#,
    ),
    q(
        r#"label_replace(up, "team", "t-$1", "job", "(.*)") * on(job, instance) group_right(team) cpu_usage_ratio"#,
    ),
    q(
        "node_temperature_celsius > on(job, instance) group_left avg by (job, instance) (node_temperature_celsius)",
    ),
    q("node_temperature_celsius > 30"),
    q("node_temperature_celsius > bool 30"),
    q("cpu_usage_ratio <= 0.2"),
    q("cpu_usage_ratio != bool 0"),
    q("up == 0"),
    q("job_queue_length >= 25"),
    q("(up == bool 1) + 1"),
    q("2 ^ cpu_usage_ratio"),
    q("node_temperature_celsius % 7"),
    q("-node_temperature_celsius"),
    q("http_requests_total / 1000 + 3 * 2 - 1"),
    // `abs` first: 2.42 keeps the metric name on `atan2`, 3.x drops it (as for `+`).
    q("abs(node_temperature_celsius) atan2 10"),
    q("1 + 2 * 3 ^ 2 ^ 0.5 - 4 / 8 % 3"),
    q("up and on(job, instance) job_queue_length"),
    q("job_queue_length or up"),
    q(r#"http_requests_total{code="500"} unless on(job, instance) (up == 0)"#),
    q("up or vector(0)"),
    q("http_requests_total + on(job) up"),
    // Subqueries.
    q("max_over_time(rate(http_requests_total[5m])[30m:1m])"),
    q("avg_over_time(sum by (job) (node_temperature_celsius)[20m:])"),
    q("min_over_time(deriv(node_memory_free_bytes[10m])[1h:5m])"),
    q("rate(sum by (job) (http_requests_total)[15m:2m])"),
    q("quantile_over_time(0.5, cpu_usage_ratio[10m:30s])"),
    q("max_over_time(node_temperature_celsius[10m:1m] offset 5m)"),
    q("sum_over_time(up[30m:1m] @ {mid})"),
    // absent, sort, scalar, vector.
    q(r#"absent(nonexistent_metric{job="api", instance=~"x.*"})"#),
    q("absent(up)"),
    q(r#"absent(up{job="nope"})"#),
    ordered("sort(node_memory_free_bytes)"),
    ordered("sort_desc(rate(http_requests_total[5m]))"),
    q("scalar(sum(up))"),
    q("scalar(up)"),
    q("vector(scalar(count(up)))"),
    q("node_memory_free_bytes / scalar(max(node_memory_free_bytes))"),
];

/// One series of an answer: labels and `(milliseconds, value)` points.
#[derive(Debug, Clone)]
struct Series {
    labels: BTreeMap<String, String>,
    points: Vec<(i64, f64)>,
}

/// A normalised answer of either server.
#[derive(Debug, Clone)]
enum Answer {
    /// A successful query: `resultType` and its series (a scalar is one unlabelled series).
    Data {
        result_type: String,
        series: Vec<Series>,
    },
    /// An error answer.
    Error { error_type: String, message: String },
}

/// Where a query is evaluated.
#[derive(Debug, Clone, Copy)]
enum Evaluation {
    /// `/api/v1/query` at a time (seconds).
    Instant(i64),
    /// `/api/v1/query_range` over `(start, end, step)` seconds.
    Range(i64, i64, i64),
}

impl std::fmt::Display for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Evaluation::Instant(t) => write!(f, "instant at {t}"),
            Evaluation::Range(s, e, step) => write!(f, "range {s}..{e} step {step}s"),
        }
    }
}

#[test]
fn promql_answers_match_prometheus_2_42() {
    let started = Instant::now();
    // A missing reference binary is a failure with instructions, never a skip.
    if let Err(e) = binaries::prometheus_bin() {
        panic!(
            "the PromQL differential test needs Prometheus 2.42: {e}\n\
             install it with `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus` (or `tests/run --setup-only`)"
        );
    }
    let dir = test_dir("promql-diff").expect("temp dir");
    let logs = dir.path().join("logs");
    // Both guards stop their process by PID when dropped, also when the test fails.
    // No scrape configs: by default `ember serve` scrapes itself (`up{job="ember"}` …),
    // which Prometheus (with its empty config) does not.
    let ember_config = dir.path().join("ember.yml");
    std::fs::write(&ember_config, promql_data::EMBER_CONFIG).expect("write ember.yml");
    let ember_config = ember_config.display().to_string();
    let ember = EmberServer::start_with(
        &binaries::ember_bin(Profile::Debug).expect("ember binary"),
        "ember",
        &dir.path().join("ember-data"),
        &logs,
        &["--config", &ember_config],
    )
    .expect("start ember serve");
    let prometheus = PrometheusServer::start(
        PrometheusMode::Receiver,
        promql_data::PROMETHEUS_CONFIG,
        &dir.path().join("prometheus"),
        &logs,
        &[],
    )
    .expect("start Prometheus 2.42");

    // Two hours of data ending at least a minute before now, starting on a whole minute.
    let minute_ms = 60_000;
    let end_ms = now_millis() / minute_ms * minute_ms - minute_ms;
    let spec = DataSpec {
        jobs: 3,
        instances_per_job: 4,
        start_ms: end_ms - 2 * 3_600_000,
        duration_ms: 2 * 3_600_000,
        interval_ms: 15_000,
        seed: 42,
    };
    let series = promql_data::generate(&spec).expect("generate data");
    let samples = promql_data::sample_count(&series);
    let requests = promql_data::requests(&series, 10 * minute_ms, 20_000);
    let ember_writer = ember.remote_write().expect("ember client");
    let prometheus_writer = prometheus.remote_write().expect("prometheus client");
    for (index, request) in requests.iter().enumerate() {
        ember_writer
            .push(request)
            .unwrap_or_else(|e| panic!("remote write #{index} into ember: {e}"));
        prometheus_writer
            .push(request)
            .unwrap_or_else(|e| panic!("remote write #{index} into Prometheus: {e}"));
    }
    println!(
        "loaded {} series, {samples} samples in {} requests into both servers ({:.1} s since start)",
        series.len(),
        requests.len(),
        started.elapsed().as_secs_f64()
    );

    let base = spec.start_ms / 1000 + QUERY_SECOND;
    let mid = base + 61 * 60;
    let mut evaluations: Vec<Evaluation> = [4, 37, 61, 95, 119, 123]
        .iter()
        .map(|minutes| Evaluation::Instant(base + minutes * 60))
        .collect();
    evaluations.push(Evaluation::Range(base - 2 * 60, base + 125 * 60, 60));

    let ember_api = ember.api().expect("ember api");
    let prometheus_api = prometheus.api().expect("prometheus api");
    let mut mismatches = Vec::new();
    let mut equal_queries = 0;
    let mut compared_evaluations = 0;
    // How much the comparison covered: Prometheus' points, empty answers, shared errors.
    let (mut points, mut empty, mut both_errors) = (0usize, 0usize, 0usize);
    for query in QUERIES {
        let expr = query.expr.replace("{mid}", &format!("{mid}"));
        let mut query_equal = true;
        for evaluation in &evaluations {
            let ordered = query.ordered && matches!(evaluation, Evaluation::Instant(_));
            let ours = ask(&ember_api, &expr, *evaluation);
            let theirs = ask(&prometheus_api, &expr, *evaluation);
            compared_evaluations += 1;
            match &theirs {
                Answer::Error { .. } => {
                    both_errors += usize::from(matches!(ours, Answer::Error { .. }))
                }
                Answer::Data { series, .. } => {
                    empty += usize::from(series.is_empty());
                    points += series.iter().map(|s| s.points.len()).sum::<usize>();
                }
            }
            if let Err(difference) = compare(&ours, &theirs, ordered) {
                query_equal = false;
                mismatches.push(format!(
                    "query `{expr}` ({evaluation}): {difference}\n  ember:      {}\n  prometheus: {}",
                    render(&ours),
                    render(&theirs)
                ));
            }
        }
        if query_equal {
            equal_queries += 1;
        }
    }

    println!(
        "PromQL differential vs Prometheus 2.42: {} queries ({} evaluations: {} instant times + 1 range each), {} queries equal, {} mismatching evaluations; {:.1} s in all",
        QUERIES.len(),
        compared_evaluations,
        evaluations.len() - 1,
        equal_queries,
        mismatches.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "Prometheus returned {points} points in all; {empty} evaluations were empty on Prometheus' side, {both_errors} failed on both (errorType compared)"
    );
    println!("not compared (2.42 and 3.x differ or 2.42 lacks them):");
    for (construct, why) in EXCLUDED {
        println!("  - {construct}: {why}");
    }
    // Guard against a vacuous pass (data not loaded, every answer empty).
    assert!(
        points > 100_000 && empty < compared_evaluations / 4,
        "the comparison covered too little: {points} points, {empty} empty answers"
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} queries differ ({} evaluations):\n\n{}",
        QUERIES.len() - equal_queries,
        QUERIES.len(),
        mismatches.len(),
        mismatches.join("\n\n")
    );
}

/// Runs `expr` on one server and normalises the answer.
fn ask(api: &PromApi, expr: &str, evaluation: Evaluation) -> Answer {
    let result = match evaluation {
        Evaluation::Instant(t) => api.get_raw(
            "/api/v1/query",
            &[("query", expr), ("time", &t.to_string())],
        ),
        Evaluation::Range(start, end, step) => api.get_raw(
            "/api/v1/query_range",
            &[
                ("query", expr),
                ("start", &start.to_string()),
                ("end", &end.to_string()),
                ("step", &step.to_string()),
            ],
        ),
    };
    let (status, body) = match result {
        Ok(answer) => answer,
        Err(e) => {
            return Answer::Error {
                error_type: "transport".to_string(),
                message: e.to_string(),
            };
        }
    };
    parse_answer(status, &body).unwrap_or_else(|message| Answer::Error {
        error_type: "unparseable".to_string(),
        message: format!("HTTP {status}: {message}: {body}"),
    })
}

fn parse_answer(status: u16, body: &str) -> Result<Answer, String> {
    let json: Value = serde_json::from_str(body).map_err(|e| format!("not JSON ({e})"))?;
    if json["status"] != "success" {
        return Ok(Answer::Error {
            error_type: json["errorType"].as_str().unwrap_or("?").to_string(),
            message: format!("HTTP {status}: {}", json["error"].as_str().unwrap_or("?")),
        });
    }
    let data = &json["data"];
    let result_type = data["resultType"]
        .as_str()
        .ok_or("no resultType")?
        .to_string();
    let result = &data["result"];
    let series = match result_type.as_str() {
        "scalar" => vec![Series {
            labels: BTreeMap::new(),
            points: vec![parse_point(result)?],
        }],
        "vector" => result
            .as_array()
            .ok_or("vector result is not an array")?
            .iter()
            .map(|item| {
                Ok(Series {
                    labels: parse_labels(&item["metric"])?,
                    points: vec![parse_point(&item["value"])?],
                })
            })
            .collect::<Result<_, String>>()?,
        "matrix" => result
            .as_array()
            .ok_or("matrix result is not an array")?
            .iter()
            .map(|item| {
                Ok(Series {
                    labels: parse_labels(&item["metric"])?,
                    points: item["values"]
                        .as_array()
                        .ok_or("matrix element without values")?
                        .iter()
                        .map(parse_point)
                        .collect::<Result<_, String>>()?,
                })
            })
            .collect::<Result<_, String>>()?,
        other => return Err(format!("unexpected resultType {other}")),
    };
    Ok(Answer::Data {
        result_type,
        series,
    })
}

fn parse_labels(metric: &Value) -> Result<BTreeMap<String, String>, String> {
    metric
        .as_object()
        .ok_or_else(|| format!("labels are not an object: {metric}"))?
        .iter()
        .map(|(name, value)| {
            value
                .as_str()
                .map(|v| (name.clone(), v.to_string()))
                .ok_or_else(|| format!("label value is not a string: {value}"))
        })
        .collect()
}

fn parse_point(point: &Value) -> Result<(i64, f64), String> {
    let seconds = point[0]
        .as_f64()
        .ok_or_else(|| format!("bad timestamp in {point}"))?;
    let text = point[1]
        .as_str()
        .ok_or_else(|| format!("value is not a string in {point}"))?;
    let value = ember_e2e::prom_api::parse_value(text).map_err(|e| e.to_string())?;
    Ok(((seconds * 1000.0).round() as i64, value))
}

/// `Ok(())` when the answers agree, else what differs first.
fn compare(ours: &Answer, theirs: &Answer, ordered: bool) -> Result<(), String> {
    match (ours, theirs) {
        (Answer::Error { error_type: a, .. }, Answer::Error { error_type: b, .. }) => {
            if a == b {
                Ok(())
            } else {
                Err(format!("both fail, with errorType {a} vs {b}"))
            }
        }
        (Answer::Error { .. }, Answer::Data { .. }) => Err("only ember fails".to_string()),
        (Answer::Data { .. }, Answer::Error { .. }) => Err("only Prometheus fails".to_string()),
        (
            Answer::Data {
                result_type: type_a,
                series: a,
            },
            Answer::Data {
                result_type: type_b,
                series: b,
            },
        ) => {
            if type_a != type_b {
                return Err(format!("resultType {type_a} vs {type_b}"));
            }
            let (mut a, mut b) = (a.clone(), b.clone());
            if !ordered {
                a.sort_by(|x, y| x.labels.cmp(&y.labels));
                b.sort_by(|x, y| x.labels.cmp(&y.labels));
            }
            if a.len() != b.len() {
                return Err(format!("{} series vs {}", a.len(), b.len()));
            }
            for (index, (x, y)) in a.iter().zip(&b).enumerate() {
                if x.labels != y.labels {
                    return Err(format!(
                        "series #{index}: labels {} vs {}",
                        render_labels(&x.labels),
                        render_labels(&y.labels)
                    ));
                }
                if x.points.len() != y.points.len() {
                    return Err(format!(
                        "{}: {} points vs {}",
                        render_labels(&x.labels),
                        x.points.len(),
                        y.points.len()
                    ));
                }
                for (p, r) in x.points.iter().zip(&y.points) {
                    if p.0 != r.0 || !floats_equal(p.1, r.1) {
                        return Err(format!(
                            "{}: point {:?} vs {:?}",
                            render_labels(&x.labels),
                            p,
                            r
                        ));
                    }
                }
            }
            Ok(())
        }
    }
}

/// Equal within [`RELATIVE_TOLERANCE`]; NaN equals NaN; infinities must match exactly.
fn floats_equal(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    a == b || (a - b).abs() <= RELATIVE_TOLERANCE * a.abs().max(b.abs())
}

fn render_labels(labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// A compact rendering of an answer for the failure message (at most 8 series, 4
/// points each).
fn render(answer: &Answer) -> String {
    match answer {
        Answer::Error {
            error_type,
            message,
        } => format!("error {error_type}: {message}"),
        Answer::Data {
            result_type,
            series,
        } => {
            let mut out = format!("{result_type}, {} series:", series.len());
            for s in series.iter().take(8) {
                let points: Vec<String> = s
                    .points
                    .iter()
                    .take(4)
                    .map(|(t, v)| format!("{t}:{v}"))
                    .collect();
                let more = if s.points.len() > 4 {
                    format!(" … ({} points)", s.points.len())
                } else {
                    String::new()
                };
                let _ = write!(
                    out,
                    "\n      {} [{}]{more}",
                    render_labels(&s.labels),
                    points.join(", ")
                );
            }
            if series.len() > 8 {
                let _ = write!(out, "\n      … {} more", series.len() - 8);
            }
            out
        }
    }
}

#[test]
fn comparison_detects_differences() {
    let answer = |labels: &[(&str, &str)], points: Vec<(i64, f64)>| Answer::Data {
        result_type: "vector".to_string(),
        series: vec![Series {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            points,
        }],
    };
    let base = answer(&[("job", "a")], vec![(1000, 1.0)]);
    assert!(
        compare(
            &base,
            &answer(&[("job", "a")], vec![(1000, 1.0 + 1e-12)]),
            false
        )
        .is_ok()
    );
    assert!(
        compare(
            &base,
            &answer(&[("job", "a")], vec![(1000, 1.0 + 1e-6)]),
            false
        )
        .is_err()
    );
    assert!(compare(&base, &answer(&[("job", "a")], vec![(1001, 1.0)]), false).is_err());
    assert!(compare(&base, &answer(&[("job", "b")], vec![(1000, 1.0)]), false).is_err());
    let nan = answer(&[], vec![(0, f64::NAN)]);
    assert!(compare(&nan, &nan.clone(), false).is_ok());
    assert!(compare(&nan, &answer(&[], vec![(0, 0.0)]), false).is_err());
    let two = |first: &str, second: &str| Answer::Data {
        result_type: "vector".to_string(),
        series: [first, second]
            .iter()
            .map(|job| Series {
                labels: [("job".to_string(), job.to_string())].into(),
                points: vec![(0, 1.0)],
            })
            .collect(),
    };
    assert!(compare(&two("a", "b"), &two("b", "a"), false).is_ok());
    assert!(compare(&two("a", "b"), &two("b", "a"), true).is_err());
}
