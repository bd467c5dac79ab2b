//! `/api/v1/format_query` and `/api/v1/status/tsdb` side by side with Prometheus 2.42:
//! the same expressions must format to the same text, and the same remote-written
//! series must give the same cardinality statistics.

use std::collections::BTreeMap;

use ember_e2e::servers::PrometheusMode;
use ember_e2e::{
    EmberServer, PromApi, PrometheusServer, Sample, TimeSeries, WriteRequest, now_millis, test_dir,
};
use serde_json::Value;

/// Expressions covering every node type the pretty-printer handles, short and long
/// (longer than 100 characters, so they are split over lines).
const EXPRESSIONS: &[&str] = &[
    "1+1",
    "up",
    "up{job=\"node\",instance=~\"a.*\"}",
    "sum by(job)(rate(http_requests_total{job=\"api\"}[5m]))",
    "sum without(instance)(rate(x[1m] offset 5m))",
    "rate(http_requests_total[5m] @ 1700000000)",
    "-up",
    "up == bool 1",
    "a / on(instance) group_left(job) b",
    "a and ignoring(job) b",
    "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "max_over_time(deriv(rate(distance_covered_total[5s])[30s:5s])[10m:])",
    "topk(3, sum by (app, proc) (rate(instance_cpu_time_ns[5m])))",
    "label_replace(up, \"foo\", \"$1\", \"job\", \"(.*)\")",
    "\"a string\"",
    "(up)",
    "((a + b) * c)",
    "sum(rate(node_cpu_seconds_total{mode!=\"idle\",instance=\"host-1:9100\",job=\"node\"}[5m])) by (instance) / count(node_cpu_seconds_total{mode=\"idle\"}) by (instance)",
    "node_memory_MemTotal_bytes{instance=\"host-1:9100\",job=\"node\"} - node_memory_MemAvailable_bytes{instance=\"host-1:9100\",job=\"node\"} > 1024 * 1024 * 1024",
    "avg by (function_name) (aws_lambda_errors_sum{function_name=~\"checkout-.*\"}) / avg by (function_name) (aws_lambda_invocations_sum{function_name=~\"checkout-.*\"})",
    "count_values(\"version\", build_info)",
    "quantile(0.9, rate(x[5m]))",
    "up # trailing comment",
    "time() - process_start_time_seconds",
    "absent(nonexistent{job=\"x\"})",
];

fn data(api: &PromApi, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let (status, body) = api.get_raw(path, params).expect("request");
    let v =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
    (status, v)
}

#[test]
fn format_query_matches_prometheus() {
    let dir = test_dir("grafana-format").expect("temp dir");
    let logs = dir.path().join("logs");
    let ember = EmberServer::start("ember", &dir.path().join("ember"), &logs).expect("start ember");
    let prom = PrometheusServer::start(
        PrometheusMode::Receiver,
        "global: {}\n",
        &dir.path().join("prometheus"),
        &logs,
        &[],
    )
    .expect("start Prometheus 2.42");
    let (e, p) = (ember.api().expect("api"), prom.api().expect("api"));
    let mut compared = 0;
    for expr in EXPRESSIONS {
        let (ps, pv) = data(&p, "/api/v1/format_query", &[("query", expr)]);
        assert_eq!(ps, 200, "Prometheus formats {expr:?}: {pv}");
        // Both GET and POST as Prometheus accepts them.
        let (es, ev) = data(&e, "/api/v1/format_query", &[("query", expr)]);
        assert_eq!(es, 200, "Ember formats {expr:?}: {ev}");
        assert_eq!(ev["data"], pv["data"], "format of {expr:?}");
        let (es, body) = e
            .post_form_raw("/api/v1/format_query", &[("query", expr)])
            .expect("POST");
        assert_eq!(es, 200);
        let ev: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(ev["data"], pv["data"], "POST format of {expr:?}");
        compared += 1;
    }
    assert_eq!(compared, EXPRESSIONS.len());
    // Bad queries: 400 bad_data from both.
    for bad in ["sum(", "up{", "rate(x[5m]", ""] {
        let (ps, pv) = data(&p, "/api/v1/format_query", &[("query", bad)]);
        let (es, ev) = data(&e, "/api/v1/format_query", &[("query", bad)]);
        assert_eq!((es, ps), (400, 400), "{bad:?}: ember {ev} prometheus {pv}");
        assert_eq!(ev["errorType"], pv["errorType"], "{bad:?}");
        assert_eq!(ev["status"], "error");
    }
}

/// Remote-writes the same series (a few metrics, a high-cardinality label, recent
/// samples) to both servers.
fn write_cardinality_data(targets: &[&PromApi]) -> (i64, Vec<TimeSeries>) {
    let now = now_millis();
    let mut series = Vec::new();
    let start = now - 10 * 60_000;
    let samples = |n: i64, v: f64| -> Vec<Sample> {
        (0..n)
            .map(|i| Sample::new(start + i * 15_000, v + i as f64))
            .collect()
    };
    for pod in 0..25 {
        let pod = format!("checkout-7d9f8b-{pod:03}");
        for code in ["200", "500"] {
            series.push(TimeSeries::new(
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("pod", &pod),
                    ("code", code),
                ],
                samples(40, 1.0),
            ));
        }
    }
    for host in 0..4 {
        let inst = format!("host-{host}:9100");
        for mode in ["idle", "user", "system"] {
            series.push(TimeSeries::new(
                &[
                    ("__name__", "node_cpu_seconds_total"),
                    ("job", "node"),
                    ("instance", &inst),
                    ("mode", mode),
                ],
                samples(40, 100.0),
            ));
        }
        series.push(TimeSeries::new(
            &[("__name__", "up"), ("job", "node"), ("instance", &inst)],
            samples(40, 1.0),
        ));
    }
    let request = WriteRequest {
        timeseries: series.clone(),
        metadata: Vec::new(),
    };
    for api in targets {
        let client = ember_e2e::RemoteWriteClient::new(&format!("{}/api/v1/write", api.base()))
            .expect("client");
        client.push(&request).expect("remote write");
    }
    (start, series)
}

fn as_map(v: &Value) -> BTreeMap<String, i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list: {v}"))
        .iter()
        .map(|e| {
            (
                e["name"].as_str().expect("name").to_string(),
                e["value"].as_i64().expect("value"),
            )
        })
        .collect()
}

#[test]
fn tsdb_status_matches_prometheus_on_the_same_data() {
    let dir = test_dir("grafana-tsdb").expect("temp dir");
    let logs = dir.path().join("logs");
    // No scrape jobs (the default config scrapes Ember itself): both hold the same series.
    let config = dir.path().join("ember.yml");
    std::fs::write(&config, "global: {}\n").expect("config");
    let config = config.to_string_lossy().into_owned();
    let ember = EmberServer::start_with(
        &ember_e2e::binaries::ember_bin(ember_e2e::binaries::Profile::Debug).expect("ember"),
        "ember",
        &dir.path().join("ember"),
        &logs,
        &["--config", &config],
    )
    .expect("start ember");
    let prom = PrometheusServer::start(
        PrometheusMode::Receiver,
        "global: {}\n",
        &dir.path().join("prometheus"),
        &logs,
        &[],
    )
    .expect("start Prometheus 2.42");
    let (e, p) = (ember.api().expect("api"), prom.api().expect("api"));
    let (start, written) = write_cardinality_data(&[&e, &p]);

    let (ps, pv) = data(&p, "/api/v1/status/tsdb", &[]);
    let (es, ev) = data(&e, "/api/v1/status/tsdb", &[]);
    assert_eq!((es, ps), (200, 200), "ember {ev}\nprometheus {pv}");
    let (ed, pd) = (&ev["data"], &pv["data"]);
    // 50 + 12 + 4 series.
    assert_eq!(ed["headStats"]["numSeries"], 66, "{ed}");
    for key in [
        "numSeries",
        "numLabelPairs",
        "chunkCount",
        "minTime",
        "maxTime",
    ] {
        assert_eq!(
            ed["headStats"][key], pd["headStats"][key],
            "headStats.{key}: ember {ed}\nprometheus {pd}"
        );
    }
    assert_eq!(ed["headStats"]["minTime"], start);
    // memoryInBytesByLabelName: current Prometheus (2.45+, 3.x) counts
    // Σ len(value) × series per label name; 2.42 counted Σ len(value) over distinct
    // values. Ember follows the current definition: check it against the written data.
    let mut expected_memory: BTreeMap<String, i64> = BTreeMap::new();
    for ts in &written {
        for l in &ts.labels {
            *expected_memory.entry(l.name.clone()).or_default() += l.value.len() as i64;
        }
    }
    assert_eq!(as_map(&ed["memoryInBytesByLabelName"]), expected_memory);
    for key in [
        "seriesCountByMetricName",
        "labelValueCountByLabelName",
        "seriesCountByLabelValuePair",
    ] {
        let (em, pm) = (as_map(&ed[key]), as_map(&pd[key]));
        assert!(!em.is_empty(), "{key} is empty");
        assert!(em.len() <= 10, "{key} has more than 10 entries");
        // Entries tied at the cut-off may differ (Prometheus' heap order is arbitrary):
        // compare the counts of the common names, and the sorted count lists in full.
        let mut ec: Vec<i64> = em.values().copied().collect();
        let mut pc: Vec<i64> = pm.values().copied().collect();
        ec.sort_unstable();
        pc.sort_unstable();
        assert_eq!(ec, pc, "{key} counts: ember {em:?}\nprometheus {pm:?}");
        for (name, count) in &em {
            if let Some(pcount) = pm.get(name) {
                assert_eq!(count, pcount, "{key}[{name}]");
            }
        }
    }
    assert_eq!(
        as_map(&ed["seriesCountByMetricName"]),
        BTreeMap::from([
            ("http_requests_total".to_string(), 50),
            ("node_cpu_seconds_total".to_string(), 12),
            ("up".to_string(), 4),
        ])
    );

    // `limit` (Prometheus 2.45+): top 2 only.
    let (_, v) = data(&e, "/api/v1/status/tsdb", &[("limit", "2")]);
    assert_eq!(
        v["data"]["seriesCountByLabelValuePair"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    // A workspace sees only its own series.
    let ws = PromApi::new(&format!("{}/workspaces/other", ember.url())).expect("api");
    let (_, v) = data(&ws, "/api/v1/status/tsdb", &[]);
    assert_eq!(v["data"]["headStats"]["numSeries"], 0, "{v}");
}
