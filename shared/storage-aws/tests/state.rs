//! `DynamoStateStore` against a real moto server: round trips, replacement, deletion,
//! large (compressible) blobs, the item-size limit, and that state items live in their
//! own partition next to sample data without disturbing it.

use std::sync::Arc;
use std::time::Duration;

use ember_model::{Labels, Matcher, Sample, Series};
use ember_storage::state::StateStore;
use ember_storage::{AppendBatch, Appender, Querier, StorageError};
use ember_storage_aws::api::{DynamoApi, QuerySpec};
use ember_storage_aws::state::STATE_PK;
use ember_storage_aws::testing::{Faults, FaultyDynamo, Moto};
use ember_storage_aws::{
    AwsStorageConfig, DynamoStateStore, SdkDynamo, create_resources, open_aws_backend,
    open_state_store,
};

async fn table(moto: &Moto, name: &str) -> ember_storage_aws::AwsClients {
    let clients = moto.clients().await;
    create_resources(
        &clients.dynamo,
        &clients.s3,
        name,
        &format!("{name}-bucket"),
    )
    .await
    .unwrap();
    clients
}

#[tokio::test]
async fn state_roundtrips_replaces_and_deletes() {
    let moto = Moto::start();
    let clients = table(&moto, "state-rt").await;
    let store = open_state_store(&clients, "state-rt");

    assert_eq!(store.get("rules/a.yml;g").await.unwrap(), None);
    store.put("rules/a.yml;g", b"first".to_vec()).await.unwrap();
    store
        .put("scrape/state", b"{\"jobs\":{}}".to_vec())
        .await
        .unwrap();
    store
        .put("rules/a.yml;g", b"second".to_vec())
        .await
        .unwrap();
    assert_eq!(
        store.get("rules/a.yml;g").await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(
        store.get("scrape/state").await.unwrap().as_deref(),
        Some(&b"{\"jobs\":{}}"[..])
    );

    // A second store on the same table (another container) sees the same state.
    let other = open_state_store(&moto.clients().await, "state-rt");
    assert_eq!(
        other.get("rules/a.yml;g").await.unwrap().as_deref(),
        Some(&b"second"[..])
    );

    store.delete("rules/a.yml;g").await.unwrap();
    store.delete("rules/a.yml;g").await.unwrap();
    assert_eq!(other.get("rules/a.yml;g").await.unwrap(), None);
    assert!(other.get("scrape/state").await.unwrap().is_some());

    // Empty blobs are blobs too.
    store.put("notify/empty", Vec::new()).await.unwrap();
    assert_eq!(
        store.get("notify/empty").await.unwrap().as_deref(),
        Some(&b""[..])
    );
}

#[tokio::test]
async fn large_blobs_are_compressed_and_oversized_ones_rejected() {
    let moto = Moto::start();
    let clients = table(&moto, "state-big").await;
    let store = open_state_store(&clients, "state-big");

    // 3 MB of repetitive JSON (like a big scrape state) fits after compression.
    let mut big = String::from("{\"targets\":[");
    let mut i = 0;
    while big.len() < 3 << 20 {
        big.push_str(&format!(
            "{{\"url\":\"http://10.0.{}.{}:9100/metrics\",\"last\":{}}},",
            i / 250,
            i % 250,
            1_700_000_000_000i64 + i
        ));
        i += 1;
    }
    big.push_str("{}]}");
    store
        .put("scrape/state", big.clone().into_bytes())
        .await
        .unwrap();
    assert_eq!(
        store.get("scrape/state").await.unwrap(),
        Some(big.into_bytes())
    );

    // 600 KB of incompressible bytes cannot fit one item: a clear error, old value kept.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..600 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let err = store.put("scrape/state", noise).await.unwrap_err();
    assert!(
        matches!(&err, StorageError::InvalidInput(m) if m.contains("item limit")),
        "{err}"
    );
    assert!(store.get("scrape/state").await.unwrap().is_some());
}

#[tokio::test]
async fn state_partition_does_not_disturb_samples() {
    let moto = Moto::start();
    let clients = table(&moto, "state-mixed").await;
    let cfg = AwsStorageConfig::new("state-mixed", "state-mixed-bucket");
    let backend = open_aws_backend(&cfg, &clients).await.unwrap();
    let store = open_state_store(&clients, "state-mixed");

    let now = 1_700_000_000_000;
    let labels = Labels::from_pairs([("__name__", "up"), ("job", "x")]);
    backend
        .storage
        .append(
            "default",
            AppendBatch {
                series: vec![Series::new(labels, vec![Sample::new(now, 1.0)])],
                metadata: Vec::new(),
            },
        )
        .await
        .unwrap();
    store.put("rules/g", b"state".to_vec()).await.unwrap();

    let got = backend
        .storage
        .select(
            "default",
            &[Matcher::equal("__name__", "up")],
            now - 1000,
            now + 1000,
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].samples.len(), 1);

    let api = SdkDynamo::new(clients.dynamo.clone(), "state-mixed");
    let page = api
        .query(&QuerySpec::partition(STATE_PK), None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "only the state item is in @state");
}

#[tokio::test]
async fn throttling_is_retried() {
    let moto = Moto::start();
    let clients = table(&moto, "state-faults").await;
    let faulty = Arc::new(FaultyDynamo::new(
        SdkDynamo::new(clients.dynamo.clone(), "state-faults"),
        Faults {
            throttle: 0.5,
            hang: Duration::from_millis(1),
            ..Faults::default()
        },
        7,
    ));
    let store = DynamoStateStore::new(faulty.clone());
    for i in 0..10 {
        let key = format!("k{i}");
        store.put(&key, vec![i as u8; 100]).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), Some(vec![i as u8; 100]));
        store.delete(&key).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), None);
    }
    let throttled = faulty
        .injected
        .throttled
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(throttled > 5, "faults were injected ({throttled})");
}
