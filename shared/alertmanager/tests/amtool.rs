//! Alertmanager's own client, `amtool` 0.25 (Debian `prometheus-alertmanager`), against
//! Ember's `/api/v2/silences`: add, query (with a matcher filter), expire.

use std::sync::Arc;

use ember_alertmanager::Silences;
use ember_rules::MemStateStore;

async fn amtool(url: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new("amtool");
    cmd.arg(format!("--alertmanager.url={url}")).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run amtool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_adds_queries_and_expires_silences() {
    let silences = Silences::new(Arc::new(MemStateStore::new()));
    let app = ember_alertmanager::api::router(silences.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let (ok, id, err) = amtool(
        &url,
        &[
            "silence",
            "add",
            "alertname=HostMemoryUsageHigh",
            "instance=~node1.*",
            "--comment=maintenance",
            "--author=ops",
            "--duration=2h",
        ],
    )
    .await;
    assert!(ok, "amtool silence add: {err}");
    assert_eq!(id.len(), 36, "amtool printed the new id: {id:?}");
    let stored = silences.get(&id).await.expect("get").expect("stored");
    assert_eq!(stored.created_by, "ops");
    assert_eq!(stored.matchers.len(), 2);
    assert!(
        stored
            .matchers
            .iter()
            .any(|m| m.is_regex && m.value == "node1.*")
    );
    assert!((stored.ends_at - stored.starts_at - 2 * 3_600_000).abs() < 5_000);

    let (ok, out, err) = amtool(
        &url,
        &[
            "silence",
            "query",
            "-o",
            "json",
            "alertname=HostMemoryUsageHigh",
        ],
    )
    .await;
    assert!(ok, "amtool silence query: {err}");
    let listed: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"]["state"], "active");
    let (ok, out, _) = amtool(&url, &["silence", "query", "-q", "alertname=Other"]).await;
    assert!(ok);
    assert_eq!(out, "", "no silence matches another alertname");

    let (ok, _, err) = amtool(&url, &["silence", "expire", &id]).await;
    assert!(ok, "amtool silence expire: {err}");
    let (ok, out, _) = amtool(&url, &["silence", "query", "-q"]).await;
    assert!(ok);
    assert_eq!(out, "", "expired silences are not listed by default");
    let (ok, out, _) = amtool(&url, &["silence", "query", "-q", "--expired"]).await;
    assert!(ok);
    assert_eq!(out, id);
    server.abort();
}
