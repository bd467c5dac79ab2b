//! Shared test helpers: generated node memory data and a manager over MemStorage.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use ember_model::{Matcher, Series};
use ember_promql::{Engine, EngineOptions};
use ember_rules::{GroupDefaults, ManagerOptions, RuleManager, RuleStateStore, load_rule_file};
use ember_storage::MemStorage;

pub const TENANT: &str = "default";
/// Writes node_exporter memory series every 15 s from `t0 - 5m` to `t0 + 20m`.
pub fn generate(storage: &MemStorage, t0: i64) {
    if let Err(e) = ember_rules::testing::write_node_memory(storage, TENANT, t0, 20) {
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
