//! Persisted rule-group state: one blob per group, so alert state survives restarts and
//! cold starts. Any [`ember_storage::state::StateStore`] is a [`RuleStateStore`]: files in
//! the data directory for `ember serve`, the DynamoDB table for the rules Lambda.

use async_trait::async_trait;
use ember_storage::state::StateStore;

pub use ember_storage::state::{FileStateStore, MemStateStore, fnv1a64};

use crate::error::{Result, RulesError};

/// Key prefix of rule-group state in a shared [`StateStore`].
pub const STATE_KEY_PREFIX: &str = "rules/";

/// Stores one opaque blob per rule group (keyed by the group key `file;name`).
#[async_trait]
pub trait RuleStateStore: Send + Sync {
    /// The blob last stored for `group`, if any.
    async fn get(&self, group: &str) -> Result<Option<Vec<u8>>>;
    /// Stores the blob for `group`, replacing the previous one atomically.
    async fn put(&self, group: &str, blob: Vec<u8>) -> Result<()>;
}

fn state_error(context: String) -> impl FnOnce(ember_storage::StorageError) -> RulesError {
    move |e| RulesError::State {
        context,
        message: e.to_string(),
    }
}

#[async_trait]
impl<S: StateStore + ?Sized> RuleStateStore for S {
    async fn get(&self, group: &str) -> Result<Option<Vec<u8>>> {
        StateStore::get(self, &format!("{STATE_KEY_PREFIX}{group}"))
            .await
            .map_err(state_error(format!("reading state of group {group:?}")))
    }

    async fn put(&self, group: &str, blob: Vec<u8>) -> Result<()> {
        StateStore::put(self, &format!("{STATE_KEY_PREFIX}{group}"), blob)
            .await
            .map_err(state_error(format!("writing state of group {group:?}")))
    }
}
