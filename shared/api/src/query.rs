//! `/api/v1/query` and `/api/v1/query_range`.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use ember_promql::{QueryOptions, QueryResult};

use crate::error::ApiError;
use crate::json;
use crate::params::{Params, now_ms, parse_duration, time_param};
use crate::{SharedState, Tenant, telemetry};

/// Prometheus' limit on points per series in a range query.
const MAX_POINTS: i64 = 11_000;

fn query_options(p: &Params) -> Result<QueryOptions, ApiError> {
    let mut opts = QueryOptions::default();
    if let Some(t) = p.get_non_empty("timeout") {
        let ms = parse_duration(t).map_err(|e| ApiError::invalid_param("timeout", e))?;
        opts.timeout = Some(std::time::Duration::from_millis(ms.max(0) as u64));
    }
    if let Some(l) = p.get_non_empty("lookback_delta") {
        let ms = parse_duration(l).map_err(|e| ApiError::invalid_param("lookback_delta", e))?;
        opts.lookback_delta_ms = Some(ms);
    }
    Ok(opts)
}

fn query_param(p: &Params) -> Result<&str, ApiError> {
    p.get("query")
        .ok_or_else(|| ApiError::invalid_param("query", "query parameter is required"))
}

pub(crate) fn json_response(body: String) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Counts a query and its duration in the self-monitoring metrics.
fn observe<T, E>(
    state: &SharedState,
    kind: telemetry::QueryKind,
    started: std::time::Instant,
    r: &Result<T, E>,
) {
    state
        .metrics
        .observe_query(kind, started.elapsed(), r.is_err());
}

fn render(result: QueryResult) -> Response {
    let mut data = String::new();
    json::write_query_data(&mut data, &result.value);
    json_response(json::success_envelope(
        &data,
        &result.warnings,
        &result.infos,
    ))
}

/// An instant query.
pub async fn instant(
    State(state): State<SharedState>,
    tenant: Tenant,
    p: Params,
) -> Result<Response, ApiError> {
    let query = query_param(&p)?;
    let t = time_param(&p, "time", now_ms())?;
    let opts = query_options(&p)?;
    let started = std::time::Instant::now();
    let result = state
        .engine
        .instant_query(state.storage.as_ref(), &tenant.0, query, t, &opts)
        .await;
    observe(&state, telemetry::QueryKind::Instant, started, &result);
    let result = result.map_err(ApiError::from_promql)?;
    Ok(render(result))
}

/// A range query.
pub async fn range(
    State(state): State<SharedState>,
    tenant: Tenant,
    p: Params,
) -> Result<Response, ApiError> {
    let query = query_param(&p)?;
    let required = |name: &str| -> Result<i64, ApiError> {
        let s = p
            .get("start")
            .filter(|_| name == "start")
            .or_else(|| p.get("end").filter(|_| name == "end"));
        match s {
            Some(s) => crate::params::parse_time(s).map_err(|e| ApiError::invalid_param(name, e)),
            None => Err(ApiError::invalid_param(
                name,
                "cannot parse \"\" to a valid timestamp",
            )),
        }
    };
    let start = required("start")?;
    let end = required("end")?;
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step = match p.get("step") {
        Some(s) => parse_duration(s).map_err(|e| ApiError::invalid_param("step", e))?,
        None => {
            return Err(ApiError::invalid_param(
                "step",
                "cannot parse \"\" to a valid duration",
            ));
        }
    };
    if step <= 0 {
        return Err(ApiError::invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let opts = query_options(&p)?;
    let started = std::time::Instant::now();
    let result = state
        .engine
        .range_query(
            state.storage.as_ref(),
            &tenant.0,
            query,
            start,
            end,
            step,
            &opts,
        )
        .await;
    observe(&state, telemetry::QueryKind::Range, started, &result);
    let result = result.map_err(ApiError::from_promql)?;
    Ok(render(result))
}
