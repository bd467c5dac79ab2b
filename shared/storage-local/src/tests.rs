use ember_model::{Labels, Matcher, MetricMetadata, MetricType, Sample, Series};
use ember_storage::layout::BUCKET_MS;
use ember_storage::{AppendBatch, Appender, Querier};

use super::*;

fn series(name: &str, job: &str, samples: &[(i64, f64)]) -> Series {
    Series::new(
        Labels::from_pairs([("__name__", name), ("job", job)]),
        samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
    )
}

#[tokio::test]
async fn write_reopen_and_query() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path()).unwrap();
        let batch = AppendBatch {
            series: vec![
                series("up", "a", &[(1000, 1.0), (BUCKET_MS + 1000, 0.0)]),
                series("up", "b", &[(2000, 1.0)]),
                series("other", "a", &[(3000, 7.0)]),
            ],
            metadata: vec![MetricMetadata {
                metric_family_name: "up".into(),
                metric_type: MetricType::Gauge,
                help: "Up.".into(),
                unit: String::new(),
            }],
        };
        let stats = store.append("t1", batch.clone()).await.unwrap();
        assert_eq!(stats.series_created, 3);
        // A retry of the same request creates nothing and duplicates nothing.
        let stats = store.append("t1", batch).await.unwrap();
        assert_eq!(stats.series_created, 0);
    }
    let store = open(dir.path()).unwrap();
    let got = store
        .select("t1", &[Matcher::equal("__name__", "up")], 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    let a = got
        .iter()
        .find(|s| s.labels.get("job") == Some("a"))
        .unwrap();
    assert_eq!(
        a.samples,
        vec![Sample::new(1000, 1.0), Sample::new(BUCKET_MS + 1000, 0.0)]
    );
    // Time range is honoured, including across buckets.
    let got = store
        .select("t1", &[Matcher::equal("job", "a")], 1500, BUCKET_MS * 2)
        .await
        .unwrap();
    assert_eq!(got.len(), 2, "up and other");
    let up = got
        .iter()
        .find(|s| s.labels.metric_name() == Some("up"))
        .unwrap();
    assert_eq!(up.samples, vec![Sample::new(BUCKET_MS + 1000, 0.0)]);
    // Tenants are isolated.
    assert!(
        store
            .select("t2", &[], 0, i64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.metadata("t1", Some("up")).await.unwrap()[0].metric_type,
        MetricType::Gauge
    );
    assert_eq!(
        store
            .label_values("t1", "job", &[], 0, i64::MAX)
            .await
            .unwrap(),
        vec!["a", "b"]
    );
    assert_eq!(
        store.store().buckets("t1").await.unwrap(),
        vec![0, BUCKET_MS]
    );
    store.store().delete_bucket("t1", 0).await.unwrap();
    assert_eq!(store.store().buckets("t1").await.unwrap(), vec![BUCKET_MS]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_get_distinct_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(dir.path()).unwrap());
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let s = series("m", &format!("j{}", i % 10), &[(w * 100 + i, w as f64)]);
                store
                    .append(
                        "t",
                        AppendBatch {
                            series: vec![s],
                            metadata: vec![],
                        },
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = store.select("t", &[], 0, i64::MAX).await.unwrap();
    assert_eq!(got.len(), 10, "ten distinct series");
    assert_eq!(got.iter().map(|s| s.samples.len()).sum::<usize>(), 160);
}
