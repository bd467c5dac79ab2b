//! The rule manager: evaluates groups at their aligned intervals, writes recording-rule results
//! and `ALERTS`/`ALERTS_FOR_STATE` back through the storage, runs the alert state machine,
//! persists it per group and sends alerts to Alertmanager.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ember_model::{Labels, LabelsBuilder, METRIC_NAME, Sample, Series, stale_nan};
use ember_promql::{Engine, QueryOptions, Value as PromValue};
use ember_storage::{AppendBatch, Storage};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RulesError};
use crate::notifier::{AlertSink, AlertingConfig, Notifier, PostableAlert, SendReport};
use crate::rulefile::{GroupDefaults, Rule, RuleGroup, RuleKind, load_rule_files};
use crate::state::{RuleStateStore, fnv1a64};
use crate::template;

/// How long resolved alerts are kept (and re-sent), as Prometheus' `resolvedRetention`.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Settings of a [`RuleManager`].
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// The tenant rules read from and write to.
    pub tenant: String,
    /// `global.external_labels` (`$externalLabels`, added to sent alerts).
    pub external_labels: BTreeMap<String, String>,
    /// The externally reachable URL (`externalURL`, generator URLs).
    pub external_url: String,
    /// `--rules.alert.resend-delay` (ms), default 1m.
    pub resend_delay_ms: i64,
    /// Per-query timeout.
    pub query_timeout: Option<Duration>,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        Self {
            tenant: ember_model::DEFAULT_TENANT.to_string(),
            external_labels: BTreeMap::new(),
            external_url: "http://127.0.0.1:9090".to_string(),
            resend_delay_ms: 60_000,
            query_timeout: None,
        }
    }
}

/// An alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Resolved (kept for resending) or never active.
    Inactive,
    /// Condition holds, `for` not yet elapsed.
    Pending,
    /// Firing.
    Firing,
}

impl AlertState {
    /// `inactive`, `pending` or `firing`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

mod float_str {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            _ => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// One alert of an alerting rule (persisted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Labels: the result's labels without `__name__`, rule labels, `alertname`.
    pub labels: BTreeMap<String, String>,
    /// Expanded annotations.
    pub annotations: BTreeMap<String, String>,
    /// State.
    pub state: AlertState,
    /// The value of the last evaluation.
    #[serde(with = "float_str")]
    pub value: f64,
    /// When the alert became active (ms).
    pub active_at: i64,
    /// When it started firing (ms).
    pub fired_at: Option<i64>,
    /// When it was resolved (ms).
    pub resolved_at: Option<i64>,
    /// When it was last sent to Alertmanager (ms).
    pub last_sent_at: Option<i64>,
    /// `endsAt` of the last send (ms).
    pub valid_until: Option<i64>,
    /// Since when it is kept firing by `keep_firing_for` (ms).
    pub keep_firing_since: Option<i64>,
}

impl Alert {
    fn needs_sending(&self, ts: i64, resend_delay: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        let last = self.last_sent_at.unwrap_or(i64::MIN);
        if self.resolved_at.is_some_and(|r| r > last) {
            return true;
        }
        last.saturating_add(resend_delay) < ts
    }
}

/// Health of a rule's last evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not evaluated yet.
    #[default]
    Unknown,
    /// Fine.
    Ok,
    /// Failed.
    Err,
}

/// A rule's runtime state (persisted with its group).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RuleRuntime {
    /// Alerts by label key (alerting rules).
    pub alerts: BTreeMap<String, Alert>,
    /// Health.
    pub health: Health,
    /// Last error.
    pub last_error: Option<String>,
    /// Last evaluation (ms).
    pub last_eval_ms: Option<i64>,
    /// Last evaluation's duration (s).
    pub eval_seconds: f64,
    /// Series written by the last evaluation (for staleness markers).
    pub prev_series: Vec<Labels>,
}

/// A group's persisted state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroupState {
    /// Format version.
    pub version: u32,
    /// Last evaluation timestamp (ms).
    pub last_eval_ms: Option<i64>,
    /// Last evaluation's duration (s).
    pub eval_seconds: f64,
    /// Rules by [`rule_key`].
    pub rules: BTreeMap<String, RuleRuntime>,
}

/// The key of a rule inside its group's state: name plus a hash of its definition, so an edited
/// rule starts fresh and an unchanged one keeps its alerts across reloads.
pub fn rule_key(rule: &Rule) -> String {
    let def = format!(
        "{}\u{1}{}\u{1}{:?}\u{1}{:?}",
        rule.name, rule.expr, rule.labels, rule.kind
    );
    format!("{}/{:016x}", rule.name, fnv1a64(def.as_bytes()))
}

struct GroupRuntime {
    group: RuleGroup,
    /// `None` until loaded from the state store.
    state: tokio::sync::Mutex<Option<GroupState>>,
    /// A copy for the read APIs (never blocks on an evaluation).
    snapshot: RwLock<GroupState>,
}

/// Offset of a group inside its interval, spread by a hash of its key (like Prometheus).
pub fn group_offset_ms(group: &RuleGroup) -> i64 {
    (fnv1a64(group.key().as_bytes()) % group.interval_ms.max(1) as u64) as i64
}

/// The latest aligned evaluation time of `group` at or before `now` (ms).
pub fn aligned_eval_time(group: &RuleGroup, now: i64) -> i64 {
    let off = group_offset_ms(group);
    let adj = now - off;
    adj - adj.rem_euclid(group.interval_ms) + off
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Rows of a template `query`: label maps and values, or an error message.
type QueryRows = std::result::Result<Vec<(BTreeMap<String, String>, f64)>, String>;

/// What one group evaluation did.
#[derive(Debug, Clone, Default)]
pub struct EvalReport {
    /// The group key.
    pub group: String,
    /// Evaluation timestamp (ms).
    pub ts: i64,
    /// Samples written (including staleness markers).
    pub samples_written: usize,
    /// Rules that failed, with their errors.
    pub rule_errors: Vec<(String, String)>,
    /// Alerts handed to the notifier.
    pub alerts_sent: Vec<PostableAlert>,
    /// The notifier's report.
    pub send: Option<SendReport>,
}

/// Evaluates rule groups and keeps their alert state.
pub struct RuleManager {
    storage: Arc<dyn Storage>,
    engine: Arc<Engine>,
    store: Arc<dyn RuleStateStore>,
    opts: ManagerOptions,
    groups: RwLock<Vec<Arc<GroupRuntime>>>,
    notifier: RwLock<Option<Arc<Notifier>>>,
    /// Another receiver of the alerts (Ember's built-in notifier), besides Alertmanager.
    sink: RwLock<Option<Arc<dyn AlertSink>>>,
    /// Series of removed groups that still need a staleness marker.
    retired: std::sync::Mutex<Vec<Labels>>,
    /// Alerts sent and failed POSTs per Alertmanager URL since start (kept across reloads).
    notifications: std::sync::Mutex<BTreeMap<String, NotificationCounts>>,
    /// Evaluation counters per group key since start.
    evaluations: std::sync::Mutex<BTreeMap<String, EvaluationCounts>>,
}

/// Evaluations of one rule group since start: Prometheus'
/// `prometheus_rule_group_iterations_total`, `prometheus_rule_evaluations_total` and
/// `prometheus_rule_evaluation_failures_total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvaluationCounts {
    /// Group evaluations.
    pub iterations: u64,
    /// Rule evaluations (one per rule per group evaluation).
    pub rule_evaluations: u64,
    /// Rule evaluations that failed (query error or failed write of the results).
    pub rule_failures: u64,
}

/// Alerts sent to one Alertmanager and the POSTs that failed, since start: Prometheus'
/// `prometheus_notifications_sent_total` and `prometheus_notifications_errors_total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotificationCounts {
    /// Alerts sent (attempted, including those of failed POSTs, as Prometheus counts).
    pub sent: u64,
    /// POSTs that failed.
    pub errors: u64,
}

impl RuleManager {
    /// A manager with no groups.
    pub fn new(
        storage: Arc<dyn Storage>,
        engine: Arc<Engine>,
        store: Arc<dyn RuleStateStore>,
        opts: ManagerOptions,
    ) -> Self {
        Self {
            storage,
            engine,
            store,
            opts,
            groups: RwLock::new(Vec::new()),
            notifier: RwLock::new(None),
            sink: RwLock::new(None),
            retired: std::sync::Mutex::new(Vec::new()),
            notifications: std::sync::Mutex::new(BTreeMap::new()),
            evaluations: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// The options.
    pub fn options(&self) -> &ManagerOptions {
        &self.opts
    }

    /// Replaces the groups. Groups with the same key and the same rules keep their runtime.
    pub fn set_groups(&self, groups: Vec<RuleGroup>) {
        let mut cur = self.groups.write().unwrap_or_else(|p| p.into_inner());
        let mut old: HashMap<String, Arc<GroupRuntime>> =
            cur.drain(..).map(|g| (g.group.key(), g)).collect();
        for g in groups {
            match old.remove(&g.key()) {
                Some(rt) if rt.group == g => cur.push(rt),
                _ => cur.push(Arc::new(GroupRuntime {
                    group: g,
                    state: tokio::sync::Mutex::new(None),
                    snapshot: RwLock::new(GroupState::default()),
                })),
            }
        }
        // Removed groups: their series get staleness markers at the next evaluation pass.
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        for (_, rt) in old {
            let snap = rt.snapshot.read().unwrap_or_else(|p| p.into_inner());
            for r in snap.rules.values() {
                retired.extend(r.prev_series.iter().cloned());
            }
        }
    }

    /// The current groups.
    pub fn groups(&self) -> Vec<RuleGroup> {
        self.runtimes().iter().map(|g| g.group.clone()).collect()
    }

    fn runtimes(&self) -> Vec<Arc<GroupRuntime>> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets (or removes) a second destination of alerts (the built-in notifier). It gets the
    /// same alerts, at the same cadence, as Alertmanager would: external labels added and
    /// `alert_relabel_configs` applied.
    pub fn set_sink(&self, sink: Option<Arc<dyn AlertSink>>) {
        *self.sink.write().unwrap_or_else(|p| p.into_inner()) = sink;
    }

    /// Evaluation counters of the loaded groups (by `file;name`) since start; groups
    /// not evaluated yet appear with zeros, removed groups disappear (as in Prometheus).
    pub fn evaluation_counts(&self) -> BTreeMap<String, EvaluationCounts> {
        let counts = self.evaluations.lock().unwrap_or_else(|p| p.into_inner());
        self.runtimes()
            .iter()
            .map(|g| {
                let key = g.group.key();
                let c = counts.get(&key).copied().unwrap_or_default();
                (key, c)
            })
            .collect()
    }

    /// Alerts sent and failed POSTs per Alertmanager URL since start; configured
    /// Alertmanagers that got nothing yet appear with zeros.
    pub fn notification_counts(&self) -> BTreeMap<String, NotificationCounts> {
        let mut counts = self
            .notifications
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(n) = self
            .notifier
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            for url in n.urls() {
                counts.entry(url).or_default();
            }
        }
        counts
    }

    /// Sets (or removes) the notifier.
    pub fn set_notifier(&self, n: Option<Notifier>) {
        *self.notifier.write().unwrap_or_else(|p| p.into_inner()) = n.map(Arc::new);
    }

    /// Loads `rule_files` and `alerting` from a configuration (relative paths against `base_dir`).
    /// On any error nothing changes and the running rules keep running.
    pub fn load_config(&self, cfg: &ember_config::Config, base_dir: &Path) -> Result<()> {
        let defaults = GroupDefaults {
            interval_ms: cfg.global.evaluation_interval.as_millis().max(1),
            query_offset_ms: cfg
                .global
                .rule_query_offset
                .map(|d| d.as_millis())
                .unwrap_or(0),
        };
        let groups = load_rule_files(&cfg.rule_files, base_dir, defaults)?;
        let notifier = match &cfg.alerting {
            Some(v) => {
                let ac = AlertingConfig::from_value(v)?;
                let ext: BTreeMap<String, String> =
                    cfg.global.external_labels.clone().into_iter().collect();
                Some(Notifier::new(&ac, ext)?)
            }
            None => None,
        };
        self.set_groups(groups);
        self.set_notifier(notifier);
        Ok(())
    }

    /// Evaluates every group whose latest aligned evaluation time at or before `now` (ms) has
    /// not been evaluated yet (missed iterations are skipped, as in Prometheus).
    pub async fn evaluate_due(&self, now: i64) -> Vec<EvalReport> {
        let retired = std::mem::take(&mut *self.retired.lock().unwrap_or_else(|p| p.into_inner()));
        if !retired.is_empty() {
            let b = AppendBatch {
                series: retired
                    .into_iter()
                    .map(|l| Series::new(l, vec![Sample::new(now, stale_nan())]))
                    .collect(),
                metadata: Vec::new(),
            };
            if let Err(e) = self.storage.append(&self.opts.tenant, b).await {
                tracing::warn!(error = %e, "writing staleness markers of removed rules failed");
            }
        }
        let mut out = Vec::new();
        for g in self.runtimes() {
            let ts = aligned_eval_time(&g.group, now);
            out.extend(self.eval_runtime(&g, ts, false).await);
        }
        out
    }

    /// Evaluates the group `file;name` at `ts` (ms), regardless of alignment.
    pub async fn evaluate_group_at(&self, key: &str, ts: i64) -> Result<EvalReport> {
        let g = self
            .runtimes()
            .into_iter()
            .find(|g| g.group.key() == key)
            .ok_or_else(|| RulesError::State {
                context: "evaluate".into(),
                message: format!("no group {key}"),
            })?;
        self.eval_runtime(&g, ts, true)
            .await
            .ok_or_else(|| RulesError::State {
                context: "evaluate".into(),
                message: format!("group {key} already evaluated at or after {ts}"),
            })
    }

    /// The next aligned evaluation time of any group after `now` (ms).
    pub fn next_eval_after(&self, now: i64) -> Option<i64> {
        self.runtimes()
            .iter()
            .map(|g| aligned_eval_time(&g.group, now) + g.group.interval_ms)
            .min()
    }

    /// One pass for the rules Lambda: evaluates what is due now and keeps evaluating
    /// sub-minute groups at their aligned times until `until`.
    pub async fn run_pass(&self, until: SystemTime) -> Vec<EvalReport> {
        let until_ms = until
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut out = Vec::new();
        loop {
            let now = now_ms();
            out.extend(self.evaluate_due(now).await);
            let Some(next) = self.next_eval_after(now) else {
                break;
            };
            if next > until_ms {
                break;
            }
            tokio::time::sleep(Duration::from_millis((next - now_ms()).max(0) as u64)).await;
        }
        out
    }

    /// The scheduler for `ember serve`: evaluates groups at their aligned times until `shutdown`
    /// completes. Panics inside an evaluation are caught and logged by the caller's task; this
    /// loop itself never panics on data.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let now = now_ms();
            let me = self.clone();
            // Each pass runs in its own task so a panic in one evaluation cannot end the scheduler.
            let pass = tokio::spawn(async move { me.evaluate_due(now).await });
            if let Err(e) = pass.await {
                tracing::error!(error = %e, "rule evaluation pass panicked");
            }
            let next = self.next_eval_after(now_ms()).unwrap_or(now_ms() + 1000);
            let wait = Duration::from_millis((next - now_ms()).clamp(10, 60_000) as u64);
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn load_state(&self, key: &str) -> GroupState {
        match self.store.get(key).await {
            Ok(Some(blob)) => match serde_json::from_slice::<GroupState>(&blob) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(group = key, error = %e, "discarding unreadable rule state");
                    GroupState::default()
                }
            },
            Ok(None) => GroupState::default(),
            Err(e) => {
                tracing::warn!(group = key, error = %e, "reading rule state failed; starting fresh");
                GroupState::default()
            }
        }
    }

    async fn eval_runtime(&self, g: &GroupRuntime, ts: i64, force: bool) -> Option<EvalReport> {
        let key = g.group.key();
        let mut guard = g.state.lock().await;
        if guard.is_none() {
            *guard = Some(self.load_state(&key).await);
        }
        let state = guard.as_mut()?;
        if !force && state.last_eval_ms.is_some_and(|l| l >= ts) {
            return None;
        }
        let started = std::time::Instant::now();
        let mut report = EvalReport {
            group: key.clone(),
            ts,
            ..EvalReport::default()
        };
        let mut batch: Vec<Series> = Vec::new();
        let mut to_send = Vec::new();
        let mut keep = BTreeSet::new();
        for rule in &g.group.rules {
            let rk = rule_key(rule);
            keep.insert(rk.clone());
            let rt = state.rules.entry(rk).or_default();
            let rstart = std::time::Instant::now();
            let res = self.eval_rule(&g.group, rule, rt, ts).await;
            let written = match res {
                Ok(series) => {
                    rt.health = Health::Ok;
                    rt.last_error = None;
                    series
                }
                Err(e) => {
                    rt.health = Health::Err;
                    rt.last_error = Some(e.clone());
                    report.rule_errors.push((rule.name.clone(), e));
                    Vec::new()
                }
            };
            // Staleness markers for series that vanished since the last evaluation.
            let now_set: BTreeSet<&Labels> = written.iter().map(|s| &s.labels).collect();
            let sample_ts = ts - g.group.query_offset_ms;
            for old in &rt.prev_series {
                if !now_set.contains(old) {
                    batch.push(Series::new(
                        old.clone(),
                        vec![Sample::new(sample_ts, stale_nan())],
                    ));
                }
            }
            rt.prev_series = written.iter().map(|s| s.labels.clone()).collect();
            batch.extend(written);
            // Commit after every rule, so later rules of the group see its results (as Prometheus).
            if !batch.is_empty() {
                report.samples_written += batch.iter().map(|s| s.samples.len()).sum::<usize>();
                let b = AppendBatch {
                    series: std::mem::take(&mut batch),
                    metadata: Vec::new(),
                };
                if let Err(e) = self.storage.append(&self.opts.tenant, b).await {
                    tracing::warn!(group = %key, rule = %rule.name, error = %e, "writing rule results failed");
                    report.rule_errors.push((rule.name.clone(), e.to_string()));
                }
            }
            rt.last_eval_ms = Some(ts);
            rt.eval_seconds = rstart.elapsed().as_secs_f64();
            if let RuleKind::Alerting { .. } = rule.kind {
                to_send.extend(self.collect_sends(&g.group, rule, rt, ts));
            }
        }
        {
            let mut counts = self.evaluations.lock().unwrap_or_else(|p| p.into_inner());
            let c = counts.entry(key.clone()).or_default();
            c.iterations += 1;
            c.rule_evaluations += g.group.rules.len() as u64;
            c.rule_failures += report.rule_errors.len() as u64;
        }
        // Rules removed or changed since the last evaluation: mark their series stale.
        let gone: Vec<Series> = state
            .rules
            .iter()
            .filter(|(k, _)| !keep.contains(*k))
            .flat_map(|(_, rt)| rt.prev_series.iter())
            .map(|l| {
                Series::new(
                    l.clone(),
                    vec![Sample::new(ts - g.group.query_offset_ms, stale_nan())],
                )
            })
            .collect();
        state.rules.retain(|k, _| keep.contains(k));
        if !gone.is_empty() {
            report.samples_written += gone.len();
            let b = AppendBatch {
                series: gone,
                metadata: Vec::new(),
            };
            if let Err(e) = self.storage.append(&self.opts.tenant, b).await {
                tracing::warn!(group = %key, error = %e, "writing staleness markers failed");
            }
        }
        state.last_eval_ms = Some(ts);
        state.eval_seconds = started.elapsed().as_secs_f64();
        state.version = 1;
        let notifier = self
            .notifier
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let sink = self.sink.read().unwrap_or_else(|p| p.into_inner()).clone();
        if !to_send.is_empty() {
            report.alerts_sent = to_send.clone();
            if let Some(s) = sink {
                let prepared = match &notifier {
                    Some(n) => n.prepare(to_send.clone()),
                    None => to_send
                        .iter()
                        .cloned()
                        .map(|mut a| {
                            for (k, v) in &self.opts.external_labels {
                                a.labels.entry(k.clone()).or_insert_with(|| v.clone());
                            }
                            a
                        })
                        .collect(),
                };
                s.send(prepared).await;
            }
            if let Some(n) = notifier {
                let sent = n.send(to_send).await;
                let mut counts = self.notifications.lock().unwrap_or_else(|p| p.into_inner());
                for (url, alerts, failed) in &sent.per_alertmanager {
                    let c = counts.entry(url.clone()).or_default();
                    c.sent += *alerts as u64;
                    c.errors += *failed as u64;
                }
                drop(counts);
                report.send = Some(sent);
            }
        }
        match serde_json::to_vec(&*state) {
            Ok(blob) => {
                if let Err(e) = self.store.put(&key, blob).await {
                    tracing::warn!(group = %key, error = %e, "persisting rule state failed");
                }
            }
            Err(e) => tracing::warn!(group = %key, error = %e, "serialising rule state failed"),
        }
        *g.snapshot.write().unwrap_or_else(|p| p.into_inner()) = state.clone();
        Some(report)
    }

    fn query_opts(&self) -> QueryOptions {
        QueryOptions {
            timeout: self.opts.query_timeout,
            ..QueryOptions::default()
        }
    }

    async fn query_vector(
        &self,
        expr: &str,
        t: i64,
    ) -> std::result::Result<Vec<(Labels, f64)>, String> {
        let q: &dyn ember_storage::Querier = &*self.storage;
        let r = self
            .engine
            .instant_query(q, &self.opts.tenant, expr, t, &self.query_opts())
            .await
            .map_err(|e| e.to_string())?;
        match r.value {
            PromValue::Vector(v) => Ok(v.into_iter().map(|s| (s.labels, s.v)).collect()),
            PromValue::Scalar { v, .. } => Ok(vec![(Labels::empty(), v)]),
            PromValue::String { .. } => {
                Err("rule result is a string, not a vector or scalar".into())
            }
            PromValue::Matrix(_) => {
                Err("rule result is a range vector, not an instant vector".into())
            }
        }
    }

    async fn eval_rule(
        &self,
        group: &RuleGroup,
        rule: &Rule,
        rt: &mut RuleRuntime,
        ts: i64,
    ) -> std::result::Result<Vec<Series>, String> {
        let qt = ts - group.query_offset_ms;
        let mut labels = group.labels.clone();
        labels.extend(rule.labels.clone());
        match &rule.kind {
            RuleKind::Recording => {
                let rows = self.query_vector(&rule.expr, qt).await?;
                let mut out = Vec::with_capacity(rows.len());
                let mut seen = BTreeSet::new();
                for (l, v) in rows {
                    let mut b = l.to_builder();
                    b.set(METRIC_NAME, rule.name.clone());
                    for (k, val) in &labels {
                        if val.is_empty() {
                            b.del(k);
                        } else {
                            b.set(k.clone(), val.clone());
                        }
                    }
                    let l = b.build();
                    if !seen.insert(l.clone()) {
                        return Err("vector contains metrics with the same labelset after applying rule labels".into());
                    }
                    out.push(Series::new(l, vec![Sample::new(qt, v)]));
                }
                if group.limit > 0 && out.len() as u64 > group.limit {
                    return Err(format!(
                        "exceeded limit of {} with {} series",
                        group.limit,
                        out.len()
                    ));
                }
                Ok(out)
            }
            RuleKind::Alerting {
                for_ms,
                keep_firing_for_ms,
                annotations,
            } => {
                let rows = self.query_vector(&rule.expr, qt).await?;
                // Run literal `query` calls of the templates first (they need the async engine).
                let mut queries: HashMap<String, QueryRows> = HashMap::new();
                for src in labels.values().chain(annotations.values()) {
                    for q in template::query_literals(src) {
                        if queries.contains_key(&q) {
                            continue;
                        }
                        let r = self.query_vector(&q, qt).await.map(|rows| {
                            rows.into_iter()
                                .map(|(l, v)| {
                                    (
                                        l.iter()
                                            .map(|l| (l.name.clone(), l.value.clone()))
                                            .collect(),
                                        v,
                                    )
                                })
                                .collect()
                        });
                        queries.insert(q, r);
                    }
                }
                let qf = |q: &str| -> QueryRows {
                    queries.get(q).cloned().unwrap_or_else(|| {
                        Err(format!(
                            "query {q:?} is not a literal; only literal queries are supported"
                        ))
                    })
                };
                let mut result: BTreeMap<String, Alert> = BTreeMap::new();
                for (l, v) in rows {
                    let tmpl_labels: BTreeMap<String, String> = l
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect();
                    let ctx = template::Context {
                        labels: tmpl_labels.clone(),
                        external_labels: self.opts.external_labels.clone(),
                        external_url: self.opts.external_url.clone(),
                        value: v,
                        query: Some(&qf),
                    };
                    let mut out_labels: BTreeMap<String, String> = tmpl_labels;
                    out_labels.remove(METRIC_NAME);
                    for (k, src) in &labels {
                        let val = template::expand(src, &ctx)
                            .unwrap_or_else(|e| format!("<error expanding template: {e}>"));
                        if val.is_empty() {
                            out_labels.remove(k);
                        } else {
                            out_labels.insert(k.clone(), val);
                        }
                    }
                    out_labels.insert("alertname".into(), rule.name.clone());
                    let mut ann = BTreeMap::new();
                    for (k, src) in annotations {
                        let val = template::expand(src, &ctx)
                            .unwrap_or_else(|e| format!("<error expanding template: {e}>"));
                        ann.insert(k.clone(), val);
                    }
                    let key = labels_key(&out_labels);
                    if result.contains_key(&key) {
                        return Err("vector contains metrics with the same labelset after applying alert labels".into());
                    }
                    result.insert(
                        key,
                        Alert {
                            labels: out_labels,
                            annotations: ann,
                            state: AlertState::Pending,
                            value: v,
                            active_at: ts,
                            fired_at: None,
                            resolved_at: None,
                            last_sent_at: None,
                            valid_until: None,
                            keep_firing_since: None,
                        },
                    );
                }
                for (k, a) in &result {
                    match rt.alerts.get_mut(k) {
                        Some(cur) if cur.state != AlertState::Inactive => {
                            cur.value = a.value;
                            cur.annotations = a.annotations.clone();
                            cur.labels = a.labels.clone();
                        }
                        _ => {
                            rt.alerts.insert(k.clone(), a.clone());
                        }
                    }
                }
                let mut active = 0u64;
                let mut remove = Vec::new();
                for (k, a) in rt.alerts.iter_mut() {
                    if !result.contains_key(k) {
                        let mut keep_firing = false;
                        if a.state == AlertState::Firing && *keep_firing_for_ms > 0 {
                            let since = *a.keep_firing_since.get_or_insert(ts);
                            if ts - since < *keep_firing_for_ms {
                                keep_firing = true;
                            }
                        }
                        if a.state == AlertState::Pending
                            || a.resolved_at
                                .is_some_and(|r| ts - r > RESOLVED_RETENTION_MS)
                        {
                            remove.push(k.clone());
                        }
                        if a.state != AlertState::Inactive && !keep_firing {
                            a.state = AlertState::Inactive;
                            a.resolved_at = Some(ts);
                        }
                        if !keep_firing {
                            continue;
                        }
                    } else {
                        a.keep_firing_since = None;
                    }
                    active += 1;
                    if a.state == AlertState::Pending && ts - a.active_at >= *for_ms {
                        a.state = AlertState::Firing;
                        a.fired_at = Some(ts);
                    }
                }
                for k in remove {
                    rt.alerts.remove(&k);
                }
                if group.limit > 0 && active > group.limit {
                    rt.alerts.clear();
                    return Err(format!(
                        "exceeded limit of {} with {} alerts",
                        group.limit, active
                    ));
                }
                let mut out = Vec::new();
                for a in rt.alerts.values() {
                    if a.state == AlertState::Inactive {
                        continue;
                    }
                    let mut b = LabelsBuilder::new();
                    for (k, v) in &a.labels {
                        b.set(k.clone(), v.clone());
                    }
                    b.set(METRIC_NAME, "ALERTS");
                    b.set("alertstate", a.state.as_str());
                    out.push(Series::new(b.build(), vec![Sample::new(qt, 1.0)]));
                    b.set(METRIC_NAME, "ALERTS_FOR_STATE");
                    b.del("alertstate");
                    out.push(Series::new(
                        b.build(),
                        vec![Sample::new(qt, (a.active_at.div_euclid(1000)) as f64)],
                    ));
                }
                Ok(out)
            }
        }
    }

    fn collect_sends(
        &self,
        group: &RuleGroup,
        rule: &Rule,
        rt: &mut RuleRuntime,
        ts: i64,
    ) -> Vec<PostableAlert> {
        let delay = self.opts.resend_delay_ms;
        let delta = delay.max(group.interval_ms);
        let mut out = Vec::new();
        for a in rt.alerts.values_mut() {
            if !a.needs_sending(ts, delay) {
                continue;
            }
            a.last_sent_at = Some(ts);
            a.valid_until = Some(ts + 4 * delta);
            let ends = a.resolved_at.unwrap_or(ts + 4 * delta);
            out.push(PostableAlert {
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: rfc3339(a.fired_at.unwrap_or(a.active_at)),
                ends_at: rfc3339(ends),
                generator_url: generator_url(&self.opts.external_url, &rule.expr),
            });
        }
        out
    }

    /// Snapshot of every group with its state (for the read APIs).
    pub fn snapshot(&self) -> Vec<(RuleGroup, GroupState)> {
        self.runtimes()
            .iter()
            .map(|g| {
                (
                    g.group.clone(),
                    g.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone(),
                )
            })
            .collect()
    }

    /// Loads persisted state of every group now (so the read APIs show restored alerts before the
    /// first evaluation).
    pub async fn restore_all(&self) {
        for g in self.runtimes() {
            let mut guard = g.state.lock().await;
            if guard.is_none() {
                let s = self.load_state(&g.group.key()).await;
                *g.snapshot.write().unwrap_or_else(|p| p.into_inner()) = s.clone();
                *guard = Some(s);
            }
        }
    }
}

/// A stable key for a label map.
pub fn labels_key(l: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    for (k, v) in l {
        s.push_str(k);
        s.push('\u{ff}');
        s.push_str(v);
        s.push('\u{fe}');
    }
    s
}

/// RFC 3339 with as many fractional digits as needed, UTC (`Z`).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string())
}

/// `<external_url>/graph?g0.expr=<expr>&g0.tab=1`, as Prometheus links alerts.
pub fn generator_url(external_url: &str, expr: &str) -> String {
    format!(
        "{}/graph?g0.expr={}&g0.tab=1",
        external_url.trim_end_matches('/'),
        template::url_query_escape(expr)
    )
}
