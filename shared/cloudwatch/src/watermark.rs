//! The newest imported timestamp per series, so overlapping windows of consecutive passes
//! import each datapoint once. Kept in the `StateStore` under `cloudwatch/<job>/<region>`
//! (a file under `DATA_DIR/state` locally, an item in the DynamoDB table on Lambda).

use std::collections::BTreeMap;

use ember_model::Labels;
use ember_storage::state::StateStore;
use serde::{Deserialize, Serialize};

use crate::CloudWatchError;

/// Watermarks of one job in one region: series key → newest imported timestamp (ms).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermarks {
    /// Format version of the blob.
    #[serde(default)]
    v: u32,
    /// Series key (hex hash of the labels) → timestamp in ms.
    #[serde(default)]
    series: BTreeMap<String, i64>,
}

impl Watermarks {
    /// The state key of a job in a region.
    pub fn state_key(job: &str, region: &str) -> String {
        format!("cloudwatch/{job}/{region}")
    }

    /// The key of a series: a stable 64-bit hash of its labels.
    pub fn key(labels: &Labels) -> String {
        format!("{:016x}", labels.stable_hash())
    }

    /// The watermark of a series.
    pub fn get(&self, key: &str) -> Option<i64> {
        self.series.get(key).copied()
    }

    /// Raises the watermark of a series to `t` (never lowers it).
    pub fn set(&mut self, key: String, t: i64) {
        let e = self.series.entry(key).or_insert(t);
        if *e < t {
            *e = t;
        }
    }

    /// Number of series tracked.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether no series is tracked.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Forgets series whose watermark is before `oldest_ms`: a window starting at or after
    /// it can hold nothing at or before such a watermark, so dropping it changes nothing
    /// and keeps the blob small when resources go away.
    pub fn prune_before(&mut self, oldest_ms: i64) -> usize {
        let before = self.series.len();
        self.series.retain(|_, t| *t >= oldest_ms);
        before - self.series.len()
    }

    /// Loads the watermarks of `key` (empty when absent).
    pub async fn load(store: &dyn StateStore, key: &str) -> Result<Self, CloudWatchError> {
        match store.get(key).await {
            Ok(None) => Ok(Self::default()),
            Ok(Some(blob)) => serde_json::from_slice(&blob).map_err(|e| CloudWatchError::State {
                key: key.to_string(),
                message: format!("corrupt watermarks: {e}"),
            }),
            Err(e) => Err(CloudWatchError::State {
                key: key.to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// Stores the watermarks under `key`.
    pub async fn save(&self, store: &dyn StateStore, key: &str) -> Result<(), CloudWatchError> {
        let mut copy = self.clone();
        copy.v = 1;
        let blob = serde_json::to_vec(&copy).map_err(|e| CloudWatchError::State {
            key: key.to_string(),
            message: e.to_string(),
        })?;
        store
            .put(key, blob)
            .await
            .map_err(|e| CloudWatchError::State {
                key: key.to_string(),
                message: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_storage::state::{FileStateStore, MemStateStore};

    #[test]
    fn set_never_lowers_and_prune_forgets_old_series() {
        let mut w = Watermarks::default();
        w.set("a".into(), 100);
        w.set("a".into(), 50);
        w.set("b".into(), 10);
        assert_eq!(w.get("a"), Some(100));
        assert_eq!(w.prune_before(50), 1);
        assert_eq!(w.get("b"), None);
        assert_eq!(w.len(), 1);
    }

    #[tokio::test]
    async fn round_trips_through_state_stores() {
        let dir = tempfile::tempdir().unwrap();
        let file = FileStateStore::new(dir.path()).unwrap();
        let mem = MemStateStore::new();
        let key = Watermarks::state_key("rds", "eu-west-1");
        assert_eq!(key, "cloudwatch/rds/eu-west-1");
        let mut w = Watermarks::default();
        w.set(
            Watermarks::key(&Labels::from_pairs([("__name__", "x")])),
            42,
        );
        for store in [&file as &dyn StateStore, &mem] {
            assert!(Watermarks::load(store, &key).await.unwrap().is_empty());
            w.save(store, &key).await.unwrap();
            let back = Watermarks::load(store, &key).await.unwrap();
            assert_eq!(back.series, w.series);
        }
        mem.put(&key, b"not json".to_vec()).await.unwrap();
        assert!(matches!(
            Watermarks::load(&mem, &key).await,
            Err(CloudWatchError::State { .. })
        ));
    }
}
