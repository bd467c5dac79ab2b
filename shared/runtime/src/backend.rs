//! Choosing and opening the storage backend: embedded (redb + block files under the
//! data directory) or AWS (DynamoDB table + S3 bucket), from flags or the `ember:`
//! config section. Flags win over the config file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use ember_blocks::{CompactionConfig, CompactionReport, Compactor};
use ember_config::StorageConfig;
use ember_storage::hot::HotStore;
use ember_storage::usage::{CountingHotStore, StoreUsage};
use ember_storage::{Storage, StorageError};

/// Which backend stores the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum BackendKind {
    /// Embedded storage in the data directory (the default).
    Local,
    /// DynamoDB (hot) and S3 (blocks); honours AWS_ENDPOINT_URL, AWS_REGION and credentials.
    Aws,
}

/// Storage flags shared by `ember serve` and `ember compact` (with the `cli` feature they
/// are clap arguments); the Lambda functions fill them from the environment.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct StorageArgs {
    /// Storage backend (default: `ember.storage.backend` of the config, else local).
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub storage: Option<BackendKind>,
    /// DynamoDB table (aws backend).
    #[cfg_attr(feature = "cli", arg(long))]
    pub table: Option<String>,
    /// S3 bucket for blocks (aws backend).
    #[cfg_attr(feature = "cli", arg(long))]
    pub bucket: Option<String>,
    /// Create the table and bucket when missing, with the settings the SAM template declares.
    #[cfg_attr(feature = "cli", arg(long))]
    pub create_resources: bool,
}

/// The storage could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A setting is missing or wrong.
    #[error("storage settings: {0}")]
    Settings(String),
    /// Opening the backend failed.
    #[error("opening {what}: {source}")]
    Open {
        /// Which backend and where.
        what: String,
        /// The cause.
        source: StorageError,
    },
}

/// Runs compaction passes, whatever the hot store is.
#[async_trait]
pub trait RunCompaction: Send + Sync {
    /// One pass.
    async fn run(&self, cfg: &CompactionConfig) -> Result<CompactionReport, StorageError>;
}

#[async_trait]
impl<H: HotStore + ?Sized + 'static> RunCompaction for Compactor<H> {
    async fn run(&self, cfg: &CompactionConfig) -> Result<CompactionReport, StorageError> {
        Compactor::run(self, cfg).await
    }
}

/// An opened backend: the storage and a compactor over the same stores.
pub struct Backend {
    /// Reads and writes.
    pub storage: Arc<dyn Storage>,
    /// Compaction over the same hot store and blocks.
    pub compactor: Arc<dyn RunCompaction>,
    /// A human-readable description for logs.
    pub description: String,
    /// Whether this is the embedded backend (its data directory holds the database).
    pub is_local: bool,
    /// Requests and bytes by store kind (hot, blocks), for `/metrics`.
    pub usage: Arc<StoreUsage>,
    /// The AWS backend's billing meter (DynamoDB units, S3 requests); `None` when local.
    pub aws_meter: Option<Arc<ember_storage_aws::Meter>>,
}

/// The AWS settings, if the chosen backend is AWS.
pub fn resolve(
    args: &StorageArgs,
    cfg: &StorageConfig,
) -> Result<Option<ember_storage_aws::AwsStorageConfig>, BackendError> {
    let kind = match (args.storage, cfg.backend.as_deref()) {
        (Some(k), _) => k,
        (None, None | Some("local")) => BackendKind::Local,
        (None, Some("aws")) => BackendKind::Aws,
        (None, Some(other)) => {
            return Err(BackendError::Settings(format!(
                "ember.storage.backend must be local or aws, not {other:?}"
            )));
        }
    };
    if kind == BackendKind::Local {
        return Ok(None);
    }
    let table = args.table.clone().or_else(|| cfg.table.clone());
    let bucket = args.bucket.clone().or_else(|| cfg.bucket.clone());
    let (Some(table), Some(bucket)) = (table, bucket) else {
        return Err(BackendError::Settings(
            "the aws backend needs a DynamoDB table and an S3 bucket (--table and --bucket, or ember.storage.table/bucket)".into(),
        ));
    };
    let mut aws = ember_storage_aws::AwsStorageConfig::new(table, bucket);
    aws.create_resources = args.create_resources || cfg.create_resources.unwrap_or(false);
    Ok(Some(aws))
}

/// Opens the configured backend; the embedded one lives in `data_dir`. AWS clients come
/// from the standard environment.
pub async fn open(
    args: &StorageArgs,
    cfg: &StorageConfig,
    data_dir: &Path,
) -> Result<Backend, BackendError> {
    open_with(args, cfg, data_dir, None).await
}

/// Like [`open`], with AWS clients the caller built already (once per Lambda container).
pub async fn open_with(
    args: &StorageArgs,
    cfg: &StorageConfig,
    data_dir: &Path,
    clients: Option<&ember_storage_aws::AwsClients>,
) -> Result<Backend, BackendError> {
    match resolve(args, cfg)? {
        None => {
            let what = || format!("embedded storage in {}", data_dir.display());
            let usage = Arc::new(StoreUsage::default());
            let store = ember_storage_local::LocalStore::open(data_dir).map_err(|source| {
                BackendError::Open {
                    what: what(),
                    source,
                }
            })?;
            let hot = Arc::new(CountingHotStore::new(store, usage.clone()));
            let (storage, compactor) =
                ember_blocks::open_local_tiered_counted(hot, data_dir, Some(usage.clone()));
            Ok(Backend {
                storage,
                compactor: Arc::new(compactor),
                description: what(),
                is_local: true,
                usage,
                aws_meter: None,
            })
        }
        Some(aws) => {
            let what = format!("DynamoDB table {} and S3 bucket {}", aws.table, aws.bucket);
            let owned;
            let clients = match clients {
                Some(c) => c,
                None => {
                    owned = ember_storage_aws::AwsClients::from_env().await;
                    &owned
                }
            };
            let backend = ember_storage_aws::open_aws_backend(&aws, clients)
                .await
                .map_err(|source| BackendError::Open {
                    what: what.clone(),
                    source,
                })?;
            Ok(Backend {
                storage: backend.storage,
                compactor: Arc::new(backend.compactor),
                description: what,
                is_local: false,
                usage: backend.usage,
                aws_meter: Some(backend.meter),
            })
        }
    }
}

/// The default data directory, for the embedded backend.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
