//! The hot tier: recent samples as packed segments in a key-value store.
//!
//! [`HotStore`] is the small set of operations a key-value backend provides
//! (redb locally, DynamoDB on AWS). [`HotTier`] turns any `HotStore` into a full
//! [`Appender`] + [`Querier`], so the write planning, series resolution and the
//! query-time merge exist once for every backend.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use ember_model::matcher::matches_all;
use ember_model::{Labels, Matcher, MetricMetadata, Series};

use crate::layout::{self, EncodedSegment, ResolvedSeries, SegmentKey, SeriesMerger};
use crate::{AppendBatch, AppendStats, Appender, Querier, Result, StorageError};

/// A series known to the index: its dense id and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedSeries {
    /// Tenant-wide dense series id.
    pub id: u64,
    /// The series' labels.
    pub labels: Labels,
}

/// What a key-value backend must provide for the hot tier.
#[async_trait]
pub trait HotStore: Send + Sync {
    /// Number of metric-name shards this store spreads segments over.
    fn shards(&self) -> u32 {
        layout::DEFAULT_SHARDS
    }

    /// Returns the id of every label set, allocating dense new ids durably for series
    /// never seen before. The flag says whether the id was created by this call.
    async fn resolve_series(&self, tenant: &str, labels: &[Labels]) -> Result<Vec<(u64, bool)>>;

    /// Durably stores the segments and metadata of one write, all or nothing. Writing a
    /// segment whose (key, content id) already exists is a no-op, which makes retries safe.
    async fn write(
        &self,
        tenant: &str,
        segments: &[EncodedSegment],
        metadata: &[MetricMetadata],
    ) -> Result<()>;

    /// Every indexed series matching all `matchers`, regardless of time.
    async fn find_series(&self, tenant: &str, matchers: &[Matcher]) -> Result<Vec<IndexedSeries>>;

    /// The encoded segments stored under one (bucket, shard).
    async fn read_segments(&self, tenant: &str, key: SegmentKey) -> Result<Vec<Vec<u8>>>;

    /// All metadata of the tenant.
    async fn metadata(&self, tenant: &str) -> Result<Vec<MetricMetadata>>;

    /// Tenants that have data (for compaction).
    async fn tenants(&self) -> Result<Vec<String>>;

    /// Start times of the buckets that hold segments, oldest first (queries and compaction).
    async fn buckets(&self, tenant: &str) -> Result<Vec<i64>>;

    /// Removes every segment of a bucket (after compaction covered it).
    async fn delete_bucket(&self, tenant: &str, bucket: i64) -> Result<()>;
}

/// Any [`HotStore`] as a complete [`Appender`] + [`Querier`].
pub struct HotTier<H> {
    store: H,
}

impl<H: HotStore> HotTier<H> {
    /// Wraps a hot store.
    pub fn new(store: H) -> Self {
        Self { store }
    }

    /// The wrapped store.
    pub fn store(&self) -> &H {
        &self.store
    }

    /// Series matching `matchers` with their samples in `[start, end]`, keyed by id.
    pub async fn select_indexed(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<(IndexedSeries, Vec<ember_model::Sample>)>> {
        let found = self.store.find_series(tenant, matchers).await?;
        if found.is_empty() || start > end {
            return Ok(Vec::new());
        }
        let shards = self.store.shards();
        let wanted: HashSet<u64> = found.iter().map(|s| s.id).collect();
        let wanted_shards: HashSet<u32> = found
            .iter()
            .map(|s| layout::shard_of(s.labels.metric_name().unwrap_or(""), shards))
            .collect();
        let first = layout::bucket_of(start);
        // Only buckets that exist: a range like [MinTime, MaxTime] must not walk every hour.
        let buckets: Vec<i64> = self
            .store
            .buckets(tenant)
            .await?
            .into_iter()
            .filter(|b| *b >= first && *b <= end)
            .collect();
        let mut merger = SeriesMerger::new();
        for bucket in buckets {
            for &shard in &wanted_shards {
                for bytes in self
                    .store
                    .read_segments(tenant, SegmentKey { bucket, shard })
                    .await?
                {
                    merger
                        .add_segment(&bytes, Some(&wanted), start, end)
                        .map_err(|e| {
                            StorageError::internal(
                                format!("reading segment bucket={bucket} shard={shard}"),
                                e,
                            )
                        })?;
                }
            }
        }
        let mut samples = merger.finish();
        Ok(found
            .into_iter()
            .filter_map(|s| samples.remove(&s.id).map(|smp| (s, smp)))
            .collect())
    }
}

#[async_trait]
impl<H: HotStore> Appender for HotTier<H> {
    async fn append(&self, tenant: &str, batch: AppendBatch) -> Result<AppendStats> {
        let labels: Vec<Labels> = batch.series.iter().map(|s| s.labels.clone()).collect();
        let ids = if labels.is_empty() {
            Vec::new()
        } else {
            self.store.resolve_series(tenant, &labels).await?
        };
        if ids.len() != batch.series.len() {
            return Err(StorageError::internal(
                "resolving series",
                "store returned a wrong number of ids",
            ));
        }
        let resolved = batch
            .series
            .iter()
            .zip(&ids)
            .map(|(s, (id, _))| ResolvedSeries {
                series_id: *id,
                metric_name: s.labels.metric_name().unwrap_or(""),
                samples: &s.samples,
            });
        let segments = layout::plan_segments(resolved, self.store.shards());
        self.store.write(tenant, &segments, &batch.metadata).await?;
        Ok(AppendStats {
            samples: batch.sample_count(),
            series_created: ids.iter().filter(|(_, created)| *created).count(),
        })
    }
}

#[async_trait]
impl<H: HotStore> Querier for HotTier<H> {
    async fn select(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<Series>> {
        Ok(self
            .select_indexed(tenant, matchers, start, end)
            .await?
            .into_iter()
            .map(|(s, samples)| Series::new(s.labels, samples))
            .collect())
    }

    async fn series(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Result<Vec<Labels>> {
        let sets = crate::matcher_sets_or_all(matcher_sets);
        let mut out: HashMap<u64, Labels> = HashMap::new();
        for set in sets {
            for (s, _) in self.select_indexed(tenant, set, start, end).await? {
                out.entry(s.id).or_insert(s.labels);
            }
        }
        let mut labels: Vec<Labels> = out.into_values().collect();
        labels.sort();
        Ok(labels)
    }

    async fn metadata(&self, tenant: &str, metric: Option<&str>) -> Result<Vec<MetricMetadata>> {
        let mut md = self.store.metadata(tenant).await?;
        md.retain(|m| metric.is_none_or(|n| m.metric_family_name == n));
        md.sort_by(|a, b| a.metric_family_name.cmp(&b.metric_family_name));
        Ok(md)
    }
}

/// An in-memory series index with a metric-name lookup, for hot stores that keep their
/// index cached (both the embedded and the DynamoDB store do, across warm invocations).
#[derive(Debug, Default, Clone)]
pub struct SeriesIndex {
    by_labels: HashMap<Labels, u64>,
    by_id: HashMap<u64, Labels>,
    by_name: HashMap<String, Vec<u64>>,
    next_id: u64,
}

impl SeriesIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of a known label set.
    pub fn get(&self, labels: &Labels) -> Option<u64> {
        self.by_labels.get(labels).copied()
    }

    /// The labels of a known id.
    pub fn labels(&self, id: u64) -> Option<&Labels> {
        self.by_id.get(&id)
    }

    /// Records a series under `id` (ids must be unique).
    pub fn insert(&mut self, id: u64, labels: Labels) {
        self.next_id = self.next_id.max(id + 1);
        self.by_name
            .entry(labels.metric_name().unwrap_or("").to_string())
            .or_default()
            .push(id);
        self.by_id.insert(id, labels.clone());
        self.by_labels.insert(labels, id);
    }

    /// The next unused id.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every series matching all `matchers`; uses the metric-name lookup for `__name__="x"`.
    pub fn find(&self, matchers: &[Matcher]) -> Vec<IndexedSeries> {
        let by_name = matchers.iter().find(|m| {
            m.name == ember_model::METRIC_NAME && matches!(m.op, ember_model::MatchOp::Equal)
        });
        let mk = |id: &u64| {
            self.by_id.get(id).map(|l| IndexedSeries {
                id: *id,
                labels: l.clone(),
            })
        };
        match by_name {
            Some(m) => self
                .by_name
                .get(&m.value)
                .into_iter()
                .flatten()
                .filter_map(mk)
                .filter(|s| matches_all(matchers, &s.labels))
                .collect(),
            None => self
                .by_id
                .iter()
                .filter(|(_, l)| matches_all(matchers, l))
                .map(|(id, l)| IndexedSeries {
                    id: *id,
                    labels: l.clone(),
                })
                .collect(),
        }
    }
}
