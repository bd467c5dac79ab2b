//! The scrape manager: jobs, their targets, the scheduler and the Lambda pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ember_config::scrape::{ResolvedScrapeConfig, ScrapeConfig};
use ember_config::{Config, PromDuration};
use ember_model::{DEFAULT_TENANT, Labels, METRIC_NAME, Sample, Series, stale_nan};
use ember_storage::{AppendBatch, Appender};
use futures::FutureExt;
use tokio::sync::{Semaphore, watch};

use crate::ScrapeError;
use crate::api::TargetsResponse;
use crate::client::JobClient;
use crate::discovery::Provider;
use crate::process::{ProcessSettings, SeriesCache, process};
use crate::state::{Health, STATE_VERSION, ScrapeState, TargetState};
use crate::target::{Populated, Target, targets_from_groups};

/// Names of the per-target report series.
const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// Which share of the targets this manager scrapes (Lambda fan-out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u64,
    /// Number of shards.
    pub count: u64,
}

/// Settings of a manager.
#[derive(Debug, Clone)]
pub struct ScrapeOptions {
    /// The tenant samples are written for (default [`DEFAULT_TENANT`]).
    pub tenant: String,
    /// At most this many scrapes run at once, over all jobs (default 64).
    pub max_concurrent_scrapes: usize,
    /// Scrape only the targets whose label hash falls into this shard.
    pub shard: Option<Shard>,
}

impl Default for ScrapeOptions {
    fn default() -> Self {
        Self {
            tenant: DEFAULT_TENANT.to_string(),
            max_concurrent_scrapes: 64,
            shard: None,
        }
    }
}

/// What one tick of one job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Targets scraped.
    pub scraped: usize,
    /// Of which failed (`up == 0`).
    pub failed: usize,
    /// Targets that disappeared and got staleness markers.
    pub vanished: usize,
}

/// What a Lambda pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Job ticks run.
    pub ticks: usize,
    /// Target scrapes.
    pub scraped: usize,
    /// Failed target scrapes.
    pub failed: usize,
    /// Targets that disappeared.
    pub vanished: usize,
}

struct Job {
    raw: ScrapeConfig,
    cfg: ResolvedScrapeConfig,
    client: JobClient,
    settings: ProcessSettings,
    providers: tokio::sync::Mutex<Vec<Provider>>,
    caches: Mutex<HashMap<String, SeriesCache>>,
}

struct Inner {
    appender: Arc<dyn Appender>,
    options: ScrapeOptions,
    jobs: Vec<Arc<Job>>,
    state: Mutex<ScrapeState>,
    permits: Semaphore,
}

/// Runs the scrape jobs of a configuration and writes what it scrapes through an
/// [`Appender`]. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct ScrapeManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ScrapeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeManager")
            .field("jobs", &self.job_names())
            .finish()
    }
}

/// A job that scrapes Ember's own `/metrics` at `address` (`host:port`).
pub fn default_self_scrape_config(address: &str) -> ScrapeConfig {
    ScrapeConfig::new_static("ember", &[address])
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn to_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

fn with_name(base: &Labels, name: &str) -> Labels {
    let mut b = base.to_builder();
    b.set(METRIC_NAME, name);
    b.build()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves the data usable for our purposes.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ScrapeManager {
    /// A manager for every `scrape_configs` job of `config`.
    pub fn new(
        config: &Config,
        appender: Arc<dyn Appender>,
        options: ScrapeOptions,
    ) -> Result<Self, ScrapeError> {
        let mut jobs = Vec::new();
        for raw in &config.scrape_configs {
            let cfg = raw
                .resolve(&config.global)
                .map_err(|e| ScrapeError::Config(e.to_string()))?;
            let client = JobClient::new(raw, &cfg)?;
            let settings = ProcessSettings {
                honor_labels: cfg.honor_labels,
                honor_timestamps: cfg.honor_timestamps,
                track_timestamps_staleness: cfg.track_timestamps_staleness,
                metric_relabel_configs: raw.metric_relabel_configs.clone(),
                external_labels: cfg
                    .external_labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                sample_limit: cfg.sample_limit,
                label_limit: cfg.label_limit,
                label_name_length_limit: cfg.label_name_length_limit,
                label_value_length_limit: cfg.label_value_length_limit,
            };
            jobs.push(Arc::new(Job {
                providers: tokio::sync::Mutex::new(Provider::for_job(raw)),
                raw: raw.clone(),
                cfg,
                client,
                settings,
                caches: Mutex::new(HashMap::new()),
            }));
        }
        let permits = Semaphore::new(options.max_concurrent_scrapes.max(1));
        Ok(Self {
            inner: Arc::new(Inner {
                appender,
                options,
                jobs,
                state: Mutex::new(ScrapeState {
                    version: STATE_VERSION,
                    jobs: BTreeMap::new(),
                }),
                permits,
            }),
        })
    }

    /// Names of the configured jobs.
    pub fn job_names(&self) -> Vec<String> {
        self.inner
            .jobs
            .iter()
            .map(|j| j.cfg.job_name.clone())
            .collect()
    }

    /// `/api/v1/targets` data.
    pub fn targets(&self) -> TargetsResponse {
        TargetsResponse::from_state(&lock(&self.inner.state))
    }

    /// A copy of the state, to persist between Lambda invocations.
    pub fn export_state(&self) -> ScrapeState {
        lock(&self.inner.state).clone()
    }

    /// Replaces the state with one restored from storage.
    pub fn import_state(&self, state: ScrapeState) {
        *lock(&self.inner.state) = state;
    }

    /// Scrapes every target of one job once, now.
    pub async fn scrape_job_once(&self, job_name: &str) -> Result<TickReport, ScrapeError> {
        let job = self
            .inner
            .jobs
            .iter()
            .find(|j| j.cfg.job_name == job_name)
            .cloned()
            .ok_or_else(|| ScrapeError::Config(format!("no job named {job_name:?}")))?;
        let now = now_ms();
        let iv = job.cfg.interval.as_millis().max(1) as i64;
        Ok(job_tick(&self.inner, &job, now / iv * iv).await)
    }

    /// Scrapes every job once, now (all jobs concurrently).
    pub async fn scrape_all_once(&self) -> PassReport {
        stale_removed_jobs(&self.inner).await;
        let now = now_ms();
        let ticks = self.inner.jobs.iter().map(|job| {
            let iv = job.cfg.interval.as_millis().max(1) as i64;
            job_tick(&self.inner, job, now / iv * iv)
        });
        let mut report = PassReport::default();
        for r in futures::future::join_all(ticks).await {
            report.ticks += 1;
            report.scraped += r.scraped;
            report.failed += r.failed;
            report.vanished += r.vanished;
        }
        report
    }

    /// Writes staleness markers for every target of every job (for a job or config being
    /// removed) and forgets them.
    pub async fn stop_all_targets(&self) -> usize {
        let jobs: Vec<String> = lock(&self.inner.state).jobs.keys().cloned().collect();
        let mut n = 0;
        for j in jobs {
            n += stale_job(&self.inner, &j).await;
        }
        n
    }

    /// The `ember serve` scheduler: every job scrapes once at start, then at every
    /// multiple of its interval (wall clock aligned), until `shutdown` completes.
    /// Panics inside a scrape are caught and logged; the loop goes on.
    pub async fn run<F: Future<Output = ()> + Send>(&self, shutdown: F) {
        stale_removed_jobs(&self.inner).await;
        let (tx, rx) = watch::channel(false);
        let mut handles = Vec::new();
        for job in &self.inner.jobs {
            handles.push(tokio::spawn(job_loop(
                self.inner.clone(),
                job.clone(),
                rx.clone(),
            )));
        }
        shutdown.await;
        let _ = tx.send(true);
        for h in handles {
            let _ = h.await;
        }
    }

    /// One pass of the scrape Lambda: every job runs at each of its interval boundaries
    /// from now until `until` (sub-minute intervals loop inside the invocation, aligned),
    /// skipping a boundary an earlier invocation already handled (per the imported state).
    /// The current boundary, if not yet handled, is scraped at once. Pass
    /// `until = min(end of the current minute, Lambda deadline - longest scrape timeout)`.
    pub async fn run_pass(&self, until: SystemTime) -> PassReport {
        stale_removed_jobs(&self.inner).await;
        let until_ms = until
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let runs = self.inner.jobs.iter().map(|job| {
            let inner = self.inner.clone();
            let job = job.clone();
            async move {
                let iv = job.cfg.interval.as_millis().max(1) as i64;
                let last = lock(&inner.state).jobs.get(&job.cfg.job_name).map_or(i64::MIN, |j| j.last_tick_ms);
                let mut tick = now_ms() / iv * iv;
                if last >= tick {
                    tick += iv;
                }
                let mut report = PassReport::default();
                while tick < until_ms {
                    let wait = tick - now_ms();
                    if wait > 0 {
                        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                    }
                    match AssertUnwindSafe(job_tick(&inner, &job, tick)).catch_unwind().await {
                        Ok(r) => {
                            report.scraped += r.scraped;
                            report.failed += r.failed;
                            report.vanished += r.vanished;
                        }
                        Err(_) => tracing::error!(job = %job.cfg.job_name, "panic during a scrape tick; continuing"),
                    }
                    report.ticks += 1;
                    tick += iv;
                    let current = now_ms() / iv * iv;
                    if tick < current {
                        tick = current;
                    }
                }
                report
            }
        });
        let mut total = PassReport::default();
        for r in futures::future::join_all(runs).await {
            total.ticks += r.ticks;
            total.scraped += r.scraped;
            total.failed += r.failed;
            total.vanished += r.vanished;
        }
        total
    }
}

async fn job_loop(inner: Arc<Inner>, job: Arc<Job>, mut stop: watch::Receiver<bool>) {
    let iv = job.cfg.interval.as_millis().max(1) as i64;
    let mut next = now_ms();
    loop {
        let wait = (next - now_ms()).max(0) as u64;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let tick = next / iv * iv;
        tokio::select! {
            r = AssertUnwindSafe(job_tick(&inner, &job, tick)).catch_unwind() => {
                if r.is_err() {
                    tracing::error!(job = %job.cfg.job_name, "panic during a scrape tick; continuing");
                }
            }
            _ = stop.changed() => break,
        }
        next = (now_ms() / iv + 1) * iv;
    }
}

/// Jobs in the state that the config no longer has: their targets go stale.
async fn stale_removed_jobs(inner: &Arc<Inner>) {
    let configured: HashSet<&str> = inner.jobs.iter().map(|j| j.cfg.job_name.as_str()).collect();
    let removed: Vec<String> = lock(&inner.state)
        .jobs
        .keys()
        .filter(|k| !configured.contains(k.as_str()))
        .cloned()
        .collect();
    for j in removed {
        stale_job(inner, &j).await;
    }
}

async fn stale_job(inner: &Arc<Inner>, job: &str) -> usize {
    let Some(js) = lock(&inner.state).jobs.remove(job) else {
        return 0;
    };
    let n = js.targets.len();
    let batch = stale_batch(js.targets.values(), now_ms());
    if let Err(e) = inner.appender.append(&inner.options.tenant, batch).await {
        tracing::warn!(job, error = %e, "writing staleness markers for removed targets failed");
    }
    n
}

fn stale_batch<'a>(targets: impl Iterator<Item = &'a TargetState>, t: i64) -> AppendBatch {
    let mut batch = AppendBatch::default();
    for ts in targets {
        for l in &ts.series {
            batch
                .series
                .push(Series::new(l.clone(), vec![Sample::new(t, stale_nan())]));
        }
        if ts.last_scrape_ms > 0 {
            for name in REPORT_NAMES {
                batch.series.push(Series::new(
                    with_name(&ts.report_labels, name),
                    vec![Sample::new(t, stale_nan())],
                ));
            }
        }
    }
    batch
}

fn in_shard(shard: Option<Shard>, t: &Target) -> bool {
    match shard {
        Some(s) if s.count > 1 => t.labels.stable_hash() % s.count == s.index,
        _ => true,
    }
}

/// Discovers the job's targets, retires vanished ones and scrapes the rest concurrently.
async fn job_tick(inner: &Arc<Inner>, job: &Arc<Job>, tick: i64) -> TickReport {
    let groups = {
        let mut providers = job.providers.lock().await;
        let mut all = Vec::new();
        for p in providers.iter_mut() {
            all.extend_from_slice(p.groups().await);
        }
        all
    };
    let mut active: Vec<Target> = Vec::new();
    let mut seen = HashSet::new();
    let mut dropped = Vec::new();
    for p in targets_from_groups(&groups, &job.cfg, &job.raw.relabel_configs) {
        match p {
            Populated::Active(t) => {
                if in_shard(inner.options.shard, &t) && seen.insert(t.key()) {
                    active.push(t);
                }
            }
            Populated::Dropped(l) => dropped.push(to_map(&l)),
        }
    }
    let limit_error = (job.cfg.target_limit > 0 && active.len() as u64 > job.cfg.target_limit)
        .then(|| {
            format!(
                "target_limit exceeded (number of targets: {}, limit: {})",
                active.len(),
                job.cfg.target_limit
            )
        });

    let vanished: Vec<TargetState> = {
        let mut state = lock(&inner.state);
        let js = state.jobs.entry(job.cfg.job_name.clone()).or_default();
        let keys: HashSet<&String> = seen.iter().collect();
        let gone: Vec<String> = js
            .targets
            .keys()
            .filter(|k| !keys.contains(k))
            .cloned()
            .collect();
        let vanished = gone.iter().filter_map(|k| js.targets.remove(k)).collect();
        js.dropped = dropped;
        js.last_tick_ms = tick;
        for t in &active {
            let e = js.targets.entry(t.key()).or_default();
            e.scrape_url = t.url.clone();
            e.discovered_labels = to_map(&t.discovered_labels);
            e.labels = to_map(&t.target_labels());
            e.scrape_interval =
                PromDuration::from_millis(t.interval.as_millis() as u64).to_string();
            e.scrape_timeout = PromDuration::from_millis(t.timeout.as_millis() as u64).to_string();
        }
        vanished
    };
    let mut report = TickReport {
        vanished: vanished.len(),
        ..TickReport::default()
    };
    if !vanished.is_empty() {
        {
            let mut caches = lock(&job.caches);
            let live: HashSet<&String> = seen.iter().collect();
            caches.retain(|k, _| live.contains(k));
        }
        let batch = stale_batch(vanished.iter(), now_ms());
        if let Err(e) = inner.appender.append(&inner.options.tenant, batch).await {
            tracing::warn!(job = %job.cfg.job_name, error = %e, "writing staleness markers for vanished targets failed");
        }
    }
    let scrapes = active
        .into_iter()
        .map(|t| scrape_target(inner, job, t, limit_error.clone()));
    for ok in futures::future::join_all(scrapes).await {
        report.scraped += 1;
        if !ok {
            report.failed += 1;
        }
    }
    report
}

/// Scrapes one target and writes samples, staleness markers and report series in one
/// batch. Returns whether the scrape succeeded.
async fn scrape_target(
    inner: &Arc<Inner>,
    job: &Arc<Job>,
    target: Target,
    forced_error: Option<String>,
) -> bool {
    let _permit = inner.permits.acquire().await;
    let key = target.key();
    let t = now_ms();
    let start = Instant::now();
    let target_labels = target.target_labels();
    let report_base = {
        let mut b = target_labels.to_builder();
        for (k, v) in &job.settings.external_labels {
            if b.get(k).is_none() {
                b.set(k.as_str(), v.as_str());
            }
        }
        b.build()
    };
    let mut cache = lock(&job.caches).remove(&key).unwrap_or_default();
    let result = match forced_error {
        Some(e) => Err(ScrapeError::Limit(e)),
        None => match job.client.fetch(&target.url, target.timeout).await {
            Ok(body) => job
                .client
                .format_for(body.content_type.as_deref())
                .and_then(|f| {
                    process(&body.bytes, f, t, &target_labels, &job.settings, &mut cache)
                }),
            Err(e) => Err(e),
        },
    };
    let duration = start.elapsed().as_secs_f64();
    lock(&job.caches).insert(key.clone(), cache);

    let (prev_series, prev_meta_hash) = {
        let mut state = lock(&inner.state);
        match state
            .jobs
            .get_mut(&job.cfg.job_name)
            .and_then(|js| js.targets.get_mut(&key))
        {
            Some(ts) => (std::mem::take(&mut ts.series), ts.metadata_hash),
            None => (Vec::new(), 0),
        }
    };
    let prev_hashes: Vec<u64> = prev_series.iter().map(Labels::stable_hash).collect();
    let mut batch = AppendBatch::default();
    let (up, scraped, post, added, new_series, error, meta_hash) = match result {
        Ok(p) => {
            let current: HashSet<u64> = p
                .tracked
                .iter()
                .map(|&i| p.series[i].labels.stable_hash())
                .collect();
            let prev_set: HashSet<u64> = prev_hashes.iter().copied().collect();
            let added = current.iter().filter(|h| !prev_set.contains(h)).count();
            for (l, h) in prev_series.iter().zip(&prev_hashes) {
                if !current.contains(h) {
                    batch
                        .series
                        .push(Series::new(l.clone(), vec![Sample::new(t, stale_nan())]));
                }
            }
            let tracked: Vec<Labels> = p
                .tracked
                .iter()
                .map(|&i| p.series[i].labels.clone())
                .collect();
            if p.metadata_hash != prev_meta_hash {
                batch.metadata = p.metadata;
            }
            if p.exemplars_dropped > 0 {
                tracing::trace!(target = %target.url, n = p.exemplars_dropped, "exemplars dropped");
            }
            batch.series.extend(p.series);
            (
                1.0,
                p.samples_scraped,
                p.samples_post_relabel,
                added,
                tracked,
                None,
                p.metadata_hash,
            )
        }
        Err(e) => {
            for l in &prev_series {
                batch
                    .series
                    .push(Series::new(l.clone(), vec![Sample::new(t, stale_nan())]));
            }
            (
                0.0,
                0,
                0,
                0,
                Vec::new(),
                Some(e.to_string()),
                prev_meta_hash,
            )
        }
    };
    for (name, v) in
        REPORT_NAMES
            .iter()
            .zip([up, duration, scraped as f64, post as f64, added as f64])
    {
        batch.series.push(Series::new(
            with_name(&report_base, name),
            vec![Sample::new(t, v)],
        ));
    }
    let appended = inner.appender.append(&inner.options.tenant, batch).await;
    let (error, series, meta_hash) = match (error, appended) {
        (Some(e), _) => (Some(e), new_series, meta_hash),
        (None, Ok(_)) => (None, new_series, meta_hash),
        // Nothing was written: keep the previous series so their staleness is not lost.
        (None, Err(e)) => (
            Some(format!("storing scraped samples: {e}")),
            prev_series,
            prev_meta_hash,
        ),
    };
    if let Some(e) = &error {
        tracing::debug!(job = %job.cfg.job_name, url = %target.url, error = %e, "scrape failed");
    }
    let ok = error.is_none();
    let mut state = lock(&inner.state);
    if let Some(ts) = state
        .jobs
        .get_mut(&job.cfg.job_name)
        .and_then(|js| js.targets.get_mut(&key))
    {
        ts.health = if ok { Health::Up } else { Health::Down };
        ts.last_error = error.unwrap_or_default();
        ts.last_scrape_ms = t;
        ts.last_scrape_duration_s = duration;
        ts.series = series;
        ts.metadata_hash = meta_hash;
        ts.report_labels = report_base;
    }
    ok
}
