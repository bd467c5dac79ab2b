//! Scraping real peers on 127.0.0.1: node_exporter, a down target, and a test target
//! whose series change, into `MemStorage`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use ember_config::Config;
use ember_model::is_stale_nan;
use ember_scrape::{ScrapeManager, ScrapeOptions, ScrapeState};
use ember_storage::MemStorage;

fn manager(yaml: &str, store: &Arc<MemStorage>) -> ScrapeManager {
    let cfg =
        Config::from_yaml(yaml, Path::new("test.yml")).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    ScrapeManager::new(&cfg, store.clone(), ScrapeOptions::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_exporter_is_scraped_with_job_and_instance_labels() {
    let Some(bin) = find_program(
        "EMBER_NODE_EXPORTER",
        "prometheus-node-exporter",
        &["/usr/bin/prometheus-node-exporter"],
    ) else {
        panic!(
            "prometheus-node-exporter not found: install it (apt-get install -y --no-install-recommends prometheus-node-exporter) \
             or set EMBER_NODE_EXPORTER to its path"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let _node = ChildGuard::spawn(
        &bin,
        &[&listen, "--no-collector.systemd"],
        &dir.path().join("node.log"),
    );
    wait_for_port(port, Duration::from_secs(15));

    let store = Arc::new(MemStorage::new());
    let yaml = format!(
        "global: {{scrape_interval: 15s, external_labels: {{cluster: test}}}}\nscrape_configs:\n  - job_name: node\n    static_configs: [{{targets: ['127.0.0.1:{port}'], labels: {{role: host}}}}]\n"
    );
    let m = manager(&yaml, &store);
    let r = m.scrape_job_once("node").await.unwrap();
    assert_eq!((r.scraped, r.failed), (1, 0), "{:?}", m.targets());
    let instance = format!("127.0.0.1:{port}");
    assert_eq!(
        last_value(
            &store,
            &[("__name__", "up"), ("job", "node"), ("instance", &instance)]
        ),
        1.0
    );
    let scraped = last_value(
        &store,
        &[("__name__", "scrape_samples_scraped"), ("job", "node")],
    );
    assert!(
        scraped > 100.0,
        "node_exporter exposes hundreds of samples, got {scraped}"
    );
    assert_eq!(
        last_value(
            &store,
            &[("__name__", "scrape_series_added"), ("job", "node")]
        ),
        scraped
    );
    assert!(
        last_value(
            &store,
            &[("__name__", "scrape_duration_seconds"), ("job", "node")]
        ) > 0.0
    );
    let cpu = select(
        &store,
        &[
            ("__name__", "node_cpu_seconds_total"),
            ("job", "node"),
            ("instance", &instance),
            ("role", "host"),
        ],
    );
    assert!(
        !cpu.is_empty(),
        "node_cpu_seconds_total with job/instance/role labels"
    );
    assert!(cpu.iter().all(|s| s.labels.get("cluster") == Some("test")
        && s.labels.get("cpu").is_some()
        && s.labels.get("mode").is_some()));
    assert!(
        !select(
            &store,
            &[("__name__", "node_memory_MemTotal_bytes"), ("job", "node")]
        )
        .is_empty()
    );
    let targets = m.targets();
    let t = &targets.active_targets[0];
    assert_eq!(
        (
            t.health.as_str(),
            t.scrape_pool.as_str(),
            t.last_error.as_str()
        ),
        ("up", "node", "")
    );
    assert_eq!(t.scrape_url, format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(t.labels.get("instance"), Some(&instance));
    assert_eq!(t.discovered_labels.get("__address__"), Some(&instance));
    assert_eq!(t.scrape_interval, "15s");
    // A second scrape adds no new series.
    m.scrape_job_once("node").await.unwrap();
    assert!(
        last_value(
            &store,
            &[("__name__", "scrape_series_added"), ("job", "node")]
        ) < 10.0
    );
}

#[tokio::test]
async fn a_down_target_reports_up_0_and_the_error() {
    let store = Arc::new(MemStorage::new());
    let port = free_port(); // nothing listens here
    let m = manager(
        &format!(
            "scrape_configs:\n  - job_name: down\n    scrape_timeout: 2s\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        ),
        &store,
    );
    let r = m.scrape_job_once("down").await.unwrap();
    assert_eq!((r.scraped, r.failed), (1, 1));
    assert_eq!(
        last_value(&store, &[("__name__", "up"), ("job", "down")]),
        0.0
    );
    assert_eq!(
        last_value(
            &store,
            &[("__name__", "scrape_samples_scraped"), ("job", "down")]
        ),
        0.0
    );
    let targets = m.targets();
    let json = serde_json::to_value(&targets).unwrap();
    let t = &json["activeTargets"][0];
    assert_eq!(t["health"], "down");
    let err = t["lastError"].as_str().unwrap();
    assert!(
        err.contains("127.0.0.1") && !err.is_empty(),
        "lastError: {err}"
    );
    assert_ne!(t["lastScrape"], "0001-01-01T00:00:00Z");
}

#[tokio::test]
async fn vanished_series_get_stale_markers_and_bad_pages_store_nothing() {
    let target = TestTarget::start(Reply::text(
        "# TYPE jobs gauge\njobs{queue=\"a\"} 1\njobs{queue=\"b\"} 2\n",
    ))
    .await;
    let store = Arc::new(MemStorage::new());
    let m = manager(
        &format!(
            "scrape_configs:\n  - job_name: app\n    static_configs: [{{targets: ['{}']}}]\n",
            target.address
        ),
        &store,
    );
    m.scrape_job_once("app").await.unwrap();
    assert_eq!(
        last_value(&store, &[("__name__", "jobs"), ("queue", "b")]),
        2.0
    );

    // Series b vanishes: it gets a staleness marker at the next scrape; a stays.
    target.set(Reply::text("jobs{queue=\"a\"} 3\n"));
    tokio::time::sleep(Duration::from_millis(5)).await;
    m.scrape_job_once("app").await.unwrap();
    let b = select(&store, &[("__name__", "jobs"), ("queue", "b")]);
    let last_b = b[0].samples.last().unwrap();
    assert!(
        is_stale_nan(last_b.v),
        "vanished series ends in a staleness marker: {:?}",
        b[0].samples
    );
    let a = select(&store, &[("__name__", "jobs"), ("queue", "a")]);
    assert_eq!(a[0].samples.last().unwrap().v, 3.0);
    // The marker is at the same timestamp as the new samples, so an instant query at or
    // after this scrape no longer returns b (Prometheus drops series whose newest sample
    // in the lookback window is a staleness marker).
    assert_eq!(last_b.t, a[0].samples.last().unwrap().t);
    assert_eq!(
        last_value(
            &store,
            &[("__name__", "scrape_series_added"), ("job", "app")]
        ),
        0.0
    );

    // A bad page: whole scrape invalid, up = 0, lastError has the line, nothing half-stored.
    target.set(Reply::text(
        "jobs{queue=\"a\"} 4\njobs{queue=\"c\"} 5\njobs{queue=\"d\" 6\n",
    ));
    tokio::time::sleep(Duration::from_millis(5)).await;
    m.scrape_job_once("app").await.unwrap();
    assert_eq!(
        last_value(&store, &[("__name__", "up"), ("job", "app")]),
        0.0
    );
    assert!(
        select(&store, &[("__name__", "jobs"), ("queue", "c")]).is_empty(),
        "nothing of a bad page is stored"
    );
    let a = select(&store, &[("__name__", "jobs"), ("queue", "a")]);
    assert!(
        is_stale_nan(a[0].samples.last().unwrap().v),
        "a failed scrape makes the previous series stale"
    );
    let t = &m.targets().active_targets[0];
    assert_eq!(t.health, "down");
    assert!(
        t.last_error.contains("line 3"),
        "lastError: {}",
        t.last_error
    );

    // Recovery.
    target.set(Reply::text("jobs{queue=\"a\"} 7\n"));
    tokio::time::sleep(Duration::from_millis(5)).await;
    m.scrape_job_once("app").await.unwrap();
    assert_eq!(
        last_value(&store, &[("__name__", "jobs"), ("queue", "a")]),
        7.0
    );
    assert_eq!(
        last_value(&store, &[("__name__", "up"), ("job", "app")]),
        1.0
    );
}

#[tokio::test]
async fn auth_gzip_openmetrics_params_and_limits() {
    let om = "# TYPE req counter\nreq_total{code=\"200\"} 5 # {trace_id=\"x\"} 1\nreq_created{code=\"200\"} 1700000000\n# EOF\n";
    let target = TestTarget::start(Reply {
        status: 200,
        content_type: Some("application/openmetrics-text; version=1.0.0; charset=utf-8".into()),
        body: gzip(om.as_bytes()),
        gzip: true,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let store = Arc::new(MemStorage::new());
    let yaml = format!(
        "scrape_configs:\n  - job_name: om\n    metrics_path: /actuator/prometheus\n    params: {{module: [x]}}\n    authorization: {{credentials_file: '{}'}}\n    static_configs: [{{targets: ['{}']}}]\n  - job_name: basic\n    basic_auth: {{username: u, password: p}}\n    sample_limit: 1\n    static_configs: [{{targets: ['{}']}}]\n",
        token.display(),
        target.address,
        target.address
    );
    let m = manager(&yaml, &store);
    m.scrape_job_once("om").await.unwrap();
    assert_eq!(
        last_value(&store, &[("__name__", "req_total"), ("code", "200")]),
        5.0
    );
    assert_eq!(
        last_value(&store, &[("__name__", "req_created"), ("code", "200")]),
        1.7e9
    );
    let head = target.requests().pop().unwrap();
    let lower = head.to_ascii_lowercase();
    assert!(
        head.starts_with("GET /actuator/prometheus?module=x HTTP/1.1"),
        "{head}"
    );
    assert!(lower.contains("authorization: bearer s3cret"), "{head}");
    assert!(
        lower.contains("accept: application/openmetrics-text;version=1.0.0"),
        "{head}"
    );
    assert!(lower.contains("accept-encoding: gzip"), "{head}");
    assert!(
        lower.contains("x-prometheus-scrape-timeout-seconds: 10"),
        "{head}"
    );

    // sample_limit 1 < 2 samples: the scrape fails and nothing is stored for job basic.
    let r = m.scrape_job_once("basic").await.unwrap();
    assert_eq!(r.failed, 1);
    let head = target.requests().pop().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: basic dtpw"),
        "{head}"
    );
    assert!(select(&store, &[("__name__", "req_total"), ("job", "basic")]).is_empty());
    let t = m
        .targets()
        .active_targets
        .into_iter()
        .find(|t| t.scrape_pool == "basic")
        .unwrap();
    assert!(t.last_error.contains("sample limit"), "{}", t.last_error);
}

#[tokio::test]
async fn body_size_limit_and_http_errors_fail_the_scrape() {
    let target = TestTarget::start(Reply::text(&"m 1\n".repeat(1000))).await;
    let store = Arc::new(MemStorage::new());
    let yaml = format!(
        "scrape_configs:\n  - job_name: big\n    body_size_limit: 1KB\n    static_configs: [{{targets: ['{}']}}]\n",
        target.address
    );
    let m = manager(&yaml, &store);
    m.scrape_job_once("big").await.unwrap();
    assert!(
        m.targets().active_targets[0]
            .last_error
            .contains("body size limit")
    );
    target.set(Reply {
        status: 503,
        ..Reply::text("")
    });
    m.scrape_job_once("big").await.unwrap();
    assert!(
        m.targets().active_targets[0].last_error.contains("503"),
        "{}",
        m.targets().active_targets[0].last_error
    );
    assert_eq!(last_value(&store, &[("__name__", "up")]), 0.0);
}

#[tokio::test]
async fn a_vanished_target_gets_stale_markers_and_state_survives_invocations() {
    let t1 = TestTarget::start(Reply::text("m{k=\"1\"} 1\n")).await;
    let t2 = TestTarget::start(Reply::text("m{k=\"2\"} 2\n")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("targets.json");
    std::fs::write(
        &file,
        format!(
            r#"[{{"targets": ["{}", "{}"], "labels": {{"env": "dev"}}}}]"#,
            t1.address, t2.address
        ),
    )
    .unwrap();
    let store = Arc::new(MemStorage::new());
    let yaml = format!(
        "scrape_configs:\n  - job_name: fsd\n    file_sd_configs: [{{files: ['{}'], refresh_interval: 1ms}}]\n",
        dir.path().join("*.json").display()
    );
    // "Invocation" 1.
    let m1 = manager(&yaml, &store);
    let r = m1.scrape_job_once("fsd").await.unwrap();
    assert_eq!(r.scraped, 2);
    let saved: Vec<u8> = m1.export_state().to_json().unwrap();
    drop(m1);

    // Target 2 disappears from the file; a fresh manager ("invocation" 2) restores the state.
    std::fs::write(
        &file,
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"env": "dev"}}}}]"#,
            t1.address
        ),
    )
    .unwrap();
    let m2 = manager(&yaml, &store);
    m2.import_state(ScrapeState::from_json(&saved).unwrap());
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = m2.scrape_job_once("fsd").await.unwrap();
    assert_eq!((r.scraped, r.vanished), (1, 1));
    let gone = select(&store, &[("__name__", "m"), ("k", "2")]);
    assert!(
        is_stale_nan(gone[0].samples.last().unwrap().v),
        "series of a vanished target go stale"
    );
    let up2 = select(&store, &[("__name__", "up"), ("instance", &t2.address)]);
    assert!(
        is_stale_nan(up2[0].samples.last().unwrap().v),
        "report series of a vanished target go stale"
    );
    assert_eq!(
        last_value(&store, &[("__name__", "m"), ("k", "1"), ("env", "dev")]),
        1.0
    );
    assert_eq!(m2.targets().active_targets.len(), 1);
}

#[tokio::test]
async fn run_pass_loops_sub_minute_intervals_aligned() {
    let target = TestTarget::start(Reply::text("m 1\n")).await;
    let store = Arc::new(MemStorage::new());
    let yaml = format!(
        "scrape_configs:\n  - job_name: fast\n    scrape_interval: 1s\n    scrape_timeout: 500ms\n    static_configs: [{{targets: ['{}']}}]\n  - job_name: dropped\n    relabel_configs: [{{action: drop, source_labels: [__address__], regex: '.*'}}]\n    static_configs: [{{targets: ['127.0.0.1:1']}}]\n",
        target.address
    );
    let m = manager(&yaml, &store);
    let until = SystemTime::now() + Duration::from_millis(2600);
    let report = m.run_pass(until).await;
    assert!((2..=4).contains(&report.scraped), "{report:?}");
    let ups = select(&store, &[("__name__", "up"), ("job", "fast")]);
    let ts: Vec<i64> = ups[0].samples.iter().map(|s| s.t).collect();
    // After the catch-up scrape, scrapes start on second boundaries.
    assert!(ts.iter().skip(1).all(|t| t % 1000 < 400), "aligned: {ts:?}");
    // A second pass in the same interval does not re-scrape the boundary already handled.
    let again = m.run_pass(SystemTime::now()).await;
    assert_eq!(again.scraped, 0);
    let targets = m.targets();
    assert_eq!(targets.dropped_targets.len(), 1);
    assert_eq!(targets.dropped_target_counts.get("dropped"), Some(&1));
    assert_eq!(
        targets.dropped_targets[0]
            .discovered_labels
            .get("__address__")
            .map(String::as_str),
        Some("127.0.0.1:1")
    );
}

#[tokio::test]
async fn serve_scheduler_runs_and_stops_on_shutdown() {
    let target = TestTarget::start(Reply::text("m 1\n")).await;
    let store = Arc::new(MemStorage::new());
    let yaml = format!(
        "scrape_configs:\n  - job_name: s\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs: [{{targets: ['{}']}}]\n",
        target.address
    );
    let m = manager(&yaml, &store);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn({
        let m = m.clone();
        async move {
            m.run(async {
                let _ = rx.await;
            })
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("run stops on shutdown")
        .unwrap();
    let n = select(&store, &[("__name__", "up"), ("job", "s")])[0]
        .samples
        .len();
    assert!((2..=4).contains(&n), "scrapes in 2.3 s at 1 s: {n}");
}
