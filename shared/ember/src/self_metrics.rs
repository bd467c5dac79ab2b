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

/// Alerts sent to each Alertmanager and failed POSTs, as Prometheus names them.
pub fn alertmanager_notifications(rules: Arc<ember_rules::RuleManager>) -> MetricsSource {
    Arc::new(move |out: &mut String| {
        let counts = rules.notification_counts();
        family(
            out,
            "prometheus_notifications_sent_total",
            "counter",
            "Total number of alerts sent.",
        );
        for (url, c) in &counts {
            sample(
                out,
                "prometheus_notifications_sent_total",
                &[("alertmanager", url)],
                c.sent as f64,
            );
        }
        family(
            out,
            "prometheus_notifications_errors_total",
            "counter",
            "Total number of errors sending alert notifications.",
        );
        for (url, c) in &counts {
            sample(
                out,
                "prometheus_notifications_errors_total",
                &[("alertmanager", url)],
                c.errors as f64,
            );
        }
    })
}

/// Notifications of the built-in notifier per integration, as Alertmanager names them.
pub fn builtin_notifications(n: Arc<ember_alertmanager::Notifier>) -> MetricsSource {
    Arc::new(move |out: &mut String| {
        let counts = n.notification_counts();
        family(
            out,
            "alertmanager_notifications_total",
            "counter",
            "The total number of attempted notifications.",
        );
        for (integration, c) in &counts {
            sample(
                out,
                "alertmanager_notifications_total",
                &[("integration", integration)],
                c.total as f64,
            );
        }
        family(
            out,
            "alertmanager_notifications_failed_total",
            "counter",
            "The total number of failed notifications.",
        );
        for (integration, c) in &counts {
            sample(
                out,
                "alertmanager_notifications_failed_total",
                &[("integration", integration)],
                c.failed as f64,
            );
        }
    })
}
