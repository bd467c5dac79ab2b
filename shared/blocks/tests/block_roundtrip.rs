//! Block files: write, read back through ranged reads, prune row groups.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use ember_blocks::block::{read_footer, read_series, write_block};
use ember_blocks::{
    BlockSeries, BlockWriteOptions, MemoryObjectStore, ObjectMeta, ObjectStore, ObjectStoreError,
    ReadMode,
};
use ember_model::{Labels, Matcher, Sample};

/// Counts ranged reads and bytes.
#[derive(Default)]
struct Counting {
    inner: MemoryObjectStore,
    gets: AtomicUsize,
    bytes: AtomicUsize,
}

#[async_trait]
impl ObjectStore for Counting {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectStoreError> {
        self.inner.put(key, data).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        self.inner.get(key).await
    }
    async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, ObjectStoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.bytes
            .fetch_add((range.end - range.start) as usize, Ordering::SeqCst);
        self.inner.get_range(key, range).await
    }
    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, ObjectStoreError> {
        self.inner.list(prefix).await
    }
}

fn generate(metrics: usize, series_per_metric: usize, samples: usize) -> Vec<BlockSeries> {
    let mut out = Vec::new();
    for m in 0..metrics {
        for s in 0..series_per_metric {
            let mut labels = vec![
                ("__name__".to_string(), format!("metric_{m:03}")),
                ("instance".into(), format!("host-{s}:9100")),
            ];
            if s % 2 == 0 {
                labels.push(("job".into(), "node".into()));
            }
            let samples = (0..samples)
                .map(|i| {
                    Sample::new(
                        1_700_000_000_000 + i as i64 * 15_000 + (i as i64 % 5),
                        (i * (m + 1)) as f64 + s as f64 * 0.5,
                    )
                })
                .collect();
            out.push(BlockSeries {
                labels: Labels::from_pairs(labels),
                samples,
            });
        }
    }
    out
}

#[tokio::test]
async fn block_round_trips_and_prunes_row_groups() {
    let input = generate(20, 10, 240);
    let opts = BlockWriteOptions {
        row_group_target_bytes: 4096,
        ..Default::default()
    };
    let block = write_block(input.clone(), &opts).unwrap();
    assert!(
        block.stats.row_groups > 5,
        "small target gives many row groups: {:?}",
        block.stats
    );
    assert_eq!(block.stats.series, 200);
    assert_eq!(block.stats.samples, 200 * 240);
    let store = Counting::default();
    store.put("t/b.parquet", block.bytes.clone()).await.unwrap();

    let footer = read_footer(
        &store,
        "t/b.parquet",
        block.stats.size,
        Some(block.stats.footer_len),
    )
    .await
    .unwrap();
    assert_eq!(
        store.gets.load(Ordering::SeqCst),
        1,
        "footer in one ranged read"
    );

    // Everything back.
    let all = read_series(
        &store,
        "t/b.parquet",
        &footer,
        &[],
        i64::MIN,
        i64::MAX,
        ReadMode::Samples,
    )
    .await
    .unwrap();
    assert_eq!(all.len(), 200);
    let mut expected = input.clone();
    expected.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut got = all.clone();
    got.sort_by(|a, b| a.labels.cmp(&b.labels));
    assert_eq!(got, expected);

    // One metric: one row group fetched, a small share of the file.
    store.gets.store(0, Ordering::SeqCst);
    store.bytes.store(0, Ordering::SeqCst);
    let m = [
        Matcher::equal("__name__", "metric_007"),
        Matcher::regex("instance", "host-[12]:.*").unwrap(),
    ];
    let one = read_series(
        &store,
        "t/b.parquet",
        &footer,
        &m,
        i64::MIN,
        i64::MAX,
        ReadMode::Samples,
    )
    .await
    .unwrap();
    assert_eq!(one.len(), 2);
    assert_eq!(store.gets.load(Ordering::SeqCst), 1);
    assert!(store.bytes.load(Ordering::SeqCst) < block.stats.size as usize / 4);

    // Time range filter.
    let t0 = 1_700_000_000_000;
    let part = read_series(
        &store,
        "t/b.parquet",
        &footer,
        &m,
        t0 + 15_000,
        t0 + 45_004,
        ReadMode::Samples,
    )
    .await
    .unwrap();
    assert!(part.iter().all(|s| s.samples.len() == 3), "{part:?}");
    let labels_only = read_series(
        &store,
        "t/b.parquet",
        &footer,
        &m,
        t0,
        t0,
        ReadMode::LabelsOnly,
    )
    .await
    .unwrap();
    assert_eq!(labels_only.len(), 2);
    assert!(labels_only.iter().all(|s| s.samples.is_empty()));
    // Missing metric: no reads.
    store.gets.store(0, Ordering::SeqCst);
    let none = read_series(
        &store,
        "t/b.parquet",
        &footer,
        &[Matcher::equal("__name__", "zzz")],
        i64::MIN,
        i64::MAX,
        ReadMode::Samples,
    )
    .await
    .unwrap();
    assert!(none.is_empty());
    assert_eq!(store.gets.load(Ordering::SeqCst), 0);

    // Footer without known length: still works.
    let f2 = read_footer(&store, "t/b.parquet", block.stats.size, None)
        .await
        .unwrap();
    assert_eq!(f2.row_groups(), footer.row_groups());
    let per_sample = block.stats.size as f64 / block.stats.samples as f64;
    eprintln!(
        "block: {} bytes, {:.3} B/sample, {} row groups",
        block.stats.size, per_sample, block.stats.row_groups
    );
}

#[test]
fn empty_block_is_valid() {
    let b = write_block(Vec::new(), &BlockWriteOptions::default()).unwrap();
    assert_eq!(b.stats.series, 0);
}
