//! Recording and alerting rules for Ember, as Prometheus runs them.
//!
//! - [`rulefile`]: Prometheus rule files (`groups:`), validated whole, loaded from globs.
//! - [`template`]: alert label/annotation templates (Go `text/template` subset + Prometheus functions).
//! - [`manager`]: [`RuleManager`] evaluates groups (aligned to their interval), writes recorded
//!   series, `ALERTS`, `ALERTS_FOR_STATE` and staleness markers, runs the alert state machine.
//! - [`state`]: [`RuleStateStore`] persists each group's state (file-backed for `ember serve`).
//! - [`notifier`]: sends alerts to Alertmanager's `POST /api/v2/alerts`.
//! - [`api`]: the `data` of `/api/v1/rules` and `/api/v1/alerts`.

pub mod api;
pub mod error;
pub mod manager;
pub mod notifier;
pub mod rulefile;
pub mod state;
pub mod template;
pub mod testing;
pub mod unittest;

pub use error::{Result, RulesError};
pub use manager::{
    AlertState, EvalReport, EvaluationCounts, ManagerOptions, NotificationCounts, RuleManager,
};
pub use notifier::{AlertSink, AlertingConfig, Notifier, PostableAlert, SendReport};
pub use rulefile::{
    GroupDefaults, Rule, RuleGroup, RuleKind, load_rule_file, load_rule_files, parse_rule_file,
};
pub use state::{FileStateStore, MemStateStore, RuleStateStore};
pub use unittest::{RuleTestReport, run_rule_tests};
