//! Prometheus remote write, versions 1.0 (`prometheus.WriteRequest`) and 2.0
//! (`io.prometheus.write.v2.Request`): protobuf messages, snappy block
//! decompression, and validation into Ember's model.
//!
//! The messages are hand-written `prost` derives: the upstream `.proto` files
//! import gogoproto and there is no `protoc` here (see docs/ARCHITECTURE.md).

pub mod pb;
mod validate;

pub use validate::{DecodedWrite, RemoteWriteError, decode_v1, decode_v2};

/// Which remote-write protocol a request speaks, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `prometheus.WriteRequest` (1.0), also the default without a `proto=` parameter.
    V1,
    /// `io.prometheus.write.v2.Request` (2.0).
    V2,
}

/// The v1 message name in the Content-Type `proto=` parameter.
pub const PROTO_V1: &str = "prometheus.WriteRequest";
/// The v2 message name in the Content-Type `proto=` parameter.
pub const PROTO_V2: &str = "io.prometheus.write.v2.Request";

/// Response header: samples written (remote write 2.0).
pub const HEADER_SAMPLES_WRITTEN: &str = "X-Prometheus-Remote-Write-Samples-Written";
/// Response header: histograms written (remote write 2.0).
pub const HEADER_HISTOGRAMS_WRITTEN: &str = "X-Prometheus-Remote-Write-Histograms-Written";
/// Response header: exemplars written (remote write 2.0).
pub const HEADER_EXEMPLARS_WRITTEN: &str = "X-Prometheus-Remote-Write-Exemplars-Written";

/// Picks the protocol from a Content-Type header (absent means 1.0, as Prometheus does).
/// Anything that is not protobuf or names an unknown message is an error (answer 415).
pub fn protocol_from_content_type(
    content_type: Option<&str>,
) -> Result<Protocol, RemoteWriteError> {
    let Some(ct) = content_type.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(Protocol::V1);
    };
    let mut parts = ct.split(';').map(str::trim);
    let media = parts.next().unwrap_or("");
    if !media.eq_ignore_ascii_case("application/x-protobuf") {
        return Err(RemoteWriteError::UnsupportedContentType(ct.to_string()));
    }
    for p in parts {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("proto")
        {
            return match v.trim().trim_matches('"') {
                PROTO_V1 => Ok(Protocol::V1),
                PROTO_V2 => Ok(Protocol::V2),
                other => Err(RemoteWriteError::UnsupportedContentType(format!(
                    "{ct} (unknown proto {other:?}; expected {PROTO_V1} or {PROTO_V2})"
                ))),
            };
        }
    }
    Ok(Protocol::V1)
}

/// Decompresses a snappy *block* body, refusing to expand beyond `max_decoded` bytes.
pub fn decompress_snappy(body: &[u8], max_decoded: usize) -> Result<Vec<u8>, RemoteWriteError> {
    let len =
        snap::raw::decompress_len(body).map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    if len > max_decoded {
        return Err(RemoteWriteError::TooLarge {
            size: len,
            limit: max_decoded,
            what: "decompressed body",
        });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| RemoteWriteError::Snappy(e.to_string()))
}

/// Decodes a whole request body: snappy, then the protobuf of `protocol`, then validation.
pub fn decode_request(
    body: &[u8],
    protocol: Protocol,
    max_decoded: usize,
) -> Result<DecodedWrite, RemoteWriteError> {
    let raw = decompress_snappy(body, max_decoded)?;
    match protocol {
        Protocol::V1 => decode_v1(&raw),
        Protocol::V2 => decode_v2(&raw),
    }
}

#[cfg(test)]
mod tests;
