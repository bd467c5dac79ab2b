//! Query evaluation.

use ember_storage::Querier;

use crate::{EngineOptions, PromqlError, QueryOptions, QueryResult};

/// Evaluates PromQL queries over a [`Querier`]. Cheap to clone and share.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    /// An engine with the given limits.
    pub fn new(opts: EngineOptions) -> Self {
        Self { opts }
    }

    /// The engine's limits.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at time `t` (ms) for `tenant`.
    pub async fn instant_query(
        &self,
        _storage: &dyn Querier,
        _tenant: &str,
        _query: &str,
        _t: i64,
        _opts: &QueryOptions,
    ) -> Result<QueryResult, PromqlError> {
        Err(PromqlError::Execution("engine not built yet".into()))
    }

    /// Evaluates `query` from `start` to `end` (ms, inclusive) every `step` ms for `tenant`;
    /// the result is always a matrix.
    pub async fn range_query(
        &self,
        _storage: &dyn Querier,
        _tenant: &str,
        _query: &str,
        _start: i64,
        _end: i64,
        _step: i64,
        _opts: &QueryOptions,
    ) -> Result<QueryResult, PromqlError> {
        Err(PromqlError::Execution("engine not built yet".into()))
    }
}
