//! Samples and series.

use crate::Labels;

/// Bit pattern of Prometheus' staleness marker: a signalling NaN that no
/// arithmetic produces, so it can be told apart from an ordinary NaN.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a float.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (and not just any NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One float sample: a millisecond timestamp and a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    /// The value; may be the staleness marker (see [`is_stale_nan`]).
    pub v: f64,
}

impl Sample {
    /// A sample at `t` (ms) with value `v`.
    pub fn new(t: i64, v: f64) -> Self {
        Self { t, v }
    }
}

/// A series with its samples, sorted by timestamp with no duplicate timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' identity.
    pub labels: Labels,
    /// Samples in ascending time order.
    pub samples: Vec<Sample>,
}

impl Series {
    /// A series from labels and samples (the caller keeps the samples sorted).
    pub fn new(labels: Labels, samples: Vec<Sample>) -> Self {
        Self { labels, samples }
    }

    /// Sorts the samples by time and keeps one sample per timestamp (the last one given),
    /// which is how overlapping writes and retries collapse into one answer.
    pub fn sort_and_dedup(&mut self) {
        sort_and_dedup_samples(&mut self.samples);
    }
}

/// Sorts samples by time and keeps the last-given sample for each timestamp.
pub fn sort_and_dedup_samples(samples: &mut Vec<Sample>) {
    if samples.windows(2).all(|w| w[0].t < w[1].t) {
        return;
    }
    // Stable sort keeps the original order among equal timestamps; keep the last of them.
    samples.sort_by_key(|s| s.t);
    let mut out: Vec<Sample> = Vec::with_capacity(samples.len());
    for s in samples.drain(..) {
        match out.last_mut() {
            Some(last) if last.t == s.t => *last = s,
            _ => out.push(s),
        }
    }
    *samples = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_nan_is_distinct_from_nan() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
        assert!(stale_nan().is_nan());
    }

    #[test]
    fn dedup_keeps_last_value_per_timestamp() {
        let mut s = vec![
            Sample::new(3, 1.0),
            Sample::new(1, 2.0),
            Sample::new(3, 5.0),
            Sample::new(2, 0.0),
        ];
        sort_and_dedup_samples(&mut s);
        assert_eq!(
            s,
            vec![
                Sample::new(1, 2.0),
                Sample::new(2, 0.0),
                Sample::new(3, 5.0)
            ]
        );
    }
}
