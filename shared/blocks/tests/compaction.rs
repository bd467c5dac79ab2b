//! Compaction and the hot ∪ cold query path: results are identical before and after
//! compaction, and after a crash at any step followed by another pass.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use ember_blocks::compact::{CompactionConfig, DAY_MS, compact_once};
use ember_blocks::index::{BlockIndexStore, ObjectBlockIndex};
use ember_blocks::testing::{Budget, FaultyHot, FaultyIndex, FaultyObjects};
use ember_blocks::{MemHotStore, MemoryObjectStore, ObjectStore, TieredStorage};
use ember_model::{Labels, Matcher, MetricMetadata, MetricType, Sample, Series};
use ember_storage::layout::BUCKET_MS;
use ember_storage::{AppendBatch, Appender, Querier};

/// Shared state plus handles whose mutations draw on one budget.
struct Fixture {
    hot: Arc<MemHotStore>,
    objects: Arc<MemoryObjectStore>,
    index: Arc<ObjectBlockIndex>,
}

impl Fixture {
    fn new() -> Self {
        let objects = Arc::new(MemoryObjectStore::new());
        let index = Arc::new(ObjectBlockIndex::new(objects.clone()));
        Fixture {
            hot: Arc::new(MemHotStore::new()),
            objects,
            index,
        }
    }
    fn storage(&self, budget: &Budget) -> TieredStorage<FaultyHot<MemHotStore>> {
        TieredStorage::new(
            FaultyHot {
                inner: self.hot.clone(),
                budget: budget.clone(),
            },
            Arc::new(FaultyIndex {
                inner: self.index.clone(),
                budget: budget.clone(),
            }),
            Arc::new(FaultyObjects {
                inner: self.objects.clone(),
                budget: budget.clone(),
            }),
        )
    }
}

const T0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS + 20 * BUCKET_MS; // 20:00 UTC

/// node_exporter-like data over 10 hours (crossing midnight), 15 s scrapes with jitter,
/// counters, gauges and constants; written in small remote-write-like batches, each
/// sent twice (a retry) and with some out-of-order late batches.
fn batches() -> Vec<AppendBatch> {
    let mut out = Vec::new();
    let metrics = [
        "node_cpu_seconds_total",
        "node_memory_free_bytes",
        "up",
        "http_requests_total",
    ];
    let steps = 10 * 240;
    for chunk in (0..steps).collect::<Vec<_>>().chunks(20) {
        let mut series = Vec::new();
        for (mi, m) in metrics.iter().enumerate() {
            for inst in 0..3 {
                let labels = Labels::from_pairs([
                    ("__name__", m.to_string()),
                    ("instance", format!("h{inst}:9100")),
                    ("job", "node".into()),
                ]);
                let samples = chunk
                    .iter()
                    .map(|&i| {
                        let t = T0 + i as i64 * 15_000 + ((i * 7 + inst) % 11) as i64;
                        let v = match mi {
                            0 => (i * (inst + 1)) as f64 * 0.01,
                            1 => 8e9 - ((i * 4096 * (inst + 1)) % 100_000) as f64,
                            2 => 1.0,
                            _ => (i * i) as f64,
                        };
                        Sample::new(t, v)
                    })
                    .collect();
                series.push(Series::new(labels, samples));
            }
        }
        let md = vec![MetricMetadata {
            metric_family_name: "up".into(),
            metric_type: MetricType::Gauge,
            help: "up".into(),
            unit: String::new(),
        }];
        out.push(AppendBatch {
            series,
            metadata: md,
        });
    }
    // Retries of some batches, and a late batch written last.
    let retries: Vec<AppendBatch> = out.iter().step_by(7).cloned().collect();
    out.extend(retries);
    out.rotate_left(3);
    out
}

fn queries() -> Vec<(Vec<Matcher>, i64, i64)> {
    let end = T0 + 10 * BUCKET_MS;
    vec![
        (vec![Matcher::equal("__name__", "up")], T0, end),
        (
            vec![
                Matcher::equal("__name__", "node_cpu_seconds_total"),
                Matcher::equal("instance", "h1:9100"),
            ],
            T0 + 1_800_000,
            T0 + 5 * BUCKET_MS + 7,
        ),
        (
            vec![Matcher::regex("__name__", "node_.*").unwrap()],
            T0 + 3 * BUCKET_MS + 1,
            T0 + 4 * BUCKET_MS - 1,
        ),
        (
            vec![Matcher::equal("job", "node")],
            T0 - BUCKET_MS,
            end + BUCKET_MS,
        ),
        (
            vec![
                Matcher::not_equal("instance", "h0:9100"),
                Matcher::equal("__name__", "http_requests_total"),
            ],
            T0 + 3_900_000,
            T0 + 3_900_000,
        ),
        (vec![Matcher::equal("__name__", "missing")], T0, end),
    ]
}

type Snapshot = Vec<Vec<(String, Vec<(i64, u64)>)>>;

async fn snapshot(q: &dyn Querier) -> (Snapshot, Vec<Vec<String>>) {
    let mut out = Vec::new();
    let mut labels = Vec::new();
    for (m, s, e) in queries() {
        let mut series: Vec<(String, Vec<(i64, u64)>)> = q
            .select("t1", &m, s, e)
            .await
            .unwrap()
            .into_iter()
            .map(|x| {
                (
                    x.labels.to_string(),
                    x.samples.iter().map(|p| (p.t, p.v.to_bits())).collect(),
                )
            })
            .collect();
        series.sort();
        out.push(series);
        labels.push(
            q.series("t1", std::slice::from_ref(&m), s, e)
                .await
                .unwrap()
                .iter()
                .map(|l| l.to_string())
                .collect(),
        );
    }
    (out, labels)
}

/// Asserts equal snapshots, describing only the first difference.
fn same(a: &(Snapshot, Vec<Vec<String>>), b: &(Snapshot, Vec<Vec<String>>), ctx: &str) {
    for (qi, (x, y)) in a.0.iter().zip(&b.0).enumerate() {
        if x.len() != y.len() {
            panic!("{ctx}: query {qi}: {} vs {} series", x.len(), y.len());
        }
        for (sx, sy) in x.iter().zip(y) {
            if sx != sy {
                let first = sx.1.iter().zip(&sy.1).position(|(p, q)| p != q);
                panic!(
                    "{ctx}: query {qi} series {} vs {}: {} vs {} samples, first diff at {first:?}",
                    sx.0,
                    sy.0,
                    sx.1.len(),
                    sy.1.len()
                );
            }
        }
    }
    assert_eq!(a.1, b.1, "{ctx}: series() results");
}

async fn load(f: &Fixture) -> usize {
    let st = f.storage(&Budget::unlimited());
    let mut n = 0;
    for b in batches() {
        n += b.sample_count();
        st.append("t1", b).await.unwrap();
    }
    n
}

fn cfg() -> CompactionConfig {
    let mut c = CompactionConfig::at(T0 + 2 * DAY_MS);
    c.delete_delay_ms = 0;
    c.write.row_group_target_bytes = 2048;
    c
}

async fn files(f: &Fixture) -> BTreeSet<String> {
    f.objects
        .list("blocks/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

#[tokio::test]
async fn same_results_before_and_after_compaction() {
    let f = Fixture::new();
    load(&f).await;
    let st = f.storage(&Budget::unlimited());
    let before = snapshot(&st).await;
    assert!(
        before.0[0][0].1.len() == 10 * 240,
        "every sample once: {}",
        before.0[0][0].1.len()
    );

    let report = compact_once(&*f.hot, &*f.index, &*f.objects, &cfg())
        .await
        .unwrap();
    eprintln!("{report}");
    assert_eq!(report.buckets_compacted, 10);
    assert_eq!(f.hot.segment_count("t1"), 0, "hot segments deleted");
    let index = f.index.load("t1").await.unwrap();
    assert_eq!(
        index.blocks.len(),
        2,
        "one merged block per day: {:?}",
        index.blocks
    );
    assert!(index.blocks.iter().all(|b| b.level == 1));
    assert_eq!(files(&f).await.len(), 2, "merged-away files deleted");
    same(&snapshot(&st).await, &before, "after compaction");

    // A second pass changes nothing.
    let again = compact_once(&*f.hot, &*f.index, &*f.objects, &cfg())
        .await
        .unwrap();
    assert!(
        again.blocks_written.is_empty() && again.files_deleted == 0,
        "{again}"
    );
    same(&snapshot(&st).await, &before, "after compaction");

    // Late samples into a compacted bucket: visible at once, compacted next pass, merged in.
    let late = AppendBatch {
        series: vec![Series::new(
            Labels::from_pairs([("__name__", "up"), ("instance", "h9:9100"), ("job", "node")]),
            vec![Sample::new(T0 + 60_000, 0.0)],
        )],
        metadata: vec![],
    };
    st.append("t1", late).await.unwrap();
    let with_late = snapshot(&st).await;
    assert_ne!(with_late, before);
    compact_once(&*f.hot, &*f.index, &*f.objects, &cfg())
        .await
        .unwrap();
    same(&snapshot(&st).await, &with_late, "late data");
    assert_eq!(f.index.load("t1").await.unwrap().blocks.len(), 2);
}

#[tokio::test]
async fn partial_compaction_reads_the_same_and_hot_buckets_still_open_stay() {
    let f = Fixture::new();
    load(&f).await;
    let st = f.storage(&Budget::unlimited());
    let before = snapshot(&st).await;
    // "Now" inside the data: only closed buckets are compacted, no day is closed.
    let mut c = cfg();
    c.now_ms = T0 + 6 * BUCKET_MS;
    let r = compact_once(&*f.hot, &*f.index, &*f.objects, &c)
        .await
        .unwrap();
    assert_eq!(r.buckets_compacted, 5, "{r}");
    assert_eq!(
        r.blocks_merged, 4,
        "the first day (20:00-24:00) closed and was merged"
    );
    assert!(f.hot.segment_count("t1") > 0);
    same(&snapshot(&st).await, &before, "after compaction");
}

#[tokio::test]
async fn crash_at_every_step_loses_and_doubles_nothing() {
    // Count the mutating steps of a clean pass.
    let clean = Fixture::new();
    load(&clean).await;
    let budget = Budget::unlimited();
    let st = clean.storage(&budget);
    let before = snapshot(&st).await;
    let hot = FaultyHot {
        inner: clean.hot.clone(),
        budget: budget.clone(),
    };
    let index = FaultyIndex {
        inner: clean.index.clone(),
        budget: budget.clone(),
    };
    let objects = FaultyObjects {
        inner: clean.objects.clone(),
        budget: budget.clone(),
    };
    compact_once(&hot, &index, &objects, &cfg()).await.unwrap();
    let steps = budget.spent();
    let clean_files = files(&clean).await;
    assert!(steps > 20, "a pass has many steps: {steps}");

    for crash_at in 0..steps {
        let f = Fixture::new();
        load(&f).await;
        let budget = Budget::new(crash_at);
        let hot = FaultyHot {
            inner: f.hot.clone(),
            budget: budget.clone(),
        };
        let index = FaultyIndex {
            inner: f.index.clone(),
            budget: budget.clone(),
        };
        let objects = FaultyObjects {
            inner: f.objects.clone(),
            budget: budget.clone(),
        };
        let err = compact_once(&hot, &index, &objects, &cfg()).await;
        assert!(err.is_err(), "crash injected at step {crash_at}");
        let reader = f.storage(&Budget::unlimited());
        same(
            &snapshot(&reader).await,
            &before,
            &format!("right after a crash at step {crash_at}"),
        );
        compact_once(&*f.hot, &*f.index, &*f.objects, &cfg())
            .await
            .unwrap();
        same(
            &snapshot(&reader).await,
            &before,
            &format!("after recovery from step {crash_at}"),
        );
        assert_eq!(f.hot.segment_count("t1"), 0);
        assert_eq!(
            files(&f).await,
            clean_files,
            "same files after recovery from step {crash_at}"
        );
    }
}

#[tokio::test]
async fn retention_drops_old_blocks_and_files() {
    let f = Fixture::new();
    load(&f).await;
    compact_once(&*f.hot, &*f.index, &*f.objects, &cfg())
        .await
        .unwrap();
    let st = f.storage(&Budget::unlimited());
    let mut c = cfg();
    // Keep only data newer than the start of day two.
    let day2 = (T0 / DAY_MS + 1) * DAY_MS;
    c.retention_ms = Some(c.now_ms - day2);
    let r = compact_once(&*f.hot, &*f.index, &*f.objects, &c)
        .await
        .unwrap();
    assert_eq!(r.blocks_expired, 1, "{r}");
    assert_eq!(files(&f).await.len(), 1);
    let old = st
        .select("t1", &[Matcher::equal("__name__", "up")], T0, day2 - 1)
        .await
        .unwrap();
    assert!(old.is_empty());
    let new = st
        .select(
            "t1",
            &[Matcher::equal("__name__", "up")],
            day2,
            day2 + DAY_MS,
        )
        .await
        .unwrap();
    assert_eq!(new.len(), 3);
}

#[tokio::test]
async fn orphans_from_a_crash_are_removed() {
    let f = Fixture::new();
    load(&f).await;
    f.objects
        .put("blocks/t1/L0-orphan.parquet", Bytes::from_static(b"x"))
        .await
        .unwrap();
    compact_once(&*f.hot, &*f.index, &*f.objects, &cfg())
        .await
        .unwrap();
    assert!(!files(&f).await.contains("blocks/t1/L0-orphan.parquet"));
}

/// An index that lets a late write land in the hot store at the moment a block is indexed
/// (between compaction's read of the bucket and its delete).
struct LateWriteIndex {
    inner: Arc<ObjectBlockIndex>,
    storage: Arc<TieredStorage<FaultyHot<MemHotStore>>>,
    fired: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl BlockIndexStore for LateWriteIndex {
    async fn load(&self, tenant: &str) -> ember_storage::Result<ember_blocks::BlockIndex> {
        self.inner.load(tenant).await
    }
    async fn store(
        &self,
        tenant: &str,
        index: &ember_blocks::BlockIndex,
    ) -> ember_storage::Result<bool> {
        if !self.fired.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let late = AppendBatch {
                series: vec![Series::new(
                    Labels::from_pairs([
                        ("__name__", "up"),
                        ("instance", "late:1"),
                        ("job", "node"),
                    ]),
                    vec![Sample::new(T0 + 5, 7.0)],
                )],
                metadata: vec![],
            };
            self.storage.append("t1", late).await?;
        }
        self.inner.store(tenant, index).await
    }
}

#[tokio::test]
async fn a_write_landing_during_compaction_is_not_lost() {
    let f = Fixture::new();
    load(&f).await;
    let storage = Arc::new(f.storage(&Budget::unlimited()));
    let index = LateWriteIndex {
        inner: f.index.clone(),
        storage: storage.clone(),
        fired: false.into(),
    };
    let mut c = cfg();
    c.merge = false;
    compact_once(&*f.hot, &index, &*f.objects, &c)
        .await
        .unwrap();
    let m = [Matcher::equal("instance", "late:1")];
    let got = storage.select("t1", &m, T0, T0 + 10).await.unwrap();
    assert_eq!(got.len(), 1, "the late sample survives the pass");
    compact_once(&*f.hot, &*f.index, &*f.objects, &cfg())
        .await
        .unwrap();
    assert_eq!(f.hot.segment_count("t1"), 0);
    let got = storage.select("t1", &m, T0, T0 + 10).await.unwrap();
    assert_eq!(got.len(), 1, "and is in a block after the next pass");
}
