//! The embedded backend (redb hot store) compacts into block files under its data
//! directory, and queries return the same before and after.

use std::sync::Arc;

use ember_blocks::compact::{CompactionConfig, DAY_MS};
use ember_blocks::{compact_local_once, open_local_tiered};
use ember_model::{Labels, Matcher, Sample, Series};
use ember_storage::{AppendBatch, Appender, Querier};
use ember_storage_local::LocalStore;

#[tokio::test]
async fn local_mode_compacts_into_blocks_and_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_700_006_400_000; // a day boundary
    let hot = Arc::new(LocalStore::open(dir.path()).unwrap());
    let (storage, _compactor) = open_local_tiered(hot.clone(), dir.path());
    for round in 0..30 {
        let series = (0..5)
            .map(|i| {
                let labels = Labels::from_pairs([
                    ("__name__", "req_total".to_string()),
                    ("i", i.to_string()),
                ]);
                let samples = (0..10)
                    .map(|k| Sample::new(t0 + (round * 10 + k) * 60_000, (round * 10 + k) as f64))
                    .collect();
                Series::new(labels, samples)
            })
            .collect();
        storage
            .append(
                "default",
                AppendBatch {
                    series,
                    metadata: vec![],
                },
            )
            .await
            .unwrap();
    }
    let m = [Matcher::equal("__name__", "req_total")];
    let norm = |mut v: Vec<Series>| {
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v.into_iter()
            .map(|s| {
                (
                    s.labels.to_string(),
                    s.samples
                        .iter()
                        .map(|x| (x.t, x.v.to_bits()))
                        .collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = norm(
        storage
            .select("default", &m, t0, t0 + DAY_MS)
            .await
            .unwrap(),
    );
    assert_eq!(before.len(), 5);
    assert_eq!(before[0].1.len(), 300);
    let mut cfg = CompactionConfig::at(t0 + 2 * DAY_MS);
    cfg.delete_delay_ms = 0;
    let report = compact_local_once(hot.as_ref(), dir.path(), &cfg)
        .await
        .unwrap();
    assert_eq!(report.buckets_compacted, 5, "{report}");
    assert!(dir.path().join("blocks/index/default.json").is_file());
    let files: Vec<_> = std::fs::read_dir(dir.path().join("blocks/blocks/default"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1, "one merged block");
    let after = norm(
        storage
            .select("default", &m, t0, t0 + DAY_MS)
            .await
            .unwrap(),
    );
    assert_eq!(after, before);
    let labels = storage
        .series("default", &[m.to_vec()], t0, t0 + DAY_MS)
        .await
        .unwrap();
    assert_eq!(labels.len(), 5);
}
