//! The block index (manifest): which blocks a tenant has, so a query plans with one read.
//!
//! The index is one small document per tenant, replaced as a whole with optimistic
//! concurrency (a generation number): the compactor loads it, changes it and stores it
//! only if nobody else stored a newer generation meanwhile. Locally it is a JSON file in
//! the object store; on AWS a DynamoDB item (see `ember-storage-aws`).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use ember_storage::{Result, StorageError};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::objstore::{ObjectStore, ObjectStoreError};

/// One block in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEntry {
    /// Object key of the Parquet file.
    pub key: String,
    /// Earliest sample (ms).
    pub min_t: i64,
    /// Latest sample (ms).
    pub max_t: i64,
    /// 0 for blocks compacted from hot buckets, 1 for merged (daily) blocks.
    pub level: u32,
    /// Series (rows).
    pub series: u64,
    /// Samples.
    pub samples: u64,
    /// File size in bytes.
    pub size: u64,
    /// Footer length in bytes (one ranged read fetches it).
    pub footer_len: u64,
    /// Hot buckets (start ms) whose segments went into this block (level 0).
    #[serde(default)]
    pub buckets: Vec<i64>,
}

impl BlockEntry {
    /// Whether the block has samples in `[start, end]` (by its time range).
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.min_t <= end && self.max_t >= start
    }
}

/// An object that left the index and may be deleted once no query can still read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDelete {
    /// Object key.
    pub key: String,
    /// When it left the index (ms).
    pub since_ms: i64,
}

/// A tenant's block index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockIndex {
    /// Incremented by every store; 0 means "never stored".
    pub generation: u64,
    /// Blocks, in no particular order.
    pub blocks: Vec<BlockEntry>,
    /// Objects removed from the index, deleted after a delay.
    #[serde(default)]
    pub pending_delete: Vec<PendingDelete>,
}

impl BlockIndex {
    /// Serialises the index (JSON).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| StorageError::internal("encoding block index", e))
    }

    /// Parses an index written by [`BlockIndex::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| StorageError::internal("decoding block index", e))
    }

    /// Blocks overlapping `[start, end]`, oldest first.
    pub fn overlapping(&self, start: i64, end: i64) -> Vec<&BlockEntry> {
        let mut v: Vec<&BlockEntry> = self
            .blocks
            .iter()
            .filter(|b| b.overlaps(start, end))
            .collect();
        v.sort_by(|a, b| (a.min_t, &a.key).cmp(&(b.min_t, &b.key)));
        v
    }
}

/// Where block indexes are kept.
#[async_trait]
pub trait BlockIndexStore: Send + Sync {
    /// The tenant's index (an empty one with generation 0 if none was stored).
    async fn load(&self, tenant: &str) -> Result<BlockIndex>;

    /// Stores `index` (whose `generation` must be one more than the loaded one) if the
    /// stored generation is still `index.generation - 1`. Returns `false` on a conflict.
    async fn store(&self, tenant: &str, index: &BlockIndex) -> Result<bool>;
}

/// A tenant name as a safe path component: kept when it is plain, hex-encoded otherwise.
pub fn tenant_component(tenant: &str) -> String {
    let plain = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !tenant.starts_with("x-");
    if plain {
        tenant.to_string()
    } else {
        let hex: String = tenant.bytes().map(|b| format!("{b:02x}")).collect();
        format!("x-{hex}")
    }
}

/// The block index as a JSON object `index/<tenant>.json` in an object store (the
/// embedded backend). Stores are serialised within the process; across processes the
/// generation check narrows, but does not close, the race, so run one compactor at a time.
pub struct ObjectBlockIndex {
    objects: Arc<dyn ObjectStore>,
    lock: Mutex<()>,
}

impl ObjectBlockIndex {
    /// An index kept in `objects`.
    pub fn new(objects: Arc<dyn ObjectStore>) -> Self {
        Self {
            objects,
            lock: Mutex::new(()),
        }
    }

    fn key(tenant: &str) -> String {
        format!("index/{}.json", tenant_component(tenant))
    }
}

#[async_trait]
impl BlockIndexStore for ObjectBlockIndex {
    async fn load(&self, tenant: &str) -> Result<BlockIndex> {
        match self.objects.get(&Self::key(tenant)).await {
            Ok(bytes) => BlockIndex::from_bytes(&bytes),
            Err(ObjectStoreError::NotFound(_)) => Ok(BlockIndex::default()),
            Err(e) => Err(e.into()),
        }
    }

    async fn store(&self, tenant: &str, index: &BlockIndex) -> Result<bool> {
        let _guard = self.lock.lock().await;
        let current = self.load(tenant).await?;
        if current.generation + 1 != index.generation {
            return Ok(false);
        }
        self.objects
            .put(&Self::key(tenant), Bytes::from(index.to_bytes()?))
            .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objstore::MemoryObjectStore;

    #[tokio::test]
    async fn generations_guard_concurrent_updates() {
        let idx = ObjectBlockIndex::new(Arc::new(MemoryObjectStore::new()));
        let mut a = idx.load("t").await.unwrap();
        assert_eq!(a.generation, 0);
        a.generation = 1;
        assert!(idx.store("t", &a).await.unwrap());
        assert!(
            !idx.store("t", &a).await.unwrap(),
            "same generation twice is a conflict"
        );
        assert_eq!(idx.load("t").await.unwrap().generation, 1);
        assert_eq!(tenant_component("team-a_1"), "team-a_1");
        assert_eq!(tenant_component("a/b"), "x-612f62");
    }
}
