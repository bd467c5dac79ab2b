//! `ember-query`: the query Lambda function. API Gateway (HTTP API, payload v2) →
//! `ember_api::router` (the whole Prometheus HTTP API) → response. Storage is opened once
//! per container from the environment (`EMBER_TABLE`/`EMBER_BUCKET`, else embedded
//! storage in `EMBER_DATA_DIR`); see docs/LAMBDA.md.

use ember_runtime::{Process, RuntimeSettings};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    ember_runtime::lambda::init_tracing();
    let process = Process::open(RuntimeSettings::from_env()?).await?;
    tracing::info!(storage = %process.description, "ember-query ready");
    let auth = ember_runtime::http::auth(&process).await?;
    // Alertmanager-compatible silences, in the state store the rules function's notifier
    // reads them from.
    let silences =
        ember_alertmanager::api::router(ember_alertmanager::Silences::new(process.state.clone()));
    ember_runtime::http::run(ember_runtime::http::app_with(&process, auth, silences)).await
}
