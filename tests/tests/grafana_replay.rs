//! Grafana's request sequence (health check, buildinfo probe, datasource init, metric
//! browser, variable queries, a dashboard refresh, error paths) sent to Ember and to
//! Prometheus 2.42 holding the same remote-written data: status codes, `status`,
//! `errorType` and JSON shapes must agree, and the data must be equal (numbers within
//! 1e-9 relative).

use ember_e2e::servers::PrometheusMode;
use ember_e2e::{
    EmberServer, PromApi, PrometheusServer, RemoteWriteClient, Sample, TimeSeries, WriteRequest,
    now_millis, test_dir,
};
use serde_json::Value;

/// One Grafana call: method, path, parameters, and how much of `data` must agree.
struct Call {
    what: &'static str,
    post: bool,
    path: &'static str,
    params: Vec<(&'static str, String)>,
    compare: Compare,
}

#[derive(Clone, Copy, PartialEq)]
enum Compare {
    /// Status, envelope and the JSON shape of `data`.
    Shape,
    /// All of the above and `data` equal (arrays compared as sets where order is free).
    Data,
}

/// The JSON "skeleton" of a value: types, object keys, and the skeleton of array items.
fn shape(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(items) => {
            let mut inner: Vec<String> = items.iter().map(shape).collect();
            inner.sort();
            inner.dedup();
            format!("[{}]", inner.join("|"))
        }
        Value::Object(map) => {
            let mut keys: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    // Label sets and metadata maps have data-dependent keys.
                    if k.starts_with("__") || k == "job" || k == "instance" || k == "mode" {
                        "<label>:string".to_string()
                    } else {
                        format!("{k}:{}", shape(v))
                    }
                })
                .collect();
            keys.sort();
            keys.dedup();
            format!("{{{}}}", keys.join(","))
        }
    }
}

fn numbers_equal(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => false,
    }
}

/// Equality of `data` with order-free arrays and numeric strings compared as numbers.
fn data_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => numbers_equal(x, y),
        (Value::Number(x), Value::Number(y)) => numbers_equal(&x.to_string(), &y.to_string()),
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return false;
            }
            // Points ([t, "v"]) keep their order; lists of objects/strings may be in any
            // order (series sets), so match each item once.
            if x.iter().all(|i| !i.is_object() && !i.is_string()) {
                return x.iter().zip(y).all(|(i, j)| data_equal(i, j));
            }
            let mut used = vec![false; y.len()];
            x.iter().all(|i| {
                match y
                    .iter()
                    .enumerate()
                    .find(|(n, j)| !used[*n] && data_equal(i, j))
                {
                    Some((n, _)) => {
                        used[n] = true;
                        true
                    }
                    None => false,
                }
            })
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| data_equal(v, w)))
        }
        _ => a == b,
    }
}

fn send(api: &PromApi, call: &Call) -> (u16, Value) {
    let params: Vec<(&str, &str)> = call.params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = if call.post {
        api.post_form_raw(call.path, &params)
    } else {
        api.get_raw(call.path, &params)
    }
    .unwrap_or_else(|e| panic!("{}: {e}", call.what));
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{} on {}: not JSON ({e}): {body}", call.what, api.base()));
    (status, json)
}

fn write_same_data(targets: &[&str]) -> i64 {
    let now = now_millis();
    // Samples every 15 s over the last 20 minutes, 500 ms after 15 s boundaries: no
    // sample sits exactly on a range-window edge, where Prometheus 2.42 (closed ranges)
    // and 3.x, whose semantics Ember follows (left-open ranges), differ by design.
    let end = now - now % 15_000 - 15_000;
    let start = end - 20 * 60_000 + 500;
    let mut series = Vec::new();
    for (i, inst) in ["app-1:8080", "app-2:8080"].iter().enumerate() {
        for (code, rate) in [("200", 10.0), ("500", 0.5)] {
            let samples = (0..=80)
                .map(|k| {
                    Sample::new(
                        start + k * 15_000,
                        (k as f64) * 15.0 * rate * (i + 1) as f64,
                    )
                })
                .collect();
            series.push(TimeSeries::new(
                &[
                    ("__name__", "grafana_replay_requests_total"),
                    ("job", "app"),
                    ("instance", inst),
                    ("code", code),
                ],
                samples,
            ));
        }
        let samples = (0..=80)
            .map(|k| Sample::new(start + k * 15_000, 1e6 + (k as f64 * 0.37).sin() * 1000.0))
            .collect();
        series.push(TimeSeries::new(
            &[
                ("__name__", "grafana_replay_memory_bytes"),
                ("job", "app"),
                ("instance", inst),
            ],
            samples,
        ));
        series.push(TimeSeries::new(
            &[("__name__", "up"), ("job", "app"), ("instance", inst)],
            (0..=80)
                .map(|k| Sample::new(start + k * 15_000, 1.0))
                .collect(),
        ));
    }
    let request = WriteRequest {
        timeseries: series,
        metadata: Vec::new(),
    };
    for url in targets {
        RemoteWriteClient::new(&format!("{url}/api/v1/write"))
            .expect("client")
            .push(&request)
            .expect("remote write");
    }
    end
}

#[test]
fn grafana_request_sequence_agrees_with_prometheus() {
    let dir = test_dir("grafana-replay").expect("temp dir");
    let logs = dir.path().join("logs");
    let ember = EmberServer::start("ember", &dir.path().join("ember"), &logs).expect("ember");
    let prom = PrometheusServer::start(
        PrometheusMode::Receiver,
        "global: {}\n",
        &dir.path().join("prometheus"),
        &logs,
        &[],
    )
    .expect("Prometheus 2.42");
    let end_ms = write_same_data(&[&ember.url(), &prom.url()]);
    let end = end_ms / 1000;
    let start = end - 20 * 60;
    let (s, e) = (start.to_string(), end.to_string());
    let step = "60".to_string();
    // Grafana aligns range queries to the step.
    let (astart, aend) = ((start / 60 + 1) * 60, (end / 60) * 60);
    let (as_, ae) = (astart.to_string(), aend.to_string());
    let now_ms = now_millis();
    let p = |k: &'static str, v: &str| (k, v.to_string());

    let calls = vec![
        Call {
            what: "Save & test",
            post: true,
            path: "/api/v1/query",
            params: vec![p("query", "1+1"), p("time", "4")],
            compare: Compare::Data,
        },
        Call {
            what: "buildinfo probe",
            post: false,
            path: "/api/v1/status/buildinfo",
            params: vec![],
            compare: Compare::Shape,
        },
        Call {
            what: "datasource init: rules",
            post: false,
            path: "/api/v1/rules",
            params: vec![],
            compare: Compare::Data,
        },
        Call {
            what: "exemplars probe (ms as seconds)",
            post: true,
            path: "/api/v1/query_exemplars",
            params: vec![
                p("query", "test"),
                p("start", &(now_ms - 3_600_000).to_string()),
                p("end", &now_ms.to_string()),
            ],
            compare: Compare::Data,
        },
        Call {
            what: "metric list",
            post: false,
            path: "/api/v1/label/__name__/values",
            params: vec![p("start", &s), p("end", &e)],
            compare: Compare::Data,
        },
        Call {
            what: "label keys",
            post: true,
            path: "/api/v1/labels",
            params: vec![p("start", &s), p("end", &e)],
            compare: Compare::Data,
        },
        Call {
            what: "label keys of a metric",
            post: true,
            path: "/api/v1/labels",
            params: vec![
                p("match[]", "grafana_replay_requests_total"),
                p("start", &s),
                p("end", &e),
            ],
            compare: Compare::Data,
        },
        Call {
            what: "metric browser: values of code for a metric",
            post: false,
            path: "/api/v1/label/code/values",
            params: vec![
                p(
                    "match[]",
                    "{__name__=\"grafana_replay_requests_total\",job=\"app\"}",
                ),
                p("start", &s),
                p("end", &e),
            ],
            compare: Compare::Data,
        },
        Call {
            what: "variable label_values(up, instance)",
            post: false,
            path: "/api/v1/label/instance/values",
            params: vec![p("match[]", "up"), p("start", &s), p("end", &e)],
            compare: Compare::Data,
        },
        Call {
            what: "variable metrics(grafana_replay_.*)",
            post: false,
            path: "/api/v1/label/__name__/values",
            params: vec![
                p("match[]", "{__name__=~\"grafana_replay_.*\"}"),
                p("start", &s),
                p("end", &e),
            ],
            compare: Compare::Data,
        },
        Call {
            what: "series endpoint",
            post: true,
            path: "/api/v1/series",
            params: vec![
                p(
                    "match[]",
                    "{__name__=~\"grafana_replay_.*\",instance=\"app-1:8080\"}",
                ),
                p("start", &s),
                p("end", &e),
            ],
            compare: Compare::Data,
        },
        Call {
            what: "variable query_result(...)",
            post: true,
            path: "/api/v1/query",
            params: vec![p("query", "count by (job) (up)"), p("time", &e)],
            compare: Compare::Data,
        },
        Call {
            what: "metadata (hints)",
            post: false,
            path: "/api/v1/metadata",
            params: vec![p("limit", "40000")],
            compare: Compare::Shape,
        },
        Call {
            what: "panel: rate by code",
            post: true,
            path: "/api/v1/query_range",
            params: vec![
                p(
                    "query",
                    "sum by (code) (rate(grafana_replay_requests_total{job=\"app\"}[2m]))",
                ),
                p("start", &as_),
                p("end", &ae),
                p("step", &step),
            ],
            compare: Compare::Data,
        },
        Call {
            what: "panel: error ratio",
            post: true,
            path: "/api/v1/query_range",
            params: vec![
                p(
                    "query",
                    "sum(rate(grafana_replay_requests_total{code=~\"5..\"}[2m])) / sum(rate(grafana_replay_requests_total[2m]))",
                ),
                p("start", &as_),
                p("end", &ae),
                p("step", &step),
            ],
            compare: Compare::Data,
        },
        Call {
            what: "panel: memory",
            post: true,
            path: "/api/v1/query_range",
            params: vec![
                p("query", "avg_over_time(grafana_replay_memory_bytes[5m])"),
                p("start", &as_),
                p("end", &ae),
                p("step", &step),
            ],
            compare: Compare::Data,
        },
        Call {
            what: "panel: instant table",
            post: true,
            path: "/api/v1/query",
            params: vec![
                p("query", "topk(2, grafana_replay_memory_bytes)"),
                p("time", &e),
            ],
            compare: Compare::Data,
        },
        Call {
            what: "panel: string-free scalar",
            post: true,
            path: "/api/v1/query",
            params: vec![p("query", "scalar(sum(up))"), p("time", &e)],
            compare: Compare::Data,
        },
        Call {
            what: "error: bad PromQL",
            post: true,
            path: "/api/v1/query",
            params: vec![p("query", "sum(rate(x[5m])"), p("time", &e)],
            compare: Compare::Shape,
        },
        Call {
            what: "error: too many points",
            post: true,
            path: "/api/v1/query_range",
            params: vec![
                p("query", "up"),
                p("start", "0"),
                p("end", &e),
                p("step", "1"),
            ],
            compare: Compare::Shape,
        },
        Call {
            what: "error: end before start",
            post: true,
            path: "/api/v1/query_range",
            params: vec![
                p("query", "up"),
                p("start", &e),
                p("end", &s),
                p("step", "15"),
            ],
            compare: Compare::Shape,
        },
        Call {
            what: "error: execution (many-to-many)",
            post: true,
            path: "/api/v1/query",
            params: vec![
                p(
                    "query",
                    "grafana_replay_requests_total + on(job) grafana_replay_requests_total",
                ),
                p("time", &e),
            ],
            compare: Compare::Shape,
        },
        Call {
            what: "error: series without match[]",
            post: true,
            path: "/api/v1/series",
            params: vec![p("start", &s), p("end", &e)],
            compare: Compare::Shape,
        },
    ];

    let (ea, pa) = (ember.api().expect("api"), prom.api().expect("api"));
    let mut failures = Vec::new();
    let mut with_data = 0;
    for call in &calls {
        let (es, ev) = send(&ea, call);
        let (ps, pv) = send(&pa, call);
        let mut problems = Vec::new();
        if es != ps {
            problems.push(format!("status ember {es} vs prometheus {ps}"));
        }
        for key in ["status", "errorType"] {
            if ev[key] != pv[key] {
                problems.push(format!(
                    "{key}: ember {} vs prometheus {}",
                    ev[key], pv[key]
                ));
            }
        }
        if ps == 200 && shape(&ev["data"]) != shape(&pv["data"]) && call.compare == Compare::Data {
            problems.push(format!(
                "data shape: ember {} vs prometheus {}",
                shape(&ev["data"]),
                shape(&pv["data"])
            ));
        }
        if ps == 200
            && call.compare == Compare::Shape
            && ev["data"].is_object() != pv["data"].is_object()
        {
            problems.push("data type differs".into());
        }
        if call.compare == Compare::Data && !data_equal(&ev["data"], &pv["data"]) {
            problems.push(format!(
                "data: ember {}\nprometheus {}",
                ev["data"], pv["data"]
            ));
        }
        if call.compare == Compare::Data
            && ev["data"].to_string().len() > 20
            && ev["data"]["result"]
                .as_array()
                .is_none_or(|r| !r.is_empty())
        {
            with_data += 1;
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", call.what, problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} calls differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(with_data >= 10, "only {with_data} calls compared real data");
}
