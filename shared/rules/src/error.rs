//! Errors of the rules crate.

/// Why loading rules, evaluating them, persisting state or sending alerts failed.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// A rule file could not be read.
    #[error("reading rule file {file}: {message}")]
    Io {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// A rule file is invalid; the whole file is rejected.
    #[error("{file}:{line}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line (0 when unknown).
        line: u64,
        /// Why it is invalid.
        reason: String,
    },
    /// A `rule_files` glob is malformed.
    #[error("bad rule_files pattern {pattern:?}: {message}")]
    Glob {
        /// The pattern.
        pattern: String,
        /// What went wrong.
        message: String,
    },
    /// A template could not be parsed or executed.
    #[error("template {name}: {message}")]
    Template {
        /// Which template (rule/annotation name).
        name: String,
        /// What went wrong.
        message: String,
    },
    /// The state store failed.
    #[error("rule state store: {context}: {message}")]
    State {
        /// What was being done.
        context: String,
        /// What went wrong.
        message: String,
    },
    /// The `alerting` configuration is invalid.
    #[error("alerting config: {0}")]
    AlertingConfig(String),
    /// Storage failed while writing rule results.
    #[error("storage: {0}")]
    Storage(#[from] ember_storage::StorageError),
}

/// Result alias for this crate.
pub type Result<T, E = RulesError> = std::result::Result<T, E>;
