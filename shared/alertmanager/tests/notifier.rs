//! The serverless notifier end to end: the seeds' memory rules evaluated by the RuleManager,
//! alerts handed over through the `AlertSink` hook, messages captured on loopback.

mod common;

use std::sync::Arc;

use common::*;
use ember_rules::{MemStateStore, RuleStateStore};
use ember_storage::MemStorage;
use ember_storage::state::{FileStateStore, StateStore};

const T0: i64 = 1_699_999_980_000; // a whole minute

const GROUPED: &str = r##"
route:
  receiver: team
  group_by: [team]
  group_wait: 30s
  group_interval: 1m
  repeat_interval: 2m
receivers:
  - name: team
    webhook_configs:
      - url: "{{BASE}}/webhook"
    slack_configs:
      - api_url: "{{BASE}}/slack"
        channel: "#alerts"
        send_resolved: true
        text: '{{ range .Alerts }}{{ .Annotations.summary }} ({{ .Status }}){{ "\n" }}{{ end }}'
"##;

fn setup(t0: i64) -> (Arc<MemStorage>, ember_rules::RuleManager) {
    let storage = Arc::new(MemStorage::new());
    generate(&storage, t0);
    let store: Arc<dyn RuleStateStore> = Arc::new(MemStateStore::new());
    let mgr = manager(storage.clone(), store);
    (storage, mgr)
}

#[tokio::test]
async fn grouped_repeated_and_resolved_in_slack_and_webhook_format() {
    let cap = Capture::start().await;
    let (_s, mgr) = setup(T0);
    let n = notifier(GROUPED, &cap.base, Arc::new(MemStateStore::new()));
    mgr.set_sink(Some(n.clone()));
    let got = drive(&mgr, &n, &cap, T0, T0, T0 + 20 * M).await;

    type Msg = (i64, Vec<(String, String)>, String);
    let hooks: Vec<Msg> = got
        .iter()
        .filter(|(_, c)| c.path == "webhook")
        .map(|(t, c)| {
            (
                *t,
                webhook_alerts(&c.body),
                c.body["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let f = |a: &str, s: &str| (a.to_string(), s.to_string());
    let (high, crit) = ("HostMemoryUsageHigh", "HostMemoryUsageCritical");
    // Warning fires at +7m, waits group_wait (30s); critical fires at +8m and joins the same
    // group at the next group_interval (+8m30s: one message, both alerts); critical resolved
    // at +9m (sent at +9m30s); unchanged until repeat_interval (2m → +11m30s); warning
    // resolved at +12m (sent at +12m30s); nothing afterwards (re-sent resolved alerts do not
    // re-notify).
    assert_eq!(
        hooks,
        vec![
            (450, vec![f(high, "firing")], "firing".into()),
            (
                510,
                vec![f(crit, "firing"), f(high, "firing")],
                "firing".into()
            ),
            (
                570,
                vec![f(crit, "resolved"), f(high, "firing")],
                "firing".into()
            ),
            (690, vec![f(high, "firing")], "firing".into()),
            // The rules manager re-sends resolved alerts for 15 minutes (as Prometheus), so
            // the critical one is back in the group, resolved, as it would be in Alertmanager.
            (
                750,
                vec![f(crit, "resolved"), f(high, "resolved")],
                "resolved".into()
            ),
        ]
    );
    let second = &got
        .iter()
        .find(|(t, c)| *t == 510 && c.path == "webhook")
        .expect("msg")
        .1
        .body;
    assert_eq!(second["version"], "4");
    assert_eq!(second["receiver"], "team");
    assert_eq!(second["groupKey"], r#"{}:{team="infra"}"#);
    assert_eq!(second["groupLabels"], serde_json::json!({"team": "infra"}));
    assert_eq!(second["commonLabels"]["instance"], "node1:9100");
    assert!(second["commonLabels"].get("severity").is_none());
    assert_eq!(second["truncatedAlerts"], 0);
    assert_eq!(second["externalURL"], "http://ember.example:9090");
    let a0 = &second["alerts"][0];
    assert_eq!(a0["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(a0["fingerprint"].as_str().map(str::len), Some(16));
    assert!(
        a0["generatorURL"]
            .as_str()
            .unwrap_or("")
            .contains("/graph?g0.expr=")
    );
    assert!(
        a0["annotations"]["summary"]
            .as_str()
            .unwrap_or("")
            .starts_with("Memory usage")
    );

    // Slack: same cadence (send_resolved set), Alertmanager's default title, our text.
    let slack: Vec<(i64, &serde_json::Value)> = got
        .iter()
        .filter(|(_, c)| c.path == "slack")
        .map(|(t, c)| (*t, &c.body))
        .collect();
    let times: Vec<i64> = slack.iter().map(|s| s.0).collect();
    assert_eq!(times, vec![450, 510, 570, 690, 750]);
    let m = slack[1].1;
    assert_eq!(m["channel"], "#alerts");
    assert_eq!(m["username"], "Alertmanager");
    let att = &m["attachments"][0];
    assert_eq!(att["title"], "[FIRING:2] infra (node1:9100 node)");
    assert_eq!(att["color"], "danger");
    assert_eq!(
        att["title_link"],
        "http://ember.example:9090/#/alerts?receiver=team"
    );
    assert_eq!(
        att["text"],
        "Memory usage critical on node1:9100 (firing)\nMemory usage high on node1:9100 (firing)\n"
    );
    let last = &slack[4].1["attachments"][0];
    assert_eq!(last["color"], "good");
    assert!(
        last["title"]
            .as_str()
            .unwrap_or("")
            .starts_with("[RESOLVED] infra")
    );
}

#[tokio::test]
async fn critical_inhibits_warning_on_the_same_instance() {
    let cap = Capture::start().await;
    let (_s, mgr) = setup(T0);
    let yaml = r#"
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 30s
  group_interval: 1m
  repeat_interval: 1h
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [instance]
receivers:
  - name: hook
    webhook_configs:
      - url: "{{BASE}}/webhook"
"#;
    let n = notifier(yaml, &cap.base, Arc::new(MemStateStore::new()));
    mgr.set_sink(Some(n.clone()));
    let got = drive(&mgr, &n, &cap, T0, T0, T0 + 11 * M).await;
    let msgs: Vec<(i64, Vec<(String, String)>)> = got
        .iter()
        .map(|(t, c)| (*t, webhook_alerts(&c.body)))
        .collect();
    let f = |a: &str, s: &str| vec![(a.to_string(), s.to_string())];
    // Warning alone at +7m30s; critical at +8m30s mutes the warning (its group's flush at
    // +8m30s sends nothing); critical resolves at +9m, the warning is notified again.
    assert_eq!(
        msgs,
        vec![
            (450, f("HostMemoryUsageHigh", "firing")),
            (510, f("HostMemoryUsageCritical", "firing")),
            (570, f("HostMemoryUsageCritical", "resolved")),
            (570, f("HostMemoryUsageHigh", "firing")),
        ]
    );

    // Without the inhibit rule the warning's group changes nothing at +8m30s either (same
    // firing set), so check muting directly: a flush while critical fires reports it.
    let (_s2, mgr2) = setup(T0);
    let n2 = notifier(yaml, &cap.base, Arc::new(MemStateStore::new()));
    mgr2.set_sink(Some(n2.clone()));
    let key = group_key();
    let mut inhibited = 0;
    let mut t = T0;
    while t <= T0 + 8 * M + 30_000 {
        mgr2.evaluate_group_at(&key, t).await.expect("eval");
        inhibited = n2.flush(t).await.expect("flush").inhibited;
        t += 30_000;
    }
    assert_eq!(
        inhibited, 1,
        "the warning is inhibited while critical fires"
    );
}

#[tokio::test]
async fn silence_via_http_api_mutes_until_expired() {
    let cap = Capture::start().await;
    // Simulated time starts after the wall clock, so silences made now cover it.
    let t0 = minute_from_now(0);
    let (_s, mgr) = setup(t0);
    let yaml = r#"
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 30s
  group_interval: 1m
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: "{{BASE}}/webhook"
"#;
    let store: Arc<dyn StateStore> = Arc::new(MemStateStore::new());
    let n = notifier(yaml, &cap.base, store.clone());
    mgr.set_sink(Some(n.clone()));

    // The silence API on loopback, over the same store.
    let app = ember_alertmanager::api::router(ember_alertmanager::Silences::new(store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let api = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let http = reqwest::Client::new();
    let ends = chrono::DateTime::from_timestamp_millis(t0 + 3_600_000)
        .expect("time")
        .to_rfc3339();
    let body = serde_json::json!({
        "matchers": [{"name": "alertname", "value": "HostMemoryUsageHigh", "isRegex": false, "isEqual": true}],
        "startsAt": chrono::Utc::now().to_rfc3339(),
        "endsAt": ends,
        "createdBy": "test",
        "comment": "maintenance",
    });
    let resp = http
        .post(format!("{api}/api/v2/silences"))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("post silence");
    assert_eq!(resp.status(), 200);
    let created: serde_json::Value =
        serde_json::from_str(&resp.text().await.expect("body")).expect("json");
    let id = created["silenceID"]
        .as_str()
        .expect("silenceID")
        .to_string();
    assert_eq!(id.len(), 36, "uuid: {id}");

    // Invalid silences are refused.
    let bad =
        serde_json::json!({"matchers": [], "startsAt": "2020-01-01T00:00:00Z", "endsAt": ends});
    let r = http
        .post(format!("{api}/api/v2/silences"))
        .body(bad.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);

    // Listed (with a filter that matches and one that does not), and fetched by id.
    let list = |q: &'static str| {
        let http = http.clone();
        let api = api.clone();
        async move {
            let t = http
                .get(format!("{api}/api/v2/silences"))
                .query(&[("filter", q)])
                .send()
                .await
                .expect("list")
                .text()
                .await
                .expect("body");
            serde_json::from_str::<serde_json::Value>(&t).expect("json")
        }
    };
    let l = list(r#"alertname="HostMemoryUsageHigh""#).await;
    assert_eq!(l[0]["id"], id.as_str());
    assert_eq!(l[0]["status"]["state"], "active");
    assert_eq!(l[0]["createdBy"], "test");
    assert_eq!(list(r#"alertname="Other""#).await, serde_json::json!([]));

    // Silenced: warning not notified while critical is.
    let got = drive(&mgr, &n, &cap, t0, t0, t0 + 8 * M).await;
    let names: Vec<(i64, Vec<(String, String)>)> = got
        .iter()
        .map(|(t, c)| (*t, webhook_alerts(&c.body)))
        .collect();
    assert!(
        names.is_empty(),
        "nothing up to +8m (warning silenced, critical still in group_wait): {names:?}"
    );

    // Expire it through the API: the warning is notified at its group's next flush.
    let r = http
        .delete(format!("{api}/api/v2/silence/{id}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 200);
    let one: serde_json::Value = serde_json::from_str(
        &http
            .get(format!("{api}/api/v2/silence/{id}"))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("body"),
    )
    .expect("json");
    assert_eq!(one["status"]["state"], "expired");
    let got = drive(&mgr, &n, &cap, t0, t0 + 8 * M + 30_000, t0 + 9 * M).await;
    let names: Vec<(i64, Vec<(String, String)>)> = got
        .iter()
        .map(|(t, c)| (*t, webhook_alerts(&c.body)))
        .collect();
    assert!(
        names.contains(&(
            510,
            vec![("HostMemoryUsageHigh".to_string(), "firing".to_string())]
        )),
        "warning notified after the silence expired: {names:?}"
    );
    server.abort();
}

#[tokio::test]
async fn state_survives_a_restart_without_renotifying() {
    let cap = Capture::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = r#"
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 30s
  group_interval: 1m
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: "{{BASE}}/webhook"
"#;
    let storage = Arc::new(MemStorage::new());
    generate(&storage, T0);
    let open = || -> Arc<FileStateStore> {
        Arc::new(FileStateStore::new(dir.path().join("state")).expect("store"))
    };
    {
        let store = open();
        let mgr = manager(storage.clone(), store.clone());
        let n = notifier(yaml, &cap.base, store);
        mgr.set_sink(Some(n.clone()));
        let got = drive(&mgr, &n, &cap, T0, T0, T0 + 7 * M + 30_000).await;
        assert_eq!(got.len(), 1, "warning notified once before the restart");
    }
    // "Restart": new manager and notifier over the same files.
    let store = open();
    let mgr = manager(storage.clone(), store.clone());
    mgr.restore_all().await;
    let n = notifier(yaml, &cap.base, store);
    mgr.set_sink(Some(n.clone()));
    let got = drive(&mgr, &n, &cap, T0, T0 + 8 * M, T0 + 8 * M + 30_000).await;
    let names: Vec<(i64, Vec<(String, String)>)> = got
        .iter()
        .map(|(t, c)| (*t, webhook_alerts(&c.body)))
        .collect();
    assert_eq!(
        names,
        vec![(
            510,
            vec![("HostMemoryUsageCritical".to_string(), "firing".to_string())]
        )],
        "only the new critical alert; the warning is not notified again"
    );

    // Control: the same restart with empty notifier state does re-notify the warning.
    let (_s, mgr2) = setup(T0);
    let n2 = notifier(yaml, &cap.base, Arc::new(MemStateStore::new()));
    mgr2.set_sink(Some(n2.clone()));
    let key = group_key();
    let mut t = T0;
    while t < T0 + 8 * M {
        mgr2.evaluate_group_at(&key, t).await.expect("eval");
        t += 30_000;
    }
    mgr2.evaluate_group_at(&key, T0 + 8 * M)
        .await
        .expect("eval");
    let before = cap.all().len();
    n2.flush(T0 + 8 * M).await.expect("flush");
    let fresh: Vec<_> = cap.all().into_iter().skip(before).collect();
    assert_eq!(fresh.len(), 1);
    assert_eq!(
        webhook_alerts(&fresh[0].body),
        vec![("HostMemoryUsageHigh".to_string(), "firing".to_string())]
    );
}

#[tokio::test]
async fn failed_sends_are_retried_and_state_not_advanced() {
    let cap = Capture::start().await;
    let yaml = r#"
route:
  receiver: hook
  group_wait: 0s
  group_interval: 1m
receivers:
  - name: hook
    webhook_configs:
      - url: "{{BASE}}/flaky"
      - url: "{{BASE}}/gone"
"#;
    let n = notifier(yaml, &cap.base, Arc::new(MemStateStore::new()));
    let alert = ember_rules::PostableAlert {
        labels: [("alertname".to_string(), "X".to_string())].into(),
        annotations: Default::default(),
        starts_at: "2023-11-14T22:13:00Z".into(),
        ends_at: "2023-11-14T23:13:00Z".into(),
        generator_url: "http://x/graph".into(),
    };
    let t = 1_699_999_980_000 + 60_000;
    // flaky: 2 × 500 (both attempts fail); gone: 404 once (not retried within the flush).
    cap.fail_next("flaky", 500, 2);
    cap.fail_next("gone", 404, 1);
    n.receive(vec![alert]);
    let r = n.flush(t).await.expect("flush");
    assert_eq!(r.sent, 0);
    assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
    assert!(
        r.errors.iter().all(|e| !e.contains("127.0.0.1")),
        "URLs never in errors: {:?}",
        r.errors
    );
    let paths: Vec<String> = cap.all().into_iter().map(|c| c.path).collect();
    assert_eq!(paths, vec!["flaky!500", "flaky!500", "gone!404"]);
    // Not due again before the retry time; then both succeed.
    let r = n.flush(t + 30_000).await.expect("flush");
    assert_eq!(r.groups_flushed, 0);
    let r = n.flush(t + 60_000).await.expect("flush");
    assert_eq!(r.sent, 2);
    assert!(r.errors.is_empty());
    // Delivered: no repeat until repeat_interval (default 4h).
    let r = n.flush(t + 120_000).await.expect("flush");
    assert_eq!((r.groups_flushed, r.sent), (1, 0));
    // Alertmanager's counters: 4 webhook notifications attempted, the first 2 failed.
    let counts = n.notification_counts();
    assert_eq!(
        counts.get("webhook"),
        Some(&ember_alertmanager::NotificationCounts {
            total: 4,
            failed: 2
        })
    );
}

#[test]
fn config_is_strict() {
    let bad = [
        (
            "route: {receiver: a}\nreceivers: [{name: a, email_configs: []}]",
            "email_configs",
        ),
        (
            "route: {receiver: b}\nreceivers: [{name: a}]",
            "undefined receiver",
        ),
        (
            "route: {receiver: a, bogus: 1}\nreceivers: [{name: a}]",
            "bogus",
        ),
        (
            "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'http://x', foo: 1}]}]",
            "foo",
        ),
        (
            "route: {receiver: a, routes: [{matchers: ['a=~\"(\"']}]}\nreceivers: [{name: a}]",
            "regex",
        ),
    ];
    for (yaml, want) in bad {
        match ember_alertmanager::Config::from_yaml(yaml) {
            Ok(_) => panic!("accepted: {yaml}"),
            Err(e) => assert!(e.to_string().contains(want), "{e} should mention {want}"),
        }
    }
}

#[tokio::test]
async fn webhook_url_from_a_secret_reference_never_leaks() {
    let cap = Capture::start().await;
    let var = "EMBER_NOTIFIER_TEST_WEBHOOK_URL";
    // SAFETY: only this test reads or writes this variable.
    unsafe { std::env::set_var(var, format!("{}/secret-hook\n", cap.base)) };
    let yaml = format!(
        "route: {{receiver: hook, group_wait: 0s}}\nreceivers: [{{name: hook, webhook_configs: [{{url: 'env:{var}'}}]}}]"
    );
    let cfg = ember_alertmanager::Config::from_yaml(&yaml).expect("config");
    // Debug output of the config never shows URLs.
    let inline = ember_alertmanager::Config::from_yaml(
        "route: {receiver: h}\nreceivers: [{name: h, webhook_configs: [{url: 'http://user:pw@127.0.0.1/x'}]}]",
    )
    .expect("config");
    assert!(!format!("{inline:?}").contains("pw@"));
    let n = ember_alertmanager::Notifier::from_config(
        &cfg,
        &[],
        Arc::new(MemStateStore::new()),
        "http://ember",
    )
    .expect("notifier");
    n.receive(vec![ember_rules::PostableAlert {
        labels: [("alertname".to_string(), "S".to_string())].into(),
        annotations: Default::default(),
        starts_at: "2023-11-14T22:13:00Z".into(),
        ends_at: "2023-11-14T23:13:00Z".into(),
        generator_url: String::new(),
    }]);
    let r = n.flush(1_699_999_980_000 + 60_000).await.expect("flush");
    assert_eq!(r.sent, 1, "{r:?}");
    assert_eq!(cap.all()[0].path, "secret-hook");

    // SSM references need the AWS clients (feature `aws-secrets`, on in the rules Lambda).
    let ssm = ember_alertmanager::Config::from_yaml(
        "route: {receiver: h}\nreceivers: [{name: h, slack_configs: [{api_url: 'ssm:/ember/slack'}]}]",
    )
    .expect("parses");
    let built =
        ember_alertmanager::Notifier::from_config(&ssm, &[], Arc::new(MemStateStore::new()), "x");
    if cfg!(feature = "aws-secrets") {
        assert!(built.is_ok());
    } else {
        let e = built.expect_err("refused without the feature").to_string();
        assert!(
            e.contains("ssm:/ember/slack") && e.contains("aws-secrets"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn from_location_and_run_until() {
    let cap = Capture::start().await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("slack.tmpl"),
        r#"{{ define "my.title" }}{{ len .Alerts.Firing }} firing for {{ .CommonLabels.alertname }}{{ end }}"#,
    )
    .expect("write template");
    let cfg = dir.path().join("alertmanager.yml");
    std::fs::write(
        &cfg,
        format!(
            "templates: ['*.tmpl']\nroute: {{receiver: s, group_wait: 0s}}\nreceivers:\n  - name: s\n    slack_configs:\n      - api_url: '{}/slack'\n        title: '{{{{ template \"my.title\" . }}}}'\n",
            cap.base
        ),
    )
    .expect("write config");
    let loc = format!("file:{}", cfg.display());
    let n = ember_alertmanager::Notifier::from_location(&loc, Arc::new(MemStateStore::new()), "x")
        .await
        .expect("notifier");
    let now = chrono::Utc::now();
    n.receive(vec![ember_rules::PostableAlert {
        labels: [("alertname".to_string(), "T".to_string())].into(),
        annotations: Default::default(),
        starts_at: (now - chrono::Duration::minutes(1)).to_rfc3339(),
        ends_at: (now + chrono::Duration::minutes(5)).to_rfc3339(),
        generator_url: String::new(),
    }]);
    let until = std::time::SystemTime::now() + std::time::Duration::from_millis(300);
    let reports = n
        .run_until(until, std::time::Duration::from_millis(100))
        .await;
    assert!(
        reports.len() >= 2,
        "flushed on every tick: {}",
        reports.len()
    );
    let sent: usize = reports
        .iter()
        .map(|r| r.as_ref().map_or(0, |r| r.sent))
        .sum();
    assert_eq!(sent, 1, "{reports:?}");
    assert_eq!(
        cap.all()[0].body["attachments"][0]["title"],
        "1 firing for T"
    );
    let e = ember_alertmanager::Notifier::from_location(
        "s3://b/k",
        Arc::new(MemStateStore::new()),
        "x",
    )
    .await
    .expect_err("s3 unsupported");
    assert!(e.to_string().contains("s3://"));
}
