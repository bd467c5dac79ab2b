//! A real Prometheus 2.42 in agent mode scrapes a real node_exporter every second and
//! remote-writes into `ember serve`; the node series, their labels and their metadata
//! are then readable through Ember's query API.

use ember_e2e::net::poll_until;
use ember_e2e::prom_api::VectorSample;
use ember_e2e::servers::{EmberServer, NodeExporter, PrometheusMode, PrometheusServer};
use ember_e2e::{PromApi, test_dir};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(500);

fn agent_config(target: &str, write_url: &str) -> String {
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["{target}"]
remote_write:
  - url: "{write_url}"
    queue_config:
      batch_send_deadline: 1s
      max_samples_per_send: 500
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send: true
      send_interval: 1s
"#
    )
}

/// Polls an instant query until it returns a non-empty vector.
fn wait_nonempty(api: &PromApi, expr: &str) -> Vec<VectorSample> {
    poll_until(&format!("{expr} in Ember"), WAIT, POLL, || {
        let v = api.query_vector(expr, None)?;
        Ok((!v.is_empty()).then_some(v))
    })
    .unwrap_or_else(|e| panic!("{expr} never became queryable: {e}"))
}

#[test]
fn prometheus_agent_scraping_node_exporter_writes_into_ember() {
    let dir = test_dir("prometheus-agent").expect("temp dir");
    let logs = dir.path().join("logs");
    let mut ember = EmberServer::start("ember", &dir.path().join("ember-data"), &logs)
        .expect("start ember serve");
    let node = NodeExporter::start(&logs).expect("start node_exporter");
    let mut agent = PrometheusServer::start(
        PrometheusMode::Agent,
        &agent_config(&node.target(), &ember.write_url()),
        &dir.path().join("agent"),
        &logs,
        &["--storage.remote.flush-deadline=1s"],
    )
    .expect("start the Prometheus agent");
    let api = ember.api().expect("api");
    let instance = node.target();

    // The scraped series arrive.
    let cpu = poll_until("node_cpu_seconds_total in Ember", WAIT, POLL, || {
        let v = api.query_vector("node_cpu_seconds_total", None)?;
        Ok((!v.is_empty()).then_some(v))
    })
    .expect("node_cpu_seconds_total becomes queryable");
    for sample in &cpu {
        assert_eq!(sample.labels["job"], "node", "labels {:?}", sample.labels);
        assert_eq!(
            sample.labels["instance"],
            instance.as_str(),
            "labels {:?}",
            sample.labels
        );
        assert!(
            sample.labels.contains_key("cpu") && sample.labels.contains_key("mode"),
            "labels {:?}",
            sample.labels
        );
        assert!(
            sample.value >= 0.0,
            "cpu seconds are non-negative: {sample:?}"
        );
    }
    let modes: Vec<&str> = cpu
        .iter()
        .filter_map(|s| s.labels["mode"].as_str())
        .collect();
    assert!(
        modes.contains(&"idle") && modes.contains(&"user"),
        "modes {modes:?}"
    );

    // The synthetic `up` series of the scrape (may arrive in a later batch).
    let up = wait_nonempty(&api, "up{job=\"node\"}");
    assert_eq!(up.len(), 1, "one up series: {up:?}");
    assert_eq!(up[0].value, 1.0, "the target is up: {up:?}");

    // Other node metrics and the series endpoint.
    let memory = wait_nonempty(&api, "node_memory_MemTotal_bytes");
    assert!(
        memory.len() == 1 && memory[0].value > 0.0,
        "node_memory_MemTotal_bytes: {memory:?}"
    );
    let series = api.series(&["node_cpu_seconds_total"]).expect("series");
    assert_eq!(
        series.len(),
        cpu.len(),
        "series endpoint and instant query agree: {series:?}"
    );
    for labels in &series {
        assert_eq!(
            labels["__name__"], "node_cpu_seconds_total",
            "series {labels:?}"
        );
        assert_eq!(labels["instance"], instance.as_str(), "series {labels:?}");
    }
    let names = api
        .label_values("__name__")
        .expect("label values of __name__");
    for name in [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "up",
        "scrape_duration_seconds",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from __name__ values"
        );
    }

    // With several scrapes stored, rate() over the counter works.
    let rates = poll_until("rate(node_cpu_seconds_total[10s])", WAIT, POLL, || {
        let v = api.query_vector("sum by (mode) (rate(node_cpu_seconds_total[10s]))", None)?;
        Ok((!v.is_empty()).then_some(v))
    })
    .expect("rate over the scraped counter");
    for sample in &rates {
        assert!(
            sample.value >= 0.0 && sample.value.is_finite(),
            "rate {sample:?}"
        );
    }

    // Metadata arrives about every second (metadata_config.send_interval).
    let kind = poll_until("metadata of node_cpu_seconds_total", WAIT, POLL, || {
        api.metadata_type("node_cpu_seconds_total")
    })
    .expect("node_cpu_seconds_total metadata");
    assert_eq!(kind, "counter");
    let memory_kind = api
        .metadata_type("node_memory_MemTotal_bytes")
        .expect("metadata");
    assert_eq!(memory_kind.as_deref(), Some("gauge"));

    // Stop the sender first, then Ember, which must exit cleanly.
    agent
        .process
        .terminate(Duration::from_secs(15))
        .expect("the agent stops on SIGTERM");
    ember
        .process
        .stop_cleanly(Duration::from_secs(15))
        .expect("ember exits 0 on SIGTERM");
}
