//! CloudWatch metrics import: reads the metrics the `ember.cloudwatch` jobs name with
//! `GetMetricData` (dimensions given exactly or discovered with `ListMetrics`) and appends
//! them to Ember's store under YACE's names (`aws_rds_cpuutilization_average{
//! dbinstance_identifier="db-1", region="eu-west-1", account_id="…"}`), with CloudWatch's
//! timestamps. Overlapping windows of consecutive passes are de-duplicated with a
//! per-series watermark in the `StateStore`.
//!
//! This is the only crate that links `aws-sdk-cloudwatch`: `ember serve` runs
//! [`Importer::run`], the `ember-cloudwatch-fn` Lambda runs [`Importer::run_pass`] on a
//! schedule. See `docs/CLOUDWATCH.md`.

pub mod clients;
pub mod naming;
pub mod plan;
pub mod retry;
pub mod watermark;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::types::{DimensionFilter as CwDimensionFilter, RecentlyActive, ScanBy};
use aws_smithy_types::DateTime;
use ember_config::cloudwatch::{CloudWatchJob, DimensionFilter};
use ember_storage::state::StateStore;
use ember_storage::{AppendBatch, Appender};
use tracing::{debug, info, warn};

pub use clients::{ClientProvider, Connection, SdkClients, StaticClients};
pub use retry::Backoff;

use crate::plan::{Collected, LabelContext};
use crate::watermark::Watermarks;

/// Why an import step failed.
#[derive(Debug, thiserror::Error)]
pub enum CloudWatchError {
    /// A CloudWatch call failed (after retries, when retryable).
    #[error("cloudwatch {operation} in {region}: {message}")]
    Api {
        /// The operation, e.g. `GetMetricData`.
        operation: &'static str,
        /// The region.
        region: String,
        /// The SDK's error, with its code and message.
        message: String,
    },
    /// Building a client (assuming a role, loading credentials) failed.
    #[error("cloudwatch client for {region}: {message}")]
    Client {
        /// The region.
        region: String,
        /// What went wrong.
        message: String,
    },
    /// The import watermarks could not be read or written.
    #[error("cloudwatch state {key}: {message}")]
    State {
        /// The state key.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// Appending the imported samples failed.
    #[error("storing imported samples of job {job}: {source}")]
    Storage {
        /// The job.
        job: String,
        /// The storage error.
        source: ember_storage::StorageError,
    },
}

/// What one job did in one region.
#[derive(Debug, Default, Clone)]
pub struct RegionReport {
    /// Job name.
    pub job: String,
    /// Region.
    pub region: String,
    /// Series queried (metric × dimensions × statistic).
    pub series: usize,
    /// ListMetrics calls (pages).
    pub list_calls: usize,
    /// GetMetricData calls (pages).
    pub get_calls: usize,
    /// Metrics requested from GetMetricData, the billed unit (each query on each page).
    pub metrics_requested: usize,
    /// Retries after throttling or server errors.
    pub retries: usize,
    /// Samples appended.
    pub samples: usize,
    /// Samples skipped because an earlier pass stored them.
    pub duplicates: usize,
    /// Errors (the pass carries on with the next call or region).
    pub errors: Vec<String>,
}

/// What one pass over all jobs did.
#[derive(Debug, Default, Clone)]
pub struct PassReport {
    /// One entry per job and region.
    pub regions: Vec<RegionReport>,
}

impl PassReport {
    /// Samples appended in total.
    pub fn samples(&self) -> usize {
        self.regions.iter().map(|r| r.samples).sum()
    }

    /// Duplicates skipped in total.
    pub fn duplicates(&self) -> usize {
        self.regions.iter().map(|r| r.duplicates).sum()
    }

    /// Metrics requested from GetMetricData in total (what CloudWatch bills).
    pub fn metrics_requested(&self) -> usize {
        self.regions.iter().map(|r| r.metrics_requested).sum()
    }

    /// All errors, prefixed with job and region.
    pub fn errors(&self) -> Vec<String> {
        self.regions
            .iter()
            .flat_map(|r| {
                r.errors
                    .iter()
                    .map(move |e| format!("{}/{}: {e}", r.job, r.region))
            })
            .collect()
    }
}

/// Imports CloudWatch metrics for a set of jobs into an [`Appender`].
pub struct Importer {
    jobs: Vec<CloudWatchJob>,
    clients: Arc<dyn ClientProvider>,
    state: Arc<dyn StateStore>,
    appender: Arc<dyn Appender>,
    tenant: String,
    backoff: Backoff,
}

impl std::fmt::Debug for Importer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field(
                "jobs",
                &self.jobs.iter().map(|j| &j.name).collect::<Vec<_>>(),
            )
            .field("tenant", &self.tenant)
            .finish()
    }
}

fn now_secs(now: SystemTime) -> i64 {
    now.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Importer {
    /// An importer of `jobs`, writing into `appender` for `tenant`, remembering watermarks
    /// in `state`.
    pub fn new(
        jobs: Vec<CloudWatchJob>,
        clients: Arc<dyn ClientProvider>,
        state: Arc<dyn StateStore>,
        appender: Arc<dyn Appender>,
        tenant: impl Into<String>,
    ) -> Self {
        Self {
            jobs,
            clients,
            state,
            appender,
            tenant: tenant.into(),
            backoff: Backoff::default(),
        }
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The configured jobs.
    pub fn jobs(&self) -> &[CloudWatchJob] {
        &self.jobs
    }

    /// One pass over every job and region, as of `now` (the Lambda entry point).
    pub async fn run_pass(&self, now: SystemTime) -> PassReport {
        let mut report = PassReport::default();
        for job in &self.jobs {
            report.regions.extend(self.run_job(job, now).await);
        }
        report
    }

    /// The Lambda entry point: runs the jobs that are due at `now` — those whose last pass
    /// (remembered in the state store under `cloudwatch/<job>/last-pass`) was in an earlier
    /// `interval` slot. So a function scheduled every 5 minutes runs a `interval: 15m` job
    /// every third invocation, and a retried invocation does not pay twice.
    pub async fn run_due(&self, now: SystemTime) -> PassReport {
        let mut report = PassReport::default();
        let now_s = now_secs(now);
        for job in &self.jobs {
            let interval = job.run_interval_secs() as i64;
            let key = format!("cloudwatch/{}/last-pass", job.name);
            let last = match self.state.get(&key).await {
                Ok(Some(b)) => std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok()),
                Ok(None) => None,
                Err(e) => {
                    warn!(job = %job.name, error = %e, "cannot read the last pass time; running the job");
                    None
                }
            };
            if last.is_some_and(|l| l.div_euclid(interval) == now_s.div_euclid(interval)) {
                debug!(job = %job.name, "cloudwatch job not due");
                continue;
            }
            report.regions.extend(self.run_job(job, now).await);
            if let Err(e) = self.state.put(&key, now_s.to_string().into_bytes()).await {
                warn!(job = %job.name, error = %e, "cannot store the last pass time");
            }
        }
        report
    }

    /// One pass of one job over its regions, as of `now`.
    pub async fn run_job(&self, job: &CloudWatchJob, now: SystemTime) -> Vec<RegionReport> {
        let mut out = Vec::with_capacity(job.regions.len());
        for region in &job.regions {
            let mut rep = RegionReport {
                job: job.name.clone(),
                region: region.clone(),
                ..Default::default()
            };
            if let Err(e) = self.run_region(job, region, now, &mut rep).await {
                rep.errors.push(e.to_string());
            }
            for e in &rep.errors {
                warn!(job = %job.name, %region, error = %e, "cloudwatch import error");
            }
            info!(
                job = %job.name, %region, series = rep.series, samples = rep.samples,
                duplicates = rep.duplicates, metrics_requested = rep.metrics_requested,
                retries = rep.retries, "cloudwatch import pass"
            );
            out.push(rep);
        }
        out
    }

    async fn run_region(
        &self,
        job: &CloudWatchJob,
        region: &str,
        now: SystemTime,
        rep: &mut RegionReport,
    ) -> Result<(), CloudWatchError> {
        let conn = self
            .clients
            .connect(region, job.role_arn.as_deref(), job.external_id.as_deref())
            .await?;
        let metrics = job.resolved_metrics();
        let mut dimension_sets = Vec::with_capacity(metrics.len());
        for m in &metrics {
            let sets = if job.dimensions.is_empty() {
                self.discover(&conn, job, &m.name, region, rep).await?
            } else {
                job.dimensions
                    .iter()
                    .map(|d| d.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .collect()
            };
            dimension_sets.push(sets);
        }
        let ctx = LabelContext {
            region: region.to_string(),
            account_id: conn.account_id.clone(),
            extra: job.labels.clone(),
        };
        let specs = plan::expand(job, &metrics, &dimension_sets, &ctx, now_secs(now));
        rep.series = specs.len();
        if specs.is_empty() {
            return Ok(());
        }
        let key = Watermarks::state_key(&job.name, region);
        let mut marks = Watermarks::load(self.state.as_ref(), &key).await?;
        let metadata = plan::metadata(&specs);
        let mut metadata_sent = false;
        for req in plan::plan_requests(&specs) {
            let collected = match self.get_metric_data(&conn, region, &req, rep).await {
                Ok(c) => c,
                Err(e) => {
                    rep.errors.push(e.to_string());
                    continue;
                }
            };
            rep.errors.extend(collected.failed.iter().cloned());
            let mut trial = marks.clone();
            let (series, stats) = plan::to_series(&specs, &collected, &mut trial);
            rep.duplicates += stats.duplicates;
            if series.is_empty() && metadata_sent {
                continue;
            }
            let batch = AppendBatch {
                series,
                metadata: if metadata_sent {
                    Vec::new()
                } else {
                    metadata.clone()
                },
            };
            if let Err(source) = self.appender.append(&self.tenant, batch).await {
                // Nothing of this call advances the watermarks: the next pass asks again.
                rep.errors.push(
                    CloudWatchError::Storage {
                        job: job.name.clone(),
                        source,
                    }
                    .to_string(),
                );
                continue;
            }
            // Only what is stored advances the watermarks.
            marks = trial;
            metadata_sent = true;
            rep.samples += stats.samples;
        }
        let oldest = specs.iter().map(|s| s.window.start).min().unwrap_or(0) * 1000;
        marks.prune_before(oldest);
        marks.save(self.state.as_ref(), &key).await
    }

    /// Dimension sets of `metric` found by ListMetrics (all pages), filtered by the job's
    /// dimension filters and de-duplicated.
    async fn discover(
        &self,
        conn: &Connection,
        job: &CloudWatchJob,
        metric: &str,
        region: &str,
        rep: &mut RegionReport,
    ) -> Result<Vec<Vec<(String, String)>>, CloudWatchError> {
        let matcher = DimensionMatcher::new(&job.dimension_filters);
        let mut found = BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = conn
                .client
                .list_metrics()
                .namespace(&job.namespace)
                .metric_name(metric)
                .set_next_token(token.clone());
            for f in &job.dimension_filters {
                let mut b = CwDimensionFilter::builder().name(&f.name);
                if let Some(v) = &f.value {
                    b = b.value(v);
                }
                req = req.dimensions(b.build());
            }
            if job.recently_active() {
                req = req.recently_active(RecentlyActive::Pt3H);
            }
            let (out, retries) = self
                .backoff
                .retry("ListMetrics", || req.clone().send())
                .await;
            rep.retries += retries;
            rep.list_calls += 1;
            let out = out.map_err(|e| CloudWatchError::Api {
                operation: "ListMetrics",
                region: region.to_string(),
                message: retry::describe(&e),
            })?;
            for m in out.metrics() {
                let mut dims: Vec<(String, String)> = m
                    .dimensions()
                    .iter()
                    .filter_map(|d| Some((d.name()?.to_string(), d.value()?.to_string())))
                    .collect();
                dims.sort();
                if matcher.matches(&dims) {
                    found.insert(dims);
                }
            }
            token = out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        debug!(job = %job.name, metric, series = found.len(), "cloudwatch discovery");
        Ok(found.into_iter().collect())
    }

    /// One planned GetMetricData call, all its pages.
    async fn get_metric_data(
        &self,
        conn: &Connection,
        region: &str,
        plan: &plan::RequestPlan,
        rep: &mut RegionReport,
    ) -> Result<Collected, CloudWatchError> {
        let mut collected = Collected::default();
        let mut token: Option<String> = None;
        loop {
            let req = conn
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(plan.queries.clone()))
                .start_time(DateTime::from_secs(plan.window.start))
                .end_time(DateTime::from_secs(plan.window.end))
                .scan_by(ScanBy::TimestampAscending)
                .set_next_token(token.clone());
            let (out, retries) = self
                .backoff
                .retry("GetMetricData", || req.clone().send())
                .await;
            rep.retries += retries;
            rep.get_calls += 1;
            rep.metrics_requested += plan.queries.len();
            let out = out.map_err(|e| CloudWatchError::Api {
                operation: "GetMetricData",
                region: region.to_string(),
                message: retry::describe(&e),
            })?;
            collected.add_page(plan, out.metric_data_results());
            for m in out.messages() {
                if let Some(v) = m.value() {
                    rep.errors.push(format!("GetMetricData: {v}"));
                }
            }
            token = out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(collected)
    }

    /// Runs every job on its own interval until `shutdown` resolves (`ember serve`). Passes
    /// start on interval boundaries (plus a few seconds, so the newest period has closed).
    pub async fn run<F: std::future::Future<Output = ()> + Send>(self: Arc<Self>, shutdown: F) {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..self.jobs.len() {
            let me = Arc::clone(&self);
            tasks.spawn(async move {
                let job = &me.jobs[i];
                let every = Duration::from_secs(job.run_interval_secs());
                loop {
                    let _ = me.run_job(job, SystemTime::now()).await;
                    tokio::time::sleep(until_next_boundary(SystemTime::now(), every)).await;
                }
            });
        }
        shutdown.await;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// Time from `now` to the next multiple of `every` since the epoch, plus 5 s of slack.
pub fn until_next_boundary(now: SystemTime, every: Duration) -> Duration {
    let every_ms = every.as_millis().max(1);
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let rest = every_ms - now_ms % every_ms;
    Duration::from_millis(u64::try_from(rest).unwrap_or(u64::MAX)) + Duration::from_secs(5)
}

/// The client-side part of the dimension filters: exact dimension-name set, regexes.
struct DimensionMatcher {
    names: Option<BTreeSet<String>>,
    /// Dimension → anchored regex (`None`: invalid, matches nothing; config validation
    /// rejects those before they get here).
    regexes: Vec<(String, Option<regex::Regex>)>,
    values: Vec<(String, String)>,
}

impl DimensionMatcher {
    fn new(filters: &[DimensionFilter]) -> Self {
        let names = if filters.is_empty() {
            None
        } else {
            Some(filters.iter().map(|f| f.name.clone()).collect())
        };
        let regexes = filters
            .iter()
            .filter_map(|f| {
                let re = f.regex.as_ref()?;
                Some((
                    f.name.clone(),
                    regex::Regex::new(&format!("^(?:{re})$")).ok(),
                ))
            })
            .collect();
        let values = filters
            .iter()
            .filter_map(|f| Some((f.name.clone(), f.value.clone()?)))
            .collect();
        Self {
            names,
            regexes,
            values,
        }
    }

    fn matches(&self, dims: &[(String, String)]) -> bool {
        if let Some(names) = &self.names
            && (dims.len() != names.len() || !dims.iter().all(|(k, _)| names.contains(k)))
        {
            return false;
        }
        let value = |name: &str| {
            dims.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        self.values
            .iter()
            .all(|(k, v)| value(k) == Some(v.as_str()))
            && self.regexes.iter().all(|(k, re)| {
                value(k).is_some_and(|v| re.as_ref().is_some_and(|re| re.is_match(v)))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, value: Option<&str>, regex: Option<&str>) -> DimensionFilter {
        DimensionFilter {
            name: name.into(),
            value: value.map(Into::into),
            regex: regex.map(Into::into),
        }
    }

    fn d(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dimension_filters_need_the_exact_name_set_and_anchored_regexes() {
        let m = DimensionMatcher::new(&[f("DBInstanceIdentifier", None, Some("prod-.*"))]);
        assert!(m.matches(&d(&[("DBInstanceIdentifier", "prod-1")])));
        assert!(!m.matches(&d(&[("DBInstanceIdentifier", "xprod-1")])));
        assert!(!m.matches(&d(&[
            ("DBInstanceIdentifier", "prod-1"),
            ("Role", "WRITER")
        ])));
        assert!(!m.matches(&d(&[])));
        let exact = DimensionMatcher::new(&[
            f("FunctionName", Some("api"), None),
            f("Resource", None, None),
        ]);
        assert!(exact.matches(&d(&[("FunctionName", "api"), ("Resource", "api:live")])));
        assert!(!exact.matches(&d(&[("FunctionName", "other"), ("Resource", "x")])));
        let all = DimensionMatcher::new(&[]);
        assert!(all.matches(&d(&[])) && all.matches(&d(&[("A", "b")])));
    }

    #[test]
    fn next_boundary_is_aligned() {
        let t = UNIX_EPOCH + Duration::from_secs(1_000_000_030);
        assert_eq!(
            until_next_boundary(t, Duration::from_secs(300)),
            Duration::from_secs(300 - 1_000_000_030 % 300 + 5)
        );
    }
}
