//! The seeds' memory rules on generated data: pending, firing, resolved, ALERTS series,
//! recorded series, staleness, resend cadence, and state surviving a restart.

mod common;

use std::sync::Arc;

use common::*;
use ember_model::is_stale_nan;
use ember_rules::api::{RulesFilter, alerts_data, rules_data};
use ember_rules::{FileStateStore, ManagerOptions, MemStateStore, RuleStateStore};
use ember_storage::MemStorage;

const T0: i64 = 1_699_999_980_000; // a whole minute
const M: i64 = 60_000;

fn alerts_series(storage: &MemStorage, t: i64) -> Vec<(String, String, String, f64)> {
    // (alertname, alertstate, severity, value) of ALERTS samples exactly at t.
    let mut out = Vec::new();
    for s in select(storage, "ALERTS", t, t) {
        for smp in &s.samples {
            if smp.t == t && !is_stale_nan(smp.v) {
                out.push((
                    s.labels.get("alertname").unwrap_or("").to_string(),
                    s.labels.get("alertstate").unwrap_or("").to_string(),
                    s.labels.get("severity").unwrap_or("").to_string(),
                    smp.v,
                ));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn pending_firing_resolved_with_alerts_series() {
    let storage = Arc::new(MemStorage::new());
    generate(&storage, T0);
    let store: Arc<dyn RuleStateStore> = Arc::new(MemStateStore::new());
    let mgr = manager(storage.clone(), store, ManagerOptions::default());
    let key = group_key();
    let mut sent_at = Vec::new();
    let mut t = T0;
    while t <= T0 + 30 * M {
        let r = mgr.evaluate_group_at(&key, t).await.expect("eval");
        assert!(
            r.rule_errors.is_empty(),
            "errors at {t}: {:?}",
            r.rule_errors
        );
        for a in &r.alerts_sent {
            sent_at.push((t - T0, a.labels["alertname"].clone(), a.ends_at.clone()));
        }
        let off = t - T0;
        let got = alerts_series(&storage, t);
        let want: Vec<(&str, &str, &str)> = match off {
            o if o < 5 * M => vec![],
            o if o < 6 * M => vec![("HostMemoryUsageHigh", "pending", "warning")],
            o if o < 7 * M => vec![
                ("HostMemoryUsageCritical", "pending", "critical"),
                ("HostMemoryUsageHigh", "pending", "warning"),
            ],
            o if o < 8 * M => vec![
                ("HostMemoryUsageCritical", "pending", "critical"),
                ("HostMemoryUsageHigh", "firing", "warning"),
            ],
            o if o < 9 * M => vec![
                ("HostMemoryUsageCritical", "firing", "critical"),
                ("HostMemoryUsageHigh", "firing", "warning"),
            ],
            o if o < 12 * M => vec![("HostMemoryUsageHigh", "firing", "warning")],
            _ => vec![],
        };
        let got_s: Vec<(&str, &str, &str)> = got
            .iter()
            .map(|g| (g.0.as_str(), g.1.as_str(), g.2.as_str()))
            .collect();
        assert_eq!(got_s, want, "ALERTS at +{}s", off / 1000);
        assert!(got.iter().all(|g| g.3 == 1.0));
        t += 30_000;
    }
    // Sends: warning fires at +7m, re-sent strictly after resend delay (+8m30s, +10m), resolved at
    // +12m and re-sent while retained; critical fires at +8m, resolved at +9m.
    let high: Vec<i64> = sent_at
        .iter()
        .filter(|s| s.1 == "HostMemoryUsageHigh")
        .map(|s| s.0 / 1000)
        .collect();
    assert_eq!(&high[..4], &[420, 510, 600, 690]);
    assert!(high.contains(&720), "resolved alert sent at +12m: {high:?}");
    let crit: Vec<i64> = sent_at
        .iter()
        .filter(|s| s.1 == "HostMemoryUsageCritical")
        .map(|s| s.0 / 1000)
        .collect();
    assert_eq!(&crit[..2], &[480, 540]);
    // endsAt of a firing alert = now + 4 × max(resend_delay 1m, interval 30s) = now + 4m.
    let first = sent_at
        .iter()
        .find(|s| s.1 == "HostMemoryUsageHigh")
        .expect("sent");
    assert_eq!(first.2, ember_rules::manager::rfc3339(T0 + 7 * M + 4 * M));

    // ALERTS_FOR_STATE carries activeAt (seconds); recorded series exist; stale markers written.
    let fs = select(&storage, "ALERTS_FOR_STATE", T0 + 7 * M, T0 + 7 * M);
    let high_fs = fs
        .iter()
        .find(|s| s.labels.get("alertname") == Some("HostMemoryUsageHigh"))
        .expect("for state");
    assert_eq!(high_fs.labels.get("team"), Some("infra"));
    assert_eq!(high_fs.samples[0].v, ((T0 + 5 * M) / 1000) as f64);
    let rec = select(
        &storage,
        "instance:node_memory_utilisation:ratio",
        T0,
        T0 + 30 * M,
    );
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].labels.get("team"), Some("infra"));
    assert!(
        (rec[0]
            .samples
            .iter()
            .find(|s| s.t == T0 + 5 * M)
            .expect("sample")
            .v
            - 0.85)
            .abs()
            < 1e-9
    );
    let pending = select(&storage, "ALERTS", T0 + 7 * M, T0 + 7 * M);
    let stale = pending
        .iter()
        .find(|s| {
            s.labels.get("alertstate") == Some("pending")
                && s.labels.get("alertname") == Some("HostMemoryUsageHigh")
        })
        .expect("pending series");
    assert!(
        is_stale_nan(stale.samples[0].v),
        "pending series gets a stale marker when the alert fires"
    );
}

#[tokio::test]
async fn annotations_and_api_shapes() {
    let storage = Arc::new(MemStorage::new());
    generate(&storage, T0);
    let mgr = manager(
        storage.clone(),
        Arc::new(MemStateStore::new()),
        ManagerOptions::default(),
    );
    let key = group_key();
    let mut t = T0;
    while t <= T0 + 8 * M {
        mgr.evaluate_group_at(&key, t).await.expect("eval");
        t += 30_000;
    }
    let alerts = alerts_data(&mgr);
    let list = alerts["alerts"].as_array().expect("alerts");
    assert_eq!(list.len(), 2);
    let high = list
        .iter()
        .find(|a| a["labels"]["alertname"] == "HostMemoryUsageHigh")
        .expect("high");
    assert_eq!(high["state"], "firing");
    // At +8m usage is 95 %: the annotation follows the latest value.
    assert_eq!(
        high["annotations"]["description"],
        "Memory usage is 95% on node1:9100 (threshold 80%)."
    );
    assert_eq!(
        high["annotations"]["summary"],
        "Memory usage high on node1:9100"
    );
    assert_eq!(high["value"], "9.5e-01");
    assert_eq!(high["activeAt"], ember_rules::manager::rfc3339(T0 + 5 * M));
    assert_eq!(high["labels"]["instance"], "node1:9100");
    assert_eq!(high["labels"]["severity"], "warning");
    let crit = list
        .iter()
        .find(|a| a["labels"]["alertname"] == "HostMemoryUsageCritical")
        .expect("crit");
    assert_eq!(
        crit["annotations"]["description"],
        "Memory usage is 95% on node1:9100 (threshold 90%)."
    );

    let rules = rules_data(&mgr, &RulesFilter::default()).expect("rules");
    let g = &rules["groups"][0];
    assert_eq!(g["name"], "node-memory");
    assert_eq!(g["interval"], 30.0);
    assert_eq!(g["rules"].as_array().map(Vec::len), Some(3));
    assert_eq!(g["rules"][0]["type"], "recording");
    assert_eq!(g["rules"][0]["health"], "ok");
    assert_eq!(g["rules"][1]["type"], "alerting");
    assert_eq!(g["rules"][1]["state"], "firing");
    assert_eq!(g["rules"][1]["duration"], 120.0);
    assert_eq!(g["rules"][1]["alerts"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        g["lastEvaluation"],
        ember_rules::manager::rfc3339(T0 + 8 * M)
    );

    let f =
        RulesFilter::from_pairs([("type", "alert"), ("exclude_alerts", "true")]).expect("filter");
    let r = rules_data(&mgr, &f).expect("rules");
    let rules = r["groups"][0]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 2);
    assert!(rules.iter().all(|r| r.get("alerts").is_none()));
    let f = RulesFilter::from_pairs([("rule_name[]", "HostMemoryUsageCritical")]).expect("filter");
    assert_eq!(
        rules_data(&mgr, &f).expect("rules")["groups"][0]["rules"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let f = RulesFilter::from_pairs([("rule_group[]", "other")]).expect("filter");
    assert_eq!(
        rules_data(&mgr, &f).expect("rules")["groups"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    let f = RulesFilter::from_pairs([("type", "record"), ("rule_name[]", "HostMemoryUsageHigh")])
        .expect("filter");
    assert_eq!(
        rules_data(&mgr, &f).expect("rules")["groups"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}

#[tokio::test]
async fn state_survives_restart_without_resending_early() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(MemStorage::new());
    generate(&storage, T0);
    let key = group_key();
    {
        let store: Arc<dyn RuleStateStore> =
            Arc::new(FileStateStore::new(dir.path().join("rules-state")).expect("store"));
        let mgr = manager(storage.clone(), store, ManagerOptions::default());
        let mut t = T0 + 4 * M;
        while t <= T0 + 7 * M {
            mgr.evaluate_group_at(&key, t).await.expect("eval");
            t += 30_000;
        }
    }
    // A new manager (cold start) over the same state directory.
    let store: Arc<dyn RuleStateStore> =
        Arc::new(FileStateStore::new(dir.path().join("rules-state")).expect("store"));
    let mgr = manager(storage.clone(), store, ManagerOptions::default());
    mgr.restore_all().await;
    let before = alerts_data(&mgr);
    assert_eq!(
        before["alerts"][0]["state"], "firing",
        "restored before the first evaluation: {before}"
    );
    let r = mgr
        .evaluate_group_at(&key, T0 + 7 * M + 30_000)
        .await
        .expect("eval");
    assert!(
        r.alerts_sent.is_empty(),
        "nothing re-sent before the resend delay: {:?}",
        r.alerts_sent
    );
    let r = mgr.evaluate_group_at(&key, T0 + 8 * M).await.expect("eval");
    let names: Vec<&str> = r
        .alerts_sent
        .iter()
        .map(|a| a.labels["alertname"].as_str())
        .collect();
    assert_eq!(
        names,
        vec!["HostMemoryUsageCritical"],
        "critical fires at +8m; warning not yet re-sent"
    );
    let r = mgr
        .evaluate_group_at(&key, T0 + 8 * M + 30_000)
        .await
        .expect("eval");
    let high = r
        .alerts_sent
        .iter()
        .find(|a| a.labels["alertname"] == "HostMemoryUsageHigh")
        .expect("resent after 1m");
    // activeAt survived: the warning still started at +7m (fired) after becoming pending at +5m.
    assert_eq!(high.starts_at, ember_rules::manager::rfc3339(T0 + 7 * M));
    let a = alerts_data(&mgr);
    let h = a["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["labels"]["alertname"] == "HostMemoryUsageHigh")
        .cloned()
        .expect("high");
    assert_eq!(h["activeAt"], ember_rules::manager::rfc3339(T0 + 5 * M));
}

#[tokio::test]
async fn evaluate_due_is_aligned_and_skips_done_iterations() {
    let storage = Arc::new(MemStorage::new());
    generate(&storage, T0);
    let mgr = manager(
        storage,
        Arc::new(MemStateStore::new()),
        ManagerOptions::default(),
    );
    let g = &mgr.groups()[0];
    let now = T0 + 6 * M + 7_123;
    let ts = ember_rules::manager::aligned_eval_time(g, now);
    assert!(ts <= now && now - ts < g.interval_ms);
    assert_eq!(
        (ts - ember_rules::manager::group_offset_ms(g)).rem_euclid(g.interval_ms),
        0
    );
    let r = mgr.evaluate_due(now).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].ts, ts);
    assert!(
        mgr.evaluate_due(now + 1).await.is_empty(),
        "same aligned slot is not evaluated twice"
    );
    assert_eq!(mgr.evaluate_due(ts + g.interval_ms).await.len(), 1);
}
