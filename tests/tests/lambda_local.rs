//! The Lambda functions locally, as issue 5 item 4 describes: `cargo lambda watch`
//! serves the HTTP functions and `cargo lambda invoke` runs the scheduled ones with the
//! fixtures in `tests/events/`. Nothing is configured but `EMBER_DATA_DIR` and
//! `EMBER_CONFIG`, so every function uses embedded storage in one shared data directory.
//!
//! Needs `cargo-lambda` from the project venv (tests/run installs it). The first
//! invocation of each function builds it in debug mode in the same target directory the
//! test suite uses (`CARGO_TARGET_DIR`, else `./target`), so nothing is built twice.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ember_e2e::remote_write::encode_body;
use ember_e2e::{
    Error, PromApi, RemoteWriteClient, Result, Sample, TimeSeries, WriteRequest, free_port,
    now_millis, spawn_logged, test_dir, workspace_root,
};

/// The first request of a function waits for its debug build.
const FIRST_BUILD: Duration = Duration::from_secs(1800);

fn venv_bin() -> PathBuf {
    std::env::var_os("EMBER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv"))
        .join("bin")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn path_with_venv() -> std::ffi::OsString {
    let mut paths = vec![venv_bin()];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

/// A scrape target on a free loopback port serving a fixed exposition.
fn start_target() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::new(format!("binding the scrape target: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::new(e.to_string()))?
        .port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = serve_metrics(stream);
        }
    });
    Ok(port)
}

fn serve_metrics(mut s: TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf)?;
    let body = "# TYPE lambda_scraped_total counter\nlambda_scraped_total 7\n";
    write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// `cargo lambda invoke <function> --data-file <file>`: the function's JSON answer.
fn invoke(port: u16, function: &str, data_file: &Path) -> Result<serde_json::Value> {
    let out = Command::new("cargo")
        .args(["lambda", "invoke", function, "-A", "127.0.0.1", "-P"])
        .arg(port.to_string())
        .arg("--data-file")
        .arg(data_file)
        .current_dir(workspace_root())
        .env("PATH", path_with_venv())
        .output()
        .map_err(|e| Error::new(format!("running cargo lambda invoke: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(Error::new(format!(
            "cargo lambda invoke {function} failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    serde_json::from_str(stdout.trim())
        .map_err(|e| Error::new(format!("{function} answered non-JSON ({e}): {stdout}")))
}

fn scalar_value(api: &PromApi, expr: &str) -> Result<f64> {
    let v = api.query_vector(expr, None)?;
    match v.as_slice() {
        [one] => Ok(one.value),
        other => Err(Error::new(format!(
            "{expr}: expected one series, got {other:?}"
        ))),
    }
}

/// `cargo lambda watch -p <package>` on a free loopback port, with embedded storage in
/// `data` and the configuration `config`; returns once it listens.
fn start_watch(
    package: &str,
    data: &Path,
    config: &Path,
    logs: &Path,
) -> Result<(ember_e2e::ProcessGuard, u16)> {
    let port = free_port()?;
    let mut cmd = Command::new("cargo");
    cmd.args(["lambda", "watch", "-p", package, "-A", "127.0.0.1", "-P"])
        .arg(port.to_string())
        .args(["--timeout", "1800"])
        .current_dir(workspace_root())
        .env("PATH", path_with_venv())
        .env("CARGO_TARGET_DIR", target_dir())
        .env("EMBER_DATA_DIR", data)
        .env("EMBER_CONFIG", config)
        .env("EMBER_CONFIG_TTL", "0")
        .env_remove("EMBER_TABLE")
        .env_remove("EMBER_BUCKET")
        .env_remove("EMBER_STORAGE")
        .env_remove("EMBER_AUTH_TOKEN")
        .env("RUST_LOG", "info");
    let mut watch = spawn_logged(&format!("watch-{package}"), cmd, logs)?;
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = watch.try_exit_status() {
            return Err(Error::new(format!(
                "cargo lambda watch exited ({status}): {}",
                watch.log_tail(40)
            )));
        }
        if t0.elapsed() > Duration::from_secs(60) {
            return Err(Error::new(format!(
                "cargo lambda watch did not listen: {}",
                watch.log_tail(40)
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok((watch, port))
}

#[test]
fn functions_run_under_cargo_lambda_watch_on_embedded_storage() -> Result<()> {
    let dir = test_dir("lambda")?;
    let data = dir.path().join("data");
    let target_port = start_target()?;
    std::fs::create_dir_all(dir.path().join("rules")).map_err(|e| Error::new(e.to_string()))?;
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1m, evaluation_interval: 1m}}\n\
             rule_files: [\"rules/*.yml\"]\n\
             scrape_configs:\n  - job_name: lambda-e2e\n    static_configs:\n      - targets: [\"127.0.0.1:{target_port}\"]\n"
        ),
    )
    .map_err(|e| Error::new(e.to_string()))?;
    std::fs::write(
        dir.path().join("rules/e2e.yml"),
        "groups:\n  - name: e2e\n    rules:\n      - record: lambda_e2e:doubled\n        expr: lambda_e2e_metric * 2\n",
    )
    .map_err(|e| Error::new(e.to_string()))?;

    // One watcher per function: the workspace's default member is `ember`, so a watcher
    // runs its function with `-p <package>` (what docs/LAMBDA.md tells developers too).
    let logs = dir.path().join("logs");
    let watch = |pkg: &str| start_watch(pkg, &data, &config, &logs);
    let (mut query_watch, qport) = watch("ember-query")?;
    let (_ingest_watch, iport) = watch("ember-ingest")?;
    let (_scrape_watch, sport) = watch("ember-scrape-fn")?;
    let (_rules_watch, rport) = watch("ember-rules-fn")?;
    let (_compact_watch, cport) = watch("ember-compact")?;
    let watch = &mut query_watch;
    let base = format!("http://127.0.0.1:{qport}/lambda-url");
    let ibase = format!("http://127.0.0.1:{iport}/lambda-url");
    let slow = reqwest::blocking::Client::builder()
        .timeout(FIRST_BUILD)
        .no_proxy()
        .build()
        .map_err(|e| Error::new(e.to_string()))?;

    // 1. Query `1+1` through the query function (its first request builds it).
    let t = Instant::now();
    let resp = slow
        .get(format!("{base}/ember-query/api/v1/query"))
        .query(&[("query", "1+1")])
        .send()
        .map_err(|e| Error::new(format!("query function: {e}; {}", watch.log_tail(40))))?;
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().map_err(|e| Error::new(e.to_string()))?;
    let body: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::new(format!("{e}: {text}")))?;
    assert_eq!(body["data"]["resultType"], "scalar", "{body}");
    assert_eq!(body["data"]["result"][1], "2", "{body}");
    eprintln!("query function answered after {:?}", t.elapsed());

    // 2. Remote write through the ingest function (first request builds it), then read back.
    let ts = now_millis() - 120_000;
    let req = WriteRequest {
        timeseries: vec![TimeSeries::new(
            &[("__name__", "lambda_e2e_metric"), ("job", "lambda")],
            vec![Sample::new(ts, 42.0)],
        )],
        metadata: Vec::new(),
    };
    let resp = slow
        .post(format!("{ibase}/ember-ingest/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(encode_body(&req)?)
        .send()
        .map_err(|e| Error::new(format!("ingest function: {e}; {}", watch.log_tail(40))))?;
    assert!(resp.status().is_success(), "{:?}", resp.text());
    let query = PromApi::new(&format!("{base}/ember-query"))?;
    assert_eq!(scalar_value(&query, "lambda_e2e_metric")?, 42.0);

    // The ingest function serves write routes only; bodies over API Gateway's limit get 413.
    let ingest = RemoteWriteClient::new(&format!("{ibase}/ember-ingest/api/v1/write"))?;
    let big = ingest.send_body(vec![0u8; 4_500_000])?;
    assert_eq!(big.status, 413, "{}", big.body);
    assert!(big.body.contains("4400000"), "{}", big.body);
    let (status, _) = PromApi::new(&format!("{ibase}/ember-ingest"))?
        .get_raw("/api/v1/query", &[("query", "1")])?;
    assert_eq!(status, 404);

    // 3. A real API Gateway v2 event with a base64 snappy body (k6's capture).
    let events = workspace_root().join("tests/events");
    let answer = invoke(
        iport,
        "ember-ingest",
        &events.join("apigw-v2-remote-write.json"),
    )?;
    assert_eq!(answer["statusCode"], 204, "{answer}");
    let end = format!("{}", now_millis() / 1000);
    let series = query.get_data(
        "/api/v1/series",
        &[
            ("match[]", "{__name__=~\"k6_.*\"}"),
            ("start", "0"),
            ("end", &end),
        ],
    )?;
    let n = series.as_array().map_or(0, Vec::len);
    assert!(n >= 5, "k6 series from the base64 body: {series}");

    // 4. The scheduled functions with the EventBridge fixtures.
    let scrape = invoke(sport, "ember-scrape-fn", &events.join("scheduler.json"))?;
    assert_eq!(scrape["jobs"], 1, "{scrape}");
    assert!(scrape["scraped"].as_u64().unwrap_or(0) >= 1, "{scrape}");
    assert_eq!(scrape["failed"], 0, "{scrape}");
    assert_eq!(scalar_value(&query, "lambda_scraped_total")?, 7.0);
    assert_eq!(scalar_value(&query, "up{job=\"lambda-e2e\"}")?, 1.0);

    // A sample the rule's evaluation (at the group's aligned time, up to one interval ago)
    // sees within its 5-minute lookback, however long the builds above took.
    let fresh = WriteRequest {
        timeseries: vec![TimeSeries::new(
            &[("__name__", "lambda_e2e_metric"), ("job", "lambda")],
            vec![Sample::new(now_millis() - 65_000, 42.0)],
        )],
        metadata: Vec::new(),
    };
    let sent = ingest.send(&fresh)?;
    assert!(sent.status / 100 == 2, "{}", sent.body);
    let rules = invoke(rport, "ember-rules-fn", &events.join("scheduler.json"))?;
    assert_eq!(rules["groups"], 1, "{rules}");
    assert!(rules["evaluations"].as_u64().unwrap_or(0) >= 1, "{rules}");
    assert_eq!(rules["rule_errors"], 0, "{rules}");
    assert_eq!(scalar_value(&query, "lambda_e2e:doubled")?, 84.0);

    let compact = invoke(
        cport,
        "ember-compact",
        &events.join("eventbridge-scheduled.json"),
    )?;
    assert!(compact["report"].is_string(), "{compact}");

    // State that must survive invocations landed in the data directory's state store.
    let names: Vec<String> = std::fs::read_dir(data.join("state"))
        .map_err(|e| Error::new(format!("state dir: {e}")))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("scrape_state-")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.starts_with("rules_")), "{names:?}");

    query_watch.terminate(Duration::from_secs(10))?;
    Ok(())
}
