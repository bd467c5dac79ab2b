//! CloudWatch import end to end, over the wire: `ember serve` with an `ember.cloudwatch`
//! job talks to moto through `tests/tools/cw_cbor_proxy.py` (the Rust SDK speaks Smithy
//! RPC-v2 CBOR, moto serves awsJson 1.0; the proxy translates and throttles the first
//! GetMetricData call). Datapoints are put into moto with boto3, imported by the server,
//! queried through the HTTP API (names, labels, CloudWatch timestamps, values, metadata),
//! joined with a remote-written series, and a restart on the same data directory proves
//! the watermarks survive: the overlapping window imports nothing twice.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ember_e2e::net::poll_until;
use ember_e2e::{
    Error, ProcessGuard, PromApi, Result, Sample, TimeSeries, WriteRequest, free_port,
    spawn_logged, test_dir, wait_for_http, workspace_root,
};

const ACCOUNT: &str = "123456789012";

fn venv_bin(name: &str) -> Result<PathBuf> {
    let venv = std::env::var_os("EMBER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv"));
    let p = venv.join("bin").join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(Error::new(format!(
            "{} not found: tests/run installs moto[server], boto3 and cbor2 into the venv",
            p.display()
        )))
    }
}

/// CPU of instance `inst` in minute `t` (epoch seconds): two values put per minute, so
/// Average, Maximum and SampleCount differ.
fn cpu(inst: &str, t: i64) -> (f64, f64) {
    let base = if inst == "db-1" { 10.0 } else { 50.0 };
    let v = base + ((t / 60) % 20) as f64;
    (v, v + 2.0)
}

fn start_ember(
    name: &str,
    data: &Path,
    config: &Path,
    proxy_port: u16,
    logs: &Path,
) -> Result<(ProcessGuard, PromApi, u16)> {
    let port = free_port()?;
    let mut cmd = Command::new(ember_e2e::binaries::ember_bin(
        ember_e2e::binaries::Profile::Debug,
    )?);
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config);
    aws_env(&mut cmd, proxy_port);
    let mut p = spawn_logged(name, cmd, logs)?;
    wait_for_http(
        &format!("http://127.0.0.1:{port}/-/ready"),
        Duration::from_secs(60),
        Some(&mut p),
    )?;
    Ok((p, PromApi::new(&format!("http://127.0.0.1:{port}"))?, port))
}

/// The `key=value` field of a log line (ANSI escapes removed).
fn field(line: &str, key: &str) -> Option<i64> {
    let clean: String = {
        let mut out = String::new();
        let mut esc = false;
        for c in line.chars() {
            match (esc, c) {
                (false, '\u{1b}') => esc = true,
                (true, 'm') => esc = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    };
    clean
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
}

/// moto, the CBOR proxy in front of it, and ten minutes of RDS CPU datapoints put with boto3.
struct Cloud {
    _moto: ProcessGuard,
    _proxy: ProcessGuard,
    proxy_port: u16,
    /// The minutes with datapoints (epoch seconds), newest first.
    minutes: Vec<i64>,
    now: i64,
}

const CONFIG: &str = r#"
ember:
  cloudwatch:
    jobs:
      - name: rds
        regions: [us-east-1]
        namespace: AWS/RDS
        period: 1m
        length: 15m
        delay: 0s
        interval: 1m
        statistics: [Average, Maximum, SampleCount]
        metrics:
          - name: CPUUtilization
        dimension_filters:
          - name: DBInstanceIdentifier
            regex: "db-.*"
        labels: {team: db}
"#;

fn start_cloud(logs: &Path, throttle_first: u32) -> Result<Cloud> {
    let python = venv_bin("python")?;
    let moto_port = free_port()?;
    let mut moto_cmd = Command::new(venv_bin("moto_server")?);
    moto_cmd.args(["-H", "127.0.0.1", "-p", &moto_port.to_string()]);
    let mut moto = spawn_logged("moto", moto_cmd, logs)?;
    wait_for_http(
        &format!("http://127.0.0.1:{moto_port}/moto-api/"),
        Duration::from_secs(60),
        Some(&mut moto),
    )?;

    let proxy_port = free_port()?;
    let mut proxy_cmd = Command::new(&python);
    proxy_cmd
        .arg(workspace_root().join("tests/tools/cw_cbor_proxy.py"))
        .args(["--listen-port", &proxy_port.to_string()])
        .args(["--upstream", &format!("http://127.0.0.1:{moto_port}")])
        .args(["--throttle-first", &throttle_first.to_string()]);
    let mut proxy = spawn_logged("cw-proxy", proxy_cmd, logs)?;
    wait_for_http(
        &format!("http://127.0.0.1:{proxy_port}/healthz"),
        Duration::from_secs(30),
        Some(&mut proxy),
    )?;

    // Ten minutes of datapoints for two instances, plus one that the filter leaves out.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| Error::new(e.to_string()))?
        .as_secs() as i64;
    let t_end = now / 60 * 60;
    let minutes: Vec<i64> = (1..=10).map(|k| t_end - k * 60).collect();
    let mut data = Vec::new();
    for inst in ["db-1", "db-2", "test-9"] {
        for &t in &minutes {
            let (a, b) = cpu(inst, t);
            data.push(format!("[{inst:?}, {t}, {a}, {b}]"));
        }
    }
    let script = format!(
        r#"
import boto3, datetime as dt
cw = boto3.client("cloudwatch", endpoint_url="http://127.0.0.1:{moto_port}", region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
for inst, t, a, b in [{rows}]:
    ts = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    cw.put_metric_data(Namespace="AWS/RDS", MetricData=[
        {{"MetricName": "CPUUtilization", "Dimensions": [{{"Name": "DBInstanceIdentifier", "Value": inst}}],
          "Timestamp": ts, "Values": [a, b], "Counts": [1, 1]}}])
print("ok")
"#,
        rows = data.join(", ")
    );
    let out = Command::new(&python)
        .arg("-c")
        .arg(&script)
        .output()
        .map_err(|e| Error::new(e.to_string()))?;
    if !out.status.success() {
        return Err(Error::new(format!(
            "boto3 put_metric_data failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(Cloud {
        _moto: moto,
        _proxy: proxy,
        proxy_port,
        minutes,
        now,
    })
}

/// The AWS variables that point the SDK at the proxy (and nowhere else).
fn aws_env(cmd: &mut Command, proxy_port: u16) {
    cmd.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{proxy_port}"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
}

#[test]
fn imports_cloudwatch_metrics_from_moto_through_the_cbor_proxy() -> Result<()> {
    let dir = test_dir("cloudwatch-moto")?;
    let logs = dir.path().join("logs");
    let cloud = start_cloud(&logs, 1)?;
    let (minutes, now, proxy_port) = (cloud.minutes.clone(), cloud.now, cloud.proxy_port);
    let config = dir.path().join("ember.yml");
    std::fs::write(&config, CONFIG).map_err(|e| Error::new(e.to_string()))?;
    let data_dir = dir.path().join("data");

    let (mut ember, api, port) = start_ember("ember", &data_dir, &config, proxy_port, &logs)?;
    let pass = ember.wait_for_log_line("cloudwatch import pass", Duration::from_secs(60))?;
    assert_eq!(
        field(&pass, "series"),
        Some(6),
        "2 instances × 3 statistics: {pass}"
    );
    assert_eq!(field(&pass, "samples"), Some(60), "{pass}");
    assert_eq!(
        field(&pass, "retries"),
        Some(1),
        "the proxy throttled once: {pass}"
    );

    let got = poll_until(
        "imported series",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let m = api.query_matrix("aws_rds_cpuutilization_average[20m]", Some(now as f64))?;
            Ok((m.len() == 2).then_some(m))
        },
    )?;
    for s in &got {
        let inst = s.labels["dbinstance_identifier"].as_str().unwrap_or("");
        assert_eq!(s.labels["__name__"], "aws_rds_cpuutilization_average");
        assert_eq!(s.labels["region"], "us-east-1");
        assert_eq!(s.labels["account_id"], ACCOUNT);
        assert_eq!(s.labels["team"], "db");
        assert_eq!(s.labels.len(), 5, "{:?}", s.labels);
        let mut want: Vec<(f64, f64)> = minutes
            .iter()
            .map(|&t| {
                let (a, b) = cpu(inst, t);
                (t as f64, (a + b) / 2.0)
            })
            .collect();
        want.sort_by(|x, y| x.0.total_cmp(&y.0));
        assert_eq!(
            s.points, want,
            "{inst}: CloudWatch's timestamps and averages"
        );
    }
    let last = minutes[0] as f64;
    let max = api.query_vector(
        "aws_rds_cpuutilization_maximum{dbinstance_identifier=\"db-2\"}",
        Some(last),
    )?;
    assert_eq!(max[0].value, cpu("db-2", minutes[0]).1);
    let count = api.query_vector("aws_rds_cpuutilization_sample_count", Some(last))?;
    assert_eq!(count.len(), 2);
    assert!(count.iter().all(|c| c.value == 2.0), "{count:?}");
    assert!(
        api.query_vector("{dbinstance_identifier=\"test-9\"}", Some(last))?
            .is_empty()
    );
    assert_eq!(
        api.metadata_type("aws_rds_cpuutilization_average")?
            .as_deref(),
        Some("gauge")
    );

    // An application metric arrives by remote write; one query joins the two.
    let rw = ember_e2e::RemoteWriteClient::new(&format!("http://127.0.0.1:{port}/api/v1/write"))?;
    rw.push(&WriteRequest {
        timeseries: vec![TimeSeries::new(
            &[
                ("__name__", "app_db_queries_per_second"),
                ("dbinstance_identifier", "db-1"),
                ("job", "app"),
            ],
            vec![Sample::new(minutes[0] * 1000, 300.0)],
        )],
        ..Default::default()
    })?;
    let joined = api.query_vector(
        "app_db_queries_per_second / on (dbinstance_identifier) aws_rds_cpuutilization_average",
        Some(last),
    )?;
    assert_eq!(joined.len(), 1);
    let (a, b) = cpu("db-1", minutes[0]);
    assert_eq!(joined[0].value, 300.0 / ((a + b) / 2.0));

    // Restart on the same data directory: the window overlaps everything imported, and the
    // watermarks in DATA_DIR/state make the new pass import nothing again.
    ember.stop_cleanly(Duration::from_secs(10))?;
    let (mut ember2, api2, _) =
        start_ember("ember-restarted", &data_dir, &config, proxy_port, &logs)?;
    let pass2 = ember2.wait_for_log_line("cloudwatch import pass", Duration::from_secs(60))?;
    assert_eq!(field(&pass2, "samples"), Some(0), "{pass2}");
    assert_eq!(field(&pass2, "duplicates"), Some(60), "{pass2}");
    let again = api2.query_matrix("aws_rds_cpuutilization_average[20m]", Some(now as f64))?;
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|s| s.points.len() == minutes.len()));
    ember2.stop_cleanly(Duration::from_secs(10))?;
    Ok(())
}

/// Waits for the emulator to write the function's answer to event `n`.
fn lambda_answer(events: &Path, n: usize, f: &mut ProcessGuard) -> Result<serde_json::Value> {
    let ok = events.join(format!("{n}.response.json"));
    let err = events.join(format!("{n}.error.json"));
    let text = poll_until(
        "the function's answer",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || {
            if let Some(status) = f.try_exit_status() {
                return Err(Error::new(format!(
                    "function exited ({status})\n{}",
                    f.log_tail(40)
                )));
            }
            if let Ok(t) = std::fs::read_to_string(&err) {
                return Err(Error::new(format!(
                    "invocation error: {t}\n{}",
                    f.log_tail(40)
                )));
            }
            Ok(std::fs::read_to_string(&ok).ok())
        },
    )?;
    serde_json::from_str(&text).map_err(|e| Error::new(format!("answer {text:?}: {e}")))
}

fn scheduled_event(events: &Path, n: usize, time: i64) -> Result<()> {
    let event = serde_json::json!({
        "source": "aws.scheduler",
        "time": format_rfc3339(time),
        "schedule": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/ember-cloudwatch",
        "attempt": "1",
    });
    let tmp = events.join(format!("{n}.tmp"));
    std::fs::write(&tmp, event.to_string()).map_err(|e| Error::new(e.to_string()))?;
    std::fs::rename(&tmp, events.join(format!("{n}.json"))).map_err(|e| Error::new(e.to_string()))
}

/// `YYYY-MM-DDTHH:MM:SSZ` for epoch seconds (civil-from-days, no date crate needed).
fn format_rfc3339(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[test]
fn rfc3339_formatting() {
    assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(format_rfc3339(1_795_284_000), "2026-11-21T18:00:00Z");
    assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
}

/// The Lambda function `ember-cloudwatch-fn` under a Runtime-API emulator: a scheduled event
/// imports the job into the local store (EMBER_STORAGE=local), a second event in the same
/// interval slot does nothing, and `ember serve` on the same data directory finds the data
/// and the watermarks the function left.
#[test]
fn cloudwatch_lambda_function_imports_once_per_interval() -> Result<()> {
    let dir = test_dir("cloudwatch-fn")?;
    let logs = dir.path().join("logs");
    let cloud = start_cloud(&logs, 0)?;
    let config = dir.path().join("ember.yml");
    std::fs::write(&config, CONFIG.replace("interval: 1m", "interval: 5m"))
        .map_err(|e| Error::new(e.to_string()))?;
    let data_dir = dir.path().join("data");
    let events = dir.path().join("events");
    std::fs::create_dir_all(&events).map_err(|e| Error::new(e.to_string()))?;

    let emu_port = free_port()?;
    let mut emu_cmd = Command::new(venv_bin("python")?);
    emu_cmd
        .arg(workspace_root().join("tests/tools/lambda_runtime_emulator.py"))
        .args(["--port", &emu_port.to_string()])
        .arg("--events-dir")
        .arg(&events);
    let mut emu = spawn_logged("lambda-emulator", emu_cmd, &logs)?;
    wait_for_http(
        &format!("http://127.0.0.1:{emu_port}/healthz"),
        Duration::from_secs(30),
        Some(&mut emu),
    )?;

    let bin = ember_e2e::binaries::ember_bin(ember_e2e::binaries::Profile::Debug)?
        .with_file_name("ember-cloudwatch-fn");
    if !bin.is_file() {
        return Err(Error::new(format!(
            "{} not found: build it with `cargo build -p ember-cloudwatch-fn` (tests/run builds the workspace)",
            bin.display()
        )));
    }
    let mut cmd = Command::new(&bin);
    aws_env(&mut cmd, cloud.proxy_port);
    cmd.env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{emu_port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "ember-cloudwatch-fn")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/ember-cloudwatch-fn",
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("EMBER_STORAGE", "local")
        .env("EMBER_DATA_DIR", &data_dir)
        .env("EMBER_CONFIG", &config)
        .env_remove("EMBER_TABLE")
        .env_remove("EMBER_BUCKET");
    let mut f = spawn_logged("ember-cloudwatch-fn", cmd, &logs)?;

    // Slots of 5 minutes: the first invocation runs the job, a second one in the same slot
    // not. Keep both invocations inside one slot.
    let epoch_now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    };
    let into_slot = epoch_now() % 300;
    if into_slot > 240 {
        std::thread::sleep(Duration::from_secs((300 - into_slot + 1) as u64));
    }
    let slot_start = epoch_now() / 300 * 300;
    scheduled_event(&events, 0, slot_start)?;
    let first = lambda_answer(&events, 0, &mut f)?;
    assert_eq!(
        first["jobs_run"],
        serde_json::json!(["rds/us-east-1"]),
        "{first}"
    );
    assert_eq!(first["samples"], 60, "{first}");
    assert_eq!(first["metrics_requested"], 6, "{first}");
    assert_eq!(first["errors"], serde_json::json!([]), "{first}");
    scheduled_event(&events, 1, slot_start + 60)?;
    let second = lambda_answer(&events, 1, &mut f)?;
    assert_eq!(second["jobs_run"], serde_json::json!([]), "{second}");
    assert_eq!(second["samples"], 0, "{second}");
    // A Lambda runtime has no graceful shutdown: SIGTERM ends it (it holds the embedded
    // store only during a call, and both answers are in).
    f.terminate(Duration::from_secs(10))?;

    // The same data directory under `ember serve`: the imported series are there, and the
    // function's watermarks make the server's first pass import nothing again.
    let (mut ember, api, _) = start_ember(
        "ember-after-fn",
        &data_dir,
        &config,
        cloud.proxy_port,
        &logs,
    )?;
    let pass = ember.wait_for_log_line("cloudwatch import pass", Duration::from_secs(60))?;
    assert_eq!(field(&pass, "samples"), Some(0), "{pass}");
    assert_eq!(field(&pass, "duplicates"), Some(60), "{pass}");
    let got = api.query_matrix(
        "aws_rds_cpuutilization_maximum[20m]",
        Some(cloud.now as f64),
    )?;
    assert_eq!(got.len(), 2);
    for s in &got {
        let inst = s.labels["dbinstance_identifier"].as_str().unwrap_or("");
        let mut want: Vec<(f64, f64)> = cloud
            .minutes
            .iter()
            .map(|&t| (t as f64, cpu(inst, t).1))
            .collect();
        want.sort_by(|x, y| x.0.total_cmp(&y.0));
        assert_eq!(s.points, want, "{inst}");
    }
    ember.stop_cleanly(Duration::from_secs(10))?;
    Ok(())
}
