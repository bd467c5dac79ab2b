//! The OpenTelemetry Python SDK (1.45, OTLP/HTTP protobuf exporter, gzip) sends a
//! counter, an up-down counter, a histogram and an observable gauge to
//! `ember serve`'s `/api/v1/otlp/v1/metrics`; the series land under Prometheus'
//! translated names with `job`/`instance` from the resource.

use std::process::Command;

use ember_e2e::servers::EmberServer;
use ember_e2e::{spawn_logged, test_dir, workspace_root};

const SCRIPT: &str = r#"
import os, sys
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import View, ExplicitBucketHistogramAggregation
from opentelemetry.sdk.resources import Resource
from opentelemetry.metrics import Observation
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http import Compression

exporter = OTLPMetricExporter(endpoint=os.environ["ENDPOINT"], compression=Compression.Gzip)
reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3600000)
provider = MeterProvider(
    resource=Resource.create({"service.name": "checkout", "service.namespace": "shop",
                              "service.instance.id": "pod-7"}),
    metric_readers=[reader],
    views=[View(instrument_name="http.server.duration",
                aggregation=ExplicitBucketHistogramAggregation([0.1, 0.5, 1.0]))],
)
meter = provider.get_meter("ember-e2e")
requests = meter.create_counter("http.server.requests", unit="{request}", description="Requests served")
for _ in range(7):
    requests.add(1, {"http.method": "GET"})
requests.add(2, {"http.method": "POST"})
inflight = meter.create_up_down_counter("http.server.active_requests", unit="{request}")
inflight.add(5); inflight.add(-2)
duration = meter.create_histogram("http.server.duration", unit="s")
for v in [0.05, 0.2, 0.3, 0.7, 2.0]:
    duration.record(v, {"http.method": "GET"})
meter.create_observable_gauge("process.memory.usage", unit="By",
    callbacks=[lambda options: [Observation(123456789)]])
ok = provider.force_flush(30000)
provider.shutdown()
sys.exit(0 if ok else 1)
"#;

#[test]
fn opentelemetry_sdk_metrics_land_under_prometheus_names() {
    let dir = test_dir("otlp").expect("temp dir");
    let logs = dir.path().join("logs");
    let ember = EmberServer::start("ember", &dir.path().join("data"), &logs).expect("ember");
    let python = workspace_root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run tests/run (it installs the OpenTelemetry SDK into the venv)",
        python.display()
    );
    let script = dir.path().join("otel.py");
    std::fs::write(&script, SCRIPT).expect("script");
    let mut cmd = Command::new(&python);
    cmd.arg(&script).env(
        "ENDPOINT",
        format!("{}/api/v1/otlp/v1/metrics", ember.url()),
    );
    let mut run = spawn_logged("otel", cmd, &logs).expect("start python");
    let status = run
        .wait_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the OTel script hung\n{}", run.log_tail(40)));
    assert!(
        status.success(),
        "the OTel SDK export failed: {status}\n{}",
        run.log_tail(40)
    );

    let api = ember.api().expect("api");
    let one = |q: &str| -> f64 {
        let v = api
            .query_vector(q, None)
            .unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(v.len(), 1, "{q}: {v:?}");
        v[0].value
    };
    assert_eq!(
        one(
            "http_server_requests_total{job=\"shop/checkout\",instance=\"pod-7\",http_method=\"GET\"}"
        ),
        7.0
    );
    assert_eq!(one("http_server_requests_total{http_method=\"POST\"}"), 2.0);
    assert_eq!(
        one("http_server_active_requests{job=\"shop/checkout\"}"),
        3.0
    );
    assert_eq!(one("process_memory_usage_bytes"), 123_456_789.0);
    assert_eq!(one("http_server_duration_seconds_count"), 5.0);
    assert!((one("http_server_duration_seconds_sum") - 3.25).abs() < 1e-9);
    assert_eq!(one("http_server_duration_seconds_bucket{le=\"0.5\"}"), 3.0);
    assert_eq!(one("http_server_duration_seconds_bucket{le=\"+Inf\"}"), 5.0);
    assert!(
        (one("histogram_quantile(0.5, http_server_duration_seconds_bucket)") - 0.5).abs() < 0.5,
        "a quantile over the translated buckets"
    );
    let md = api
        .metadata("http_server_duration_seconds")
        .expect("metadata");
    assert_eq!(
        md["http_server_duration_seconds"][0]["type"], "histogram",
        "{md}"
    );
}
