//! Harness for Ember's end-to-end tests and benchmarks.
//!
//! Everything here talks to 127.0.0.1 only: servers are started on free loopback
//! ports ([`free_port`]), each child process is owned by a [`ProcessGuard`] that
//! stops it by PID when dropped, and the HTTP clients ([`RemoteWriteClient`],
//! [`PromApi`]) refuse URLs that are not loopback.
//!
//! The binaries under test are found by [`binaries`]: `ember` from the workspace's
//! target directory (or `EMBER_BIN`), the peers (Prometheus, node_exporter, k6) from
//! `PATH`, `/usr/bin` or the project venv that `tests/run` installs. A missing peer is
//! an error with an explanation, never a silent skip.

pub mod binaries;
pub mod error;
pub mod net;
pub mod process;
pub mod prom_api;
pub mod promql_data;
pub mod remote_write;
pub mod servers;

pub use error::{Error, Result};
pub use net::{free_port, wait_for_http};
pub use process::{ProcessGuard, spawn_logged};
pub use prom_api::PromApi;
pub use remote_write::{
    Label, MetricMetadata, MetricType, RemoteWriteClient, Sample, TimeSeries, WriteRequest,
};
pub use servers::{EmberServer, NodeExporter, PrometheusServer};

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub use tempfile::TempDir;

/// A fresh temporary directory for one test (`ember-e2e-<name>-XXXX` under the
/// system temp dir), removed when dropped. Set `EMBER_E2E_KEEP=1` to keep it (its
/// path is printed) for inspecting logs and data after a run.
pub fn test_dir(name: &str) -> Result<TempDir> {
    let mut dir = tempfile::Builder::new()
        .prefix(&format!("ember-e2e-{name}-"))
        .tempdir()
        .map_err(|e| Error::new(format!("cannot create a temp dir: {e}")))?;
    if std::env::var_os("EMBER_E2E_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("keeping test dir {}", dir.path().display());
    }
    Ok(dir)
}

/// The work directory of a benchmark run: `given` when set (kept), else a fresh temp
/// dir that is removed when the returned guard drops, unless `keep` is set.
pub fn work_dir(
    given: Option<&Path>,
    keep: bool,
    name: &str,
) -> Result<(Option<TempDir>, PathBuf)> {
    match given {
        Some(dir) => Ok((None, dir.to_path_buf())),
        None => {
            let temp = test_dir(name)?;
            if keep {
                Ok((None, temp.keep()))
            } else {
                let path = temp.path().to_path_buf();
                Ok((Some(temp), path))
            }
        }
    }
}

/// The workspace root (the directory holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// Milliseconds since the Unix epoch, as remote write and Prometheus use them.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
