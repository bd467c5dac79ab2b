//! Pure planning: which series to ask for, over which window, in which GetMetricData
//! calls; and turning the answers into Ember series. No I/O here, so all of it is unit-tested.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricDataResult, MetricStat};
use ember_config::cloudwatch::{CloudWatchJob, ResolvedMetric};
use ember_model::{Labels, LabelsBuilder, METRIC_NAME, MetricMetadata, MetricType, Sample, Series};

use crate::naming::{label_name, metric_name};
use crate::watermark::Watermarks;

/// GetMetricData takes at most this many queries per call.
pub const MAX_QUERIES_PER_CALL: usize = 500;

/// A time window in epoch seconds, `[start, end)` as GetMetricData reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// Inclusive start, epoch seconds.
    pub start: i64,
    /// Exclusive end, epoch seconds.
    pub end: i64,
}

/// The window a metric is read over at `now_secs`: the end is `now - delay` rounded down to
/// a multiple of the period, the start `length` before it. Aligned ends make every pass ask
/// for whole periods, so the datapoints of two passes carry the same timestamps.
pub fn window(now_secs: i64, metric: &ResolvedMetric) -> Window {
    let period = metric.period_secs.max(1) as i64;
    let end = (now_secs - metric.delay_secs as i64).div_euclid(period) * period;
    Window {
        start: end - metric.length_secs as i64,
        end,
    }
}

/// One CloudWatch series to import: metric + dimension values + statistic + period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesSpec {
    /// Namespace, e.g. `AWS/RDS`.
    pub namespace: String,
    /// Metric name, e.g. `CPUUtilization`.
    pub metric: String,
    /// Dimensions, sorted by name.
    pub dimensions: Vec<(String, String)>,
    /// Statistic, e.g. `Average` or `p99`.
    pub statistic: String,
    /// Period in seconds.
    pub period_secs: u64,
    /// The window to read.
    pub window: Window,
    /// The Ember labels the samples are stored under.
    pub labels: Labels,
}

/// Static label context of one job in one region.
#[derive(Debug, Clone, Default)]
pub struct LabelContext {
    /// AWS region.
    pub region: String,
    /// Account id, when known.
    pub account_id: Option<String>,
    /// The job's static labels.
    pub extra: BTreeMap<String, String>,
}

/// The labels of one series: `__name__`, the job's static labels, one snake-case label per
/// dimension, `region` and `account_id` (these last two win over a clashing dimension).
pub fn series_labels(
    namespace: &str,
    metric: &str,
    statistic: &str,
    dimensions: &[(String, String)],
    ctx: &LabelContext,
) -> Labels {
    let mut b = LabelsBuilder::new();
    for (k, v) in &ctx.extra {
        b.set(k.clone(), v.clone());
    }
    for (k, v) in dimensions {
        if !v.is_empty() {
            b.set(label_name(k), v.clone());
        }
    }
    b.set("region", ctx.region.clone());
    if let Some(a) = &ctx.account_id {
        b.set("account_id", a.clone());
    }
    b.set(METRIC_NAME, metric_name(namespace, metric, statistic));
    b.build()
}

/// Expands a job's metrics × dimension sets × statistics into series specs at `now_secs`.
/// `dimension_sets[i]` are the dimension sets of `metrics[i]` (exact or discovered).
pub fn expand(
    job: &CloudWatchJob,
    metrics: &[ResolvedMetric],
    dimension_sets: &[Vec<Vec<(String, String)>>],
    ctx: &LabelContext,
    now_secs: i64,
) -> Vec<SeriesSpec> {
    let mut out = Vec::new();
    for (m, sets) in metrics.iter().zip(dimension_sets) {
        let w = window(now_secs, m);
        for dims in sets {
            let mut dims = dims.clone();
            dims.sort();
            for stat in &m.statistics {
                out.push(SeriesSpec {
                    namespace: job.namespace.clone(),
                    metric: m.name.clone(),
                    labels: series_labels(&job.namespace, &m.name, stat, &dims, ctx),
                    dimensions: dims.clone(),
                    statistic: stat.clone(),
                    period_secs: m.period_secs,
                    window: w,
                });
            }
        }
    }
    out
}

/// One GetMetricData call (before pagination): its window, queries and which spec each
/// query id stands for.
#[derive(Debug, Clone)]
pub struct RequestPlan {
    /// The window every query of the call shares (GetMetricData has one Start/EndTime).
    pub window: Window,
    /// The queries, at most [`MAX_QUERIES_PER_CALL`].
    pub queries: Vec<MetricDataQuery>,
    /// Query id → index into the spec list.
    pub ids: HashMap<String, usize>,
}

/// The query id of the `n`th query of a call: `q0`, `q1`, … (CloudWatch requires ids to
/// match `^[a-z][a-zA-Z0-9_]*$` and be unique within a call).
pub fn query_id(n: usize) -> String {
    format!("q{n}")
}

/// Groups specs by window and cuts each group into calls of at most 500 queries.
pub fn plan_requests(specs: &[SeriesSpec]) -> Vec<RequestPlan> {
    let mut by_window: BTreeMap<Window, Vec<usize>> = BTreeMap::new();
    for (i, s) in specs.iter().enumerate() {
        by_window.entry(s.window).or_default().push(i);
    }
    let mut plans = Vec::new();
    for (w, idxs) in by_window {
        for chunk in idxs.chunks(MAX_QUERIES_PER_CALL) {
            let mut queries = Vec::with_capacity(chunk.len());
            let mut ids = HashMap::with_capacity(chunk.len());
            for (n, &i) in chunk.iter().enumerate() {
                let id = query_id(n);
                queries.push(build_query(&id, &specs[i]));
                ids.insert(id, i);
            }
            plans.push(RequestPlan {
                window: w,
                queries,
                ids,
            });
        }
    }
    plans
}

/// The MetricDataQuery for one spec.
pub fn build_query(id: &str, spec: &SeriesSpec) -> MetricDataQuery {
    let mut metric = Metric::builder()
        .namespace(&spec.namespace)
        .metric_name(&spec.metric);
    for (k, v) in &spec.dimensions {
        metric = metric.dimensions(Dimension::builder().name(k).value(v).build());
    }
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric.build())
                .period(i32::try_from(spec.period_secs).unwrap_or(i32::MAX))
                .stat(&spec.statistic)
                .build(),
        )
        .return_data(true)
        .build()
}

/// Collected datapoints of one call, across its pages: spec index → (timestamp ms, value).
#[derive(Debug, Default)]
pub struct Collected {
    /// Datapoints per spec index.
    pub points: BTreeMap<usize, Vec<(i64, f64)>>,
    /// Results CloudWatch marked `InternalError` or `Forbidden`, with its messages.
    pub failed: Vec<String>,
    /// Result ids the call did not ask for (a CloudWatch or proxy bug; ignored).
    pub unknown_ids: usize,
}

impl Collected {
    /// Adds one page of results. `PartialData` results are kept: the rest comes with the
    /// next token.
    pub fn add_page(&mut self, plan: &RequestPlan, results: &[MetricDataResult]) {
        for r in results {
            let Some(&idx) = r.id().and_then(|id| plan.ids.get(id)) else {
                self.unknown_ids += 1;
                continue;
            };
            if let Some(code) = r.status_code() {
                use aws_sdk_cloudwatch::types::StatusCode;
                if matches!(code, StatusCode::InternalError | StatusCode::Forbidden) {
                    let msgs: Vec<&str> = r.messages().iter().filter_map(|m| m.value()).collect();
                    self.failed.push(format!(
                        "{}: {} {}",
                        r.id().unwrap_or(""),
                        code.as_str(),
                        msgs.join("; ")
                    ));
                    continue;
                }
            }
            let entry = self.points.entry(idx).or_default();
            for (t, v) in r.timestamps().iter().zip(r.values()) {
                if let Ok(ms) = t.to_millis() {
                    entry.push((ms, *v));
                }
            }
        }
    }
}

/// What turning collected datapoints into series did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConvertStats {
    /// Samples kept.
    pub samples: usize,
    /// Samples dropped because an earlier pass already stored them (at or before the watermark).
    pub duplicates: usize,
}

/// Turns collected datapoints into series, dropping anything at or before the series'
/// watermark and advancing the watermarks to the newest kept timestamp.
pub fn to_series(
    specs: &[SeriesSpec],
    collected: &Collected,
    marks: &mut Watermarks,
) -> (Vec<Series>, ConvertStats) {
    let mut stats = ConvertStats::default();
    let mut out = Vec::new();
    for (&idx, points) in &collected.points {
        let Some(spec) = specs.get(idx) else { continue };
        let key = Watermarks::key(&spec.labels);
        let mark = marks.get(&key);
        let mut samples: Vec<Sample> = Vec::with_capacity(points.len());
        let mut sorted = points.clone();
        sorted.sort_by_key(|p| p.0);
        sorted.dedup_by_key(|p| p.0);
        for (t, v) in sorted {
            if mark.is_some_and(|m| t <= m) {
                stats.duplicates += 1;
                continue;
            }
            samples.push(Sample::new(t, v));
        }
        if let Some(last) = samples.last() {
            marks.set(key, last.t);
            stats.samples += samples.len();
            out.push(Series::new(spec.labels.clone(), samples));
        }
    }
    (out, stats)
}

/// Metadata (type gauge, help naming the CloudWatch source) for every family in `specs`.
pub fn metadata(specs: &[SeriesSpec]) -> Vec<MetricMetadata> {
    let mut seen: BTreeMap<String, MetricMetadata> = BTreeMap::new();
    for s in specs {
        let Some(name) = s.labels.metric_name() else {
            continue;
        };
        seen.entry(name.to_string())
            .or_insert_with(|| MetricMetadata {
                metric_family_name: name.to_string(),
                metric_type: MetricType::Gauge,
                help: format!(
                    "CloudWatch metric {} {}, statistic {}",
                    s.namespace, s.metric, s.statistic
                ),
                unit: String::new(),
            });
    }
    seen.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatch::types::StatusCode;
    use aws_smithy_types::DateTime;
    use ember_config::cloudwatch::CloudWatchConfig;

    fn job(yaml: &str) -> CloudWatchJob {
        let cfg: CloudWatchConfig = serde_saphyr::from_str(yaml).unwrap();
        cfg.validate().unwrap();
        cfg.jobs.into_iter().next().unwrap()
    }

    fn rds_job() -> CloudWatchJob {
        job(r#"
jobs:
  - name: rds
    regions: [eu-west-1]
    namespace: AWS/RDS
    statistics: [Average, Maximum]
    delay: 1m
    metrics:
      - name: CPUUtilization
      - name: FreeableMemory
        period: 1m
        length: 3m
        statistics: [Minimum]
    labels: {team: db}
"#)
    }

    fn ctx() -> LabelContext {
        LabelContext {
            region: "eu-west-1".into(),
            account_id: Some("123456789012".into()),
            extra: [("team".to_string(), "db".to_string())].into(),
        }
    }

    fn dims(id: &str) -> Vec<(String, String)> {
        vec![("DBInstanceIdentifier".to_string(), id.to_string())]
    }

    #[test]
    fn windows_align_to_the_period_after_the_delay() {
        let j = rds_job();
        let m = j.resolved_metrics();
        let h = 1_700_000_000 / 3600 * 3600;
        // xx:07:30 with delay 1m → xx:06:30 → end xx:05 (period 5m), start xx:55 before (10m)
        let now = h + 7 * 60 + 30;
        let w = window(now, &m[0]);
        assert_eq!((w.start, w.end), (h - 5 * 60, h + 5 * 60));
        // period 1m, length 3m: end xx:06, start xx:03
        let w1 = window(now, &m[1]);
        assert_eq!((w1.start, w1.end), (h + 3 * 60, h + 6 * 60));
        // exactly on a boundary after the delay: the period that just ended is included
        let w2 = window(h + 3600 + 60, &m[0]);
        assert_eq!(w2.end, h + 3600);
    }

    #[test]
    fn expands_and_labels_like_yace() {
        let j = rds_job();
        let m = j.resolved_metrics();
        let sets = vec![vec![dims("db-1"), dims("db-2")], vec![dims("db-1")]];
        let specs = expand(&j, &m, &sets, &ctx(), 1_700_000_000);
        assert_eq!(specs.len(), 2 * 2 + 1);
        let l = &specs[0].labels;
        assert_eq!(l.metric_name(), Some("aws_rds_cpuutilization_average"));
        assert_eq!(l.get("dbinstance_identifier"), Some("db-1"));
        assert_eq!(l.get("region"), Some("eu-west-1"));
        assert_eq!(l.get("account_id"), Some("123456789012"));
        assert_eq!(l.get("team"), Some("db"));
        assert_eq!(l.len(), 5);
        assert_eq!(
            specs[1].labels.metric_name(),
            Some("aws_rds_cpuutilization_maximum")
        );
        assert_eq!(
            specs[4].labels.metric_name(),
            Some("aws_rds_freeable_memory_minimum")
        );
        assert_eq!(specs[4].period_secs, 60);
        let md = metadata(&specs);
        assert_eq!(md.len(), 3);
        assert!(md.iter().all(|m| m.metric_type == MetricType::Gauge));
        assert!(md[0].help.contains("AWS/RDS CPUUtilization"));
    }

    #[test]
    fn region_wins_over_a_clashing_dimension_and_static_label() {
        let mut c = ctx();
        c.extra.insert("region".into(), "static".into());
        let l = series_labels("Custom", "M", "Sum", &[("Region".into(), "dim".into())], &c);
        assert_eq!(l.get("region"), Some("eu-west-1"));
    }

    fn many_specs(n: usize, windows: usize) -> Vec<SeriesSpec> {
        (0..n)
            .map(|i| SeriesSpec {
                namespace: "AWS/Lambda".into(),
                metric: "Invocations".into(),
                dimensions: vec![("FunctionName".into(), format!("f{i}"))],
                statistic: "Sum".into(),
                period_secs: 60,
                window: Window {
                    start: 0,
                    end: 60 * (1 + (i % windows) as i64),
                },
                labels: Labels::from_pairs([("__name__", "x"), ("i", &*i.to_string())]),
            })
            .collect()
    }

    #[test]
    fn batches_hold_at_most_500_queries_with_valid_unique_ids() {
        let specs = many_specs(1234, 2);
        let plans = plan_requests(&specs);
        // two windows of 617 series each → 500 + 117 per window
        let sizes: Vec<usize> = plans.iter().map(|p| p.queries.len()).collect();
        assert_eq!(sizes, vec![500, 117, 500, 117]);
        let id_re = regex::Regex::new("^[a-z][a-zA-Z0-9_]*$").unwrap();
        let mut covered = vec![false; specs.len()];
        for p in &plans {
            let mut seen = std::collections::HashSet::new();
            for q in &p.queries {
                let id = q.id().unwrap();
                assert!(id_re.is_match(id), "{id}");
                assert!(seen.insert(id.to_string()));
                let idx = p.ids[id];
                assert_eq!(specs[idx].window, p.window);
                assert!(!covered[idx]);
                covered[idx] = true;
                let ms = q.metric_stat().unwrap();
                assert_eq!(ms.stat(), Some("Sum"));
                assert_eq!(ms.period(), Some(60));
                let metric = ms.metric().unwrap();
                assert_eq!(metric.dimensions()[0].value(), Some(&*format!("f{idx}")));
                assert_eq!(q.return_data(), Some(true));
            }
        }
        assert!(covered.iter().all(|c| *c));
        assert!(plan_requests(&[]).is_empty());
    }

    fn result(id: &str, points: &[(i64, f64)], code: StatusCode) -> MetricDataResult {
        MetricDataResult::builder()
            .id(id)
            .set_timestamps(Some(
                points.iter().map(|p| DateTime::from_secs(p.0)).collect(),
            ))
            .set_values(Some(points.iter().map(|p| p.1).collect()))
            .status_code(code)
            .build()
    }

    #[test]
    fn pages_merge_and_watermarks_drop_what_was_stored() {
        let specs = many_specs(2, 1);
        let plans = plan_requests(&specs);
        let plan = &plans[0];
        let mut c = Collected::default();
        // CloudWatch answers newest first unless asked otherwise; pages split a result.
        c.add_page(
            plan,
            &[result(
                "q0",
                &[(180, 3.0), (120, 2.0)],
                StatusCode::PartialData,
            )],
        );
        c.add_page(
            plan,
            &[
                result("q0", &[(60, 1.0)], StatusCode::Complete),
                result("q1", &[(60, 10.0)], StatusCode::Forbidden),
                result("zz", &[(60, 10.0)], StatusCode::Complete),
            ],
        );
        assert_eq!(c.failed.len(), 1);
        assert_eq!(c.unknown_ids, 1);
        let mut marks = Watermarks::default();
        let (series, stats) = to_series(&specs, &c, &mut marks);
        assert_eq!(
            stats,
            ConvertStats {
                samples: 3,
                duplicates: 0
            }
        );
        assert_eq!(series.len(), 1, "a Forbidden result brings no samples");
        let s0 = series.iter().find(|s| s.labels == specs[0].labels).unwrap();
        let ts: Vec<i64> = s0.samples.iter().map(|s| s.t).collect();
        assert_eq!(ts, vec![60_000, 120_000, 180_000]);
        assert_eq!(marks.get(&Watermarks::key(&specs[0].labels)), Some(180_000));

        // the next pass overlaps: 120 and 180 again, 240 new
        let mut c2 = Collected::default();
        c2.add_page(
            plan,
            &[result(
                "q0",
                &[(240, 4.0), (180, 3.5), (120, 2.0)],
                StatusCode::Complete,
            )],
        );
        let (series, stats) = to_series(&specs, &c2, &mut marks);
        assert_eq!(
            stats,
            ConvertStats {
                samples: 1,
                duplicates: 2
            }
        );
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].samples, vec![Sample::new(240_000, 4.0)]);
        assert_eq!(marks.get(&Watermarks::key(&specs[0].labels)), Some(240_000));
    }
}
