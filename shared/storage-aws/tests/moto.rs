//! The AWS backend against a real moto server (DynamoDB + S3), with injected faults.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ember_blocks::compact::{CompactionConfig, DAY_MS, compact_once, compact_tenant};
use ember_blocks::index::BlockIndexStore;
use ember_blocks::testing::{Budget, FaultyHot, FaultyIndex, FaultyObjects};
use ember_blocks::{ObjectStore, SharedHot, TieredStorage};
use ember_model::{Labels, Matcher, MetricMetadata, MetricType, Sample, Series};
use ember_storage::hot::HotStore;
use ember_storage::layout::BUCKET_MS;
use ember_storage::{AppendBatch, Appender, Querier, StorageError};
use ember_storage_aws::api::{DynamoApi, QuerySpec};
use ember_storage_aws::hotstore::keys;
use ember_storage_aws::retry::Backoff;
use ember_storage_aws::testing::{Faults, FaultyDynamo, Moto};
use ember_storage_aws::{
    AwsClients, AwsStorageConfig, DynamoBlockIndex, DynamoHotConfig, DynamoHotStore, S3ObjectStore,
    SdkDynamo, create_resources, open_aws_backend,
};

const T0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS + 21 * BUCKET_MS;

fn batch(round: usize, series: usize, per: usize) -> AppendBatch {
    let mut out = Vec::new();
    for s in 0..series {
        let labels = Labels::from_pairs([
            ("__name__", format!("metric_{}", s % 7)),
            ("instance", format!("host-{s}")),
            ("job", "node".to_string()),
        ]);
        let samples = (0..per)
            .map(|i| {
                let k = round * per + i;
                Sample::new(
                    T0 + k as i64 * 15_000 + (s % 3) as i64,
                    (k * (s + 1)) as f64 * 0.5,
                )
            })
            .collect();
        out.push(Series::new(labels, samples));
    }
    let metadata = vec![MetricMetadata {
        metric_family_name: "metric_0".into(),
        metric_type: MetricType::Counter,
        help: "help".into(),
        unit: String::new(),
    }];
    AppendBatch {
        series: out,
        metadata,
    }
}

fn fast_cfg() -> DynamoHotConfig {
    DynamoHotConfig {
        write_deadline: Duration::from_secs(3),
        read_deadline: Duration::from_secs(5),
        refresh_after: Duration::ZERO,
        // Writers re-register buckets on every write, so compacted buckets are clean at once.
        registration_ttl: Duration::ZERO,
        backoff: Backoff {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(100),
        },
        ..DynamoHotConfig::default()
    }
}

async fn setup(moto: &Moto, table: &str, bucket: &str) -> AwsClients {
    let clients = moto.clients().await;
    let first = create_resources(&clients.dynamo, &clients.s3, table, bucket)
        .await
        .unwrap();
    assert!(
        first.table_created && first.bucket_created && first.ttl_enabled,
        "{first:?}"
    );
    let again = create_resources(&clients.dynamo, &clients.s3, table, bucket)
        .await
        .unwrap();
    assert_eq!(again, Default::default(), "second call changes nothing");
    let ttl = clients
        .dynamo
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("ttl")
    );
    clients
}

type Snap = BTreeMap<String, Vec<(i64, u64)>>;

async fn snap(q: &dyn Querier, tenant: &str, m: &[Matcher], start: i64, end: i64) -> Snap {
    q.select(tenant, m, start, end)
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect(),
            )
        })
        .collect()
}

fn expected(batches: &[AppendBatch]) -> Snap {
    let mut m: HashMap<String, Vec<(i64, u64)>> = HashMap::new();
    for b in batches {
        for s in &b.series {
            m.entry(s.labels.to_string())
                .or_default()
                .extend(s.samples.iter().map(|x| (x.t, x.v.to_bits())));
        }
    }
    m.into_iter()
        .map(|(k, mut v)| {
            v.sort();
            v.dedup();
            (k, v)
        })
        .collect()
}

async fn segment_items(api: &SdkDynamo, tenant: &str, buckets: &[i64], shards: u32) -> usize {
    let mut n = 0;
    for &bucket in buckets {
        for shard in 0..shards {
            let key = ember_storage::layout::SegmentKey { bucket, shard };
            let page = api
                .query(&QuerySpec::partition(keys::segment_pk(tenant, key)), None)
                .await
                .unwrap();
            assert!(page.last_key.is_none());
            n += page.items.len();
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_query_compact_and_query_again() {
    let moto = Moto::start();
    let clients = setup(&moto, "ember-a", "ember-a").await;
    let mut cfg = AwsStorageConfig::new("ember-a", "ember-a");
    cfg.hot = fast_cfg();
    let backend = open_aws_backend(&cfg, &clients).await.unwrap();
    let st = backend.storage.clone();
    let batches: Vec<AppendBatch> = (0..12).map(|r| batch(r, 21, 40)).collect();
    for b in &batches {
        st.append("t1", b.clone()).await.unwrap();
    }
    // A retried request changes nothing.
    st.append("t1", batches[3].clone()).await.unwrap();
    let all = [Matcher::equal("job", "node")];
    let end = T0 + 12 * 40 * 15_000;
    let before = snap(st.as_ref(), "t1", &all, T0 - 1, end).await;
    assert_eq!(before, expected(&batches));
    let md = st.metadata("t1", None).await.unwrap();
    assert_eq!(md.len(), 1);
    let series = st
        .series(
            "t1",
            &[vec![Matcher::equal("__name__", "metric_3")]],
            T0,
            end,
        )
        .await
        .unwrap();
    assert_eq!(series.len(), 3);

    // A second "container" (own caches) sees the same series with the same ids.
    let other = DynamoHotStore::new(
        Arc::new(SdkDynamo::new(clients.dynamo.clone(), "ember-a")),
        fast_cfg(),
    );
    let mine = backend.compactor.hot.find_series("t1", &[]).await.unwrap();
    let theirs = other.find_series("t1", &[]).await.unwrap();
    let ids = |v: &[ember_storage::hot::IndexedSeries]| {
        let mut x: Vec<(u64, String)> = v.iter().map(|s| (s.id, s.labels.to_string())).collect();
        x.sort();
        x
    };
    assert_eq!(ids(&mine), ids(&theirs));
    assert_eq!(mine.len(), 21);
    assert!(mine.iter().all(|s| s.id < 21), "dense ids");

    // Compact everything (a fixed clock two days later).
    let mut c = CompactionConfig::at(T0 + 2 * DAY_MS);
    c.delete_delay_ms = 0;
    let report = backend.compactor.run(&c).await.unwrap();
    eprintln!("{report}");
    assert!(report.buckets_compacted >= 2);
    let after = snap(st.as_ref(), "t1", &all, T0 - 1, end).await;
    assert_eq!(after, before, "same results from blocks");
    let blocks = backend.storage.objects().list("blocks/").await.unwrap();
    assert!(!blocks.is_empty());
    assert!(
        backend
            .compactor
            .hot
            .buckets("t1")
            .await
            .unwrap()
            .is_empty(),
        "compacted buckets are clean"
    );
    // Queries now read the blocks, not the (TTL-expiring) segments.
    let m0 = backend.meter.snapshot();
    let one = snap(
        st.as_ref(),
        "t1",
        &[Matcher::equal("__name__", "metric_2")],
        T0,
        end,
    )
    .await;
    let d = backend.meter.snapshot() - m0;
    assert_eq!(one.len(), 3);
    eprintln!("cold query: {d:?}");
    assert!(d.s3_gets >= 1);

    // The kind-level usage (for /metrics) agrees with the billing meter.
    use ember_storage::usage::{StoreKind, StoreOp};
    let m = backend.meter.snapshot();
    let u = &backend.usage;
    assert!(u.bytes(StoreKind::Hot, StoreOp::Write) > 0);
    assert!(u.bytes(StoreKind::Hot, StoreOp::Read) > 0);
    assert_eq!(u.requests(StoreKind::Blocks, StoreOp::Write), m.s3_puts);
    assert_eq!(u.bytes(StoreKind::Blocks, StoreOp::Write), m.s3_put_bytes);
    assert_eq!(u.bytes(StoreKind::Blocks, StoreOp::Read), m.s3_get_bytes);
    assert_eq!(u.requests(StoreKind::Blocks, StoreOp::List), m.s3_lists);
    assert!(u.requests(StoreKind::Hot, StoreOp::Delete) >= report.buckets_compacted as u64);

    // Late data into a compacted bucket is visible at once and compacted next pass.
    let late = AppendBatch {
        series: vec![Series::new(
            Labels::from_pairs([
                ("__name__", "metric_0"),
                ("instance", "late"),
                ("job", "node"),
            ]),
            vec![Sample::new(T0 + 1000, 42.0)],
        )],
        metadata: vec![],
    };
    st.append("t1", late.clone()).await.unwrap();
    let with_late = snap(st.as_ref(), "t1", &all, T0 - 1, end).await;
    assert_eq!(with_late.len(), 22);
    backend.compactor.run(&c).await.unwrap();
    assert_eq!(snap(st.as_ref(), "t1", &all, T0 - 1, end).await, with_late);

    // Oversized segments are split into parts and read back whole.
    let mut big = Vec::new();
    for s in 0..100 {
        let labels = Labels::from_pairs([("__name__", "big".to_string()), ("i", s.to_string())]);
        let samples: Vec<Sample> = (0..500)
            .map(|i| {
                Sample::new(
                    T0 + 5 * BUCKET_MS + i * 1_000,
                    f64::from_bits(
                        0x4000_0000_0000_0000
                            ^ ((s * 7919 + i as usize) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                                >> 12,
                    ),
                )
            })
            .collect();
        big.push(Series::new(labels, samples));
    }
    let big = AppendBatch {
        series: big,
        metadata: vec![],
    };
    st.append("t2", big.clone()).await.unwrap();
    let got = snap(
        st.as_ref(),
        "t2",
        &[Matcher::equal("__name__", "big")],
        T0,
        T0 + DAY_MS,
    )
    .await;
    assert_eq!(got, expected(&[big]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_never_lose_acknowledged_writes_and_retries_do_not_duplicate() {
    let moto = Moto::start();
    let clients = setup(&moto, "ember-f", "ember-f").await;
    let sdk = SdkDynamo::new(clients.dynamo.clone(), "ember-f");
    let faulty = Arc::new(FaultyDynamo::new(
        sdk.clone(),
        Faults {
            throttle: 0.2,
            ambiguous: 0.15,
            partial: 0.3,
            hang_rate: 0.02,
            hang: Duration::from_millis(300),
        },
        42,
    ));
    let objects: Arc<dyn ObjectStore> =
        Arc::new(S3ObjectStore::new(clients.s3.clone(), "ember-f", ""));
    let index: Arc<dyn BlockIndexStore> = Arc::new(DynamoBlockIndex::new(Arc::new(sdk.clone())));
    let mut cfg = fast_cfg();
    // Long enough that a loaded machine (slow moto answers on top of the injected
    // throttling and 300 ms hangs) still acknowledges most writes; short enough that a
    // write stuck behind repeated faults gives up with Unavailable.
    cfg.write_deadline = Duration::from_millis(4000);
    let st = TieredStorage::new(
        DynamoHotStore::new(faulty.clone(), cfg.clone()),
        index.clone(),
        objects.clone(),
    );

    let mut acked = Vec::new();
    let mut failed = 0;
    for r in 0..30 {
        let b = batch(r, 60, 5);
        match st.append("t1", b.clone()).await {
            Ok(_) => acked.push(b),
            Err(StorageError::Unavailable(_)) => failed += 1,
            Err(e) => panic!("a fault must give Unavailable, got {e}"),
        }
    }
    let inj = &faulty.injected;
    let count = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "acked {} failed {failed}; injected throttled={} ambiguous={} partial={}",
        acked.len(),
        count(&inj.throttled),
        count(&inj.ambiguous),
        count(&inj.partial)
    );
    assert!(acked.len() >= 20, "most writes succeed despite faults");
    assert_eq!(
        count(&inj.oversized_batches),
        0,
        "never more than 25 items per batch"
    );
    assert!(count(&inj.throttled) > 0 && count(&inj.ambiguous) > 0 && count(&inj.partial) > 0);

    // A clean reader (another container) sees every acknowledged sample exactly once.
    let clean = TieredStorage::new(
        DynamoHotStore::new(Arc::new(sdk.clone()), fast_cfg()),
        index.clone(),
        objects.clone(),
    );
    let all = [Matcher::equal("job", "node")];
    let got = snap(&clean, "t1", &all, T0 - 1, T0 + DAY_MS).await;
    let want = expected(&acked);
    for (series, samples) in &want {
        let have = got
            .get(series)
            .unwrap_or_else(|| panic!("acknowledged series {series} lost"));
        for s in samples {
            assert!(
                have.binary_search(s).is_ok(),
                "acknowledged sample {s:?} of {series} lost"
            );
        }
    }

    // Retrying every request (as senders do) adds no items and no samples.
    let buckets: Vec<i64> = (0..4)
        .map(|h| ember_storage::layout::bucket_of(T0) + h * BUCKET_MS)
        .collect();
    let items_before = segment_items(&sdk, "t1", &buckets, cfg.shards).await;
    let plain = TieredStorage::new(
        DynamoHotStore::new(Arc::new(sdk.clone()), fast_cfg()),
        index.clone(),
        objects.clone(),
    );
    for b in &acked {
        plain.append("t1", b.clone()).await.unwrap();
    }
    assert_eq!(
        segment_items(&sdk, "t1", &buckets, cfg.shards).await,
        items_before,
        "retries rewrite the same items"
    );
    assert_eq!(snap(&clean, "t1", &all, T0 - 1, T0 + DAY_MS).await, got);

    // Throttled past the deadline: 503 (Unavailable), quickly; earlier data intact.
    faulty.set_faults(Faults {
        throttle: 1.0,
        ..Faults::default()
    });
    let mut short = fast_cfg();
    short.write_deadline = Duration::from_millis(400);
    let throttled = TieredStorage::new(
        DynamoHotStore::new(faulty.clone(), short),
        index.clone(),
        objects.clone(),
    );
    let t = std::time::Instant::now();
    let err = throttled.append("t1", batch(99, 3, 2)).await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the deadline bounds the write: {:?}",
        t.elapsed()
    );
    assert_eq!(snap(&clean, "t1", &all, T0 - 1, T0 + DAY_MS).await, got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_recovers_from_a_crash_at_every_step_and_s3_errors() {
    let moto = Moto::start();
    let clients = setup(&moto, "ember-c", "ember-c").await;
    let sdk = Arc::new(SdkDynamo::new(clients.dynamo.clone(), "ember-c"));
    let objects = Arc::new(S3ObjectStore::new(clients.s3.clone(), "ember-c", ""));
    let index = Arc::new(DynamoBlockIndex::new(sdk.clone()));
    let hot = Arc::new(DynamoHotStore::new(sdk.clone(), fast_cfg()));
    let reader = TieredStorage::new(SharedHot(hot.clone()), index.clone(), objects.clone());
    let batches: Vec<AppendBatch> = (0..4).map(|r| batch(r, 5, 90)).collect();
    let all = [Matcher::equal("job", "node")];
    let end = T0 + 4 * 90 * 15_000;
    let mut c = CompactionConfig::at(T0 + 2 * DAY_MS);
    c.delete_delay_ms = 0;

    // Count the mutating steps of a clean pass (tenant "clean").
    for b in &batches {
        reader.append("clean", b.clone()).await.unwrap();
    }
    let before = snap(&reader, "clean", &all, T0 - 1, end).await;
    let budget = Budget::unlimited();
    let fh = FaultyHot {
        inner: hot.clone(),
        budget: budget.clone(),
    };
    let fi = FaultyIndex {
        inner: index.clone(),
        budget: budget.clone(),
    };
    let fo = FaultyObjects {
        inner: objects.clone(),
        budget: budget.clone(),
    };
    let mut report = Default::default();
    compact_tenant(&fh, &fi, &fo, &c, "clean", &mut report)
        .await
        .unwrap();
    let steps = budget.spent();
    assert!(steps >= 6, "{steps} steps");
    assert_eq!(snap(&reader, "clean", &all, T0 - 1, end).await, before);

    for crash_at in 0..steps {
        let tenant = format!("crash{crash_at}");
        for b in &batches {
            reader.append(&tenant, b.clone()).await.unwrap();
        }
        let budget = Budget::new(crash_at);
        let fh = FaultyHot {
            inner: hot.clone(),
            budget: budget.clone(),
        };
        let fi = FaultyIndex {
            inner: index.clone(),
            budget: budget.clone(),
        };
        let fo = FaultyObjects {
            inner: objects.clone(),
            budget: budget.clone(),
        };
        let mut r = Default::default();
        assert!(
            compact_tenant(&fh, &fi, &fo, &c, &tenant, &mut r)
                .await
                .is_err()
        );
        assert_eq!(
            snap(&reader, &tenant, &all, T0 - 1, end).await,
            before,
            "after a crash at step {crash_at}"
        );
        let mut r = Default::default();
        compact_tenant(
            hot.as_ref(),
            index.as_ref(),
            objects.as_ref(),
            &c,
            &tenant,
            &mut r,
        )
        .await
        .unwrap();
        assert_eq!(
            snap(&reader, &tenant, &all, T0 - 1, end).await,
            before,
            "after recovery from step {crash_at}"
        );
        assert!(hot.buckets(&tenant).await.unwrap().is_empty());
    }

    // S3 failing on reads: the query answers Unavailable (503), not wrong data.
    let broken = TieredStorage::new(
        SharedHot(hot.clone()),
        index.clone(),
        Arc::new(BrokenReads {
            inner: objects.clone(),
        }),
    );
    let err = broken.select("clean", &all, T0 - 1, end).await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err}");

    // The whole-store pass still works across all tenants.
    let r = compact_once(hot.as_ref(), index.as_ref(), objects.as_ref(), &c)
        .await
        .unwrap();
    assert_eq!(r.blocks_written.len(), 0, "{r}");
}

/// S3 that fails every read with a 503-class error.
struct BrokenReads {
    inner: Arc<S3ObjectStore>,
}

#[async_trait::async_trait]
impl ObjectStore for BrokenReads {
    async fn put(
        &self,
        key: &str,
        data: bytes::Bytes,
    ) -> Result<(), ember_blocks::ObjectStoreError> {
        self.inner.put(key, data).await
    }
    async fn get(&self, key: &str) -> Result<bytes::Bytes, ember_blocks::ObjectStoreError> {
        Err(ember_blocks::ObjectStoreError::unavailable(
            format!("GET {key}"),
            "injected SlowDown",
        ))
    }
    async fn get_range(
        &self,
        key: &str,
        _range: std::ops::Range<u64>,
    ) -> Result<bytes::Bytes, ember_blocks::ObjectStoreError> {
        Err(ember_blocks::ObjectStoreError::unavailable(
            format!("GET {key}"),
            "injected SlowDown",
        ))
    }
    async fn delete(&self, key: &str) -> Result<(), ember_blocks::ObjectStoreError> {
        self.inner.delete(key).await
    }
    async fn list(
        &self,
        prefix: &str,
    ) -> Result<Vec<ember_blocks::ObjectMeta>, ember_blocks::ObjectStoreError> {
        self.inner.list(prefix).await
    }
}
