//! A small Prometheus remote-write 1.0 client, written independently of Ember's own
//! codec so the tests check Ember against the wire format, not against itself.
//!
//! Messages follow `prometheus/prompb/types.proto` and `remote.proto` (only the fields
//! the tests need); bodies are snappy *block* compressed and sent with the three
//! standard headers.

use crate::error::{Error, Result};
use crate::net::ensure_loopback;
use prost::Message;
use std::time::Duration;

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// Series with their samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Metric family metadata.
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries` (labels and float samples).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, sorted by name, including `__name__`.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples in timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// The metric type.
    #[prost(enumeration = "MetricType", tag = "1")]
    pub r#type: i32,
    /// The metric family name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// Help text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// Unit.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `prometheus.MetricMetadata.MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    /// unknown
    Unknown = 0,
    /// counter
    Counter = 1,
    /// gauge
    Gauge = 2,
    /// histogram
    Histogram = 3,
    /// gaugehistogram
    GaugeHistogram = 4,
    /// summary
    Summary = 5,
    /// info
    Info = 6,
    /// stateset
    StateSet = 7,
}

impl Label {
    /// A label from name and value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl TimeSeries {
    /// A series from `(name, value)` label pairs (sorted here) and samples.
    pub fn new(labels: &[(&str, &str)], samples: Vec<Sample>) -> Self {
        let mut labels: Vec<Label> = labels.iter().map(|(n, v)| Label::new(*n, *v)).collect();
        labels.sort();
        Self { labels, samples }
    }
}

impl Sample {
    /// A sample from a timestamp in milliseconds and a value.
    pub fn new(timestamp: i64, value: f64) -> Self {
        Self { value, timestamp }
    }
}

impl MetricMetadata {
    /// Metadata for one metric family.
    pub fn new(kind: MetricType, family: &str, help: &str, unit: &str) -> Self {
        Self {
            r#type: kind as i32,
            metric_family_name: family.to_string(),
            help: help.to_string(),
            unit: unit.to_string(),
        }
    }
}

/// Protobuf-encodes and snappy-block-compresses a request: the exact body remote write sends.
pub fn encode_body(request: &WriteRequest) -> Result<Vec<u8>> {
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .map_err(|e| Error::new(format!("snappy compression failed: {e}")))
}

/// The status and body of a remote-write response.
#[derive(Debug, Clone)]
pub struct WriteResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response body as text (error messages).
    pub body: String,
}

impl WriteResponse {
    /// Whether the request was acknowledged (2xx).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends remote-write 1.0 requests to one loopback URL.
#[derive(Debug, Clone)]
pub struct RemoteWriteClient {
    url: String,
    http: reqwest::blocking::Client,
}

impl RemoteWriteClient {
    /// A client for `url` (for example `http://127.0.0.1:PORT/api/v1/write`); only
    /// loopback URLs are accepted.
    pub fn new(url: &str) -> Result<Self> {
        ensure_loopback(url)?;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .user_agent("ember-e2e/0.1")
            .build()
            .map_err(|e| Error::new(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            url: url.to_string(),
            http,
        })
    }

    /// The target URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Encodes and sends `request`; any HTTP answer is returned, only transport
    /// failures are errors.
    pub fn send(&self, request: &WriteRequest) -> Result<WriteResponse> {
        self.send_body(encode_body(request)?)
    }

    /// Sends an already encoded (snappy-compressed protobuf) body.
    pub fn send_body(&self, body: Vec<u8>) -> Result<WriteResponse> {
        let response = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
            .send()
            .map_err(|e| Error::new(format!("POST {} failed: {e}", self.url)))?;
        let status = response.status().as_u16();
        let body = response.text().unwrap_or_default();
        Ok(WriteResponse { status, body })
    }

    /// Sends `request` and requires a 2xx answer.
    pub fn push(&self, request: &WriteRequest) -> Result<()> {
        let response = self.send(request)?;
        if response.is_success() {
            Ok(())
        } else {
            Err(Error::new(format!(
                "POST {} answered {}: {}",
                self.url, response.status, response.body
            )))
        }
    }
}
