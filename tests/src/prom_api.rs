//! A minimal client for the Prometheus HTTP API (`/api/v1/...`), usable against Ember
//! and against a real Prometheus alike.

use crate::error::{Error, Result};
use crate::net::ensure_loopback;
use serde_json::Value;
use std::time::Duration;

/// Talks to the Prometheus query API under one loopback base URL
/// (for example `http://127.0.0.1:PORT`).
#[derive(Debug, Clone)]
pub struct PromApi {
    base: String,
    http: reqwest::blocking::Client,
}

/// One instant-vector element of a query result: its labels and `(seconds, value)`.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSample {
    /// The series' labels (including `__name__` when present).
    pub labels: serde_json::Map<String, Value>,
    /// Timestamp in seconds.
    pub time: f64,
    /// The value, parsed from Prometheus' string form (`NaN`, `+Inf` included).
    pub value: f64,
}

/// One range-vector / matrix element: labels and all `(seconds, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixSeries {
    /// The series' labels.
    pub labels: serde_json::Map<String, Value>,
    /// Points in time order.
    pub points: Vec<(f64, f64)>,
}

impl PromApi {
    /// A client for `base` (scheme, host and port, optionally a path prefix such as
    /// `/workspaces/w1`); only loopback URLs are accepted.
    pub fn new(base: &str) -> Result<Self> {
        ensure_loopback(base)?;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .map_err(|e| Error::new(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET `path` with query parameters and return the HTTP status and body text.
    pub fn get_raw(&self, path: &str, params: &[(&str, &str)]) -> Result<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .query(params)
            .send()
            .map_err(|e| Error::new(format!("GET {url} failed: {e}")))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .map_err(|e| Error::new(format!("GET {url}: reading the body failed: {e}")))?;
        Ok((status, body))
    }

    /// POST `path` with a form body and return the HTTP status and body text.
    pub fn post_form_raw(&self, path: &str, params: &[(&str, &str)]) -> Result<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .post(&url)
            .form(params)
            .send()
            .map_err(|e| Error::new(format!("POST {url} failed: {e}")))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .map_err(|e| Error::new(format!("POST {url}: reading the body failed: {e}")))?;
        Ok((status, body))
    }

    /// GET an API endpoint and return its `data`, failing on anything but a 200 with
    /// `"status": "success"`.
    pub fn get_data(&self, path: &str, params: &[(&str, &str)]) -> Result<Value> {
        let (status, body) = self.get_raw(path, params)?;
        let json: Value = serde_json::from_str(&body).map_err(|e| {
            Error::new(format!(
                "GET {}{path} {params:?}: HTTP {status}, body is not JSON ({e}): {body}",
                self.base
            ))
        })?;
        if status != 200 || json["status"] != "success" {
            return Err(Error::new(format!(
                "GET {}{path} {params:?}: HTTP {status}: {body}",
                self.base
            )));
        }
        Ok(json["data"].clone())
    }

    /// `/api/v1/query` at `time` (seconds; `None` = now); returns `data`.
    pub fn query(&self, expr: &str, time: Option<f64>) -> Result<Value> {
        let time = time.map(format_seconds);
        let mut params = vec![("query", expr)];
        if let Some(t) = time.as_deref() {
            params.push(("time", t));
        }
        self.get_data("/api/v1/query", &params)
    }

    /// `/api/v1/query` expecting an instant vector; returns its elements.
    pub fn query_vector(&self, expr: &str, time: Option<f64>) -> Result<Vec<VectorSample>> {
        let data = self.query(expr, time)?;
        if data["resultType"] != "vector" {
            return Err(Error::new(format!(
                "query {expr:?}: expected a vector, got {data}"
            )));
        }
        result_array(&data)?
            .iter()
            .map(|item| {
                let (time, value) = parse_point(&item["value"])?;
                Ok(VectorSample {
                    labels: labels_of(item),
                    time,
                    value,
                })
            })
            .collect()
    }

    /// `/api/v1/query` of a range selector (`metric[5m]`): the raw samples as a matrix.
    pub fn query_matrix(&self, expr: &str, time: Option<f64>) -> Result<Vec<MatrixSeries>> {
        let data = self.query(expr, time)?;
        parse_matrix(expr, &data)
    }

    /// `/api/v1/query_range`; returns the matrix.
    pub fn query_range(
        &self,
        expr: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<Vec<MatrixSeries>> {
        let (start, end, step) = (
            format_seconds(start),
            format_seconds(end),
            format_seconds(step),
        );
        let data = self.get_data(
            "/api/v1/query_range",
            &[
                ("query", expr),
                ("start", &start),
                ("end", &end),
                ("step", &step),
            ],
        )?;
        parse_matrix(expr, &data)
    }

    /// `/api/v1/series?match[]=...`; returns the label sets.
    pub fn series(&self, matchers: &[&str]) -> Result<Vec<serde_json::Map<String, Value>>> {
        let params: Vec<(&str, &str)> = matchers.iter().map(|m| ("match[]", *m)).collect();
        let data = self.get_data("/api/v1/series", &params)?;
        let items = data.as_array().ok_or_else(|| {
            Error::new(format!("series {matchers:?}: data is not an array: {data}"))
        })?;
        Ok(items
            .iter()
            .map(|item| item.as_object().cloned().unwrap_or_default())
            .collect())
    }

    /// `/api/v1/labels`; returns the label names.
    pub fn labels(&self) -> Result<Vec<String>> {
        strings(self.get_data("/api/v1/labels", &[])?)
    }

    /// `/api/v1/label/<name>/values`.
    pub fn label_values(&self, name: &str) -> Result<Vec<String>> {
        strings(self.get_data(&format!("/api/v1/label/{name}/values"), &[])?)
    }

    /// `/api/v1/metadata?metric=...`; returns the `data` object (family → entries).
    pub fn metadata(&self, metric: &str) -> Result<Value> {
        self.get_data("/api/v1/metadata", &[("metric", metric)])
    }

    /// The `type` Prometheus reports for a metric family, if it has metadata.
    pub fn metadata_type(&self, metric: &str) -> Result<Option<String>> {
        let data = self.metadata(metric)?;
        Ok(data[metric]
            .as_array()
            .and_then(|entries| entries.first())
            .and_then(|entry| entry["type"].as_str())
            .map(str::to_string))
    }
}

/// Seconds as Prometheus accepts them in `time`/`start`/`end` (millisecond precision).
pub fn format_seconds(seconds: f64) -> String {
    format!("{seconds:.3}")
}

/// Parses a Prometheus sample value string (`"1.5"`, `"NaN"`, `"+Inf"`, `"-Inf"`).
pub fn parse_value(text: &str) -> Result<f64> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text
            .parse::<f64>()
            .map_err(|e| Error::new(format!("bad sample value {text:?}: {e}"))),
    }
}

fn parse_point(point: &Value) -> Result<(f64, f64)> {
    let time = point[0]
        .as_f64()
        .ok_or_else(|| Error::new(format!("bad point timestamp in {point}")))?;
    let value = point[1]
        .as_str()
        .ok_or_else(|| Error::new(format!("sample value is not a string in {point}")))?;
    Ok((time, parse_value(value)?))
}

fn result_array(data: &Value) -> Result<&Vec<Value>> {
    data["result"]
        .as_array()
        .ok_or_else(|| Error::new(format!("result is not an array: {data}")))
}

fn labels_of(item: &Value) -> serde_json::Map<String, Value> {
    item["metric"].as_object().cloned().unwrap_or_default()
}

fn parse_matrix(expr: &str, data: &Value) -> Result<Vec<MatrixSeries>> {
    if data["resultType"] != "matrix" {
        return Err(Error::new(format!(
            "query {expr:?}: expected a matrix, got {data}"
        )));
    }
    result_array(data)?
        .iter()
        .map(|item| {
            let points = item["values"]
                .as_array()
                .ok_or_else(|| Error::new(format!("matrix element without values: {item}")))?
                .iter()
                .map(parse_point)
                .collect::<Result<Vec<_>>>()?;
            Ok(MatrixSeries {
                labels: labels_of(item),
                points,
            })
        })
        .collect()
}

fn strings(data: Value) -> Result<Vec<String>> {
    data.as_array()
        .ok_or_else(|| Error::new(format!("expected an array of strings, got {data}")))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| Error::new(format!("expected a string, got {v}")))
        })
        .collect()
}
