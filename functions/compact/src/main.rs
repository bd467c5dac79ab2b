//! `ember-compact`: the compaction Lambda function. EventBridge Scheduler fires it every
//! few minutes; one invocation runs one compaction pass: closed hot buckets become Parquet
//! blocks, the block index is updated, daily merges and retention run (idempotent and
//! crash-safe, so an overlapping or retried invocation is harmless). Retention comes from
//! `ember.storage.retention` of `EMBER_CONFIG`, if set.

use std::sync::Arc;

use ember_blocks::CompactionConfig;
use ember_runtime::lambda::{Invocation, run_scheduled};
use ember_runtime::{ConfigLoader, Process, RuntimeSettings};
use tokio::sync::Mutex;

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
enum CompactFnError {
    #[error("configuration: {0}")]
    Config(#[from] ember_runtime::ConfigLoadError),
    #[error("compaction failed (it is idempotent; the next run retries): {0}")]
    Compaction(#[from] ember_runtime::StorageError),
}

struct Compact {
    process: Process,
    loader: Mutex<ConfigLoader>,
    /// `ember.storage.retention` of the current configuration, in ms.
    retention_ms: Mutex<Option<Option<i64>>>,
}

impl Compact {
    async fn handle(&self, inv: Invocation) -> Result<serde_json::Value, CompactFnError> {
        let mut retention = self.retention_ms.lock().await;
        match self.loader.lock().await.poll().await {
            Ok(Some(loaded)) => {
                *retention = Some(loaded.config.ember.storage.retention.map(|d| d.as_millis()));
            }
            Ok(None) => {}
            Err(e) if retention.is_some() => {
                tracing::warn!(error = %e, "configuration reload failed; keeping the running one");
            }
            Err(e) => return Err(e.into()),
        }
        let now_ms = ember_runtime::window::epoch_ms(std::time::SystemTime::now());
        let mut cfg = CompactionConfig::at(now_ms);
        cfg.retention_ms = retention.flatten();
        let report = self.process.compactor.run(&cfg).await?;
        // Seconds the oldest bucket left in the hot store is overdue (0: on time), the
        // figure `/metrics` of `ember serve` calls ember_compaction_lag_seconds.
        let lag_seconds = report
            .next_due_ms(cfg.grace_ms)
            .map_or(0, |due| (now_ms - due).max(0) / 1000);
        tracing::info!(
            request_id = %inv.request_id,
            buckets = report.buckets_compacted,
            expired = report.blocks_expired,
            lag_seconds,
            "compaction pass done"
        );
        Ok(serde_json::json!({
            "buckets_compacted": report.buckets_compacted,
            "blocks_expired": report.blocks_expired,
            "blocks_written": report.blocks_written.len(),
            "samples_compacted": report.samples_compacted,
            "lag_seconds": lag_seconds,
            "report": report.to_string(),
        }))
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ember_runtime::lambda::init_tracing();
    let process = Process::open(RuntimeSettings::from_env()?).await?;
    tracing::info!(storage = %process.description, "ember-compact ready");
    let compact = Arc::new(Compact {
        loader: Mutex::new(process.config_loader()),
        process,
        retention_ms: Mutex::new(None),
    });
    run_scheduled(|inv| {
        let compact = compact.clone();
        async move { compact.handle(inv).await }
    })
    .await
}
