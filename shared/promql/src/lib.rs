//! The PromQL engine (Prometheus' `promql` package).
//!
//! Queries are parsed with the `promql-parser` crate and evaluated over any
//! [`ember_storage::Querier`]. The engine first plans which series and time
//! ranges every selector needs, fetches them from storage, then evaluates the
//! expression in memory. The public surface is [`Engine`], [`QueryOptions`],
//! [`QueryResult`], [`Value`] and [`PromqlError`]; the HTTP API depends on nothing else.

#![warn(missing_docs)]

mod aggregations;
mod annotations;
mod binary;
mod engine;
mod eval;
mod functions;
mod histogram;
mod info;
mod parse;
mod plan;
pub mod promqltest;
mod range_functions;
mod util;

use ember_model::{Labels, Series};
use ember_storage::StorageError;

pub use engine::Engine;

/// Engine-wide limits, like Prometheus' command-line flags.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// `--query.lookback-delta` (default 5m), in milliseconds.
    pub lookback_delta_ms: i64,
    /// `--query.max-samples` (default 50,000,000).
    pub max_samples: usize,
    /// `--query.timeout` (default 2m).
    pub timeout: std::time::Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: std::time::Duration::from_secs(120),
        }
    }
}

/// Per-query overrides (the API's `lookback_delta` and `timeout` parameters).
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Overrides the engine's lookback delta (ms) when set and non-zero.
    pub lookback_delta_ms: Option<i64>,
    /// Overrides the engine's timeout when set (the smaller of the two applies).
    pub timeout: Option<std::time::Duration>,
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    /// The series' labels (the metric name may have been dropped).
    pub labels: Labels,
    /// Evaluation timestamp (ms).
    pub t: i64,
    /// The value.
    pub v: f64,
}

/// A PromQL value, as the HTTP API renders it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar at a timestamp (ms).
    Scalar {
        /// Timestamp (ms).
        t: i64,
        /// Value.
        v: f64,
    },
    /// A string at a timestamp (ms).
    String {
        /// Timestamp (ms).
        t: i64,
        /// Value.
        s: String,
    },
    /// An instant vector, in the engine's result order.
    Vector(Vec<InstantSample>),
    /// A range vector or the result of a range query, in the engine's result order.
    Matrix(Vec<Series>),
}

impl Value {
    /// The `resultType` the HTTP API reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// The outcome of a query: a value plus annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The result.
    pub value: Value,
    /// Warning annotations (e.g. "PromQL warning: …").
    pub warnings: Vec<String>,
    /// Info annotations (e.g. "PromQL info: metric might not be a counter, …").
    pub infos: Vec<String>,
    /// Samples the query loaded and processed (for `stats` and cost accounting).
    pub samples_processed: u64,
}

/// Why a query failed. Each variant maps to a Prometheus `errorType`.
#[derive(Debug, thiserror::Error)]
pub enum PromqlError {
    /// The query does not parse or is not valid (`bad_data`, 400). The message is the
    /// parser's, prefixed with the position where it is known.
    #[error("{0}")]
    Parse(String),
    /// A parameter is invalid, e.g. a step that yields over 11,000 points (`bad_data`, 400).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed, e.g. many-to-many matching (`execution`, 422).
    #[error("{0}")]
    Execution(String),
    /// The query would load more samples than allowed (`execution`, 422).
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// The query exceeded its timeout (`timeout`, 503).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// Reading from storage failed (`internal`, 500 or `unavailable`, 503).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl PromqlError {
    /// The Prometheus `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            PromqlError::Parse(_) | PromqlError::BadData(_) => "bad_data",
            PromqlError::Execution(_) | PromqlError::TooManySamples(_) => "execution",
            PromqlError::Timeout(_) => "timeout",
            PromqlError::Storage(StorageError::Unavailable(_)) => "unavailable",
            PromqlError::Storage(StorageError::InvalidInput(_)) => "bad_data",
            PromqlError::Storage(_) => "internal",
        }
    }
}
