//! Engine-level checks of the public interface: result shapes, limits and errors.

use std::time::Duration;

use ember_model::{Labels, Sample, Series};
use ember_promql::{Engine, EngineOptions, PromqlError, QueryOptions, Value};
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

fn store() -> MemStorage {
    let s = MemStorage::new();
    let mut batch = AppendBatch::default();
    for i in 0..3 {
        let labels = Labels::from_pairs([("__name__", "up".to_string()), ("i", i.to_string())]);
        let samples = (0..100)
            .map(|k| Sample::new(k * 15_000, (k * i) as f64))
            .collect();
        batch.series.push(Series::new(labels, samples));
    }
    s.append_sync("t", batch).expect("append");
    s
}

#[test]
fn scalar_instant_query() {
    let r = block_on(Engine::default().instant_query(
        &store(),
        "t",
        "1+1",
        4000,
        &QueryOptions::default(),
    ))
    .expect("query");
    assert_eq!(r.value, Value::Scalar { t: 4000, v: 2.0 });
}

#[test]
fn range_query_is_matrix_sorted_by_labels() {
    let r = block_on(Engine::default().range_query(
        &store(),
        "t",
        "up * 2",
        0,
        60_000,
        15_000,
        &QueryOptions::default(),
    ))
    .expect("query");
    let Value::Matrix(m) = r.value else {
        panic!("not a matrix")
    };
    assert_eq!(m.len(), 3);
    assert!(m.windows(2).all(|w| w[0].labels < w[1].labels));
    assert!(
        m.iter()
            .all(|s| s.labels.metric_name().is_none() && s.samples.len() == 5)
    );
}

#[test]
fn too_many_points() {
    let e = block_on(Engine::default().range_query(
        &store(),
        "t",
        "up",
        0,
        11_001_000,
        1000,
        &QueryOptions::default(),
    ))
    .unwrap_err();
    assert!(
        matches!(e, PromqlError::BadData(ref m) if m.starts_with("exceeded maximum resolution of 11,000 points"))
    );
}

#[test]
fn too_many_samples() {
    let engine = Engine::new(EngineOptions {
        max_samples: 10,
        ..EngineOptions::default()
    });
    let e = block_on(engine.range_query(
        &store(),
        "t",
        "up",
        0,
        1_000_000,
        15_000,
        &QueryOptions::default(),
    ))
    .unwrap_err();
    assert!(matches!(e, PromqlError::TooManySamples(_)), "{e}");
    assert_eq!(e.error_type(), "execution");
}

#[test]
fn timeout() {
    let opts = QueryOptions {
        timeout: Some(Duration::ZERO),
        ..QueryOptions::default()
    };
    let e = block_on(Engine::default().instant_query(&store(), "t", "sum(up)", 60_000, &opts))
        .unwrap_err();
    assert!(matches!(e, PromqlError::Timeout(_)), "{e}");
}

#[test]
fn parse_errors_are_bad_data_with_position() {
    let e = block_on(Engine::default().instant_query(
        &store(),
        "t",
        "sum(up",
        0,
        &QueryOptions::default(),
    ))
    .unwrap_err();
    assert_eq!(e.error_type(), "bad_data");
    assert!(e.to_string().starts_with("1:"), "{e}");
    let e = block_on(Engine::default().range_query(
        &store(),
        "t",
        "up[5m]",
        0,
        60_000,
        15_000,
        &QueryOptions::default(),
    ))
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("invalid expression type \"range vector\""),
        "{e}"
    );
}

#[test]
fn many_to_many_is_an_execution_error() {
    let e = block_on(Engine::default().instant_query(
        &store(),
        "t",
        "up + on() up",
        60_000,
        &QueryOptions::default(),
    ))
    .unwrap_err();
    assert_eq!(e.error_type(), "execution");
    assert!(
        e.to_string().contains("many-to-many matching not allowed"),
        "{e}"
    );
}

#[test]
fn non_counter_rate_gives_info_and_samples_are_counted() {
    let r = block_on(Engine::default().instant_query(
        &store(),
        "t",
        "rate(up[5m])",
        600_000,
        &QueryOptions::default(),
    ))
    .expect("query");
    assert_eq!(
        r.infos,
        vec![
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"up\" (1:6)"
        ]
    );
    assert!(r.samples_processed > 0);
}

#[test]
fn lookback_override() {
    let opts = QueryOptions {
        lookback_delta_ms: Some(10_000),
        ..QueryOptions::default()
    };
    // The last sample is at 1485 s; 20 s later it is outside a 10 s lookback.
    let r = block_on(Engine::default().instant_query(&store(), "t", "up", 1_505_000, &opts))
        .expect("query");
    assert_eq!(r.value, Value::Vector(vec![]));
}

#[test]
fn hostile_queries_do_not_panic() {
    let s = store();
    let e = Engine::default();
    let o = QueryOptions::default();
    for q in [
        "up offset 100000y",
        "up @ 9007199254740991",
        "up @ -9007199254740991",
        "rate(up[100000y])",
        "max_over_time(up[1y:1ms])",
        "max_over_time(up[5m:1ms] offset -100000y)",
        "topk(1e300, up)",
        "quantile(NaN, up)",
        "label_replace(up, \"a\", \"$99\", \"i\", \"(.*)\")",
        "histogram_quantile(0.5, up)",
        "count_values(\"x\", up)",
        "sort_by_label(up, \"zzz\")",
        "1 / 0",
        "vector(1) % 0",
    ] {
        let _ = block_on(e.instant_query(&s, "t", q, 60_000, &o));
        let _ = block_on(e.range_query(&s, "t", q, 0, 600_000, 60_000, &o));
    }
    let _ = block_on(e.instant_query(&s, "t", "up", i64::MAX, &o));
    let lookback = QueryOptions {
        lookback_delta_ms: Some(i64::MAX),
        ..QueryOptions::default()
    };
    let _ = block_on(e.instant_query(&s, "t", "up", 60_000, &lookback));
}

#[test]
fn name_removal_modes() {
    let q = "label_replace(rate(up[5m]), \"n\", \"$1\", \"__name__\", \"(.*)\")";
    let o = QueryOptions::default();
    let immediate =
        block_on(Engine::default().instant_query(&store(), "t", q, 600_000, &o)).expect("query");
    let Value::Vector(v) = immediate.value else {
        panic!("not a vector")
    };
    assert!(v.iter().all(|s| s.labels.get("n").is_none()));
    let delayed = Engine::default().with_delayed_name_removal(true);
    let r = block_on(delayed.instant_query(&store(), "t", q, 600_000, &o)).expect("query");
    let Value::Vector(v) = r.value else {
        panic!("not a vector")
    };
    assert!(
        v.iter()
            .all(|s| s.labels.get("n") == Some("up") && s.labels.metric_name().is_none())
    );
    // Without delayed removal, names dropped by rate() make the inputs collide.
    let e = block_on(Engine::default().instant_query(
        &store(),
        "t",
        "sum(rate({i=~\".+\", __name__=~\"up\"}[5m]) + on(i) group_left rate(up[5m]))",
        600_000,
        &o,
    ));
    assert!(e.is_ok());
}

#[test]
fn query_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let s = store();
    let e = Engine::default();
    let o = QueryOptions::default();
    let f = e.instant_query(&s, "t", "up", 0, &o);
    assert_send(&f);
    let f = e.range_query(&s, "t", "up", 0, 1, 1, &o);
    assert_send(&f);
}
