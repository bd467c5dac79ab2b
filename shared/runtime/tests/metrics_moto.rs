//! `/metrics` of an HTTP function over the AWS backend (real moto DynamoDB and S3): the
//! backend's requests and bytes by store kind, billed DynamoDB units and the modeled
//! request cost appear after a remote write.
#![cfg(feature = "http")]

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use ember_runtime::aws::AwsContext;
use ember_runtime::{Process, RuntimeSettings};
use ember_storage_aws::testing::Moto;
use tower::ServiceExt;

fn value(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} not in /metrics:\n{page}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_function_metrics_show_backend_usage_and_cost() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let settings = RuntimeSettings::from_lookup(|k| match k {
        "EMBER_STORAGE" => Some("aws".into()),
        "EMBER_TABLE" => Some("ember-metrics".into()),
        "EMBER_BUCKET" => Some("ember-metrics".into()),
        "EMBER_CREATE_RESOURCES" => Some("true".into()),
        _ => None,
    })
    .expect("settings");
    let process = Process::open_with(settings, Arc::new(AwsContext::with_config(sdk)))
        .await
        .expect("open the AWS backend on moto");
    let app = ember_runtime::http::app(&process, None);

    // One sample through the API's text push route (stored like remote write).
    let push = Request::post("/metrics/job/batch")
        .body(Body::from("backup_last_success_timestamp_seconds 1.7e9\n"))
        .expect("request");
    let resp = app.clone().oneshot(push).await.expect("push");
    assert!(resp.status().is_success(), "{}", resp.status());

    let resp = app
        .oneshot(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("/metrics");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .expect("body");
    let page = String::from_utf8_lossy(&bytes);
    assert!(
        value(
            &page,
            "ember_storage_backend_bytes_total{direction=\"written\",kind=\"hot\"}"
        ) > 0.0
    );
    assert!(
        value(
            &page,
            "ember_storage_backend_requests_total{kind=\"hot\",op=\"write\"}"
        ) >= 2.0
    );
    assert!(value(&page, "ember_dynamodb_request_units_total{type=\"write\"}") >= 2.0);
    let dynamodb = value(
        &page,
        "ember_modeled_request_cost_dollars_total{service=\"dynamodb\"}",
    );
    assert!(dynamodb > 0.0 && dynamodb < 1e-3, "{dynamodb}");
}
