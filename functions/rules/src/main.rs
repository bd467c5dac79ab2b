//! `ember-rules-fn`: the rules Lambda function. EventBridge Scheduler fires it every
//! minute; one invocation evaluates what is due and keeps evaluating sub-minute groups at
//! their aligned times until the next invocation starts (or the deadline minus a margin).
//! Recording-rule results go back into the storage; alert state (pending/firing, active
//! since, last sent, `keep_firing_for`) lives in the StateStore under `rules/<group>`, so
//! it survives cold starts. Alerts go to `alerting.alertmanagers` of the configuration and,
//! with `EMBER_ALERTMANAGER_CONFIG`, to the built-in notifier (`ember-alertmanager`), which
//! flushes every few seconds through the window with its state in the same StateStore.
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

/// How often the built-in notifier sends what is due within one window.
const NOTIFY_TICK: Duration = Duration::from_secs(5);

struct Rules {
    manager: Arc<RuleManager>,
    /// The built-in notifier, when `EMBER_ALERTMANAGER_CONFIG` is set.
    notifier: Option<Arc<ember_alertmanager::Notifier>>,
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
        let notify = async {
            match &self.notifier {
                Some(n) => n.run_until(window.until, NOTIFY_TICK).await,
                None => Vec::new(),
            }
        };
        let (reports, flushes) = tokio::join!(self.manager.run_pass(window.until), notify);
        let notifications: usize = flushes
            .iter()
            .map(|f| f.as_ref().map_or(0, |r| r.sent))
            .sum();
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
            notifications,
            "rules window done"
        );
        Ok(serde_json::json!({
            "groups": self.manager.groups().len(),
            "evaluations": reports.len(),
            "samples_written": samples,
            "rule_errors": errors,
            "alerts_sent": alerts,
            "notifications_sent": notifications,
            "until_ms": ember_runtime::window::epoch_ms(window.until),
        }))
    }
}

/// The built-in notifier (`EMBER_ALERTMANAGER_CONFIG`: a file or `ssm:/name`), attached to
/// the manager as its alert sink. A broken notifier config fails the cold start loudly
/// rather than dropping notifications silently.
async fn attach_builtin_notifier(
    process: &Process,
    manager: &RuleManager,
    external_url: &str,
) -> Result<Option<Arc<ember_alertmanager::Notifier>>, ember_alertmanager::Error> {
    let Some(loc) = &process.settings.alertmanager_config else {
        return Ok(None);
    };
    let n = Arc::new(
        ember_alertmanager::Notifier::from_location(
            &loc.to_string(),
            process.state.clone(),
            external_url,
        )
        .await?,
    );
    manager.set_sink(Some(n.clone()));
    tracing::info!(location = %loc, "built-in notifier enabled");
    Ok(Some(n))
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
    let external_url = opts.external_url.clone();
    let manager = Arc::new(RuleManager::new(
        process.storage.clone(),
        Arc::new(ember_promql::Engine::default()),
        Arc::new(SharedStateStore(process.state.clone())),
        opts,
    ));
    let notifier = attach_builtin_notifier(&process, &manager, &external_url).await?;
    let rules = Arc::new(Rules {
        manager,
        notifier,
        loader: Mutex::new(process.config_loader()),
        ready: Mutex::new(false),
    });
    run_scheduled(|inv| {
        let rules = rules.clone();
        async move { rules.handle(inv).await }
    })
    .await
}
