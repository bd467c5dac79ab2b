//! How samples are laid out in the hot stores, shared by the embedded and AWS backends.
//!
//! Samples are grouped by **time bucket** (hour-aligned) and **shard** (a hash of the
//! metric name), and each write stores one [`segment`](crate::segment) per
//! (bucket, shard) it touches. A query for one metric therefore reads one shard's
//! segments per bucket; a selector without a metric name fans out over all shards.
//! The segment key includes a hash of the segment's bytes, so a retried request
//! rewrites the same keys instead of adding copies.

use std::collections::{BTreeMap, HashMap, HashSet};

use ember_model::Sample;
use ember_model::sample::sort_and_dedup_samples;

use crate::segment::{self, SegmentError, SegmentSeries};

/// Width of a hot-store time bucket: one hour, in ms. Compaction works bucket by bucket.
pub const BUCKET_MS: i64 = 3_600_000;

/// Default number of metric-name shards per tenant.
pub const DEFAULT_SHARDS: u32 = 16;

/// Start (ms) of the bucket that holds timestamp `t`.
pub fn bucket_of(t: i64) -> i64 {
    t.div_euclid(BUCKET_MS) * BUCKET_MS
}

/// The shard a metric name belongs to.
pub fn shard_of(metric_name: &str, shards: u32) -> u32 {
    (xxhash_rust::xxh64::xxh64(metric_name.as_bytes(), 0) % u64::from(shards.max(1))) as u32
}

/// Where a segment lives: its bucket start (ms) and shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentKey {
    /// Start of the time bucket, ms.
    pub bucket: i64,
    /// Metric-name shard.
    pub shard: u32,
}

/// An encoded segment ready to store, with its content hash (the idempotency key).
#[derive(Debug, Clone)]
pub struct EncodedSegment {
    /// Bucket and shard.
    pub key: SegmentKey,
    /// xxHash64 of `bytes`: the same write produces the same id.
    pub content_id: u64,
    /// Number of samples inside.
    pub samples: usize,
    /// The compressed segment.
    pub bytes: Vec<u8>,
}

/// One series of a write, after its id has been resolved.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedSeries<'a> {
    /// Tenant-wide series id.
    pub series_id: u64,
    /// Metric name (decides the shard).
    pub metric_name: &'a str,
    /// Samples (any order).
    pub samples: &'a [Sample],
}

/// Splits a write into one encoded segment per (bucket, shard).
pub fn plan_segments<'a>(
    series: impl IntoIterator<Item = ResolvedSeries<'a>>,
    shards: u32,
) -> Vec<EncodedSegment> {
    let mut groups: BTreeMap<SegmentKey, HashMap<u64, Vec<Sample>>> = BTreeMap::new();
    for s in series {
        let shard = shard_of(s.metric_name, shards);
        for smp in s.samples {
            let key = SegmentKey {
                bucket: bucket_of(smp.t),
                shard,
            };
            groups
                .entry(key)
                .or_default()
                .entry(s.series_id)
                .or_default()
                .push(*smp);
        }
    }
    groups
        .into_iter()
        .map(|(key, by_series)| {
            let mut list: Vec<SegmentSeries> = by_series
                .into_iter()
                .map(|(series_id, mut samples)| {
                    sort_and_dedup_samples(&mut samples);
                    SegmentSeries { series_id, samples }
                })
                .collect();
            let samples = list.iter().map(|s| s.samples.len()).sum();
            let bytes = segment::encode(&mut list);
            let content_id = xxhash_rust::xxh64::xxh64(&bytes, 0);
            EncodedSegment {
                key,
                content_id,
                samples,
                bytes,
            }
        })
        .collect()
}

/// Buckets overlapping `[start, end]` (ms), oldest first.
pub fn buckets_in_range(start: i64, end: i64) -> impl Iterator<Item = i64> {
    let first = bucket_of(start);
    let last = bucket_of(end);
    (0..)
        .map(move |i| first + i * BUCKET_MS)
        .take_while(move |b| *b <= last)
}

/// Collects samples of wanted series from many segments, restricted to a time range,
/// then sorts them and drops duplicate timestamps (retries, overlapping hot/cold data).
#[derive(Debug, Default)]
pub struct SeriesMerger {
    series: HashMap<u64, Vec<Sample>>,
}

impl SeriesMerger {
    /// An empty merger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the samples of `wanted` series (all series when `None`) in `[start, end]` from
    /// one encoded segment.
    pub fn add_segment(
        &mut self,
        bytes: &[u8],
        wanted: Option<&HashSet<u64>>,
        start: i64,
        end: i64,
    ) -> Result<(), SegmentError> {
        if let Some((min_t, max_t)) = segment::time_range(bytes)?
            && (max_t < start || min_t > end)
        {
            return Ok(());
        }
        for s in segment::decode(bytes)? {
            if wanted.is_some_and(|w| !w.contains(&s.series_id)) {
                continue;
            }
            self.add_samples(
                s.series_id,
                s.samples.into_iter().filter(|x| x.t >= start && x.t <= end),
            );
        }
        Ok(())
    }

    /// Adds samples of one series (from any source, e.g. a cold block).
    pub fn add_samples(&mut self, series_id: u64, samples: impl IntoIterator<Item = Sample>) {
        let mut it = samples.into_iter().peekable();
        if it.peek().is_some() {
            self.series.entry(series_id).or_default().extend(it);
        }
    }

    /// The merged samples per series id, sorted and de-duplicated.
    pub fn finish(self) -> HashMap<u64, Vec<Sample>> {
        let mut out = self.series;
        for samples in out.values_mut() {
            sort_and_dedup_samples(samples);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_range() {
        let b: Vec<i64> = buckets_in_range(BUCKET_MS - 1, 2 * BUCKET_MS).collect();
        assert_eq!(b, vec![0, BUCKET_MS, 2 * BUCKET_MS]);
        assert_eq!(bucket_of(-1), -BUCKET_MS);
    }

    #[test]
    fn same_write_gives_same_segments_and_merge_dedups() {
        let samples = [Sample::new(10, 1.0), Sample::new(BUCKET_MS + 5, 2.0)];
        let write = || {
            plan_segments(
                [ResolvedSeries {
                    series_id: 3,
                    metric_name: "up",
                    samples: &samples,
                }],
                DEFAULT_SHARDS,
            )
        };
        let (a, b) = (write(), write());
        assert_eq!(a.len(), 2, "one segment per bucket");
        assert_eq!(
            a.iter().map(|s| s.content_id).collect::<Vec<_>>(),
            b.iter().map(|s| s.content_id).collect::<Vec<_>>()
        );
        let mut m = SeriesMerger::new();
        for seg in a.iter().chain(&b) {
            m.add_segment(&seg.bytes, None, 0, i64::MAX).unwrap();
        }
        assert_eq!(m.finish()[&3], samples.to_vec());
    }

    #[test]
    fn merger_skips_segments_outside_the_window() {
        let early = [Sample::new(1_000, 1.0), Sample::new(2_000, 2.0)];
        let late = [Sample::new(60_000, 3.0)];
        let segs: Vec<EncodedSegment> = [&early[..], &late[..]]
            .into_iter()
            .flat_map(|samples| {
                plan_segments(
                    [ResolvedSeries {
                        series_id: 9,
                        metric_name: "up",
                        samples,
                    }],
                    DEFAULT_SHARDS,
                )
            })
            .collect();
        let mut m = SeriesMerger::new();
        for seg in &segs {
            m.add_segment(&seg.bytes, None, 1_500, 70_000).unwrap();
        }
        assert_eq!(m.finish()[&9], vec![early[1], late[0]]);
        let mut m = SeriesMerger::new();
        for seg in &segs {
            m.add_segment(&seg.bytes, None, 3_000, 50_000).unwrap();
        }
        assert!(m.finish().is_empty());
    }
}
