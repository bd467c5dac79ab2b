//! Real-time scheduling: `run_pass` (rules Lambda) loops sub-minute groups inside one
//! invocation at aligned times; `run` (ember serve) stops on shutdown.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ember_promql::{Engine, EngineOptions};
use ember_rules::manager::group_offset_ms;
use ember_rules::{GroupDefaults, ManagerOptions, MemStateStore, RuleManager, parse_rule_file};
use ember_storage::MemStorage;

fn manager() -> Arc<RuleManager> {
    let rules = "groups:\n- name: fast\n  interval: 500ms\n  rules:\n  - record: one\n    expr: vector(1)\n";
    let groups = parse_rule_file(rules, "fast.yml", GroupDefaults::default()).expect("rules");
    let mgr = RuleManager::new(
        Arc::new(MemStorage::new()),
        Arc::new(Engine::new(EngineOptions::default())),
        Arc::new(MemStateStore::new()),
        ManagerOptions::default(),
    );
    mgr.set_groups(groups);
    Arc::new(mgr)
}

#[tokio::test]
async fn run_pass_loops_aligned_until_deadline() {
    let mgr = manager();
    let g = mgr.groups()[0].clone();
    let until = SystemTime::now() + Duration::from_millis(1600);
    let reports = mgr.run_pass(until).await;
    assert!(
        (3..=5).contains(&reports.len()),
        "{} evaluations",
        reports.len()
    );
    let off = group_offset_ms(&g);
    for r in &reports {
        assert_eq!((r.ts - off).rem_euclid(g.interval_ms), 0, "aligned");
        assert!(r.rule_errors.is_empty());
    }
    for w in reports.windows(2) {
        assert_eq!(
            w[1].ts - w[0].ts,
            g.interval_ms,
            "no slot skipped or repeated"
        );
    }
    assert!(
        SystemTime::now() <= until + Duration::from_millis(1000),
        "stops at the deadline"
    );
}

#[tokio::test]
async fn run_stops_on_shutdown() {
    let mgr = manager();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(mgr.clone().run(async {
        let _ = rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stopped")
        .expect("no panic");
    let snap = mgr.snapshot();
    assert!(snap[0].1.last_eval_ms.is_some(), "evaluated while running");
}
