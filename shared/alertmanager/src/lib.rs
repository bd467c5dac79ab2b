//! Ember's serverless notifier: Alertmanager's routing, grouping, inhibition, silences and
//! receivers (Slack, webhook, SNS) for users who run no Alertmanager.
//!
//! Built for invocations, not a daemon: the rules function (or a tick of `ember serve`)
//! hands the alerts of one evaluation to [`Notifier::receive`] (or through the
//! [`ember_rules::AlertSink`] hook), then calls [`Notifier::flush`] with the current time.
//! `flush` loads the state (`notify/state` in the [`StateStore`]) and the silences
//! (`silences/all`), merges the new alerts into their groups, sends what is due and saves the
//! state, so each group notifies once per interval across invocations, cold starts and
//! restarts. Time is a parameter: tests need no sleeping.
//!
//! - [`config`]: `alertmanager.yml`, strict.
//! - [`matcher`]: label matchers, fingerprints.
//! - [`dispatch`]: the route tree, aggregation groups, the notification log.
//! - [`inhibit`], [`silence`]: muting.
//! - [`template`], [`notify`]: message rendering and delivery.
//! - [`api`]: `/api/v2/silences` as an axum router to merge into the HTTP API.

pub mod api;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod inhibit;
pub mod matcher;
pub mod notify;
pub mod silence;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use ember_rules::PostableAlert;
use ember_storage::state::StateStore;

pub use config::Config;
pub use error::{Error, Result};
pub use silence::Silences;

use dispatch::{GroupState, Route, State, StoredAlert, alert_order, needs_update};
use inhibit::Inhibitor;
use notify::{Integration, Sender};
use template::{AlertData, Data, Templates};

/// The state key of the dispatcher state.
pub const STATE_KEY: &str = "notify/state";

/// Default `resolve_timeout`.
const DEFAULT_RESOLVE_TIMEOUT_MS: i64 = 5 * 60_000;

/// A failed group is retried after at most this long (or its `group_interval`, if shorter).
const RETRY_AFTER_MS: i64 = 60_000;

/// What one [`Notifier::flush`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Alerts merged from [`Notifier::receive`].
    pub received: usize,
    /// Groups whose flush time had come.
    pub groups_flushed: usize,
    /// Notifications delivered.
    pub sent: usize,
    /// Alerts left out because a silence matched.
    pub silenced: usize,
    /// Alerts left out because of inhibition.
    pub inhibited: usize,
    /// Failed deliveries (retried on a later flush; URLs never included).
    pub errors: Vec<String>,
    /// Groups kept after the flush.
    pub groups: usize,
    /// Whether the state was written (unchanged state is not rewritten).
    pub state_written: bool,
}

/// The built-in notifier. Cheap to share (`Arc`); one flush runs at a time.
pub struct Notifier {
    root: Route,
    receivers: BTreeMap<String, Vec<Integration>>,
    inhibitors: Vec<Inhibitor>,
    templates: Templates,
    resolve_timeout_ms: i64,
    store: Arc<dyn StateStore>,
    silences: Silences,
    sender: Sender,
    pending: Mutex<Vec<PostableAlert>>,
    flushing: tokio::sync::Mutex<()>,
    /// Notifications attempted and failed per integration type, since start.
    counts: Mutex<BTreeMap<&'static str, NotificationCounts>>,
}

/// Notifications of one integration type since start: Alertmanager's
/// `alertmanager_notifications_total` and `alertmanager_notifications_failed_total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotificationCounts {
    /// Notifications attempted (one per group and integration that was due).
    pub total: u64,
    /// Notifications that failed after the sender's retries (retried on a later flush).
    pub failed: u64,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("receivers", &self.receivers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier for `cfg`, with `templates` (file name, text) and state in `store`;
    /// `external_url` is `.ExternalURL` in messages.
    pub fn from_config(
        cfg: &Config,
        templates: &[(String, String)],
        store: Arc<dyn StateStore>,
        external_url: &str,
    ) -> Result<Self> {
        let tpl = Templates::new(templates, external_url)?;
        let receivers = notify::build(cfg, &tpl)?;
        Ok(Self {
            root: Route::root(&cfg.route)?,
            receivers,
            inhibitors: cfg
                .inhibit_rules
                .iter()
                .map(Inhibitor::new)
                .collect::<Result<_>>()?,
            templates: tpl,
            resolve_timeout_ms: cfg
                .global
                .resolve_timeout
                .map_or(DEFAULT_RESOLVE_TIMEOUT_MS, |d| d.as_millis()),
            silences: Silences::new(store.clone()),
            store,
            sender: Sender::new()?,
            pending: Mutex::new(Vec::new()),
            flushing: tokio::sync::Mutex::new(()),
            counts: Mutex::new(BTreeMap::new()),
        })
    }

    /// Loads `alertmanager.yml` from `path` (template globs relative to it).
    pub fn from_file(path: &Path, store: Arc<dyn StateStore>, external_url: &str) -> Result<Self> {
        let cfg = Config::load(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut texts = Vec::new();
        for p in config::template_paths(&cfg, base)? {
            let text = std::fs::read_to_string(&p).map_err(|e| Error::Io {
                what: format!("reading template {}", p.display()),
                source: e,
            })?;
            texts.push((p.display().to_string(), text));
        }
        Self::from_config(&cfg, &texts, store, external_url)
    }

    /// Loads the configuration from `EMBER_ALERTMANAGER_CONFIG`'s forms: a file path (or
    /// `file:path`; template globs relative to it), or `ssm:/name` / `secretsmanager:id`
    /// holding the YAML (feature `aws-secrets`; no template files then). `s3://` is not
    /// supported yet.
    pub async fn from_location(
        location: &str,
        store: Arc<dyn StateStore>,
        external_url: &str,
    ) -> Result<Self> {
        let loc = location.trim();
        if loc.starts_with("s3://") {
            return Err(Error::Config(format!(
                "{loc}: s3:// locations are not supported for the notifier config; use a file (bundled with the function) or ssm:/name"
            )));
        }
        if loc.starts_with("ssm:") || loc.starts_with("secretsmanager:") {
            let r =
                ember_secrets::SecretRef::parse(loc).map_err(|e| Error::Config(e.to_string()))?;
            let yaml = r
                .resolve_from_env()
                .await
                .map_err(|e| Error::Config(format!("reading {loc}: {e}")))?;
            let cfg = Config::from_yaml(yaml.expose())
                .map_err(|e| Error::Config(format!("{loc}: {e}")))?;
            if !cfg.templates.is_empty() {
                return Err(Error::Config(format!(
                    "{loc}: `templates` need a file-based config (define templates inline in the fields instead)"
                )));
            }
            return Self::from_config(&cfg, &[], store, external_url);
        }
        let path = loc.strip_prefix("file:").unwrap_or(loc);
        Self::from_file(Path::new(path), store, external_url)
    }

    /// Flushes every `tick` until `until`, then once more: the rules Lambda runs this next
    /// to `RuleManager::run_pass` so alerts of sub-minute evaluations go out within a tick.
    /// Errors are logged and reported; the failed groups are retried on a later flush.
    pub async fn run_until(
        &self,
        until: std::time::SystemTime,
        tick: std::time::Duration,
    ) -> Vec<std::result::Result<FlushReport, String>> {
        let mut out = Vec::new();
        loop {
            let now = std::time::SystemTime::now();
            let ms = now
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default();
            let r = self.flush(ms).await;
            if let Err(e) = &r {
                tracing::warn!(error = %e, "notifier flush failed; will retry");
            }
            out.push(r.map_err(|e| e.to_string()));
            let Ok(left) = until.duration_since(std::time::SystemTime::now()) else {
                return out;
            };
            tokio::time::sleep(left.min(tick)).await;
        }
    }

    /// Notifications attempted and failed per integration type (`webhook`, `slack`,
    /// `sns`) since start; configured integrations that sent nothing yet appear with zeros.
    pub fn notification_counts(&self) -> BTreeMap<&'static str, NotificationCounts> {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for i in self.receivers.values().flatten() {
            counts.entry(i.kind.integration()).or_default();
        }
        counts
    }

    fn count(&self, integration: &'static str, ok: bool) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let c = counts.entry(integration).or_default();
        c.total += 1;
        if !ok {
            c.failed += 1;
        }
    }

    /// Silences in the same store (for the HTTP API).
    pub fn silences(&self) -> &Silences {
        &self.silences
    }

    /// Changes the HTTP retry policy (tests use short backoffs).
    pub fn set_retry(&mut self, attempts: u32, backoff: std::time::Duration) {
        self.sender.attempts = attempts;
        self.sender.backoff = backoff;
    }

    /// Queues alerts (Alertmanager's `POST /api/v2/alerts`); the next flush merges them.
    pub fn receive(&self, alerts: Vec<PostableAlert>) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(alerts);
    }

    fn to_stored(&self, a: PostableAlert, now: i64) -> StoredAlert {
        let starts = silence::parse_time(&a.starts_at).unwrap_or(now);
        let ends = silence::parse_time(&a.ends_at)
            .filter(|t| *t > 0)
            .unwrap_or(now + self.resolve_timeout_ms);
        StoredAlert {
            labels: a.labels,
            annotations: a.annotations,
            starts_at: starts,
            ends_at: ends,
            generator_url: a.generator_url,
            updated_at: now,
        }
    }

    async fn load_state(&self) -> Result<(State, Option<Vec<u8>>)> {
        let raw = self.store.get(STATE_KEY).await.map_err(|e| Error::State {
            key: STATE_KEY.into(),
            message: e.to_string(),
        })?;
        let state = match &raw {
            Some(b) => serde_json::from_slice(b).map_err(|e| Error::State {
                key: STATE_KEY.into(),
                message: e.to_string(),
            })?,
            None => State::default(),
        };
        Ok((state, raw))
    }

    /// Merges queued alerts, sends every due notification and saves the state. `now` is
    /// Unix ms. On a state-store error the queued alerts are kept for the next flush.
    pub async fn flush(&self, now: i64) -> Result<FlushReport> {
        let _one = self.flushing.lock().await;
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let requeue = |p: Vec<PostableAlert>| {
            let mut q = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let newer = std::mem::take(&mut *q);
            *q = p;
            q.extend(newer);
        };
        let loaded = match self.load_state().await {
            Ok(x) => x,
            Err(e) => {
                requeue(pending);
                return Err(e);
            }
        };
        let silences = match self.silences.list().await {
            Ok(s) => s,
            Err(e) => {
                requeue(pending);
                return Err(e);
            }
        };
        let (mut state, raw) = loaded;
        let mut report = FlushReport {
            received: pending.len(),
            ..FlushReport::default()
        };
        state.version = 1;
        for a in pending.iter().cloned() {
            let stored = self.to_stored(a, now);
            let fp = matcher::fingerprint(&stored.labels);
            state.insert(&self.root, fp, stored, now);
        }
        // Groups of routes that no longer exist (config changed) are dropped.
        let mut ids = BTreeSet::new();
        self.root.ids(&mut ids);
        state.groups.retain(|_, g| ids.contains(&g.route_id));

        let active = silence::active(&silences, now);
        let mut firing_all: BTreeMap<u64, &BTreeMap<String, String>> = BTreeMap::new();
        for g in state.groups.values() {
            for (fp, a) in &g.alerts {
                if !a.resolved_at(now) {
                    firing_all.insert(*fp, &a.labels);
                }
            }
        }
        let firing_all: Vec<(u64, &BTreeMap<String, String>)> = firing_all.into_iter().collect();
        let mut muted: BTreeMap<u64, bool> = BTreeMap::new();
        for g in state.groups.values() {
            for (fp, a) in &g.alerts {
                muted.entry(*fp).or_insert_with(|| {
                    if silence::silenced_by(&active, &a.labels).is_some() {
                        report.silenced += 1;
                        true
                    } else if inhibit::inhibited(&self.inhibitors, &firing_all, *fp, &a.labels) {
                        report.inhibited += 1;
                        true
                    } else {
                        false
                    }
                });
            }
        }

        let keys: Vec<String> = state.groups.keys().cloned().collect();
        for k in keys {
            let Some(g) = state.groups.get_mut(&k) else {
                continue;
            };
            if g.next_flush_at > now {
                continue;
            }
            let Some(route) = self.root.find(&g.route_id) else {
                continue;
            };
            report.groups_flushed += 1;
            let ok = self.flush_group(route, g, &muted, now, &mut report).await;
            g.flushed = true;
            if ok {
                // Resolved alerts were delivered (or not wanted): forget them.
                g.alerts.retain(|_, a| !a.resolved_at(now));
                let mut next = g.next_flush_at + route.group_interval_ms;
                if next <= now {
                    next = now + route.group_interval_ms;
                }
                g.next_flush_at = next;
            } else {
                g.next_flush_at = now + route.group_interval_ms.min(RETRY_AFTER_MS);
            }
        }
        state.groups.retain(|_, g| !g.alerts.is_empty());
        report.groups = state.groups.len();

        let blob = serde_json::to_vec(&state).map_err(|e| Error::State {
            key: STATE_KEY.into(),
            message: e.to_string(),
        })?;
        if raw.as_deref() != Some(blob.as_slice()) {
            if let Err(e) = self.store.put(STATE_KEY, blob).await {
                // Notifications already went out; the alerts are re-merged next time.
                requeue(pending);
                return Err(Error::State {
                    key: STATE_KEY.into(),
                    message: e.to_string(),
                });
            }
            report.state_written = true;
        }
        Ok(report)
    }

    /// Flushes one group to every integration of its receiver; false when a send failed.
    async fn flush_group(
        &self,
        route: &Route,
        g: &mut GroupState,
        muted: &BTreeMap<u64, bool>,
        now: i64,
        report: &mut FlushReport,
    ) -> bool {
        let mut visible: Vec<(u64, &StoredAlert)> = g
            .alerts
            .iter()
            .filter(|(fp, _)| !muted.get(fp).copied().unwrap_or(false))
            .map(|(fp, a)| (*fp, a))
            .collect();
        visible.sort_by(|a, b| alert_order(&a.1.labels, &b.1.labels));
        let firing: BTreeSet<u64> = visible
            .iter()
            .filter(|(_, a)| !a.resolved_at(now))
            .map(|(fp, _)| *fp)
            .collect();
        let resolved: BTreeSet<u64> = visible
            .iter()
            .filter(|(_, a)| a.resolved_at(now))
            .map(|(fp, _)| *fp)
            .collect();
        let integrations = self
            .receivers
            .get(&route.receiver)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut all_ok = true;
        for i in integrations {
            let entry = g.log.get(&i.name);
            if !needs_update(
                entry,
                &firing,
                &resolved,
                route.repeat_interval_ms,
                i.send_resolved,
                now,
            ) {
                continue;
            }
            let alerts: Vec<AlertData> = visible
                .iter()
                .filter(|(_, a)| i.send_resolved || !a.resolved_at(now))
                .map(|(fp, a)| alert_data(*fp, a, now))
                .collect();
            if !alerts.is_empty() {
                let data = Data::new(
                    &route.receiver,
                    alerts,
                    g.labels.clone(),
                    self.templates_external_url(),
                );
                let result = self
                    .sender
                    .notify(i, &self.templates, &data, &g.group_key)
                    .await;
                self.count(i.kind.integration(), result.is_ok());
                match result {
                    Ok(()) => report.sent += 1,
                    Err(e) => {
                        tracing::warn!(group = %g.group_key, error = %e, "notification failed; will retry");
                        report.errors.push(e.to_string());
                        all_ok = false;
                        continue;
                    }
                }
            }
            g.log.insert(
                i.name.clone(),
                dispatch::LogEntry {
                    firing: firing.clone(),
                    resolved: resolved.clone(),
                    at: now,
                },
            );
        }
        all_ok
    }

    fn templates_external_url(&self) -> &str {
        self.templates.external_url()
    }
}

fn alert_data(fp: u64, a: &StoredAlert, now: i64) -> AlertData {
    let resolved = a.resolved_at(now);
    AlertData {
        status: if resolved { "resolved" } else { "firing" },
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        starts_at: silence::go_time(a.starts_at),
        // Firing alerts show no end, so they do not look resolved later (as Alertmanager).
        ends_at: if resolved {
            silence::go_time(a.ends_at)
        } else {
            "0001-01-01T00:00:00Z".to_string()
        },
        generator_url: a.generator_url.clone(),
        fingerprint: format!("{fp:016x}"),
    }
}

#[async_trait::async_trait]
impl ember_rules::AlertSink for Notifier {
    async fn send(&self, alerts: Vec<PostableAlert>) {
        self.receive(alerts);
    }
}
