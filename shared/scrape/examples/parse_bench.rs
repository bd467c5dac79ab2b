//! Parse throughput of the exposition parser on a node_exporter-like page repeated to
//! ~10 MB, plus the scraper's full per-page processing (labels, relabel cache, series).
//!
//! `cargo run --release -p ember-scrape --example parse_bench [PAGE_FILE]`
//!
//! Without PAGE_FILE a synthetic page shaped like node_exporter 1.5's output is used
//! (HELP/TYPE per family, cpu/mode, device/fstype/mountpoint labels, float values).

use std::time::Instant;

use ember_formats::exposition::{Entry, Format, Parser, parse_all};
use ember_model::Labels;
use ember_scrape::process::{ProcessSettings, SeriesCache, process};

fn synthetic_page() -> String {
    let mut s = String::new();
    let fam = |s: &mut String, name: &str, help: &str, typ: &str| {
        s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {typ}\n"));
    };
    fam(
        &mut s,
        "node_cpu_seconds_total",
        "Seconds the CPUs spent in each mode.",
        "counter",
    );
    for cpu in 0..8 {
        for (i, mode) in [
            "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
        ]
        .iter()
        .enumerate()
        {
            s.push_str(&format!(
                "node_cpu_seconds_total{{cpu=\"{cpu}\",mode=\"{mode}\"}} {}.{}\n",
                123_456 * (i + 1) + cpu,
                17 * cpu + i
            ));
        }
    }
    for (name, help) in [
        (
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
        ),
        ("node_filesystem_files", "Filesystem total file nodes."),
        ("node_filesystem_size_bytes", "Filesystem size in bytes."),
        ("node_filesystem_readonly", "Filesystem read-only status."),
    ] {
        fam(&mut s, name, help, "gauge");
        for (dev, fs, mp) in [
            ("/dev/nvme0n1p1", "ext4", "/"),
            ("tmpfs", "tmpfs", "/run"),
            ("/dev/nvme1n1", "xfs", "/data"),
            ("tmpfs", "tmpfs", "/dev/shm"),
        ] {
            s.push_str(&format!(
                "{name}{{device=\"{dev}\",fstype=\"{fs}\",mountpoint=\"{mp}\"}} 2.1474836e+10\n"
            ));
        }
    }
    for (name, help) in [
        (
            "node_network_receive_bytes_total",
            "Network device statistic receive_bytes.",
        ),
        (
            "node_network_transmit_bytes_total",
            "Network device statistic transmit_bytes.",
        ),
        (
            "node_network_receive_packets_total",
            "Network device statistic receive_packets.",
        ),
        (
            "node_network_receive_errs_total",
            "Network device statistic receive_errs.",
        ),
    ] {
        fam(&mut s, name, help, "counter");
        for dev in ["eth0", "lo", "docker0", "veth1a2b3c"] {
            s.push_str(&format!("{name}{{device=\"{dev}\"}} 8.675309e+09\n"));
        }
    }
    for i in 0..150 {
        let name = format!("node_vmstat_metric_{i}");
        fam(&mut s, &name, "/proc/vmstat information field.", "untyped");
        s.push_str(&format!("{name} {}\n", i * 7919));
    }
    for i in 0..60 {
        let name = format!("node_memory_field_{i}_bytes");
        fam(&mut s, &name, "Memory information field.", "gauge");
        s.push_str(&format!("{name} 1.6454909952e+10\n"));
    }
    fam(
        &mut s,
        "go_gc_duration_seconds",
        "A summary of the pause duration of garbage collection cycles.",
        "summary",
    );
    for q in ["0", "0.25", "0.5", "0.75", "1"] {
        s.push_str(&format!(
            "go_gc_duration_seconds{{quantile=\"{q}\"}} 2.3151e-05\n"
        ));
    }
    s.push_str("go_gc_duration_seconds_sum 0.001234\ngo_gc_duration_seconds_count 42\n");
    for (i, name) in [
        "node_disk_read_bytes_total",
        "node_disk_written_bytes_total",
        "node_disk_io_time_seconds_total",
    ]
    .iter()
    .enumerate()
    {
        fam(&mut s, name, "Disk statistic.", "counter");
        for dev in ["nvme0n1", "nvme1n1", "dm-0"] {
            s.push_str(&format!(
                "{name}{{device=\"{dev}\"}} {}\n",
                9_876_543 * (i + 1)
            ));
        }
    }
    s
}

fn main() {
    let page = match std::env::args().nth(1) {
        Some(path) => {
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
        }
        None => synthetic_page(),
    };
    let page_samples = parse_all(page.as_bytes(), Format::PrometheusText)
        .expect("page parses")
        .samples
        .len();
    let repeat = (10 << 20) / page.len() + 1;
    let big = page.repeat(repeat);
    let mb = big.len() as f64 / 1e6;
    println!(
        "page: {} bytes, {} samples; input: {:.1} MB ({} copies)",
        page.len(),
        page_samples,
        mb,
        repeat
    );

    // 1. Streaming parser (borrowed entries; the scraper's hot path).
    let mut best = f64::MAX;
    let mut samples = 0usize;
    for _ in 0..5 {
        let start = Instant::now();
        let mut p = Parser::new(big.as_bytes(), Format::PrometheusText).expect("utf-8");
        samples = 0;
        let mut checksum = 0.0;
        while let Some(e) = p.next_entry().expect("valid") {
            if let Entry::Sample(s) = e {
                samples += 1;
                checksum += s.value;
            }
        }
        std::hint::black_box(checksum);
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "streaming parser:      {:8.1} MB/s  {:6.2} M samples/s  ({samples} samples, best of 5)",
        mb / best,
        samples as f64 / best / 1e6
    );

    // 2. parse_all: owned Labels per sample.
    let start = Instant::now();
    let parsed = parse_all(big.as_bytes(), Format::PrometheusText).expect("valid");
    let t = start.elapsed().as_secs_f64();
    println!(
        "parse_all (owned):     {:8.1} MB/s  {:6.2} M samples/s",
        mb / t,
        parsed.samples.len() as f64 / t / 1e6
    );
    drop(parsed);

    // 3. The scraper's per-page processing with a warm cache (one page, many scrapes).
    let target = Labels::from_pairs([("job", "node"), ("instance", "127.0.0.1:9100")]);
    let settings = ProcessSettings {
        honor_timestamps: true,
        ..Default::default()
    };
    let mut cache = SeriesCache::default();
    process(
        page.as_bytes(),
        Format::PrometheusText,
        0,
        &target,
        &settings,
        &mut cache,
    )
    .expect("valid");
    let start = Instant::now();
    let mut n = 0;
    for i in 0..repeat {
        let p = process(
            page.as_bytes(),
            Format::PrometheusText,
            i as i64,
            &target,
            &settings,
            &mut cache,
        )
        .expect("valid");
        n += p.series.len();
    }
    let t = start.elapsed().as_secs_f64();
    println!(
        "scrape processing:     {:8.1} MB/s  {:6.2} M samples/s  (parse + cached labels + series)",
        mb / t,
        n as f64 / t / 1e6
    );
}
