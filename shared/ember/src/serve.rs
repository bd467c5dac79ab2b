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
    let hot = Arc::new(
        ember_storage_local::LocalStore::open(&args.data_dir).map_err(|source| {
            ServeError::Storage {
                dir: args.data_dir.clone(),
                source,
            }
        })?,
    );
    // Hot segments in redb plus Parquet blocks under DATA_DIR/blocks, as one storage.
    let (tiered, compactor) = ember_blocks::open_local_tiered(hot, &args.data_dir);
    let storage: Arc<dyn ember_storage::Storage> = tiered;
    let compactor = Arc::new(compactor);
    let retention_ms = config.ember.storage.retention.map(|d| d.as_millis());
    let scraper = ScrapeManager::new(&config, storage.clone(), ScrapeOptions::default())?;
    let mut state = ApiState::new(storage);
    state.targets = Some(Arc::new(ScrapeTargets(scraper.clone())));
    state.config_yaml = config_yaml;
    let app = router(Arc::new(state)).merge(admin_routes(compactor.clone(), retention_ms));

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
    let compact_task = tokio::spawn(compaction_loop(compactor, retention_ms, stop_rx.clone()));
    let addr_file = args.data_dir.join(crate::compact::ADDR_FILE);
    if let Err(e) = std::fs::write(&addr_file, addr.to_string()) {
        tracing::warn!(error = %e, "cannot write {}", addr_file.display());
    }
    tracing::info!(data_dir = %args.data_dir.display(), jobs = config.scrape_configs.len(), "listening on http://{addr}");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        })
        .await;
    let _ = scrape_task.await;
    let _ = compact_task.await;
    let _ = std::fs::remove_file(&addr_file);
    served.map_err(ServeError::Serve)?;
    tracing::info!("stopped");
    Ok(())
}

/// How often the server compacts closed hot buckets into blocks.
const COMPACTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

type LocalCompactor = ember_blocks::Compactor<ember_storage_local::LocalStore>;

/// Compacts every [`COMPACTION_INTERVAL`] until stopped; failures are logged and retried
/// on the next tick (compaction is idempotent).
async fn compaction_loop(
    compactor: Arc<LocalCompactor>,
    retention_ms: Option<i64>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(COMPACTION_INTERVAL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match compactor
            .run(&crate::compact::compaction_config(retention_ms))
            .await
        {
            Ok(report) if report.buckets_compacted > 0 || report.blocks_expired > 0 => {
                tracing::info!("{}", report.to_string().trim_end());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "compaction failed; will retry"),
        }
    }
}

/// Ember-only admin routes of the local server: `POST /api/v1/admin/compact` runs one
/// compaction pass now (what `ember compact` asks of a running server).
fn admin_routes(compactor: Arc<LocalCompactor>, retention_ms: Option<i64>) -> axum::Router {
    use axum::extract::{Query, State};
    use axum::http::StatusCode;
    use axum::routing::post;

    #[derive(serde::Deserialize)]
    struct CompactParams {
        retention_ms: Option<i64>,
    }

    async fn compact_now(
        State((compactor, default_retention)): State<(Arc<LocalCompactor>, Option<i64>)>,
        Query(p): Query<CompactParams>,
    ) -> (StatusCode, String) {
        let cfg = crate::compact::compaction_config(p.retention_ms.or(default_retention));
        match compactor.run(&cfg).await {
            Ok(report) => (StatusCode::OK, report.to_string()),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("compaction failed: {e}\n"),
            ),
        }
    }

    axum::Router::new()
        .route("/api/v1/admin/compact", post(compact_now))
        .with_state((compactor, retention_ms))
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
