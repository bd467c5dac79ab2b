use super::*;

fn get<'p>(page: &'p ParsedPage, series: &str) -> &'p ParsedSample {
    page.samples
        .iter()
        .find(|s| s.labels.to_string() == series)
        .unwrap_or_else(|| {
            panic!(
                "series {series} not found in {:#?}",
                page.samples
                    .iter()
                    .map(|s| s.labels.to_string())
                    .collect::<Vec<_>>()
            )
        })
}

/// What Spring Boot 3 (Micrometer's Prometheus registry) serves on `/actuator/prometheus`.
const SPRING_BOOT: &str = r#"# HELP application_ready_time_seconds Time taken for the application to be ready to service requests
# TYPE application_ready_time_seconds gauge
application_ready_time_seconds{main_application_class="com.example.demo.DemoApplication",} 3.482
# HELP jvm_memory_used_bytes The amount of used memory
# TYPE jvm_memory_used_bytes gauge
jvm_memory_used_bytes{area="heap",id="G1 Eden Space",} 2.5165824E7
jvm_memory_used_bytes{area="heap",id="G1 Old Gen",} 1.4680064E7
jvm_memory_used_bytes{area="nonheap",id="Metaspace",} 4.1582416E7
# HELP http_server_requests_seconds Duration of HTTP server request handling
# TYPE http_server_requests_seconds histogram
http_server_requests_seconds_bucket{error="none",exception="none",method="GET",outcome="SUCCESS",status="200",uri="/actuator/prometheus",le="0.001",} 0.0
http_server_requests_seconds_bucket{error="none",exception="none",method="GET",outcome="SUCCESS",status="200",uri="/actuator/prometheus",le="0.005",} 2.0
http_server_requests_seconds_bucket{error="none",exception="none",method="GET",outcome="SUCCESS",status="200",uri="/actuator/prometheus",le="1",} 3.0
http_server_requests_seconds_bucket{error="none",exception="none",method="GET",outcome="SUCCESS",status="200",uri="/actuator/prometheus",le="+Inf",} 3.0
http_server_requests_seconds_count{error="none",exception="none",method="GET",outcome="SUCCESS",status="200",uri="/actuator/prometheus",} 3.0
http_server_requests_seconds_sum{error="none",exception="none",method="GET",outcome="SUCCESS",status="200",uri="/actuator/prometheus",} 0.009812
# HELP http_server_requests_seconds_max Duration of HTTP server request handling
# TYPE http_server_requests_seconds_max gauge
http_server_requests_seconds_max{error="none",exception="none",method="GET",outcome="SUCCESS",status="200",uri="/actuator/prometheus",} 0.004511
# HELP logback_events_total Number of log events that were enabled by the effective log level
# TYPE logback_events_total counter
logback_events_total{level="error",} 0.0
logback_events_total{level="warn",} 1.0
# HELP jvm_gc_pause_seconds Time spent in GC pause
# TYPE jvm_gc_pause_seconds summary
jvm_gc_pause_seconds_count{action="end of minor GC",cause="G1 Evacuation Pause",gc="G1 Young Generation",} 4.0
jvm_gc_pause_seconds_sum{action="end of minor GC",cause="G1 Evacuation Pause",gc="G1 Young Generation",} 0.031
# HELP process_uptime_seconds The uptime of the Java virtual machine
# TYPE process_uptime_seconds gauge
process_uptime_seconds 118.67
"#;

#[test]
fn spring_boot_actuator_page() {
    let page = parse_all(SPRING_BOOT.as_bytes(), Format::PrometheusText).unwrap();
    assert_eq!(page.samples.len(), 16);
    let s = get(
        &page,
        r#"jvm_memory_used_bytes{area="heap", id="G1 Eden Space"}"#,
    );
    assert_eq!(s.value, 25_165_824.0);
    assert_eq!(s.timestamp_ms, None);
    // `le` is normalised as in Prometheus 3: "1" becomes "1.0"; "+Inf" stays.
    let b = get(
        &page,
        r#"http_server_requests_seconds_bucket{error="none", exception="none", le="1.0", method="GET", outcome="SUCCESS", status="200", uri="/actuator/prometheus"}"#,
    );
    assert_eq!(b.value, 3.0);
    assert!(
        page.samples
            .iter()
            .any(|s| s.labels.get("le") == Some("+Inf"))
    );
    assert!(
        page.samples
            .iter()
            .any(|s| s.labels.get("le") == Some("0.005"))
    );
    let gc = get(
        &page,
        r#"jvm_gc_pause_seconds_count{action="end of minor GC", cause="G1 Evacuation Pause", gc="G1 Young Generation"}"#,
    );
    assert_eq!(gc.value, 4.0);
    assert_eq!(get(&page, "process_uptime_seconds{}").value, 118.67);
    let meta = page
        .metadata
        .iter()
        .find(|m| m.metric_family_name == "http_server_requests_seconds")
        .unwrap();
    assert_eq!(meta.metric_type, MetricType::Histogram);
    assert_eq!(meta.help, "Duration of HTTP server request handling");
    assert_eq!(
        page.metadata
            .iter()
            .find(|m| m.metric_family_name == "logback_events_total")
            .unwrap()
            .metric_type,
        MetricType::Counter
    );
}

/// A custom exporter's gauge, with escapes, a timestamp, special values and odd spacing.
const CUSTOM_GAUGE: &str =
    "# HELP shop_queue_depth Jobs waiting in a queue.\\nOne series per queue \\\\ worker.
# TYPE shop_queue_depth gauge
shop_queue_depth{queue=\"emails\",worker=\"w-1\"} 42
shop_queue_depth{queue=\"reports\", worker=\"w\\\"2\\\"\"} 7 1700000000123
shop_queue_depth{ queue = \"path\\\\to\\nq\" }\t-3.5e2
shop_queue_depth{queue=\"dead\",worker=\"\"} NaN

# a plain comment
shop_temperature_celsius +Inf
shop_temperature_min_celsius -Inf
";

#[test]
fn custom_exporter_gauge() {
    let page = parse_all(CUSTOM_GAUGE.as_bytes(), Format::PrometheusText).unwrap();
    assert_eq!(page.samples.len(), 6);
    assert_eq!(
        get(&page, r#"shop_queue_depth{queue="emails", worker="w-1"}"#).value,
        42.0
    );
    let r = &page.samples[1];
    assert_eq!(r.labels.get("worker"), Some("w\"2\""));
    assert_eq!(r.timestamp_ms, Some(1_700_000_000_123));
    let p = &page.samples[2];
    assert_eq!(p.labels.get("queue"), Some("path\\to\nq"));
    assert_eq!(p.value, -350.0);
    let dead = &page.samples[3];
    assert!(dead.value.is_nan() && !ember_model::is_stale_nan(dead.value));
    assert_eq!(
        dead.labels.get("worker"),
        None,
        "empty label values mean absent"
    );
    assert_eq!(page.samples[4].value, f64::INFINITY);
    assert_eq!(page.samples[5].value, f64::NEG_INFINITY);
    let m = &page.metadata[0];
    assert_eq!(m.metric_type, MetricType::Gauge);
    assert_eq!(
        m.help,
        "Jobs waiting in a queue.\nOne series per queue \\ worker."
    );
}

const OPENMETRICS: &str = r#"# TYPE http_requests counter
# HELP http_requests Requests served, by code.
http_requests_total{code="200"} 1027 1395066363.000
http_requests_created{code="200"} 1395066000.0
http_requests_total{code="500"} 3 # {trace_id="KOO5S4vxi0o"} 1.0 1395066363.5
# TYPE rpc_duration_seconds histogram
# UNIT rpc_duration_seconds seconds
# HELP rpc_duration_seconds RPC latency with \"quotes\".
rpc_duration_seconds_bucket{le="0.1"} 3 # {trace_id="oHg5SJYRHA0",span_id="a1"} 0.067 1395066363.123
rpc_duration_seconds_bucket{le="1"} 4
rpc_duration_seconds_bucket{le="+Inf"} 5 # {} 9.1
rpc_duration_seconds_count 5
rpc_duration_seconds_sum 1.2
rpc_duration_seconds_created 1395066000.0
# TYPE build info
build_info{version="1.2.3"} 1
# TYPE feature stateset
feature{feature="a"} 1
feature{feature="b"} 0
# EOF
"#;

#[test]
fn openmetrics_with_exemplars_created_and_eof() {
    let page = parse_all(OPENMETRICS.as_bytes(), Format::OpenMetrics).unwrap();
    assert_eq!(page.samples.len(), 12);
    let t = get(&page, r#"http_requests_total{code="200"}"#);
    assert_eq!(
        t.timestamp_ms,
        Some(1_395_066_363_000),
        "OpenMetrics timestamps are seconds"
    );
    assert!(t.exemplar.is_none());
    // `_created` is an ordinary series, as in Prometheus by default.
    assert_eq!(
        get(&page, r#"http_requests_created{code="200"}"#).value,
        1_395_066_000.0
    );
    let e = get(&page, r#"http_requests_total{code="500"}"#)
        .exemplar
        .clone()
        .unwrap();
    assert_eq!(e.labels.get("trace_id"), Some("KOO5S4vxi0o"));
    assert_eq!(e.timestamp_ms, Some(1_395_066_363_500));
    let b = get(&page, r#"rpc_duration_seconds_bucket{le="0.1"}"#);
    let be = b.exemplar.as_ref().unwrap();
    assert_eq!((be.value, be.labels.len()), (0.067, 2));
    assert_eq!(
        get(&page, r#"rpc_duration_seconds_bucket{le="1.0"}"#).value,
        4.0
    );
    let inf = get(&page, r#"rpc_duration_seconds_bucket{le="+Inf"}"#);
    assert_eq!(inf.exemplar.as_ref().unwrap().labels.len(), 0);
    let m = page
        .metadata
        .iter()
        .find(|m| m.metric_family_name == "rpc_duration_seconds")
        .unwrap();
    assert_eq!(
        (m.metric_type, m.unit.as_str(), m.help.as_str()),
        (
            MetricType::Histogram,
            "seconds",
            "RPC latency with \"quotes\"."
        )
    );
    assert_eq!(
        page.metadata
            .iter()
            .find(|m| m.metric_family_name == "build")
            .unwrap()
            .metric_type,
        MetricType::Info
    );
    assert_eq!(get(&page, r#"feature{feature="b"}"#).value, 0.0);
}

#[test]
fn utf8_quoted_names() {
    let page = parse_all(
        "# TYPE \"my.metric\" gauge\n{\"my.metric\", \"error.message\"=\"Not Found\", code=\"404\"} 1\n".as_bytes(),
        Format::PrometheusText,
    )
    .unwrap();
    let s = &page.samples[0];
    assert_eq!(s.labels.metric_name(), Some("my.metric"));
    assert_eq!(s.labels.get("error.message"), Some("Not Found"));
    assert_eq!(page.metadata[0].metric_family_name, "my.metric");
}

#[test]
fn streaming_parser_borrows_and_exposes_series_text() {
    let input = b"# TYPE a counter\na_total{x=\"1\"} 5 1000\n";
    let mut p = Parser::new(input, Format::PrometheusText).unwrap();
    assert!(matches!(p.next_entry().unwrap(), Some(Entry::Type { .. })));
    match p.next_entry().unwrap() {
        Some(Entry::Sample(s)) => {
            assert_eq!(s.series, "a_total{x=\"1\"}");
            assert!(matches!(s.name, std::borrow::Cow::Borrowed(_)));
            assert!(matches!(s.labels[0].1, std::borrow::Cow::Borrowed(_)));
            assert_eq!((s.value, s.timestamp_ms, s.line), (5.0, Some(1000), 2));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(p.next_entry().unwrap().is_none());
}

fn err(input: &str, format: Format) -> ParseError {
    parse_all(input.as_bytes(), format).expect_err("input should be rejected")
}

#[test]
fn bad_input_reports_line_numbers() {
    let e = err("a 1\nb{x=\"1\" 2\nc 3\n", Format::PrometheusText);
    assert_eq!(e.line, 2, "{e}");
    assert!(e.to_string().starts_with("line 2: "), "{e}");
    assert_eq!(err("a 1\n\nb notanumber\n", Format::PrometheusText).line, 3);
    assert_eq!(
        err("a 1 12.5\n", Format::PrometheusText).line,
        1,
        "text timestamps are integer ms"
    );
    assert_eq!(err("# TYPE a bogus\n", Format::PrometheusText).line, 1);
    assert_eq!(
        err("a{x=\"1\",x=\"2\"} 1\n", Format::PrometheusText).line,
        1
    );
    assert_eq!(
        err("a{x=\"unterminated} 1\nb 2\n", Format::PrometheusText).line,
        1
    );
    assert_eq!(err("a{1x=\"1\"} 1\n", Format::PrometheusText).line, 1);
    assert_eq!(
        err("a 1 # {x=\"1\"} 1\n", Format::PrometheusText).line,
        1,
        "no exemplars in text 0.0.4"
    );
    assert_eq!(err("9a 1\n", Format::PrometheusText).line, 1);
    assert_eq!(err("a{} 1 2 3\n", Format::PrometheusText).line, 1);
    // As in Prometheus' lexer, the label set must follow the name without a blank.
    assert_eq!(err("ok 1\na {x=\"1\"} 1\n", Format::PrometheusText).line, 2);
    // OpenMetrics: EOF is mandatory, nothing may follow it.
    let e = err("a 1\nb 2\n", Format::OpenMetrics);
    assert!(e.message.contains("EOF"), "{e}");
    assert_eq!(err("a 1\n# EOF\nb 2\n", Format::OpenMetrics).line, 3);
    assert_eq!(err("a 1\n\n# EOF\n", Format::OpenMetrics).line, 2);
    assert_eq!(
        err("# TYPE a untyped\n# EOF\n", Format::OpenMetrics).line,
        1
    );
    assert_eq!(
        err(
            "# TYPE a_bytes gauge\n# UNIT a_bytes seconds\n# EOF\n",
            Format::OpenMetrics
        )
        .line,
        2
    );
    assert_eq!(err("a 1 NaN\n# EOF\n", Format::OpenMetrics).line, 1);
    assert_eq!(
        err("a 1\n# random comment\n# EOF\n", Format::OpenMetrics).line,
        2
    );
    assert_eq!(
        parse_all(b"a 1\nb\xff 1\n", Format::PrometheusText)
            .unwrap_err()
            .line,
        2
    );
}

#[test]
fn eof_without_trailing_newline_and_text_without_final_newline() {
    assert_eq!(
        parse_all(b"a 1\n# EOF", Format::OpenMetrics)
            .unwrap()
            .samples
            .len(),
        1
    );
    assert_eq!(
        parse_all(b"a 1\nb 2", Format::PrometheusText)
            .unwrap()
            .samples
            .len(),
        2
    );
    assert_eq!(
        parse_all(b"", Format::PrometheusText)
            .unwrap()
            .samples
            .len(),
        0
    );
}

#[test]
fn content_negotiation() {
    let f = |ct| Format::from_content_type(ct, Some(Format::PrometheusText));
    assert_eq!(
        f(Some("text/plain; version=0.0.4; charset=utf-8")).unwrap(),
        Format::PrometheusText
    );
    assert_eq!(
        f(Some(
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        ))
        .unwrap(),
        Format::OpenMetrics
    );
    assert_eq!(
        f(Some("Application/OpenMetrics-Text;version=0.0.1")).unwrap(),
        Format::OpenMetrics
    );
    assert_eq!(f(None).unwrap(), Format::PrometheusText);
    assert_eq!(f(Some("text/html")).unwrap(), Format::PrometheusText);
    assert!(Format::from_content_type(Some("text/html"), None).is_err());
    assert!(SCRAPE_ACCEPT_HEADER.starts_with("application/openmetrics-text;version=1.0.0"));
    assert_eq!(
        Format::from_protocol_name("OpenMetricsText1.0.0"),
        Some(Format::OpenMetrics)
    );
}
