//! Protobuf messages of remote write 1.0 (`prompb/remote.proto`, `prompb/types.proto`)
//! and 2.0 (`prompb/io/prometheus/write/v2/types.proto`), field numbers as upstream.
//! Native-histogram messages are decoded only far enough to detect them.

/// Remote write 1.0 request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// Series with samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Metric metadata (Prometheus sends it in separate, metadata-only requests).
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// A 1.0 series.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Float samples.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Exemplars.
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    /// Native histograms (not supported yet; presence is detected).
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<HistogramMarker>,
}

/// A label pair.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// A float sample (same wire shape in 1.0 and 2.0).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    /// Value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// A 1.0 exemplar.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Exemplar labels (e.g. trace_id).
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Value.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// A native histogram, decoded only as "present" (its fields are skipped).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct HistogramMarker {}

/// 1.0 metric metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// Metric type enum (0 unknown, 1 counter, 2 gauge, 3 histogram, 4 gaugehistogram,
    /// 5 summary, 6 info, 7 stateset).
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Family name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// HELP text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// Unit.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// Remote write 2.0 request: a symbol table and series referring into it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestV2 {
    /// Interned strings; `symbols[0]` must be the empty string.
    #[prost(string, repeated, tag = "4")]
    pub symbols: Vec<String>,
    /// Series.
    #[prost(message, repeated, tag = "5")]
    pub timeseries: Vec<TimeSeriesV2>,
}

/// A 2.0 series.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeriesV2 {
    /// Pairs of (name, value) references into `symbols`.
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    /// Float samples.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Native histograms (not supported yet; presence is detected).
    #[prost(message, repeated, tag = "3")]
    pub histograms: Vec<HistogramMarker>,
    /// Exemplars.
    #[prost(message, repeated, tag = "4")]
    pub exemplars: Vec<ExemplarV2>,
    /// Metadata of this series.
    #[prost(message, optional, tag = "5")]
    pub metadata: Option<MetadataV2>,
    /// Created timestamp (ms), 0 when unknown.
    #[prost(int64, tag = "6")]
    pub created_timestamp: i64,
}

/// A 2.0 exemplar.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExemplarV2 {
    /// Label references into `symbols`.
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    /// Value.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// 2.0 metadata.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct MetadataV2 {
    /// Metric type enum (same numbering as 1.0; 0 unspecified).
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// HELP text reference into `symbols`.
    #[prost(uint32, tag = "3")]
    pub help_ref: u32,
    /// Unit reference into `symbols`.
    #[prost(uint32, tag = "4")]
    pub unit_ref: u32,
}

/// Converts the protobuf metric-type number into the model's type.
pub fn metric_type(n: i32) -> ember_model::MetricType {
    use ember_model::MetricType::*;
    match n {
        1 => Counter,
        2 => Gauge,
        3 => Histogram,
        4 => Gaugehistogram,
        5 => Summary,
        6 => Info,
        7 => Stateset,
        _ => Unknown,
    }
}

/// Converts the model's metric type into the protobuf number.
pub fn metric_type_number(t: ember_model::MetricType) -> i32 {
    use ember_model::MetricType::*;
    match t {
        Unknown => 0,
        Counter => 1,
        Gauge => 2,
        Histogram => 3,
        Gaugehistogram => 4,
        Summary => 5,
        Info => 6,
        Stateset => 7,
    }
}
