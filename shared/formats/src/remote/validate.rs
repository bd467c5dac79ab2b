//! Turning decoded protobuf into validated model types.
//!
//! Validation is all-or-nothing: the first bad series fails the whole request,
//! so nothing of a bad request is stored.

use ember_model::sample::sort_and_dedup_samples;
use ember_model::{Label, Labels, METRIC_NAME, MetricMetadata, Sample, Series};
use prost::Message;

use super::pb;

/// A remote-write request that was decoded and validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodedWrite {
    /// Series with their float samples (sorted, one per timestamp).
    pub series: Vec<Series>,
    /// Metadata carried by the request.
    pub metadata: Vec<MetricMetadata>,
    /// Exemplars seen (parsed, not stored).
    pub exemplars: usize,
}

impl DecodedWrite {
    /// Number of float samples.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
}

/// Why a remote-write request was refused. Every variant is a client error.
#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    /// Content-Type is not protobuf or names an unknown message (HTTP 415).
    #[error(
        "unsupported Content-Type {0:?}: remote write needs application/x-protobuf (proto=prometheus.WriteRequest or io.prometheus.write.v2.Request)"
    )]
    UnsupportedContentType(String),
    /// Content-Encoding is not snappy (HTTP 415).
    #[error(
        "unsupported Content-Encoding {0:?}: remote write bodies must be snappy block-compressed"
    )]
    UnsupportedEncoding(String),
    /// The body is larger than allowed (HTTP 413).
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Actual size.
        size: usize,
        /// The limit.
        limit: usize,
        /// Which size was checked.
        what: &'static str,
    },
    /// The body is not valid snappy (HTTP 400).
    #[error("corrupt snappy body: {0}")]
    Snappy(String),
    /// The body is not a valid protobuf of the expected message (HTTP 400).
    #[error("corrupt protobuf {message}: {reason}")]
    Protobuf {
        /// The message type expected.
        message: &'static str,
        /// The decoder's explanation.
        reason: String,
    },
    /// A series is invalid (HTTP 400).
    #[error("invalid series {series}: {reason}")]
    InvalidSeries {
        /// The offending series, as written.
        series: String,
        /// What is wrong.
        reason: String,
    },
    /// A series carries native histograms, which are not supported yet (HTTP 400).
    #[error(
        "native histogram samples are not supported yet (first offending series: {series}); nothing of this request was stored"
    )]
    NativeHistogram {
        /// The first offending series.
        series: String,
    },
}

impl RemoteWriteError {
    /// The HTTP status this error answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            RemoteWriteError::UnsupportedContentType(_)
            | RemoteWriteError::UnsupportedEncoding(_) => 415,
            RemoteWriteError::TooLarge { .. } => 413,
            _ => 400,
        }
    }
}

fn describe(labels: &[(&str, &str)]) -> String {
    let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Validates raw label pairs into a label set: no empty or duplicate names, a non-empty
/// metric name. Empty values mean "absent" and are dropped, as Prometheus does.
fn build_labels(pairs: &[(&str, &str)]) -> Result<Labels, RemoteWriteError> {
    let invalid = |reason: String| RemoteWriteError::InvalidSeries {
        series: describe(pairs),
        reason,
    };
    let mut labels: Vec<Label> = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        if name.is_empty() {
            return Err(invalid("empty label name".into()));
        }
        if !value.is_empty() {
            labels.push(Label::new(*name, *value));
        }
    }
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = labels.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(invalid(format!("duplicate label name {:?}", w[0].name)));
    }
    if let Some(dup) = duplicate_name_among_empty(pairs) {
        return Err(invalid(format!("duplicate label name {dup:?}")));
    }
    if !labels.iter().any(|l| l.name == METRIC_NAME) {
        return Err(invalid("missing metric name (__name__ label)".into()));
    }
    Ok(Labels::from_sorted_unchecked(labels))
}

/// A name repeated in the raw pairs even when one of the values is empty.
fn duplicate_name_among_empty<'a>(pairs: &[(&'a str, &str)]) -> Option<&'a str> {
    let mut names: Vec<&str> = pairs.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

fn samples(raw: &[pb::Sample]) -> Vec<Sample> {
    let mut s: Vec<Sample> = raw
        .iter()
        .map(|s| Sample::new(s.timestamp, s.value))
        .collect();
    sort_and_dedup_samples(&mut s);
    s
}

/// Decodes and validates an uncompressed remote write 1.0 `WriteRequest`.
pub fn decode_v1(raw: &[u8]) -> Result<DecodedWrite, RemoteWriteError> {
    let req = pb::WriteRequest::decode(raw).map_err(|e| RemoteWriteError::Protobuf {
        message: "prometheus.WriteRequest",
        reason: e.to_string(),
    })?;
    let mut out = DecodedWrite::default();
    out.series.reserve(req.timeseries.len());
    for ts in &req.timeseries {
        let pairs: Vec<(&str, &str)> = ts
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        if !ts.histograms.is_empty() {
            return Err(RemoteWriteError::NativeHistogram {
                series: describe(&pairs),
            });
        }
        let labels = build_labels(&pairs)?;
        out.exemplars += ts.exemplars.len();
        if !ts.samples.is_empty() {
            out.series.push(Series::new(labels, samples(&ts.samples)));
        }
    }
    out.metadata = req
        .metadata
        .into_iter()
        .filter(|m| !m.metric_family_name.is_empty())
        .map(|m| MetricMetadata {
            metric_type: pb::metric_type(m.r#type),
            metric_family_name: m.metric_family_name,
            help: m.help,
            unit: m.unit,
        })
        .collect();
    Ok(out)
}

/// Decodes and validates an uncompressed remote write 2.0 `Request`.
pub fn decode_v2(raw: &[u8]) -> Result<DecodedWrite, RemoteWriteError> {
    let req = pb::RequestV2::decode(raw).map_err(|e| RemoteWriteError::Protobuf {
        message: "io.prometheus.write.v2.Request",
        reason: e.to_string(),
    })?;
    let symbol = |r: u32| -> Result<&str, RemoteWriteError> {
        req.symbols
            .get(r as usize)
            .map(String::as_str)
            .ok_or_else(|| RemoteWriteError::Protobuf {
                message: "io.prometheus.write.v2.Request",
                reason: format!(
                    "symbol reference {r} out of range (table has {} symbols)",
                    req.symbols.len()
                ),
            })
    };
    let mut out = DecodedWrite::default();
    out.series.reserve(req.timeseries.len());
    for ts in &req.timeseries {
        if ts.labels_refs.len() % 2 != 0 {
            return Err(RemoteWriteError::Protobuf {
                message: "io.prometheus.write.v2.Request",
                reason: "odd number of label references".into(),
            });
        }
        let mut pairs = Vec::with_capacity(ts.labels_refs.len() / 2);
        for p in ts.labels_refs.chunks_exact(2) {
            pairs.push((symbol(p[0])?, symbol(p[1])?));
        }
        if !ts.histograms.is_empty() {
            return Err(RemoteWriteError::NativeHistogram {
                series: describe(&pairs),
            });
        }
        let labels = build_labels(&pairs)?;
        out.exemplars += ts.exemplars.len();
        if let Some(md) = ts.metadata
            && (md.r#type != 0 || md.help_ref != 0 || md.unit_ref != 0)
            && let Some(name) = labels.metric_name()
        {
            out.metadata.push(MetricMetadata {
                metric_family_name: name.to_string(),
                metric_type: pb::metric_type(md.r#type),
                help: symbol(md.help_ref)?.to_string(),
                unit: symbol(md.unit_ref)?.to_string(),
            });
        }
        if !ts.samples.is_empty() {
            out.series.push(Series::new(labels, samples(&ts.samples)));
        }
    }
    Ok(out)
}
