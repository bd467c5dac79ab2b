//! SNS receivers against a real moto server: the notifier publishes with a SigV4-signed
//! Query API `Publish` (ember-aws-query); moto
//! delivers the message to an HTTP subscription on our capture server.
//! Compiled with the `sns` feature (on in the workspace through the rules function).
#![cfg(feature = "sns")]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ember_e2e::net::free_port;
use ember_e2e::process::spawn_logged;
use ember_rules::MemStateStore;

fn moto_binary() -> PathBuf {
    if let Ok(p) = std::env::var("EMBER_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server")
}

/// One unsigned Query-API call to moto (test setup only; the notifier signs its own).
async fn sns_call(endpoint: &str, params: &[(&str, &str)]) -> String {
    let body: String = params
        .iter()
        .map(|(k, v)| format!("{k}={}", ember_rules::template::url_query_escape(v)))
        .collect::<Vec<_>>()
        .join("&");
    reqwest::Client::new()
        .post(endpoint)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=x",
        )
        .body(body)
        .send()
        .await
        .expect("moto call")
        .text()
        .await
        .expect("moto body")
}

#[tokio::test]
async fn sns_publish_reaches_the_topic() {
    let dir = ember_e2e::test_dir("sns-moto").expect("dir");
    let port = free_port().expect("port");
    let mut cmd = Command::new(moto_binary());
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    let _moto = spawn_logged("moto", cmd, dir.path()).expect("start moto");
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "moto did not start");
    // SAFETY: this test binary has one test; nothing else reads the environment meanwhile.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    }
    let created = sns_call(
        &endpoint,
        &[
            ("Action", "CreateTopic"),
            ("Name", "alerts"),
            ("Version", "2010-03-31"),
        ],
    )
    .await;
    let arn = created
        .split("<TopicArn>")
        .nth(1)
        .and_then(|s| s.split("</TopicArn>").next())
        .expect("topic arn")
        .to_string();
    let cap = Capture::start().await;
    sns_call(
        &endpoint,
        &[
            ("Action", "Subscribe"),
            ("TopicArn", &arn),
            ("Protocol", "http"),
            ("Endpoint", &format!("{}/sns", cap.base)),
            ("Version", "2010-03-31"),
        ],
    )
    .await;

    let yaml = format!(
        "route: {{receiver: sns, group_by: [alertname], group_wait: 0s}}\nreceivers:\n  - name: sns\n    sns_configs:\n      - topic_arn: '{arn}'\n        attributes: {{team: infra}}\n"
    );
    let cfg = ember_alertmanager::Config::from_yaml(&yaml).expect("config");
    let n = Arc::new(
        ember_alertmanager::Notifier::from_config(
            &cfg,
            &[],
            Arc::new(MemStateStore::new()),
            "http://ember",
        )
        .expect("notifier"),
    );
    let now = chrono::Utc::now();
    n.receive(vec![ember_rules::PostableAlert {
        labels: [
            ("alertname".to_string(), "HostMemoryUsageHigh".to_string()),
            ("instance".to_string(), "node1:9100".to_string()),
        ]
        .into(),
        annotations: [("summary".to_string(), "Memory usage high".to_string())].into(),
        starts_at: (now - chrono::Duration::minutes(1)).to_rfc3339(),
        ends_at: (now + chrono::Duration::minutes(4)).to_rfc3339(),
        generator_url: "http://ember/graph".into(),
    }]);
    let r = n.flush(now.timestamp_millis()).await.expect("flush");
    assert_eq!(r.sent, 1, "{r:?}");
    let mut msg = None;
    for _ in 0..100 {
        if let Some(c) = cap.all().into_iter().find(|c| c.path == "sns") {
            msg = Some(c.body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let msg = msg.expect("moto delivered the SNS message to the HTTP subscription");
    assert_eq!(msg["TopicArn"], arn.as_str());
    // Alertmanager's default SNS subject and message.
    assert_eq!(
        msg["Subject"],
        "[FIRING:1] HostMemoryUsageHigh (node1:9100)"
    );
    let text = msg["Message"].as_str().unwrap_or_default();
    assert!(text.starts_with("Memory usage high\nAlerts Firing:\nLabels:\n - alertname = HostMemoryUsageHigh\n - instance = node1:9100\n"), "{text}");
    assert!(text.contains("Source: http://ember/graph"), "{text}");
    // (The `team` attribute is part of the signed Publish, which moto validated; its HTTP
    // deliveries do not carry message attributes, so they are not asserted here.)
    assert_eq!(n.notification_counts()["sns"].total, 1);
}
