//! The HTTP surface of `ember serve` as clients see it: the AMP-style workspace
//! aliases, rejection of bad remote-write input without partial writes, and the
//! query calls Grafana makes.

use ember_e2e::servers::EmberServer;
use ember_e2e::{
    PromApi, RemoteWriteClient, Sample, TimeSeries, WriteRequest, now_millis, test_dir,
};

fn start(name: &str) -> (ember_e2e::TempDir, EmberServer) {
    let dir = test_dir(name).expect("temp dir");
    let ember = EmberServer::start("ember", &dir.path().join("data"), &dir.path().join("logs"))
        .expect("start ember serve");
    (dir, ember)
}

fn one_series(metric: &str, value: f64) -> TimeSeries {
    TimeSeries::new(
        &[("__name__", metric), ("job", "e2e-http")],
        vec![Sample::new(now_millis() - 5_000, value)],
    )
}

#[test]
fn workspace_alias_writes_into_its_own_tenant() {
    let (_dir, ember) = start("tenant");
    let alias = RemoteWriteClient::new(&format!(
        "{}/workspaces/ws-e2e/api/v1/remote_write",
        ember.url()
    ))
    .expect("client");
    let request = WriteRequest {
        timeseries: vec![one_series("e2e_tenant_value", 42.0)],
        metadata: Vec::new(),
    };
    alias
        .push(&request)
        .expect("remote write through the workspace alias");

    let tenant = PromApi::new(&format!("{}/workspaces/ws-e2e", ember.url())).expect("api");
    let got = tenant
        .query_vector("e2e_tenant_value", None)
        .expect("query in the workspace");
    assert_eq!(got.len(), 1, "the workspace sees its series: {got:?}");
    assert_eq!(got[0].value, 42.0);

    let default = ember.api().expect("api");
    let other = default
        .query_vector("e2e_tenant_value", None)
        .expect("query in the default tenant");
    assert!(
        other.is_empty(),
        "the default tenant must not see another workspace's data: {other:?}"
    );
}

#[test]
fn bad_remote_write_input_is_rejected_and_nothing_is_stored() {
    let (_dir, ember) = start("bad-input");
    let api = ember.api().expect("api");
    let client = ember.remote_write().expect("client");

    // Not snappy at all.
    let response = client
        .send_body(b"definitely not snappy".to_vec())
        .expect("send");
    assert_eq!(response.status, 400, "corrupt snappy: {response:?}");

    // Valid snappy around garbage protobuf.
    let garbage = snap::raw::Encoder::new()
        .compress_vec(&[0xff; 64])
        .expect("compress");
    let response = client.send_body(garbage).expect("send");
    assert_eq!(response.status, 400, "corrupt protobuf: {response:?}");

    // A good series next to one without a metric name: the whole request is rejected.
    let nameless = TimeSeries::new(
        &[("job", "e2e-http")],
        vec![Sample::new(now_millis() - 5_000, 1.0)],
    );
    let request = WriteRequest {
        timeseries: vec![one_series("e2e_partial_value", 1.0), nameless],
        metadata: Vec::new(),
    };
    let response = client.send(&request).expect("send");
    assert_eq!(
        response.status, 400,
        "series without __name__: {response:?}"
    );
    let stored = api.query_vector("e2e_partial_value", None).expect("query");
    assert!(
        stored.is_empty(),
        "nothing of a rejected request may be stored: {stored:?}"
    );

    // Wrong Content-Type.
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let body = ember_e2e::remote_write::encode_body(&WriteRequest {
        timeseries: vec![one_series("e2e_content_type_value", 1.0)],
        metadata: Vec::new(),
    })
    .expect("encode");
    let response = http
        .post(ember.write_url())
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "snappy")
        .body(body)
        .send()
        .expect("send");
    assert_eq!(response.status().as_u16(), 415, "wrong Content-Type");
}

#[test]
fn grafana_calls_work() {
    let (_dir, ember) = start("grafana");
    let api = ember.api().expect("api");

    // "Save & test": POST /api/v1/query with query=1+1&time=4.
    let (status, body) = api
        .post_form_raw("/api/v1/query", &[("query", "1+1"), ("time", "4")])
        .expect("POST query");
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["status"], "success", "{body}");
    assert_eq!(json["data"]["resultType"], "scalar", "{body}");
    assert_eq!(json["data"]["result"][1], "2", "{body}");
    assert_eq!(json["data"]["result"][0].as_f64(), Some(4.0), "{body}");

    // A bad query: 400 bad_data with the parser's message.
    let (status, body) = api
        .get_raw("/api/v1/query", &[("query", "sum(rate(x[5m])")])
        .expect("GET query");
    assert_eq!(status, 400, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["status"], "error", "{body}");
    assert_eq!(json["errorType"], "bad_data", "{body}");
    assert!(
        json["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );

    // Written data through labels, label values, series and query_range.
    let client = ember.remote_write().expect("client");
    let now = now_millis();
    let samples: Vec<Sample> = (0..10)
        .map(|i| Sample::new(now - 60_000 + i * 5_000 + 3, i as f64))
        .collect();
    let request = WriteRequest {
        timeseries: vec![TimeSeries::new(
            &[("__name__", "e2e_grafana_value"), ("job", "e2e-grafana")],
            samples,
        )],
        metadata: Vec::new(),
    };
    client.push(&request).expect("write");
    let labels = api.labels().expect("labels");
    assert!(
        labels.iter().any(|l| l == "job") && labels.iter().any(|l| l == "__name__"),
        "{labels:?}"
    );
    let jobs = api.label_values("job").expect("label values");
    assert!(jobs.iter().any(|j| j == "e2e-grafana"), "{jobs:?}");
    let series = api.series(&["{job=\"e2e-grafana\"}"]).expect("series");
    assert_eq!(series.len(), 1, "{series:?}");
    let end = now as f64 / 1000.0;
    let matrix = api
        .query_range("e2e_grafana_value", end - 50.0, end, 10.0)
        .expect("query_range");
    assert_eq!(matrix.len(), 1, "{matrix:?}");
    assert!(
        matrix[0].points.len() >= 5,
        "points at every step with data: {matrix:?}"
    );
}
