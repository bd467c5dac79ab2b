//! Errors of the notifier, with the context needed to act on them.

/// What can go wrong loading the configuration, keeping state or sending.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid (the message names the field).
    #[error("alertmanager config: {0}")]
    Config(String),
    /// A file could not be read.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A template failed to parse or execute.
    #[error("template {name}: {message}")]
    Template {
        /// Which template (field or define name).
        name: String,
        /// The engine's message.
        message: String,
    },
    /// Reading or writing the state store failed.
    #[error("notifier state {key}: {message}")]
    State {
        /// The state key.
        key: String,
        /// The cause.
        message: String,
    },
    /// A silence is invalid.
    #[error("invalid silence: {0}")]
    Silence(String),
    /// A notification could not be delivered (the URL is never included).
    #[error("notify {receiver}/{integration}: {message}")]
    Notify {
        /// Receiver name.
        receiver: String,
        /// `webhook[0]`, `slack[1]`, `sns[0]`.
        integration: String,
        /// What failed (status code or transport error, URL redacted).
        message: String,
    },
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
