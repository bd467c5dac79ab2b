//! Cost model benchmark (not a test): pushes generated node_exporter-like data through the
//! AWS backend on a local moto server, counts every DynamoDB and S3 request with the units
//! AWS bills, and turns them into dollars at us-east-1 list prices.
//!
//! ```text
//! EMBER_MOTO_SERVER=.venv/bin/moto_server cargo run --release -p ember-storage-aws --example cost_model [HOURS] [TARGETS]
//! ```
//! Writes a markdown report to stdout (pasted into `bench/COST.md`). If `promtool` is on
//! `PATH`, the same samples are also backfilled into a Prometheus TSDB block for a
//! side-by-side bytes-per-sample figure.

use std::fmt::Write as _;

use ember_blocks::compact::{CompactionConfig, DAY_MS};

use ember_model::{Labels, Matcher, Sample, Series};
use ember_storage::{AppendBatch, Appender, Querier};
use ember_storage_aws::metering::prices;
use ember_storage_aws::testing::Moto;
use ember_storage_aws::{AwsStorageConfig, MeterSnapshot, create_resources, open_aws_backend};

const SCRAPE_MS: i64 = 15_000;
/// 2023-11-15T00:00:00Z: blocks start at a day boundary.
const T0: i64 = 1_700_006_400_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 1_000_000.0
    }
}

/// One generated series: labels, kind and state.
struct Gen {
    labels: Labels,
    kind: u8,
    value: f64,
}

/// About 500 series per target, shaped like node_exporter: counters (CPU seconds with 2
/// decimals, byte and packet counters), gauges (memory in pages, load with 2 decimals,
/// temperatures with 1 decimal) and many constants (info metrics, sizes, limits).
fn series_for(target: usize, rng: &mut Rng) -> Vec<Gen> {
    let inst = format!("10.0.{}.{}:9100", target / 250, target % 250);
    let mut out = Vec::new();
    let mut add = |name: &str, extra: Vec<(String, String)>, kind: u8, value: f64| {
        let mut pairs = vec![
            ("__name__".to_string(), name.to_string()),
            ("instance".into(), inst.clone()),
            ("job".into(), "node".into()),
        ];
        pairs.extend(extra);
        out.push(Gen {
            labels: Labels::from_pairs(pairs),
            kind,
            value,
        });
    };
    for cpu in 0..8 {
        for mode in [
            "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
        ] {
            add(
                "node_cpu_seconds_total",
                vec![
                    ("cpu".into(), cpu.to_string()),
                    ("mode".into(), mode.into()),
                ],
                0,
                1e5 * rng.unit(),
            );
        }
    }
    for dev in ["eth0", "eth1", "lo", "docker0"] {
        for m in [
            "receive_bytes",
            "transmit_bytes",
            "receive_packets",
            "transmit_packets",
            "receive_errs",
            "transmit_errs",
            "receive_drop",
            "transmit_drop",
        ] {
            add(
                &format!("node_network_{m}_total"),
                vec![("device".into(), dev.into())],
                1,
                (1e9 * rng.unit()).round(),
            );
        }
        for m in ["mtu_bytes", "speed_bytes", "up", "carrier"] {
            add(
                &format!("node_network_{m}"),
                vec![("device".into(), dev.into())],
                3,
                1500.0,
            );
        }
    }
    for dev in ["sda", "sdb", "nvme0n1"] {
        for m in [
            "reads_completed",
            "writes_completed",
            "read_bytes",
            "written_bytes",
            "io_time_seconds",
            "read_time_seconds",
            "write_time_seconds",
        ] {
            add(
                &format!("node_disk_{m}_total"),
                vec![("device".into(), dev.into())],
                1,
                (1e8 * rng.unit()).round(),
            );
        }
    }
    for fs in ["/", "/boot", "/var", "/home"] {
        for m in [
            "size_bytes",
            "avail_bytes",
            "free_bytes",
            "files",
            "files_free",
            "readonly",
        ] {
            let kind = if m.contains("free") || m.contains("avail") {
                2
            } else {
                3
            };
            add(
                &format!("node_filesystem_{m}"),
                vec![
                    ("mountpoint".into(), fs.into()),
                    ("fstype".into(), "ext4".into()),
                ],
                kind,
                (4096.0 * (1e7 * rng.unit()).round()).round(),
            );
        }
    }
    for i in 0..60 {
        add(
            &format!(
                "node_memory_{}_bytes",
                [
                    "MemFree", "Cached", "Buffers", "Active", "Inactive", "Dirty"
                ][i % 6]
            ),
            vec![("n".into(), (i / 6).to_string())],
            2,
            4096.0 * (1e6 * rng.unit()).round(),
        );
    }
    for m in ["node_load1", "node_load5", "node_load15"] {
        add(m, vec![], 4, (rng.unit() * 400.0).round() / 100.0);
    }
    for z in 0..10 {
        add(
            "node_hwmon_temp_celsius",
            vec![("sensor".into(), format!("temp{z}"))],
            5,
            40.0 + (rng.unit() * 100.0).round() / 10.0,
        );
    }
    // 230 series so far; the rest are constant per-collector gauges.
    for i in 0..270 {
        add(
            "node_scrape_collector_success",
            vec![("collector".into(), format!("c{i}"))],
            3,
            1.0,
        );
    }
    out
}

/// The next sample of a series.
fn step(g: &mut Gen, rng: &mut Rng) -> f64 {
    let r = rng.unit();
    match g.kind {
        0 => g.value = ((g.value + r * 15.0) * 100.0).round() / 100.0,
        1 if r < 0.7 => g.value += (rng.unit() * 20_000.0).round(),
        2 if r < 0.5 => {
            g.value = (g.value + 4096.0 * ((rng.unit() - 0.5) * 200.0).round()).max(0.0)
        }
        4 => g.value = ((g.value + (r - 0.5) * 0.2).max(0.0) * 100.0).round() / 100.0,
        5 if r < 0.2 => g.value = ((g.value + (rng.unit() - 0.5)) * 10.0).round() / 10.0,
        _ => {}
    }
    g.value
}

/// All samples, scrape by scrape: `(series index, sample)`.
fn generate(hours: i64, targets: usize) -> (Vec<Labels>, Vec<Vec<(usize, Sample)>>) {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut gens = Vec::new();
    let mut offsets = Vec::new();
    for t in 0..targets {
        let s = series_for(t, &mut rng);
        offsets.push((gens.len(), s.len(), (rng.next() % 15_000) as i64));
        gens.extend(s);
    }
    let labels = gens.iter().map(|g| g.labels.clone()).collect();
    let mut scrapes = Vec::new();
    for k in 0..(hours * 3_600_000 / SCRAPE_MS) {
        let mut scrape = Vec::new();
        for &(first, n, offset) in &offsets {
            let t = T0 + k * SCRAPE_MS + offset + (rng.next() % 3) as i64;
            for (i, g) in gens[first..first + n].iter_mut().enumerate() {
                scrape.push((first + i, Sample::new(t, step(g, &mut rng))));
            }
        }
        scrapes.push(scrape);
    }
    (labels, scrapes)
}

fn to_batches(
    labels: &[Labels],
    samples: impl Iterator<Item = (usize, Sample)>,
    per_request: usize,
) -> Vec<AppendBatch> {
    let all: Vec<(usize, Sample)> = samples.collect();
    all.chunks(per_request)
        .map(|chunk| {
            let mut by: std::collections::BTreeMap<usize, Vec<Sample>> = Default::default();
            for (i, s) in chunk {
                by.entry(*i).or_default().push(*s);
            }
            AppendBatch {
                series: by
                    .into_iter()
                    .map(|(i, s)| Series::new(labels[i].clone(), s))
                    .collect(),
                metadata: vec![],
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn run_query(
    meter: &ember_storage_aws::Meter,
    st: &dyn Querier,
    name: &str,
    tier: &str,
    m: &[Matcher],
    s: i64,
    e: i64,
    qrep: &mut String,
) {
    let before = meter.snapshot();
    let r = st.select("prom", m, s, e).await.expect("select");
    let d = meter.snapshot() - before;
    let n: usize = r.iter().map(|x| x.samples.len()).sum();
    let _ = writeln!(
        qrep,
        "| {name} | {tier} | {} | {n} | {} | {:.1} | {} | {} | ${:.8} | ${:.4} |",
        r.len(),
        d.ddb_requests,
        d.ddb_rru_x2 as f64 / 2.0,
        d.s3_gets,
        d.s3_get_bytes,
        d.dollars(),
        d.dollars() / n.max(1) as f64 * 1e9
    );
}

fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Lambda arm64 $ for `cpu` seconds of one vCPU (1,769 MB).
fn lambda_dollars(cpu: f64) -> f64 {
    cpu * 1.769 * 0.000_013_333_4
}

fn row(out: &mut String, name: &str, d: &MeterSnapshot, samples: u64, requests: u64, cpu: f64) {
    let per_m = 1e6 / samples.max(1) as f64;
    let dollars = d.dollars() + lambda_dollars(cpu) + requests as f64 * (0.20 + 1.00) / 1e6;
    let _ = writeln!(
        out,
        "| {name} | {samples} | {requests} | {} | {} | {:.2} | {:.2} | {:.2} | {:.3} | ${:.5} | ${:.5} | ${:.5} |",
        d.ddb_batch_writes,
        d.ddb_wru,
        d.ddb_bytes_written as f64 / samples as f64,
        d.ddb_wru as f64 * 1024.0 / samples as f64,
        d.ddb_wru as f64 / requests.max(1) as f64,
        cpu * 1000.0 / requests.max(1) as f64,
        d.ddb_wru as f64 * prices::WRU * per_m,
        lambda_dollars(cpu) * per_m + requests as f64 * 1.2 / 1e6 * per_m,
        dollars * per_m,
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let hours: i64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2);
    let targets: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let shards: u32 = std::env::var("EMBER_SHARDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let moto = Moto::start();
    let clients = moto.clients().await;
    create_resources(&clients.dynamo, &clients.s3, "cost", "cost")
        .await
        .expect("creating resources");
    let mut cfg = AwsStorageConfig::new("cost", "cost");
    cfg.hot.shards = shards;
    cfg.hot.write_deadline = std::time::Duration::from_secs(30);
    cfg.hot.read_deadline = std::time::Duration::from_secs(120);
    let backend = open_aws_backend(&cfg, &clients)
        .await
        .expect("opening backend");
    let st = backend.storage.clone();
    let (labels, scrapes) = generate(hours, targets);
    let total: u64 = scrapes.iter().map(|s| s.len() as u64).sum();
    let mut report = String::new();
    let _ = writeln!(
        report,
        "Data: {targets} targets × {} series, {hours} h at 15 s = {total} samples; {shards} shards.\n",
        labels.len() / targets.max(1)
    );

    // Ingest at Prometheus' default batching: 2,000 samples per request, scrape order.
    let _ = writeln!(
        report,
        "| ingest | samples | requests | BatchWriteItem | WRU | DynamoDB item B/sample | billed B/sample (WRU×1 KiB) | WRU/request | CPU ms/request | DynamoDB $/M samples | Lambda+API GW $/M | total $/M samples |"
    );
    let _ = writeln!(report, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    let batches = to_batches(&labels, scrapes.iter().flatten().copied(), 2000);
    let (m0, c0) = (backend.meter.snapshot(), cpu_seconds());
    // Series creation is a one-off; measure it apart from the steady state.
    st.append("prom", batches[0].clone()).await.expect("append");
    let per_target = labels.len() / targets.max(1);
    let first_scrape: Vec<AppendBatch> = batches
        .iter()
        .take(targets * per_target / 2000 + 1)
        .skip(1)
        .cloned()
        .collect();
    for b in &first_scrape {
        st.append("prom", b.clone()).await.expect("append");
    }
    let m_created = backend.meter.snapshot();
    let c_created = cpu_seconds();
    let created = m_created - m0;
    let steady_from = 1 + first_scrape.len();
    let mut n_steady = 0u64;
    for b in &batches[steady_from..] {
        n_steady += b.sample_count() as u64;
        st.append("prom", b.clone()).await.expect("append");
    }
    let steady = backend.meter.snapshot() - m_created;
    let cpu_steady = cpu_seconds() - c_created;
    row(
        &mut report,
        "Prometheus, 2,000 samples/request (steady state)",
        &steady,
        n_steady,
        (batches.len() - steady_from) as u64,
        cpu_steady,
    );

    // k6-like small batches: 16 series × 1 sample per request (a slice of the data).
    let k6_samples: Vec<(usize, Sample)> = scrapes
        .iter()
        .take(40)
        .flat_map(|s| s.iter().filter(|(i, _)| *i < 16).copied())
        .collect();
    let k6 = to_batches(&labels, k6_samples.into_iter(), 16);
    st.append("k6", k6[0].clone()).await.expect("append");
    let (m1, c1) = (backend.meter.snapshot(), cpu_seconds());
    for b in &k6[1..] {
        st.append("k6", b.clone()).await.expect("append");
    }
    let k6d = backend.meter.snapshot() - m1;
    row(
        &mut report,
        "k6, 16 series × 1 sample/request",
        &k6d,
        16 * (k6.len() as u64 - 1),
        k6.len() as u64 - 1,
        cpu_seconds() - c1,
    );
    let _ = writeln!(
        report,
        "\nSeries creation (first scrape, {} series): {} DynamoDB requests, {} WRU ({:.2} WRU/series), {:.2} CPU s.\n",
        labels.len(),
        created.ddb_requests,
        created.ddb_wru,
        created.ddb_wru as f64 / labels.len() as f64,
        c_created - c0
    );

    // Hot queries (before compaction): a dashboard panel = one metric, one instance, 1 h.
    let inst = labels[0].get("instance").unwrap_or_default().to_string();
    let end = T0 + hours * 3_600_000;
    let panel = [
        Matcher::equal("__name__", "node_cpu_seconds_total"),
        Matcher::equal("instance", &inst),
    ];
    let mut qrep = String::new();
    let _ = writeln!(
        qrep,
        "| query | tier | series | samples | DynamoDB requests | RRU | S3 GETs | S3 bytes | $ per query | $ per billion samples |"
    );
    let _ = writeln!(qrep, "|---|---|---|---|---|---|---|---|---|---|");
    run_query(
        &backend.meter,
        st.as_ref(),
        "1 metric × 1 instance, last 1 h (dashboard panel)",
        "hot",
        &panel,
        end - 3_600_000,
        end,
        &mut qrep,
    )
    .await;
    let wide = [Matcher::equal("__name__", "node_cpu_seconds_total")];
    run_query(
        &backend.meter,
        st.as_ref(),
        "1 metric, all instances, whole range",
        "hot",
        &wide,
        T0,
        end,
        &mut qrep,
    )
    .await;

    // Compaction and cold queries run in another "container" whose clock is past the
    // registration window (in production compaction runs ≥ 15 min after a bucket closes,
    // so compacted buckets are clean and their segments are no longer read).
    let mut later = cfg.clone();
    later.hot.registration_ttl = std::time::Duration::ZERO;
    let backend = open_aws_backend(&later, &clients)
        .await
        .expect("opening backend");
    let st = backend.storage.clone();
    // Compaction, then the same queries from the blocks.
    let mut cc = CompactionConfig::at(end + 2 * DAY_MS);
    cc.delete_delay_ms = 0;
    let (m2, c2) = (backend.meter.snapshot(), cpu_seconds());
    let rep = backend.compactor.run(&cc).await.expect("compaction");
    let comp = backend.meter.snapshot() - m2;
    let cpu_comp = cpu_seconds() - c2;
    let index = backend.compactor.index.load("prom").await.expect("index");
    let parquet_bytes: u64 = index.blocks.iter().map(|b| b.size).sum();
    let parquet_samples: u64 = index.blocks.iter().map(|b| b.samples).sum();
    let level0: Vec<_> = rep
        .blocks_written
        .iter()
        .filter(|b| b.level == 0 && b.key.contains("/prom/"))
        .collect();
    let l0_bytes: u64 = level0.iter().map(|b| b.size).sum();
    let l0_samples: u64 = level0.iter().map(|b| b.samples).sum();
    run_query(
        &backend.meter,
        st.as_ref(),
        "1 metric × 1 instance, last 1 h (dashboard panel)",
        "cold",
        &panel,
        end - 3_600_000,
        end,
        &mut qrep,
    )
    .await;
    run_query(
        &backend.meter,
        st.as_ref(),
        "1 metric, all instances, whole range",
        "cold",
        &wide,
        T0,
        end,
        &mut qrep,
    )
    .await;
    run_query(
        &backend.meter,
        st.as_ref(),
        "1 metric × 1 instance, last 1 h, footer cached",
        "cold",
        &panel,
        end - 3_600_000,
        end,
        &mut qrep,
    )
    .await;

    let _ = writeln!(
        report,
        "Compaction: {} blocks written, {} S3 PUTs ({} bytes), {} S3 GETs, {} DynamoDB requests ({} WRU, {:.1} RRU), {:.2} CPU s, ${:.6} (${:.6} per million samples).\n",
        rep.blocks_written.len(),
        comp.s3_puts,
        comp.s3_put_bytes,
        comp.s3_gets,
        comp.ddb_requests,
        comp.ddb_wru,
        comp.ddb_rru_x2 as f64 / 2.0,
        cpu_comp,
        comp.dollars() + lambda_dollars(cpu_comp),
        (comp.dollars() + lambda_dollars(cpu_comp)) / total as f64 * 1e6
    );
    let _ = writeln!(
        report,
        "Parquet: merged blocks {} bytes for {} samples = **{:.3} B/sample**; hourly (level-0) blocks {:.3} B/sample.\n",
        parquet_bytes,
        parquet_samples,
        parquet_bytes as f64 / parquet_samples.max(1) as f64,
        l0_bytes as f64 / l0_samples.max(1) as f64
    );

    // Prometheus TSDB on the same samples, if promtool is available.
    if let Some(tsdb) = promtool_bytes(&labels, &scrapes) {
        let _ = writeln!(
            report,
            "Prometheus 2.42 TSDB (promtool backfill of the same samples): chunks {} bytes + index {} bytes = {:.3} B/sample (chunks alone {:.3}).\n",
            tsdb.0,
            tsdb.1,
            (tsdb.0 + tsdb.1) as f64 / total as f64,
            tsdb.0 as f64 / total as f64
        );
    }
    let gb_month_s3 = 0.023;
    let per_sample = parquet_bytes as f64 / parquet_samples.max(1) as f64;
    let _ = writeln!(
        report,
        "Storage: S3 Standard ${gb_month_s3}/GB-month → at {per_sample:.3} B/sample, ${:.6} per million samples per month (AMP: $0.03/GB-month of its own 1–2 B/sample).\n",
        per_sample * 1e6 / 1073741824.0 * gb_month_s3
    );
    let _ = writeln!(report, "{qrep}");
    print!("{report}");
}

/// Writes the samples as OpenMetrics, backfills them with promtool, returns (chunk bytes, index bytes).
fn promtool_bytes(labels: &[Labels], scrapes: &[Vec<(usize, Sample)>]) -> Option<(u64, u64)> {
    let promtool = which("promtool")?;
    let dir = tempfile::tempdir().ok()?;
    let mut per: Vec<Vec<Sample>> = vec![Vec::new(); labels.len()];
    for (i, s) in scrapes.iter().flatten() {
        per[*i].push(*s);
    }
    let mut by_name: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (i, l) in labels.iter().enumerate() {
        by_name
            .entry(l.metric_name().unwrap_or("").to_string())
            .or_default()
            .push(i);
    }
    let mut text = String::new();
    for (name, ids) in by_name {
        let _ = writeln!(text, "# TYPE {name} gauge");
        for i in ids {
            let l: Vec<String> = labels[i]
                .iter()
                .filter(|l| l.name != "__name__")
                .map(|l| format!("{}=\"{}\"", l.name, l.value))
                .collect();
            for s in &per[i] {
                let _ = writeln!(
                    text,
                    "{name}{{{}}} {} {}.{:03}",
                    l.join(","),
                    s.v,
                    s.t / 1000,
                    s.t % 1000
                );
            }
        }
    }
    text.push_str("# EOF\n");
    let input = dir.path().join("data.om");
    std::fs::write(&input, text).ok()?;
    let out = dir.path().join("tsdb");
    let status = std::process::Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
        .arg(&input)
        .arg(&out)
        .status()
        .ok()?;
    if !status.success() {
        eprintln!("promtool backfill failed: {status}");
        return None;
    }
    let (mut chunks, mut index) = (0, 0);
    for block in std::fs::read_dir(&out).ok()?.flatten() {
        index += std::fs::metadata(block.path().join("index"))
            .map(|m| m.len())
            .unwrap_or(0);
        if let Ok(rd) = std::fs::read_dir(block.path().join("chunks")) {
            for c in rd.flatten() {
                chunks += c.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    Some((chunks, index))
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}
