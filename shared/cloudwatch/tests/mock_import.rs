//! The importer end to end against `aws-smithy-mocks` answers shaped like CloudWatch's:
//! ListMetrics over several pages, GetMetricData throttled, failing with 503, paginated
//! with PartialData; then the imported series are read back through the PromQL engine.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::error::ErrorMetadata;
use aws_sdk_cloudwatch::operation::get_metric_data::{
    GetMetricDataError, GetMetricDataInput, GetMetricDataOutput,
};
use aws_sdk_cloudwatch::operation::list_metrics::{ListMetricsInput, ListMetricsOutput};
use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataResult, RecentlyActive, ScanBy, StatusCode,
};
use aws_smithy_mocks::{MockResponse, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode as HttpStatus;
use aws_smithy_types::DateTime;
use aws_smithy_types::body::SdkBody;
use ember_cloudwatch::{Backoff, Connection, Importer, StaticClients};
use ember_config::Config;
use ember_model::{Labels, MetricType, Sample, Series};
use ember_promql::{Engine, QueryOptions, Value};
use ember_storage::state::{MemStateStore, StateStore};
use ember_storage::{AppendBatch, AppendStats, Appender, MemStorage, Querier};

const REGION: &str = "eu-west-1";
const ACCOUNT: &str = "123456789012";

/// Records every appended sample (to prove nothing is written twice) and forwards to MemStorage.
#[derive(Default)]
struct Recording {
    store: MemStorage,
    appended: Mutex<Vec<(Labels, Sample)>>,
    fail_next: AtomicUsize,
}

#[async_trait]
impl Appender for Recording {
    async fn append(&self, tenant: &str, batch: AppendBatch) -> ember_storage::Result<AppendStats> {
        if self.fail_next.load(Ordering::SeqCst) > 0 {
            self.fail_next.fetch_sub(1, Ordering::SeqCst);
            return Err(ember_storage::StorageError::Unavailable("injected".into()));
        }
        {
            let mut a = self.appended.lock().unwrap();
            for s in &batch.series {
                for x in &s.samples {
                    a.push((s.labels.clone(), *x));
                }
            }
        }
        self.store.append(tenant, batch).await
    }
}

impl Recording {
    fn assert_no_duplicates(&self) -> usize {
        let a = self.appended.lock().unwrap();
        let mut seen = HashSet::new();
        for (l, s) in a.iter() {
            assert!(
                seen.insert((l.clone(), s.t)),
                "appended twice: {l:?} at {}",
                s.t
            );
        }
        a.len()
    }
}

/// CloudWatch's answer for one query: one datapoint per period in [start, end).
fn value(instance: &str, stat: &str, t: i64) -> f64 {
    let base = match instance {
        "prod-a" => 10.0,
        "prod-b" => 40.0,
        _ => 1000.0,
    };
    base + ((t / 60) % 50) as f64 + if stat == "Maximum" { 0.5 } else { 0.0 }
}

fn answer(input: &GetMetricDataInput, second_page: bool) -> GetMetricDataOutput {
    let start = input.start_time().unwrap().secs();
    let end = input.end_time().unwrap().secs();
    assert_eq!(input.scan_by(), Some(&ScanBy::TimestampAscending));
    let mid = start + (end - start) / 2;
    let mut out = GetMetricDataOutput::builder();
    for q in input.metric_data_queries() {
        let ms = q.metric_stat().unwrap();
        let m = ms.metric().unwrap();
        let inst = m
            .dimensions()
            .iter()
            .find(|d| d.name() == Some("DBInstanceIdentifier"));
        let inst = inst.and_then(|d| d.value()).unwrap_or("none");
        let period = i64::from(ms.period().unwrap());
        let stat = ms.stat().unwrap();
        let mut r = MetricDataResult::builder()
            .id(q.id().unwrap())
            .label(m.metric_name().unwrap());
        let mut t = start;
        while t < end {
            if (t < mid) != second_page {
                r = r
                    .timestamps(DateTime::from_secs(t))
                    .values(value(inst, stat, t));
            }
            t += period;
        }
        r = r.status_code(if second_page {
            StatusCode::Complete
        } else {
            StatusCode::PartialData
        });
        out = out.metric_data_results(r.build());
    }
    if !second_page {
        out = out.next_token("page-2");
    }
    out.build()
}

fn metric(name: &str, dims: &[(&str, &str)]) -> Metric {
    let mut m = Metric::builder().namespace("AWS/RDS").metric_name(name);
    for (k, v) in dims {
        m = m.dimensions(Dimension::builder().name(*k).value(*v).build());
    }
    m.build()
}

struct Fake {
    client: Client,
    get_calls: Arc<AtomicUsize>,
    list_calls: Arc<AtomicUsize>,
}

/// A mocked CloudWatch: the first GetMetricData call is throttled, the second gets a 503,
/// every later one answers in two pages. ListMetrics answers in two pages.
fn fake_cloudwatch() -> Fake {
    let get_calls = Arc::new(AtomicUsize::new(0));
    let list_calls = Arc::new(AtomicUsize::new(0));
    let g = get_calls.clone();
    let get = mock!(Client::get_metric_data).then_compute_response(move |input| {
        match g.fetch_add(1, Ordering::SeqCst) {
            0 => MockResponse::Error(GetMetricDataError::generic(
                ErrorMetadata::builder()
                    .code("Throttling")
                    .message("Rate exceeded")
                    .build(),
            )),
            1 => MockResponse::Http(HttpResponse::new(
                HttpStatus::try_from(503).unwrap(),
                SdkBody::empty(),
            )),
            _ => MockResponse::Output(answer(input, input.next_token() == Some("page-2"))),
        }
    });
    let l = list_calls.clone();
    let list = mock!(Client::list_metrics).then_compute_output(move |input: &ListMetricsInput| {
        l.fetch_add(1, Ordering::SeqCst);
        assert_eq!(input.namespace(), Some("AWS/RDS"));
        assert_eq!(input.recently_active(), Some(&RecentlyActive::Pt3H));
        assert_eq!(input.dimensions().len(), 1);
        assert_eq!(input.dimensions()[0].name(), Some("DBInstanceIdentifier"));
        let name = input.metric_name().unwrap();
        match input.next_token() {
            None => ListMetricsOutput::builder()
                .metrics(metric(name, &[("DBInstanceIdentifier", "prod-a")]))
                .metrics(metric(name, &[("DBInstanceIdentifier", "dev-x")]))
                .next_token("lm-2")
                .build(),
            Some(_) => ListMetricsOutput::builder()
                .metrics(metric(name, &[("DBInstanceIdentifier", "prod-b")]))
                .metrics(metric(
                    name,
                    &[("DBInstanceIdentifier", "prod-a"), ("Role", "WRITER")],
                ))
                .metrics(metric(name, &[("DBInstanceIdentifier", "prod-a")]))
                .build(),
        }
    });
    let client = mock_client!(
        aws_sdk_cloudwatch,
        RuleMode::MatchAny,
        [&get, &list],
        no_sdk_retries
    );
    Fake {
        client,
        get_calls,
        list_calls,
    }
}

/// Retries are the importer's own (production clients switch the SDK's off too).
fn no_sdk_retries(b: aws_sdk_cloudwatch::config::Builder) -> aws_sdk_cloudwatch::config::Builder {
    b.retry_config(aws_sdk_cloudwatch::config::retry::RetryConfig::disabled())
}

fn rds_config() -> Config {
    Config::from_yaml(
        r#"
ember:
  cloudwatch:
    jobs:
      - name: rds
        regions: [eu-west-1]
        namespace: AWS/RDS
        period: 1m
        length: 5m
        delay: 0s
        statistics: [Average, Maximum]
        metrics:
          - name: CPUUtilization
        dimension_filters:
          - name: DBInstanceIdentifier
            regex: "prod-.*"
        labels: {team: db}
"#,
        std::path::Path::new("test.yml"),
    )
    .unwrap()
}

fn fast() -> Backoff {
    Backoff {
        max_attempts: 4,
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
    }
}

async fn instant(store: &MemStorage, q: &str, t: i64) -> Vec<(Labels, f64)> {
    let r = Engine::default()
        .instant_query(store, "default", q, t, &QueryOptions::default())
        .await
        .unwrap();
    let Value::Vector(v) = r.value else {
        panic!("expected a vector for {q}, got {:?}", r.value)
    };
    let mut out: Vec<(Labels, f64)> = v.into_iter().map(|s| (s.labels, s.v)).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn imports_discovered_rds_metrics_and_dedups_overlapping_windows() {
    let fake = fake_cloudwatch();
    let clients = StaticClients::new().with(
        REGION,
        Connection {
            client: fake.client.clone(),
            account_id: Some(ACCOUNT.into()),
        },
    );
    let rec = Arc::new(Recording::default());
    let state = Arc::new(MemStateStore::new());
    let importer = Importer::new(
        rds_config().ember.cloudwatch.jobs,
        Arc::new(clients),
        state.clone(),
        rec.clone(),
        "default",
    )
    .with_backoff(fast());

    // 30 s past an hour: window [T-5m, T) with T on the hour.
    let hour = 1_700_000_000 / 3600 * 3600;
    let now1 = UNIX_EPOCH + Duration::from_secs(hour + 30);
    let r1 = importer.run_pass(now1).await;
    assert!(r1.errors().is_empty(), "{:?}", r1.errors());
    let reg = &r1.regions[0];
    assert_eq!(reg.series, 4, "prod-a, prod-b × Average, Maximum");
    assert_eq!(reg.list_calls, 2);
    assert_eq!(reg.retries, 2, "one throttle, one 503");
    assert_eq!(reg.get_calls, 2, "two pages");
    assert_eq!(reg.metrics_requested, 8);
    assert_eq!(r1.samples(), 4 * 5);
    assert_eq!(fake.get_calls.load(Ordering::SeqCst), 4);
    assert_eq!(fake.list_calls.load(Ordering::SeqCst), 2);
    assert!(
        state
            .get("cloudwatch/rds/eu-west-1")
            .await
            .unwrap()
            .is_some()
    );

    // Two minutes later: the windows overlap by three minutes.
    let now2 = now1 + Duration::from_secs(120);
    let r2 = importer.run_pass(now2).await;
    assert!(r2.errors().is_empty(), "{:?}", r2.errors());
    assert_eq!(r2.samples(), 4 * 2);
    assert_eq!(r2.duplicates(), 4 * 3);
    assert_eq!(rec.assert_no_duplicates(), 4 * 7);

    // Names, labels, CloudWatch's timestamps and values, through PromQL.
    let last = (hour as i64 + 60) * 1000; // newest datapoint: the minute [T+1m, T+2m)
    let got = instant(&rec.store, "aws_rds_cpuutilization_average", last).await;
    let expect_labels = |inst: &str| {
        Labels::from_pairs([
            ("__name__", "aws_rds_cpuutilization_average"),
            ("account_id", ACCOUNT),
            ("dbinstance_identifier", inst),
            ("region", REGION),
            ("team", "db"),
        ])
    };
    assert_eq!(
        got,
        vec![
            (
                expect_labels("prod-a"),
                value("prod-a", "Average", last / 1000)
            ),
            (
                expect_labels("prod-b"),
                value("prod-b", "Average", last / 1000)
            ),
        ]
    );
    let maxes = instant(
        &rec.store,
        "aws_rds_cpuutilization_maximum{dbinstance_identifier=\"prod-b\"}",
        last,
    )
    .await;
    assert_eq!(maxes[0].1, value("prod-b", "Maximum", last / 1000));
    // Every minute of both windows, once: T-5m … T+1m.
    let series = rec
        .store
        .select_sync(
            "default",
            &[ember_model::Matcher::equal(
                "__name__",
                "aws_rds_cpuutilization_average",
            )],
            0,
            i64::MAX,
        )
        .unwrap();
    assert_eq!(series.len(), 2);
    for s in &series {
        let ts: Vec<i64> = s.samples.iter().map(|x| x.t / 1000).collect();
        let want: Vec<i64> = (-5..=1).map(|m| hour as i64 + m * 60).collect();
        assert_eq!(ts, want);
    }
    let counts = instant(
        &rec.store,
        "count_over_time(aws_rds_cpuutilization_average[7m])",
        last,
    )
    .await;
    assert!(counts.iter().all(|c| c.1 == 7.0), "{counts:?}");

    // Metadata is written: gauge with a help naming the source.
    let md = rec
        .store
        .metadata("default", Some("aws_rds_cpuutilization_average"))
        .await
        .unwrap();
    assert_eq!(md.len(), 1);
    assert_eq!(md[0].metric_type, MetricType::Gauge);
    assert!(md[0].help.contains("CPUUtilization"));

    // Joined with an application metric written by another path (remote write appends the
    // same way): queries per second per CPU percent, per instance.
    rec.store
        .append(
            "default",
            AppendBatch {
                series: vec![Series::new(
                    Labels::from_pairs([
                        ("__name__", "app_db_queries_per_second"),
                        ("dbinstance_identifier", "prod-a"),
                        ("job", "app"),
                    ]),
                    vec![Sample::new(last, 120.0)],
                )],
                metadata: vec![],
            },
        )
        .await
        .unwrap();
    let joined = instant(
        &rec.store,
        "app_db_queries_per_second / on (dbinstance_identifier) aws_rds_cpuutilization_average",
        last,
    )
    .await;
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].0.get("dbinstance_identifier"), Some("prod-a"));
    assert_eq!(joined[0].1, 120.0 / value("prod-a", "Average", last / 1000));
}

#[tokio::test]
async fn exact_dimensions_batch_500_and_failures_do_not_advance_watermarks() {
    // 300 functions × 2 statistics = 600 queries → two GetMetricData calls, no ListMetrics.
    let mut yaml = String::from(
        "ember:\n  cloudwatch:\n    jobs:\n      - name: lambda\n        regions: [us-east-1]\n        namespace: AWS/Lambda\n        period: 5m\n        delay: 0s\n        statistics: [Sum, p99]\n        metrics: [{name: Invocations}]\n        dimensions:\n",
    );
    for i in 0..300 {
        yaml.push_str(&format!("          - {{FunctionName: fn-{i}}}\n"));
    }
    let cfg = Config::from_yaml(&yaml, std::path::Path::new("t.yml")).unwrap();
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let s2 = sizes.clone();
    let get = mock!(Client::get_metric_data).then_compute_response(move |input| {
        s2.lock().unwrap().push(input.metric_data_queries().len());
        let start = input.start_time().unwrap().secs();
        let mut out = GetMetricDataOutput::builder();
        for q in input.metric_data_queries() {
            let id = q.id().unwrap();
            let ms = q.metric_stat().unwrap();
            let f = ms.metric().unwrap().dimensions()[0]
                .value()
                .unwrap()
                .to_string();
            let n: f64 = f.trim_start_matches("fn-").parse().unwrap();
            let status = if f == "fn-7" {
                StatusCode::Forbidden
            } else {
                StatusCode::Complete
            };
            out = out.metric_data_results(
                MetricDataResult::builder()
                    .id(id)
                    .timestamps(DateTime::from_secs(start))
                    .values(if ms.stat() == Some("p99") { n * 2.0 } else { n })
                    .status_code(status)
                    .build(),
            );
        }
        MockResponse::Output(out.build())
    });
    let list = mock!(Client::list_metrics).then_compute_output(|_: &ListMetricsInput| {
        panic!("exact dimensions must not call ListMetrics")
    });
    let client = mock_client!(
        aws_sdk_cloudwatch,
        RuleMode::MatchAny,
        [&get, &list],
        no_sdk_retries
    );
    let clients = StaticClients::new().with(
        "us-east-1",
        Connection {
            client,
            account_id: None,
        },
    );
    let rec = Arc::new(Recording::default());
    rec.fail_next.store(1, Ordering::SeqCst);
    let state: Arc<MemStateStore> = Arc::new(MemStateStore::new());
    let importer = Importer::new(
        cfg.ember.cloudwatch.jobs,
        Arc::new(clients),
        state,
        rec.clone(),
        "default",
    )
    .with_backoff(fast());
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000 / 3600 * 3600 + 10);

    // First pass: the first append fails (500 queries' samples not stored), the second works.
    let r1 = importer.run_pass(now).await;
    assert_eq!(*sizes.lock().unwrap(), vec![500, 100]);
    assert_eq!(r1.metrics_requested(), 600);
    assert_eq!(r1.samples(), 100);
    assert!(
        r1.errors().iter().any(|e| e.contains("injected")),
        "{:?}",
        r1.errors()
    );

    // Second pass, same window: what failed is imported now, nothing twice.
    let r2 = importer.run_pass(now).await;
    assert_eq!(
        r2.samples(),
        600 - 100 - 2,
        "all but fn-7's two Forbidden results"
    );
    assert_eq!(r2.duplicates(), 100);
    assert!(
        r2.errors().iter().any(|e| e.contains("Forbidden")),
        "{:?}",
        r2.errors()
    );
    rec.assert_no_duplicates();

    let t = (1_700_000_000 / 3600 * 3600 - 600) * 1000;
    let got = instant(
        &rec.store,
        "aws_lambda_invocations_p99{function_name=\"fn-42\"}",
        t,
    )
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, 84.0);
    assert_eq!(got[0].0.get("region"), Some("us-east-1"));
    assert_eq!(got[0].0.get("account_id"), None);
    let sum = instant(&rec.store, "sum(aws_lambda_invocations_sum)", t).await;
    let expect: f64 = (0..300).filter(|i| *i != 7).map(f64::from).sum();
    assert_eq!(sum[0].1, expect);
    let _ = BTreeMap::<(), ()>::new();
}

#[tokio::test]
async fn a_non_retryable_error_is_reported_without_retries() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let get = mock!(Client::get_metric_data).then_compute_response(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        MockResponse::Error(GetMetricDataError::generic(
            ErrorMetadata::builder()
                .code("InvalidParameterValue")
                .message("bad stat")
                .build(),
        ))
    });
    let client = mock_client!(
        aws_sdk_cloudwatch,
        RuleMode::MatchAny,
        [&get],
        no_sdk_retries
    );
    let cfg = Config::from_yaml(
        "ember:\n  cloudwatch:\n    jobs:\n      - {name: x, regions: [us-east-1], namespace: AWS/EC2, metrics: [{name: CPUUtilization}], dimensions: [{InstanceId: i-1}]}\n",
        std::path::Path::new("t.yml"),
    )
    .unwrap();
    let rec = Arc::new(Recording::default());
    let importer = Importer::new(
        cfg.ember.cloudwatch.jobs,
        Arc::new(StaticClients::new().with(
            "us-east-1",
            Connection {
                client,
                account_id: None,
            },
        )),
        Arc::new(MemStateStore::new()),
        rec.clone(),
        "default",
    )
    .with_backoff(fast());
    let r = importer.run_pass(SystemTime::now()).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(r.regions[0].retries, 0);
    assert!(
        r.errors()[0].contains("InvalidParameterValue"),
        "{:?}",
        r.errors()
    );
    assert_eq!(rec.assert_no_duplicates(), 0);
}

#[tokio::test]
async fn run_due_runs_a_job_once_per_interval_slot() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let get = mock!(Client::get_metric_data).then_compute_response(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        MockResponse::Output(GetMetricDataOutput::builder().build())
    });
    let client = mock_client!(
        aws_sdk_cloudwatch,
        RuleMode::MatchAny,
        [&get],
        no_sdk_retries
    );
    let cfg = Config::from_yaml(
        "ember:\n  cloudwatch:\n    jobs:\n      - {name: x, interval: 15m, regions: [us-east-1], namespace: AWS/EC2, metrics: [{name: CPUUtilization}], dimensions: [{InstanceId: i-1}]}\n",
        std::path::Path::new("t.yml"),
    )
    .unwrap();
    let importer = Importer::new(
        cfg.ember.cloudwatch.jobs,
        Arc::new(StaticClients::new().with(
            "us-east-1",
            Connection {
                client,
                account_id: None,
            },
        )),
        Arc::new(MemStateStore::new()),
        Arc::new(Recording::default()),
        "default",
    );
    let slot = 1_700_000_000 / 900 * 900;
    let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
    // Invocations every 5 minutes: the job runs in the first of each 15-minute slot.
    let mut ran = Vec::new();
    for k in 0..6 {
        let r = importer.run_due(at(slot + 10 + k * 300)).await;
        ran.push(r.regions.len());
    }
    assert_eq!(ran, vec![1, 0, 0, 1, 0, 0]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
