//! Counting the block object store's requests and bytes into the backend's
//! [`StoreUsage`] (kind `blocks`), for Ember's `/metrics`.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use ember_storage::usage::{StoreKind, StoreOp, StoreUsage};

use crate::objstore::{ObjectMeta, ObjectStore, ObjectStoreError};

/// An [`ObjectStore`] that counts requests and payload bytes, then forwards them.
pub struct CountingObjectStore {
    inner: Arc<dyn ObjectStore>,
    usage: Arc<StoreUsage>,
}

impl CountingObjectStore {
    /// Wraps `inner`, counting into `usage`.
    pub fn new(inner: Arc<dyn ObjectStore>, usage: Arc<StoreUsage>) -> Self {
        Self { inner, usage }
    }

    fn count<T>(
        &self,
        op: StoreOp,
        bytes: u64,
        r: Result<T, ObjectStoreError>,
    ) -> Result<T, ObjectStoreError> {
        self.usage.record(StoreKind::Blocks, op, bytes, r.is_ok());
        r
    }
}

#[async_trait]
impl ObjectStore for CountingObjectStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectStoreError> {
        let len = data.len() as u64;
        let r = self.inner.put(key, data).await;
        self.count(StoreOp::Write, len, r)
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        let r = self.inner.get(key).await;
        let len = r.as_ref().map_or(0, |b| b.len() as u64);
        self.count(StoreOp::Read, len, r)
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectStoreError> {
        let r = self.inner.get_range(key, range).await;
        let len = r.as_ref().map_or(0, |b| b.len() as u64);
        self.count(StoreOp::Read, len, r)
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        let r = self.inner.delete(key).await;
        self.count(StoreOp::Delete, 0, r)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, ObjectStoreError> {
        let r = self.inner.list(prefix).await;
        self.count(StoreOp::List, 0, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::{CompactionConfig, compact_once};
    use crate::index::{BlockIndexStore, ObjectBlockIndex};
    use crate::memhot::MemHotStore;
    use crate::objstore::MemoryObjectStore;
    use crate::tiered::{SharedHot, TieredStorage};
    use ember_model::{Labels, Sample, Series};
    use ember_storage::usage::CountingHotStore;
    use ember_storage::{AppendBatch, Appender, Querier};

    #[tokio::test]
    async fn hot_and_block_bytes_are_counted_by_kind() {
        let usage = Arc::new(StoreUsage::default());
        let hot = Arc::new(CountingHotStore::new(MemHotStore::default(), usage.clone()));
        let objects: Arc<dyn ObjectStore> = Arc::new(CountingObjectStore::new(
            Arc::new(MemoryObjectStore::default()),
            usage.clone(),
        ));
        let index: Arc<dyn BlockIndexStore> = Arc::new(ObjectBlockIndex::new(Arc::clone(&objects)));
        let storage = TieredStorage::new(SharedHot(hot.clone()), index.clone(), objects.clone());

        let labels = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let samples: Vec<Sample> = (0..240).map(|i| Sample::new(i * 15_000, 1.0)).collect();
        let batch = AppendBatch {
            series: vec![Series::new(labels, samples)],
            metadata: vec![],
        };
        storage.append("t", batch).await.unwrap();
        let hot_written = usage.bytes(StoreKind::Hot, StoreOp::Write);
        assert!(hot_written > 0);
        // One segment item plus one new series item, each under 1 KB.
        assert_eq!(usage.hot_units(StoreOp::Write), 2);
        assert_eq!(usage.requests(StoreKind::Blocks, StoreOp::Write), 0);

        let read = storage.select("t", &[], 0, 3_600_000).await.unwrap();
        assert_eq!(read[0].samples.len(), 240);
        assert_eq!(usage.bytes(StoreKind::Hot, StoreOp::Read), hot_written);

        // Compaction moves the bucket into a block: a block put, then the bucket deleted.
        let report = compact_once(
            hot.as_ref(),
            index.as_ref(),
            objects.as_ref(),
            &CompactionConfig::at(10 * 86_400_000),
        )
        .await
        .unwrap();
        assert_eq!(report.buckets_compacted, 1);
        let block_bytes: u64 = report.blocks_written.iter().map(|b| b.size).sum();
        assert!(usage.bytes(StoreKind::Blocks, StoreOp::Write) >= block_bytes);
        assert!(usage.requests(StoreKind::Hot, StoreOp::Delete) >= 1);
        assert!(usage.requests(StoreKind::Blocks, StoreOp::List) >= 1);
        assert_eq!(usage.failures(StoreKind::Blocks, StoreOp::Write), 0);
    }
}
