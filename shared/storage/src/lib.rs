//! Storage interfaces, in the spirit of Prometheus' `storage` package.
//!
//! Every backend (the in-memory store here, the embedded `redb` store, the
//! DynamoDB + S3 store) implements [`Appender`] and [`Querier`]; the ingest
//! path, the PromQL engine and the HTTP API only ever see these traits.

pub mod hot;
pub mod layout;
pub mod memory;
pub mod segment;
pub mod state;
pub mod usage;

use async_trait::async_trait;
use ember_model::{Labels, Matcher, MetricMetadata, Series};

pub use memory::MemStorage;

/// The matcher sets a `series`/label query covers: the given ones, or — when none are
/// given — one empty set, which matches every series (Prometheus' "no `match[]`").
pub fn matcher_sets_or_all(matcher_sets: &[Vec<Matcher>]) -> &[Vec<Matcher>] {
    static ALL_SERIES: [Vec<Matcher>; 1] = [Vec::new()];
    if matcher_sets.is_empty() {
        &ALL_SERIES
    } else {
        matcher_sets
    }
}

/// One durable write: series with their samples, plus metric metadata.
/// A backend applies it whole or not at all.
#[derive(Debug, Clone, Default)]
pub struct AppendBatch {
    /// Series with samples (labels already validated by the caller).
    pub series: Vec<Series>,
    /// Metadata to remember (may come without any samples).
    pub metadata: Vec<MetricMetadata>,
}

impl AppendBatch {
    /// Total number of samples in the batch.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendStats {
    /// Samples written.
    pub samples: usize,
    /// Series seen for the first time.
    pub series_created: usize,
}

/// Why a storage operation failed. The variant decides the HTTP status the API answers.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The input itself is wrong (answer 4xx; retrying will not help).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Overloaded, throttled or timed out (answer 503 so senders retry).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A fault in the backend (answer 500; senders retry).
    #[error("storage error: {context}: {message}")]
    Internal {
        /// What was being done.
        context: String,
        /// What went wrong.
        message: String,
    },
}

impl StorageError {
    /// An internal error with context, from any displayable cause.
    pub fn internal(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        StorageError::Internal {
            context: context.into(),
            message: err.to_string(),
        }
    }
}

/// Result alias for storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Writes samples durably: once `append` returns `Ok`, the data survives a crash.
#[async_trait]
pub trait Appender: Send + Sync {
    /// Appends a batch for `tenant`, all or nothing. Out-of-order and old samples are
    /// accepted; writing the same (series, timestamp) again must not make a query return it twice.
    async fn append(&self, tenant: &str, batch: AppendBatch) -> Result<AppendStats>;
}

/// Reads series and their samples. Time ranges are inclusive milliseconds.
#[async_trait]
pub trait Querier: Send + Sync {
    /// Every series matching all `matchers` that has samples in `[start, end]`, with those
    /// samples sorted by time and free of duplicate timestamps. Order of series is unspecified.
    async fn select(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<Series>>;

    /// Label sets of series matching any of the matcher sets (each set is ANDed) with samples in
    /// `[start, end]`, sorted. An empty `matcher_sets` means all series.
    async fn series(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Result<Vec<Labels>>;

    /// Sorted label names of the series `series` would return.
    async fn label_names(
        &self,
        tenant: &str,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>> {
        let series = self.series(tenant, matcher_sets, start, end).await?;
        let mut names: Vec<String> = series
            .iter()
            .flat_map(|l| l.iter().map(|l| l.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Sorted distinct values of label `name` over the series `series` would return.
    async fn label_values(
        &self,
        tenant: &str,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>> {
        let series = self.series(tenant, matcher_sets, start, end).await?;
        let mut values: Vec<String> = series
            .iter()
            .filter_map(|l| l.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }

    /// Known metadata, for one metric family or all, sorted by family name.
    async fn metadata(&self, tenant: &str, metric: Option<&str>) -> Result<Vec<MetricMetadata>>;
}

/// A complete backend: both sides.
pub trait Storage: Appender + Querier {}
impl<T: Appender + Querier> Storage for T {}
