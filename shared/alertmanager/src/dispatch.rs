//! The routing tree and aggregation groups, as Alertmanager's `dispatch` package, made for
//! the serverless shape: all group state (alerts, next flush time, notification log) is one
//! serialisable [`State`], loaded, advanced to `now` and saved by each invocation.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::{RouteConfig, route_matchers};
use crate::error::Result;
use crate::matcher::{Matchers, labelset_string};

/// Alertmanager's route defaults.
pub const DEFAULT_GROUP_WAIT_MS: i64 = 30_000;
/// Default `group_interval`.
pub const DEFAULT_GROUP_INTERVAL_MS: i64 = 5 * 60_000;
/// Default `repeat_interval`.
pub const DEFAULT_REPEAT_INTERVAL_MS: i64 = 4 * 3_600_000;

/// How a route groups.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupBy {
    /// By these labels (those an alert has).
    Labels(Vec<String>),
    /// `...`: by all labels (one group per alert).
    All,
}

/// One node of the routing tree, with inherited settings resolved.
#[derive(Debug, Clone)]
pub struct Route {
    /// Unique id (state key): tree position plus the key.
    pub id: String,
    /// Alertmanager's route key (`{}/{severity="critical"}`), used in group keys.
    pub key: String,
    /// Matchers (sorted).
    pub matchers: Matchers,
    /// Receiver name.
    pub receiver: String,
    /// Grouping.
    pub group_by: GroupBy,
    /// `group_wait` (ms).
    pub group_wait_ms: i64,
    /// `group_interval` (ms).
    pub group_interval_ms: i64,
    /// `repeat_interval` (ms).
    pub repeat_interval_ms: i64,
    /// `continue`.
    pub continue_: bool,
    /// Children.
    pub routes: Vec<Route>,
}

impl Route {
    /// Builds the tree from the config's root route.
    pub fn root(cfg: &RouteConfig) -> Result<Route> {
        let defaults = Route {
            id: String::new(),
            key: String::new(),
            matchers: Matchers::default(),
            receiver: String::new(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait_ms: DEFAULT_GROUP_WAIT_MS,
            group_interval_ms: DEFAULT_GROUP_INTERVAL_MS,
            repeat_interval_ms: DEFAULT_REPEAT_INTERVAL_MS,
            continue_: false,
            routes: Vec::new(),
        };
        Self::build(cfg, &defaults, None, "0")
    }

    fn build(
        cfg: &RouteConfig,
        parent: &Route,
        parent_key: Option<&str>,
        pos: &str,
    ) -> Result<Route> {
        let mut matchers = route_matchers(cfg)?;
        matchers.0.sort_by(|a, b| {
            (a.name.as_str(), a.op.as_str(), a.value.as_str()).cmp(&(
                b.name.as_str(),
                b.op.as_str(),
                b.value.as_str(),
            ))
        });
        let key = match parent_key {
            Some(p) => format!("{p}/{matchers}"),
            None => matchers.to_string(),
        };
        let group_by = match &cfg.group_by {
            Some(g) if g.iter().any(|l| l == "...") => GroupBy::All,
            Some(g) => GroupBy::Labels(g.clone()),
            None => parent.group_by.clone(),
        };
        let mut r = Route {
            id: format!("{pos}:{key}"),
            key: key.clone(),
            matchers,
            receiver: cfg
                .receiver
                .clone()
                .unwrap_or_else(|| parent.receiver.clone()),
            group_by,
            group_wait_ms: cfg
                .group_wait
                .map_or(parent.group_wait_ms, |d| d.as_millis()),
            group_interval_ms: cfg
                .group_interval
                .map_or(parent.group_interval_ms, |d| d.as_millis()),
            repeat_interval_ms: cfg
                .repeat_interval
                .map_or(parent.repeat_interval_ms, |d| d.as_millis()),
            continue_: cfg.continue_,
            routes: Vec::new(),
        };
        for (i, c) in cfg.routes.iter().enumerate() {
            let child = Self::build(c, &r, Some(&key), &format!("{pos}.{i}"))?;
            r.routes.push(child);
        }
        Ok(r)
    }

    /// The routes an alert goes to (Alertmanager's `Route.Match`).
    pub fn matching(&self, labels: &BTreeMap<String, String>) -> Vec<&Route> {
        if !self.matchers.matches(labels) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for c in &self.routes {
            let m = c.matching(labels);
            let matched = !m.is_empty();
            all.extend(m);
            if matched && !c.continue_ {
                break;
            }
        }
        if all.is_empty() {
            all.push(self);
        }
        all
    }

    /// Every route id in the tree.
    pub fn ids(&self, out: &mut BTreeSet<String>) {
        out.insert(self.id.clone());
        for c in &self.routes {
            c.ids(out);
        }
    }

    /// Finds a route by id.
    pub fn find(&self, id: &str) -> Option<&Route> {
        if self.id == id {
            return Some(self);
        }
        self.routes.iter().find_map(|c| c.find(id))
    }

    /// The group labels of an alert on this route.
    pub fn group_labels(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone())))
                .collect(),
        }
    }
}

/// One alert as the notifier keeps it (times in Unix ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Start.
    pub starts_at: i64,
    /// End: resolved at, or the sender's validity limit while firing.
    pub ends_at: i64,
    /// Link to the expression.
    pub generator_url: String,
    /// When it was last received.
    pub updated_at: i64,
}

impl StoredAlert {
    /// Resolved at `now` (`endsAt` passed).
    pub fn resolved_at(&self, now: i64) -> bool {
        self.ends_at <= now
    }

    /// Merges a newer copy of the same alert (Alertmanager's `Alert.Merge`): an overlapping
    /// update keeps the earlier start.
    pub fn merge(&mut self, new: StoredAlert) {
        let overlaps = new.starts_at <= self.ends_at;
        let starts = if overlaps {
            self.starts_at.min(new.starts_at)
        } else {
            new.starts_at
        };
        *self = new;
        self.starts_at = starts;
    }
}

/// What was last notified to one integration of a group (Alertmanager's nflog entry).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Fingerprints that were firing.
    pub firing: BTreeSet<u64>,
    /// Fingerprints that were resolved.
    pub resolved: BTreeSet<u64>,
    /// When (ms).
    pub at: i64,
}

/// One aggregation group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// The route's id.
    pub route_id: String,
    /// Alertmanager's group key (`{}:{alertname="X"}`), sent in webhooks.
    pub group_key: String,
    /// Group labels.
    pub labels: BTreeMap<String, String>,
    /// Alerts by fingerprint.
    pub alerts: BTreeMap<u64, StoredAlert>,
    /// Next flush (ms).
    pub next_flush_at: i64,
    /// Whether it flushed at least once.
    pub flushed: bool,
    /// Notification log per integration name (`webhook[0]`).
    pub log: BTreeMap<String, LogEntry>,
}

/// All dispatcher state (one StateStore blob: `notify/state`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// Groups by `route id` + `\u{1}` + group label string.
    pub groups: BTreeMap<String, GroupState>,
}

impl State {
    /// Adds an alert to every group its routes put it in.
    pub fn insert(&mut self, root: &Route, fp: u64, alert: StoredAlert, now: i64) {
        for r in root.matching(&alert.labels) {
            let labels = r.group_labels(&alert.labels);
            let ls = labelset_string(&labels);
            let id = format!("{}\u{1}{ls}", r.id);
            let g = self.groups.entry(id).or_insert_with(|| GroupState {
                route_id: r.id.clone(),
                group_key: format!("{}:{ls}", r.key),
                labels,
                alerts: BTreeMap::new(),
                next_flush_at: now + r.group_wait_ms,
                flushed: false,
                log: BTreeMap::new(),
            });
            // An alert older than group_wait is not held back (as Alertmanager).
            if !g.flushed && alert.starts_at + r.group_wait_ms <= now {
                g.next_flush_at = g.next_flush_at.min(now);
            }
            match g.alerts.get_mut(&fp) {
                Some(a) => a.merge(alert.clone()),
                None => {
                    g.alerts.insert(fp, alert.clone());
                }
            }
        }
    }
}

/// Alertmanager's `DedupStage.needsUpdate`: whether this integration must be notified.
pub fn needs_update(
    entry: Option<&LogEntry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    repeat_ms: i64,
    send_resolved: bool,
    now: i64,
) -> bool {
    let Some(e) = entry else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&e.firing) {
        return true;
    }
    if firing.is_empty() {
        // Everything resolved: notify when the receiver last heard of firing alerts.
        return !e.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&e.resolved) {
        return true;
    }
    e.at + repeat_ms <= now
}

/// Alertmanager's alert order in a notification: by `job`, then `instance`, then labels.
pub fn alert_order(
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for k in ["job", "instance"] {
        match (a.get(k), b.get(k)) {
            (None, None) => continue,
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    a.iter().cmp(b.iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    #[test]
    fn dedup_follows_alertmanager() {
        let e = LogEntry {
            firing: set(&[1, 2]),
            resolved: set(&[]),
            at: 1000,
        };
        // Never notified: only when something fires.
        assert!(needs_update(None, &set(&[1]), &set(&[]), 10, false, 0));
        assert!(!needs_update(None, &set(&[]), &set(&[1]), 10, true, 0));
        // A new firing alert.
        assert!(needs_update(
            Some(&e),
            &set(&[1, 3]),
            &set(&[]),
            10_000,
            false,
            2000
        ));
        // Same firing set: only after repeat.
        assert!(!needs_update(
            Some(&e),
            &set(&[1, 2]),
            &set(&[]),
            10_000,
            false,
            2000
        ));
        assert!(needs_update(
            Some(&e),
            &set(&[1, 2]),
            &set(&[]),
            10_000,
            false,
            11_000
        ));
        // One resolved: with send_resolved only.
        assert!(needs_update(
            Some(&e),
            &set(&[1]),
            &set(&[2]),
            10_000,
            true,
            2000
        ));
        assert!(!needs_update(
            Some(&e),
            &set(&[1]),
            &set(&[2]),
            10_000,
            false,
            2000
        ));
        // All resolved: always (to clear the log).
        assert!(needs_update(
            Some(&e),
            &set(&[]),
            &set(&[1, 2]),
            10_000,
            false,
            2000
        ));
    }

    #[test]
    fn routes_inherit_and_continue() {
        let cfg: crate::config::Config = crate::config::Config::from_yaml(
            r#"
route:
  receiver: default
  group_by: [alertname]
  group_wait: 10s
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
      repeat_interval: 1h
    - match: {team: db}
      receiver: db
      group_by: ['...']
receivers:
  - name: default
  - name: pager
  - name: db
"#,
        )
        .unwrap();
        let root = Route::root(&cfg.route).unwrap();
        let l = |p: &[(&str, &str)]| -> BTreeMap<String, String> {
            p.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let m = root.matching(&l(&[
            ("alertname", "A"),
            ("severity", "critical"),
            ("team", "db"),
        ]));
        let names: Vec<&str> = m.iter().map(|r| r.receiver.as_str()).collect();
        assert_eq!(names, vec!["pager", "db"]);
        assert_eq!(m[0].group_wait_ms, 10_000);
        assert_eq!(m[0].repeat_interval_ms, 3_600_000);
        assert_eq!(m[1].repeat_interval_ms, DEFAULT_REPEAT_INTERVAL_MS);
        assert_eq!(m[0].key, r#"{}/{severity="critical"}"#);
        assert_eq!(m[1].group_by, GroupBy::All);
        let m = root.matching(&l(&[("alertname", "A")]));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].receiver, "default");
        assert_eq!(m[0].key, "{}");
    }
}
