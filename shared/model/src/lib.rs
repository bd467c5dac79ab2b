//! Ember's data model, in Prometheus' vocabulary.
//!
//! Everything that crosses a crate boundary (ingest → storage → PromQL → API)
//! is expressed with these types, so they carry no storage or wire details.

pub mod labels;
pub mod matcher;
pub mod metadata;
pub mod sample;

pub use labels::{Label, Labels, LabelsBuilder, METRIC_NAME};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use metadata::{MetricMetadata, MetricType};
pub use sample::{STALE_NAN_BITS, Sample, Series, is_stale_nan, stale_nan};

/// A tenant identifier. Plain Prometheus paths use [`DEFAULT_TENANT`];
/// AMP-style `/workspaces/<id>/…` paths use the workspace id.
pub type TenantId = String;

/// The tenant used by requests that do not name a workspace.
pub const DEFAULT_TENANT: &str = "default";

/// Milliseconds since the Unix epoch, the timestamp unit of Prometheus storage.
pub type Timestamp = i64;
