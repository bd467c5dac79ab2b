//! `POST /api/v1/write` and `/workspaces/<id>/api/v1/remote_write`: the remote-write receiver.
//!
//! Status policy (see DESIGN.md): bad data 4xx (the sender drops it), overload and
//! storage faults 5xx (the sender retries), never 429. A 2xx means durable.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ember_formats::remote::{self, Protocol, RemoteWriteError};
use ember_storage::AppendBatch;

use crate::error::ApiError;
use crate::{SharedState, Tenant, telemetry};

fn write_error(state: &SharedState, e: RemoteWriteError) -> Response {
    let status = StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::BAD_REQUEST);
    state.metrics.observe_write_rejected(status.as_u16());
    tracing::debug!(error = %e, "remote write refused");
    (status, format!("{e}\n")).into_response()
}

/// Receives one remote-write request (1.0 or 2.0) and stores it durably.
pub async fn remote_write(
    State(state): State<SharedState>,
    tenant: Tenant,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let header_str = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(enc) = header_str(header::CONTENT_ENCODING)
        .map(str::trim)
        .filter(|e| !e.is_empty())
        && !enc.eq_ignore_ascii_case("snappy")
    {
        return write_error(
            &state,
            RemoteWriteError::UnsupportedEncoding(enc.to_string()),
        );
    }
    let protocol = match remote::protocol_from_content_type(header_str(header::CONTENT_TYPE)) {
        Ok(p) => p,
        Err(e) => return write_error(&state, e),
    };
    let limits = state.write_limits;
    if let Some(len) = header_str(header::CONTENT_LENGTH).and_then(|l| l.parse::<usize>().ok())
        && len > limits.max_body_bytes
    {
        return write_error(
            &state,
            RemoteWriteError::TooLarge {
                size: len,
                limit: limits.max_body_bytes,
                what: "request body",
            },
        );
    }
    let bytes = match axum::body::to_bytes(body, limits.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return write_error(
                &state,
                RemoteWriteError::TooLarge {
                    size: limits.max_body_bytes + 1,
                    limit: limits.max_body_bytes,
                    what: "request body",
                },
            );
        }
    };
    let decoded = match remote::decode_request(&bytes, protocol, limits.max_decoded_bytes) {
        Ok(d) => d,
        Err(e) => return write_error(&state, e),
    };
    let samples = decoded.sample_count();
    let batch = AppendBatch {
        series: decoded.series,
        metadata: decoded.metadata,
    };
    if let Err(e) = state.storage.append(&tenant.0, batch).await {
        tracing::warn!(error = %e, tenant = %tenant.0, "remote write failed");
        state.metrics.observe_write_failed(&e, samples);
        let err = ApiError::from_storage(e);
        return (err.status, format!("{}\n", err.message)).into_response();
    }
    telemetry::inc(&state.metrics.write_requests);
    telemetry::add(&state.metrics.samples_ingested, samples as u64);
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if protocol == Protocol::V2 {
        let h = resp.headers_mut();
        h.insert(remote::HEADER_SAMPLES_WRITTEN, HeaderValue::from(samples));
        h.insert(remote::HEADER_HISTOGRAMS_WRITTEN, HeaderValue::from(0));
        h.insert(remote::HEADER_EXEMPLARS_WRITTEN, HeaderValue::from(0));
    }
    resp
}
