//! `/api/v1/status/tsdb`: cardinality of a tenant's recent data, in Prometheus' shape.
//!
//! Prometheus answers from the postings index of its head block (the last two to three
//! hours). Ember has no head block, so it computes the same statistics from the
//! [`Querier`](ember_storage::Querier) over a window — by default the last two hours,
//! like a freshly cut head; `start`/`end` (an Ember extension) choose another window.
//! Per tenant: `/workspaces/<id>/api/v1/status/tsdb` reports that workspace only.
//!
//! The statistics follow Prometheus' `MemPostings.Stats`:
//! `seriesCountByMetricName` counts series per `__name__` value,
//! `labelValueCountByLabelName` distinct values per label name (including `__name__`),
//! `memoryInBytesByLabelName` the sum over a label's values of `len(value) × series`,
//! `seriesCountByLabelValuePair` series per `name=value`. Each list is the top `limit`
//! (default 10, at most 10000) by count, largest first; ties are ordered by name so the
//! answer is stable. `headStats.chunkCount` counts 120-sample chunks per series (the
//! size Prometheus cuts head chunks at); `minTime`/`maxTime` are the oldest and newest
//! sample in the window (Prometheus' empty-head values when there is none).

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use ember_model::{METRIC_NAME, Matcher};

use crate::error::ApiError;
use crate::json;
use crate::params::{Params, now_ms, time_param};
use crate::query::json_response;
use crate::{SharedState, Tenant};

/// Default number of entries in each top-N list (Prometheus' default).
pub const DEFAULT_LIMIT: usize = 10;
/// Largest `limit` accepted (Prometheus rejects more with 400).
pub const MAX_LIMIT: usize = 10_000;
/// Default window: the last two hours, the span of a freshly cut Prometheus head block.
pub const DEFAULT_WINDOW_MS: i64 = 2 * 3600 * 1000;
/// Samples per head chunk in Prometheus; `chunkCount` is counted in chunks of this size.
pub const SAMPLES_PER_CHUNK: usize = 120;

/// One `{"name":…,"value":…}` entry of a top-N list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Metric name, label name or `name=value` pair.
    pub name: String,
    /// The count (series, values or bytes).
    pub value: u64,
}

/// The statistics of one tenant's window, before rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsdbStats {
    /// Series with samples in the window.
    pub num_series: u64,
    /// Distinct `name=value` pairs over those series.
    pub num_label_pairs: u64,
    /// 120-sample chunks the window's samples would fill, summed over series.
    pub chunk_count: u64,
    /// Oldest sample timestamp (ms); `i64::MAX` when there is none, as Prometheus.
    pub min_time: i64,
    /// Newest sample timestamp (ms); `i64::MIN` when there is none, as Prometheus.
    pub max_time: i64,
    /// Top series counts by metric name.
    pub series_count_by_metric_name: Vec<Stat>,
    /// Top distinct-value counts by label name.
    pub label_value_count_by_label_name: Vec<Stat>,
    /// Top `Σ len(value) × series` by label name.
    pub memory_in_bytes_by_label_name: Vec<Stat>,
    /// Top series counts by `name=value` pair.
    pub series_count_by_label_value_pair: Vec<Stat>,
}

/// The top `limit` entries by count (largest first, ties by name).
fn top(map: HashMap<String, u64>, limit: usize) -> Vec<Stat> {
    let mut v: Vec<Stat> = map
        .into_iter()
        .map(|(name, value)| Stat { name, value })
        .collect();
    v.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
    v.truncate(limit);
    v
}

/// Computes the label statistics over label sets (the postings-index part of the answer).
/// `min_time`, `max_time` and `chunk_count` are left for the caller to fill.
pub fn label_stats(series: &[ember_model::Labels], limit: usize) -> TsdbStats {
    // name -> value -> series count
    let mut postings: HashMap<&str, HashMap<&str, u64>> = HashMap::new();
    for labels in series {
        for l in labels.iter() {
            *postings
                .entry(l.name.as_str())
                .or_default()
                .entry(l.value.as_str())
                .or_default() += 1;
        }
    }
    let mut by_metric = HashMap::new();
    let mut value_counts = HashMap::new();
    let mut memory = HashMap::new();
    let mut pairs = HashMap::new();
    let mut num_label_pairs = 0u64;
    for (name, values) in &postings {
        value_counts.insert((*name).to_string(), values.len() as u64);
        num_label_pairs += values.len() as u64;
        let mut size = 0u64;
        for (value, count) in values {
            if *name == METRIC_NAME {
                by_metric.insert((*value).to_string(), *count);
            }
            pairs.insert(format!("{name}={value}"), *count);
            size += value.len() as u64 * count;
        }
        memory.insert((*name).to_string(), size);
    }
    TsdbStats {
        num_series: series.len() as u64,
        num_label_pairs,
        chunk_count: 0,
        min_time: i64::MAX,
        max_time: i64::MIN,
        series_count_by_metric_name: top(by_metric, limit),
        label_value_count_by_label_name: top(value_counts, limit),
        memory_in_bytes_by_label_name: top(memory, limit),
        series_count_by_label_value_pair: top(pairs, limit),
    }
}

fn write_stats(out: &mut String, key: &str, list: &[Stat]) {
    out.push(',');
    json::write_str(out, key);
    out.push_str(":[");
    for (i, s) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json::write_str(out, &s.name);
        out.push_str(&format!(",\"value\":{}}}", s.value));
    }
    out.push(']');
}

impl TsdbStats {
    /// The `data` object of the response, in Prometheus' field order.
    pub fn to_json(&self) -> String {
        let mut out = format!(
            "{{\"headStats\":{{\"numSeries\":{},\"numLabelPairs\":{},\"chunkCount\":{},\"minTime\":{},\"maxTime\":{}}}",
            self.num_series, self.num_label_pairs, self.chunk_count, self.min_time, self.max_time
        );
        write_stats(
            &mut out,
            "seriesCountByMetricName",
            &self.series_count_by_metric_name,
        );
        write_stats(
            &mut out,
            "labelValueCountByLabelName",
            &self.label_value_count_by_label_name,
        );
        write_stats(
            &mut out,
            "memoryInBytesByLabelName",
            &self.memory_in_bytes_by_label_name,
        );
        write_stats(
            &mut out,
            "seriesCountByLabelValuePair",
            &self.series_count_by_label_value_pair,
        );
        out.push('}');
        out
    }
}

fn limit_param(p: &Params) -> Result<usize, ApiError> {
    match p.get_non_empty("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 1 && n as usize <= MAX_LIMIT => Ok(n as usize),
            Ok(n) if n < 1 => Err(ApiError::bad_data("limit must be a positive number")),
            Ok(_) => Err(ApiError::bad_data(format!(
                "limit must not exceed {MAX_LIMIT}"
            ))),
            Err(_) => Err(ApiError::bad_data("limit must be a positive number")),
        },
    }
}

/// `/api/v1/status/tsdb`: cardinality statistics of the tenant's window.
pub async fn tsdb_status(
    State(state): State<SharedState>,
    tenant: Tenant,
    p: Params,
) -> Result<Response, ApiError> {
    let limit = limit_param(&p)?;
    let end = time_param(&p, "end", now_ms())?;
    let start = time_param(&p, "start", end.saturating_sub(DEFAULT_WINDOW_MS))?;
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let series = state
        .storage
        .series(&tenant.0, &[], start, end)
        .await
        .map_err(ApiError::from_storage)?;
    let mut stats = label_stats(&series, limit);
    // Samples are read one metric at a time so memory stays bounded by the largest metric.
    let mut names: Vec<&str> = series.iter().filter_map(|l| l.metric_name()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let selected = state
            .storage
            .select(&tenant.0, &[Matcher::equal(METRIC_NAME, name)], start, end)
            .await
            .map_err(ApiError::from_storage)?;
        for s in &selected {
            let (Some(first), Some(last)) = (s.samples.first(), s.samples.last()) else {
                continue;
            };
            stats.min_time = stats.min_time.min(first.t);
            stats.max_time = stats.max_time.max(last.t);
            stats.chunk_count += s.samples.len().div_ceil(SAMPLES_PER_CHUNK) as u64;
        }
    }
    Ok(json_response(json::success_envelope(
        &stats.to_json(),
        &[],
        &[],
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_model::Labels;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn stats_follow_prometheus_postings_stats() {
        let series = vec![
            l(&[("__name__", "up"), ("job", "node"), ("instance", "a:9100")]),
            l(&[("__name__", "up"), ("job", "node"), ("instance", "b:9100")]),
            l(&[("__name__", "up"), ("job", "api"), ("instance", "c:80")]),
            l(&[("__name__", "http_requests_total"), ("job", "api")]),
        ];
        let s = label_stats(&series, 10);
        assert_eq!(s.num_series, 4);
        // __name__: up, http_requests_total; job: node, api; instance: a, b, c → 7 pairs.
        assert_eq!(s.num_label_pairs, 7);
        assert_eq!(
            s.series_count_by_metric_name,
            vec![
                Stat {
                    name: "up".into(),
                    value: 3
                },
                Stat {
                    name: "http_requests_total".into(),
                    value: 1
                },
            ]
        );
        let values: Vec<(&str, u64)> = s
            .label_value_count_by_label_name
            .iter()
            .map(|s| (s.name.as_str(), s.value))
            .collect();
        assert_eq!(values, vec![("instance", 3), ("__name__", 2), ("job", 2)]);
        // instance: 6+6+4 = 16; __name__: 2×3 + 19×1 = 25; job: 4×2 + 3×2 = 14.
        let memory: Vec<(&str, u64)> = s
            .memory_in_bytes_by_label_name
            .iter()
            .map(|s| (s.name.as_str(), s.value))
            .collect();
        assert_eq!(
            memory,
            vec![("__name__", 25), ("instance", 16), ("job", 14)]
        );
        assert_eq!(s.series_count_by_label_value_pair[0].name, "__name__=up");
        assert_eq!(s.series_count_by_label_value_pair[0].value, 3);
        assert_eq!(s.series_count_by_label_value_pair[1].name, "job=api");
        assert_eq!(s.series_count_by_label_value_pair[1].value, 2);
    }

    #[test]
    fn limit_truncates_each_list() {
        let series: Vec<Labels> = (0..30)
            .map(|i| l(&[("__name__", &format!("m{i:02}")), ("k", &format!("v{i}"))]))
            .collect();
        let s = label_stats(&series, 5);
        assert_eq!(s.series_count_by_metric_name.len(), 5);
        assert_eq!(s.series_count_by_label_value_pair.len(), 5);
        assert_eq!(s.label_value_count_by_label_name.len(), 2);
        // Ties are ordered by name.
        assert_eq!(s.series_count_by_metric_name[0].name, "m00");
        assert_eq!(s.series_count_by_metric_name[4].name, "m04");
    }

    #[test]
    fn empty_window_has_prometheus_empty_head_times() {
        let s = label_stats(&[], 10);
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["headStats"]["numSeries"], 0);
        assert_eq!(v["headStats"]["minTime"], i64::MAX);
        assert_eq!(v["headStats"]["maxTime"], i64::MIN);
        assert_eq!(v["seriesCountByMetricName"], serde_json::json!([]));
    }

    #[test]
    fn limit_parameter_is_validated() {
        let p = |v: &str| Params::from_pairs(vec![("limit".into(), v.into())]);
        assert_eq!(limit_param(&Params::default()).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit_param(&p("3")).unwrap(), 3);
        assert!(limit_param(&p("0")).is_err());
        assert!(limit_param(&p("10001")).is_err());
        assert!(limit_param(&p("x")).is_err());
    }

    async fn get(app: &axum::Router, uri: &str) -> (u16, serde_json::Value) {
        use tower::ServiceExt;
        let resp = app
            .clone()
            .oneshot(
                axum::http::Request::get(uri)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn endpoint_reports_the_tenant_window() {
        use ember_model::{Sample, Series};
        use ember_storage::{AppendBatch, MemStorage};
        let store = std::sync::Arc::new(MemStorage::new());
        let now = now_ms();
        let mk = |name: &str, inst: &str, times: &[i64]| {
            Series::new(
                l(&[("__name__", name), ("instance", inst)]),
                times.iter().map(|t| Sample::new(*t, 1.0)).collect(),
            )
        };
        // 130 samples → two 120-sample chunks.
        let many: Vec<i64> = (0..130).map(|i| now - 60_000 - i * 1000).collect();
        store
            .append_sync(
                "default",
                AppendBatch {
                    series: vec![
                        mk("up", "a", &many),
                        mk("up", "b", &[now - 30_000]),
                        mk("old", "a", &[now - 5 * 3600 * 1000]),
                    ],
                    metadata: vec![],
                },
            )
            .unwrap();
        store
            .append_sync(
                "ws-1",
                AppendBatch {
                    series: vec![mk("other", "x", &[now - 1000])],
                    metadata: vec![],
                },
            )
            .unwrap();
        let app = crate::router(std::sync::Arc::new(crate::ApiState::new(store)));

        let (status, v) = get(&app, "/api/v1/status/tsdb").await;
        assert_eq!(status, 200, "{v}");
        let head = &v["data"]["headStats"];
        assert_eq!(
            head["numSeries"], 2,
            "the 5-hour-old series is outside: {v}"
        );
        assert_eq!(head["chunkCount"], 3);
        assert_eq!(head["minTime"], many[129]);
        assert_eq!(head["maxTime"], now - 30_000);
        assert_eq!(
            v["data"]["seriesCountByMetricName"],
            serde_json::json!([{"name": "up", "value": 2}])
        );

        // A wider window (Ember extension) includes the old series.
        let start = (now - 6 * 3600 * 1000) / 1000;
        let (_, v) = get(&app, &format!("/api/v1/status/tsdb?start={start}&limit=1")).await;
        assert_eq!(v["data"]["headStats"]["numSeries"], 3);
        assert_eq!(
            v["data"]["seriesCountByMetricName"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(v["data"]["headStats"]["minTime"], now - 5 * 3600 * 1000);

        // Per tenant.
        let (_, v) = get(&app, "/workspaces/ws-1/api/v1/status/tsdb").await;
        assert_eq!(
            v["data"]["seriesCountByMetricName"],
            serde_json::json!([{"name": "other", "value": 1}])
        );
        let (_, v) = get(&app, "/workspaces/empty/api/v1/status/tsdb").await;
        assert_eq!(v["data"]["headStats"]["numSeries"], 0);

        let (status, v) = get(&app, "/api/v1/status/tsdb?limit=20000").await;
        assert_eq!(status, 400);
        assert_eq!(v["errorType"], "bad_data");
    }
}
