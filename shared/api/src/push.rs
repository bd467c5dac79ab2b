//! A Pushgateway-compatible push endpoint for batch jobs and functions that cannot be
//! scraped: `PUT`/`POST`/`DELETE /metrics/job/<job>{/<label>/<value>}` with a text
//! exposition body, as the Pushgateway docs show it with curl.
//!
//! How Ember differs from a Pushgateway (documented in the README): pushed samples are
//! stored at push time, stamped with the push time, like a scrape that happened then;
//! nothing is re-served afterwards, so a pushed series ends (after the 5-minute
//! lookback) unless it is pushed again. `PUT` and `POST` therefore behave the same, and
//! `DELETE` is accepted (202) without storing anything. As in the Pushgateway, the
//! grouping labels from the path are set on every pushed series (they win over labels in
//! the body), and each push records `push_time_seconds` for its group.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use ember_formats::exposition::{Format, parse_all};
use ember_model::{Labels, METRIC_NAME, MetricMetadata, MetricType, Sample, Series};
use ember_storage::AppendBatch;

use crate::{SharedState, Tenant, telemetry};

/// Largest push body accepted.
const MAX_PUSH_BYTES: usize = 16 << 20;

fn client_error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, format!("{msg}\n")).into_response()
}

/// Parses `<job>{/<label>/<value>}` (with `@base64` suffixes on names meaning a
/// base64url-encoded value) into grouping labels.
fn grouping_labels(job_is_base64: bool, rest: &str) -> Result<Vec<(String, String)>, String> {
    let decode = |v: &str, b64: bool| -> Result<String, String> {
        if !b64 {
            return Ok(v.to_string());
        }
        let bytes = base64::engine::general_purpose::URL_SAFE
            .decode(v)
            .or_else(|_| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v.trim_end_matches('='))
            })
            .map_err(|e| format!("invalid base64 value {v:?}: {e}"))?;
        String::from_utf8(bytes).map_err(|_| format!("base64 value {v:?} is not UTF-8"))
    };
    let mut parts = rest.split('/');
    let job = decode(parts.next().unwrap_or(""), job_is_base64)?;
    if job.is_empty() {
        return Err("job name is required".into());
    }
    let mut labels = vec![("job".to_string(), job)];
    let rest: Vec<&str> = parts.collect();
    if !rest.len().is_multiple_of(2) {
        return Err(format!(
            "grouping labels must come in /name/value pairs, got {:?}",
            rest.join("/")
        ));
    }
    for pair in rest.chunks_exact(2) {
        let (name, b64) = match pair[0].strip_suffix("@base64") {
            Some(n) => (n, true),
            None => (pair[0], false),
        };
        if name.is_empty() || name == METRIC_NAME {
            return Err(format!("invalid grouping label name {name:?}"));
        }
        labels.push((name.to_string(), decode(pair[1], b64)?));
    }
    Ok(labels)
}

/// `PUT`/`POST`/`DELETE /metrics/job/<job>{/<label>/<value>}`.
pub async fn push(
    State(state): State<SharedState>,
    tenant: Tenant,
    method: Method,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    push_group(state, tenant, method, false, rest, headers, body).await
}

/// The same with a base64url-encoded job name (`/metrics/job@base64/<job>…`).
pub async fn push_base64_job(
    State(state): State<SharedState>,
    tenant: Tenant,
    method: Method,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    push_group(state, tenant, method, true, rest, headers, body).await
}

async fn push_group(
    state: SharedState,
    tenant: Tenant,
    method: Method,
    job_is_base64: bool,
    rest: String,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let grouping = match grouping_labels(job_is_base64, &rest) {
        Ok(g) => g,
        Err(e) => return client_error(StatusCode::BAD_REQUEST, e),
    };
    if method == Method::DELETE {
        return StatusCode::ACCEPTED.into_response();
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type.is_some_and(|ct| ct.contains("protobuf")) {
        return client_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the protobuf push format is not supported; push the text exposition format",
        );
    }
    let format = Format::from_content_type(content_type, Some(Format::PrometheusText))
        .unwrap_or(Format::PrometheusText);
    let bytes = match axum::body::to_bytes(body, MAX_PUSH_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return client_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("push body exceeds {MAX_PUSH_BYTES} bytes"),
            );
        }
    };
    let page = match parse_all(&bytes, format) {
        Ok(p) => p,
        Err(e) => return client_error(StatusCode::BAD_REQUEST, format!("invalid push body: {e}")),
    };
    if let Some(s) = page.samples.iter().find(|s| s.timestamp_ms.is_some()) {
        return client_error(
            StatusCode::BAD_REQUEST,
            format!(
                "pushed metrics must not have timestamps (series {})",
                s.labels
            ),
        );
    }
    let now = crate::params::now_ms();
    let with_group = |labels: &Labels| {
        let mut b = labels.to_builder();
        for (n, v) in &grouping {
            b.set(n.as_str(), v.as_str());
        }
        b.build()
    };
    let mut series: Vec<Series> = page
        .samples
        .iter()
        .map(|s| Series::new(with_group(&s.labels), vec![Sample::new(now, s.value)]))
        .collect();
    let mut push_time =
        Labels::from_pairs(grouping.iter().map(|(n, v)| (n.as_str(), v.as_str()))).to_builder();
    push_time.set(METRIC_NAME, "push_time_seconds");
    series.push(Series::new(
        push_time.build(),
        vec![Sample::new(now, now as f64 / 1000.0)],
    ));
    let mut metadata = page.metadata;
    metadata.push(MetricMetadata {
        metric_family_name: "push_time_seconds".into(),
        metric_type: MetricType::Gauge,
        help: "Last Unix time when this group was changed in the Pushgateway.".into(),
        unit: String::new(),
    });
    let samples = series.len() as u64;
    match state
        .storage
        .append(&tenant.0, AppendBatch { series, metadata })
        .await
    {
        Ok(_) => {
            telemetry::add(&state.metrics.samples_ingested, samples);
            StatusCode::OK.into_response()
        }
        Err(e) => {
            let err = crate::ApiError::from_storage(e);
            (err.status, format!("{}\n", err.message)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_keys() {
        assert_eq!(
            grouping_labels(false, "backup/instance/db1").unwrap(),
            vec![
                ("job".into(), "backup".into()),
                ("instance".into(), "db1".into())
            ]
        );
        // "/var/tmp" as base64url, as the Pushgateway docs show it.
        assert_eq!(
            grouping_labels(false, "x/path@base64/L3Zhci90bXA=").unwrap()[1].1,
            "/var/tmp"
        );
        assert!(grouping_labels(false, "x/dangling").is_err());
        assert!(grouping_labels(false, "").is_err());
    }
}
