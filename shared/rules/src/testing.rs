//! Test data shared by this crate's tests and the notifier's (`ember-alertmanager`): the
//! node_exporter memory series the seeds' memory rules (`tests/data/memory-rules.yml`)
//! alert on. Small and deterministic, so it lives here rather than in each test tree.

use ember_model::{Labels, Sample, Series};
use ember_storage::{AppendBatch, MemStorage, StorageError};

/// Bytes in a GiB.
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Memory usage ratio of the generated data at offset `off_ms` from `t0`: 50 % until 5m,
/// 85 % until 12m (95 % between 6m and 9m), then 50 % again.
pub fn memory_usage_at(off_ms: i64) -> f64 {
    let m = off_ms as f64 / 60_000.0;
    if (5.0..12.0).contains(&m) {
        if (6.0..9.0).contains(&m) { 0.95 } else { 0.85 }
    } else {
        0.5
    }
}

/// Writes `node_memory_MemTotal_bytes` (8 GiB) and `node_memory_MemAvailable_bytes` of
/// `instance="node1:9100", job="node"` every 15 s from `t0 - 5m` to `t0 + end_minutes`.
pub fn write_node_memory(
    storage: &MemStorage,
    tenant: &str,
    t0: i64,
    end_minutes: i64,
) -> Result<(), StorageError> {
    let labels = |name: &str| {
        Labels::from_pairs([
            ("__name__", name),
            ("instance", "node1:9100"),
            ("job", "node"),
        ])
    };
    let mut total = Vec::new();
    let mut avail = Vec::new();
    let mut t = t0 - 5 * 60_000;
    while t <= t0 + end_minutes * 60_000 {
        total.push(Sample::new(t, 8.0 * GIB));
        avail.push(Sample::new(t, 8.0 * GIB * (1.0 - memory_usage_at(t - t0))));
        t += 15_000;
    }
    let batch = AppendBatch {
        series: vec![
            Series::new(labels("node_memory_MemTotal_bytes"), total),
            Series::new(labels("node_memory_MemAvailable_bytes"), avail),
        ],
        metadata: Vec::new(),
    };
    storage.append_sync(tenant, batch).map(|_| ())
}
