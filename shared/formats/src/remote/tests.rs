use prost::Message;

use super::*;
use ember_model::{MetricType, is_stale_nan, stale_nan};

fn sample_file(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/samples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn label(n: &str, v: &str) -> pb::Label {
    pb::Label {
        name: n.into(),
        value: v.into(),
    }
}

fn v1(series: Vec<pb::TimeSeries>) -> Vec<u8> {
    pb::WriteRequest {
        timeseries: series,
        metadata: vec![],
    }
    .encode_to_vec()
}

#[test]
fn decodes_real_prometheus_request() {
    let w = decode_request(
        &sample_file("prometheus-remote-write-sample.bin"),
        Protocol::V1,
        64 << 20,
    )
    .unwrap();
    assert_eq!(w.series.len(), 512);
    assert_eq!(w.sample_count(), 512);
    let first = &w.series[0].labels;
    assert_eq!(first.metric_name(), Some("go_gc_duration_seconds"));
    assert_eq!(first.get("source"), Some("agent"));
}

#[test]
fn decodes_real_k6_request() {
    let w = decode_request(
        &sample_file("k6-remote-write-sample.bin"),
        Protocol::V1,
        64 << 20,
    )
    .unwrap();
    assert_eq!(w.series.len(), 16);
    assert!(
        w.series
            .iter()
            .any(|s| s.labels.metric_name() == Some("k6_http_reqs_total"))
    );
}

#[test]
fn content_type_selects_protocol() {
    assert_eq!(protocol_from_content_type(None).unwrap(), Protocol::V1);
    assert_eq!(
        protocol_from_content_type(Some("application/x-protobuf")).unwrap(),
        Protocol::V1
    );
    assert_eq!(
        protocol_from_content_type(Some(
            "application/x-protobuf;proto=io.prometheus.write.v2.Request"
        ))
        .unwrap(),
        Protocol::V2
    );
    let e = protocol_from_content_type(Some("application/json")).unwrap_err();
    assert_eq!(e.status_code(), 415);
    assert_eq!(
        protocol_from_content_type(Some("application/x-protobuf;proto=foo"))
            .unwrap_err()
            .status_code(),
        415
    );
}

#[test]
fn keeps_stale_markers_and_metadata_only_requests() {
    let raw = pb::WriteRequest {
        timeseries: vec![pb::TimeSeries {
            labels: vec![label("__name__", "up"), label("job", "x")],
            samples: vec![
                pb::Sample {
                    value: stale_nan(),
                    timestamp: 5,
                },
                pb::Sample {
                    value: 1.0,
                    timestamp: 1,
                },
            ],
            ..Default::default()
        }],
        metadata: vec![],
    };
    let w = decode_v1(&raw.encode_to_vec()).unwrap();
    assert_eq!(w.series[0].samples[0].t, 1);
    assert!(is_stale_nan(w.series[0].samples[1].v));

    let md_only = pb::WriteRequest {
        timeseries: vec![],
        metadata: vec![pb::MetricMetadata {
            r#type: 1,
            metric_family_name: "node_cpu_seconds_total".into(),
            help: "Seconds.".into(),
            unit: String::new(),
        }],
    };
    let w = decode_v1(&md_only.encode_to_vec()).unwrap();
    assert!(w.series.is_empty());
    assert_eq!(w.metadata[0].metric_type, MetricType::Counter);
}

#[test]
fn rejects_bad_series_naming_them() {
    let no_name = v1(vec![pb::TimeSeries {
        labels: vec![label("job", "x")],
        samples: vec![pb::Sample {
            value: 1.0,
            timestamp: 1,
        }],
        ..Default::default()
    }]);
    let e = decode_v1(&no_name).unwrap_err().to_string();
    assert!(
        e.contains("missing metric name") && e.contains("job=\"x\""),
        "{e}"
    );

    let dup = v1(vec![pb::TimeSeries {
        labels: vec![label("__name__", "a"), label("x", "1"), label("x", "2")],
        samples: vec![pb::Sample {
            value: 1.0,
            timestamp: 1,
        }],
        ..Default::default()
    }]);
    assert!(
        decode_v1(&dup)
            .unwrap_err()
            .to_string()
            .contains("duplicate label name \"x\"")
    );

    let empty = v1(vec![pb::TimeSeries {
        labels: vec![label("__name__", "a"), label("", "1")],
        samples: vec![pb::Sample {
            value: 1.0,
            timestamp: 1,
        }],
        ..Default::default()
    }]);
    assert!(
        decode_v1(&empty)
            .unwrap_err()
            .to_string()
            .contains("empty label name")
    );
}

#[test]
fn native_histograms_are_refused_whole() {
    let req = v1(vec![
        pb::TimeSeries {
            labels: vec![label("__name__", "ok")],
            samples: vec![pb::Sample {
                value: 1.0,
                timestamp: 1,
            }],
            ..Default::default()
        },
        pb::TimeSeries {
            labels: vec![label("__name__", "k6_http_req_duration_seconds")],
            histograms: vec![pb::HistogramMarker {}],
            ..Default::default()
        },
    ]);
    let e = decode_v1(&req).unwrap_err();
    assert_eq!(e.status_code(), 400);
    assert!(e.to_string().contains("k6_http_req_duration_seconds"));
}

#[test]
fn corrupt_bodies_are_client_errors() {
    assert!(matches!(
        decompress_snappy(b"\xff\xff\xff\xff\xff", 1 << 20),
        Err(RemoteWriteError::Snappy(_))
    ));
    let body = snap::raw::Encoder::new()
        .compress_vec(b"\x0a\x05garbage")
        .unwrap();
    assert!(matches!(
        decode_request(&body, Protocol::V1, 1 << 20),
        Err(RemoteWriteError::Protobuf { .. })
    ));
    let big = snap::raw::Encoder::new()
        .compress_vec(&vec![0u8; 1000])
        .unwrap();
    assert_eq!(
        decode_request(&big, Protocol::V1, 100)
            .unwrap_err()
            .status_code(),
        413
    );
}

#[test]
fn decodes_v2_with_symbols_and_metadata() {
    let req = pb::RequestV2 {
        symbols: vec![
            "".into(),
            "__name__".into(),
            "http_requests_total".into(),
            "job".into(),
            "api".into(),
            "Requests.".into(),
        ],
        timeseries: vec![pb::TimeSeriesV2 {
            labels_refs: vec![1, 2, 3, 4],
            samples: vec![pb::Sample {
                value: 3.0,
                timestamp: 1000,
            }],
            metadata: Some(pb::MetadataV2 {
                r#type: 1,
                help_ref: 5,
                unit_ref: 0,
            }),
            ..Default::default()
        }],
    };
    let w = decode_v2(&req.encode_to_vec()).unwrap();
    assert_eq!(w.series[0].labels.get("job"), Some("api"));
    assert_eq!(w.metadata[0].help, "Requests.");
    assert_eq!(w.metadata[0].metric_type, MetricType::Counter);

    let bad_ref = pb::RequestV2 {
        symbols: vec!["".into()],
        timeseries: vec![pb::TimeSeriesV2 {
            labels_refs: vec![1, 2],
            ..Default::default()
        }],
    };
    assert!(
        decode_v2(&bad_ref.encode_to_vec())
            .unwrap_err()
            .to_string()
            .contains("out of range")
    );
}
