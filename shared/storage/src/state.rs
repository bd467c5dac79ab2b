//! Small named blobs of process state that must outlive a process: alert state of rule
//! groups, scrape staleness state, notification-group state, CloudWatch import
//! watermarks. `ember serve` keeps them as files in the data directory; the Lambda
//! functions keep them in the DynamoDB table (`ember_storage_aws::DynamoStateStore`), so
//! they survive cold starts.
//!
//! Keys are namespaced by the caller (`rules/<group>`, `scrape/<job>`, …). Writes replace
//! the whole blob atomically; there is no partial update.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{Result, StorageError};

/// Stores one opaque blob per key, replacing it atomically on `put`.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The blob last stored under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `blob` under `key`, replacing the previous one atomically.
    async fn put(&self, key: &str, blob: Vec<u8>) -> Result<()>;
    /// Removes `key` (no error when it is absent).
    async fn delete(&self, key: &str) -> Result<()>;
}

/// An in-memory store (tests, or when persistence is not wanted).
#[derive(Debug, Default)]
pub struct MemStateStore {
    blobs: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl StateStore for MemStateStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let map = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(key).cloned())
    }

    async fn put(&self, key: &str, blob: Vec<u8>) -> Result<()> {
        let mut map = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key.to_string(), blob);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let mut map = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
        Ok(())
    }
}

/// A directory of files, one per key. Writes go to a temporary file, are fsynced and
/// renamed over the old one, so a crash leaves either the old or the new blob.
#[derive(Debug, Clone)]
pub struct FileStateStore {
    dir: PathBuf,
}

impl FileStateStore {
    /// A store under `dir` (created when missing).
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StorageError::internal(format!("creating {}", dir.display()), e))?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// File-name-safe and collision-free: the key's safe characters plus a hash of the key.
    fn path(&self, key: &str) -> PathBuf {
        let mut name: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if name.len() > 100 {
            name.truncate(100);
        }
        let h = fnv1a64(key.as_bytes());
        self.dir.join(format!("{name}-{h:016x}.json"))
    }
}

/// FNV-1a, 64 bit: a stable, dependency-free hash for file names.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[async_trait]
impl StateStore for FileStateStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key);
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::internal(
                format!("reading {}", path.display()),
                e,
            )),
        }
    }

    async fn put(&self, key: &str, blob: Vec<u8>) -> Result<()> {
        let path = self.path(key);
        let tmp = path.with_extension("json.tmp");
        let context = format!("writing {}", path.display());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&blob)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(|e| StorageError::internal(context.clone(), e))?
        .map_err(|e| StorageError::internal(context, e))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::internal(
                format!("removing {}", path.display()),
                e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn roundtrip(store: &dyn StateStore) {
        assert_eq!(store.get("rules/a;b").await.unwrap(), None);
        store.put("rules/a;b", b"one".to_vec()).await.unwrap();
        store.put("rules/a;c", b"two".to_vec()).await.unwrap();
        store.put("rules/a;b", b"three".to_vec()).await.unwrap();
        assert_eq!(
            store.get("rules/a;b").await.unwrap().as_deref(),
            Some(&b"three"[..])
        );
        assert_eq!(
            store.get("rules/a;c").await.unwrap().as_deref(),
            Some(&b"two"[..])
        );
        store.delete("rules/a;b").await.unwrap();
        store.delete("rules/a;b").await.unwrap();
        assert_eq!(store.get("rules/a;b").await.unwrap(), None);
    }

    #[tokio::test]
    async fn memory_store_roundtrips() {
        roundtrip(&MemStateStore::new()).await;
    }

    #[tokio::test]
    async fn file_store_roundtrips_and_persists() {
        let dir = std::env::temp_dir().join(format!("ember-state-{}", std::process::id()));
        let store = FileStateStore::new(&dir).unwrap();
        roundtrip(&store).await;
        store.put("k", b"kept".to_vec()).await.unwrap();
        let reopened = FileStateStore::new(&dir).unwrap();
        assert_eq!(
            reopened.get("k").await.unwrap().as_deref(),
            Some(&b"kept"[..])
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
