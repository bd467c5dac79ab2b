//! Compaction: closed hot buckets → Parquet blocks → merged daily blocks → retention.
//!
//! One pass ([`compact_once`]) does, per tenant:
//! 1. **Hot → level 0.** For each hot bucket that closed at least `grace_ms` ago: read
//!    its segments (every shard) and the series labels, merge and de-duplicate, write one
//!    block, *then* add it to the block index, *then* delete the bucket's segments.
//! 2. **Merge.** The blocks of a UTC day that closed `grace_ms` ago, if more than one,
//!    are merged into one level-1 block: write it, swap it into the index in one update,
//!    and queue the old files for deletion.
//! 3. **Retention.** Blocks entirely older than `now - retention` leave the index (and
//!    hot buckets that old are dropped).
//! 4. **Garbage.** Files queued for deletion more than `delete_delay_ms` ago, and files
//!    under the tenant's prefix that the index does not know (left by a crash between a
//!    write and the index update), are deleted.
//!
//! Every step is idempotent and the order makes a crash anywhere harmless: a block file
//! is only used once the index names it; the index names it before any hot segment is
//! deleted; a block key is a hash of its bytes, so redoing a step rewrites the same file;
//! and queries merge hot and cold data and drop duplicate (series, timestamp) pairs, so a
//! bucket that is both in a block and still in the hot store reads the same as before.
//! Before a bucket's segments go, the bucket is read again: if a late write added a
//! segment meanwhile, the bucket stays (the next pass compacts it again). This narrows
//! the window in which a write landing between that check and the delete could be
//! removed to the duration of one call; a `HotStore` whose `delete_bucket` only hides
//! segments (the DynamoDB store) has no such window.
//! Run one compactor at a time per tenant (the index generation check turns a second one
//! into a conflict error, not into corruption).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use ember_model::{Labels, Sample};
use ember_storage::hot::HotStore;
use ember_storage::layout::{BUCKET_MS, SegmentKey, SeriesMerger};
use ember_storage::{Result, StorageError};
use serde::Serialize;

use crate::block::{self, BlockSeries, BlockWriteOptions, ReadMode};
use crate::index::{BlockEntry, BlockIndex, BlockIndexStore, PendingDelete, tenant_component};
use crate::objstore::ObjectStore;

/// One UTC day in ms: the span of a merged (level 1) block.
pub const DAY_MS: i64 = 86_400_000;

/// Settings of a compaction pass.
#[derive(Debug, Clone)]
pub struct CompactionConfig {
    /// "Now" in ms since the epoch (tests pass a fixed clock).
    pub now_ms: i64,
    /// How long after a bucket (or day) ends before it is compacted (late samples).
    pub grace_ms: i64,
    /// Blocks older than this are deleted; `None` keeps everything.
    pub retention_ms: Option<i64>,
    /// How long a block removed from the index stays readable for running queries.
    pub delete_delay_ms: i64,
    /// Merge the level-0 blocks of each closed day into one block.
    pub merge: bool,
    /// Parquet writer settings.
    pub write: BlockWriteOptions,
}

impl CompactionConfig {
    /// Defaults at time `now_ms`: 15 min grace, no retention, 10 min delete delay, merging on.
    pub fn at(now_ms: i64) -> Self {
        Self {
            now_ms,
            grace_ms: 15 * 60_000,
            retention_ms: None,
            delete_delay_ms: 10 * 60_000,
            merge: true,
            write: BlockWriteOptions::default(),
        }
    }
}

/// What a compaction pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompactionReport {
    /// Tenants looked at.
    pub tenants: usize,
    /// Hot buckets turned into blocks (or found already covered and cleaned up).
    pub buckets_compacted: usize,
    /// Blocks written (level 0 and merged), with their index entries.
    pub blocks_written: Vec<BlockEntry>,
    /// Blocks merged away.
    pub blocks_merged: usize,
    /// Blocks dropped by retention.
    pub blocks_expired: usize,
    /// Files deleted (merged-away, expired or orphaned).
    pub files_deleted: usize,
    /// Samples written into level-0 blocks.
    pub samples_compacted: u64,
    /// Start (ms) of the oldest hot bucket left in the hot store after the pass (not yet
    /// due, or changed while being compacted); `None` when none is left. Compaction lag
    /// is measured from it: it becomes due at start + bucket length + grace.
    pub oldest_pending_bucket_ms: Option<i64>,
}

impl CompactionReport {
    fn note_pending(&mut self, bucket: i64) {
        self.oldest_pending_bucket_ms = Some(
            self.oldest_pending_bucket_ms
                .map_or(bucket, |b| b.min(bucket)),
        );
    }

    /// When the oldest bucket still in the hot store becomes (or became) due for
    /// compaction, in ms: bucket start + bucket length + `grace_ms`.
    pub fn next_due_ms(&self, grace_ms: i64) -> Option<i64> {
        self.oldest_pending_bucket_ms
            .map(|b| b + BUCKET_MS + grace_ms)
    }
}

impl std::fmt::Display for CompactionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "compaction: {} tenant(s), {} bucket(s) compacted, {} sample(s), {} block(s) written, {} merged away, {} expired, {} file(s) deleted",
            self.tenants,
            self.buckets_compacted,
            self.samples_compacted,
            self.blocks_written.len(),
            self.blocks_merged,
            self.blocks_expired,
            self.files_deleted
        )?;
        for b in &self.blocks_written {
            writeln!(
                f,
                "  wrote {} (level {}, {} series, {} samples, {} bytes, {:.3} B/sample)",
                b.key,
                b.level,
                b.series,
                b.samples,
                b.size,
                b.size as f64 / b.samples.max(1) as f64
            )?;
        }
        Ok(())
    }
}

/// Object key prefix of a tenant's blocks.
pub fn block_prefix(tenant: &str) -> String {
    format!("blocks/{}/", tenant_component(tenant))
}

fn block_key(tenant: &str, level: u32, min_t: i64, max_t: i64, bytes: &[u8]) -> String {
    let hash = xxhash_rust::xxh64::xxh64(bytes, 0);
    format!(
        "{}L{level}-{min_t:014}-{max_t:014}-{hash:016x}.parquet",
        block_prefix(tenant)
    )
}

/// Runs one compaction pass over every tenant of `hot`.
pub async fn compact_once<H: HotStore + ?Sized>(
    hot: &H,
    index: &dyn BlockIndexStore,
    objects: &dyn ObjectStore,
    cfg: &CompactionConfig,
) -> Result<CompactionReport> {
    let mut report = CompactionReport::default();
    for tenant in hot.tenants().await? {
        report.tenants += 1;
        compact_tenant(hot, index, objects, cfg, &tenant, &mut report).await?;
    }
    Ok(report)
}

/// Runs one compaction pass over one tenant.
pub async fn compact_tenant<H: HotStore + ?Sized>(
    hot: &H,
    index: &dyn BlockIndexStore,
    objects: &dyn ObjectStore,
    cfg: &CompactionConfig,
    tenant: &str,
    report: &mut CompactionReport,
) -> Result<()> {
    let mut idx = index.load(tenant).await?;
    let shards = hot.shards();
    let mut labels_by_id: Option<HashMap<u64, Labels>> = None;

    // 1. Hot buckets → level-0 blocks.
    let mut buckets = hot.buckets(tenant).await?;
    buckets.sort_unstable();
    buckets.dedup();
    for bucket in buckets {
        if bucket + BUCKET_MS + cfg.grace_ms > cfg.now_ms {
            report.note_pending(bucket);
            continue;
        }
        let expired = cfg
            .retention_ms
            .is_some_and(|r| bucket + BUCKET_MS < cfg.now_ms - r);
        if expired {
            hot.delete_bucket(tenant, bucket).await?;
            report.buckets_compacted += 1;
            continue;
        }
        let mut merger = SeriesMerger::new();
        let mut segments = 0usize;
        let mut seen: HashSet<u64> = HashSet::new();
        for shard in 0..shards {
            for bytes in hot
                .read_segments(tenant, SegmentKey { bucket, shard })
                .await?
            {
                segments += 1;
                seen.insert(xxhash_rust::xxh64::xxh64(&bytes, 0));
                merger
                    .add_segment(&bytes, None, i64::MIN, i64::MAX)
                    .map_err(|e| {
                        StorageError::internal(
                            format!("compacting tenant {tenant} bucket {bucket} shard {shard}"),
                            e,
                        )
                    })?;
            }
        }
        if segments == 0 {
            continue;
        }
        if labels_by_id.is_none() {
            let all = hot.find_series(tenant, &[]).await?;
            labels_by_id = Some(all.into_iter().map(|s| (s.id, s.labels)).collect());
        }
        let labels = labels_by_id.as_ref().map(|m| m as &HashMap<u64, Labels>);
        let mut series = Vec::new();
        for (id, samples) in merger.finish() {
            let Some(l) = labels.and_then(|m| m.get(&id)) else {
                return Err(StorageError::internal(
                    format!("compacting tenant {tenant} bucket {bucket}"),
                    format!("series id {id} has no labels in the index"),
                ));
            };
            series.push(BlockSeries {
                labels: l.clone(),
                samples,
            });
        }
        let written = block::write_block(series, &cfg.write)
            .map_err(|e| StorageError::internal(format!("writing block for bucket {bucket}"), e))?;
        let stats = written.stats;
        let key = block_key(tenant, 0, stats.min_t, stats.max_t, &written.bytes);
        if !idx.blocks.iter().any(|b| b.key == key) {
            objects.put(&key, written.bytes).await?;
            let entry = BlockEntry {
                key,
                min_t: stats.min_t,
                max_t: stats.max_t,
                level: 0,
                series: stats.series,
                samples: stats.samples,
                size: stats.size,
                footer_len: stats.footer_len,
                buckets: vec![bucket],
            };
            let mut next = idx.clone();
            next.blocks.push(entry.clone());
            store_index(index, tenant, &mut next).await?;
            idx = next;
            report.samples_compacted += stats.samples;
            report.blocks_written.push(entry);
        }
        // Late samples written into the bucket while it was being compacted are not in the
        // block: then keep the bucket (queries read both; the next pass compacts it again).
        if changed_since(hot, tenant, bucket, shards, &seen).await? {
            tracing::info!(
                tenant,
                bucket,
                "bucket changed during compaction; kept for the next pass"
            );
            report.note_pending(bucket);
            continue;
        }
        hot.delete_bucket(tenant, bucket).await?;
        report.buckets_compacted += 1;
    }

    // 2. Merge the blocks of each closed day.
    if cfg.merge {
        let mut days: BTreeMap<i64, Vec<BlockEntry>> = BTreeMap::new();
        for b in &idx.blocks {
            let day = b.min_t.div_euclid(DAY_MS);
            if b.max_t.div_euclid(DAY_MS) == day {
                days.entry(day).or_default().push(b.clone());
            }
        }
        for (day, blocks) in days {
            if blocks.len() < 2 || (day + 1) * DAY_MS + cfg.grace_ms > cfg.now_ms {
                continue;
            }
            let merged = merge_blocks(objects, &blocks).await?;
            let written = block::write_block(merged, &cfg.write).map_err(|e| {
                StorageError::internal(format!("writing merged block for day {day}"), e)
            })?;
            let stats = written.stats;
            let key = block_key(tenant, 1, stats.min_t, stats.max_t, &written.bytes);
            objects.put(&key, written.bytes).await?;
            let entry = BlockEntry {
                key: key.clone(),
                min_t: stats.min_t,
                max_t: stats.max_t,
                level: 1,
                series: stats.series,
                samples: stats.samples,
                size: stats.size,
                footer_len: stats.footer_len,
                buckets: blocks
                    .iter()
                    .flat_map(|b| b.buckets.iter().copied())
                    .collect(),
            };
            let old: HashSet<&str> = blocks
                .iter()
                .map(|b| b.key.as_str())
                .filter(|k| *k != key)
                .collect();
            let mut next = idx.clone();
            next.blocks
                .retain(|b| !old.contains(b.key.as_str()) && b.key != key);
            next.blocks.push(entry.clone());
            next.pending_delete
                .extend(old.iter().map(|k| PendingDelete {
                    key: (*k).to_string(),
                    since_ms: cfg.now_ms,
                }));
            store_index(index, tenant, &mut next).await?;
            idx = next;
            report.blocks_merged += old.len();
            report.blocks_written.push(entry);
        }
    }

    // 3. Retention.
    if let Some(retention) = cfg.retention_ms {
        let cutoff = cfg.now_ms - retention;
        let expired: Vec<BlockEntry> = idx
            .blocks
            .iter()
            .filter(|b| b.max_t < cutoff)
            .cloned()
            .collect();
        if !expired.is_empty() {
            let mut next = idx.clone();
            next.blocks.retain(|b| b.max_t >= cutoff);
            next.pending_delete
                .extend(expired.iter().map(|b| PendingDelete {
                    key: b.key.clone(),
                    since_ms: cfg.now_ms,
                }));
            store_index(index, tenant, &mut next).await?;
            idx = next;
            report.blocks_expired += expired.len();
        }
    }

    // 4. Garbage: delayed deletes, then files no index entry knows.
    let due: Vec<PendingDelete> = idx
        .pending_delete
        .iter()
        .filter(|p| p.since_ms + cfg.delete_delay_ms <= cfg.now_ms)
        .cloned()
        .collect();
    for p in &due {
        objects.delete(&p.key).await?;
        report.files_deleted += 1;
    }
    if !due.is_empty() {
        let mut next = idx.clone();
        next.pending_delete.retain(|p| !due.contains(p));
        store_index(index, tenant, &mut next).await?;
        idx = next;
    }
    let known: HashSet<&str> = idx
        .blocks
        .iter()
        .map(|b| b.key.as_str())
        .chain(idx.pending_delete.iter().map(|p| p.key.as_str()))
        .collect();
    for obj in objects.list(&block_prefix(tenant)).await? {
        if !known.contains(obj.key.as_str()) {
            objects.delete(&obj.key).await?;
            report.files_deleted += 1;
        }
    }
    Ok(())
}

/// Whether the bucket now holds a segment that is not in `seen` (by content hash).
async fn changed_since<H: HotStore + ?Sized>(
    hot: &H,
    tenant: &str,
    bucket: i64,
    shards: u32,
    seen: &HashSet<u64>,
) -> Result<bool> {
    for shard in 0..shards {
        for bytes in hot
            .read_segments(tenant, SegmentKey { bucket, shard })
            .await?
        {
            if !seen.contains(&xxhash_rust::xxh64::xxh64(&bytes, 0)) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

async fn store_index(
    index: &dyn BlockIndexStore,
    tenant: &str,
    next: &mut BlockIndex,
) -> Result<()> {
    next.generation += 1;
    if index.store(tenant, next).await? {
        Ok(())
    } else {
        Err(StorageError::Unavailable(format!(
            "block index of tenant {tenant} changed during compaction (another compactor running?)"
        )))
    }
}

/// Reads every series of `blocks` and merges them by label set, dropping duplicate
/// timestamps.
async fn merge_blocks(
    objects: &dyn ObjectStore,
    blocks: &[BlockEntry],
) -> Result<Vec<BlockSeries>> {
    let mut merged: HashMap<Labels, Vec<Sample>> = HashMap::new();
    for b in blocks {
        let footer = block::read_footer(objects, &b.key, b.size, Some(b.footer_len)).await?;
        for s in block::read_series(
            objects,
            &b.key,
            &footer,
            &[],
            i64::MIN,
            i64::MAX,
            ReadMode::Samples,
        )
        .await?
        {
            merged.entry(s.labels).or_default().extend(s.samples);
        }
    }
    Ok(merged
        .into_iter()
        .map(|(labels, mut samples)| {
            ember_model::sample::sort_and_dedup_samples(&mut samples);
            BlockSeries { labels, samples }
        })
        .collect())
}

/// Shared handles a compactor needs (what `ember compact` and the compact Lambda build).
pub struct Compactor<H: ?Sized> {
    /// The hot store.
    pub hot: Arc<H>,
    /// The block index.
    pub index: Arc<dyn BlockIndexStore>,
    /// Where block files go.
    pub objects: Arc<dyn ObjectStore>,
}

impl<H: HotStore + ?Sized> Compactor<H> {
    /// One pass at `cfg.now_ms`.
    pub async fn run(&self, cfg: &CompactionConfig) -> Result<CompactionReport> {
        compact_once(
            self.hot.as_ref(),
            self.index.as_ref(),
            self.objects.as_ref(),
            cfg,
        )
        .await
    }
}
