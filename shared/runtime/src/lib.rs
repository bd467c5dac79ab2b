//! What a running Ember process is made of, shared by `ember serve` and every Lambda
//! function:
//!
//! - [`backend`]: opening the storage (embedded or DynamoDB + S3) and its compactor;
//! - [`settings`]: [`RuntimeSettings::from_env`], the environment variables of the Lambda
//!   contract (`EMBER_STORAGE`, `EMBER_TABLE`, `EMBER_BUCKET`, `EMBER_DATA_DIR`,
//!   `EMBER_CONFIG`, `EMBER_CONFIG_TTL`, `EMBER_AUTH_TOKEN`, `EMBER_ALERTMANAGER_CONFIG`);
//! - [`config`]: the configuration from a file, `s3://` or `ssm:` with its rule files,
//!   re-read when it changes;
//! - [`Process::open`]: storage, compactor and [`StateStore`] chosen by the settings (files
//!   under `<data dir>/state` locally, `DynamoStateStore` in the table on AWS);
//! - [`window`]: how long a scheduled invocation keeps running aligned passes;
//! - `lambda` (feature `lambda`): the event loop of the scheduled functions; `http`
//!   (feature `http`): the API router served through `lambda_http`.

pub mod aws;
pub mod backend;
pub mod config;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod metrics;
pub mod settings;
pub mod shared_dir;
pub mod window;

use std::path::PathBuf;
use std::sync::Arc;

use ember_storage::Storage;
use ember_storage::state::FileStateStore;
pub use ember_storage::state::StateStore;

pub use aws::AwsContext;
pub use backend::{Backend, BackendError, BackendKind, RunCompaction, StorageArgs};
pub use config::{ConfigLoadError, ConfigLoader, ConfigLocation, LoadedConfig};
pub use ember_storage::StorageError;
pub use settings::{RuntimeSettings, SettingsError, StorageSettings};
pub use shared_dir::SharedDirStorage;
pub use window::{Window, scheduled_time, window};

/// Why a process could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The environment is wrong.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The storage could not be opened.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The state store could not be opened.
    #[error("opening the state store: {0}")]
    State(ember_storage::StorageError),
}

/// A function's process: storage, compactor and state store, built once per container.
pub struct Process {
    /// The settings it was opened with.
    pub settings: RuntimeSettings,
    /// AWS SDK configuration and clients (built on first use).
    pub aws: Arc<AwsContext>,
    /// Reads and writes.
    pub storage: Arc<dyn Storage>,
    /// Compaction over the same stores.
    pub compactor: Arc<dyn RunCompaction>,
    /// Small durable state (rules, scrape, notifier, CloudWatch watermarks).
    pub state: Arc<dyn StateStore>,
    /// What the storage is, for logs.
    pub description: String,
    /// The backend's own metrics (requests and bytes by store kind; AWS billing units),
    /// for `/metrics` of the HTTP functions. Empty for the shared embedded directory.
    pub metric_sources: Vec<metrics::MetricsSource>,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("settings", &self.settings)
            .field("storage", &self.description)
            .finish_non_exhaustive()
    }
}

impl Process {
    /// Opens the storage and state store the settings choose. With the embedded backend
    /// the store is opened per call ([`SharedDirStorage`]), so several functions (separate
    /// processes under `cargo lambda watch`) can share one data directory. Nothing here
    /// talks to the network.
    pub async fn open(settings: RuntimeSettings) -> Result<Self, RuntimeError> {
        let aws = Arc::new(AwsContext::from_env());
        Self::open_with(settings, aws).await
    }

    /// Like [`Process::open`] with a given AWS context (tests point it at moto).
    pub async fn open_with(
        settings: RuntimeSettings,
        aws: Arc<AwsContext>,
    ) -> Result<Self, RuntimeError> {
        match &settings.storage {
            StorageSettings::Local => {
                let dir = settings.data_dir.clone();
                let shared = Arc::new(SharedDirStorage::new(&dir, shared_dir::DEFAULT_LOCK_WAIT));
                let state = FileStateStore::new(dir.join("state")).map_err(RuntimeError::State)?;
                Ok(Self {
                    description: format!("embedded storage in {} (opened per call)", dir.display()),
                    storage: shared.clone(),
                    compactor: shared,
                    state: Arc::new(state),
                    aws,
                    settings,
                    metric_sources: Vec::new(),
                })
            }
            StorageSettings::Aws { table, .. } => {
                let clients = aws.clients().await.clone();
                let opened = backend::open_with(
                    &settings.storage_args(),
                    &ember_config::StorageConfig::default(),
                    &settings.data_dir,
                    Some(&clients),
                )
                .await?;
                let state = ember_storage_aws::open_state_store(&clients, table);
                let mut metric_sources = vec![metrics::store_usage_source(opened.usage)];
                metric_sources.extend(opened.aws_meter.map(metrics::aws_meter_source));
                Ok(Self {
                    metric_sources,
                    description: opened.description,
                    storage: opened.storage,
                    compactor: opened.compactor,
                    state: Arc::new(state),
                    aws,
                    settings,
                })
            }
        }
    }

    /// A loader for `EMBER_CONFIG` (remote rule files are cached under the temp dir).
    pub fn config_loader(&self) -> ConfigLoader {
        ConfigLoader::new(
            self.settings.config.clone(),
            self.settings.config_ttl,
            self.aws.clone(),
            config_cache_dir(),
        )
    }
}

/// An `Arc<dyn StateStore>` as a `StateStore` value (so it can be handed where a
/// `dyn RuleStateStore` or another trait with a blanket impl over stores is wanted).
#[derive(Clone)]
pub struct SharedStateStore(pub Arc<dyn StateStore>);

#[async_trait::async_trait]
impl StateStore for SharedStateStore {
    async fn get(&self, key: &str) -> ember_storage::Result<Option<Vec<u8>>> {
        self.0.get(key).await
    }
    async fn put(&self, key: &str, blob: Vec<u8>) -> ember_storage::Result<()> {
        self.0.put(key, blob).await
    }
    async fn delete(&self, key: &str) -> ember_storage::Result<()> {
        self.0.delete(key).await
    }
}

/// Where remote rule files are cached (`/tmp` in Lambda, the only writable place).
pub fn config_cache_dir() -> PathBuf {
    std::env::temp_dir().join("ember-config")
}
