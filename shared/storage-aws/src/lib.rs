//! The AWS backend for Ember: recent samples in DynamoDB (packed segment items with a
//! TTL, a series index, metadata, the block index), everything older in Parquet blocks on
//! S3, behind the same [`ember_storage::Storage`] traits as the embedded backend.
//!
//! - [`open_aws_storage`] builds the SDK clients from the standard environment
//!   (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials…) and returns the hot ∪ cold storage.
//! - [`open_aws_compactor`] returns what `ember compact` / the compact Lambda runs.
//! - [`create_resources`] creates the table and bucket when missing.
//!
//! The item layout is documented in `docs/STORAGE.md`.

pub mod api;
pub mod hotstore;
pub mod metering;
pub mod resources;
pub mod retry;
pub mod s3;
pub mod state;
pub mod testing;

use std::sync::Arc;

use ember_blocks::compact::{CompactionConfig, CompactionReport, Compactor};
use ember_blocks::{CountingObjectStore, ObjectStore, SharedHot, TieredStorage};
use ember_storage::usage::{CountingHotStore, StoreUsage};
use ember_storage::{Result, Storage};

pub use api::{DdbError, DynamoApi, SdkDynamo};
pub use hotstore::{DynamoBlockIndex, DynamoHotConfig, DynamoHotStore};
pub use metering::{Meter, MeterSnapshot, MeteredDynamo, MeteredObjects};
pub use resources::{CreatedResources, create_resources};
pub use s3::S3ObjectStore;
pub use state::DynamoStateStore;

/// Where the AWS backend keeps its data.
#[derive(Debug, Clone)]
pub struct AwsStorageConfig {
    /// DynamoDB table name.
    pub table: String,
    /// S3 bucket name (blocks go under `blocks/`).
    pub bucket: String,
    /// Create the table and bucket when missing.
    pub create_resources: bool,
    /// Hot-store settings (shards, TTL, deadlines).
    pub hot: DynamoHotConfig,
}

impl AwsStorageConfig {
    /// Table and bucket with default settings.
    pub fn new(table: impl Into<String>, bucket: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            bucket: bucket.into(),
            create_resources: false,
            hot: DynamoHotConfig::default(),
        }
    }
}

/// The SDK clients, built once per process (per Lambda container).
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// DynamoDB client.
    pub dynamo: aws_sdk_dynamodb::Client,
    /// S3 client (path-style addressing, so local endpoints work).
    pub s3: aws_sdk_s3::Client,
}

impl AwsClients {
    /// Clients from the standard AWS environment: `AWS_ENDPOINT_URL` (and
    /// `AWS_ENDPOINT_URL_DYNAMODB` / `_S3`), `AWS_REGION`, credentials chain.
    pub async fn from_env() -> Self {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::from_sdk_config(&sdk)
    }

    /// Clients from an explicit SDK configuration (S3 with path-style addressing).
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let s3_conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build();
        Self {
            dynamo,
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
        }
    }
}

/// The process-state store of the Lambda functions in `table` (partition `@state`).
pub fn open_state_store(clients: &AwsClients, table: &str) -> DynamoStateStore<SdkDynamo> {
    DynamoStateStore::new(Arc::new(SdkDynamo::new(clients.dynamo.clone(), table)))
}

/// The DynamoDB hot store as built by [`open_aws_backend`].
/// Counted by kind (`hot`) for `/metrics` on top of the billing meter.
pub type AwsHotStore = CountingHotStore<DynamoHotStore<MeteredDynamo<SdkDynamo>>>;

/// Everything the AWS backend is made of, for callers that need the parts.
pub struct AwsBackend {
    /// The hot ∪ cold storage.
    pub storage: Arc<TieredStorage<SharedHot<AwsHotStore>>>,
    /// The compactor over the same stores (sharing the hot store and its caches).
    pub compactor: Compactor<AwsHotStore>,
    /// Request counters (DynamoDB and S3, in billing units) since start.
    pub meter: Arc<Meter>,
    /// Requests and bytes by store kind (hot, blocks), as every backend counts them.
    pub usage: Arc<StoreUsage>,
}

/// Builds the AWS backend from `clients`.
pub async fn open_aws_backend(cfg: &AwsStorageConfig, clients: &AwsClients) -> Result<AwsBackend> {
    if cfg.create_resources {
        create_resources(&clients.dynamo, &clients.s3, &cfg.table, &cfg.bucket).await?;
    }
    let meter = Arc::new(Meter::default());
    let api = Arc::new(MeteredDynamo::new(
        SdkDynamo::new(clients.dynamo.clone(), &cfg.table),
        meter.clone(),
    ));
    let usage = Arc::new(StoreUsage::default());
    let objects: Arc<dyn ObjectStore> = Arc::new(CountingObjectStore::new(
        Arc::new(MeteredObjects::new(
            S3ObjectStore::new(clients.s3.clone(), &cfg.bucket, ""),
            meter.clone(),
        )),
        usage.clone(),
    ));
    let index: Arc<dyn ember_blocks::BlockIndexStore> =
        Arc::new(DynamoBlockIndex::new(api.clone()));
    let hot = Arc::new(CountingHotStore::new(
        DynamoHotStore::new(api, cfg.hot.clone()),
        usage.clone(),
    ));
    let storage = Arc::new(TieredStorage::new(
        SharedHot(hot.clone()),
        index.clone(),
        objects.clone(),
    ));
    Ok(AwsBackend {
        storage,
        compactor: Compactor {
            hot,
            index,
            objects,
        },
        meter,
        usage,
    })
}

/// Opens the AWS backend (clients from the environment) as a `Storage` for `ember serve`.
pub async fn open_aws_storage(cfg: &AwsStorageConfig) -> Result<Arc<dyn Storage>> {
    let clients = AwsClients::from_env().await;
    let backend = open_aws_backend(cfg, &clients).await?;
    Ok(backend.storage)
}

/// Opens the AWS backend's compactor (clients from the environment) for `ember compact`.
pub async fn open_aws_compactor(cfg: &AwsStorageConfig) -> Result<Compactor<AwsHotStore>> {
    let clients = AwsClients::from_env().await;
    Ok(open_aws_backend(cfg, &clients).await?.compactor)
}

/// One compaction pass over the AWS backend at `cfg.now_ms`.
pub async fn compact_aws_once(
    storage: &AwsStorageConfig,
    cfg: &CompactionConfig,
) -> Result<CompactionReport> {
    open_aws_compactor(storage).await?.run(cfg).await
}
