//! Persisted rule-group state: one blob per group, so alert state survives restarts and cold starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::{Result, RulesError};

/// Stores one opaque blob per rule group (keyed by the group key `file;name`).
#[async_trait]
pub trait RuleStateStore: Send + Sync {
    /// The blob last stored for `group`, if any.
    async fn get(&self, group: &str) -> Result<Option<Vec<u8>>>;
    /// Stores the blob for `group`, replacing the previous one atomically.
    async fn put(&self, group: &str, blob: Vec<u8>) -> Result<()>;
}

/// An in-memory store (tests, or when persistence is not wanted).
#[derive(Debug, Default)]
pub struct MemStateStore {
    blobs: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RuleStateStore for MemStateStore {
    async fn get(&self, group: &str) -> Result<Option<Vec<u8>>> {
        let map = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(group).cloned())
    }

    async fn put(&self, group: &str, blob: Vec<u8>) -> Result<()> {
        let mut map = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(group.to_string(), blob);
        Ok(())
    }
}

/// A directory of files, one per group (for `ember serve`: `<data-dir>/rules-state`).
/// Writes go to a temporary file, are fsynced and renamed over the old one.
#[derive(Debug, Clone)]
pub struct FileStateStore {
    dir: PathBuf,
}

impl FileStateStore {
    /// A store under `dir` (created when missing).
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| RulesError::State {
            context: format!("creating {}", dir.display()),
            message: e.to_string(),
        })?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, group: &str) -> PathBuf {
        // File-name-safe and collision-free: hex of the key's bytes, shortened with a hash when long.
        let mut name: String = group
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
        let h = fnv1a64(group.as_bytes());
        self.dir.join(format!("{name}-{h:016x}.json"))
    }
}

/// FNV-1a, 64 bit (also what Prometheus uses to spread group evaluation offsets).
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[async_trait]
impl RuleStateStore for FileStateStore {
    async fn get(&self, group: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(group);
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RulesError::State {
                context: format!("reading {}", path.display()),
                message: e.to_string(),
            }),
        }
    }

    async fn put(&self, group: &str, blob: Vec<u8>) -> Result<()> {
        let path = self.path(group);
        let tmp = path.with_extension("json.tmp");
        let err = |context: String| {
            move |e: std::io::Error| RulesError::State {
                context,
                message: e.to_string(),
            }
        };
        let tmp2 = tmp.clone();
        let path2 = path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp2)?;
            f.write_all(&blob)?;
            f.sync_all()?;
            std::fs::rename(&tmp2, &path2)
        })
        .await
        .map_err(|e| RulesError::State {
            context: format!("writing {}", path.display()),
            message: e.to_string(),
        })?
        .map_err(err(format!("writing {}", path.display())))
    }
}
