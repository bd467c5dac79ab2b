//! `ember serve`: the local all-in-one server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use ember_api::{ApiState, TargetsSource, router};
use ember_config::Config;
use ember_scrape::{ScrapeManager, ScrapeOptions, default_self_scrape_config};
use tokio::sync::watch;

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
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            data_dir: crate::default_data_dir(),
            config: None,
        }
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
    /// The scrape configuration could not be used.
    #[error("starting scrape manager: {0}")]
    Scrape(#[from] ember_scrape::ScrapeError),
    /// The server failed while running.
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
}

/// `/api/v1/targets` served from the scrape manager's state.
struct ScrapeTargets(ScrapeManager);

impl TargetsSource for ScrapeTargets {
    fn targets_json(&self) -> serde_json::Value {
        serde_json::to_value(self.0.targets()).unwrap_or_default()
    }
}

/// Loads the configuration file, or builds the default one: scrape Ember's own `/metrics`.
fn load_config(args: &ServeArgs, addr: SocketAddr) -> Result<(Config, String), ServeError> {
    match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| {
                ember_config::ConfigError::Read {
                    path: path.clone(),
                    source,
                }
            })?;
            Ok((Config::from_yaml(&text, path)?, text))
        }
        None => {
            let config = Config {
                scrape_configs: vec![default_self_scrape_config(&addr.to_string())],
                ..Config::default()
            };
            let text = format!(
                "# default configuration\nscrape_configs:\n  - job_name: ember\n    static_configs:\n      - targets: [\"{addr}\"]\n"
            );
            Ok((config, text))
        }
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: args.listen,
        source,
    })?;
    let (config, config_yaml) = load_config(&args, addr)?;
    let storage: Arc<dyn ember_storage::Storage> =
        Arc::new(ember_storage_local::open(&args.data_dir).map_err(|source| {
            ServeError::Storage {
                dir: args.data_dir.clone(),
                source,
            }
        })?);
    let scraper = ScrapeManager::new(&config, storage.clone(), ScrapeOptions::default())?;
    let mut state = ApiState::new(storage);
    state.targets = Some(Arc::new(ScrapeTargets(scraper.clone())));
    state.config_yaml = config_yaml;
    let app = router(Arc::new(state));

    let (stop_tx, stop_rx) = watch::channel(false);
    let scrape_task = tokio::spawn({
        let mut stop = stop_rx.clone();
        async move {
            scraper
                .run(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        }
    });
    tracing::info!(data_dir = %args.data_dir.display(), jobs = config.scrape_configs.len(), "listening on http://{addr}");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        })
        .await;
    let _ = scrape_task.await;
    served.map_err(ServeError::Serve)?;
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
