//! Backend usage counters: requests and bytes by store kind (the hot key-value store,
//! the block object store), the same on every backend, for Ember's `/metrics`.
//!
//! [`CountingHotStore`] wraps any [`HotStore`]; the block object store has its own
//! wrapper in `ember-blocks`. Both count into one shared [`StoreUsage`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use ember_model::{Labels, Matcher, MetricMetadata};

use crate::Result;
use crate::hot::{HotStore, IndexedSeries};
use crate::layout::{EncodedSegment, SegmentKey};

/// Which store a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Recent samples and the series index (redb locally, DynamoDB on AWS).
    Hot = 0,
    /// Compacted Parquet blocks and the block index (files locally, S3 on AWS).
    Blocks = 1,
}

impl StoreKind {
    /// Every kind, in label order.
    pub const ALL: [StoreKind; 2] = [StoreKind::Hot, StoreKind::Blocks];

    /// The `kind` label value.
    pub fn label(self) -> &'static str {
        match self {
            StoreKind::Hot => "hot",
            StoreKind::Blocks => "blocks",
        }
    }
}

/// What a request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// Reads of samples, series, metadata or objects.
    Read = 0,
    /// Writes of segments, series ids, metadata or objects.
    Write = 1,
    /// Listings (tenants, buckets, object prefixes).
    List = 2,
    /// Deletions (compacted buckets, merged or expired blocks).
    Delete = 3,
}

impl StoreOp {
    /// Every operation, in label order.
    pub const ALL: [StoreOp; 4] = [
        StoreOp::Read,
        StoreOp::Write,
        StoreOp::List,
        StoreOp::Delete,
    ];

    /// The `op` label value.
    pub fn label(self) -> &'static str {
        match self {
            StoreOp::Read => "read",
            StoreOp::Write => "write",
            StoreOp::List => "list",
            StoreOp::Delete => "delete",
        }
    }
}

const KINDS: usize = StoreKind::ALL.len();
const OPS: usize = StoreOp::ALL.len();

/// Requests, failures and payload bytes per (kind, op), since start. Relaxed atomics.
#[derive(Debug, Default)]
pub struct StoreUsage {
    requests: [[AtomicU64; OPS]; KINDS],
    failures: [[AtomicU64; OPS]; KINDS],
    bytes: [[AtomicU64; OPS]; KINDS],
    /// DynamoDB-style request units the hot tier's items would bill: 1 KB units written,
    /// 4 KB units read (see [`CountingHotStore`]).
    hot_units: [AtomicU64; 2],
}

impl StoreUsage {
    /// Counts one request of `op` on `kind` moving `bytes` of payload.
    pub fn record(&self, kind: StoreKind, op: StoreOp, bytes: u64, ok: bool) {
        let (k, o) = (kind as usize, op as usize);
        self.requests[k][o].fetch_add(1, Ordering::Relaxed);
        self.bytes[k][o].fetch_add(bytes, Ordering::Relaxed);
        if !ok {
            self.failures[k][o].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests of `op` on `kind` so far.
    pub fn requests(&self, kind: StoreKind, op: StoreOp) -> u64 {
        self.requests[kind as usize][op as usize].load(Ordering::Relaxed)
    }

    /// Failed requests of `op` on `kind` so far.
    pub fn failures(&self, kind: StoreKind, op: StoreOp) -> u64 {
        self.failures[kind as usize][op as usize].load(Ordering::Relaxed)
    }

    /// DynamoDB-style units of the hot tier so far: `Write` counts 1 KB units per item
    /// written, `Read` counts 4 KB units per read (strongly consistent); other ops 0.
    /// The embedded backend's modeled AWS cost is priced from these.
    pub fn hot_units(&self, op: StoreOp) -> u64 {
        match op {
            StoreOp::Write => self.hot_units[0].load(Ordering::Relaxed),
            StoreOp::Read => self.hot_units[1].load(Ordering::Relaxed),
            _ => 0,
        }
    }

    fn add_hot_units(&self, op: StoreOp, units: u64) {
        match op {
            StoreOp::Write => self.hot_units[0].fetch_add(units, Ordering::Relaxed),
            StoreOp::Read => self.hot_units[1].fetch_add(units, Ordering::Relaxed),
            _ => 0,
        };
    }

    /// Payload bytes read (`Read`) or written (`Write`) on `kind` so far.
    pub fn bytes(&self, kind: StoreKind, op: StoreOp) -> u64 {
        self.bytes[kind as usize][op as usize].load(Ordering::Relaxed)
    }
}

/// Key and attribute overhead of one hot-tier item (tenant, bucket, shard, content id),
/// added to a segment's size when modeling its write units.
const ITEM_OVERHEAD: usize = 64;

/// A [`HotStore`] that counts its requests and segment bytes into a [`StoreUsage`]
/// (kind `hot`) and forwards everything unchanged. It also models the DynamoDB request
/// units the same requests would bill (one item per segment, metadata entry and new
/// series; reads in 4 KB units), so the embedded backend can show what its workload
/// would cost on AWS.
pub struct CountingHotStore<H> {
    inner: H,
    usage: Arc<StoreUsage>,
}

impl<H> CountingHotStore<H> {
    /// Wraps `inner`, counting into `usage`.
    pub fn new(inner: H, usage: Arc<StoreUsage>) -> Self {
        Self { inner, usage }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    fn count<T>(&self, op: StoreOp, bytes: u64, r: Result<T>) -> Result<T> {
        self.usage.record(StoreKind::Hot, op, bytes, r.is_ok());
        r
    }
}

#[async_trait]
impl<H: HotStore> HotStore for CountingHotStore<H> {
    fn shards(&self) -> u32 {
        self.inner.shards()
    }

    async fn resolve_series(&self, tenant: &str, labels: &[Labels]) -> Result<Vec<(u64, bool)>> {
        let r = self.inner.resolve_series(tenant, labels).await;
        if let Ok(ids) = &r {
            let units: u64 = ids
                .iter()
                .zip(labels)
                .filter(|((_, created), _)| *created)
                .map(|(_, l)| {
                    let size: usize = l.iter().map(|p| p.name.len() + p.value.len()).sum();
                    (size + ITEM_OVERHEAD).div_ceil(1024) as u64
                })
                .sum();
            self.usage.add_hot_units(StoreOp::Write, units);
        }
        self.count(StoreOp::Write, 0, r)
    }

    async fn write(
        &self,
        tenant: &str,
        segments: &[EncodedSegment],
        metadata: &[MetricMetadata],
    ) -> Result<()> {
        let bytes: usize = segments.iter().map(|s| s.bytes.len()).sum();
        let r = self.inner.write(tenant, segments, metadata).await;
        if r.is_ok() {
            let units = segments
                .iter()
                .map(|s| (s.bytes.len() + ITEM_OVERHEAD).div_ceil(1024) as u64)
                .sum::<u64>()
                + metadata.len() as u64;
            self.usage.add_hot_units(StoreOp::Write, units);
        }
        self.count(StoreOp::Write, bytes as u64, r)
    }

    async fn find_series(&self, tenant: &str, matchers: &[Matcher]) -> Result<Vec<IndexedSeries>> {
        let r = self.inner.find_series(tenant, matchers).await;
        self.count(StoreOp::Read, 0, r)
    }

    async fn read_segments(&self, tenant: &str, key: SegmentKey) -> Result<Vec<Vec<u8>>> {
        let r = self.inner.read_segments(tenant, key).await;
        let bytes = r
            .as_ref()
            .map_or(0, |segs| segs.iter().map(Vec::len).sum::<usize>());
        if r.is_ok() {
            self.usage
                .add_hot_units(StoreOp::Read, bytes.div_ceil(4096).max(1) as u64);
        }
        self.count(StoreOp::Read, bytes as u64, r)
    }

    async fn metadata(&self, tenant: &str) -> Result<Vec<MetricMetadata>> {
        let r = self.inner.metadata(tenant).await;
        self.count(StoreOp::Read, 0, r)
    }

    async fn tenants(&self) -> Result<Vec<String>> {
        let r = self.inner.tenants().await;
        self.count(StoreOp::List, 0, r)
    }

    async fn buckets(&self, tenant: &str) -> Result<Vec<i64>> {
        let r = self.inner.buckets(tenant).await;
        self.count(StoreOp::List, 0, r)
    }

    async fn delete_bucket(&self, tenant: &str, bucket: i64) -> Result<()> {
        let r = self.inner.delete_bucket(tenant, bucket).await;
        self.count(StoreOp::Delete, 0, r)
    }
}
