//! `ember-rules-fn`: the rules Lambda function. EventBridge Scheduler fires it every
//! minute; one invocation evaluates what is due and keeps evaluating sub-minute groups at
//! their aligned times until the next invocation starts (or the deadline minus a margin).
//! Recording-rule results go back into the storage; alert state (pending/firing, active
//! since, last sent, `keep_firing_for`) lives in the StateStore under `rules/<group>`, so
//! it survives cold starts. Alerts go to `alerting.alertmanagers` of the configuration.
//!
//! The configuration (`EMBER_CONFIG`, with its `rule_files`) is read at the first
//! invocation and re-read when it changes. Without one there are no rules.

use std::sync::Arc;
use std::time::Duration;

use ember_rules::{ManagerOptions, RuleManager};
use ember_runtime::lambda::{Invocation, run_scheduled};
use ember_runtime::{ConfigLoader, Process, RuntimeSettings, SharedStateStore};
use tokio::sync::Mutex;

/// The schedule's period (EventBridge `rate(1 minute)`).
const PERIOD: Duration = Duration::from_secs(60);
/// Kept free before the deadline: one more evaluation and its state write.
const MARGIN: Duration = Duration::from_secs(10);

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
enum RulesFnError {
    #[error("configuration: {0}")]
    Config(#[from] ember_runtime::ConfigLoadError),
    #[error("rules: {0}")]
    Rules(#[from] ember_rules::RulesError),
}

struct Rules {
    manager: Arc<RuleManager>,
    loader: Mutex<ConfigLoader>,
    /// Whether a configuration has been applied and the alert state restored.
    ready: Mutex<bool>,
}

impl Rules {
    async fn handle(&self, inv: Invocation) -> Result<serde_json::Value, RulesFnError> {
        let mut ready = self.ready.lock().await;
        let polled = self.loader.lock().await.poll().await;
        match polled {
            Ok(Some(loaded)) => match self.manager.load_config(&loaded.config, &loaded.base_dir) {
                Ok(()) => tracing::info!(
                    config = %loaded.location,
                    groups = self.manager.groups().len(),
                    "rules loaded"
                ),
                Err(e) if *ready => {
                    tracing::warn!(error = %e, "new rules rejected; keeping the running ones")
                }
                Err(e) => return Err(e.into()),
            },
            Ok(None) => {}
            Err(e) if *ready => {
                tracing::warn!(error = %e, "configuration reload failed; keeping the running one");
            }
            Err(e) => return Err(e.into()),
        }
        if !*ready {
            // Cold start: alert state (pending since, firing, last sent) from the store.
            self.manager.restore_all().await;
            *ready = true;
        }
        let window = inv.window(PERIOD, MARGIN);
        let reports = self.manager.run_pass(window.until).await;
        let samples: usize = reports.iter().map(|r| r.samples_written).sum();
        let errors: usize = reports.iter().map(|r| r.rule_errors.len()).sum();
        let alerts: usize = reports.iter().map(|r| r.alerts_sent.len()).sum();
        for r in &reports {
            for (rule, err) in &r.rule_errors {
                tracing::warn!(group = %r.group, rule = %rule, error = %err, "rule failed");
            }
        }
        tracing::info!(
            evaluations = reports.len(),
            samples,
            errors,
            alerts,
            "rules window done"
        );
        Ok(serde_json::json!({
            "groups": self.manager.groups().len(),
            "evaluations": reports.len(),
            "samples_written": samples,
            "rule_errors": errors,
            "alerts_sent": alerts,
            "until_ms": ember_runtime::window::epoch_ms(window.until),
        }))
    }
}

/// Hook for the built-in notifier (`EMBER_ALERTMANAGER_CONFIG`, crate
/// `ember-alertmanager`): it attaches to the manager as an alert sink. Until that crate is
/// wired here, a set variable is reported loudly instead of being ignored silently.
fn attach_builtin_notifier(settings: &RuntimeSettings, _manager: &RuleManager) {
    if let Some(loc) = &settings.alertmanager_config {
        tracing::error!(
            location = %loc,
            "EMBER_ALERTMANAGER_CONFIG is set but this build has no built-in notifier; \
             alerts go only to alerting.alertmanagers"
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ember_runtime::lambda::init_tracing();
    let process = Process::open(RuntimeSettings::from_env()?).await?;
    tracing::info!(storage = %process.description, "ember-rules-fn ready");
    let mut opts = ManagerOptions::default();
    if let Some(url) = &process.settings.external_url {
        opts.external_url = url.clone();
    }
    let manager = Arc::new(RuleManager::new(
        process.storage.clone(),
        Arc::new(ember_promql::Engine::default()),
        Arc::new(SharedStateStore(process.state.clone())),
        opts,
    ));
    attach_builtin_notifier(&process.settings, &manager);
    let rules = Arc::new(Rules {
        manager,
        loader: Mutex::new(process.config_loader()),
        ready: Mutex::new(false),
    });
    run_scheduled(|inv| {
        let rules = rules.clone();
        async move { rules.handle(inv).await }
    })
    .await
}
