//! The embedded store shared by several processes: the Lambda functions under
//! `cargo lambda watch` are separate processes on one data directory, and the embedded
//! database can be open in one process at a time. [`SharedDirStorage`] opens it for each
//! call and closes it right after, waiting while another process holds it, so ingest,
//! query, scrape, rules and compact all see the same data locally.
//!
//! This is for local development only (each call pays an open, a few milliseconds); in
//! AWS the functions use DynamoDB and S3.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ember_blocks::{CompactionConfig, CompactionReport, Compactor, SharedHot, TieredStorage};
use ember_model::{Labels, Matcher, MetricMetadata, Series};
use ember_storage::{AppendBatch, AppendStats, Appender, Querier, Result, StorageError};
use ember_storage_local::LocalStore;

use crate::backend::RunCompaction;

/// How long a call waits for another process to release the database by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);

type Opened = (
    Arc<TieredStorage<SharedHot<LocalStore>>>,
    Compactor<LocalStore>,
);

/// Embedded storage in `dir`, opened per call (see the module docs).
#[derive(Debug, Clone)]
pub struct SharedDirStorage {
    dir: PathBuf,
    lock_wait: Duration,
}

impl SharedDirStorage {
    /// Storage in `dir`; a call waits up to `lock_wait` for another process to close it.
    pub fn new(dir: impl Into<PathBuf>, lock_wait: Duration) -> Self {
        Self {
            dir: dir.into(),
            lock_wait,
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens the store, retrying while another process has it open.
    async fn open(&self) -> Result<Opened> {
        let deadline = Instant::now() + self.lock_wait;
        let mut pause = Duration::from_millis(5);
        loop {
            let dir = self.dir.clone();
            let opened = tokio::task::spawn_blocking(move || LocalStore::open(&dir))
                .await
                .map_err(|e| StorageError::internal("opening the embedded store", e))?;
            match opened {
                Ok(store) => {
                    return Ok(ember_blocks::open_local_tiered(Arc::new(store), &self.dir));
                }
                Err(e) if Instant::now() + pause < deadline => {
                    tracing::debug!(error = %e, "embedded store busy; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(e) => {
                    return Err(StorageError::Unavailable(format!(
                        "embedded store in {} still held by another process after {:?}: {e}",
                        self.dir.display(),
                        self.lock_wait
                    )));
                }
            }
        }
    }
}

#[async_trait]
impl Appender for SharedDirStorage {
    async fn append(&self, tenant: &str, batch: AppendBatch) -> Result<AppendStats> {
        let (storage, _c) = self.open().await?;
        storage.append(tenant, batch).await
    }
}

#[async_trait]
impl Querier for SharedDirStorage {
    async fn select(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<Series>> {
        let (storage, _c) = self.open().await?;
        storage.select(tenant, matchers, start, end).await
    }

    async fn series(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Result<Vec<Labels>> {
        let (storage, _c) = self.open().await?;
        storage.series(tenant, matcher_sets, start, end).await
    }

    async fn label_names(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>> {
        let (storage, _c) = self.open().await?;
        storage.label_names(tenant, matcher_sets, start, end).await
    }

    async fn label_values(
        &self,
        tenant: &str,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>> {
        let (storage, _c) = self.open().await?;
        storage
            .label_values(tenant, name, matcher_sets, start, end)
            .await
    }

    async fn metadata(&self, tenant: &str, metric: Option<&str>) -> Result<Vec<MetricMetadata>> {
        let (storage, _c) = self.open().await?;
        storage.metadata(tenant, metric).await
    }
}

#[async_trait]
impl RunCompaction for SharedDirStorage {
    async fn run(&self, cfg: &CompactionConfig) -> Result<CompactionReport> {
        let (_s, compactor) = self.open().await?;
        compactor.run(cfg).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_model::Sample;

    fn batch(t: i64, v: f64) -> AppendBatch {
        AppendBatch {
            series: vec![Series::new(
                Labels::from_pairs([("__name__", "m"), ("job", "j")]),
                vec![Sample::new(t, v)],
            )],
            metadata: Vec::new(),
        }
    }

    #[tokio::test]
    async fn two_handles_share_one_directory() {
        let dir = tempfile::tempdir().unwrap();
        let a = SharedDirStorage::new(dir.path(), Duration::from_secs(5));
        let b = SharedDirStorage::new(dir.path(), Duration::from_secs(5));
        let t = 1_700_000_000_000;
        a.append("default", batch(t, 1.0)).await.unwrap();
        b.append("default", batch(t + 1000, 2.0)).await.unwrap();
        let got = a
            .select("default", &[Matcher::equal("__name__", "m")], t, t + 1000)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        let values: Vec<f64> = got[0].samples.iter().map(|s| s.v).collect();
        assert_eq!(values, vec![1.0, 2.0]);
    }

    #[tokio::test]
    async fn waits_for_a_holder_then_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let held = LocalStore::open(dir.path()).unwrap();
        let s = SharedDirStorage::new(dir.path(), Duration::from_millis(300));
        let err = s.metadata("default", None).await.unwrap_err();
        assert!(matches!(err, StorageError::Unavailable(_)), "{err}");
        // Released while a call waits: the call goes through.
        let s = SharedDirStorage::new(dir.path(), Duration::from_secs(10));
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(held);
        });
        s.append("default", batch(1_700_000_000_000, 3.0))
            .await
            .unwrap();
        release.await.unwrap();
    }
}
