//! Shared test helpers: generated node memory data and a manager over MemStorage.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use ember_model::{Labels, Matcher, Sample, Series};
use ember_promql::{Engine, EngineOptions};
use ember_rules::{GroupDefaults, ManagerOptions, RuleManager, RuleStateStore, load_rule_file};
use ember_storage::{AppendBatch, MemStorage};

pub const TENANT: &str = "default";
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Memory usage ratio of the generated data at offset `off_ms` from `t0`: 50 % until 5m, 85 %
/// until 12m (95 % between 6m and 9m), then 50 % again.
pub fn usage_at(off_ms: i64) -> f64 {
    let m = off_ms as f64 / 60_000.0;
    if (5.0..12.0).contains(&m) {
        if (6.0..9.0).contains(&m) { 0.95 } else { 0.85 }
    } else {
        0.5
    }
}

/// Writes node_exporter memory series every 15 s from `t0 - 5m` to `t0 + 20m`.
pub fn generate(storage: &MemStorage, t0: i64) {
    let lbl = |name: &str| {
        Labels::from_pairs([
            ("__name__", name),
            ("instance", "node1:9100"),
            ("job", "node"),
        ])
    };
    let mut total = Vec::new();
    let mut avail = Vec::new();
    let mut t = t0 - 5 * 60_000;
    while t <= t0 + 20 * 60_000 {
        total.push(Sample::new(t, 8.0 * GIB));
        avail.push(Sample::new(t, 8.0 * GIB * (1.0 - usage_at(t - t0))));
        t += 15_000;
    }
    let batch = AppendBatch {
        series: vec![
            Series::new(lbl("node_memory_MemTotal_bytes"), total),
            Series::new(lbl("node_memory_MemAvailable_bytes"), avail),
        ],
        metadata: Vec::new(),
    };
    if let Err(e) = storage.append_sync(TENANT, batch) {
        panic!("append: {e}");
    }
}

pub fn data_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn manager(
    storage: Arc<MemStorage>,
    store: Arc<dyn RuleStateStore>,
    opts: ManagerOptions,
) -> RuleManager {
    let groups = match load_rule_file(&data_file("memory-rules.yml"), GroupDefaults::default()) {
        Ok(g) => g,
        Err(e) => panic!("loading rules: {e}"),
    };
    let m = RuleManager::new(
        storage,
        Arc::new(Engine::new(EngineOptions::default())),
        store,
        opts,
    );
    m.set_groups(groups);
    m
}

pub fn group_key() -> String {
    format!("{};node-memory", data_file("memory-rules.yml").display())
}

/// The series named `name` with their samples in [start, end].
pub fn select(storage: &MemStorage, name: &str, start: i64, end: i64) -> Vec<Series> {
    match storage.select_sync(TENANT, &[Matcher::equal("__name__", name)], start, end) {
        Ok(mut s) => {
            s.sort_by(|a, b| a.labels.cmp(&b.labels));
            s
        }
        Err(e) => panic!("select: {e}"),
    }
}
