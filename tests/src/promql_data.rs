//! Deterministic, scrape-like data for PromQL comparisons: the differential test
//! (Ember vs Prometheus 2.42) and the engine benchmark load the same shapes.
//!
//! Per scrape target (`job`, `instance`) it generates
//!
//! - `http_requests_total{method, code}`: 4 counters with random float increments and
//!   occasional resets;
//! - `http_request_duration_seconds_bucket{method, le}` (7 classic buckets incl. `+Inf`)
//!   plus `_sum` and `_count` per method: a classic histogram with resets;
//! - `node_memory_free_bytes`, `node_temperature_celsius{sensor}` (4), and
//!   `cpu_usage_ratio{cpu}` (4, always in `[0, 1]`): gauges;
//! - `up`: 1 with the odd 0;
//! - `job_queue_length{pod}` (4): integer gauges that exist only for part of the time
//!   and end with a staleness marker, like a scraped pod that goes away.
//!
//! That is [`SERIES_PER_TARGET`] series. Counters start far from zero: at a series'
//! start, 2.42 applies `rate`'s zero-point clamp before the "1.1 × average interval"
//! extrapolation threshold and 3.x after it, so a counter starting near zero would
//! extrapolate differently in the two. Every sample timestamp has a non-zero
//! millisecond part (each target scrapes at its own sub-second offset), so no sample
//! ever falls on a whole-second query boundary: there Prometheus 2.x's closed and 3.x's
//! left-open range and lookback windows agree.

use crate::error::{Error, Result};
use crate::remote_write::{Label, Sample, TimeSeries, WriteRequest};

/// Series generated per scrape target.
pub const SERIES_PER_TARGET: usize = 4 + 2 * (BUCKETS.len() + 2) + 1 + 4 + 4 + 1 + 4;

/// The bit pattern Prometheus uses for a staleness marker (a special NaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Job names, cycled when there are more jobs than names.
const JOB_NAMES: [&str; 6] = ["api", "db", "cache", "worker", "gateway", "auth"];

/// Classic histogram bucket bounds (`le`), the last one is `+Inf`.
const BUCKETS: [(f64, &str); 7] = [
    (0.05, "0.05"),
    (0.1, "0.1"),
    (0.25, "0.25"),
    (0.5, "0.5"),
    (1.0, "1"),
    (2.5, "2.5"),
    (f64::INFINITY, "+Inf"),
];

/// The shape of the generated data.
#[derive(Debug, Clone)]
pub struct DataSpec {
    /// Number of distinct `job` values.
    pub jobs: usize,
    /// Targets (`instance` values) per job.
    pub instances_per_job: usize,
    /// Start of the data in milliseconds; should be a whole second (the per-target
    /// offsets then keep every timestamp off whole seconds).
    pub start_ms: i64,
    /// Length of the data in milliseconds.
    pub duration_ms: i64,
    /// Scrape interval in milliseconds.
    pub interval_ms: i64,
    /// PRNG seed: the same seed gives the same data.
    pub seed: u64,
}

impl DataSpec {
    /// Number of scrape targets.
    pub fn targets(&self) -> usize {
        self.jobs * self.instances_per_job
    }

    /// Number of series generated.
    pub fn series(&self) -> usize {
        self.targets() * SERIES_PER_TARGET
    }

    /// End of the data (exclusive) in milliseconds.
    pub fn end_ms(&self) -> i64 {
        self.start_ms + self.duration_ms
    }
}

/// A small deterministic PRNG (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// The scrape offset of target `index` within the interval: never a whole second.
pub fn target_offset_ms(index: usize, interval_ms: i64) -> i64 {
    let interval = interval_ms.max(2);
    let mut offset = (1234 + index as i64 * 1111) % interval;
    if offset % 1000 == 0 {
        offset += 1;
    }
    offset
}

/// Generates every series of `spec`, each with all its samples in time order.
pub fn generate(spec: &DataSpec) -> Result<Vec<TimeSeries>> {
    if spec.interval_ms <= 0 || spec.duration_ms <= 0 || spec.start_ms % 1000 != 0 {
        return Err(Error::new(format!(
            "bad data spec (interval and duration must be > 0, start a whole second): {spec:?}"
        )));
    }
    let mut rng = Rng::new(spec.seed);
    let mut out = Vec::with_capacity(spec.series());
    for job_index in 0..spec.jobs {
        let job_name = JOB_NAMES[job_index % JOB_NAMES.len()];
        let job = if job_index < JOB_NAMES.len() {
            job_name.to_string()
        } else {
            format!("{job_name}-{}", job_index / JOB_NAMES.len())
        };
        for instance_index in 0..spec.instances_per_job {
            let target_index = job_index * spec.instances_per_job + instance_index;
            let instance = format!("host-{target_index}:9100");
            let offset = target_offset_ms(target_index, spec.interval_ms);
            let times: Vec<i64> = (0..)
                .map(|k| spec.start_ms + offset + k * spec.interval_ms)
                .take_while(|t| *t < spec.end_ms())
                .collect();
            let target = Target {
                job: &job,
                instance: &instance,
                times: &times,
            };
            target.generate(&mut rng, &mut out);
        }
    }
    Ok(out)
}

/// One scrape target's identity and scrape times.
struct Target<'a> {
    job: &'a str,
    instance: &'a str,
    times: &'a [i64],
}

impl Target<'_> {
    fn series(&self, name: &str, extra: &[(&str, &str)], samples: Vec<Sample>) -> TimeSeries {
        let mut labels = vec![
            Label::new("__name__", name),
            Label::new("job", self.job),
            Label::new("instance", self.instance),
        ];
        labels.extend(extra.iter().map(|(n, v)| Label::new(*n, *v)));
        labels.sort();
        TimeSeries { labels, samples }
    }

    /// A series sampled at every scrape, values from `value(rng, index)`.
    fn sampled(&self, rng: &mut Rng, mut value: impl FnMut(&mut Rng, usize) -> f64) -> Vec<Sample> {
        self.times
            .iter()
            .enumerate()
            .map(|(i, t)| Sample::new(*t, value(rng, i)))
            .collect()
    }

    fn generate(&self, rng: &mut Rng, out: &mut Vec<TimeSeries>) {
        // Request counters: float increments, rare resets.
        for method in ["GET", "POST"] {
            for code in ["200", "500"] {
                let rate = if code == "200" { 10.0 } else { 0.7 } * (1.0 + rng.unit());
                // Far from zero at the start: see `generate`'s note on extrapolation.
                let mut value = 1000.0 + rng.unit() * 1000.0;
                let samples = self.sampled(rng, |rng, _| {
                    if rng.chance(0.004) {
                        value = rng.unit() * 3.0;
                    } else {
                        value += rng.unit() * rate * 15.0;
                    }
                    value
                });
                out.push(self.series(
                    "http_requests_total",
                    &[("method", method), ("code", code)],
                    samples,
                ));
            }
        }
        // A classic latency histogram per method; a reset zeroes all its series at once.
        for method in ["GET", "POST"] {
            let scale = 0.1 + rng.unit() * 0.4;
            // The histogram has been counting for a while before the data starts.
            let prior = 500.0 + rng.below(500) as f64;
            let mut counts = [0.0f64; BUCKETS.len()];
            for (count, (bound, _)) in counts.iter_mut().zip(BUCKETS) {
                *count = (prior * (1.0 - (-bound / scale).exp())).round();
            }
            let mut sum = prior * scale;
            let mut per_bucket: Vec<Vec<Sample>> = vec![Vec::new(); BUCKETS.len()];
            let mut sums = Vec::new();
            let mut totals = Vec::new();
            for &t in self.times {
                if rng.chance(0.003) {
                    counts = [0.0; BUCKETS.len()];
                    sum = 0.0;
                }
                for _ in 0..rng.below(25) {
                    // Exponentially distributed latency.
                    let latency = -scale * (1.0 - rng.unit()).ln();
                    sum += latency;
                    for (count, (bound, _)) in counts.iter_mut().zip(BUCKETS) {
                        if latency <= bound {
                            *count += 1.0;
                        }
                    }
                }
                for (samples, count) in per_bucket.iter_mut().zip(counts) {
                    samples.push(Sample::new(t, count));
                }
                sums.push(Sample::new(t, sum));
                totals.push(Sample::new(t, counts[BUCKETS.len() - 1]));
            }
            for ((_, le), samples) in BUCKETS.iter().zip(per_bucket) {
                out.push(self.series(
                    "http_request_duration_seconds_bucket",
                    &[("method", method), ("le", le)],
                    samples,
                ));
            }
            out.push(self.series(
                "http_request_duration_seconds_sum",
                &[("method", method)],
                sums,
            ));
            out.push(self.series(
                "http_request_duration_seconds_count",
                &[("method", method)],
                totals,
            ));
        }
        // Gauges.
        let mut memory = 2e9 + rng.unit() * 6e9;
        let samples = self.sampled(rng, |rng, _| {
            memory = (memory + (rng.unit() - 0.5) * 5e7).max(1e8);
            memory.round()
        });
        out.push(self.series("node_memory_free_bytes", &[], samples));
        for sensor in ["0", "1", "2", "3"] {
            let phase = rng.unit() * 6.0;
            let base = 15.0 + rng.unit() * 30.0;
            let samples = self.sampled(rng, |rng, i| {
                base + 12.0 * (phase + i as f64 / 40.0).sin() + (rng.unit() - 0.5) * 3.0
            });
            out.push(self.series("node_temperature_celsius", &[("sensor", sensor)], samples));
        }
        for cpu in ["0", "1", "2", "3"] {
            let mut ratio = rng.unit();
            let samples = self.sampled(rng, |rng, _| {
                ratio = (ratio + (rng.unit() - 0.5) * 0.2).clamp(0.0, 1.0);
                ratio
            });
            out.push(self.series("cpu_usage_ratio", &[("cpu", cpu)], samples));
        }
        let samples = self.sampled(rng, |rng, _| if rng.chance(0.02) { 0.0 } else { 1.0 });
        out.push(self.series("up", &[], samples));
        // Pods that come and go: each lives for part of the time, then goes stale.
        let n = self.times.len();
        for pod in 0..4 {
            let begin = rng.below((n / 2).max(1) as u64) as usize;
            let end = (begin + n / 8 + rng.below((n / 3).max(1) as u64) as usize).min(n);
            let mut samples: Vec<Sample> = self.times[begin..end]
                .iter()
                .map(|t| Sample::new(*t, rng.below(50) as f64))
                .collect();
            if end < n {
                samples.push(Sample::new(self.times[end], f64::from_bits(STALE_NAN_BITS)));
            }
            let pod_name = format!("pod-{pod}");
            out.push(self.series("job_queue_length", &[("pod", &pod_name)], samples));
        }
    }
}

/// Cuts `series` into remote-write requests: time windows of `window_ms` in order, each
/// window split into requests of at most about `max_samples` samples (whole series).
pub fn requests(series: &[TimeSeries], window_ms: i64, max_samples: usize) -> Vec<WriteRequest> {
    let Some((first, last)) = time_bounds(series) else {
        return Vec::new();
    };
    let window_ms = window_ms.max(1);
    let mut out = Vec::new();
    let mut cursors = vec![0usize; series.len()];
    let mut window_start = first;
    while window_start <= last {
        let window_end = window_start + window_ms;
        let mut current = WriteRequest::default();
        let mut current_samples = 0;
        for (s, cursor) in series.iter().zip(cursors.iter_mut()) {
            let begin = *cursor;
            while *cursor < s.samples.len() && s.samples[*cursor].timestamp < window_end {
                *cursor += 1;
            }
            if *cursor == begin {
                continue;
            }
            current_samples += *cursor - begin;
            current.timeseries.push(TimeSeries {
                labels: s.labels.clone(),
                samples: s.samples[begin..*cursor].to_vec(),
            });
            if current_samples >= max_samples {
                out.push(std::mem::take(&mut current));
                current_samples = 0;
            }
        }
        if !current.timeseries.is_empty() {
            out.push(current);
        }
        window_start = window_end;
    }
    out
}

/// Total samples (staleness markers included) in `series`.
pub fn sample_count(series: &[TimeSeries]) -> usize {
    series.iter().map(|s| s.samples.len()).sum()
}

fn time_bounds(series: &[TimeSeries]) -> Option<(i64, i64)> {
    let first = series
        .iter()
        .filter_map(|s| s.samples.first())
        .map(|s| s.timestamp)
        .min()?;
    let last = series
        .iter()
        .filter_map(|s| s.samples.last())
        .map(|s| s.timestamp)
        .max()?;
    Some((first, last))
}

/// Prometheus' configuration for holding the same data as Ember: remote-write samples up
/// to 30 days old are accepted (out-of-order window), and the default subquery step
/// (`evaluation_interval`) is 1 m, Ember's default too.
pub const PROMETHEUS_CONFIG: &str = "\
global:
  scrape_interval: 1m
  evaluation_interval: 1m
storage:
  tsdb:
    out_of_order_time_window: 30d
";

/// Ember's configuration for the comparison: the same evaluation interval and no scrape
/// targets (the default config would scrape Ember itself and add `up{job="ember"}`).
pub const EMBER_CONFIG: &str = "\
global:
  scrape_interval: 1m
  evaluation_interval: 1m
scrape_configs: []
";

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DataSpec {
        DataSpec {
            jobs: 2,
            instances_per_job: 3,
            start_ms: 1_700_000_000_000,
            duration_ms: 3_600_000,
            interval_ms: 15_000,
            seed: 7,
        }
    }

    #[test]
    fn shape_is_deterministic_and_off_whole_seconds() {
        let spec = spec();
        let a = generate(&spec).expect("generate");
        let b = generate(&spec).expect("generate");
        // Debug output, because staleness markers are NaN (never equal to themselves).
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(a.len(), spec.series());
        for s in &a {
            for sample in &s.samples {
                assert_ne!(sample.timestamp % 1000, 0, "{:?}", s.labels);
            }
        }
    }

    #[test]
    fn requests_carry_every_sample_once() {
        let series = generate(&spec()).expect("generate");
        let requests = requests(&series, 600_000, 5_000);
        let sent: usize = requests
            .iter()
            .flat_map(|r| &r.timeseries)
            .map(|s| s.samples.len())
            .sum();
        assert_eq!(sent, sample_count(&series));
    }
}
