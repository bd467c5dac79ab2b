//! The generated workload: realistic scrape-like series, sharded and batched the way
//! Prometheus' remote-write queue manager does it, pre-encoded into request bodies.

use ember_e2e::remote_write::encode_body;
use ember_e2e::{Label, Result, Sample, TimeSeries, WriteRequest};

/// Workload shape.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    /// Number of distinct series (rounded down to whole targets of 100 series).
    pub series: usize,
    /// Scrape rounds: every series gets one sample per round.
    pub rounds: usize,
    /// Milliseconds between rounds (the scrape interval).
    pub interval_ms: i64,
    /// Samples per remote-write request (Prometheus' `max_samples_per_send`).
    pub samples_per_request: usize,
    /// Number of shards (Prometheus' queue shards; one concurrent sender each).
    pub shards: usize,
    /// Timestamp of the last round, in milliseconds.
    pub end_ms: i64,
}

/// One shard's requests, in the order they must be sent.
#[derive(Debug, Default)]
pub struct ShardRequests {
    /// snappy-compressed protobuf bodies.
    pub bodies: Vec<Vec<u8>>,
    /// Samples in each body.
    pub samples: Vec<usize>,
}

/// The encoded workload.
#[derive(Debug)]
pub struct Workload {
    /// Requests per shard.
    pub shards: Vec<ShardRequests>,
    /// Total samples.
    pub total_samples: usize,
    /// Total compressed bytes of all bodies.
    pub total_body_bytes: usize,
    /// Number of distinct series.
    pub series: usize,
    /// Number of scrape targets (`instance` values).
    pub targets: usize,
}

/// A small deterministic PRNG (xorshift64*), so every run sends identical data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// How a series' value evolves from one scrape to the next.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// A counter of whole events growing by up to `max_step` per scrape.
    CounterInt { max_step: u64 },
    /// A counter of seconds with centisecond resolution (like node_cpu_seconds_total).
    CounterSeconds { max_step: f64 },
    /// A gauge of whole units (bytes) drifting by up to `max_step`.
    GaugeInt { max_step: u64 },
    /// A gauge with two decimals (load, temperature, ratios).
    GaugeFloat { max_step: f64 },
    /// A value that almost never changes (info-style, `up`, limits).
    Constant,
}

#[derive(Debug, Clone)]
struct SeriesDef {
    labels: Vec<Label>,
    behaviour: Behaviour,
    value: f64,
}

const SERIES_PER_TARGET: usize = 100;
const CPU_MODES: [&str; 8] = [
    "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
];
const HANDLERS: [&str; 2] = ["/api/v1/query", "/api/v1/write"];
const BUCKETS: [&str; 11] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
];

/// The 100 series of one scrape target (`instance`): node CPU counters, HTTP request
/// counters and a latency histogram, memory/filesystem/load gauges and `up`.
fn target_series(target: usize, rng: &mut Rng) -> Vec<SeriesDef> {
    let instance = format!("host-{:03}.example.internal:9100", target);
    let job = if target.is_multiple_of(4) {
        "api"
    } else {
        "node"
    };
    let mut out = Vec::with_capacity(SERIES_PER_TARGET);
    let mut push = |name: &str, extra: &[(&str, &str)], behaviour: Behaviour, value: f64| {
        let mut labels = vec![
            Label::new("__name__", name),
            Label::new("instance", instance.clone()),
            Label::new("job", job),
        ];
        labels.extend(extra.iter().map(|(n, v)| Label::new(*n, *v)));
        labels.sort();
        out.push(SeriesDef {
            labels,
            behaviour,
            value,
        });
    };
    // 32: CPU seconds per cpu and mode.
    for cpu in 0..4 {
        let cpu = cpu.to_string();
        for mode in CPU_MODES {
            let step = if mode == "idle" { 0.95 } else { 0.05 };
            push(
                "node_cpu_seconds_total",
                &[("cpu", &cpu), ("mode", mode)],
                Behaviour::CounterSeconds {
                    max_step: step * 15.0,
                },
                (rng.below(10_000_000) as f64) / 100.0,
            );
        }
    }
    // 12: HTTP requests by handler, method and code.
    for handler in HANDLERS {
        for method in ["GET", "POST"] {
            for code in ["200", "404", "500"] {
                let busy = code == "200";
                push(
                    "http_requests_total",
                    &[("code", code), ("handler", handler), ("method", method)],
                    Behaviour::CounterInt {
                        max_step: if busy { 400 } else { 2 },
                    },
                    rng.below(1_000_000) as f64,
                );
            }
        }
    }
    // 22 + 2 + 2: a latency histogram per handler.
    for handler in HANDLERS {
        for le in BUCKETS {
            push(
                "http_request_duration_seconds_bucket",
                &[("handler", handler), ("le", le)],
                Behaviour::CounterInt { max_step: 300 },
                rng.below(1_000_000) as f64,
            );
        }
        push(
            "http_request_duration_seconds_count",
            &[("handler", handler)],
            Behaviour::CounterInt { max_step: 300 },
            rng.below(1_000_000) as f64,
        );
        push(
            "http_request_duration_seconds_sum",
            &[("handler", handler)],
            Behaviour::CounterSeconds { max_step: 20.0 },
            rng.below(10_000_000) as f64 / 100.0,
        );
    }
    // 12: memory gauges.
    for field in [
        "MemTotal",
        "MemFree",
        "MemAvailable",
        "Buffers",
        "Cached",
        "SwapTotal",
        "SwapFree",
        "Active",
        "Inactive",
        "Dirty",
        "Slab",
        "Shmem",
    ] {
        let constant = field == "MemTotal" || field == "SwapTotal";
        push(
            &format!("node_memory_{field}_bytes"),
            &[],
            if constant {
                Behaviour::Constant
            } else {
                Behaviour::GaugeInt {
                    max_step: 4096 * 64,
                }
            },
            (rng.below(1 << 20) * 4096) as f64,
        );
    }
    // 12: filesystem gauges for 4 mount points.
    for mountpoint in ["/", "/boot", "/var", "/home"] {
        for (name, behaviour) in [
            ("node_filesystem_size_bytes", Behaviour::Constant),
            (
                "node_filesystem_avail_bytes",
                Behaviour::GaugeInt {
                    max_step: 4096 * 16,
                },
            ),
            (
                "node_filesystem_files_free",
                Behaviour::GaugeInt { max_step: 10 },
            ),
        ] {
            push(
                name,
                &[
                    ("device", "/dev/nvme0n1p1"),
                    ("fstype", "ext4"),
                    ("mountpoint", mountpoint),
                ],
                behaviour,
                (rng.below(1 << 24) * 4096) as f64,
            );
        }
    }
    // 3: load averages.
    for name in ["node_load1", "node_load5", "node_load15"] {
        push(
            name,
            &[],
            Behaviour::GaugeFloat { max_step: 0.3 },
            rng.below(400) as f64 / 100.0,
        );
    }
    // 3: up, scrape duration and boot time.
    push("up", &[], Behaviour::Constant, 1.0);
    push(
        "scrape_duration_seconds",
        &[],
        Behaviour::GaugeFloat { max_step: 0.002 },
        0.012,
    );
    push("node_boot_time_seconds", &[], Behaviour::Constant, 1.79e9);
    debug_assert_eq!(out.len(), SERIES_PER_TARGET);
    out.truncate(SERIES_PER_TARGET);
    out
}

fn step(series: &mut SeriesDef, rng: &mut Rng) {
    series.value = match series.behaviour {
        Behaviour::CounterInt { max_step } => series.value + rng.below(max_step + 1) as f64,
        Behaviour::CounterSeconds { max_step } => {
            let cents = (series.value * 100.0).round() + (rng.unit() * max_step * 100.0).round();
            cents / 100.0
        }
        Behaviour::GaugeInt { max_step } => {
            let delta = rng.below(2 * max_step + 1) as f64 - max_step as f64;
            (series.value + delta).max(0.0)
        }
        Behaviour::GaugeFloat { max_step } => {
            let cents = ((series.value + (rng.unit() * 2.0 - 1.0) * max_step) * 100.0).round();
            (cents / 100.0).max(0.0)
        }
        Behaviour::Constant => series.value,
    };
}

/// FNV-1a over the labels, to assign series to shards as a hash would.
fn shard_of(labels: &[Label], shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for label in labels {
        for byte in label
            .name
            .bytes()
            .chain([0xff])
            .chain(label.value.bytes())
            .chain([0xfe])
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    (hash % shards.max(1) as u64) as usize
}

/// Generates and encodes the workload.
///
/// Like Prometheus' queue manager, each shard receives its series' samples in time
/// order and sends them in requests of `samples_per_request` samples, each sample as
/// its own `TimeSeries` entry with the full label set (remote write 1.0).
pub fn generate(spec: &WorkloadSpec) -> Result<Workload> {
    let targets = (spec.series / SERIES_PER_TARGET).max(1);
    let mut rng = Rng::new(42);
    let mut series: Vec<SeriesDef> = (0..targets)
        .flat_map(|t| target_series(t, &mut rng))
        .collect();
    let shard_for: Vec<usize> = series
        .iter()
        .map(|s| shard_of(&s.labels, spec.shards))
        .collect();
    // Each target is scraped at its own offset within the interval, with a few ms of jitter.
    let offsets: Vec<i64> = (0..targets)
        .map(|_| rng.below(spec.interval_ms.max(1) as u64) as i64)
        .collect();
    let start_ms = spec.end_ms - spec.rounds as i64 * spec.interval_ms;

    let mut pending: Vec<Vec<TimeSeries>> = vec![Vec::new(); spec.shards];
    let mut shards: Vec<ShardRequests> =
        (0..spec.shards).map(|_| ShardRequests::default()).collect();
    let mut total_samples = 0usize;
    let mut total_body_bytes = 0usize;
    let mut flush = |shard: usize,
                     batch: &mut Vec<TimeSeries>,
                     shards: &mut Vec<ShardRequests>|
     -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let request = WriteRequest {
            timeseries: std::mem::take(batch),
            metadata: Vec::new(),
        };
        let body = encode_body(&request)?;
        total_body_bytes += body.len();
        total_samples += request.timeseries.len();
        shards[shard].samples.push(request.timeseries.len());
        shards[shard].bodies.push(body);
        Ok(())
    };
    for round in 0..spec.rounds {
        let round_ms = start_ms + round as i64 * spec.interval_ms;
        for (index, def) in series.iter_mut().enumerate() {
            let target = index / SERIES_PER_TARGET;
            // One timestamp per scrape of a target, a few ms of jitter between scrapes.
            let jitter = (target as i64 + 7 * round as i64) % 3;
            let timestamp = round_ms + offsets[target] + jitter;
            step(def, &mut rng);
            let shard = shard_for[index];
            pending[shard].push(TimeSeries {
                labels: def.labels.clone(),
                samples: vec![Sample::new(timestamp, def.value)],
            });
            if pending[shard].len() >= spec.samples_per_request {
                let mut batch = std::mem::take(&mut pending[shard]);
                flush(shard, &mut batch, &mut shards)?;
            }
        }
    }
    for (shard, batch) in pending.iter_mut().enumerate() {
        flush(shard, batch, &mut shards)?;
    }
    Ok(Workload {
        shards,
        total_samples,
        total_body_bytes,
        series: targets * SERIES_PER_TARGET,
        targets,
    })
}
