//! Router tests: requests in, Prometheus-shaped responses out, over the in-memory store.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ember_formats::remote::pb;
use ember_storage::MemStorage;
use prost::Message;
use tower::ServiceExt;

use super::*;

fn app() -> (Router, Arc<MemStorage>) {
    let store = Arc::new(MemStorage::new());
    (router(Arc::new(ApiState::new(store.clone()))), store)
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String, axum::http::HeaderMap) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned(), headers)
}

fn write_body(series: &[(&str, &str, i64, f64)]) -> Vec<u8> {
    let req = pb::WriteRequest {
        timeseries: series
            .iter()
            .map(|(name, job, t, v)| pb::TimeSeries {
                labels: vec![
                    pb::Label {
                        name: "__name__".into(),
                        value: (*name).into(),
                    },
                    pb::Label {
                        name: "job".into(),
                        value: (*job).into(),
                    },
                ],
                samples: vec![pb::Sample {
                    value: *v,
                    timestamp: *t,
                }],
                ..Default::default()
            })
            .collect(),
        metadata: vec![],
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

fn post_write(path: &str, body: Vec<u8>, content_type: &str) -> Request<Body> {
    Request::post(path)
        .header("Content-Type", content_type)
        .header("Content-Encoding", "snappy")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn remote_write_lands_per_tenant() {
    let (app, store) = app();
    let body = write_body(&[("up", "a", 1000, 1.0), ("up", "b", 1000, 0.0)]);
    let (status, _, _) = send(
        &app,
        post_write("/api/v1/write", body.clone(), "application/x-protobuf"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = send(
        &app,
        post_write(
            "/workspaces/ws-1/api/v1/remote_write",
            body,
            "application/x-protobuf",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(store.select_sync("default", &[], 0, 5000).unwrap().len(), 2);
    assert_eq!(store.select_sync("ws-1", &[], 0, 5000).unwrap().len(), 2);
}

#[tokio::test]
async fn remote_write_refuses_bad_requests_clearly() {
    let (app, store) = app();
    let (status, body, _) = send(
        &app,
        post_write(
            "/api/v1/write",
            b"garbage".to_vec(),
            "application/x-protobuf",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("snappy"), "{body}");
    let (status, _, _) = send(
        &app,
        post_write("/api/v1/write", write_body(&[]), "application/json"),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let req = Request::post("/api/v1/write")
        .header("Content-Encoding", "gzip")
        .body(Body::from(write_body(&[])))
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        store
            .select_sync("default", &[], i64::MIN, i64::MAX)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn remote_write_v2_reports_written_counts() {
    let (app, _) = app();
    let req = pb::RequestV2 {
        symbols: vec!["".into(), "__name__".into(), "up".into()],
        timeseries: vec![pb::TimeSeriesV2 {
            labels_refs: vec![1, 2],
            samples: vec![
                pb::Sample {
                    value: 1.0,
                    timestamp: 1,
                },
                pb::Sample {
                    value: 1.0,
                    timestamp: 2,
                },
            ],
            ..Default::default()
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let (status, _, headers) = send(
        &app,
        post_write(
            "/api/v1/write",
            body,
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers["X-Prometheus-Remote-Write-Samples-Written"], "2");
}

#[tokio::test]
async fn series_labels_and_values() {
    let (app, _) = app();
    let body = write_body(&[
        ("up", "a", 1000, 1.0),
        ("up", "b", 1000, 0.0),
        ("other", "a", 1000, 3.0),
    ]);
    send(
        &app,
        post_write("/api/v1/write", body, "application/x-protobuf"),
    )
    .await;

    let (status, body, _) = send(
        &app,
        Request::get("/api/v1/series?match[]=up")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        r#"{"status":"success","data":[{"__name__":"up","job":"a"},{"__name__":"up","job":"b"}]}"#
    );
    let (_, body, _) = send(
        &app,
        Request::get("/api/v1/label/job/values")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(body, r#"{"status":"success","data":["a","b"]}"#);
    // Body and URL parameters merge: match[] from the body, start from the URL.
    let req = Request::post("/api/v1/labels?start=0")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(Body::from("match[]=other"))
        .unwrap();
    let (_, body, _) = send(&app, req).await;
    assert_eq!(body, r#"{"status":"success","data":["__name__","job"]}"#);
    let (status, body, _) = send(
        &app,
        Request::get("/api/v1/series").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        r#"{"status":"error","errorType":"bad_data","error":"no match[] parameter provided"}"#
    );
}

#[tokio::test]
async fn query_range_parameter_errors() {
    let (app, _) = app();
    let get = |q: &str| {
        Request::get(format!("/api/v1/query_range?{q}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, body, _) = send(&app, get("query=up&start=10&end=0&step=1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("end timestamp must not be before start time"),
        "{body}"
    );
    let (_, body, _) = send(&app, get("query=up&start=0&end=100000&step=1")).await;
    assert!(
        body.contains("exceeded maximum resolution of 11,000 points"),
        "{body}"
    );
    let (_, body, _) = send(&app, get("query=up&start=0&end=10&step=0")).await;
    assert!(
        body.contains("zero or negative query resolution step"),
        "{body}"
    );
    let (_, body, _) = send(&app, get("query=up&start=yesterday&end=10&step=1")).await;
    assert!(body.contains(r#"invalid parameter \"start\""#), "{body}");
}

#[tokio::test]
async fn health_and_unknown_paths() {
    let (app, _) = app();
    assert_eq!(
        send(
            &app,
            Request::get("/-/healthy").body(Body::empty()).unwrap()
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, Request::get("/-/ready").body(Body::empty()).unwrap())
            .await
            .0,
        StatusCode::OK
    );
    let (status, body, _) = send(
        &app,
        Request::get("/api/v1/nope").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("not_found"));
    let (_, body, _) = send(
        &app,
        Request::get("/api/v1/status/buildinfo")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(body.contains("\"version\":\"3.5.0\""), "{body}");
}

#[tokio::test]
async fn grafana_save_and_test_and_queries() {
    let (app, _) = app();
    // Grafana's health check: POST form body `query=1+1&time=4` (the + URL-encoded).
    let req = Request::post("/api/v1/query")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(Body::from("query=1%2B1&time=4"))
        .unwrap();
    let (status, body, headers) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"scalar","result":[4,"2"]}}"#
    );

    let body = write_body(&[("up", "a", 10_000, 1.0), ("up", "b", 10_000, 0.5)]);
    send(
        &app,
        post_write("/api/v1/write", body, "application/x-protobuf"),
    )
    .await;
    let get = |q: &str| {
        Request::get(format!("/api/v1/{q}"))
            .body(Body::empty())
            .unwrap()
    };
    let (_, body, _) = send(&app, get("query?query=sum(up)&time=10.5")).await;
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[10.5,"1.5"]}]}}"#
    );
    let (_, body, _) = send(
        &app,
        get("query_range?query=up%7Bjob%3D%22b%22%7D&start=10&end=12&step=1"),
    )
    .await;
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"b"},"values":[[10,"0.5"],[11,"0.5"],[12,"0.5"]]}]}}"#
    );
    // A parse error is 400 bad_data naming the parameter, with the parser's position.
    let (status, body, _) = send(&app, get("query?query=sum(")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains(r#""errorType":"bad_data","error":"invalid parameter \"query\": "#),
        "{body}"
    );
    // Tenants do not see each other's data.
    let (_, body, _) = send(
        &app,
        get("../../workspaces/other/api/v1/query?query=up&time=10"),
    )
    .await;
    assert!(!body.contains("\"job\""), "{body}");
}

#[tokio::test]
async fn pushgateway_style_push_lands_with_grouping_labels() {
    let (app, store) = app();
    let body = "# TYPE some_metric counter\nsome_metric{label=\"val1\",job=\"overridden\"} 42\n";
    let req = Request::post("/metrics/job/some_job/instance/some_instance")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::OK);
    let got = store
        .select_sync(
            "default",
            &[ember_model::Matcher::equal("__name__", "some_metric")],
            0,
            i64::MAX,
        )
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].labels.get("job"),
        Some("some_job"),
        "grouping labels win"
    );
    assert_eq!(got[0].labels.get("instance"), Some("some_instance"));
    assert_eq!(got[0].samples[0].v, 42.0);
    let push_time = store
        .select_sync(
            "default",
            &[ember_model::Matcher::equal("__name__", "push_time_seconds")],
            0,
            i64::MAX,
        )
        .unwrap();
    assert_eq!(push_time.len(), 1);
    // Timestamps are refused whole, as the Pushgateway does; a bad body names the line.
    let req = Request::put("/metrics/job/x")
        .body(Body::from("m 1 1700000000000\n"))
        .unwrap();
    let (status, body, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("must not have timestamps"), "{body}");
    let req = Request::put("/metrics/job/x")
        .body(Body::from("m{ 1\n"))
        .unwrap();
    let (status, body, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("line 1"), "{body}");
    assert!(
        store
            .select_sync(
                "default",
                &[ember_model::Matcher::equal("job", "x")],
                0,
                i64::MAX
            )
            .unwrap()
            .is_empty()
    );
    let req = Request::delete("/metrics/job/some_job")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::ACCEPTED);
}
