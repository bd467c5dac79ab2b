//! The server's `/metrics` sources beside the API's own: the backend (requests and bytes
//! by store kind, AWS billing units), compaction, and both notifiers — the one sending to
//! Alertmanager (Prometheus' `prometheus_notifications_*` names) and the built-in one
//! (Alertmanager's `alertmanager_notifications_*` names).

use std::sync::Arc;

use ember_api::telemetry::MetricsSource;
use ember_formats::exposition::{family, sample};
use ember_runtime::backend::Backend;
use ember_runtime::metrics::{
    CompactionMetrics, aws_meter_source, modeled_cost_source, store_usage_source,
};

/// The backend's and compaction's sources.
pub fn backend_sources(
    backend: &Backend,
    compaction: &Arc<CompactionMetrics>,
) -> Vec<MetricsSource> {
    let mut sources = vec![
        store_usage_source(backend.usage.clone()),
        compaction.source(),
    ];
    sources.push(match &backend.aws_meter {
        Some(meter) => aws_meter_source(meter.clone()),
        None => modeled_cost_source(backend.usage.clone()),
    });
    sources
}

/// Writes one counter family with one label: a sample per `(label value, value)` row.
fn counter_family<'a>(
    out: &mut String,
    (name, help): (&str, &str),
    label: &str,
    rows: impl Iterator<Item = (&'a str, u64)>,
) {
    family(out, name, "counter", help);
    for (value, v) in rows {
        sample(out, name, &[(label, value)], v as f64);
    }
}

/// Alerts sent to each Alertmanager and failed POSTs, as Prometheus names them.
pub fn alertmanager_notifications(rules: Arc<ember_rules::RuleManager>) -> MetricsSource {
    Arc::new(move |out: &mut String| {
        let counts = rules.notification_counts();
        let rows = |f: fn(&ember_rules::NotificationCounts) -> u64| {
            counts.iter().map(move |(url, c)| (url.as_str(), f(c)))
        };
        counter_family(
            out,
            (
                "prometheus_notifications_sent_total",
                "Total number of alerts sent.",
            ),
            "alertmanager",
            rows(|c| c.sent),
        );
        counter_family(
            out,
            (
                "prometheus_notifications_errors_total",
                "Total number of errors sending alert notifications.",
            ),
            "alertmanager",
            rows(|c| c.errors),
        );
    })
}

/// Rule-group evaluation counters, as Prometheus names them (`rule_group` = `file;name`).
pub fn rule_evaluations(rules: Arc<ember_rules::RuleManager>) -> MetricsSource {
    Arc::new(move |out: &mut String| {
        let counts = rules.evaluation_counts();
        let rows = |f: fn(&ember_rules::EvaluationCounts) -> u64| {
            counts.iter().map(move |(group, c)| (group.as_str(), f(c)))
        };
        counter_family(
            out,
            (
                "prometheus_rule_group_iterations_total",
                "The total number of scheduled rule group evaluations.",
            ),
            "rule_group",
            rows(|c| c.iterations),
        );
        counter_family(
            out,
            (
                "prometheus_rule_evaluations_total",
                "The total number of rule evaluations.",
            ),
            "rule_group",
            rows(|c| c.rule_evaluations),
        );
        counter_family(
            out,
            (
                "prometheus_rule_evaluation_failures_total",
                "The total number of rule evaluation failures.",
            ),
            "rule_group",
            rows(|c| c.rule_failures),
        );
    })
}

/// Notifications of the built-in notifier per integration, as Alertmanager names them.
pub fn builtin_notifications(n: Arc<ember_alertmanager::Notifier>) -> MetricsSource {
    Arc::new(move |out: &mut String| {
        let counts = n.notification_counts();
        let rows = |f: fn(&ember_alertmanager::NotificationCounts) -> u64| {
            counts
                .iter()
                .map(move |(integration, c)| (*integration, f(c)))
        };
        counter_family(
            out,
            (
                "alertmanager_notifications_total",
                "The total number of attempted notifications.",
            ),
            "integration",
            rows(|c| c.total),
        );
        counter_family(
            out,
            (
                "alertmanager_notifications_failed_total",
                "The total number of failed notifications.",
            ),
            "integration",
            rows(|c| c.failed),
        );
    })
}
