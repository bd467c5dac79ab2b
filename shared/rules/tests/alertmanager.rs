//! A real Alertmanager 0.25 (Debian `prometheus-alertmanager`) receives Ember's alerts.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use ember_rules::{AlertingConfig, ManagerOptions, MemStateStore, Notifier};
use ember_storage::MemStorage;

const BIN: &str = "prometheus-alertmanager";

/// Stops the Alertmanager by PID when dropped.
struct AmGuard {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for AmGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(BIN);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{BIN}` not found on PATH: install it with \
         `apt-get install -y --no-install-recommends prometheus-alertmanager` (Debian, Alertmanager 0.25)"
    );
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

async fn start_alertmanager() -> AmGuard {
    let bin = find_binary();
    for _ in 0..5 {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("alertmanager.yml");
        std::fs::write(
            &cfg,
            "route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 5s\nreceivers:\n  - name: blackhole\n",
        )
        .expect("write config");
        let port = free_port();
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn alertmanager");
        let mut guard = AmGuard {
            child,
            port,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let ready = client
                .get(format!("http://127.0.0.1:{port}/-/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return guard;
            }
            if let Ok(Some(_)) = guard.child.try_wait() {
                break; // exited (port taken?): retry on another port
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("alertmanager did not become ready on 127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_receives_ember_alerts() {
    let am = start_alertmanager().await;
    // Real time, so Alertmanager treats endsAt (now + 4m) as in the future.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let t0 = now - now % 30_000 - 7 * 60_000;
    let storage = Arc::new(MemStorage::new());
    generate(&storage, t0);
    let opts = ManagerOptions {
        external_labels: BTreeMap::from([("cluster".to_string(), "eu-1".to_string())]),
        external_url: "http://ember.test:9090".into(),
        ..ManagerOptions::default()
    };
    let mgr = manager(storage, Arc::new(MemStateStore::new()), opts.clone());
    let alerting = serde_json::json!({
        "alert_relabel_configs": [{"action": "replace", "target_label": "via", "replacement": "ember"}],
        "alertmanagers": [{"static_configs": [{"targets": [format!("127.0.0.1:{}", am.port)]}],
                            "api_version": "v2", "timeout": "5s"}]
    });
    let ac = AlertingConfig::from_value(&alerting).expect("alerting config");
    mgr.set_notifier(Some(
        Notifier::new(&ac, opts.external_labels.clone()).expect("notifier"),
    ));
    let key = group_key();
    let mut t = t0 + 4 * 60_000;
    let mut last = None;
    while t <= t0 + 7 * 60_000 {
        last = Some(mgr.evaluate_group_at(&key, t).await.expect("eval"));
        t += 30_000;
    }
    let last = last.expect("evaluated");
    let send = last.send.expect("sent to alertmanager");
    assert!(send.errors.is_empty(), "send errors: {:?}", send.errors);
    assert_eq!(send.ok, 1);
    let am_url = format!("http://127.0.0.1:{}/api/v2/alerts", am.port);
    let counts = mgr.notification_counts();
    assert!(counts[&am_url].sent >= 1, "{counts:?}");
    assert_eq!(counts[&am_url].errors, 0, "{counts:?}");

    // An Alertmanager that is down: the failed POST is counted, the earlier counts stay.
    let dead = free_port();
    let ac_dead = AlertingConfig::from_value(&serde_json::json!({
        "alertmanagers": [{"static_configs": [{"targets": [format!("127.0.0.1:{dead}")]}], "timeout": "2s"}]
    }))
    .expect("alerting config");
    mgr.set_notifier(Some(
        Notifier::new(&ac_dead, opts.external_labels.clone()).expect("notifier"),
    ));
    let again = mgr.evaluate_group_at(&key, t + 90_000).await.expect("eval");
    assert_eq!(again.send.map(|s| s.errors.len()), Some(1));
    let after = mgr.notification_counts();
    let dead_url = format!("http://127.0.0.1:{dead}/api/v2/alerts");
    assert_eq!(after[&dead_url].errors, 1, "{after:?}");
    assert_eq!(
        after[&am_url], counts[&am_url],
        "counts survive a notifier swap"
    );

    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/api/v2/alerts", am.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    let alerts = loop {
        let body = client
            .get(&url)
            .send()
            .await
            .expect("GET alerts")
            .text()
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        if v.as_array().is_some_and(|a| !a.is_empty()) || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let list = alerts.as_array().expect("array");
    assert_eq!(
        list.len(),
        1,
        "only the firing warning (critical is still pending): {alerts}"
    );
    let a = &list[0];
    let labels = &a["labels"];
    assert_eq!(labels["alertname"], "HostMemoryUsageHigh");
    assert_eq!(labels["severity"], "warning");
    assert_eq!(labels["instance"], "node1:9100");
    assert_eq!(labels["job"], "node");
    assert_eq!(labels["team"], "infra");
    assert_eq!(labels["cluster"], "eu-1", "external labels added");
    assert_eq!(labels["via"], "ember", "alert_relabel_configs applied");
    assert_eq!(
        a["annotations"]["summary"],
        "Memory usage high on node1:9100"
    );
    assert_eq!(
        a["annotations"]["description"],
        "Memory usage is 95% on node1:9100 (threshold 80%)."
    );
    assert_eq!(a["status"]["state"], "active");
    assert!(
        a["generatorURL"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://ember.test:9090/graph?g0.expr="))
    );
    assert_eq!(
        a["startsAt"]
            .as_str()
            .map(|s| s.starts_with(&ember_rules::manager::rfc3339(t0 + 7 * 60_000)[..19])),
        Some(true)
    );
}
