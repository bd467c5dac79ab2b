//! `ember backfill FILE…`: imports OpenMetrics or Prometheus text exposition files with
//! timestamps into the configured storage, as `promtool tsdb create-blocks-from
//! openmetrics` does for Prometheus.
//!
//! Each file is parsed and checked whole before anything of it is written, so a bad file
//! stores nothing; its error names the file and line. Samples are then appended in
//! batches (series sorted by labels, samples by time). Retrying a file is harmless:
//! segments are content-addressed and reads drop duplicate samples.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use ember_formats::exposition::{self, Format};
use ember_model::{Labels, MetricMetadata, Sample, Series};
use ember_storage::{AppendBatch, StorageError};

use crate::backend::{self, BackendError, StorageArgs};

/// Samples per append (one durable write each).
const BATCH_SAMPLES: usize = 50_000;

/// Options of `ember backfill`.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// OpenMetrics (`# EOF`-terminated) or Prometheus text files; every sample needs a timestamp.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Directory of the embedded storage (the server must not be running on it).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
    /// Configuration file (its `ember.storage` section selects the backend).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Tenant (workspace) to write to.
    #[arg(long, default_value = ember_model::DEFAULT_TENANT)]
    pub tenant: String,
    /// Storage backend flags.
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Why a backfill failed.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The configuration file is invalid.
    #[error(transparent)]
    Config(#[from] ember_config::ConfigError),
    /// The storage could not be opened.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not valid exposition text, or a sample cannot be backfilled.
    #[error("{file}: line {line}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Writing failed (files before this one were imported completely).
    #[error("{file}: writing: {source}")]
    Write {
        /// The file.
        file: String,
        /// The cause.
        source: StorageError,
    },
}

/// One file, parsed and checked: series with sorted samples, and metadata.
#[derive(Debug, Default)]
pub struct ParsedFile {
    /// Series (labels sorted) with their samples sorted by time.
    pub series: Vec<Series>,
    /// Metric metadata from `# TYPE`/`# HELP`/`# UNIT`.
    pub metadata: Vec<MetricMetadata>,
    /// Number of samples.
    pub samples: usize,
    /// Oldest and newest sample time (ms).
    pub range: Option<(i64, i64)>,
}

/// Parses a whole file; OpenMetrics when it ends with `# EOF`, else Prometheus text.
pub fn parse_file(name: &str, bytes: &[u8]) -> Result<ParsedFile, BackfillError> {
    let text_end = bytes.trim_ascii_end();
    let format = if text_end.ends_with(b"# EOF") {
        Format::OpenMetrics
    } else {
        Format::PrometheusText
    };
    let invalid = |line: usize, message: String| BackfillError::Invalid {
        file: name.to_string(),
        line,
        message,
    };
    let page = exposition::parse_all(bytes, format).map_err(|e| invalid(e.line, e.message))?;
    // Each sample is one line: the n-th sample is on the n-th line that is neither empty
    // nor a comment, which is how a sample is found again for an error message.
    let sample_lines: Vec<usize> = bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_ascii();
            !l.is_empty() && !l.starts_with(b"#")
        })
        .map(|(i, _)| i + 1)
        .collect();
    let mut by_series: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    let mut range: Option<(i64, i64)> = None;
    for (i, s) in page.samples.into_iter().enumerate() {
        let line = sample_lines.get(i).copied().unwrap_or(0);
        let Some(t) = s.timestamp_ms else {
            return Err(invalid(
                line,
                format!(
                    "sample of {} has no timestamp (backfill needs one on every sample)",
                    s.labels
                ),
            ));
        };
        range = Some(range.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))));
        by_series
            .entry(s.labels)
            .or_default()
            .push(Sample::new(t, s.value));
    }
    let mut samples = 0;
    let series = by_series
        .into_iter()
        .map(|(labels, mut smp)| {
            smp.sort_by_key(|s| s.t);
            samples += smp.len();
            Series::new(labels, smp)
        })
        .collect();
    Ok(ParsedFile {
        series,
        metadata: page.metadata,
        samples,
        range,
    })
}

/// Splits a file's series into appends of about [`BATCH_SAMPLES`] samples.
fn batches(file: ParsedFile) -> Vec<AppendBatch> {
    let mut out = vec![AppendBatch {
        series: Vec::new(),
        metadata: file.metadata,
    }];
    let mut in_batch = 0;
    for series in file.series {
        for chunk in series.samples.chunks(BATCH_SAMPLES) {
            if in_batch + chunk.len() > BATCH_SAMPLES && in_batch > 0 {
                out.push(AppendBatch::default());
                in_batch = 0;
            }
            in_batch += chunk.len();
            if let Some(last) = out.last_mut() {
                last.series
                    .push(Series::new(series.labels.clone(), chunk.to_vec()));
            }
        }
    }
    out
}

/// Imports every file, printing progress on a terminal and a summary at the end.
pub async fn run(args: BackfillArgs) -> Result<(), BackfillError> {
    let config = match &args.config {
        Some(path) => ember_config::Config::load(path)?,
        None => ember_config::Config::default(),
    };
    let backend = backend::open(&args.storage, &config.ember.storage, &args.data_dir).await?;
    let progress = std::io::stderr().is_terminal();
    let started = Instant::now();
    let (mut total_samples, mut total_series) = (0usize, 0usize);
    let mut range: Option<(i64, i64)> = None;
    for path in &args.files {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| BackfillError::Read {
            file: name.clone(),
            source,
        })?;
        let parsed = parse_file(&name, &bytes)?;
        let (samples, series) = (parsed.samples, parsed.series.len());
        if let Some((lo, hi)) = parsed.range {
            range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
        let mut written = 0;
        for batch in batches(parsed) {
            written += batch.sample_count();
            backend
                .storage
                .append(&args.tenant, batch)
                .await
                .map_err(|source| BackfillError::Write {
                    file: name.clone(),
                    source,
                })?;
            if progress {
                let pct = (written * 100).checked_div(samples).unwrap_or(100);
                eprint!("\r{name}: {written}/{samples} samples ({pct} %)");
                let _ = std::io::stderr().flush();
            }
        }
        if progress {
            eprintln!();
        }
        total_samples += samples;
        total_series += series;
    }
    let span = match range {
        Some((lo, hi)) => format!(
            ", from {} to {}",
            ember_rules::manager::rfc3339(lo),
            ember_rules::manager::rfc3339(hi)
        ),
        None => String::new(),
    };
    println!(
        "backfilled {total_samples} samples of {total_series} series from {} file(s){span} into {} in {:.1} s",
        args.files.len(),
        backend.description,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_file_parses_into_sorted_series() {
        let text = b"# TYPE jobs_done counter\n# HELP jobs_done Jobs.\njobs_done_total{q=\"a\"} 2 1700000060\njobs_done_total{q=\"a\"} 1 1700000000\njobs_done_total{q=\"b\"} 5 1700000000.5\n# EOF\n";
        let f = parse_file("x.om", text).unwrap();
        assert_eq!(f.samples, 3);
        assert_eq!(f.series.len(), 2);
        assert_eq!(
            f.series[0].samples,
            vec![
                Sample::new(1_700_000_000_000, 1.0),
                Sample::new(1_700_000_060_000, 2.0)
            ]
        );
        assert_eq!(f.series[1].samples[0].t, 1_700_000_000_500);
        assert_eq!(f.range, Some((1_700_000_000_000, 1_700_000_060_000)));
        assert_eq!(f.metadata.len(), 1);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse_file("bad.txt", b"a 1 1000\n\n# c\nb{ 2 1000\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("bad.txt: line 4:"), "{e}");
        let e = parse_file("nots.txt", b"a 1 1000\n# HELP b x\nb 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("nots.txt: line 3:"), "{e}");
        assert!(e.contains("no timestamp"), "{e}");
    }

    #[test]
    fn batches_split_large_series_and_keep_everything() {
        let samples: Vec<Sample> = (0..(BATCH_SAMPLES as i64 * 2 + 10))
            .map(|i| Sample::new(i, 1.0))
            .collect();
        let labels = Labels::from_pairs([("__name__".to_string(), "x".to_string())]);
        let n = samples.len();
        let b = batches(ParsedFile {
            series: vec![Series::new(labels, samples)],
            samples: n,
            ..ParsedFile::default()
        });
        assert_eq!(b.len(), 3);
        assert!(b.iter().all(|b| b.sample_count() <= BATCH_SAMPLES));
        assert_eq!(b.iter().map(|b| b.sample_count()).sum::<usize>(), n);
    }
}
