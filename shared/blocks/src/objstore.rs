//! Object stores: where block files (and, locally, the block index) live.
//!
//! The trait is deliberately small — whole-object puts, whole and ranged gets, deletes and a
//! prefix listing — so that the local filesystem, memory and S3 implement it the same way
//! and the block reader only ever asks for the byte ranges it needs.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use ember_storage::StorageError;

/// Why an object-store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreError {
    /// The object does not exist.
    #[error("object not found: {0}")]
    NotFound(String),
    /// Throttled, timed out or temporarily unreachable: retrying later may succeed.
    #[error("object store unavailable while {context}: {message}")]
    Unavailable {
        /// What was being done.
        context: String,
        /// What went wrong.
        message: String,
    },
    /// Anything else (bad key, I/O fault, unexpected answer).
    #[error("object store error while {context}: {message}")]
    Other {
        /// What was being done.
        context: String,
        /// What went wrong.
        message: String,
    },
}

impl ObjectStoreError {
    /// An [`ObjectStoreError::Other`] with context.
    pub fn other(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        ObjectStoreError::Other {
            context: context.into(),
            message: err.to_string(),
        }
    }

    /// An [`ObjectStoreError::Unavailable`] with context.
    pub fn unavailable(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        ObjectStoreError::Unavailable {
            context: context.into(),
            message: err.to_string(),
        }
    }
}

impl From<ObjectStoreError> for StorageError {
    fn from(e: ObjectStoreError) -> Self {
        match e {
            ObjectStoreError::Unavailable { .. } => StorageError::Unavailable(e.to_string()),
            ObjectStoreError::NotFound(_) | ObjectStoreError::Other { .. } => {
                StorageError::internal("object store", e)
            }
        }
    }
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// A flat key → bytes store with ranged reads (S3, a directory, memory).
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Stores `data` under `key`, replacing any previous object, atomically: a reader sees
    /// the old or the new object, never a partial one.
    async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectStoreError>;

    /// The whole object.
    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError>;

    /// Bytes `range` of the object (a ranged GET on S3).
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectStoreError>;

    /// Deletes the object; deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError>;

    /// Objects whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, ObjectStoreError>;
}

fn check_key(key: &str) -> Result<(), ObjectStoreError> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        || key.contains('\\')
        || key.contains('\0');
    if bad {
        Err(ObjectStoreError::other(
            format!("checking key {key:?}"),
            "invalid object key",
        ))
    } else {
        Ok(())
    }
}

/// Objects as files under a root directory (the embedded backend's `DATA_DIR/blocks`).
/// Puts write a temporary file, fsync it and rename it into place.
#[derive(Debug, Clone)]
pub struct LocalFsStore {
    root: PathBuf,
}

impl LocalFsStore {
    /// A store rooted at `root` (created on first put).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, ObjectStoreError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io_err(context: String, e: std::io::Error, key: &str) -> ObjectStoreError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ObjectStoreError::NotFound(key.to_string())
    } else {
        ObjectStoreError::other(context, e)
    }
}

#[async_trait]
impl ObjectStore for LocalFsStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectStoreError> {
        let path = self.path(key)?;
        let key = key.to_string();
        tokio::task::spawn_blocking(move || -> Result<(), ObjectStoreError> {
            use std::io::Write;
            let ctx = || format!("writing {}", path.display());
            let dir = path
                .parent()
                .ok_or_else(|| ObjectStoreError::other(ctx(), "no parent directory"))?;
            std::fs::create_dir_all(dir).map_err(|e| ObjectStoreError::other(ctx(), e))?;
            let tmp = dir.join(format!(
                ".tmp-{}-{}",
                std::process::id(),
                xxhash_rust::xxh64::xxh64(key.as_bytes(), 0)
            ));
            let mut f =
                std::fs::File::create(&tmp).map_err(|e| ObjectStoreError::other(ctx(), e))?;
            f.write_all(&data)
                .map_err(|e| ObjectStoreError::other(ctx(), e))?;
            f.sync_all()
                .map_err(|e| ObjectStoreError::other(ctx(), e))?;
            drop(f);
            std::fs::rename(&tmp, &path).map_err(|e| ObjectStoreError::other(ctx(), e))?;
            if let Ok(d) = std::fs::File::open(dir) {
                // Persist the rename; a failure here only weakens durability on power loss.
                let _ = d.sync_all();
            }
            Ok(())
        })
        .await
        .map_err(|e| ObjectStoreError::other("joining file writer", e))?
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        let path = self.path(key)?;
        tokio::fs::read(&path)
            .await
            .map(Bytes::from)
            .map_err(|e| io_err(format!("reading {}", path.display()), e, key))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectStoreError> {
        let path = self.path(key)?;
        let key = key.to_string();
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Seek};
            let ctx = || {
                format!(
                    "reading {} bytes {}..{}",
                    path.display(),
                    range.start,
                    range.end
                )
            };
            let mut f = std::fs::File::open(&path).map_err(|e| io_err(ctx(), e, &key))?;
            let len = f.metadata().map_err(|e| io_err(ctx(), e, &key))?.len();
            if range.start > range.end || range.end > len {
                return Err(ObjectStoreError::other(
                    ctx(),
                    format!("range outside object of {len} bytes"),
                ));
            }
            f.seek(std::io::SeekFrom::Start(range.start))
                .map_err(|e| io_err(ctx(), e, &key))?;
            let mut buf = vec![0u8; (range.end - range.start) as usize];
            f.read_exact(&mut buf).map_err(|e| io_err(ctx(), e, &key))?;
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(|e| ObjectStoreError::other("joining file reader", e))?
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ObjectStoreError::other(
                format!("deleting {}", path.display()),
                e,
            )),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, ObjectStoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(ObjectStoreError::other(
                            format!("listing {}", dir.display()),
                            e,
                        ));
                    }
                };
                for entry in entries {
                    let entry = entry.map_err(|e| {
                        ObjectStoreError::other(format!("listing {}", dir.display()), e)
                    })?;
                    let path = entry.path();
                    let meta = entry.metadata().map_err(|e| {
                        ObjectStoreError::other(format!("stat {}", path.display()), e)
                    })?;
                    if meta.is_dir() {
                        stack.push(path);
                        continue;
                    }
                    let Ok(rel) = path.strip_prefix(&root) else {
                        continue;
                    };
                    let key = rel.to_string_lossy().replace('\\', "/");
                    let hidden = key
                        .rsplit('/')
                        .next()
                        .is_some_and(|n| n.starts_with(".tmp-"));
                    if !hidden && key.starts_with(&prefix) {
                        out.push(ObjectMeta {
                            key,
                            size: meta.len(),
                        });
                    }
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
        .map_err(|e| ObjectStoreError::other("joining directory listing", e))?
    }
}

/// Objects in memory (tests, benchmarks).
#[derive(Debug, Default)]
pub struct MemoryObjectStore {
    objects: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryObjectStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ObjectStore for MemoryObjectStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectStoreError> {
        check_key(key)?;
        self.lock().insert(key.to_string(), data);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        self.lock()
            .get(key)
            .cloned()
            .ok_or_else(|| ObjectStoreError::NotFound(key.to_string()))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectStoreError> {
        let obj = self.get(key).await?;
        if range.start > range.end || range.end > obj.len() as u64 {
            return Err(ObjectStoreError::other(
                format!("reading {key} {range:?}"),
                "range outside object",
            ));
        }
        Ok(obj.slice(range.start as usize..range.end as usize))
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        self.lock().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, ObjectStoreError> {
        Ok(self
            .lock()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectMeta {
                key: k.clone(),
                size: v.len() as u64,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exercise(store: &dyn ObjectStore) {
        store
            .put("t/a/1.parquet", Bytes::from_static(b"hello world"))
            .await
            .unwrap();
        store
            .put("t/b/2.parquet", Bytes::from_static(b"xy"))
            .await
            .unwrap();
        store.put("u/3", Bytes::from_static(b"z")).await.unwrap();
        assert_eq!(
            &store.get("t/a/1.parquet").await.unwrap()[..],
            b"hello world"
        );
        assert_eq!(
            &store.get_range("t/a/1.parquet", 6..11).await.unwrap()[..],
            b"world"
        );
        assert!(store.get_range("t/a/1.parquet", 6..12).await.is_err());
        assert!(matches!(
            store.get("nope").await,
            Err(ObjectStoreError::NotFound(_))
        ));
        let keys: Vec<String> = store
            .list("t/")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(keys, vec!["t/a/1.parquet", "t/b/2.parquet"]);
        store.delete("t/a/1.parquet").await.unwrap();
        store.delete("t/a/1.parquet").await.unwrap();
        assert_eq!(store.list("t/").await.unwrap().len(), 1);
        assert!(store.put("../escape", Bytes::new()).await.is_err());
        assert!(store.put("/abs", Bytes::new()).await.is_err());
    }

    #[tokio::test]
    async fn local_and_memory_stores_behave_alike() {
        let dir = tempfile::tempdir().unwrap();
        exercise(&LocalFsStore::new(dir.path())).await;
        exercise(&MemoryObjectStore::new()).await;
    }
}
