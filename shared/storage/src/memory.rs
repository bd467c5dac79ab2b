//! An in-memory store: the reference implementation of the storage traits,
//! used by the PromQL test runner and unit tests. Not durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use async_trait::async_trait;
use ember_model::matcher::matches_all;
use ember_model::sample::sort_and_dedup_samples;
use ember_model::{Labels, Matcher, MetricMetadata, Series};

use crate::{AppendBatch, AppendStats, Appender, Querier, Result, StorageError};

#[derive(Default)]
struct Tenant {
    series: HashMap<Labels, Vec<ember_model::Sample>>,
    metadata: BTreeMap<String, MetricMetadata>,
}

/// Keeps everything in memory; cheap to create, for tests and the PromQL runner.
#[derive(Default)]
pub struct MemStorage {
    tenants: RwLock<HashMap<String, Tenant>>,
}

impl MemStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes every series and sample of every tenant (the test scripts' `clear`).
    pub fn clear(&self) {
        if let Ok(mut t) = self.tenants.write() {
            t.clear();
        }
    }

    /// Appends synchronously (for test loaders that are not async).
    pub fn append_sync(&self, tenant: &str, batch: AppendBatch) -> Result<AppendStats> {
        let mut tenants = self
            .tenants
            .write()
            .map_err(|e| StorageError::internal("lock", e))?;
        let t = tenants.entry(tenant.to_string()).or_default();
        let mut stats = AppendStats::default();
        for s in batch.series {
            stats.samples += s.samples.len();
            let entry = t.series.entry(s.labels).or_insert_with(|| {
                stats.series_created += 1;
                Vec::new()
            });
            entry.extend(s.samples);
            sort_and_dedup_samples(entry);
        }
        for m in batch.metadata {
            t.metadata.insert(m.metric_family_name.clone(), m);
        }
        Ok(stats)
    }

    /// Selects synchronously (see [`Querier::select`]).
    pub fn select_sync(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<Series>> {
        let tenants = self
            .tenants
            .read()
            .map_err(|e| StorageError::internal("lock", e))?;
        let Some(t) = tenants.get(tenant) else {
            return Ok(Vec::new());
        };
        Ok(t.series
            .iter()
            .filter(|(l, _)| matches_all(matchers, l))
            .filter_map(|(l, samples)| {
                let lo = samples.partition_point(|s| s.t < start);
                let hi = samples.partition_point(|s| s.t <= end);
                (lo < hi).then(|| Series::new(l.clone(), samples[lo..hi].to_vec()))
            })
            .collect())
    }
}

#[async_trait]
impl Appender for MemStorage {
    async fn append(&self, tenant: &str, batch: AppendBatch) -> Result<AppendStats> {
        self.append_sync(tenant, batch)
    }
}

#[async_trait]
impl Querier for MemStorage {
    async fn select(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<Series>> {
        self.select_sync(tenant, matchers, start, end)
    }

    async fn series(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Result<Vec<Labels>> {
        let mut out = Vec::new();
        for set in crate::matcher_sets_or_all(matcher_sets) {
            out.extend(
                self.select_sync(tenant, set, start, end)?
                    .into_iter()
                    .map(|s| s.labels),
            );
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn metadata(&self, tenant: &str, metric: Option<&str>) -> Result<Vec<MetricMetadata>> {
        let tenants = self
            .tenants
            .read()
            .map_err(|e| StorageError::internal("lock", e))?;
        let Some(t) = tenants.get(tenant) else {
            return Ok(Vec::new());
        };
        Ok(t.metadata
            .values()
            .filter(|m| metric.is_none_or(|n| m.metric_family_name == n))
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_model::Sample;

    #[tokio::test]
    async fn retried_append_does_not_duplicate() {
        let store = MemStorage::new();
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let batch = AppendBatch {
            series: vec![Series::new(
                labels.clone(),
                vec![Sample::new(1000, 1.0), Sample::new(2000, 1.0)],
            )],
            metadata: vec![],
        };
        store.append("t", batch.clone()).await.unwrap();
        store.append("t", batch).await.unwrap();
        let got = store
            .select("t", &[Matcher::equal("job", "a")], 0, 5000)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples.len(), 2);
        assert!(
            store
                .select("other", &[], 0, 5000)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
