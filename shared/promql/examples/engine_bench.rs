//! Engine benchmark: generates counters into `MemStorage` and times instant and range queries.
//!
//! `cargo run --release -p ember-promql --example engine_bench -- [series] [hours] [scrape_s]`
//! (defaults: 10,000 series, 6 h, 15 s).

use std::time::{Duration, Instant};

use ember_model::{Labels, Sample, Series};
use ember_promql::{Engine, EngineOptions, QueryOptions, QueryResult, Value};
use ember_storage::{AppendBatch, MemStorage};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n_series: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let hours: i64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(6);
    let scrape_s: i64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(15);
    // Optional: only run queries containing this text.
    let filter = args.get(4).cloned().unwrap_or_default();
    let end = hours * 3_600_000;
    let per_series = (end / (scrape_s * 1000) + 1) as usize;

    let store = MemStorage::new();
    let t0 = Instant::now();
    let mut batch = AppendBatch::default();
    for i in 0..n_series {
        let labels = Labels::from_pairs([
            ("__name__", "http_requests_total".to_string()),
            ("job", format!("job-{}", i % 10)),
            ("instance", format!("host-{i}")),
            ("code", ["200", "404", "500"][i % 3].to_string()),
        ]);
        let mut v = 0.0;
        let samples = (0..per_series)
            .map(|k| {
                v += ((i * 7 + k * 13) % 17) as f64;
                Sample::new(k as i64 * scrape_s * 1000, v)
            })
            .collect();
        batch.series.push(Series::new(labels, samples));
    }
    let total = n_series * per_series;
    if let Err(e) = store.append_sync("bench", batch) {
        eprintln!("append failed: {e}");
        return;
    }
    println!(
        "loaded {n_series} series x {per_series} samples = {total} samples in {:.2?}",
        t0.elapsed()
    );

    // Storage alone (MemStorage copies samples out), to separate it from evaluation time.
    for (what, lo) in [
        ("select 5m window", end - 300_000),
        ("select whole range", 0),
    ] {
        let m = [ember_model::Matcher::equal(
            "__name__",
            "http_requests_total",
        )];
        let t = Instant::now();
        let n: usize = store
            .select_sync("bench", &m, lo, end)
            .map(|v| v.iter().map(|s| s.samples.len()).sum())
            .unwrap_or(0);
        println!(
            "storage  {what:<55} {:>9.1} ms  {n:>9} samples",
            t.elapsed().as_secs_f64() * 1e3
        );
    }

    let engine = Engine::new(EngineOptions {
        max_samples: usize::MAX,
        timeout: Duration::from_secs(600),
        ..EngineOptions::default()
    });
    let opts = QueryOptions::default();
    // Best of three runs (the machine is shared).
    let instant = |q: &str| {
        let mut best = (Duration::MAX, None);
        for _ in 0..3 {
            let t = Instant::now();
            let r = block_on(engine.instant_query(&store, "bench", q, end, &opts));
            let d = t.elapsed();
            if d < best.0 {
                best = (d, Some(r));
            }
        }
        (
            best.0,
            best.1
                .unwrap_or(Err(ember_promql::PromqlError::Execution("no run".into()))),
        )
    };
    let range = |q: &str, step_s: i64| {
        let mut best = (Duration::MAX, None);
        for _ in 0..3 {
            let t = Instant::now();
            let r = block_on(engine.range_query(&store, "bench", q, 0, end, step_s * 1000, &opts));
            let d = t.elapsed();
            if d < best.0 {
                best = (d, Some(r));
            }
        }
        (
            best.0,
            best.1
                .unwrap_or(Err(ember_promql::PromqlError::Execution("no run".into()))),
        )
    };
    let wanted = |q: &str| q.contains(filter.as_str());
    let report = |kind: &str,
                  q: &str,
                  d: Duration,
                  r: Result<QueryResult, ember_promql::PromqlError>| match r {
        Ok(r) => {
            let n = match &r.value {
                Value::Vector(v) => v.len(),
                Value::Matrix(m) => m.len(),
                _ => 1,
            };
            println!(
                "{kind:<8} {q:<55} {:>9.1} ms  {:>7} series out  {:>8.1} M samples/s",
                d.as_secs_f64() * 1e3,
                n,
                r.samples_processed as f64 / d.as_secs_f64() / 1e6
            );
        }
        Err(e) => println!("{kind:<8} {q:<55} error: {e}"),
    };
    for q in [
        "http_requests_total",
        "rate(http_requests_total[5m])",
        "sum by (job) (rate(http_requests_total[5m]))",
        "histogram_quantile(0.9, sum by (le) (rate(http_requests_total[5m])))",
        "topk(5, rate(http_requests_total[5m]))",
        "sum(rate(http_requests_total[5m])) / sum(rate(http_requests_total[1h]))",
        "max_over_time(http_requests_total[1h])",
    ] {
        if !wanted(q) {
            continue;
        }
        let (d, r) = instant(q);
        report("instant", q, d, r);
    }
    for (q, step) in [
        ("sum by (job) (rate(http_requests_total[5m]))", 60),
        ("rate(http_requests_total[5m])", 60),
        ("sum by (job) (http_requests_total)", 15),
        (
            "http_requests_total / on(instance, job, code) http_requests_total offset 1h",
            60,
        ),
        ("avg_over_time(http_requests_total[10m])", 300),
    ] {
        if !wanted(q) {
            continue;
        }
        let (d, r) = range(q, step);
        report(&format!("range/{step}s"), q, d, r);
    }
}
