//! `ember compact`: one compaction pass over every closed hot bucket.
//!
//! With the embedded backend the redb file can be opened by one process only, so
//! when a server is running on the data directory (it leaves its address in
//! `DATA_DIR/ember.addr`) the pass is asked of that server instead.

use std::path::{Path, PathBuf};

use clap::Args;
use ember_blocks::CompactionConfig;

use crate::backend::{self, BackendError, StorageArgs};

/// File in the data directory where a running server leaves its address.
pub const ADDR_FILE: &str = "ember.addr";

/// Options of `ember compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Directory of the embedded storage.
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
    /// Delete blocks older than this (e.g. `15d`); default: `ember.storage.retention`, else keep all.
    #[arg(long, value_parser = parse_retention)]
    pub retention: Option<i64>,
    /// Configuration file (its `ember.storage` section selects the backend).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Storage backend flags.
    #[command(flatten)]
    pub storage: StorageArgs,
}

fn parse_retention(s: &str) -> Result<i64, String> {
    ember_config::PromDuration::parse(s).map(|d| d.as_millis())
}

/// Why compaction failed.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// The configuration file is invalid.
    #[error(transparent)]
    Config(#[from] ember_config::ConfigError),
    /// The storage could not be opened.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The pass failed (it is idempotent: run it again).
    #[error("compaction failed: {0}")]
    Storage(#[from] ember_storage::StorageError),
    /// The running server did not compact.
    #[error("asking the server at {addr} to compact: {message}")]
    Server {
        /// The server's address.
        addr: String,
        /// What went wrong.
        message: String,
    },
}

/// The compaction settings for "now".
pub fn compaction_config(retention_ms: Option<i64>) -> CompactionConfig {
    let now = chrono::Utc::now().timestamp_millis();
    let mut cfg = CompactionConfig::at(now);
    cfg.retention_ms = retention_ms;
    cfg
}

/// Runs one pass and prints what it wrote.
pub async fn run(args: CompactArgs) -> Result<(), CompactError> {
    let config = match &args.config {
        Some(path) => ember_config::Config::load(path)?,
        None => ember_config::Config::default(),
    };
    let storage_cfg = &config.ember.storage;
    let retention = args
        .retention
        .or(storage_cfg.retention.map(|d| d.as_millis()));
    let is_local = backend::resolve(&args.storage, storage_cfg)?.is_none();
    if is_local && let Some(addr) = running_server(&args.data_dir).await {
        let report = ask_server(&addr, retention).await?;
        print!("{report}");
        return Ok(());
    }
    let opened = backend::open(&args.storage, storage_cfg, &args.data_dir).await?;
    let report = opened.compactor.run(&compaction_config(retention)).await?;
    print!("{report}");
    Ok(())
}

/// The address of a live server on this data directory, if there is one.
async fn running_server(dir: &Path) -> Option<String> {
    let addr = std::fs::read_to_string(dir.join(ADDR_FILE))
        .ok()?
        .trim()
        .to_string();
    let healthy = reqwest::Client::new()
        .get(format!("http://{addr}/-/healthy"))
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    healthy.then_some(addr)
}

async fn ask_server(addr: &str, retention: Option<i64>) -> Result<String, CompactError> {
    let err = |message: String| CompactError::Server {
        addr: addr.to_string(),
        message,
    };
    let mut url = format!("http://{addr}/api/v1/admin/compact");
    if let Some(r) = retention {
        url.push_str(&format!("?retention_ms={r}"));
    }
    let resp = reqwest::Client::new()
        .post(url)
        .send()
        .await
        .map_err(|e| err(e.to_string()))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| err(e.to_string()))?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(err(format!("{status}: {body}")))
    }
}
