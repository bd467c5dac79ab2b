//! [`DynamoStateStore`]: the small durable process state of the Lambda functions (alert
//! state of rule groups, scrape staleness state, notifier state, import watermarks) in the
//! same DynamoDB table as the samples, so it survives cold starts.
//!
//! Items: `pk = "@state"`, `sk = <key>`, `d` (B) = the blob, zstd-compressed, `v` (N) =
//! format version, `at` (N) = write time in ms. `@` is outside the tenant alphabet
//! (`[A-Za-z0-9_-]`, or `x-<hex>`), and every sample-side partition key is either
//! `tenants` or `<tenant>#…`, so the state partition cannot collide with them (see
//! `docs/STORAGE.md`). A put replaces the whole item (one `PutItem`), so a reader sees
//! the old or the new blob, never a mix.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use ember_storage::state::StateStore;
use ember_storage::{Result, StorageError};

use crate::api::{DynamoApi, PK, SK, delete_request};
use crate::retry::{Backoff, retry};

/// Partition key of every state item.
pub const STATE_PK: &str = "@state";

/// Largest compressed blob stored (DynamoDB items are at most 400 KB, key included).
pub const MAX_STATE_BYTES: usize = 390 * 1024;

const FORMAT_VERSION: &str = "1";

/// How long one state operation may retry throttling and transient faults.
const OP_DEADLINE: Duration = Duration::from_secs(10);

/// A [`StateStore`] over the DynamoDB table (see the module docs for the item layout).
pub struct DynamoStateStore<A: DynamoApi + ?Sized> {
    api: Arc<A>,
}

impl<A: DynamoApi + ?Sized> std::fmt::Debug for DynamoStateStore<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStateStore").finish_non_exhaustive()
    }
}

impl<A: DynamoApi + ?Sized> DynamoStateStore<A> {
    /// State items go through `api` (the table it is bound to).
    pub fn new(api: Arc<A>) -> Self {
        Self { api }
    }
}

fn backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(20),
        cap: Duration::from_secs(1),
    }
}

#[async_trait]
impl<A: DynamoApi + ?Sized + 'static> StateStore for DynamoStateStore<A> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + OP_DEADLINE;
        let what = format!("reading state {key:?}");
        let item = retry(deadline, backoff(), &what, || self.api.get(STATE_PK, key)).await?;
        let Some(item) = item else {
            return Ok(None);
        };
        if let Some(v) = item.get("v").and_then(|v| v.as_n().ok())
            && v != FORMAT_VERSION
        {
            return Err(StorageError::internal(
                what,
                format!("unknown state format version {v}"),
            ));
        }
        let data = item
            .get("d")
            .and_then(|d| d.as_b().ok())
            .ok_or_else(|| StorageError::internal(&what, "item has no binary attribute d"))?;
        let blob = zstd::stream::decode_all(data.as_ref())
            .map_err(|e| StorageError::internal(&what, format!("decompressing: {e}")))?;
        Ok(Some(blob))
    }

    async fn put(&self, key: &str, blob: Vec<u8>) -> Result<()> {
        let what = format!("writing state {key:?}");
        let packed = zstd::bulk::compress(&blob, 3)
            .map_err(|e| StorageError::internal(&what, format!("compressing: {e}")))?;
        if packed.len() + key.len() > MAX_STATE_BYTES {
            return Err(StorageError::InvalidInput(format!(
                "{what}: {} bytes compressed ({} raw) exceed the {MAX_STATE_BYTES}-byte item limit",
                packed.len(),
                blob.len()
            )));
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let item = HashMap::from([
            (PK.to_string(), AttributeValue::S(STATE_PK.to_string())),
            (SK.to_string(), AttributeValue::S(key.to_string())),
            ("d".to_string(), AttributeValue::B(Blob::new(packed))),
            (
                "v".to_string(),
                AttributeValue::N(FORMAT_VERSION.to_string()),
            ),
            ("at".to_string(), AttributeValue::N(now_ms.to_string())),
        ]);
        let deadline = Instant::now() + OP_DEADLINE;
        retry(deadline, backoff(), &what, || self.api.put(item.clone())).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let what = format!("deleting state {key:?}");
        let deadline = Instant::now() + OP_DEADLINE;
        let request = delete_request(STATE_PK, key).map_err(crate::retry::to_storage_error)?;
        let mut pending = vec![request];
        while !pending.is_empty() {
            let batch = std::mem::take(&mut pending);
            pending = retry(deadline, backoff(), &what, || {
                self.api.batch_write(batch.clone())
            })
            .await?;
            if !pending.is_empty() {
                if Instant::now() >= deadline {
                    return Err(StorageError::Unavailable(format!(
                        "{what}: still unprocessed at the deadline"
                    )));
                }
                tokio::time::sleep(backoff().delay(1)).await;
            }
        }
        Ok(())
    }
}
