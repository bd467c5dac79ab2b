//! [`DynamoHotStore`]: the hot tier on one DynamoDB table (item layout in `docs/STORAGE.md`).
//!
//! Writes are packed segments (one item per request × bucket × shard, content-addressed,
//! with a TTL), written with BatchWriteItem in groups of ≤ 25, retrying unprocessed
//! items, throttling and timeouts with jittered backoff until a deadline; past it the
//! write fails with [`StorageError::Unavailable`] (→ 503) and the sender retries, which
//! rewrites the same keys. Series get dense ids from an atomic counter plus conditional
//! puts; the series index and the bucket registry are cached across warm invocations.
//! Compaction does not delete segment items: it marks the bucket compacted and the TTL
//! removes them for free (a delete costs as much as the write).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};
use ember_blocks::index::{BlockIndex, BlockIndexStore, tenant_component};
use ember_model::{Labels, Matcher, MetricMetadata, MetricType};
use ember_storage::hot::{HotStore, IndexedSeries, SeriesIndex};
use ember_storage::layout::{BUCKET_MS, EncodedSegment, SegmentKey};
use ember_storage::segment::put_uvarint;
use ember_storage::{Result, StorageError};
use futures::StreamExt;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::api::{DdbError, DynamoApi, Item, PK, QuerySpec, SK, put_request};
use crate::retry::{Backoff, retry};

/// Largest segment bytes in one item; bigger segments are split into parts.
const MAX_PART_BYTES: usize = 350 * 1024;

/// Settings of the DynamoDB hot store.
#[derive(Debug, Clone)]
pub struct DynamoHotConfig {
    /// Metric-name shards per bucket. Fixed for the life of a table. Fewer shards mean
    /// fewer, larger items per write (DynamoDB bills each item per started KB) but fewer
    /// partitions per bucket (1,000 write units/s each); 4 keeps a 2,000-sample request
    /// near 2 units per item and still allows ~1M samples/s per tenant.
    pub shards: u32,
    /// Segment items expire this long after they were written (must exceed the longest
    /// compaction outage).
    pub hot_ttl: Duration,
    /// How long a write may retry before it answers 503.
    pub write_deadline: Duration,
    /// How long a read may retry.
    pub read_deadline: Duration,
    /// Concurrent DynamoDB requests per call.
    pub concurrency: usize,
    /// How old the cached series index and bucket registry may be for queries.
    pub refresh_after: Duration,
    /// How long a writer trusts that it registered a bucket (the compactor keeps a bucket
    /// "dirty" for this long after its last registration).
    pub registration_ttl: Duration,
    /// Backoff between retries.
    pub backoff: Backoff,
}

impl Default for DynamoHotConfig {
    fn default() -> Self {
        Self {
            shards: 4,
            hot_ttl: Duration::from_secs(7 * 24 * 3600),
            write_deadline: Duration::from_secs(4),
            read_deadline: Duration::from_secs(10),
            concurrency: 8,
            refresh_after: Duration::from_secs(5),
            registration_ttl: Duration::from_secs(300),
            backoff: Backoff::default(),
        }
    }
}

#[derive(Default)]
struct TenantCache {
    loaded: bool,
    index: SeriesIndex,
    /// Every id below this is loaded or was given up on.
    loaded_below: u64,
    gaps: HashMap<u64, Instant>,
    refreshed: Option<Instant>,
    registered: HashMap<i64, Instant>,
    registry: HashMap<i64, (i64, i64)>,
    registry_read: Option<Instant>,
    metadata: HashMap<String, MetricMetadata>,
    tenant_registered: bool,
}

/// The hot store on DynamoDB, generic over the access layer (tests inject faults).
pub struct DynamoHotStore<A> {
    api: Arc<A>,
    cfg: DynamoHotConfig,
    cache: Mutex<HashMap<String, Arc<Mutex<TenantCache>>>>,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn b(v: Vec<u8>) -> AttributeValue {
    AttributeValue::B(Blob::new(v))
}

fn get_s<'a>(item: &'a Item, attr: &str) -> Option<&'a str> {
    item.get(attr)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn get_n(item: &Item, attr: &str) -> Option<i64> {
    item.get(attr)
        .and_then(|v| v.as_n().ok())
        .and_then(|x| x.parse().ok())
}

fn get_b<'a>(item: &'a Item, attr: &str) -> Option<&'a [u8]> {
    item.get(attr)
        .and_then(|v| v.as_b().ok())
        .map(|b| b.as_ref())
}

/// Encodes labels as `count uvarint | (len uvarint, name, len uvarint, value)*`.
pub fn encode_labels(labels: &Labels) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        labels
            .iter()
            .map(|l| l.name.len() + l.value.len() + 2)
            .sum::<usize>()
            + 1,
    );
    put_uvarint(&mut out, labels.len() as u64);
    for l in labels {
        put_uvarint(&mut out, l.name.len() as u64);
        out.extend_from_slice(l.name.as_bytes());
        put_uvarint(&mut out, l.value.len() as u64);
        out.extend_from_slice(l.value.as_bytes());
    }
    out
}

/// Decodes [`encode_labels`]' format.
pub fn decode_labels(bytes: &[u8]) -> Option<Labels> {
    fn uvarint(b: &[u8], pos: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*pos)?;
            *pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }
    fn string(b: &[u8], pos: &mut usize) -> Option<String> {
        let len = usize::try_from(uvarint(b, pos)?).ok()?;
        let end = pos.checked_add(len)?;
        let s = std::str::from_utf8(b.get(*pos..end)?).ok()?.to_string();
        *pos = end;
        Some(s)
    }
    let mut pos = 0;
    let count = uvarint(bytes, &mut pos)?;
    if count > bytes.len() as u64 {
        return None;
    }
    let mut pairs = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let name = string(bytes, &mut pos)?;
        let value = string(bytes, &mut pos)?;
        pairs.push((name, value));
    }
    (pos == bytes.len()).then(|| Labels::from_pairs(pairs))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Key helpers (the item layout).
pub mod keys {
    use super::*;

    /// Partition of a (bucket, shard)'s segment items.
    pub fn segment_pk(tenant: &str, key: SegmentKey) -> String {
        format!(
            "{}#s#{}#{}",
            tenant_component(tenant),
            key.bucket.div_euclid(BUCKET_MS),
            key.shard
        )
    }
    /// Partition of the tenant's bucket registry.
    pub fn buckets_pk(tenant: &str) -> String {
        format!("{}#buckets", tenant_component(tenant))
    }
    /// Partition of the tenant's series index (id → labels).
    pub fn series_pk(tenant: &str) -> String {
        format!("{}#series", tenant_component(tenant))
    }
    /// Partition of a label-set hash's uniqueness item (hash → id), spread over 16.
    pub fn unique_pk(tenant: &str, hash: u64) -> String {
        format!("{}#sx#{:x}", tenant_component(tenant), hash >> 60)
    }
    /// Partition of the tenant's counters and metadata.
    pub fn meta_pk(tenant: &str) -> String {
        format!("{}#meta", tenant_component(tenant))
    }
    /// Partition of the tenant's block index.
    pub fn blocks_pk(tenant: &str) -> String {
        format!("{}#blocks", tenant_component(tenant))
    }
    /// Partition listing tenants.
    pub const TENANTS_PK: &str = "tenants";
}

impl<A: DynamoApi> DynamoHotStore<A> {
    /// A store over `api`.
    pub fn new(api: Arc<A>, cfg: DynamoHotConfig) -> Self {
        Self {
            api,
            cfg,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The access layer.
    pub fn api(&self) -> &Arc<A> {
        &self.api
    }

    /// The settings.
    pub fn config(&self) -> &DynamoHotConfig {
        &self.cfg
    }

    async fn tenant(&self, tenant: &str) -> Arc<Mutex<TenantCache>> {
        let mut g = self.cache.lock().await;
        Arc::clone(g.entry(tenant.to_string()).or_default())
    }

    fn write_deadline(&self) -> Instant {
        Instant::now() + self.cfg.write_deadline
    }

    fn read_deadline(&self) -> Instant {
        Instant::now() + self.cfg.read_deadline
    }

    /// Every item of a query, all pages.
    async fn query_all(&self, spec: &QuerySpec, deadline: Instant) -> Result<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = retry(deadline, self.cfg.backoff, "Query", || {
                self.api.query(spec, start.clone())
            })
            .await?;
            out.extend(page.items);
            match page.last_key {
                Some(k) if start.as_ref() == Some(&k) => {
                    return Err(StorageError::internal(
                        "Query",
                        "the same page key was returned twice",
                    ));
                }
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
            if Instant::now() >= deadline {
                return Err(StorageError::Unavailable(format!(
                    "Query of {}: deadline passed while paging",
                    spec.pk
                )));
            }
        }
    }

    /// Writes all requests in batches of ≤ 25 (concurrently), retrying unprocessed items,
    /// throttling and transient errors until `deadline`.
    pub async fn batch_write_all(
        &self,
        requests: Vec<WriteRequest>,
        deadline: Instant,
    ) -> Result<()> {
        let mut batches: Vec<Vec<WriteRequest>> = Vec::new();
        let mut it = requests.into_iter().peekable();
        while it.peek().is_some() {
            batches.push(it.by_ref().take(25).collect());
        }
        let results: Vec<Result<()>> = futures::stream::iter(
            batches
                .into_iter()
                .map(|batch| self.write_batch(batch, deadline)),
        )
        .buffer_unordered(self.cfg.concurrency.max(1))
        .collect()
        .await;
        results.into_iter().collect()
    }

    async fn write_batch(&self, mut batch: Vec<WriteRequest>, deadline: Instant) -> Result<()> {
        let mut attempt = 0u32;
        loop {
            let pending = std::mem::take(&mut batch);
            let sent = pending.clone();
            let outcome =
                match tokio::time::timeout_at(deadline, self.api.batch_write(pending)).await {
                    Ok(r) => r,
                    Err(_) => {
                        return Err(StorageError::Unavailable(format!(
                            "BatchWriteItem timed out after {attempt} retries"
                        )));
                    }
                };
            match outcome {
                Ok(unprocessed) if unprocessed.is_empty() => return Ok(()),
                Ok(unprocessed) => batch = unprocessed,
                Err(e) if e.retryable() => batch = sent,
                Err(e) => return Err(crate::retry::to_storage_error(e)),
            }
            if Instant::now() >= deadline {
                return Err(StorageError::Unavailable(format!(
                    "BatchWriteItem: {} item(s) still unprocessed at the deadline",
                    batch.len()
                )));
            }
            let until = (Instant::now() + self.cfg.backoff.delay(attempt)).min(deadline);
            tokio::time::sleep_until(until).await;
            attempt += 1;
        }
    }

    /// Loads (first use) or refreshes the series index.
    async fn refresh_index(
        &self,
        tenant: &str,
        cache: &mut TenantCache,
        force: bool,
        deadline: Instant,
    ) -> Result<()> {
        let fresh = cache
            .refreshed
            .is_some_and(|t| t.elapsed() < self.cfg.refresh_after);
        if cache.loaded && fresh && !force {
            return Ok(());
        }
        let meta_pk = keys::meta_pk(tenant);
        let counter = retry(deadline, self.cfg.backoff, "GetItem counter", || {
            self.api.get(&meta_pk, "counter")
        })
        .await?
        .and_then(|item| get_n(&item, "n"))
        .unwrap_or(0)
        .max(0) as u64;
        if !cache.loaded || counter > cache.loaded_below {
            let spec = QuerySpec {
                sk_from: Some(format!("{:016x}", cache.loaded_below)),
                ..QuerySpec::partition(keys::series_pk(tenant))
            };
            for item in self.query_all(&spec, deadline).await? {
                let id = get_s(&item, SK).and_then(|x| u64::from_str_radix(x, 16).ok());
                let labels = get_b(&item, "l").and_then(decode_labels);
                if let (Some(id), Some(labels)) = (id, labels)
                    && cache.index.labels(id).is_none()
                {
                    cache.index.insert(id, labels);
                }
            }
            // Advance past ids that are loaded, and past gaps older than a minute (ids
            // allocated by a writer that crashed or lost a race).
            let now = Instant::now();
            while cache.loaded_below < counter {
                let id = cache.loaded_below;
                if cache.index.labels(id).is_some() {
                    cache.gaps.remove(&id);
                } else {
                    let seen = *cache.gaps.entry(id).or_insert(now);
                    if now.duration_since(seen) < Duration::from_secs(60) {
                        break;
                    }
                    cache.gaps.remove(&id);
                }
                cache.loaded_below += 1;
            }
        }
        cache.loaded = true;
        cache.refreshed = Some(Instant::now());
        Ok(())
    }

    /// Creates (or finds) the id of one new label set.
    async fn create_series(
        &self,
        tenant: &str,
        labels: &Labels,
        id: u64,
        deadline: Instant,
    ) -> Result<(u64, bool, WriteRequest)> {
        let encoded = encode_labels(labels);
        let hash = labels.stable_hash();
        let unique: Item = HashMap::from([
            (PK.to_string(), s(keys::unique_pk(tenant, hash))),
            (SK.to_string(), s(format!("{hash:016x}"))),
            ("id".to_string(), n(id)),
            ("l".to_string(), b(encoded.clone())),
        ]);
        let created = retry(deadline, self.cfg.backoff, "PutItem series", || {
            self.api.put_if_absent(unique.clone())
        })
        .await?;
        let id = if created {
            id
        } else {
            let (upk, usk) = (keys::unique_pk(tenant, hash), format!("{hash:016x}"));
            let existing = retry(deadline, self.cfg.backoff, "GetItem series", || {
                self.api.get(&upk, &usk)
            })
            .await?
            .ok_or_else(|| {
                StorageError::Unavailable("series item vanished during creation".into())
            })?;
            let same = get_b(&existing, "l").and_then(decode_labels).as_ref() == Some(labels);
            if !same {
                return Err(StorageError::internal(
                    "creating series",
                    format!("label-set hash collision on {hash:016x} for {labels}"),
                ));
            }
            get_n(&existing, "id").ok_or_else(|| {
                StorageError::internal("creating series", "series item without id")
            })? as u64
        };
        // The id → labels item; idempotent, so always (re)written before acknowledging
        // (batched by the caller).
        let index = put_request(HashMap::from([
            (PK.to_string(), s(keys::series_pk(tenant))),
            (SK.to_string(), s(format!("{id:016x}"))),
            ("l".to_string(), b(encoded)),
        ]))
        .map_err(crate::retry::to_storage_error)?;
        Ok((id, created, index))
    }

    async fn registry(
        &self,
        tenant: &str,
        cache: &mut TenantCache,
        deadline: Instant,
    ) -> Result<()> {
        if cache
            .registry_read
            .is_some_and(|t| t.elapsed() < self.cfg.refresh_after)
        {
            return Ok(());
        }
        let items = self
            .query_all(&QuerySpec::partition(keys::buckets_pk(tenant)), deadline)
            .await?;
        cache.registry = items
            .iter()
            .filter_map(|i| {
                let bucket = get_s(i, SK)?.parse::<i64>().ok()?;
                Some((
                    bucket,
                    (get_n(i, "reg").unwrap_or(0), get_n(i, "done").unwrap_or(0)),
                ))
            })
            .collect();
        cache.registry_read = Some(Instant::now());
        Ok(())
    }

    /// Whether a bucket is compacted and has not been written since (its segments are in
    /// blocks and need not be read).
    fn clean(&self, reg: i64, done: i64) -> bool {
        done > 0 && done > reg + self.cfg.registration_ttl.as_millis() as i64
    }
}

#[async_trait]
impl<A: DynamoApi + 'static> HotStore for DynamoHotStore<A> {
    fn shards(&self) -> u32 {
        self.cfg.shards
    }

    async fn resolve_series(&self, tenant: &str, labels: &[Labels]) -> Result<Vec<(u64, bool)>> {
        let deadline = self.write_deadline();
        let cell = self.tenant(tenant).await;
        let mut cache = cell.lock().await;
        self.refresh_index(tenant, &mut cache, false, deadline)
            .await?;
        let missing: Vec<&Labels> = {
            let mut seen = HashSet::new();
            labels
                .iter()
                .filter(|l| cache.index.get(l).is_none() && seen.insert(*l))
                .collect()
        };
        let mut created: HashMap<Labels, (u64, bool)> = HashMap::new();
        if !missing.is_empty() {
            self.refresh_index(tenant, &mut cache, true, deadline)
                .await?;
            let still: Vec<Labels> = missing
                .into_iter()
                .filter(|l| cache.index.get(l).is_none())
                .cloned()
                .collect();
            if !still.is_empty() {
                let k = still.len() as u64;
                let meta_pk = keys::meta_pk(tenant);
                let top = retry(deadline, self.cfg.backoff, "UpdateItem counter", || {
                    self.api.add(&meta_pk, "counter", "n", k)
                })
                .await?;
                let first = top.saturating_sub(k);
                let mut jobs = Vec::with_capacity(still.len());
                for (i, l) in still.into_iter().enumerate() {
                    let id = first + i as u64;
                    jobs.push(async move {
                        let r = self.create_series(tenant, &l, id, deadline).await;
                        r.map(|r| (l, r))
                    });
                }
                let results: Vec<Result<(Labels, (u64, bool, WriteRequest))>> =
                    futures::stream::iter(jobs)
                        .buffer_unordered(self.cfg.concurrency.max(1))
                        .collect()
                        .await;
                let mut index_items = Vec::with_capacity(results.len());
                let mut resolved = Vec::with_capacity(results.len());
                for r in results {
                    let (l, (id, was_created, item)) = r?;
                    index_items.push(item);
                    resolved.push((l, id, was_created));
                }
                self.batch_write_all(index_items, deadline).await?;
                for (l, id, was_created) in resolved {
                    if cache.index.labels(id).is_none() {
                        cache.index.insert(id, l.clone());
                    }
                    created.insert(l, (id, was_created));
                }
            }
        }
        labels
            .iter()
            .map(|l| match created.get(l) {
                Some(r) => Ok(*r),
                None => cache.index.get(l).map(|id| (id, false)).ok_or_else(|| {
                    StorageError::internal("resolving series", format!("no id for {l}"))
                }),
            })
            .collect()
    }

    async fn write(
        &self,
        tenant: &str,
        segments: &[EncodedSegment],
        metadata: &[MetricMetadata],
    ) -> Result<()> {
        let deadline = self.write_deadline();
        let now = now_ms();
        let ttl = now / 1000 + self.cfg.hot_ttl.as_secs() as i64;
        let cell = self.tenant(tenant).await;
        // 1. Registrations (tenant, buckets) first: compaction finds buckets through them.
        let (mut first, md_changed): (Vec<WriteRequest>, Vec<MetricMetadata>) = {
            let cache = cell.lock().await;
            let mut reqs = Vec::new();
            if !cache.tenant_registered {
                reqs.push(
                    put_request(HashMap::from([
                        (PK.to_string(), s(keys::TENANTS_PK)),
                        (SK.to_string(), s(tenant)),
                    ]))
                    .map_err(crate::retry::to_storage_error)?,
                );
            }
            let buckets: HashSet<i64> = segments.iter().map(|s| s.key.bucket).collect();
            for bucket in buckets {
                let fresh = cache
                    .registered
                    .get(&bucket)
                    .is_some_and(|t| t.elapsed() < self.cfg.registration_ttl / 2);
                if !fresh {
                    let reg_ttl = ttl + self.cfg.registration_ttl.as_secs() as i64 * 2;
                    reqs.push(
                        put_request(HashMap::from([
                            (PK.to_string(), s(keys::buckets_pk(tenant))),
                            (SK.to_string(), s(bucket.to_string())),
                            ("reg".to_string(), n(now)),
                            ("ttl".to_string(), n(reg_ttl)),
                        ]))
                        .map_err(crate::retry::to_storage_error)?,
                    );
                }
            }
            let md = metadata
                .iter()
                .filter(|m| cache.metadata.get(&m.metric_family_name) != Some(*m))
                .cloned()
                .collect();
            (reqs, md)
        };
        let registered_at = Instant::now();
        let bucket_regs: Vec<i64> = first
            .iter()
            .filter_map(|r| {
                r.put_request()
                    .and_then(|p| get_s(p.item(), SK).and_then(|x| x.parse().ok()))
            })
            .filter(|_| true)
            .collect();
        let tenant_reg = first.iter().any(|r| {
            r.put_request()
                .is_some_and(|p| get_s(p.item(), PK) == Some(keys::TENANTS_PK))
        });
        if !first.is_empty() {
            self.batch_write_all(std::mem::take(&mut first), deadline)
                .await?;
        }
        // 2. Segments and metadata.
        let mut reqs = Vec::new();
        for seg in segments {
            let pk = keys::segment_pk(tenant, seg.key);
            let parts: Vec<&[u8]> = seg.bytes.chunks(MAX_PART_BYTES).collect();
            let np = parts.len().max(1);
            for (i, part) in parts.iter().enumerate() {
                let sk = if np == 1 {
                    format!("{:016x}", seg.content_id)
                } else {
                    format!("{:016x}#{i}", seg.content_id)
                };
                let mut item: Item = HashMap::from([
                    (PK.to_string(), s(pk.clone())),
                    (SK.to_string(), s(sk)),
                    ("d".to_string(), b(part.to_vec())),
                ]);
                item.insert("ttl".to_string(), n(ttl));
                if np > 1 {
                    item.insert("np".to_string(), n(np));
                }
                reqs.push(put_request(item).map_err(crate::retry::to_storage_error)?);
            }
        }
        for m in &md_changed {
            reqs.push(
                put_request(HashMap::from([
                    (PK.to_string(), s(keys::meta_pk(tenant))),
                    (SK.to_string(), s(format!("md#{}", m.metric_family_name))),
                    ("mt".to_string(), s(m.metric_type.as_str())),
                    ("h".to_string(), s(m.help.clone())),
                    ("u".to_string(), s(m.unit.clone())),
                ]))
                .map_err(crate::retry::to_storage_error)?,
            );
        }
        self.batch_write_all(reqs, deadline).await?;
        let mut cache = cell.lock().await;
        cache.tenant_registered |= tenant_reg;
        for bucket in bucket_regs {
            cache.registered.insert(bucket, registered_at);
            cache.registry.insert(bucket, (now, 0));
        }
        for m in md_changed {
            cache.metadata.insert(m.metric_family_name.clone(), m);
        }
        Ok(())
    }

    async fn find_series(&self, tenant: &str, matchers: &[Matcher]) -> Result<Vec<IndexedSeries>> {
        let deadline = self.read_deadline();
        let cell = self.tenant(tenant).await;
        let mut cache = cell.lock().await;
        self.refresh_index(tenant, &mut cache, false, deadline)
            .await?;
        Ok(cache.index.find(matchers))
    }

    async fn read_segments(&self, tenant: &str, key: SegmentKey) -> Result<Vec<Vec<u8>>> {
        let deadline = self.read_deadline();
        {
            let cell = self.tenant(tenant).await;
            let mut cache = cell.lock().await;
            self.registry(tenant, &mut cache, deadline).await?;
            match cache.registry.get(&key.bucket) {
                None => return Ok(Vec::new()),
                Some((reg, done)) if self.clean(*reg, *done) => return Ok(Vec::new()),
                Some(_) => {}
            }
        }
        // Segments are immutable once written: eventually consistent reads (half the read
        // units) only risk missing a segment written within the last second or so.
        let spec = QuerySpec {
            consistent: false,
            ..QuerySpec::partition(keys::segment_pk(tenant, key))
        };
        let items = self.query_all(&spec, deadline).await?;
        let mut whole = Vec::new();
        let mut parts: HashMap<String, (usize, Vec<(usize, Vec<u8>)>)> = HashMap::new();
        for item in items {
            let (Some(sk), Some(d)) = (get_s(&item, SK), get_b(&item, "d")) else {
                continue;
            };
            match (get_n(&item, "np"), sk.split_once('#')) {
                (Some(np), Some((id, part))) => {
                    let Ok(part) = part.parse::<usize>() else {
                        continue;
                    };
                    let e = parts
                        .entry(id.to_string())
                        .or_insert_with(|| (np.max(1) as usize, Vec::new()));
                    e.1.push((part, d.to_vec()));
                }
                _ => whole.push(d.to_vec()),
            }
        }
        for (_, (np, mut ps)) in parts {
            ps.sort_by_key(|(i, _)| *i);
            ps.dedup_by_key(|(i, _)| *i);
            // An incomplete multi-part segment was never acknowledged: skip it.
            if ps.len() == np {
                whole.push(ps.into_iter().flat_map(|(_, d)| d).collect());
            }
        }
        Ok(whole)
    }

    async fn metadata(&self, tenant: &str) -> Result<Vec<MetricMetadata>> {
        let spec = QuerySpec {
            sk_prefix: Some("md#".into()),
            ..QuerySpec::partition(keys::meta_pk(tenant))
        };
        let items = self.query_all(&spec, self.read_deadline()).await?;
        Ok(items
            .iter()
            .filter_map(|i| {
                Some(MetricMetadata {
                    metric_family_name: get_s(i, SK)?.strip_prefix("md#")?.to_string(),
                    metric_type: MetricType::parse(get_s(i, "mt").unwrap_or("unknown")),
                    help: get_s(i, "h").unwrap_or_default().to_string(),
                    unit: get_s(i, "u").unwrap_or_default().to_string(),
                })
            })
            .collect())
    }

    async fn tenants(&self) -> Result<Vec<String>> {
        let items = self
            .query_all(
                &QuerySpec::partition(keys::TENANTS_PK),
                self.read_deadline(),
            )
            .await?;
        let mut v: Vec<String> = items
            .iter()
            .filter_map(|i| get_s(i, SK).map(str::to_string))
            .collect();
        v.sort();
        Ok(v)
    }

    async fn buckets(&self, tenant: &str) -> Result<Vec<i64>> {
        // The query path asks on every select: the registry cached for `refresh_after`
        // is fresh enough (a writer in this container updates it as it registers).
        let cell = self.tenant(tenant).await;
        let mut cache = cell.lock().await;
        self.registry(tenant, &mut cache, self.read_deadline())
            .await?;
        let mut v: Vec<i64> = cache
            .registry
            .iter()
            .filter(|(_, (reg, done))| !self.clean(*reg, *done))
            .map(|(b, _)| *b)
            .collect();
        v.sort_unstable();
        Ok(v)
    }

    /// Marks the bucket compacted: its segments are no longer read and expire by TTL
    /// (no delete requests, which would cost as much as the writes).
    async fn delete_bucket(&self, tenant: &str, bucket: i64) -> Result<()> {
        let deadline = self.write_deadline();
        let now = now_ms();
        let (pk, sk) = (keys::buckets_pk(tenant), bucket.to_string());
        retry(deadline, self.cfg.backoff, "UpdateItem bucket done", || {
            self.api.set_number(&pk, &sk, "done", now)
        })
        .await?;
        let cell = self.tenant(tenant).await;
        let mut cache = cell.lock().await;
        if let Some(e) = cache.registry.get_mut(&bucket) {
            e.1 = now;
        }
        Ok(())
    }
}

/// The block index as one DynamoDB item per tenant (`pk = <tenant>#blocks`, `sk = index`,
/// `gen` number, `body` zstd-compressed JSON), replaced with a conditional put on `gen`.
pub struct DynamoBlockIndex<A> {
    api: Arc<A>,
    backoff: Backoff,
    deadline: Duration,
}

impl<A: DynamoApi> DynamoBlockIndex<A> {
    /// An index over `api`.
    pub fn new(api: Arc<A>) -> Self {
        Self {
            api,
            backoff: Backoff::default(),
            deadline: Duration::from_secs(10),
        }
    }
}

#[async_trait]
impl<A: DynamoApi + 'static> BlockIndexStore for DynamoBlockIndex<A> {
    async fn load(&self, tenant: &str) -> Result<BlockIndex> {
        let deadline = Instant::now() + self.deadline;
        let pk = keys::blocks_pk(tenant);
        let item = retry(deadline, self.backoff, "GetItem block index", || {
            self.api.get(&pk, "index")
        })
        .await?;
        let Some(item) = item else {
            return Ok(BlockIndex::default());
        };
        let body = get_b(&item, "body")
            .ok_or_else(|| StorageError::internal("loading block index", "no body"))?;
        let json = zstd::stream::decode_all(body)
            .map_err(|e| StorageError::internal("decompressing block index", e))?;
        let mut index = BlockIndex::from_bytes(&json)?;
        if let Some(g) = get_n(&item, "gen") {
            index.generation = g.max(0) as u64;
        }
        Ok(index)
    }

    async fn store(&self, tenant: &str, index: &BlockIndex) -> Result<bool> {
        let deadline = Instant::now() + self.deadline;
        let body = zstd::bulk::compress(&index.to_bytes()?, 3)
            .map_err(|e| StorageError::internal("compressing block index", e))?;
        if body.len() > 390 * 1024 {
            return Err(StorageError::internal(
                "storing block index",
                "index exceeds the 400 KB item limit",
            ));
        }
        let item: Item = HashMap::from([
            (PK.to_string(), s(keys::blocks_pk(tenant))),
            (SK.to_string(), s("index")),
            ("gen".to_string(), n(index.generation)),
            ("body".to_string(), b(body)),
        ]);
        let expected = index.generation.checked_sub(1).filter(|g| *g > 0);
        retry(deadline, self.backoff, "PutItem block index", || {
            self.api.put_if_equal(item.clone(), "gen", expected)
        })
        .await
    }
}

impl From<DdbError> for StorageError {
    fn from(e: DdbError) -> Self {
        crate::retry::to_storage_error(e)
    }
}
