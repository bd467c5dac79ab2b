//! The query path over hot ∪ cold: [`TieredStorage`].
//!
//! Writes go to the hot tier. A query loads the tenant's block index (one read), reads
//! the hot buckets and the blocks that overlap its time range, and merges them per label
//! set, dropping duplicate timestamps — so a bucket that is both compacted and still hot
//! (between the index update and the hot delete, or after a crash there) reads once.
//! Parsed block footers are cached (they never change: block keys are content hashes).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ember_model::{Labels, Matcher, MetricMetadata, Sample, Series};
use ember_storage::hot::{HotStore, HotTier};
use ember_storage::{AppendBatch, AppendStats, Appender, Querier, Result};

use crate::block::{self, BlockFooter, BlockSeries, ReadMode};
use crate::index::{BlockEntry, BlockIndexStore};
use crate::objstore::ObjectStore;

/// Most footers kept in the cache before it is cleared.
const FOOTER_CACHE_MAX: usize = 4096;

/// Hot tier plus cold blocks behind one [`Appender`] + [`Querier`].
pub struct TieredStorage<H> {
    hot: HotTier<H>,
    index: Arc<dyn BlockIndexStore>,
    objects: Arc<dyn ObjectStore>,
    footers: Mutex<HashMap<String, Arc<BlockFooter>>>,
}

impl<H: HotStore> TieredStorage<H> {
    /// Combines a hot store with a block index and the object store holding the blocks.
    pub fn new(hot: H, index: Arc<dyn BlockIndexStore>, objects: Arc<dyn ObjectStore>) -> Self {
        Self {
            hot: HotTier::new(hot),
            index,
            objects,
            footers: Mutex::new(HashMap::new()),
        }
    }

    /// The hot tier.
    pub fn hot(&self) -> &HotTier<H> {
        &self.hot
    }

    /// The block index store.
    pub fn index(&self) -> &Arc<dyn BlockIndexStore> {
        &self.index
    }

    /// The object store.
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    async fn footer(&self, entry: &BlockEntry) -> Result<Arc<BlockFooter>> {
        if let Some(f) = self.cache().get(&entry.key) {
            return Ok(Arc::clone(f));
        }
        let footer = Arc::new(
            block::read_footer(
                self.objects.as_ref(),
                &entry.key,
                entry.size,
                Some(entry.footer_len),
            )
            .await?,
        );
        let mut cache = self.cache();
        if cache.len() >= FOOTER_CACHE_MAX {
            cache.clear();
        }
        cache.insert(entry.key.clone(), Arc::clone(&footer));
        Ok(footer)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<BlockFooter>>> {
        self.footers.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn cold(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        mode: ReadMode,
    ) -> Result<Vec<BlockSeries>> {
        if start > end {
            return Ok(Vec::new());
        }
        let index = self.index.load(tenant).await?;
        let mut out = Vec::new();
        for entry in index.overlapping(start, end) {
            let footer = self.footer(entry).await?;
            out.extend(
                block::read_series(
                    self.objects.as_ref(),
                    &entry.key,
                    &footer,
                    matchers,
                    start,
                    end,
                    mode,
                )
                .await?,
            );
        }
        Ok(out)
    }
}

#[async_trait]
impl<H: HotStore> Appender for TieredStorage<H> {
    async fn append(&self, tenant: &str, batch: AppendBatch) -> Result<AppendStats> {
        self.hot.append(tenant, batch).await
    }
}

#[async_trait]
impl<H: HotStore> Querier for TieredStorage<H> {
    async fn select(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<Series>> {
        let cold = self
            .cold(tenant, matchers, start, end, ReadMode::Samples)
            .await?;
        let hot = self.hot.select(tenant, matchers, start, end).await?;
        // Cold first, hot last: for equal timestamps the later (hot) sample wins.
        let mut merged: HashMap<Labels, Vec<Sample>> = HashMap::new();
        for s in cold {
            merged.entry(s.labels).or_default().extend(s.samples);
        }
        for s in hot {
            merged.entry(s.labels).or_default().extend(s.samples);
        }
        Ok(merged
            .into_iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(labels, samples)| {
                let mut series = Series::new(labels, samples);
                series.sort_and_dedup();
                series
            })
            .collect())
    }

    async fn series(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Result<Vec<Labels>> {
        let sets = ember_storage::matcher_sets_or_all(matcher_sets);
        let mut out: HashSet<Labels> = self
            .hot
            .series(tenant, sets, start, end)
            .await?
            .into_iter()
            .collect();
        for set in sets {
            out.extend(
                self.cold(tenant, set, start, end, ReadMode::LabelsOnly)
                    .await?
                    .into_iter()
                    .map(|s| s.labels),
            );
        }
        let mut v: Vec<Labels> = out.into_iter().collect();
        v.sort();
        Ok(v)
    }

    async fn metadata(&self, tenant: &str, metric: Option<&str>) -> Result<Vec<MetricMetadata>> {
        self.hot.metadata(tenant, metric).await
    }
}

/// A shared hot store (`Arc`), so one instance (and its caches) can serve both a
/// [`TieredStorage`] and a compactor.
pub struct SharedHot<H: ?Sized>(pub Arc<H>);

impl<H: ?Sized> Clone for SharedHot<H> {
    fn clone(&self) -> Self {
        SharedHot(Arc::clone(&self.0))
    }
}

#[async_trait]
impl<H: HotStore + ?Sized> HotStore for SharedHot<H> {
    fn shards(&self) -> u32 {
        self.0.shards()
    }
    async fn resolve_series(&self, tenant: &str, labels: &[Labels]) -> Result<Vec<(u64, bool)>> {
        self.0.resolve_series(tenant, labels).await
    }
    async fn write(
        &self,
        tenant: &str,
        segments: &[ember_storage::layout::EncodedSegment],
        metadata: &[MetricMetadata],
    ) -> Result<()> {
        self.0.write(tenant, segments, metadata).await
    }
    async fn find_series(
        &self,
        tenant: &str,
        matchers: &[Matcher],
    ) -> Result<Vec<ember_storage::hot::IndexedSeries>> {
        self.0.find_series(tenant, matchers).await
    }
    async fn read_segments(
        &self,
        tenant: &str,
        key: ember_storage::layout::SegmentKey,
    ) -> Result<Vec<Vec<u8>>> {
        self.0.read_segments(tenant, key).await
    }
    async fn metadata(&self, tenant: &str) -> Result<Vec<MetricMetadata>> {
        self.0.metadata(tenant).await
    }
    async fn tenants(&self) -> Result<Vec<String>> {
        self.0.tenants().await
    }
    async fn buckets(&self, tenant: &str) -> Result<Vec<i64>> {
        self.0.buckets(tenant).await
    }
    async fn delete_bucket(&self, tenant: &str, bucket: i64) -> Result<()> {
        self.0.delete_bucket(tenant, bucket).await
    }
}
