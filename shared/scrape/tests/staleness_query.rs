//! Staleness end to end: a series that vanishes from a target disappears from instant
//! queries through the PromQL engine at once, not after the 5-minute lookback.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ember_config::Config;
use ember_promql::{Engine, QueryOptions, Value};
use ember_scrape::{ScrapeManager, ScrapeOptions};
use ember_storage::MemStorage;

async fn queues_at(store: &MemStorage, t: i64) -> Vec<String> {
    let r = Engine::default()
        .instant_query(store, "default", "jobs", t, &QueryOptions::default())
        .await
        .unwrap();
    let Value::Vector(v) = r.value else {
        panic!("expected a vector, got {:?}", r.value)
    };
    let mut q: Vec<String> = v
        .iter()
        .filter_map(|s| s.labels.get("queue").map(String::from))
        .collect();
    q.sort();
    q
}

#[tokio::test]
async fn vanished_series_disappear_from_instant_queries_at_once() {
    let target = TestTarget::start(Reply::text("jobs{queue=\"a\"} 1\njobs{queue=\"b\"} 2\n")).await;
    let store = Arc::new(MemStorage::new());
    let yaml = format!(
        "scrape_configs:\n  - job_name: app\n    static_configs: [{{targets: ['{}']}}]\n",
        target.address
    );
    let cfg = Config::from_yaml(&yaml, Path::new("test.yml")).unwrap();
    let m = ScrapeManager::new(&cfg, store.clone(), ScrapeOptions::default()).unwrap();

    m.scrape_job_once("app").await.unwrap();
    let first = store.select_sync("default", &[], 0, i64::MAX).unwrap();
    let t1 = first
        .iter()
        .flat_map(|s| s.samples.iter().map(|x| x.t))
        .max()
        .unwrap();
    assert_eq!(queues_at(&store, t1 + 1).await, vec!["a", "b"]);

    target.set(Reply::text("jobs{queue=\"a\"} 3\n"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    m.scrape_job_once("app").await.unwrap();
    let all = store.select_sync("default", &[], 0, i64::MAX).unwrap();
    let t2 = all
        .iter()
        .flat_map(|s| s.samples.iter().map(|x| x.t))
        .max()
        .unwrap();
    assert!(t2 > t1);
    // Right after the second scrape, well inside the 5m lookback of b's last real sample,
    // b is gone; before the second scrape it was still there.
    assert_eq!(queues_at(&store, t2).await, vec!["a"]);
    assert_eq!(queues_at(&store, t2 + 60_000).await, vec!["a"]);
    assert_eq!(queues_at(&store, t2 - 1).await, vec!["a", "b"]);
}
