//! `ember-cloudwatch-fn`: the CloudWatch import Lambda function. EventBridge Scheduler fires
//! it (`rate(5 minutes)`); each invocation runs the `ember.cloudwatch` jobs whose interval
//! has come round since their last pass (`Importer::run_due`): ListMetrics discovery,
//! batched GetMetricData, samples appended under YACE's names, watermarks in the
//! StateStore (`cloudwatch/<job>/<region>`) so overlapping windows never import twice.
//!
//! A function of its own, not part of the scrape function: only it holds
//! `cloudwatch:GetMetricData` / `cloudwatch:ListMetrics` (and `sts:AssumeRole` for
//! `role_arn`s), only it links `aws-sdk-cloudwatch`, and it runs on CloudWatch's schedule
//! rather than every minute. The configuration (`EMBER_CONFIG`) is re-read when it changes;
//! without CloudWatch jobs an invocation returns at once.

use std::sync::Arc;
use std::time::SystemTime;

use ember_cloudwatch::{ClientProvider, Importer, SdkClients};
use ember_runtime::lambda::{Invocation, run_scheduled};
use ember_runtime::{ConfigLoader, Process, RuntimeSettings};
use tokio::sync::Mutex;

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
enum CloudWatchFnError {
    #[error("configuration: {0}")]
    Config(#[from] ember_runtime::ConfigLoadError),
}

struct CloudWatchFn {
    process: Process,
    /// Clients per region and role, kept across invocations and configuration reloads.
    clients: Arc<dyn ClientProvider>,
    loader: Mutex<ConfigLoader>,
    importer: Mutex<Option<Importer>>,
}

impl CloudWatchFn {
    async fn handle(&self, inv: Invocation) -> Result<serde_json::Value, CloudWatchFnError> {
        let mut importer = self.importer.lock().await;
        match self.loader.lock().await.poll().await {
            Ok(Some(loaded)) => {
                let jobs = loaded.config.ember.cloudwatch.jobs.clone();
                tracing::info!(config = %loaded.location, jobs = jobs.len(), "cloudwatch configuration loaded");
                *importer = Some(Importer::new(
                    jobs,
                    self.clients.clone(),
                    self.process.state.clone(),
                    self.process.storage.clone(),
                    ember_model::DEFAULT_TENANT,
                ));
            }
            Ok(None) => {}
            Err(e) if importer.is_some() => {
                tracing::warn!(error = %e, "configuration reload failed; keeping the running one");
            }
            Err(e) => return Err(e.into()),
        }
        let Some(imp) = importer.as_ref().filter(|i| !i.jobs().is_empty()) else {
            return Ok(serde_json::json!({"jobs": 0}));
        };
        // Windows end at `now − delay` rounded down to the period, so the wall clock decides
        // (an event's scheduled time can be minutes old when Lambda retries it).
        let report = imp.run_due(SystemTime::now()).await;
        let errors = report.errors();
        tracing::info!(
            request_id = %inv.request_id,
            regions = report.regions.len(),
            samples = report.samples(),
            duplicates = report.duplicates(),
            metrics_requested = report.metrics_requested(),
            errors = errors.len(),
            "cloudwatch import done"
        );
        Ok(serde_json::json!({
            "jobs_run": report.regions.iter().map(|r| format!("{}/{}", r.job, r.region)).collect::<Vec<_>>(),
            "samples": report.samples(),
            "duplicates": report.duplicates(),
            "metrics_requested": report.metrics_requested(),
            "errors": errors,
        }))
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ember_runtime::lambda::init_tracing();
    let process = Process::open(RuntimeSettings::from_env()?).await?;
    tracing::info!(storage = %process.description, "ember-cloudwatch-fn ready");
    let clients: Arc<dyn ClientProvider> =
        Arc::new(SdkClients::new(process.aws.sdk().await.clone()));
    let handler = Arc::new(CloudWatchFn {
        loader: Mutex::new(process.config_loader()),
        clients,
        process,
        importer: Mutex::new(None),
    });
    run_scheduled(|inv| {
        let handler = handler.clone();
        async move { handler.handle(inv).await }
    })
    .await
}
