//! `ember serve`: the local all-in-one server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use ember_api::{ApiState, router};
use ember_config::Config;

/// Options of `ember serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,
    /// Directory for the embedded storage.
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
    /// Prometheus-style configuration file (global, scrape_configs, rule_files, alerting, ember).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl Default for ServeArgs {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([127, 0, 0, 1], 9090)), data_dir: crate::default_data_dir(), config: None }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration file is invalid.
    #[error(transparent)]
    Config(#[from] ember_config::ConfigError),
    /// The storage could not be opened.
    #[error("opening storage in {dir}: {source}")]
    Storage {
        /// The data directory.
        dir: PathBuf,
        /// The cause.
        source: ember_storage::StorageError,
    },
    /// The listen address is unusable.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> Result<(), ServeError> {
    let _config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let storage = ember_storage_local::open(&args.data_dir)
        .map_err(|source| ServeError::Storage { dir: args.data_dir.clone(), source })?;
    let state = Arc::new(ApiState::new(Arc::new(storage)));
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServeError::Listen { addr: args.listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen { addr: args.listen, source })?;
    tracing::info!(data_dir = %args.data_dir.display(), "listening on http://{addr}");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.map_err(ServeError::Serve)?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
