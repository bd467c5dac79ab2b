//! Differential test: a real Alertmanager 0.25 (Debian `prometheus-alertmanager`) and Ember's
//! notifier get the same config and the same alert; the webhook and Slack messages they send
//! to a capture server on loopback must be the same JSON, field by field.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ember_e2e::net::{free_port, wait_for_http};
use ember_e2e::process::spawn_logged;
use ember_rules::MemStateStore;

fn config(base: &str, prefix: &str) -> String {
    format!(
        r##"
route:
  receiver: team-infra
  group_by: [alertname, team]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - matchers: ['severity=~"warning|critical"']
      receiver: team-infra
receivers:
  - name: team-infra
    webhook_configs:
      - url: "{base}/{prefix}webhook"
    slack_configs:
      - api_url: "{base}/{prefix}slack"
        channel: "#alerts"
"##
    )
}

fn alert(starts: &str, ends: &str) -> serde_json::Value {
    serde_json::json!({
        "labels": {"alertname": "HostMemoryUsageHigh", "instance": "node1:9100", "job": "node",
                   "severity": "warning", "team": "infra"},
        "annotations": {"summary": "Memory usage high on node1:9100",
                        "description": "Memory usage is 85% on node1:9100 (threshold 80%)."},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=instance%3Anode_memory_utilisation%3Aratio+%3E+0.80&g0.tab=1",
    })
}

/// Waits until the capture server has a message on `path` (beyond `skip` of them).
async fn wait_msg(cap: &Capture, path: &str, skip: usize) -> serde_json::Value {
    for _ in 0..300 {
        if let Some(c) = cap.all().into_iter().filter(|c| c.path == path).nth(skip) {
            return c.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no message on {path} within 30s: {:?}", cap.all());
}

fn rfc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Every key path with its JSON type, to report shape differences readably.
fn shape(v: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                shape(x, &format!("{at}.{k}"), out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                shape(x, &format!("{at}[{i}]"), out);
            }
        }
        other => out.push(format!(
            "{at}: {}",
            match other {
                serde_json::Value::String(_) => "string",
                serde_json::Value::Number(_) => "number",
                serde_json::Value::Bool(_) => "bool",
                _ => "null",
            }
        )),
    }
}

fn assert_same(what: &str, real: &serde_json::Value, ours: &serde_json::Value) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    shape(real, "", &mut a);
    shape(ours, "", &mut b);
    // Key order inside an object carries no meaning (and serde_json keeps insertion order
    // only when some crate in the build enables `preserve_order`): compare sorted paths.
    a.sort();
    b.sort();
    assert_eq!(a, b, "{what}: JSON shape differs from Alertmanager's");
    assert_eq!(
        real, ours,
        "{what}: values differ\nalertmanager: {real:#}\nember: {ours:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_and_slack_messages_match_alertmanager_0_25() {
    let cap = Capture::start().await;
    let dir = ember_e2e::test_dir("am-diff").expect("dir");
    let port = free_port().expect("port");
    let external = format!("http://127.0.0.1:{port}");
    let cfg_path = dir.path().join("alertmanager.yml");
    std::fs::write(&cfg_path, config(&cap.base, "am-")).expect("write config");
    let mut cmd = Command::new("prometheus-alertmanager");
    cmd.arg(format!("--config.file={}", cfg_path.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--web.external-url={external}"))
        .arg("--cluster.listen-address=");
    let mut am = spawn_logged("alertmanager", cmd, dir.path()).expect("start alertmanager");
    let ready = format!("{external}/-/ready");
    let am = tokio::task::spawn_blocking(move || {
        wait_for_http(&ready, Duration::from_secs(20), Some(&mut am)).map(|()| am)
    })
    .await
    .expect("join")
    .expect("alertmanager ready");

    let now = chrono::Utc::now().timestamp_millis();
    let starts = rfc(now - 5 * 60_000 - 123);
    let firing = alert(&starts, &rfc(now + 4 * 60_000));
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        let http = http.clone();
        let url = format!("{external}/api/v2/alerts");
        async move {
            let r = http
                .post(url)
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("post alerts");
            assert_eq!(r.status(), 200);
        }
    };
    post(serde_json::json!([firing.clone()])).await;
    let am_hook = wait_msg(&cap, "am-webhook", 0).await;
    let am_slack = wait_msg(&cap, "am-slack", 0).await;

    // Ember: same config, same alert, same external URL.
    let cfg = ember_alertmanager::Config::from_yaml(&config(&cap.base, "ember-")).expect("cfg");
    let n = Arc::new(
        ember_alertmanager::Notifier::from_config(
            &cfg,
            &[],
            Arc::new(MemStateStore::new()),
            &external,
        )
        .expect("notifier"),
    );
    let as_postable = |v: &serde_json::Value| ember_rules::PostableAlert {
        labels: serde_json::from_value(v["labels"].clone()).expect("labels"),
        annotations: serde_json::from_value(v["annotations"].clone()).expect("annotations"),
        starts_at: v["startsAt"].as_str().unwrap_or_default().to_string(),
        ends_at: v["endsAt"].as_str().unwrap_or_default().to_string(),
        generator_url: v["generatorURL"].as_str().unwrap_or_default().to_string(),
    };
    n.receive(vec![as_postable(&firing)]);
    let r = n.flush(now).await.expect("flush");
    assert_eq!(r.sent, 2, "{r:?}");
    let ours_hook = wait_msg(&cap, "ember-webhook", 0).await;
    let ours_slack = wait_msg(&cap, "ember-slack", 0).await;
    assert_same("webhook (firing)", &am_hook, &ours_hook);
    assert_same("slack (firing)", &am_slack, &ours_slack);

    // Resolved: the webhook sends it (send_resolved defaults to true), Slack does not.
    let resolved = alert(&starts, &rfc(chrono::Utc::now().timestamp_millis() - 1000));
    post(serde_json::json!([resolved.clone()])).await;
    let am_hook2 = wait_msg(&cap, "am-webhook", 1).await;
    n.receive(vec![as_postable(&resolved)]);
    let r = n.flush(now + 2_000).await.expect("flush");
    assert_eq!(r.sent, 1, "{r:?}");
    let ours_hook2 = wait_msg(&cap, "ember-webhook", 1).await;
    assert_same("webhook (resolved)", &am_hook2, &ours_hook2);
    // Give Alertmanager time for a (wrong) resolved Slack message, then check there is none.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let count = |p: &str| cap.all().iter().filter(|c| c.path == p).count();
    assert_eq!((count("am-slack"), count("ember-slack")), (1, 1));
    drop(am);
}
