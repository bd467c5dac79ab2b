//! `ember-ingest`: the remote-write Lambda function. API Gateway (HTTP API, payload v2;
//! binary bodies arrive base64-encoded and `lambda_http` decodes them) →
//! `ember_api::router` → 204. Bodies above what API Gateway can carry (~4.4 MB of snappy)
//! get a 413 naming the limit. Storage is opened once per container; see docs/LAMBDA.md.

use ember_runtime::{Process, RuntimeSettings};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    ember_runtime::lambda::init_tracing();
    let process = Process::open(RuntimeSettings::from_env()?).await?;
    tracing::info!(storage = %process.description, "ember-ingest ready");
    let auth = ember_runtime::http::auth(&process).await?;
    ember_runtime::http::run(ember_runtime::http::ingest_app(&process, auth)).await
}
