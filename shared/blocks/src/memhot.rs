//! An in-memory [`HotStore`], for tests and benchmarks of everything built on the trait.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use ember_model::{Labels, Matcher, MetricMetadata};
use ember_storage::Result;
use ember_storage::hot::{HotStore, IndexedSeries, SeriesIndex};
use ember_storage::layout::{EncodedSegment, SegmentKey};

#[derive(Default)]
struct TenantData {
    index: SeriesIndex,
    segments: BTreeMap<SegmentKey, BTreeMap<u64, Vec<u8>>>,
    metadata: BTreeMap<String, MetricMetadata>,
}

/// A [`HotStore`] kept in memory.
#[derive(Default)]
pub struct MemHotStore {
    tenants: Mutex<HashMap<String, TenantData>>,
}

impl MemHotStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, tenant: &str, f: impl FnOnce(&mut TenantData) -> T) -> T {
        let mut g = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        f(g.entry(tenant.to_string()).or_default())
    }

    /// Number of stored segments of a tenant (tests).
    pub fn segment_count(&self, tenant: &str) -> usize {
        self.with(tenant, |t| t.segments.values().map(BTreeMap::len).sum())
    }
}

#[async_trait]
impl HotStore for MemHotStore {
    async fn resolve_series(&self, tenant: &str, labels: &[Labels]) -> Result<Vec<(u64, bool)>> {
        Ok(self.with(tenant, |t| {
            labels
                .iter()
                .map(|l| match t.index.get(l) {
                    Some(id) => (id, false),
                    None => {
                        let id = t.index.next_id();
                        t.index.insert(id, l.clone());
                        (id, true)
                    }
                })
                .collect()
        }))
    }

    async fn write(
        &self,
        tenant: &str,
        segments: &[EncodedSegment],
        metadata: &[MetricMetadata],
    ) -> Result<()> {
        self.with(tenant, |t| {
            for s in segments {
                t.segments
                    .entry(s.key)
                    .or_default()
                    .insert(s.content_id, s.bytes.clone());
            }
            for m in metadata {
                t.metadata.insert(m.metric_family_name.clone(), m.clone());
            }
        });
        Ok(())
    }

    async fn find_series(&self, tenant: &str, matchers: &[Matcher]) -> Result<Vec<IndexedSeries>> {
        Ok(self.with(tenant, |t| t.index.find(matchers)))
    }

    async fn read_segments(&self, tenant: &str, key: SegmentKey) -> Result<Vec<Vec<u8>>> {
        Ok(self.with(tenant, |t| {
            t.segments
                .get(&key)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default()
        }))
    }

    async fn metadata(&self, tenant: &str) -> Result<Vec<MetricMetadata>> {
        Ok(self.with(tenant, |t| t.metadata.values().cloned().collect()))
    }

    async fn tenants(&self) -> Result<Vec<String>> {
        let g = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<String> = g.keys().cloned().collect();
        v.sort();
        Ok(v)
    }

    async fn buckets(&self, tenant: &str) -> Result<Vec<i64>> {
        Ok(self.with(tenant, |t| {
            let mut b: Vec<i64> = t
                .segments
                .iter()
                .filter(|(_, m)| !m.is_empty())
                .map(|(k, _)| k.bucket)
                .collect();
            b.dedup();
            b
        }))
    }

    async fn delete_bucket(&self, tenant: &str, bucket: i64) -> Result<()> {
        self.with(tenant, |t| t.segments.retain(|k, _| k.bucket != bucket));
        Ok(())
    }
}
