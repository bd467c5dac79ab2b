//! Durability and idempotence of remote write against `ember serve`:
//! every acknowledged sample survives `kill -9` and a restart, a retried request
//! changes nothing, and metadata-only requests are acknowledged and kept.

use ember_e2e::prom_api::MatrixSeries;
use ember_e2e::servers::EmberServer;
use ember_e2e::{
    MetricMetadata, MetricType, PromApi, Sample, TimeSeries, WriteRequest, net::poll_until,
    now_millis, test_dir,
};
use std::collections::BTreeMap;
use std::time::Duration;

const JOB: &str = "e2e-durability";
const SIGKILL: i32 = 9;

/// Expected samples per series (keyed by the `series` label): `(timestamp ms, value)`.
type Expected = BTreeMap<String, Vec<(i64, f64)>>;

/// A request with `series` series of `metric`, `per_series` samples each, one second
/// apart starting at `start_ms`; values are exact binary fractions so they survive any
/// float formatting round trip.
fn batch(
    metric: &str,
    series: usize,
    per_series: usize,
    start_ms: i64,
    first_index: usize,
) -> WriteRequest {
    let timeseries = (0..series)
        .map(|s| {
            let series_label = format!("s{s:03}");
            let samples = (0..per_series)
                .map(|i| {
                    let k = first_index + i;
                    Sample::new(start_ms + k as i64 * 1000, sample_value(s, k))
                })
                .collect();
            TimeSeries::new(
                &[
                    ("__name__", metric),
                    ("job", JOB),
                    ("series", &series_label),
                ],
                samples,
            )
        })
        .collect();
    WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
}

fn sample_value(series: usize, index: usize) -> f64 {
    // Mixed signs and fractions: 1.5 * s - 3 + k / 8.
    1.5 * series as f64 - 3.0 + index as f64 / 8.0
}

fn record(expected: &mut Expected, request: &WriteRequest) {
    for ts in &request.timeseries {
        let key = ts
            .labels
            .iter()
            .find(|l| l.name == "series")
            .map(|l| l.value.clone())
            .unwrap_or_default();
        let points = expected.entry(key).or_default();
        points.extend(ts.samples.iter().map(|s| (s.timestamp, s.value)));
        points.sort_by_key(|p| p.0);
        points.dedup_by_key(|p| p.0);
    }
}

/// All raw samples of `metric` in the hour before `at_ms` + 1 s, keyed by `series`.
fn stored(api: &PromApi, metric: &str, at_ms: i64) -> Expected {
    let at = (at_ms + 1000) as f64 / 1000.0;
    let matrix: Vec<MatrixSeries> = api
        .query_matrix(&format!("{metric}{{job=\"{JOB}\"}}[1h]"), Some(at))
        .unwrap_or_else(|e| panic!("range query for {metric} failed: {e}"));
    let mut out = Expected::new();
    for series in matrix {
        assert_eq!(
            series.labels.get("__name__").and_then(|v| v.as_str()),
            Some(metric),
            "labels {:?}",
            series.labels
        );
        assert_eq!(
            series.labels.get("job").and_then(|v| v.as_str()),
            Some(JOB),
            "labels {:?}",
            series.labels
        );
        let key = series
            .labels
            .get("series")
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("series without a `series` label: {:?}", series.labels))
            .to_string();
        let points = series
            .points
            .iter()
            .map(|(t, v)| ((t * 1000.0).round() as i64, *v))
            .collect();
        assert!(
            out.insert(key.clone(), points).is_none(),
            "series {key} returned twice"
        );
    }
    out
}

fn total_samples(samples: &Expected) -> usize {
    samples.values().map(Vec::len).sum()
}

fn assert_same(expected: &Expected, actual: &Expected, context: &str) {
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>(),
        "{context}: the set of series differs"
    );
    for (key, want) in expected {
        let got = &actual[key];
        assert_eq!(
            want.len(),
            got.len(),
            "{context}: series {key} has {} samples, expected {}",
            got.len(),
            want.len()
        );
        assert_eq!(want, got, "{context}: samples of series {key} differ");
    }
    assert_eq!(
        total_samples(expected),
        total_samples(actual),
        "{context}: total sample count"
    );
}

#[test]
fn acknowledged_samples_survive_kill_9_and_restart() {
    const BATCHES: usize = 20;
    const SERIES: usize = 25;
    const PER_BATCH: usize = 10;
    let metric = "e2e_durability_value";
    let dir = test_dir("durability").expect("temp dir");
    let data_dir = dir.path().join("data");
    let logs = dir.path().join("logs");

    let mut first = EmberServer::start("ember-1", &data_dir, &logs).expect("start ember serve");
    let client = first.remote_write().expect("remote-write client");
    // Half an hour ago, off any round second, so no sample sits on a query boundary.
    let start_ms = (now_millis() - 30 * 60 * 1000) / 1000 * 1000 + 137;
    let mut expected = Expected::new();
    for b in 0..BATCHES {
        let request = batch(metric, SERIES, PER_BATCH, start_ms, b * PER_BATCH);
        let response = client.send(&request).expect("send batch");
        assert!(
            response.is_success(),
            "batch {b} was not acknowledged: HTTP {} {}",
            response.status,
            response.body
        );
        record(&mut expected, &request);
    }
    let last_ms = start_ms + (BATCHES * PER_BATCH) as i64 * 1000;
    assert_eq!(total_samples(&expected), BATCHES * SERIES * PER_BATCH);

    // Everything is queryable before the crash, too.
    let before = stored(&first.api().expect("api"), metric, last_ms);
    assert_same(&expected, &before, "before kill -9");

    first.process.kill_hard();
    assert_eq!(
        first.process.killed_by_signal(),
        Some(SIGKILL),
        "ember was not ended by SIGKILL"
    );

    let second = EmberServer::start("ember-2", &data_dir, &logs)
        .expect("restart ember serve on the same data dir");
    let after = stored(&second.api().expect("api"), metric, last_ms);
    assert_same(&expected, &after, "after kill -9 and restart");
}

#[test]
fn retried_request_does_not_change_query_results() {
    let metric = "e2e_retry_value";
    let dir = test_dir("retry").expect("temp dir");
    let data_dir = dir.path().join("data");
    let logs = dir.path().join("logs");
    let mut ember = EmberServer::start("ember-1", &data_dir, &logs).expect("start ember serve");
    let client = ember.remote_write().expect("remote-write client");
    let api = ember.api().expect("api");
    let start_ms = (now_millis() - 20 * 60 * 1000) / 1000 * 1000 + 251;

    let request = batch(metric, 8, 30, start_ms, 0);
    let mut expected = Expected::new();
    record(&mut expected, &request);
    client.push(&request).expect("first send");
    let last_ms = start_ms + 60 * 1000;
    let once = stored(&api, metric, last_ms);
    assert_same(&expected, &once, "after the first send");

    // The same bytes again, as a sender retries after a lost response.
    for attempt in 1..=2 {
        client
            .push(&request)
            .unwrap_or_else(|e| panic!("retry {attempt} was not acknowledged: {e}"));
        let again = stored(&api, metric, last_ms);
        assert_same(&expected, &again, &format!("after retry {attempt}"));
    }

    // A request overlapping half of the earlier samples and adding new ones.
    let overlapping = batch(metric, 8, 30, start_ms, 15);
    client.push(&overlapping).expect("overlapping send");
    record(&mut expected, &overlapping);
    let merged = stored(&api, metric, last_ms + 30 * 1000);
    assert_same(&expected, &merged, "after an overlapping request");

    // And the same after a clean restart.
    ember
        .process
        .stop_cleanly(Duration::from_secs(15))
        .expect("ember stops cleanly on SIGTERM");
    let restarted = EmberServer::start("ember-2", &data_dir, &logs).expect("restart ember serve");
    let after = stored(&restarted.api().expect("api"), metric, last_ms + 30 * 1000);
    assert_same(&expected, &after, "after a clean restart");
}

#[test]
fn metadata_only_request_is_acknowledged_and_kept() {
    let dir = test_dir("metadata").expect("temp dir");
    let ember = EmberServer::start("ember", &dir.path().join("data"), &dir.path().join("logs"))
        .expect("start ember serve");
    let client = ember.remote_write().expect("remote-write client");
    let request = WriteRequest {
        timeseries: Vec::new(),
        metadata: vec![
            MetricMetadata::new(
                MetricType::Counter,
                "e2e_meta_requests_total",
                "Requests handled.",
                "",
            ),
            MetricMetadata::new(
                MetricType::Gauge,
                "e2e_meta_temperature_celsius",
                "Current temperature.",
                "celsius",
            ),
        ],
    };
    let response = client.send(&request).expect("send metadata-only request");
    assert!(
        response.is_success(),
        "metadata-only request answered HTTP {}: {}",
        response.status,
        response.body
    );

    let api = ember.api().expect("api");
    let kind = poll_until(
        "metadata of e2e_meta_requests_total",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || api.metadata_type("e2e_meta_requests_total"),
    )
    .expect("metadata is kept");
    assert_eq!(kind, "counter");
    let data = api
        .metadata("e2e_meta_temperature_celsius")
        .expect("metadata");
    let entry = &data["e2e_meta_temperature_celsius"][0];
    assert_eq!(entry["type"], "gauge", "metadata: {data}");
    assert_eq!(entry["help"], "Current temperature.", "metadata: {data}");
    assert_eq!(entry["unit"], "celsius", "metadata: {data}");
}
