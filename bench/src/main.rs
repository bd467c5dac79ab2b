//! `ember-bench`: pushes the same generated remote-write batches into `ember serve`
//! and into a Prometheus 2.42 remote-write receiver, one after the other in one run,
//! and reports ingest throughput (samples/s), the ratio, server CPU and memory, and
//! bytes on disk per sample. See `bench/README.md`.

mod workload;

use clap::{Parser, ValueEnum};
use ember_e2e::binaries::{self, Profile};
use ember_e2e::servers::{EmberServer, PrometheusMode, PrometheusServer, dir_size};
use ember_e2e::{Error, PromApi, RemoteWriteClient, Result, now_millis};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use workload::{Workload, WorkloadSpec};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "ember-bench",
    about = "Remote-write ingest benchmark: Ember vs Prometheus 2.42"
)]
struct Args {
    /// Distinct series (100 per simulated scrape target).
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Scrape rounds (one sample per series per round).
    #[arg(long, default_value_t = 100)]
    rounds: usize,
    /// Milliseconds between rounds.
    #[arg(long, default_value_t = 15_000)]
    interval_ms: i64,
    /// Samples per request (Prometheus' max_samples_per_send).
    #[arg(long, default_value_t = 2000)]
    samples_per_request: usize,
    /// Concurrent senders (Prometheus' shards); each sends its shard's requests in order.
    #[arg(long, default_value_t = 4)]
    senders: usize,
    /// Which receivers to run, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "ember,prometheus"
    )]
    targets: Vec<Target>,
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

/// A receiver under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// `ember serve` (release build).
    Ember,
    /// Prometheus 2.42 with `--web.enable-remote-write-receiver`.
    Prometheus,
}

/// What one receiver achieved.
#[derive(Debug, Default)]
struct Outcome {
    name: String,
    version: String,
    samples: usize,
    rejected_samples: usize,
    retries: usize,
    seconds: f64,
    latencies_ms: Vec<f64>,
    cpu_seconds: f64,
    peak_rss_bytes: u64,
    disk_after_ingest: u64,
    disk_after_stop: u64,
    /// Prometheus only: the TSDB block a head snapshot produces.
    disk_block: Option<u64>,
    check: String,
}

impl Outcome {
    fn samples_per_second(&self) -> f64 {
        self.samples as f64 / self.seconds.max(1e-9)
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return 0.0;
        }
        let index = ((sorted.len() - 1) as f64 * p).round() as usize;
        sorted[index]
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("ember-bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<()> {
    let spec = WorkloadSpec {
        series: args.series,
        rounds: args.rounds,
        interval_ms: args.interval_ms,
        samples_per_request: args.samples_per_request.max(1),
        shards: args.senders.max(1),
        end_ms: now_millis() / 1000 * 1000,
    };
    let generating = Instant::now();
    let workload = Arc::new(workload::generate(&spec)?);
    let requests: usize = workload.shards.iter().map(|s| s.bodies.len()).sum();
    println!(
        "workload: {} series ({} targets) x {} rounds = {} samples in {} requests of <= {} samples, {} senders; {:.1} MB snappy bodies ({:.1} B/sample on the wire); generated in {:.1} s",
        workload.series,
        workload.targets,
        spec.rounds,
        workload.total_samples,
        requests,
        spec.samples_per_request,
        spec.shards,
        workload.total_body_bytes as f64 / 1e6,
        workload.total_body_bytes as f64 / workload.total_samples as f64,
        generating.elapsed().as_secs_f64()
    );

    // The temp dir (if any) lives until the end of the run; --keep or --work-dir keep the files.
    let (temp, work_dir) = ember_e2e::work_dir(args.work_dir.as_deref(), args.keep, "bench")?;
    let logs = work_dir.join("logs");
    let mut outcomes = Vec::new();
    for target in &args.targets {
        let outcome = match target {
            Target::Ember => {
                let binary = match &args.ember_bin {
                    Some(path) => path.clone(),
                    None => binaries::ember_bin(Profile::Release)?,
                };
                bench_ember(&binary, &work_dir.join("ember"), &logs, &workload)?
            }
            Target::Prometheus => bench_prometheus(&work_dir.join("prometheus"), &logs, &workload)?,
        };
        print_outcome(&outcome, workload.total_samples);
        outcomes.push(outcome);
    }
    print_summary(&outcomes, &workload, &spec);
    if temp.is_none() {
        println!("work dir kept: {}", work_dir.display());
    }
    Ok(())
}

fn bench_ember(
    binary: &Path,
    dir: &Path,
    logs: &Path,
    workload: &Arc<Workload>,
) -> Result<Outcome> {
    let data_dir = dir.join("data");
    println!(
        "ember: starting {} serve --data-dir {}",
        binary.display(),
        data_dir.display()
    );
    let mut server = EmberServer::start_with(binary, "ember", &data_dir, logs, &[])?;
    let api = server.api()?;
    let version = build_version(&api);
    let mut outcome = push_all("ember", &server.remote_write()?, workload)?;
    outcome.version = version;
    outcome.check = sanity_check(&api, workload);
    outcome.disk_after_ingest = dir_size(&data_dir);
    (outcome.cpu_seconds, outcome.peak_rss_bytes) = process_usage(server.process.pid());
    server.process.stop_cleanly(Duration::from_secs(60))?;
    outcome.disk_after_stop = dir_size(&data_dir);
    Ok(outcome)
}

fn bench_prometheus(dir: &Path, logs: &Path, workload: &Arc<Workload>) -> Result<Outcome> {
    println!(
        "prometheus: starting the remote-write receiver in {}",
        dir.display()
    );
    let config = "global:\n  scrape_interval: 1m\n";
    let mut server = PrometheusServer::start(PrometheusMode::Receiver, config, dir, logs, &[])?;
    let api = server.api()?;
    let version = build_version(&api);
    let mut outcome = push_all("prometheus", &server.remote_write()?, workload)?;
    outcome.version = version;
    outcome.check = sanity_check(&api, workload);
    let storage = server.storage_dir().to_path_buf();
    outcome.disk_after_ingest = dir_size(&storage);
    (outcome.cpu_seconds, outcome.peak_rss_bytes) = process_usage(server.process.pid());
    // The head as a persistent block: what the WAL turns into after compaction.
    let (status, body) = api.post_form_raw("/api/v1/admin/tsdb/snapshot", &[])?;
    if status == 200 {
        let name = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["data"]["name"].as_str().map(str::to_string))
            .ok_or_else(|| Error::new(format!("snapshot answer without a name: {body}")))?;
        outcome.disk_block = Some(dir_size(&storage.join("snapshots").join(name)));
    } else {
        eprintln!("prometheus: snapshot failed: HTTP {status}: {body}");
    }
    server.process.stop_cleanly(Duration::from_secs(60))?;
    outcome.disk_after_stop = dir_size(&storage) - dir_size(&storage.join("snapshots"));
    Ok(outcome)
}

fn build_version(api: &PromApi) -> String {
    api.get_data("/api/v1/status/buildinfo", &[])
        .ok()
        .and_then(|d| d["version"].as_str().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

/// Sends every shard's requests concurrently (one thread per shard, in order within
/// the shard), retrying 5xx and transport errors like Prometheus does.
fn push_all(name: &str, client: &RemoteWriteClient, workload: &Arc<Workload>) -> Result<Outcome> {
    let started = Instant::now();
    let handles: Vec<_> = (0..workload.shards.len())
        .map(|shard| {
            let client = client.clone();
            let workload = Arc::clone(workload);
            std::thread::spawn(move || send_shard(&client, &workload, shard))
        })
        .collect();
    let mut outcome = Outcome {
        name: name.to_string(),
        ..Outcome::default()
    };
    for handle in handles {
        let shard = handle
            .join()
            .map_err(|_| Error::new("a sender thread panicked"))??;
        outcome.samples += shard.samples;
        outcome.rejected_samples += shard.rejected_samples;
        outcome.retries += shard.retries;
        outcome.latencies_ms.extend(shard.latencies_ms);
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

fn send_shard(client: &RemoteWriteClient, workload: &Workload, shard: usize) -> Result<Outcome> {
    let requests = &workload.shards[shard];
    let mut outcome = Outcome::default();
    for (body, samples) in requests.bodies.iter().zip(&requests.samples) {
        let mut attempt = 0;
        loop {
            let sent = Instant::now();
            let response = client.send_body(body.clone());
            let elapsed_ms = sent.elapsed().as_secs_f64() * 1000.0;
            match response {
                Ok(r) if r.is_success() => {
                    outcome.latencies_ms.push(elapsed_ms);
                    outcome.samples += samples;
                    break;
                }
                Ok(r) if r.status < 500 => {
                    eprintln!(
                        "shard {shard}: HTTP {} (dropping the batch like Prometheus): {}",
                        r.status, r.body
                    );
                    outcome.rejected_samples += samples;
                    break;
                }
                other => {
                    attempt += 1;
                    outcome.retries += 1;
                    if attempt > 10 {
                        return Err(Error::new(format!(
                            "shard {shard}: giving up after 10 retries: {other:?}"
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(30 << attempt.min(5)));
                }
            }
        }
    }
    Ok(outcome)
}

/// A read-back check: series count of one metric and samples of one series.
fn sanity_check(api: &PromApi, workload: &Workload) -> String {
    let last = now_millis() as f64 / 1000.0;
    let series = api
        .query_vector("count(node_cpu_seconds_total)", Some(last))
        .map(|v| v.first().map(|s| s.value).unwrap_or(0.0));
    let expected_series = (workload.targets * 32) as f64;
    let rounds_expr = "count_over_time(up{instance=\"host-000.example.internal:9100\"}[1d])";
    let samples = api
        .query_vector(rounds_expr, Some(last))
        .map(|v| v.first().map(|s| s.value).unwrap_or(0.0));
    format!(
        "count(node_cpu_seconds_total) = {} (expected {expected_series}); samples of one `up` series = {}",
        series
            .map(|v| v.to_string())
            .unwrap_or_else(|e| format!("error: {e}")),
        samples
            .map(|v| v.to_string())
            .unwrap_or_else(|e| format!("error: {e}")),
    )
}

/// CPU seconds (user + system) and peak RSS of a process, from /proc.
fn process_usage(pid: u32) -> (f64, u64) {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks_per_second)
        })
        .unwrap_or(0.0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0);
    (cpu, rss)
}

fn per_sample(bytes: u64, samples: usize) -> f64 {
    bytes as f64 / samples.max(1) as f64
}

fn print_outcome(o: &Outcome, total: usize) {
    println!(
        "{}: {} of {} samples acknowledged in {:.2} s = {:.0} samples/s; rejected {}, retries {}; request latency p50 {:.1} ms, p99 {:.1} ms",
        o.name,
        o.samples,
        total,
        o.seconds,
        o.samples_per_second(),
        o.rejected_samples,
        o.retries,
        o.percentile_ms(0.5),
        o.percentile_ms(0.99)
    );
    println!(
        "{}: server CPU {:.2} s ({:.2} µs/sample), peak RSS {:.0} MB; disk after ingest {} B ({:.2} B/sample), after clean stop {} B ({:.2} B/sample){}",
        o.name,
        o.cpu_seconds,
        o.cpu_seconds * 1e6 / o.samples.max(1) as f64,
        o.peak_rss_bytes as f64 / 1e6,
        o.disk_after_ingest,
        per_sample(o.disk_after_ingest, o.samples),
        o.disk_after_stop,
        per_sample(o.disk_after_stop, o.samples),
        o.disk_block
            .map(|b| format!(
                ", head snapshot block {b} B ({:.2} B/sample)",
                per_sample(b, o.samples)
            ))
            .unwrap_or_default()
    );
    println!("{}: read-back: {}", o.name, o.check);
}

fn print_summary(outcomes: &[Outcome], workload: &Workload, spec: &WorkloadSpec) {
    println!();
    println!(
        "| receiver | version | samples/s | p50 / p99 request ms | server CPU µs/sample | peak RSS MB | disk B/sample after ingest | after clean stop | as TSDB block |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for o in outcomes {
        println!(
            "| {} | {} | {:.0} | {:.1} / {:.1} | {:.2} | {:.0} | {:.2} | {:.2} | {} |",
            o.name,
            o.version,
            o.samples_per_second(),
            o.percentile_ms(0.5),
            o.percentile_ms(0.99),
            o.cpu_seconds * 1e6 / o.samples.max(1) as f64,
            o.peak_rss_bytes as f64 / 1e6,
            per_sample(o.disk_after_ingest, o.samples),
            per_sample(o.disk_after_stop, o.samples),
            o.disk_block
                .map(|b| format!("{:.2}", per_sample(b, o.samples)))
                .unwrap_or_else(|| "–".to_string()),
        );
    }
    let find = |name: &str| outcomes.iter().find(|o| o.name == name);
    if let (Some(ember), Some(prometheus)) = (find("ember"), find("prometheus")) {
        println!();
        println!(
            "ratio ember / prometheus samples/s: {:.2}  (workload: {} series x {} rounds, {} samples/request, {} senders)",
            ember.samples_per_second() / prometheus.samples_per_second().max(1e-9),
            workload.series,
            spec.rounds,
            spec.samples_per_request,
            spec.shards
        );
    }
}
