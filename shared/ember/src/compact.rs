//! `ember compact`: one compaction pass over every closed hot bucket.
//!
//! With the embedded backend the redb file can be opened by one process only, so
//! when a server is running on the data directory (it leaves its address in
//! `DATA_DIR/ember.addr`) the pass is asked of that server instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use ember_blocks::{CompactionConfig, compact_local_once};

/// File in the data directory where a running server leaves its address.
pub const ADDR_FILE: &str = "ember.addr";

/// Options of `ember compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Directory of the embedded storage.
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
    /// Delete blocks older than this (e.g. `15d`); default keeps everything.
    #[arg(long, value_parser = parse_retention)]
    pub retention: Option<i64>,
}

fn parse_retention(s: &str) -> Result<i64, String> {
    ember_config::PromDuration::parse(s).map(|d| d.as_millis())
}

/// Why compaction failed.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// The storage could not be opened or written.
    #[error("compacting {dir}: {source}")]
    Storage {
        /// The data directory.
        dir: PathBuf,
        /// The cause.
        source: ember_storage::StorageError,
    },
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
    if let Some(addr) = running_server(&args.data_dir).await {
        let report = ask_server(&addr, args.retention).await?;
        print!("{report}");
        return Ok(());
    }
    let storage_err = |source| CompactError::Storage {
        dir: args.data_dir.clone(),
        source,
    };
    let store =
        Arc::new(ember_storage_local::LocalStore::open(&args.data_dir).map_err(storage_err)?);
    let report = compact_local_once(
        store.as_ref(),
        &args.data_dir,
        &compaction_config(args.retention),
    )
    .await
    .map_err(storage_err)?;
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
