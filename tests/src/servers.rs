//! The servers the tests start: `ember serve`, node_exporter and Prometheus (agent or
//! remote-write receiver), each on a free 127.0.0.1 port and owned by a
//! [`ProcessGuard`].

use crate::binaries::{self, Profile};
use crate::error::{Context, Result};
use crate::net::{free_port, wait_for_http};
use crate::process::{ProcessGuard, spawn_logged};
use crate::prom_api::PromApi;
use crate::remote_write::RemoteWriteClient;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long a server may take to answer its readiness URL.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `ember serve` on 127.0.0.1.
#[derive(Debug)]
pub struct EmberServer {
    /// The process (stop it with [`ProcessGuard::stop_cleanly`] or `kill_hard`).
    pub process: ProcessGuard,
    port: u16,
    data_dir: PathBuf,
}

impl EmberServer {
    /// Starts the debug build of `ember serve` on a free port with `data_dir`, logs in
    /// `log_dir` (as `<name>.stderr.log`), and waits until `/-/ready` answers.
    pub fn start(name: &str, data_dir: &Path, log_dir: &Path) -> Result<Self> {
        Self::start_with(
            &binaries::ember_bin(Profile::Debug)?,
            name,
            data_dir,
            log_dir,
            &[],
        )
    }

    /// Starts `binary serve --listen 127.0.0.1:PORT --data-dir DATA_DIR EXTRA_ARGS...`.
    pub fn start_with(
        binary: &Path,
        name: &str,
        data_dir: &Path,
        log_dir: &Path,
        extra_args: &[&str],
    ) -> Result<Self> {
        let port = free_port()?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra_args);
        let mut process = spawn_logged(name, command, log_dir)?;
        wait_for_http(
            &format!("http://127.0.0.1:{port}/-/ready"),
            STARTUP_TIMEOUT,
            Some(&mut process),
        )?;
        Ok(Self {
            process,
            port,
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The data directory it was started with.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The remote-write URL (`/api/v1/write`).
    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.url())
    }

    /// A query API client for the default tenant.
    pub fn api(&self) -> Result<PromApi> {
        PromApi::new(&self.url())
    }

    /// A remote-write client for `/api/v1/write`.
    pub fn remote_write(&self) -> Result<RemoteWriteClient> {
        RemoteWriteClient::new(&self.write_url())
    }
}

/// A running node_exporter (`--no-collector.systemd`) on 127.0.0.1.
#[derive(Debug)]
pub struct NodeExporter {
    /// The process.
    pub process: ProcessGuard,
    port: u16,
}

impl NodeExporter {
    /// Starts node_exporter on a free port and waits until `/metrics` answers.
    pub fn start(log_dir: &Path) -> Result<Self> {
        let binary = binaries::node_exporter_bin()?;
        let port = free_port()?;
        let mut command = Command::new(binary);
        command
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--no-collector.systemd");
        let mut process = spawn_logged("node_exporter", command, log_dir)?;
        wait_for_http(
            &format!("http://127.0.0.1:{port}/metrics"),
            STARTUP_TIMEOUT,
            Some(&mut process),
        )?;
        Ok(Self { process, port })
    }

    /// `127.0.0.1:PORT`, as a scrape target.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// How to run Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrometheusMode {
    /// `--enable-feature=agent`: scrape and remote-write only, WAL in `storage.agent.path`.
    Agent,
    /// A normal server with `--web.enable-remote-write-receiver` (and the admin API,
    /// for TSDB snapshots).
    Receiver,
}

/// A running Prometheus 2.42 on 127.0.0.1.
#[derive(Debug)]
pub struct PrometheusServer {
    /// The process.
    pub process: ProcessGuard,
    port: u16,
    storage_dir: PathBuf,
}

impl PrometheusServer {
    /// Writes `config_yaml` to `<work_dir>/prometheus.yml`, starts Prometheus in `mode`
    /// with storage under `<work_dir>/data` and `extra_args`, and waits for `/-/ready`.
    pub fn start(
        mode: PrometheusMode,
        config_yaml: &str,
        work_dir: &Path,
        log_dir: &Path,
        extra_args: &[&str],
    ) -> Result<Self> {
        let binary = binaries::prometheus_bin()?;
        std::fs::create_dir_all(work_dir)
            .context(|| format!("cannot create {}", work_dir.display()))?;
        let config_path = work_dir.join("prometheus.yml");
        std::fs::write(&config_path, config_yaml)
            .context(|| format!("cannot write {}", config_path.display()))?;
        let storage_dir = work_dir.join("data");
        let port = free_port()?;
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        match mode {
            PrometheusMode::Agent => {
                command
                    .arg("--enable-feature=agent")
                    .arg(format!("--storage.agent.path={}", storage_dir.display()));
            }
            PrometheusMode::Receiver => {
                command
                    .arg("--web.enable-remote-write-receiver")
                    .arg("--web.enable-admin-api")
                    .arg(format!("--storage.tsdb.path={}", storage_dir.display()));
            }
        }
        command.args(extra_args);
        let name = match mode {
            PrometheusMode::Agent => "prometheus_agent",
            PrometheusMode::Receiver => "prometheus",
        };
        let mut process = spawn_logged(name, command, log_dir)?;
        wait_for_http(
            &format!("http://127.0.0.1:{port}/-/ready"),
            STARTUP_TIMEOUT,
            Some(&mut process),
        )?;
        Ok(Self {
            process,
            port,
            storage_dir,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its storage directory (TSDB or agent WAL).
    pub fn storage_dir(&self) -> &Path {
        &self.storage_dir
    }

    /// A query API client.
    pub fn api(&self) -> Result<PromApi> {
        PromApi::new(&self.url())
    }

    /// A remote-write client for its receiver (`/api/v1/write`).
    pub fn remote_write(&self) -> Result<RemoteWriteClient> {
        RemoteWriteClient::new(&format!("{}/api/v1/write", self.url()))
    }
}

/// Total size in bytes of the regular files under `dir` (like `du -b`).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
