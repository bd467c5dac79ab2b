//! `ember-promql-bench`: the PromQL engine over HTTP, Ember vs Prometheus 2.42, in one run.
//!
//! Generates scrape-like data (`ember_e2e::promql_data`: counters, gauges, classic
//! histograms; by default ~10,000 series at 15 s over 6 h), remote-writes the same
//! requests into a release `ember serve` and a Prometheus 2.42 receiver, then times the
//! same queries on both over HTTP, as instant and as range queries, alternating the
//! servers query by query so machine noise hits both alike. Reports wall time (best and
//! median of `--repeats`), samples per second (the work measure is Prometheus' own
//! `totalQueryableSamples` for the query, applied to both), peak RSS of each server
//! during the query phase (sampled from `/proc`), and the speed ratio. See
//! `bench/README.md` and the results in `bench/PROMQL.md`.

use clap::Parser;
use ember_e2e::binaries::{self, Profile};
use ember_e2e::promql_data::{self, DataSpec, SERIES_PER_TARGET};
use ember_e2e::remote_write::encode_body;
use ember_e2e::servers::{EmberServer, PrometheusMode, PrometheusServer};
use ember_e2e::{Error, PromApi, RemoteWriteClient, Result, now_millis};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "ember-promql-bench",
    about = "PromQL engine benchmark over HTTP: Ember vs Prometheus 2.42 on the same data"
)]
struct Args {
    /// Approximate number of series (rounded up to whole targets of 36 series, 10 jobs).
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Hours of data, ending a minute before now.
    #[arg(long, default_value_t = 6)]
    hours: i64,
    /// Scrape interval in seconds.
    #[arg(long, default_value_t = 15)]
    interval_s: i64,
    /// Step of the range queries in seconds (the range is the whole data).
    #[arg(long, default_value_t = 60)]
    step_s: i64,
    /// Timed runs per query and server (best and median are reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Samples per remote-write request.
    #[arg(long, default_value_t = 10_000)]
    samples_per_request: usize,
    /// Concurrent senders per server (series are sharded, so each series stays in order).
    #[arg(long, default_value_t = 2)]
    senders: usize,
    /// Only queries whose text contains this.
    #[arg(long)]
    filter: Option<String>,
    /// The ember binary (default: target/release/ember, or EMBER_BIN).
    #[arg(long)]
    ember_bin: Option<PathBuf>,
    /// Where data dirs and logs go (default: a temp dir, removed unless --keep).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the work dir.
    #[arg(long)]
    keep: bool,
}

/// The benchmark queries: `rate` over every counter, `sum by`, `histogram_quantile`,
/// a subquery, and a many-series binary join.
const QUERIES: &[(&str, &str)] = &[
    // Every counter whose labels stay distinct once `rate` drops the name (`_sum` and
    // `_count` would collide): 18 of the 36 series per target.
    (
        "rate, all counters",
        r#"rate({__name__=~"http_requests_total|http_request_duration_seconds_bucket"}[5m])"#,
    ),
    ("sum by", "sum by (job) (rate(http_requests_total[5m]))"),
    (
        "histogram_quantile",
        "histogram_quantile(0.9, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    (
        "subquery",
        "max_over_time(sum by (job, instance) (rate(http_requests_total[5m]))[1h:1m])",
    ),
    (
        "binary join",
        "rate(http_request_duration_seconds_bucket[5m]) / ignoring(le) group_left rate(http_request_duration_seconds_count[5m])",
    ),
];

/// A server under test.
struct Server {
    name: &'static str,
    api: PromApi,
    pid: u32,
}

/// Timings of one query on one server.
#[derive(Debug, Default, Clone)]
struct Timing {
    seconds: Vec<f64>,
    series: usize,
    points: usize,
    response_bytes: usize,
    error: Option<String>,
}

impl Timing {
    fn sorted(&self) -> Vec<f64> {
        let mut s = self.seconds.clone();
        s.sort_by(f64::total_cmp);
        s
    }
    fn best(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }
    fn median(&self) -> f64 {
        let s = self.sorted();
        s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("ember-promql-bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<()> {
    let jobs = 10;
    let instances_per_job = args.series.div_ceil(SERIES_PER_TARGET * jobs).max(1);
    let minute_ms = 60_000;
    let end_ms = now_millis() / minute_ms * minute_ms - minute_ms;
    let spec = DataSpec {
        jobs,
        instances_per_job,
        start_ms: end_ms - args.hours * 3_600_000,
        duration_ms: args.hours * 3_600_000,
        interval_ms: args.interval_s * 1000,
        seed: 2026,
    };
    let generating = Instant::now();
    let bodies = Arc::new(encode_shards(&spec, args)?);
    let total_samples: usize = bodies.iter().flatten().map(|(_, n)| n).sum();
    let total_bytes: usize = bodies.iter().flatten().map(|(b, _)| b.len()).sum();
    println!(
        "data: {} series ({} targets, {} jobs) x {} h at {} s = {} samples; {} requests, {:.1} MB snappy; generated in {:.1} s",
        spec.series(),
        spec.targets(),
        jobs,
        args.hours,
        args.interval_s,
        total_samples,
        bodies.iter().map(Vec::len).sum::<usize>(),
        total_bytes as f64 / 1e6,
        generating.elapsed().as_secs_f64()
    );

    let (temp, work_dir) =
        ember_e2e::work_dir(args.work_dir.as_deref(), args.keep, "promql-bench")?;
    let logs = work_dir.join("logs");
    let ember_bin = match &args.ember_bin {
        Some(path) => path.clone(),
        None => binaries::ember_bin(Profile::Release)?,
    };
    std::fs::create_dir_all(&work_dir)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", work_dir.display())))?;
    let ember_config = work_dir.join("ember.yml");
    std::fs::write(&ember_config, promql_data::EMBER_CONFIG)
        .map_err(|e| Error::new(format!("cannot write {}: {e}", ember_config.display())))?;
    let ember_config = ember_config.display().to_string();
    println!("starting {} serve and Prometheus", ember_bin.display());
    let ember = EmberServer::start_with(
        &ember_bin,
        "ember",
        &work_dir.join("ember-data"),
        &logs,
        &["--config", &ember_config],
    )?;
    let prometheus = PrometheusServer::start(
        PrometheusMode::Receiver,
        promql_data::PROMETHEUS_CONFIG,
        &work_dir.join("prometheus"),
        &logs,
        &[],
    )?;

    // Load both at once (each with its own senders).
    let loaders: Vec<_> = [
        ("ember", ember.remote_write()?),
        ("prometheus", prometheus.remote_write()?),
    ]
    .into_iter()
    .map(|(name, client)| {
        let bodies = Arc::clone(&bodies);
        std::thread::spawn(move || load(name, &client, &bodies))
    })
    .collect();
    for loader in loaders {
        let (name, seconds) = loader
            .join()
            .map_err(|_| Error::new("a loader thread panicked"))??;
        println!(
            "{name}: loaded {total_samples} samples in {seconds:.1} s ({:.0} samples/s, both servers loading at once)",
            total_samples as f64 / seconds
        );
    }
    drop(bodies);
    let prometheus_api = prometheus.api()?;
    settle_prometheus(&prometheus_api);

    let servers = [
        Server {
            name: "ember",
            api: ember.api()?,
            pid: ember.process.pid(),
        },
        Server {
            name: "prometheus",
            api: prometheus_api.clone(),
            pid: prometheus.process.pid(),
        },
    ];
    let start_s = spec.start_ms / 1000 + 7;
    let end_s = spec.end_ms() / 1000 - 53;
    let evaluations = [
        Evaluation::Instant(end_s),
        Evaluation::Range(start_s, end_s, args.step_s),
    ];

    // Query phase: sample both servers' RSS from /proc meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
    let sampler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || peak_rss_while(&pids, &stop))
    };
    let mut rows = Vec::new();
    for (label, expr) in QUERIES {
        if args.filter.as_deref().is_some_and(|f| !expr.contains(f)) {
            continue;
        }
        for evaluation in evaluations {
            let work = queryable_samples(&prometheus_api, expr, evaluation);
            let mut timings = vec![Timing::default(); servers.len()];
            for _ in 0..args.repeats.max(1) {
                for (server, timing) in servers.iter().zip(timings.iter_mut()) {
                    time_query(&server.api, expr, evaluation, timing);
                }
            }
            println!(
                "{label} ({}): ember {:.1} ms, prometheus {:.1} ms (best of {}){}",
                evaluation.kind(),
                timings[0].best() * 1e3,
                timings[1].best() * 1e3,
                args.repeats,
                timings
                    .iter()
                    .filter_map(|t| t.error.as_deref())
                    .map(|e| format!("; error: {e}"))
                    .collect::<String>()
            );
            rows.push((*label, *expr, evaluation, work, timings));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let peaks = sampler
        .join()
        .map_err(|_| Error::new("the RSS sampler panicked"))?;

    print_table(&rows, &servers, &peaks, args, &spec, total_samples);
    drop(ember);
    drop(prometheus);
    if temp.is_none() {
        println!("work dir kept: {}", work_dir.display());
    }
    Ok(())
}

/// How a query is evaluated.
#[derive(Debug, Clone, Copy)]
enum Evaluation {
    /// `/api/v1/query` at a time (seconds).
    Instant(i64),
    /// `/api/v1/query_range` over `(start, end, step)` seconds.
    Range(i64, i64, i64),
}

impl Evaluation {
    fn kind(&self) -> String {
        match self {
            Evaluation::Instant(_) => "instant".to_string(),
            Evaluation::Range(s, e, step) => {
                format!("range, {} steps of {step} s", (e - s) / step + 1)
            }
        }
    }

    fn request(&self, expr: &str, stats: bool) -> (&'static str, Vec<(String, String)>) {
        let mut params = vec![("query".to_string(), expr.to_string())];
        let path = match *self {
            Evaluation::Instant(t) => {
                params.push(("time".to_string(), t.to_string()));
                "/api/v1/query"
            }
            Evaluation::Range(start, end, step) => {
                params.push(("start".to_string(), start.to_string()));
                params.push(("end".to_string(), end.to_string()));
                params.push(("step".to_string(), step.to_string()));
                "/api/v1/query_range"
            }
        };
        if stats {
            params.push(("stats".to_string(), "all".to_string()));
        }
        (path, params)
    }
}

/// One sender's requests: snappy-compressed bodies and their sample counts, in order.
type Shard = Vec<(Vec<u8>, usize)>;

/// Shards the series over the senders (each series stays in one shard, so its samples
/// arrive in order) and encodes every shard's requests.
fn encode_shards(spec: &DataSpec, args: &Args) -> Result<Vec<Shard>> {
    let series = promql_data::generate(spec)?;
    let senders = args.senders.max(1);
    let mut shards: Vec<Vec<ember_e2e::TimeSeries>> = vec![Vec::new(); senders];
    for (index, s) in series.into_iter().enumerate() {
        shards[index % senders].push(s);
    }
    shards
        .iter()
        .map(|shard| {
            promql_data::requests(shard, 30 * 60_000, args.samples_per_request)
                .iter()
                .map(|request| {
                    let samples = request.timeseries.iter().map(|s| s.samples.len()).sum();
                    Ok((encode_body(request)?, samples))
                })
                .collect()
        })
        .collect()
}

/// Sends every shard's bodies (one thread per shard, in order), retrying 5xx.
fn load(
    name: &'static str,
    client: &RemoteWriteClient,
    bodies: &Arc<Vec<Shard>>,
) -> Result<(&'static str, f64)> {
    let started = Instant::now();
    let handles: Vec<_> = (0..bodies.len())
        .map(|shard| {
            let client = client.clone();
            let bodies = Arc::clone(bodies);
            std::thread::spawn(move || -> Result<()> {
                for (index, (body, _)) in bodies[shard].iter().enumerate() {
                    let mut attempt = 0;
                    loop {
                        match client.send_body(body.clone()) {
                            Ok(r) if r.is_success() => break,
                            Ok(r) if r.status < 500 => {
                                return Err(Error::new(format!(
                                    "{name}: request {index} of shard {shard} rejected: HTTP {}: {}",
                                    r.status, r.body
                                )));
                            }
                            other => {
                                attempt += 1;
                                if attempt > 10 {
                                    return Err(Error::new(format!(
                                        "{name}: giving up on request {index} of shard {shard}: {other:?}"
                                    )));
                                }
                                std::thread::sleep(Duration::from_millis(50 << attempt.min(5)));
                            }
                        }
                    }
                }
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle
            .join()
            .map_err(|_| Error::new("a sender thread panicked"))??;
    }
    Ok((name, started.elapsed().as_secs_f64()))
}

/// Waits (at most 3 minutes) until Prometheus has compacted its head down to its normal
/// span (≤ 3 h), so no background compaction runs during the query phase.
fn settle_prometheus(api: &PromApi) {
    let started = Instant::now();
    loop {
        let span_h = head_span_hours(api);
        match span_h {
            Some(h) if h <= 3.05 => {
                println!(
                    "prometheus: head spans {h:.2} h (older data compacted into blocks) after {:.0} s",
                    started.elapsed().as_secs_f64()
                );
                // Let a running compaction finish writing.
                std::thread::sleep(Duration::from_secs(5));
                return;
            }
            _ if started.elapsed() > Duration::from_secs(180) => {
                println!("prometheus: head still spans {span_h:?} h after 3 min; timing anyway");
                return;
            }
            _ => std::thread::sleep(Duration::from_secs(2)),
        }
    }
}

fn head_span_hours(api: &PromApi) -> Option<f64> {
    let (status, body) = api.get_raw("/metrics", &[]).ok()?;
    if status != 200 {
        return None;
    }
    let metric = |name: &str| -> Option<f64> {
        body.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    let min = metric("prometheus_tsdb_head_min_time")?;
    let max = metric("prometheus_tsdb_head_max_time")?;
    Some((max - min) / 3_600_000.0)
}

/// Prometheus' `totalQueryableSamples` for the query (`stats=all`), untimed.
fn queryable_samples(api: &PromApi, expr: &str, evaluation: Evaluation) -> Option<f64> {
    let (path, params) = evaluation.request(expr, true);
    let params: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (_, body) = api.get_raw(path, &params).ok()?;
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    json["data"]["stats"]["samples"]["totalQueryableSamples"].as_f64()
}

/// Runs the query once, timing the whole HTTP exchange (body included).
fn time_query(api: &PromApi, expr: &str, evaluation: Evaluation, timing: &mut Timing) {
    let (path, params) = evaluation.request(expr, false);
    let params: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let started = Instant::now();
    let answer = api.get_raw(path, &params);
    let elapsed = started.elapsed().as_secs_f64();
    match answer {
        Ok((200, body)) => {
            timing.seconds.push(elapsed);
            timing.response_bytes = body.len();
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&body)
                && let Some(result) = json["data"]["result"].as_array()
            {
                timing.series = result.len();
                timing.points = result
                    .iter()
                    .map(|s| s["values"].as_array().map_or(1, Vec::len))
                    .sum();
            }
        }
        Ok((status, body)) => {
            timing.error = Some(format!(
                "HTTP {status}: {}",
                body.chars().take(300).collect::<String>()
            ));
        }
        Err(e) => timing.error = Some(e.to_string()),
    }
}

/// Samples `VmRSS` of each pid every 20 ms until `stop`; returns the peaks in bytes.
fn peak_rss_while(pids: &[u32], stop: &AtomicBool) -> Vec<u64> {
    let mut peaks = vec![0u64; pids.len()];
    while !stop.load(Ordering::Relaxed) {
        for (pid, peak) in pids.iter().zip(peaks.iter_mut()) {
            *peak = (*peak).max(status_kb(*pid, "VmRSS:") * 1024);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    peaks
}

/// A `kB` field of `/proc/PID/status` (0 when unreadable).
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

type Row = (
    &'static str,
    &'static str,
    Evaluation,
    Option<f64>,
    Vec<Timing>,
);

fn print_table(
    rows: &[Row],
    servers: &[Server],
    peaks: &[u64],
    args: &Args,
    spec: &DataSpec,
    total_samples: usize,
) {
    println!();
    println!(
        "data: {} series x {} h at {} s ({} samples); {} repeats per query, best (median) wall time over HTTP",
        spec.series(),
        args.hours,
        args.interval_s,
        total_samples,
        args.repeats
    );
    println!(
        "| query | kind | series out | samples (Prometheus stats) | ember ms | prometheus ms | ember M samples/s | prometheus M samples/s | speed ember/prometheus |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for (label, _expr, evaluation, work, timings) in rows {
        let (ember, prometheus) = (&timings[0], &timings[1]);
        let rate = |t: &Timing| match work {
            Some(w) if t.error.is_none() => format!("{:.1}", w / t.best() / 1e6),
            _ => "–".to_string(),
        };
        let ms = |t: &Timing| match &t.error {
            Some(e) => format!("error: {e}"),
            None => format!("{:.0} ({:.0})", t.best() * 1e3, t.median() * 1e3),
        };
        let ratio = prometheus.best() / ember.best();
        if ember.error.is_none() && prometheus.error.is_none() {
            ratios.push(ratio);
        }
        let series = if ember.series == prometheus.series {
            format!("{}", ember.series)
        } else {
            format!("{} vs {}", ember.series, prometheus.series)
        };
        println!(
            "| {label} | {} | {series} | {} | {} | {} | {} | {} | {ratio:.2}× |",
            evaluation.kind(),
            work.map(|w| format!("{w:.0}"))
                .unwrap_or_else(|| "–".to_string()),
            ms(ember),
            ms(prometheus),
            rate(ember),
            rate(prometheus),
        );
    }
    if !ratios.is_empty() {
        let geo = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
        println!();
        println!(
            "geometric mean speed ember/prometheus: {geo:.2}× over {} timings",
            ratios.len()
        );
    }
    for (server, peak) in servers.iter().zip(peaks) {
        println!(
            "{}: peak RSS during the query phase {:.0} MB (VmHWM over the whole run {:.0} MB)",
            server.name,
            *peak as f64 / 1e6,
            status_kb(server.pid, "VmHWM:") as f64 * 1024.0 / 1e6
        );
    }
}
