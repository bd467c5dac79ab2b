//! `/api/v1/format_query`: the query pretty-printed, as Prometheus' `expr.Pretty(0)`
//! does (Prometheus 2.38+), so the Prometheus UI's "format expression" button and
//! promtool-style tooling work against Ember.

use axum::response::Response;

use crate::error::ApiError;
use crate::json;
use crate::params::Params;
use crate::query::json_response;

/// Parses `query` and returns its pretty-printed form (lines split at 100 characters,
/// two-space indentation, comments dropped). A parse error is the message Ember's
/// parser gives.
pub fn format_query(query: &str) -> Result<String, String> {
    let expr = promql_parser::parser::parse(query)?;
    Ok(expr.prettify())
}

/// `GET|POST /api/v1/format_query?query=…`: `data` is the formatted string; a query that
/// does not parse is a 400 `bad_data`, as in Prometheus.
pub async fn handler(p: Params) -> Result<Response, ApiError> {
    let query = p.get("query").unwrap_or("");
    let formatted = format_query(query).map_err(|e| ApiError::invalid_param("query", e))?;
    let mut data = String::with_capacity(formatted.len() + 2);
    json::write_str(&mut data, &formatted);
    Ok(json_response(json::success_envelope(&data, &[], &[])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_prometheus() {
        assert_eq!(
            format_query("sum by(job)(rate(http_requests_total{job=\"api\"}[5m]))").unwrap(),
            "sum by (job) (rate(http_requests_total{job=\"api\"}[5m]))"
        );
        assert_eq!(format_query("1+1").unwrap(), "1 + 1");
        assert_eq!(format_query("up # comment").unwrap(), "up");
        assert!(format_query("sum(").is_err());
        assert!(format_query("").is_err());
    }
}
