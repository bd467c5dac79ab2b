//! Request parameters with Go `net/http` `FormValue` semantics, and Prometheus'
//! timestamp and duration parsing.
//!
//! Grafana sends POST form bodies and may add parameters to the URL of the same
//! request: both are read, the body first (its value wins), then the URL.

use axum::body::Body;
use axum::extract::FromRequest;
use axum::http::{Method, Request, header};

use crate::error::ApiError;

/// Largest form body accepted on query endpoints.
const MAX_FORM_BYTES: usize = 8 << 20;

/// All parameters of a request: body pairs first, then URL query pairs.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parameters from raw pairs (body first, then URL).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// The first value of `name` (Go's `FormValue`); `None` when absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first non-empty value of `name`.
    pub fn get_non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// All pairs, body first, then URL.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Every value of `name`, body values first.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let mut pairs = Vec::new();
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        if is_form && matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
            let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
                .await
                .map_err(|e| ApiError::bad_data(format!("error parsing form body: {e}")))?;
            pairs.extend(form_urlencoded::parse(&bytes).into_owned());
        }
        if let Some(q) = parts.uri.query() {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Ok(Params(pairs))
    }
}

/// The smallest timestamp Prometheus clients send for "no start" (Go's MinTime), in ms.
pub const MIN_TIME_MS: i64 = (i64::MIN / 1000 + 62_135_596_801) * 1000;
/// The largest timestamp (Go's MaxTime), in ms.
pub const MAX_TIME_MS: i64 = (i64::MAX / 1000 - 62_135_596_801) * 1000 + 999;

/// Parses `<rfc3339 | unix_timestamp>` into ms, as Prometheus' `parseTime` does:
/// float seconds rounded to milliseconds, else RFC 3339, else the MinTime/MaxTime strings.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>()
        && !s.eq_ignore_ascii_case("nan")
        && !s.to_ascii_lowercase().contains("inf")
    {
        let secs = f.trunc();
        let ms = ((f - secs) * 1000.0).round();
        let total = secs * 1000.0 + ms;
        if total.is_finite() {
            return Ok(total.clamp(i64::MIN as f64, i64::MAX as f64) as i64);
        }
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    match s {
        "-292273086-05-16T16:47:06Z" => Ok(MIN_TIME_MS),
        "292277025-08-18T07:12:54.999999999Z" => Ok(MAX_TIME_MS),
        _ => Err(format!("cannot parse {s:?} to a valid timestamp")),
    }
}

/// Parses an optional time parameter, with `default` when absent or empty.
pub fn time_param(p: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match p.get_non_empty(name) {
        None => Ok(default),
        Some(s) => parse_time(s).map_err(|e| ApiError::invalid_param(name, e)),
    }
}

/// Parses `<duration | float seconds>` into ms, as Prometheus' `parseDuration` does.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = f * 1000.0;
        if !ms.is_finite() || ms.abs() >= (i64::MAX / 1_000_000) as f64 {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok(ms.round() as i64);
    }
    ember_config::duration::parse_prom_duration_ms(s)
        .map(|ms| ms as i64)
        .map_err(|_| format!("cannot parse {s:?} to a valid duration"))
}

/// The current time in ms.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1435781451.781").unwrap(), 1_435_781_451_781);
        assert_eq!(parse_time("4").unwrap(), 4000);
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z").unwrap(),
            1_435_781_451_781
        );
        assert_eq!(
            parse_time("-292273086-05-16T16:47:06Z").unwrap(),
            MIN_TIME_MS
        );
        assert!(parse_time("yesterday").is_err());
        // Grafana's exemplar probe sends milliseconds as seconds: accept, do not fail.
        assert!(parse_time("1763800000000").is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15").unwrap(), 15_000);
        assert_eq!(parse_duration("0.5").unwrap(), 500);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000);
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn body_values_come_first() {
        let p = Params::from_pairs(vec![
            ("q".into(), "body".into()),
            ("q".into(), "url".into()),
        ]);
        assert_eq!(p.get("q"), Some("body"));
        assert_eq!(p.get_all("q"), vec!["body", "url"]);
    }
}
