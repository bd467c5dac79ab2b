//! Every panel query of every dashboard in `infra/grafana/dashboards` runs against a
//! real `ember serve` holding data for it: Ember's own metrics (self-scrape), a real
//! node_exporter (scraped), a rule group, a real k6 run (remote-write output) and
//! remote-written series under the names the CloudWatch importer writes. Variables are resolved as Grafana does (their
//! `label_values()` queries run first and must return values), then each target runs as
//! the range or instant query Grafana would send. Every query must succeed; a query
//! whose metrics all exist must return data (a few are empty by design: "targets down",
//! 5xx responses).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ember_e2e::binaries::{Profile, ember_bin, k6_bin, python_bin};
use ember_e2e::net::poll_until;
use ember_e2e::servers::STARTUP_TIMEOUT;
use ember_e2e::{
    NodeExporter, PromApi, RemoteWriteClient, Sample, TimeSeries, WriteRequest, free_port,
    now_millis, spawn_logged, test_dir, wait_for_http, workspace_root,
};
use serde_json::Value;

/// What Grafana substitutes for its built-in interval variables in this test: a 60 s
/// `timeInterval` (the provisioned data source) gives `$__rate_interval` = 4 × 60 s.
const BUILTINS: &[(&str, &str)] = &[
    ("$__rate_interval", "4m"),
    ("$__interval", "15s"),
    ("$__range", "1h"),
];

/// Expressions that may legitimately be empty with healthy data.
fn empty_by_design(expr: &str) -> bool {
    expr.contains("== 0") || expr.contains("code=~\"5..\"")
}

fn write_cloudwatch_series(ember: &str) {
    let now = now_millis();
    // Six 1-minute CloudWatch periods, most recent first written last.
    let points = |base: f64| -> Vec<Sample> {
        (0..6)
            .rev()
            .map(|i| Sample::new(now - 5_000 - i * 60_000, base + i as f64))
            .collect()
    };
    let common = [("region", "eu-west-1"), ("account_id", "123456789012")];
    let mut series = Vec::new();
    for db in ["orders-db", "users-db"] {
        for (name, base) in [
            ("aws_rds_cpuutilization_average", 35.0),
            ("aws_rds_freeable_memory_average", 2.0e9),
            ("aws_rds_database_connections_average", 42.0),
        ] {
            let mut labels = vec![("__name__", name), ("dbinstance_identifier", db)];
            labels.extend(common);
            series.push(TimeSeries::new(&labels, points(base)));
        }
    }
    for function in ["checkout", "thumbnailer"] {
        for (name, base) in [
            ("aws_lambda_invocations_sum", 1200.0),
            ("aws_lambda_errors_sum", 3.0),
            ("aws_lambda_throttles_sum", 1.0),
        ] {
            let mut labels = vec![("__name__", name), ("function_name", function)];
            labels.extend(common);
            series.push(TimeSeries::new(&labels, points(base)));
        }
    }
    RemoteWriteClient::new(&format!("{ember}/api/v1/write"))
        .expect("client")
        .push(&WriteRequest {
            timeseries: series,
            metadata: Vec::new(),
        })
        .expect("remote write of CloudWatch-named series");
}

const K6_SCRIPT: &str = r#"
import http from 'k6/http';
import { check } from 'k6';

export const options = {
  scenarios: {
    dashboards: { executor: 'constant-vus', vus: 2, duration: '5s' },
  },
};

export default function () {
  const res = http.get(`http://127.0.0.1:${__ENV.TARGET_PORT}/`, { tags: { name: 'index' } });
  check(res, { 'status is 200': (r) => r.status === 200 });
}
"#;

/// Runs k6 for five seconds against a loopback static server, remote-writing into Ember
/// every second with the trend stats the k6 dashboard shows.
fn run_k6(dir: &Path, ember: &str) {
    let logs = dir.join("logs");
    let site = dir.join("site");
    std::fs::create_dir_all(&site).expect("site dir");
    std::fs::write(site.join("index.html"), "<h1>dashboards</h1>\n").expect("index.html");
    let port = free_port().expect("port");
    let mut server = Command::new(python_bin().expect("python3"));
    server
        .args(["-m", "http.server", "--bind", "127.0.0.1"])
        .arg(port.to_string())
        .arg("--directory")
        .arg(&site);
    let mut server = spawn_logged("http_server", server, &logs).expect("http.server");
    wait_for_http(
        &format!("http://127.0.0.1:{port}/"),
        STARTUP_TIMEOUT,
        Some(&mut server),
    )
    .expect("http.server answers");
    let script = dir.join("k6.js");
    std::fs::write(&script, K6_SCRIPT).expect("k6 script");
    let mut k6 = Command::new(k6_bin().expect("k6"));
    k6.current_dir(dir)
        .args([
            "run",
            "--no-usage-report",
            "--quiet",
            "-o",
            "experimental-prometheus-rw",
        ])
        .arg(&script)
        .env(
            "K6_PROMETHEUS_RW_SERVER_URL",
            format!("{ember}/api/v1/write"),
        )
        .env("K6_PROMETHEUS_RW_PUSH_INTERVAL", "1s")
        .env("K6_PROMETHEUS_RW_TREND_STATS", "p(99),avg,max")
        .env("K6_NO_USAGE_REPORT", "true")
        .env("TARGET_PORT", port.to_string());
    let mut run = spawn_logged("k6", k6, &logs).expect("start k6");
    let status = run
        .wait_timeout(Duration::from_secs(120))
        .unwrap_or_else(|| panic!("k6 did not finish\n{}", run.log_tail(40)));
    assert!(
        status.success(),
        "k6 failed: {status}\n{}",
        run.log_tail(40)
    );
}

/// `label_values(selector, label)` → the values Grafana offers (via
/// `/api/v1/label/<label>/values?match[]=selector`).
fn resolve_variable(api: &PromApi, query: &str, vars: &BTreeMap<String, String>) -> Vec<String> {
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unsupported variable query {query:?}"));
    let (selector, label) = match inner.rsplit_once(',') {
        Some((s, l)) => (Some(substitute(s.trim(), vars)), l.trim()),
        None => (None, inner.trim()),
    };
    let mut params = vec![("start", "0".to_string())];
    if let Some(s) = selector {
        params.push(("match[]", s));
    }
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let data = api
        .get_data(&format!("/api/v1/label/{label}/values"), &params)
        .unwrap_or_else(|e| panic!("variable query {query:?}: {e}"));
    data.as_array()
        .expect("a list")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn substitute(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = expr.to_string();
    for (name, value) in BUILTINS {
        out = out.replace(name, value);
    }
    // Longest names first, so `$job` does not eat the start of `$jobs`.
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        out = out.replace(&format!("${{{name}}}"), &vars[name]);
        out = out.replace(&format!("${name}"), &vars[name]);
    }
    out
}

/// Metric names used as `name{…}` selectors in an expression.
fn selector_metrics(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c == '"' {
            in_string = !in_string;
            i += 1;
            continue;
        }
        if !in_string && (c.is_ascii_alphabetic() || c == '_' || c == ':') {
            let start = i;
            while i < bytes.len()
                && ((bytes[i] as char).is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b':'))
            {
                i += 1;
            }
            if bytes.get(i) == Some(&b'{') {
                out.insert(expr[start..i].to_string());
            }
            continue;
        }
        i += 1;
    }
    out
}

fn start_ember(dir: &Path, node_target: &str) -> (ember_e2e::ProcessGuard, String) {
    let port = free_port().expect("port");
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n  - name: ember-dashboards\n    interval: 1s\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n",
    )
    .expect("rules file");
    // Both notifiers are configured (nothing fires, so nothing is sent; the ports are
    // closed): their counters are exposed with zeros, as the dashboard expects.
    let dead = free_port().expect("port");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"127.0.0.1:{dead}\"]\nscrape_configs:\n  - job_name: ember\n    static_configs:\n      - targets: [\"127.0.0.1:{port}\"]\n  - job_name: node\n    static_configs:\n      - targets: [\"{node_target}\"]\n"
    );
    let config_path = dir.join("ember.yml");
    std::fs::write(&config_path, config).expect("config");
    let am_config = dir.join("alertmanager.yml");
    std::fs::write(
        &am_config,
        format!("route:\n  receiver: hook\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{dead}/hook\n"),
    )
    .expect("alertmanager config");
    let mut command = Command::new(ember_bin(Profile::Debug).expect("ember binary"));
    command
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config_path)
        .arg("--alertmanager.config")
        .arg(&am_config);
    let mut process = spawn_logged("ember", command, &dir.join("logs")).expect("spawn ember");
    let url = format!("http://127.0.0.1:{port}");
    wait_for_http(
        &format!("{url}/-/ready"),
        STARTUP_TIMEOUT,
        Some(&mut process),
    )
    .expect("ember ready");
    (process, url)
}

#[test]
fn every_dashboard_panel_query_evaluates_against_ember() {
    let dir = test_dir("grafana-dashboards").expect("temp dir");
    let node = NodeExporter::start(&dir.path().join("logs")).expect("node_exporter");
    let (_ember, url) = start_ember(dir.path(), &node.target());
    let api = PromApi::new(&url).expect("api");
    write_cloudwatch_series(&url);
    run_k6(dir.path(), &url);

    // One compaction pass (what the server's scheduler runs every 5 minutes), so the
    // compaction panels have data.
    let (status, body) = api
        .post_form_raw("/api/v1/admin/compact", &[])
        .expect("compact");
    assert_eq!(status, 200, "{body}");

    // Wait until scrapes (self and node) and the rule have produced a few samples, and
    // the self-metrics show both kinds of query.
    api.query("up", None).expect("an instant query");
    let now = now_millis() as f64 / 1000.0;
    api.query_range("up", now - 60.0, now, 15.0)
        .expect("a range query");
    poll_until(
        "scraped and recorded data",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let ok = |q: &str| -> ember_e2e::Result<bool> {
                Ok(api
                    .query_vector(q, None)?
                    .first()
                    .is_some_and(|s| s.value >= 1.0))
            };
            Ok((ok("count_over_time(up{job=\"node\"}[1m]) > 3")?
                && ok("count_over_time(ember_samples_ingested_total[1m]) > 3")?
                && ok("count_over_time(job:up:sum[1m]) > 2")?
                && ok("count_over_time(node_cpu_seconds_total[1m]) > 3")?
                && ok("count_over_time(ember_compaction_lag_seconds[1m]) > 3")?)
            .then_some(()))
        },
    )
    .expect("data to query");

    // The self-metrics behind the storage, compaction, notification and cost panels.
    let (_, page) = api.get_raw("/metrics", &[]).expect("/metrics");
    let value = |series: &str| -> f64 {
        page.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{series} not in /metrics:\n{page}"))
    };
    assert_eq!(
        value("ember_compaction_runs_total{result=\"success\"}"),
        1.0
    );
    assert!(value("ember_storage_backend_bytes_total{direction=\"written\",kind=\"hot\"}") > 0.0);
    assert!(value("ember_storage_backend_requests_total{kind=\"blocks\",op=\"list\"}") >= 1.0);
    assert!(value("ember_modeled_request_cost_dollars_total{service=\"dynamodb\"}") > 0.0);
    assert_eq!(
        value("alertmanager_notifications_total{integration=\"webhook\"}"),
        0.0
    );
    assert!(
        page.lines().any(
            |l| l.starts_with("prometheus_rule_evaluations_total{rule_group=\"")
                && l.contains("rules.yml;ember-dashboards\"}")
                && !l.ends_with(" 0")
        ),
        "rule evaluations counted:\n{page}"
    );
    assert!(
        page.lines().any(|l| l
            .starts_with("prometheus_notifications_sent_total{alertmanager=\"http://127.0.0.1:")
            && l.ends_with("/api/v2/alerts\"} 0")),
        "the configured Alertmanager is listed:\n{page}"
    );

    let all_metrics: BTreeSet<String> = api
        .label_values("__name__")
        .expect("metric names")
        .into_iter()
        .collect();

    let dashboards_dir = workspace_root().join("infra/grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dashboards_dir)
        .expect("infra/grafana/dashboards")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "dashboards: {files:?}");

    let end = (now_millis() / 1000) as f64;
    let (start, step) = (end - 600.0, 15.0);
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut with_data = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read dashboard");
        let dash: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display()));
        let title = dash["title"].as_str().unwrap_or("?").to_string();
        assert!(
            dash["uid"].as_str().is_some_and(|u| !u.is_empty()),
            "{title}: uid"
        );

        // Variables, in order (later ones may use earlier ones).
        let mut vars = BTreeMap::new();
        vars.insert("datasource".to_string(), "ember".to_string());
        for v in dash["templating"]["list"].as_array().expect("templating") {
            if v["type"] != "query" {
                continue;
            }
            let name = v["name"].as_str().expect("variable name").to_string();
            let query = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .expect("variable query");
            let values = resolve_variable(&api, query, &vars);
            assert!(
                !values.is_empty(),
                "{title}: variable {name} ({query}) has no values"
            );
            let value = if v["includeAll"] == true {
                v["allValue"].as_str().unwrap_or(".*").to_string()
            } else if name == "job" && values.iter().any(|j| j == "node") {
                "node".to_string()
            } else {
                values[0].clone()
            };
            vars.insert(name, value);
        }

        for panel in dash["panels"].as_array().expect("panels") {
            if panel["type"] == "row" {
                continue;
            }
            let ptitle = panel["title"].as_str().unwrap_or("?");
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{title} / {ptitle}: no targets");
            for t in targets {
                let raw = t["expr"].as_str().expect("expr");
                let expr = substitute(raw, &vars);
                assert!(!expr.contains('$'), "unresolved variable in {expr}");
                let instant = t["instant"] == true;
                let params: Vec<(String, String)> = if instant {
                    vec![
                        ("query".into(), expr.clone()),
                        ("time".into(), end.to_string()),
                    ]
                } else {
                    vec![
                        ("query".into(), expr.clone()),
                        ("start".into(), start.to_string()),
                        ("end".into(), end.to_string()),
                        ("step".into(), step.to_string()),
                    ]
                };
                let path = if instant {
                    "/api/v1/query"
                } else {
                    "/api/v1/query_range"
                };
                // Grafana sends queries by POST (the provisioned httpMethod).
                let pairs: Vec<(&str, &str)> = params
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let (status, body) = api.post_form_raw(path, &pairs).expect("request");
                ran += 1;
                let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                if status != 200 || json["status"] != "success" {
                    failures.push(format!("{title} / {ptitle}: {expr}: HTTP {status} {body}"));
                    continue;
                }
                let result = json["data"]["result"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let metrics = selector_metrics(&expr);
                let data_exists = metrics.iter().all(|m| all_metrics.contains(m));
                if result.is_empty() {
                    if data_exists && !empty_by_design(&expr) {
                        failures.push(format!(
                            "{title} / {ptitle}: {expr}: empty although {metrics:?} exist"
                        ));
                    } else if !data_exists {
                        let missing: Vec<_> = metrics
                            .iter()
                            .filter(|m| !all_metrics.contains(*m))
                            .collect();
                        failures.push(format!(
                            "{title} / {ptitle}: {expr}: no data for {missing:?} in this test"
                        ));
                    }
                } else {
                    with_data += 1;
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing panel queries:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ran >= 40, "only {ran} panel queries found");
    println!("{ran} panel queries ran, {with_data} returned data");
}
