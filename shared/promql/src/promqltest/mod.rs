//! A runner for Prometheus' PromQL test-script format (`load`, `clear`, `eval …`,
//! `expect …`), used by the crate's tests to check the engine against `.test` files.
//!
//! The format is described upstream in `promql/promqltest/README.md`. This is an
//! independent implementation of its semantics over [`ember_storage::MemStorage`].

mod parse;
mod run;

pub use run::{CaseGroup, CaseOutcome, CaseReport, FileReport, run_script};

/// Experimental functions that upstream allows only behind a feature flag.
pub const EXPERIMENTAL_FUNCTIONS: &[&str] = &[
    "sort_by_label",
    "sort_by_label_desc",
    "double_exponential_smoothing",
    "mad_over_time",
    "ts_of_min_over_time",
    "ts_of_max_over_time",
    "ts_of_last_over_time",
    "ts_of_first_over_time",
    "first_over_time",
    "limitk",
    "limit_ratio",
    "info",
    "min_of",
    "max_of",
    "histogram_quantiles",
];
