//! OTLP/HTTP metrics ingest at `/api/v1/otlp/v1/metrics` (Prometheus 2.47+'s path), so
//! OpenTelemetry SDKs and collectors send to Ember without a Prometheus exporter.
//!
//! Accepts `application/x-protobuf` bodies (optionally `Content-Encoding: gzip`) holding
//! an `ExportMetricsServiceRequest`. Names follow Prometheus' OTLP translation with
//! suffixes: invalid characters become `_`, the unit is appended (`s` → `_seconds`,
//! `By` → `_bytes`, `1/s` → `_per_second`, `1` on a gauge → `_ratio`), monotonic sums get
//! `_total`; histograms become `_bucket{le}`, `_sum`, `_count`; summaries `{quantile}`,
//! `_sum`, `_count`. Resource attribute `service.name` (with `service.namespace`
//! as `<namespace>/<name>`) becomes `job`, `service.instance.id` becomes `instance`;
//! data-point attributes become labels. Delta temporality is not converted (as in
//! Prometheus without its delta feature): such metrics are skipped and counted in the
//! response's `partialSuccess`. Exponential histograms are skipped the same way.
//! OTLP/JSON bodies (`application/json`, the protobuf JSON mapping) are read too.

use std::io::Read;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ember_model::{
    Labels, LabelsBuilder, METRIC_NAME, MetricMetadata, MetricType, Sample, Series, stale_nan,
};
use ember_storage::AppendBatch;
use prost::Message;

use crate::{ApiError, SharedState, Tenant};

/// The OTLP protobuf messages Ember reads (a subset of `opentelemetry.proto.*`), with
/// hand-written prost derives (no `protoc` here).
pub mod pb {
    /// `collector.metrics.v1.ExportMetricsServiceRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportMetricsServiceRequest {
        /// Metrics grouped by resource.
        #[prost(message, repeated, tag = "1")]
        pub resource_metrics: Vec<ResourceMetrics>,
    }
    /// `collector.metrics.v1.ExportMetricsServiceResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportMetricsServiceResponse {
        /// Set when some data points were not accepted.
        #[prost(message, optional, tag = "1")]
        pub partial_success: Option<ExportMetricsPartialSuccess>,
    }
    /// `collector.metrics.v1.ExportMetricsPartialSuccess`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportMetricsPartialSuccess {
        /// Data points refused.
        #[prost(int64, tag = "1")]
        pub rejected_data_points: i64,
        /// Why.
        #[prost(string, tag = "2")]
        pub error_message: String,
    }
    /// `metrics.v1.ResourceMetrics`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceMetrics {
        /// The resource (service) the metrics describe.
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        /// Metrics by instrumentation scope.
        #[prost(message, repeated, tag = "2")]
        pub scope_metrics: Vec<ScopeMetrics>,
    }
    /// `resource.v1.Resource`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        /// Resource attributes (`service.name`, …).
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }
    /// `metrics.v1.ScopeMetrics`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeMetrics {
        /// The metrics.
        #[prost(message, repeated, tag = "2")]
        pub metrics: Vec<Metric>,
    }
    /// `metrics.v1.Metric`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metric {
        /// OTel metric name (`http.server.duration`).
        #[prost(string, tag = "1")]
        pub name: String,
        /// Help text.
        #[prost(string, tag = "2")]
        pub description: String,
        /// UCUM unit (`s`, `By`, `1`, `{request}`).
        #[prost(string, tag = "3")]
        pub unit: String,
        /// The data.
        #[prost(oneof = "Data", tags = "5, 7, 9, 10, 11")]
        pub data: Option<Data>,
    }
    /// `Metric.data`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Data {
        /// A gauge.
        #[prost(message, tag = "5")]
        Gauge(Gauge),
        /// A sum (counter when monotonic).
        #[prost(message, tag = "7")]
        Sum(Sum),
        /// An explicit-bucket histogram.
        #[prost(message, tag = "9")]
        Histogram(Histogram),
        /// An exponential histogram (not converted).
        #[prost(message, tag = "10")]
        ExponentialHistogram(ExponentialHistogram),
        /// A summary.
        #[prost(message, tag = "11")]
        Summary(Summary),
    }
    /// `metrics.v1.Gauge`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Gauge {
        /// Points.
        #[prost(message, repeated, tag = "1")]
        pub data_points: Vec<NumberDataPoint>,
    }
    /// `metrics.v1.Sum`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sum {
        /// Points.
        #[prost(message, repeated, tag = "1")]
        pub data_points: Vec<NumberDataPoint>,
        /// 1 delta, 2 cumulative.
        #[prost(int32, tag = "2")]
        pub aggregation_temporality: i32,
        /// Counter when true.
        #[prost(bool, tag = "3")]
        pub is_monotonic: bool,
    }
    /// `metrics.v1.Histogram`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        /// Points.
        #[prost(message, repeated, tag = "1")]
        pub data_points: Vec<HistogramDataPoint>,
        /// 1 delta, 2 cumulative.
        #[prost(int32, tag = "2")]
        pub aggregation_temporality: i32,
    }
    /// `metrics.v1.ExponentialHistogram` (only counted).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExponentialHistogram {
        /// Points (their content is not read).
        #[prost(bytes = "vec", repeated, tag = "1")]
        pub data_points: Vec<Vec<u8>>,
    }
    /// `metrics.v1.Summary`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Summary {
        /// Points.
        #[prost(message, repeated, tag = "1")]
        pub data_points: Vec<SummaryDataPoint>,
    }
    /// `metrics.v1.NumberDataPoint`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NumberDataPoint {
        /// Attributes (labels).
        #[prost(message, repeated, tag = "7")]
        pub attributes: Vec<KeyValue>,
        /// Sample time, ns since the epoch.
        #[prost(fixed64, tag = "3")]
        pub time_unix_nano: u64,
        /// The value.
        #[prost(oneof = "NumberValue", tags = "4, 6")]
        pub value: Option<NumberValue>,
        /// Bit 0: no recorded value (becomes a staleness marker).
        #[prost(uint32, tag = "8")]
        pub flags: u32,
    }
    /// `NumberDataPoint.value`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum NumberValue {
        /// A float.
        #[prost(double, tag = "4")]
        AsDouble(f64),
        /// An integer.
        #[prost(sfixed64, tag = "6")]
        AsInt(i64),
    }
    /// `metrics.v1.HistogramDataPoint`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HistogramDataPoint {
        /// Attributes (labels).
        #[prost(message, repeated, tag = "9")]
        pub attributes: Vec<KeyValue>,
        /// Sample time, ns since the epoch.
        #[prost(fixed64, tag = "3")]
        pub time_unix_nano: u64,
        /// Observations.
        #[prost(fixed64, tag = "4")]
        pub count: u64,
        /// Sum of observations, when known.
        #[prost(double, optional, tag = "5")]
        pub sum: Option<f64>,
        /// Per-bucket (non-cumulative) counts, one more than `explicit_bounds`.
        #[prost(fixed64, repeated, tag = "6")]
        pub bucket_counts: Vec<u64>,
        /// Upper bounds.
        #[prost(double, repeated, tag = "7")]
        pub explicit_bounds: Vec<f64>,
        /// Bit 0: no recorded value.
        #[prost(uint32, tag = "10")]
        pub flags: u32,
    }
    /// `metrics.v1.SummaryDataPoint`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SummaryDataPoint {
        /// Attributes (labels).
        #[prost(message, repeated, tag = "7")]
        pub attributes: Vec<KeyValue>,
        /// Sample time, ns since the epoch.
        #[prost(fixed64, tag = "3")]
        pub time_unix_nano: u64,
        /// Observations.
        #[prost(fixed64, tag = "4")]
        pub count: u64,
        /// Sum of observations.
        #[prost(double, tag = "5")]
        pub sum: f64,
        /// Quantiles.
        #[prost(message, repeated, tag = "6")]
        pub quantile_values: Vec<ValueAtQuantile>,
        /// Bit 0: no recorded value.
        #[prost(uint32, tag = "8")]
        pub flags: u32,
    }
    /// `SummaryDataPoint.ValueAtQuantile`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueAtQuantile {
        /// The quantile (0..1).
        #[prost(double, tag = "1")]
        pub quantile: f64,
        /// Its value.
        #[prost(double, tag = "2")]
        pub value: f64,
    }
    /// `common.v1.KeyValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        /// Attribute key.
        #[prost(string, tag = "1")]
        pub key: String,
        /// Attribute value.
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }
    /// `common.v1.AnyValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        /// The value.
        #[prost(oneof = "Value", tags = "1, 2, 3, 4, 7")]
        pub value: Option<Value>,
    }
    /// `AnyValue.value` (arrays and maps are not label-able and are dropped).
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A string.
        #[prost(string, tag = "1")]
        StringValue(String),
        /// A bool.
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        /// An integer.
        #[prost(int64, tag = "3")]
        IntValue(i64),
        /// A float.
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        /// Bytes (rendered as base64).
        #[prost(bytes = "vec", tag = "7")]
        BytesValue(Vec<u8>),
    }
}

/// OTLP/JSON (the protobuf JSON mapping: lowerCamelCase keys, 64-bit integers as strings
/// or numbers, enums as numbers or names) read into the same messages.
pub mod json {
    use serde_json::Value;

    use super::{OtlpError, pb};

    fn err(what: &str) -> OtlpError {
        OtlpError::Json(format!("invalid {what}"))
    }

    fn field<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
        v.get(camel)
            .or_else(|| v.get(snake))
            .filter(|x| !x.is_null())
    }

    fn list<'a>(v: &'a Value, camel: &str, snake: &str) -> Result<&'a [Value], OtlpError> {
        match field(v, camel, snake) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(err(camel)),
        }
    }

    fn u64_of(v: Option<&Value>, what: &str) -> Result<u64, OtlpError> {
        match v {
            None => Ok(0),
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| err(what)),
            Some(Value::String(s)) => s.parse().map_err(|_| err(what)),
            Some(_) => Err(err(what)),
        }
    }

    fn i64_of(v: &Value, what: &str) -> Result<i64, OtlpError> {
        match v {
            Value::Number(n) => n.as_i64().ok_or_else(|| err(what)),
            Value::String(s) => s.parse().map_err(|_| err(what)),
            _ => Err(err(what)),
        }
    }

    fn f64_of(v: &Value, what: &str) -> Result<f64, OtlpError> {
        match v {
            Value::Number(n) => n.as_f64().ok_or_else(|| err(what)),
            Value::String(s) => match s.as_str() {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                other => other.parse().map_err(|_| err(what)),
            },
            _ => Err(err(what)),
        }
    }

    fn str_of(v: &Value, camel: &str, snake: &str) -> String {
        field(v, camel, snake)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    fn temporality(v: &Value) -> Result<i32, OtlpError> {
        match field(v, "aggregationTemporality", "aggregation_temporality") {
            None => Ok(0),
            Some(Value::String(s)) => Ok(match s.as_str() {
                "AGGREGATION_TEMPORALITY_DELTA" => 1,
                "AGGREGATION_TEMPORALITY_CUMULATIVE" => 2,
                _ => 0,
            }),
            Some(n) => Ok(i64_of(n, "aggregationTemporality")? as i32),
        }
    }

    fn attributes(v: &Value) -> Result<Vec<pb::KeyValue>, OtlpError> {
        list(v, "attributes", "attributes")?
            .iter()
            .map(|kv| {
                let value = match field(kv, "value", "value") {
                    None => None,
                    Some(any) => {
                        let inner = if let Some(s) = field(any, "stringValue", "string_value") {
                            Some(pb::Value::StringValue(
                                s.as_str().ok_or_else(|| err("stringValue"))?.into(),
                            ))
                        } else if let Some(b) = field(any, "boolValue", "bool_value") {
                            Some(pb::Value::BoolValue(
                                b.as_bool().ok_or_else(|| err("boolValue"))?,
                            ))
                        } else if let Some(i) = field(any, "intValue", "int_value") {
                            Some(pb::Value::IntValue(i64_of(i, "intValue")?))
                        } else if let Some(d) = field(any, "doubleValue", "double_value") {
                            Some(pb::Value::DoubleValue(f64_of(d, "doubleValue")?))
                        } else {
                            None
                        };
                        Some(pb::AnyValue { value: inner })
                    }
                };
                Ok(pb::KeyValue {
                    key: str_of(kv, "key", "key"),
                    value,
                })
            })
            .collect()
    }

    fn time(p: &Value) -> Result<u64, OtlpError> {
        u64_of(field(p, "timeUnixNano", "time_unix_nano"), "timeUnixNano")
    }

    fn flags(p: &Value) -> Result<u32, OtlpError> {
        Ok(u64_of(field(p, "flags", "flags"), "flags")? as u32)
    }

    fn number_points(v: &Value) -> Result<Vec<pb::NumberDataPoint>, OtlpError> {
        list(v, "dataPoints", "data_points")?
            .iter()
            .map(|p| {
                let value = if let Some(d) = field(p, "asDouble", "as_double") {
                    Some(pb::NumberValue::AsDouble(f64_of(d, "asDouble")?))
                } else if let Some(i) = field(p, "asInt", "as_int") {
                    Some(pb::NumberValue::AsInt(i64_of(i, "asInt")?))
                } else {
                    None
                };
                Ok(pb::NumberDataPoint {
                    attributes: attributes(p)?,
                    time_unix_nano: time(p)?,
                    value,
                    flags: flags(p)?,
                })
            })
            .collect()
    }

    fn metric(m: &Value) -> Result<pb::Metric, OtlpError> {
        let data = if let Some(g) = field(m, "gauge", "gauge") {
            Some(pb::Data::Gauge(pb::Gauge {
                data_points: number_points(g)?,
            }))
        } else if let Some(s) = field(m, "sum", "sum") {
            Some(pb::Data::Sum(pb::Sum {
                data_points: number_points(s)?,
                aggregation_temporality: temporality(s)?,
                is_monotonic: field(s, "isMonotonic", "is_monotonic")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            }))
        } else if let Some(h) = field(m, "histogram", "histogram") {
            let points = list(h, "dataPoints", "data_points")?
                .iter()
                .map(|p| {
                    Ok(pb::HistogramDataPoint {
                        attributes: attributes(p)?,
                        time_unix_nano: time(p)?,
                        count: u64_of(field(p, "count", "count"), "count")?,
                        sum: field(p, "sum", "sum")
                            .map(|s| f64_of(s, "sum"))
                            .transpose()?,
                        bucket_counts: list(p, "bucketCounts", "bucket_counts")?
                            .iter()
                            .map(|c| u64_of(Some(c), "bucketCounts"))
                            .collect::<Result<_, _>>()?,
                        explicit_bounds: list(p, "explicitBounds", "explicit_bounds")?
                            .iter()
                            .map(|b| f64_of(b, "explicitBounds"))
                            .collect::<Result<_, _>>()?,
                        flags: flags(p)?,
                    })
                })
                .collect::<Result<_, OtlpError>>()?;
            Some(pb::Data::Histogram(pb::Histogram {
                data_points: points,
                aggregation_temporality: temporality(h)?,
            }))
        } else if let Some(s) = field(m, "summary", "summary") {
            let points = list(s, "dataPoints", "data_points")?
                .iter()
                .map(|p| {
                    Ok(pb::SummaryDataPoint {
                        attributes: attributes(p)?,
                        time_unix_nano: time(p)?,
                        count: u64_of(field(p, "count", "count"), "count")?,
                        sum: field(p, "sum", "sum")
                            .map(|s| f64_of(s, "sum"))
                            .transpose()?
                            .unwrap_or(0.0),
                        quantile_values: list(p, "quantileValues", "quantile_values")?
                            .iter()
                            .map(|q| {
                                Ok(pb::ValueAtQuantile {
                                    quantile: field(q, "quantile", "quantile")
                                        .map(|x| f64_of(x, "quantile"))
                                        .transpose()?
                                        .unwrap_or(0.0),
                                    value: field(q, "value", "value")
                                        .map(|x| f64_of(x, "value"))
                                        .transpose()?
                                        .unwrap_or(0.0),
                                })
                            })
                            .collect::<Result<_, OtlpError>>()?,
                        flags: flags(p)?,
                    })
                })
                .collect::<Result<_, OtlpError>>()?;
            Some(pb::Data::Summary(pb::Summary {
                data_points: points,
            }))
        } else if let Some(e) = field(m, "exponentialHistogram", "exponential_histogram") {
            let n = list(e, "dataPoints", "data_points")?.len();
            Some(pb::Data::ExponentialHistogram(pb::ExponentialHistogram {
                data_points: vec![Vec::new(); n],
            }))
        } else {
            None
        };
        Ok(pb::Metric {
            name: str_of(m, "name", "name"),
            description: str_of(m, "description", "description"),
            unit: str_of(m, "unit", "unit"),
            data,
        })
    }

    /// Parses an OTLP/JSON `ExportMetricsServiceRequest`.
    pub fn parse(body: &[u8]) -> Result<pb::ExportMetricsServiceRequest, OtlpError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| OtlpError::Json(e.to_string()))?;
        let resource_metrics = list(&v, "resourceMetrics", "resource_metrics")?
            .iter()
            .map(|rm| {
                let resource = field(rm, "resource", "resource")
                    .map(|r| {
                        Ok::<_, OtlpError>(pb::Resource {
                            attributes: attributes(r)?,
                        })
                    })
                    .transpose()?;
                let scope_metrics = list(rm, "scopeMetrics", "scope_metrics")?
                    .iter()
                    .map(|sm| {
                        Ok(pb::ScopeMetrics {
                            metrics: list(sm, "metrics", "metrics")?
                                .iter()
                                .map(metric)
                                .collect::<Result<_, OtlpError>>()?,
                        })
                    })
                    .collect::<Result<_, OtlpError>>()?;
                Ok(pb::ResourceMetrics {
                    resource,
                    scope_metrics,
                })
            })
            .collect::<Result<_, OtlpError>>()?;
        Ok(pb::ExportMetricsServiceRequest { resource_metrics })
    }
}

/// Largest decompressed OTLP body accepted.
const MAX_DECODED: usize = 64 << 20;
/// Cumulative temporality.
const CUMULATIVE: i32 = 2;

/// Why an OTLP request is refused.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The body is not gzip or too large once decompressed.
    #[error("cannot decompress the gzip body: {0}")]
    Gzip(String),
    /// The body is not an `ExportMetricsServiceRequest`.
    #[error("cannot decode the OTLP protobuf body: {0}")]
    Protobuf(String),
    /// The JSON body is not an OTLP/JSON `ExportMetricsServiceRequest`.
    #[error("cannot decode the OTLP JSON body: {0}")]
    Json(String),
}

/// Prometheus' unit words for UCUM units.
fn unit_word(u: &str) -> Option<&'static str> {
    Some(match u {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

fn per_unit_word(u: &str) -> Option<&'static str> {
    Some(match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

fn tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// The Prometheus name of an OTLP metric (Prometheus' translation with suffixes).
pub fn metric_name(name: &str, unit: &str, counter: bool, gauge: bool) -> String {
    let mut parts = tokens(name);
    // Units in braces are annotations ({request}); `1` is dimensionless.
    let unit = unit.trim();
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m.trim(), p.trim()),
        None => (unit, ""),
    };
    let push_unique = |parts: &mut Vec<String>, word: &str| {
        for w in tokens(word) {
            if !parts.contains(&w) {
                parts.push(w);
            }
        }
    };
    if !main.starts_with('{') && !main.is_empty() && main != "1" {
        push_unique(&mut parts, unit_word(main).unwrap_or(main));
    }
    if !per.is_empty() && !per.starts_with('{') {
        let word = per_unit_word(per).unwrap_or(per);
        if !parts.windows(2).any(|w| w[0] == "per" && w[1] == word) {
            parts.push("per".into());
            parts.extend(tokens(word));
        }
    }
    if counter {
        parts.retain(|p| p != "total");
        parts.push("total".into());
    }
    if gauge && unit == "1" && !parts.iter().any(|p| p == "ratio") {
        parts.push("ratio".into());
    }
    let mut out = parts.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A Prometheus label name for an attribute key (`http.method` → `http_method`).
pub fn label_name(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    out
}

fn attr_value(v: &Option<pb::AnyValue>) -> Option<String> {
    use base64::Engine as _;
    match v.as_ref()?.value.as_ref()? {
        pb::Value::StringValue(s) => Some(s.clone()),
        pb::Value::BoolValue(b) => Some(b.to_string()),
        pb::Value::IntValue(i) => Some(i.to_string()),
        pb::Value::DoubleValue(d) => Some(crate::json::format_float(*d)),
        pb::Value::BytesValue(b) => Some(base64::engine::general_purpose::STANDARD.encode(b)),
    }
}

fn resource_labels(resource: &Option<pb::Resource>) -> Vec<(String, String)> {
    let attrs = resource
        .as_ref()
        .map(|r| r.attributes.as_slice())
        .unwrap_or(&[]);
    let get = |k: &str| {
        attrs
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| attr_value(&a.value))
    };
    let mut out = Vec::new();
    if let Some(name) = get("service.name") {
        let job = match get("service.namespace") {
            Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
            _ => name,
        };
        out.push(("job".to_string(), job));
    }
    if let Some(inst) = get("service.instance.id") {
        out.push(("instance".to_string(), inst));
    }
    out
}

/// What a conversion produced.
#[derive(Debug, Default)]
pub struct Converted {
    /// The series to append.
    pub batch: AppendBatch,
    /// Data points skipped (delta temporality, exponential histograms).
    pub skipped: i64,
}

struct Builder<'a> {
    base: &'a [(String, String)],
    out: &'a mut Vec<Series>,
}

impl Builder<'_> {
    fn push(
        &mut self,
        name: &str,
        attrs: &[pb::KeyValue],
        extra: Option<(&str, String)>,
        t: i64,
        v: f64,
    ) {
        let mut b = LabelsBuilder::new();
        for (k, v) in self.base {
            b.set(k.clone(), v.clone());
        }
        for a in attrs {
            if let Some(v) = attr_value(&a.value) {
                b.set(label_name(&a.key), v);
            }
        }
        if let Some((k, v)) = extra {
            b.set(k, v);
        }
        b.set(METRIC_NAME, name);
        let labels: Labels = b.build();
        self.out.push(Series::new(labels, vec![Sample::new(t, v)]));
    }
}

fn time_ms(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

fn value_or_stale(flags: u32, v: f64) -> f64 {
    if flags & 1 != 0 { stale_nan() } else { v }
}

/// Converts a decoded request into series and metadata.
pub fn convert(req: &pb::ExportMetricsServiceRequest) -> Converted {
    let mut conv = Converted::default();
    let mut series = Vec::new();
    for rm in &req.resource_metrics {
        let base = resource_labels(&rm.resource);
        let mut b = Builder {
            base: &base,
            out: &mut series,
        };
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let Some(data) = &m.data else { continue };
                let (kind, name) = match data {
                    pb::Data::Gauge(g) => {
                        let name = metric_name(&m.name, &m.unit, false, true);
                        for p in &g.data_points {
                            let v = number(p);
                            b.push(
                                &name,
                                &p.attributes,
                                None,
                                time_ms(p.time_unix_nano),
                                value_or_stale(p.flags, v),
                            );
                        }
                        (MetricType::Gauge, name)
                    }
                    pb::Data::Sum(s) => {
                        if s.aggregation_temporality != CUMULATIVE && s.is_monotonic {
                            conv.skipped += s.data_points.len() as i64;
                            continue;
                        }
                        let name = metric_name(&m.name, &m.unit, s.is_monotonic, !s.is_monotonic);
                        for p in &s.data_points {
                            let v = number(p);
                            b.push(
                                &name,
                                &p.attributes,
                                None,
                                time_ms(p.time_unix_nano),
                                value_or_stale(p.flags, v),
                            );
                        }
                        let kind = if s.is_monotonic {
                            MetricType::Counter
                        } else {
                            MetricType::Gauge
                        };
                        (kind, name)
                    }
                    pb::Data::Histogram(h) => {
                        if h.aggregation_temporality != CUMULATIVE {
                            conv.skipped += h.data_points.len() as i64;
                            continue;
                        }
                        let name = metric_name(&m.name, &m.unit, false, false);
                        for p in &h.data_points {
                            let t = time_ms(p.time_unix_nano);
                            let mut cumulative = 0u64;
                            for (i, c) in p.bucket_counts.iter().enumerate() {
                                cumulative += c;
                                let le = match p.explicit_bounds.get(i) {
                                    Some(bound) => crate::json::format_float(*bound),
                                    None => "+Inf".to_string(),
                                };
                                b.push(
                                    &format!("{name}_bucket"),
                                    &p.attributes,
                                    Some(("le", le)),
                                    t,
                                    value_or_stale(p.flags, cumulative as f64),
                                );
                            }
                            if p.bucket_counts.is_empty() {
                                b.push(
                                    &format!("{name}_bucket"),
                                    &p.attributes,
                                    Some(("le", "+Inf".into())),
                                    t,
                                    value_or_stale(p.flags, p.count as f64),
                                );
                            }
                            if let Some(sum) = p.sum {
                                b.push(
                                    &format!("{name}_sum"),
                                    &p.attributes,
                                    None,
                                    t,
                                    value_or_stale(p.flags, sum),
                                );
                            }
                            b.push(
                                &format!("{name}_count"),
                                &p.attributes,
                                None,
                                t,
                                value_or_stale(p.flags, p.count as f64),
                            );
                        }
                        (MetricType::Histogram, name)
                    }
                    pb::Data::Summary(s) => {
                        let name = metric_name(&m.name, &m.unit, false, false);
                        for p in &s.data_points {
                            let t = time_ms(p.time_unix_nano);
                            for q in &p.quantile_values {
                                b.push(
                                    &name,
                                    &p.attributes,
                                    Some(("quantile", crate::json::format_float(q.quantile))),
                                    t,
                                    value_or_stale(p.flags, q.value),
                                );
                            }
                            b.push(
                                &format!("{name}_sum"),
                                &p.attributes,
                                None,
                                t,
                                value_or_stale(p.flags, p.sum),
                            );
                            b.push(
                                &format!("{name}_count"),
                                &p.attributes,
                                None,
                                t,
                                value_or_stale(p.flags, p.count as f64),
                            );
                        }
                        (MetricType::Summary, name)
                    }
                    pb::Data::ExponentialHistogram(e) => {
                        conv.skipped += e.data_points.len() as i64;
                        continue;
                    }
                };
                conv.batch.metadata.push(MetricMetadata {
                    metric_family_name: name,
                    metric_type: kind,
                    help: m.description.clone(),
                    unit: String::new(),
                });
            }
        }
    }
    conv.batch.series = series;
    conv
}

fn number(p: &pb::NumberDataPoint) -> f64 {
    match p.value {
        Some(pb::NumberValue::AsDouble(d)) => d,
        Some(pb::NumberValue::AsInt(i)) => i as f64,
        None => 0.0,
    }
}

/// Decompresses a gzip body (bounded).
fn gunzip(body: &[u8]) -> Result<Vec<u8>, OtlpError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(MAX_DECODED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| OtlpError::Gzip(e.to_string()))?;
    if out.len() > MAX_DECODED {
        return Err(OtlpError::Gzip(format!(
            "decompressed body exceeds {MAX_DECODED} bytes"
        )));
    }
    Ok(out)
}

/// Decodes a (possibly gzip-compressed) body, protobuf or JSON.
pub fn decode(
    body: &[u8],
    gzip: bool,
    json: bool,
) -> Result<pb::ExportMetricsServiceRequest, OtlpError> {
    let unzipped;
    let bytes = if gzip {
        unzipped = gunzip(body)?;
        unzipped.as_slice()
    } else {
        body
    };
    if json {
        json::parse(bytes)
    } else {
        pb::ExportMetricsServiceRequest::decode(bytes)
            .map_err(|e| OtlpError::Protobuf(e.to_string()))
    }
}

/// `POST /api/v1/otlp/v1/metrics`.
pub async fn receive(
    State(state): State<SharedState>,
    tenant: Tenant,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let h = |n: header::HeaderName| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let content_type = h(header::CONTENT_TYPE);
    let json = if content_type.starts_with("application/x-protobuf") {
        false
    } else if content_type.starts_with("application/json") {
        true
    } else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content type {content_type:?}: send application/x-protobuf or application/json (OTLP/HTTP)\n"),
        )
            .into_response();
    };
    let encoding = h(header::CONTENT_ENCODING);
    let gzip = match encoding.trim() {
        "" | "identity" => false,
        "gzip" => true,
        other => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content encoding {other:?}: use gzip or none\n"),
            )
                .into_response();
        }
    };
    let limit = state.write_limits.max_body_bytes;
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds {limit} bytes\n"),
        )
            .into_response();
    };
    let req = match decode(&bytes, gzip, json) {
        Ok(r) => r,
        Err(e) => {
            state.metrics.observe_write_rejected(400);
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    let conv = convert(&req);
    let samples = conv.batch.sample_count();
    if let Err(e) = state.storage.append(&tenant.0, conv.batch).await {
        tracing::warn!(error = %e, tenant = %tenant.0, "OTLP write failed");
        state.metrics.observe_write_failed(&e, samples);
        return ApiError::from_storage(e).into_response();
    }
    crate::telemetry::inc(&state.metrics.write_requests);
    crate::telemetry::add(&state.metrics.samples_ingested, samples as u64);
    let partial = (conv.skipped > 0).then(|| pb::ExportMetricsPartialSuccess {
        rejected_data_points: conv.skipped,
        error_message: "delta temporality and exponential histograms are not converted".into(),
    });
    let (body, ct) = if json {
        let v = match &partial {
            Some(p) => serde_json::json!({"partialSuccess": {
                "rejectedDataPoints": p.rejected_data_points.to_string(),
                "errorMessage": p.error_message}}),
            None => serde_json::json!({}),
        };
        (v.to_string().into_bytes(), "application/json")
    } else {
        let resp = pb::ExportMetricsServiceResponse {
            partial_success: partial,
        };
        (resp.encode_to_vec(), "application/x-protobuf")
    };
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(ct),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_translation() {
        assert_eq!(
            metric_name("http.server.request.duration", "s", false, false),
            "http_server_request_duration_seconds"
        );
        assert_eq!(
            metric_name("http.server.requests", "{request}", true, false),
            "http_server_requests_total"
        );
        assert_eq!(
            metric_name("process.memory.usage", "By", false, true),
            "process_memory_usage_bytes"
        );
        assert_eq!(
            metric_name("cpu.utilization", "1", false, true),
            "cpu_utilization_ratio"
        );
        assert_eq!(
            metric_name("requests", "1/s", false, true),
            "requests_per_second"
        );
        assert_eq!(
            metric_name("queue_seconds", "s", false, true),
            "queue_seconds"
        );
        assert_eq!(metric_name("jobs.total", "", true, false), "jobs_total");
        assert_eq!(label_name("http.method"), "http_method");
        assert_eq!(label_name("2xx"), "key_2xx");
        assert_eq!(label_name("_private"), "key_private");
    }

    fn kv(k: &str, v: &str) -> pb::KeyValue {
        pb::KeyValue {
            key: k.into(),
            value: Some(pb::AnyValue {
                value: Some(pb::Value::StringValue(v.into())),
            }),
        }
    }

    fn request(t_ns: u64) -> pb::ExportMetricsServiceRequest {
        let point = |v: pb::NumberValue| pb::NumberDataPoint {
            attributes: vec![kv("http.method", "GET")],
            time_unix_nano: t_ns,
            value: Some(v),
            flags: 0,
        };
        let metric = |name: &str, unit: &str, data: pb::Data| pb::Metric {
            name: name.into(),
            description: format!("{name} help"),
            unit: unit.into(),
            data: Some(data),
        };
        pb::ExportMetricsServiceRequest {
            resource_metrics: vec![pb::ResourceMetrics {
                resource: Some(pb::Resource {
                    attributes: vec![
                        kv("service.name", "checkout"),
                        kv("service.namespace", "shop"),
                        kv("service.instance.id", "pod-1"),
                    ],
                }),
                scope_metrics: vec![pb::ScopeMetrics {
                    metrics: vec![
                        metric(
                            "http.server.requests",
                            "{request}",
                            pb::Data::Sum(pb::Sum {
                                data_points: vec![point(pb::NumberValue::AsInt(42))],
                                aggregation_temporality: 2,
                                is_monotonic: true,
                            }),
                        ),
                        metric(
                            "queue.depth",
                            "",
                            pb::Data::Gauge(pb::Gauge {
                                data_points: vec![point(pb::NumberValue::AsDouble(3.5))],
                            }),
                        ),
                        metric(
                            "http.server.duration",
                            "s",
                            pb::Data::Histogram(pb::Histogram {
                                data_points: vec![pb::HistogramDataPoint {
                                    attributes: vec![kv("http.method", "GET")],
                                    time_unix_nano: t_ns,
                                    count: 6,
                                    sum: Some(1.5),
                                    bucket_counts: vec![1, 2, 3],
                                    explicit_bounds: vec![0.1, 0.5],
                                    flags: 0,
                                }],
                                aggregation_temporality: 2,
                            }),
                        ),
                        metric(
                            "rpc.latency",
                            "ms",
                            pb::Data::Summary(pb::Summary {
                                data_points: vec![pb::SummaryDataPoint {
                                    attributes: vec![],
                                    time_unix_nano: t_ns,
                                    count: 10,
                                    sum: 55.0,
                                    quantile_values: vec![pb::ValueAtQuantile {
                                        quantile: 0.99,
                                        value: 9.5,
                                    }],
                                    flags: 0,
                                }],
                            }),
                        ),
                        metric(
                            "delta.requests",
                            "",
                            pb::Data::Sum(pb::Sum {
                                data_points: vec![point(pb::NumberValue::AsInt(1))],
                                aggregation_temporality: 1,
                                is_monotonic: true,
                            }),
                        ),
                    ],
                }],
            }],
        }
    }

    async fn post(
        app: &axum::Router,
        body: Vec<u8>,
        content_type: &str,
        encoding: Option<&str>,
    ) -> (u16, Vec<u8>) {
        use tower::ServiceExt;
        let mut req = axum::http::Request::post("/workspaces/otel/api/v1/otlp/v1/metrics")
            .header("Content-Type", content_type);
        if let Some(e) = encoding {
            req = req.header("Content-Encoding", e);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    #[tokio::test]
    async fn gzip_protobuf_lands_under_translated_names() {
        use std::io::Write;
        let store = std::sync::Arc::new(ember_storage::MemStorage::new());
        let app = crate::router(std::sync::Arc::new(crate::ApiState::new(store.clone())));
        let t_ms = 1_700_000_000_123i64;
        let body = request(t_ms as u64 * 1_000_000 + 456).encode_to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&body).unwrap();
        let (status, resp) = post(
            &app,
            gz.finish().unwrap(),
            "application/x-protobuf",
            Some("gzip"),
        )
        .await;
        assert_eq!(status, 200);
        let resp = pb::ExportMetricsServiceResponse::decode(resp.as_slice()).unwrap();
        assert_eq!(
            resp.partial_success.map(|p| p.rejected_data_points),
            Some(1)
        );

        let all = store.select_sync("otel", &[], 0, i64::MAX).unwrap();
        let find = |name: &str, extra: &[(&str, &str)]| -> Option<f64> {
            all.iter()
                .find(|s| {
                    s.labels.metric_name() == Some(name)
                        && extra.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
                })
                .map(|s| {
                    assert_eq!(s.samples[0].t, t_ms);
                    s.samples[0].v
                })
        };
        let job = [
            ("job", "shop/checkout"),
            ("instance", "pod-1"),
            ("http_method", "GET"),
        ];
        assert_eq!(find("http_server_requests_total", &job), Some(42.0));
        assert_eq!(find("queue_depth", &job), Some(3.5));
        assert_eq!(
            find("http_server_duration_seconds_bucket", &[("le", "0.1")]),
            Some(1.0)
        );
        assert_eq!(
            find("http_server_duration_seconds_bucket", &[("le", "0.5")]),
            Some(3.0)
        );
        assert_eq!(
            find("http_server_duration_seconds_bucket", &[("le", "+Inf")]),
            Some(6.0)
        );
        assert_eq!(find("http_server_duration_seconds_sum", &[]), Some(1.5));
        assert_eq!(find("http_server_duration_seconds_count", &[]), Some(6.0));
        assert_eq!(
            find("rpc_latency_milliseconds", &[("quantile", "0.99")]),
            Some(9.5)
        );
        assert_eq!(find("rpc_latency_milliseconds_count", &[]), Some(10.0));
        assert!(
            find("delta_requests_total", &[]).is_none(),
            "delta sums are skipped"
        );
        let md = ember_storage::Querier::metadata(store.as_ref(), "otel", None)
            .await
            .unwrap();
        let kind = |n: &str| {
            md.iter()
                .find(|m| m.metric_family_name == n)
                .map(|m| m.metric_type)
        };
        assert_eq!(
            kind("http_server_requests_total"),
            Some(MetricType::Counter)
        );
        assert_eq!(
            kind("http_server_duration_seconds"),
            Some(MetricType::Histogram)
        );
        assert_eq!(kind("rpc_latency_milliseconds"), Some(MetricType::Summary));

        // Uncompressed works too; JSON and garbage are refused clearly.
        let (status, _) = post(
            &app,
            request(1).encode_to_vec(),
            "application/x-protobuf",
            None,
        )
        .await;
        assert_eq!(status, 200);
        let (status, body) = post(&app, b"{}".to_vec(), "text/plain", None).await;
        assert_eq!(status, 415, "{}", String::from_utf8_lossy(&body));
        let (status, body) = post(
            &app,
            b"{\"resourceMetrics\": 3}".to_vec(),
            "application/json",
            None,
        )
        .await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
        let (status, body) = post(
            &app,
            b"\xff\xff\xff".to_vec(),
            "application/x-protobuf",
            None,
        )
        .await;
        assert_eq!(status, 400);
        assert!(String::from_utf8_lossy(&body).contains("protobuf"));
        let (status, _) = post(
            &app,
            b"not gzip".to_vec(),
            "application/x-protobuf",
            Some("gzip"),
        )
        .await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn json_bodies_land_like_protobuf() {
        let store = std::sync::Arc::new(ember_storage::MemStorage::new());
        let app = crate::router(std::sync::Arc::new(crate::ApiState::new(store.clone())));
        // The shape of the OTLP specification's JSON example, with 64-bit values as strings.
        let body = br#"{"resourceMetrics":[{"resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"my.service"}}]},
          "scopeMetrics":[{"scope":{"name":"my.library"},"metrics":[
            {"name":"my.counter","unit":"1","description":"I am a Counter",
             "sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[
               {"asDouble":5,"startTimeUnixNano":"1544712660300000000",
                "timeUnixNano":"1544712660300000000",
                "attributes":[{"key":"my.counter.attr","value":{"stringValue":"some value"}}]}]}},
            {"name":"my.gauge","unit":"1","gauge":{"dataPoints":[
               {"asInt":"10","timeUnixNano":"1544712660300000000"}]}},
            {"name":"my.histogram","unit":"ms","histogram":{
               "aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE","dataPoints":[
               {"timeUnixNano":"1544712660300000000","count":"2","sum":2,
                "bucketCounts":["1","1"],"explicitBounds":[1],"min":0,"max":2}]}},
            {"name":"my.delta","sum":{"aggregationTemporality":1,"isMonotonic":true,
               "dataPoints":[{"asInt":"1","timeUnixNano":"1544712660300000000"}]}}]}]}]}"#;
        let (status, resp) = post(&app, body.to_vec(), "application/json", None).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
        let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
        assert_eq!(v["partialSuccess"]["rejectedDataPoints"], "1");
        let all = store.select_sync("otel", &[], 0, i64::MAX).unwrap();
        let find = |name: &str| {
            all.iter()
                .find(|s| s.labels.metric_name() == Some(name))
                .map(|s| (s.labels.clone(), s.samples[0]))
        };
        let (labels, sample) = find("my_counter_total").expect("counter");
        assert_eq!(labels.get("job"), Some("my.service"));
        assert_eq!(labels.get("my_counter_attr"), Some("some value"));
        assert_eq!(sample.t, 1_544_712_660_300);
        assert_eq!(sample.v, 5.0);
        assert_eq!(find("my_gauge_ratio").map(|(_, s)| s.v), Some(10.0));
        assert_eq!(
            find("my_histogram_milliseconds_count").map(|(_, s)| s.v),
            Some(2.0)
        );
        assert!(find("my_delta_total").is_none());
    }
}
