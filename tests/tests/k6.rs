//! Real k6 1.1 with `-o experimental-prometheus-rw` load-tests a loopback HTTP server
//! and writes its metrics into `ember serve`; `k6_http_reqs_total` then matches the
//! number of requests k6 reports in its summary.

use ember_e2e::binaries::{k6_bin, python_bin};
use ember_e2e::net::{poll_until, wait_for_http};
use ember_e2e::servers::{EmberServer, STARTUP_TIMEOUT};
use ember_e2e::{free_port, spawn_logged, test_dir};
use std::process::Command;
use std::time::Duration;

const ITERATIONS: u32 = 30;

const SCRIPT: &str = r#"
import http from 'k6/http';

export const options = {
  scenarios: {
    e2e: { executor: 'shared-iterations', vus: 3, iterations: __ENV.ITERATIONS * 1, maxDuration: '60s' },
  },
};

export default function () {
  http.get(`http://127.0.0.1:${__ENV.TARGET_PORT}/`);
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY_PATH]: JSON.stringify(data) };
}
"#;

#[test]
fn k6_remote_writes_its_metrics_into_ember() {
    let k6 = k6_bin().expect("k6 is required for this test");
    let python = python_bin().expect("python3 is required for this test");
    let dir = test_dir("k6").expect("temp dir");
    let logs = dir.path().join("logs");
    let ember = EmberServer::start("ember", &dir.path().join("ember-data"), &logs)
        .expect("start ember serve");

    // The system under load: a static file server on loopback.
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site).expect("create site dir");
    std::fs::write(site.join("index.html"), "<h1>ember e2e</h1>\n").expect("write index.html");
    let target_port = free_port().expect("free port");
    let mut server_cmd = Command::new(python);
    server_cmd
        .args(["-m", "http.server", "--bind", "127.0.0.1"])
        .arg(target_port.to_string())
        .arg("--directory")
        .arg(&site);
    let mut target =
        spawn_logged("http_server", server_cmd, &logs).expect("start python http.server");
    wait_for_http(
        &format!("http://127.0.0.1:{target_port}/"),
        STARTUP_TIMEOUT,
        Some(&mut target),
    )
    .expect("http.server answers");

    let script = dir.path().join("script.js");
    std::fs::write(&script, SCRIPT).expect("write k6 script");
    let summary_path = dir.path().join("summary.json");
    let mut k6_cmd = Command::new(k6);
    k6_cmd
        .current_dir(dir.path())
        .args([
            "run",
            "--no-usage-report",
            "--quiet",
            "-o",
            "experimental-prometheus-rw",
        ])
        .arg(&script)
        .env("K6_PROMETHEUS_RW_SERVER_URL", ember.write_url())
        .env("K6_PROMETHEUS_RW_PUSH_INTERVAL", "1s")
        .env("K6_NO_USAGE_REPORT", "true")
        .env("ITERATIONS", ITERATIONS.to_string())
        .env("TARGET_PORT", target_port.to_string())
        .env("SUMMARY_PATH", &summary_path);
    let mut run = spawn_logged("k6", k6_cmd, &logs).expect("start k6");
    let status = run.wait_timeout(Duration::from_secs(120));
    let status =
        status.unwrap_or_else(|| panic!("k6 did not finish within 120 s\n{}", run.log_tail(40)));
    assert!(
        status.success(),
        "k6 failed: {status}\n{}",
        run.log_tail(60)
    );
    assert!(
        !run.stderr().contains("level=error") && !run.stdout().contains("level=error"),
        "k6 logged errors (remote write rejected?)\n{}",
        run.log_tail(60)
    );

    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&summary_path).expect("k6 wrote its summary"),
    )
    .expect("k6 summary is JSON");
    let reported = summary["metrics"]["http_reqs"]["values"]["count"]
        .as_f64()
        .unwrap_or_else(|| {
            panic!(
                "no http_reqs count in the k6 summary: {}",
                summary["metrics"]
            )
        });
    assert_eq!(
        reported,
        f64::from(ITERATIONS),
        "k6 made one request per iteration"
    );

    let api = ember.api().expect("api");
    let series = poll_until(
        "k6_http_reqs_total in Ember",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || {
            let v = api.query_vector("k6_http_reqs_total", None)?;
            Ok((!v.is_empty()).then_some(v))
        },
    )
    .expect("k6_http_reqs_total becomes queryable");
    for sample in &series {
        assert_eq!(sample.labels["method"], "GET", "labels {:?}", sample.labels);
        assert_eq!(sample.labels["status"], "200", "labels {:?}", sample.labels);
    }
    // k6 pushes its final counter values when the run ends.
    let total = api
        .query_vector("sum(k6_http_reqs_total)", None)
        .expect("sum(k6_http_reqs_total)");
    assert_eq!(total.len(), 1, "sum has one element: {total:?}");
    assert_eq!(
        total[0].value, reported,
        "k6_http_reqs_total equals the request count k6 reported"
    );

    let iterations = api
        .query_vector("sum(k6_iterations_total)", None)
        .expect("sum(k6_iterations_total)");
    assert!(
        iterations.len() == 1 && iterations[0].value == f64::from(ITERATIONS),
        "k6_iterations_total: {iterations:?}"
    );
}
