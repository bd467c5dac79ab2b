//! Fault injection for tests: wrappers whose mutating operations (object puts and
//! deletes, index stores, hot bucket deletions) draw on one shared [`Budget`]; when it
//! runs out every further mutation fails, which simulates a crash at that step.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use ember_model::{Labels, Matcher, MetricMetadata};
use ember_storage::hot::{HotStore, IndexedSeries};
use ember_storage::layout::{EncodedSegment, SegmentKey};
use ember_storage::{Result, StorageError};

use crate::index::{BlockIndex, BlockIndexStore};
use crate::objstore::{ObjectMeta, ObjectStore, ObjectStoreError};

/// Fails every mutating operation once the shared budget is spent (a crash at that step).
#[derive(Clone)]
pub struct Budget(pub Arc<AtomicI64>);

impl Budget {
    /// A budget that never runs out.
    pub fn unlimited() -> Self {
        Budget(Arc::new(AtomicI64::new(i64::MAX)))
    }
    /// A budget of `n` mutating operations.
    pub fn new(n: i64) -> Self {
        Budget(Arc::new(AtomicI64::new(n)))
    }

    /// Operations spent so far on an [`Budget::unlimited`] budget.
    pub fn spent(&self) -> i64 {
        i64::MAX - self.0.load(Ordering::SeqCst)
    }

    /// Spends one operation, failing once the budget is gone.
    pub fn take(&self, what: &str) -> Result<()> {
        if self.0.fetch_sub(1, Ordering::SeqCst) <= 0 {
            Err(StorageError::Unavailable(format!(
                "injected crash before {what}"
            )))
        } else {
            Ok(())
        }
    }
}

/// An object store whose puts and deletes draw on a [`Budget`].
pub struct FaultyObjects<O: ?Sized> {
    /// The real store.
    pub inner: Arc<O>,
    /// The shared budget.
    pub budget: Budget,
}

#[async_trait]
impl<O: ObjectStore + ?Sized> ObjectStore for FaultyObjects<O> {
    async fn put(&self, key: &str, data: Bytes) -> std::result::Result<(), ObjectStoreError> {
        self.budget
            .take("put")
            .map_err(|e| ObjectStoreError::unavailable("put", e))?;
        self.inner.put(key, data).await
    }
    async fn get(&self, key: &str) -> std::result::Result<Bytes, ObjectStoreError> {
        self.inner.get(key).await
    }
    async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> std::result::Result<Bytes, ObjectStoreError> {
        self.inner.get_range(key, range).await
    }
    async fn delete(&self, key: &str) -> std::result::Result<(), ObjectStoreError> {
        self.budget
            .take("delete")
            .map_err(|e| ObjectStoreError::unavailable("delete", e))?;
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> std::result::Result<Vec<ObjectMeta>, ObjectStoreError> {
        self.inner.list(prefix).await
    }
}

/// A block index whose stores draw on a [`Budget`].
pub struct FaultyIndex<I: ?Sized> {
    /// The real index.
    pub inner: Arc<I>,
    /// The shared budget.
    pub budget: Budget,
}

#[async_trait]
impl<I: BlockIndexStore + ?Sized> BlockIndexStore for FaultyIndex<I> {
    async fn load(&self, tenant: &str) -> Result<BlockIndex> {
        self.inner.load(tenant).await
    }
    async fn store(&self, tenant: &str, index: &BlockIndex) -> Result<bool> {
        self.budget.take("index store")?;
        self.inner.store(tenant, index).await
    }
}

/// A hot store whose bucket deletions draw on a [`Budget`].
pub struct FaultyHot<H: ?Sized> {
    /// The real store.
    pub inner: Arc<H>,
    /// The shared budget.
    pub budget: Budget,
}

#[async_trait]
impl<H: HotStore + ?Sized> HotStore for FaultyHot<H> {
    fn shards(&self) -> u32 {
        self.inner.shards()
    }
    async fn resolve_series(&self, tenant: &str, labels: &[Labels]) -> Result<Vec<(u64, bool)>> {
        self.inner.resolve_series(tenant, labels).await
    }
    async fn write(
        &self,
        tenant: &str,
        segments: &[EncodedSegment],
        metadata: &[MetricMetadata],
    ) -> Result<()> {
        self.inner.write(tenant, segments, metadata).await
    }
    async fn find_series(&self, tenant: &str, matchers: &[Matcher]) -> Result<Vec<IndexedSeries>> {
        self.inner.find_series(tenant, matchers).await
    }
    async fn read_segments(&self, tenant: &str, key: SegmentKey) -> Result<Vec<Vec<u8>>> {
        self.inner.read_segments(tenant, key).await
    }
    async fn metadata(&self, tenant: &str) -> Result<Vec<MetricMetadata>> {
        self.inner.metadata(tenant).await
    }
    async fn tenants(&self) -> Result<Vec<String>> {
        self.inner.tenants().await
    }
    async fn buckets(&self, tenant: &str) -> Result<Vec<i64>> {
        self.inner.buckets(tenant).await
    }
    async fn delete_bucket(&self, tenant: &str, bucket: i64) -> Result<()> {
        self.budget.take("delete bucket")?;
        self.inner.delete_bucket(tenant, bucket).await
    }
}
