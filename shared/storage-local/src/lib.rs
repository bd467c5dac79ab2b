//! The embedded storage backend: one redb file under the data directory.
//!
//! It implements [`HotStore`], so [`ember_storage::hot::HotTier`] turns it into a
//! full storage: packed segments keyed by (tenant, bucket, shard, content id),
//! a series table (tenant, id) → labels, and metadata. Writes go through one
//! writer thread that commits many concurrent requests in one durable
//! transaction (group commit), so every acknowledged write is fsynced without
//! paying one fsync per request.

mod codec;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use ember_model::{Labels, Matcher, MetricMetadata};
use ember_storage::hot::{HotStore, HotTier, IndexedSeries, SeriesIndex};
use ember_storage::layout::{EncodedSegment, SegmentKey};
use ember_storage::{Result, StorageError};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use writer::{WriteJob, Writer};

/// (tenant, series id) → encoded labels.
pub(crate) const SERIES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("series");
/// (tenant, bucket start ms, shard, content id) → encoded segment.
pub(crate) const SEGMENTS: TableDefinition<(&str, i64, u32, u64), &[u8]> =
    TableDefinition::new("segments");
/// (tenant, metric family) → encoded metadata.
pub(crate) const METADATA: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("metadata");

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "ember.redb";

/// State shared between the store and its writer thread.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) series: RwLock<HashMap<String, SeriesIndex>>,
    pub(crate) metadata: RwLock<HashMap<String, BTreeMap<String, MetricMetadata>>>,
}

/// The embedded hot store (see the crate docs).
pub struct LocalStore {
    db: Arc<Database>,
    shared: Arc<Shared>,
    writer: Writer,
    dir: PathBuf,
}

/// Opens (or creates) the embedded storage in `dir`, ready to use as a full storage.
pub fn open(dir: &Path) -> Result<HotTier<LocalStore>> {
    Ok(HotTier::new(LocalStore::open(dir)?))
}

fn internal(context: &str) -> impl Fn(redb::Error) -> StorageError + '_ {
    move |e| StorageError::internal(context, e)
}

impl LocalStore {
    /// Opens (or creates) `dir/ember.redb` and loads the series index and metadata.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::internal(format!("creating {}", dir.display()), e))?;
        let path = dir.join(DB_FILE);
        let db = Database::create(&path)
            .map_err(|e| StorageError::internal(format!("opening {}", path.display()), e))?;
        let txn = db
            .begin_write()
            .map_err(|e| internal("begin write")(e.into()))?;
        {
            txn.open_table(SERIES)
                .map_err(|e| internal("create series table")(e.into()))?;
            txn.open_table(SEGMENTS)
                .map_err(|e| internal("create segments table")(e.into()))?;
            txn.open_table(METADATA)
                .map_err(|e| internal("create metadata table")(e.into()))?;
        }
        txn.commit().map_err(|e| internal("commit")(e.into()))?;
        let shared = Arc::new(Shared::default());
        load_index(&db, &shared)?;
        let db = Arc::new(db);
        let writer = Writer::start(db.clone(), shared.clone());
        Ok(Self {
            db,
            shared,
            writer,
            dir: dir.to_path_buf(),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of series known for `tenant`.
    pub fn series_count(&self, tenant: &str) -> usize {
        self.shared
            .series
            .read()
            .map(|m| m.get(tenant).map_or(0, |i| i.len()))
            .unwrap_or(0)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> std::result::Result<T, redb::Error> + Send + 'static,
        context: &'static str,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StorageError::internal(context, e))?
            .map_err(internal(context))
    }
}

fn load_index(db: &Database, shared: &Shared) -> Result<()> {
    let txn = db
        .begin_read()
        .map_err(|e| internal("begin read")(e.into()))?;
    let series = txn
        .open_table(SERIES)
        .map_err(|e| internal("open series")(e.into()))?;
    let mut idx: HashMap<String, SeriesIndex> = HashMap::new();
    for row in series
        .iter()
        .map_err(|e| internal("scan series")(e.into()))?
    {
        let (k, v) = row.map_err(|e| internal("scan series")(e.into()))?;
        let (tenant, id) = k.value();
        let labels = codec::decode_labels(v.value())
            .map_err(|e| StorageError::internal(format!("series {id} of tenant {tenant}"), e))?;
        idx.entry(tenant.to_string())
            .or_default()
            .insert(id, labels);
    }
    let md_table = txn
        .open_table(METADATA)
        .map_err(|e| internal("open metadata")(e.into()))?;
    let mut md: HashMap<String, BTreeMap<String, MetricMetadata>> = HashMap::new();
    for row in md_table
        .iter()
        .map_err(|e| internal("scan metadata")(e.into()))?
    {
        let (k, v) = row.map_err(|e| internal("scan metadata")(e.into()))?;
        let (tenant, family) = k.value();
        let m = codec::decode_metadata(family, v.value()).map_err(|e| {
            StorageError::internal(format!("metadata {family} of tenant {tenant}"), e)
        })?;
        md.entry(tenant.to_string())
            .or_default()
            .insert(family.to_string(), m);
    }
    *shared
        .series
        .write()
        .map_err(|e| StorageError::internal("lock", e))? = idx;
    *shared
        .metadata
        .write()
        .map_err(|e| StorageError::internal("lock", e))? = md;
    Ok(())
}

#[async_trait]
impl HotStore for LocalStore {
    async fn resolve_series(&self, tenant: &str, labels: &[Labels]) -> Result<Vec<(u64, bool)>> {
        {
            let idx = self
                .shared
                .series
                .read()
                .map_err(|e| StorageError::internal("lock", e))?;
            if let Some(i) = idx.get(tenant) {
                let known: Option<Vec<(u64, bool)>> = labels
                    .iter()
                    .map(|l| i.get(l).map(|id| (id, false)))
                    .collect();
                if let Some(known) = known {
                    return Ok(known);
                }
            }
        }
        self.writer
            .submit(WriteJob::Resolve {
                tenant: tenant.to_string(),
                labels: labels.to_vec(),
            })
            .await
    }

    async fn write(
        &self,
        tenant: &str,
        segments: &[EncodedSegment],
        metadata: &[MetricMetadata],
    ) -> Result<()> {
        if segments.is_empty() && metadata.is_empty() {
            return Ok(());
        }
        self.writer
            .submit(WriteJob::Write {
                tenant: tenant.to_string(),
                segments: segments.to_vec(),
                metadata: metadata.to_vec(),
            })
            .await
            .map(|_| ())
    }

    async fn find_series(&self, tenant: &str, matchers: &[Matcher]) -> Result<Vec<IndexedSeries>> {
        let idx = self
            .shared
            .series
            .read()
            .map_err(|e| StorageError::internal("lock", e))?;
        Ok(idx
            .get(tenant)
            .map(|i| i.find(matchers))
            .unwrap_or_default())
    }

    async fn read_segments(&self, tenant: &str, key: SegmentKey) -> Result<Vec<Vec<u8>>> {
        let tenant = tenant.to_string();
        self.blocking(
            move |db| {
                let txn = db.begin_read()?;
                let table = txn.open_table(SEGMENTS)?;
                let lo = (tenant.as_str(), key.bucket, key.shard, 0u64);
                let hi = (tenant.as_str(), key.bucket, key.shard, u64::MAX);
                let mut out = Vec::new();
                for row in table.range(lo..=hi)? {
                    out.push(row?.1.value().to_vec());
                }
                Ok(out)
            },
            "reading segments",
        )
        .await
    }

    async fn metadata(&self, tenant: &str) -> Result<Vec<MetricMetadata>> {
        let md = self
            .shared
            .metadata
            .read()
            .map_err(|e| StorageError::internal("lock", e))?;
        Ok(md
            .get(tenant)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn tenants(&self) -> Result<Vec<String>> {
        let idx = self
            .shared
            .series
            .read()
            .map_err(|e| StorageError::internal("lock", e))?;
        let mut t: Vec<String> = idx.keys().cloned().collect();
        t.sort();
        Ok(t)
    }

    async fn buckets(&self, tenant: &str) -> Result<Vec<i64>> {
        let tenant = tenant.to_string();
        self.blocking(
            move |db| {
                let txn = db.begin_read()?;
                let table = txn.open_table(SEGMENTS)?;
                let mut out: Vec<i64> = Vec::new();
                let mut from = i64::MIN;
                // Skip from bucket to bucket instead of visiting every segment.
                loop {
                    let lo = (tenant.as_str(), from, 0u32, 0u64);
                    let hi = (tenant.as_str(), i64::MAX, u32::MAX, u64::MAX);
                    let Some(row) = table.range(lo..=hi)?.next() else {
                        break;
                    };
                    let bucket = row?.0.value().1;
                    out.push(bucket);
                    match bucket.checked_add(1) {
                        Some(next) => from = next,
                        None => break,
                    }
                }
                Ok(out)
            },
            "listing buckets",
        )
        .await
    }

    async fn delete_bucket(&self, tenant: &str, bucket: i64) -> Result<()> {
        self.writer
            .submit(WriteJob::DeleteBucket {
                tenant: tenant.to_string(),
                bucket,
            })
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests;
