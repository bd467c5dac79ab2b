//! `ember serve`: the local all-in-one server. Remote write, the query API, scraping
//! and compaction run in one process over the embedded or the AWS backend.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use ember_api::{ApiState, TargetsSource, router};
use ember_config::Config;
use ember_scrape::{ScrapeManager, ScrapeOptions, default_self_scrape_config};
use tokio::sync::watch;

use crate::backend::{self, BackendError, RunCompaction, StorageArgs};
use crate::self_metrics;
use ember_runtime::metrics::CompactionMetrics;

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
    /// Storage backend flags.
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Require a token on every HTTP request except /-/healthy and /-/ready. The value is
    /// a secret reference, never the token: `file:/path`, `env:NAME`, `ssm:/name` or
    /// `secretsmanager:<name-or-arn>`. Clients send `Authorization: Bearer <token>` or
    /// basic auth with the token as password. With the built-in default configuration
    /// the self-scrape sends it too.
    #[arg(
        long = "auth-token",
        env = "EMBER_AUTH_TOKEN",
        value_name = "SECRET_REF"
    )]
    pub auth_token: Option<String>,
    /// The built-in notifier's Alertmanager-format configuration (routes, receivers, inhibit
    /// rules); unset: no built-in notifier. Its state and silences live in DATA_DIR/state.
    #[arg(long = "alertmanager.config", env = "EMBER_ALERTMANAGER_CONFIG")]
    pub alertmanager_config: Option<PathBuf>,
}

impl Default for ServeArgs {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            data_dir: crate::default_data_dir(),
            config: None,
            storage: StorageArgs::default(),
            auth_token: None,
            alertmanager_config: None,
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
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The `--auth-token` secret could not be read.
    #[error("--auth-token: {0}")]
    AuthToken(#[from] ember_secrets::SecretError),
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
    /// The rules could not be loaded.
    #[error("loading rules: {0}")]
    Rules(#[from] ember_rules::RulesError),
    /// The built-in notifier could not be started.
    #[error("starting the built-in notifier: {0}")]
    Notifier(#[from] ember_alertmanager::Error),
    /// A state directory (rules, notifier) could not be created.
    #[error("state store: {0}")]
    State(#[from] ember_storage::StorageError),
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

/// `/api/v1/rules` and `/api/v1/alerts` served from the rule manager.
struct Rules(Arc<ember_rules::RuleManager>);

impl ember_api::RulesSource for Rules {
    fn rules_json(&self, params: &[(String, String)]) -> Result<serde_json::Value, String> {
        let filter = ember_rules::api::RulesFilter::from_pairs(
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )?;
        ember_rules::api::rules_data(&self.0, &filter)
    }

    fn alerts_json(&self) -> serde_json::Value {
        ember_rules::api::alerts_data(&self.0)
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

/// Resolves `--auth-token` into the API's token check. With the built-in default
/// configuration (no `--config`), the self-scrape job sends the token as well.
async fn load_auth(
    args: &ServeArgs,
    config: &mut Config,
) -> Result<Option<ember_api::auth::TokenAuth>, ServeError> {
    let Some(reference) = &args.auth_token else {
        return Ok(None);
    };
    let token = ember_secrets::SecretRef::parse(reference)?
        .resolve_from_env()
        .await?;
    if args.config.is_none() {
        for job in &mut config.scrape_configs {
            job.authorization = Some(ember_config::scrape::Authorization {
                auth_type: None,
                credentials: Some(token.expose().to_string()),
                credentials_file: None,
            });
        }
    }
    Ok(Some(ember_api::auth::TokenAuth::single(token)))
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
    let (mut config, config_yaml) = load_config(&args, addr)?;
    let auth = load_auth(&args, &mut config).await?;
    let opened = backend::open(&args.storage, &config.ember.storage, &args.data_dir).await?;
    let retention_ms = config.ember.storage.retention.map(|d| d.as_millis());

    let scraper = ScrapeManager::new(&config, opened.storage.clone(), ScrapeOptions::default())?;
    let mut state = ApiState::new(opened.storage.clone());
    let rules = start_rules(
        &args,
        &config,
        addr,
        opened.storage.clone(),
        state.engine.clone(),
    )
    .await?;
    state.targets = Some(Arc::new(ScrapeTargets(scraper.clone())));
    state.rules = Some(Arc::new(Rules(rules.clone())));
    state.config_yaml = config_yaml;
    let notifier = start_notifier(&args, addr, &rules)?;
    let compaction_metrics = Arc::new(CompactionMetrics::default());
    let compactor = compaction_metrics.wrap(opened.compactor.clone());
    state.metric_sources = self_metrics::backend_sources(&opened, &compaction_metrics);
    state.metric_sources.extend([
        self_metrics::alertmanager_notifications(rules.clone()),
        self_metrics::rule_evaluations(rules.clone()),
    ]);
    if let Some(n) = &notifier {
        state
            .metric_sources
            .push(self_metrics::builtin_notifications(n.clone()));
    }
    let mut app = router(Arc::new(state)).merge(admin_routes(compactor.clone(), retention_ms));
    if let Some(n) = &notifier {
        app = app.merge(ember_alertmanager::api::router(n.silences().clone()));
    }

    let app = ember_api::auth::protect_optional(app, auth);
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
    let rules_task = tokio::spawn({
        let mut stop = stop_rx.clone();
        rules.run(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
    });
    let notify_task = notifier.map(|n| tokio::spawn(notify_loop(n, stop_rx.clone())));
    let compact_task = tokio::spawn(compaction_loop(compactor, retention_ms, stop_rx.clone()));
    let cloudwatch_task =
        start_cloudwatch(&args, &config, opened.storage.clone(), stop_rx.clone()).await?;
    let addr_file = args.data_dir.join(crate::compact::ADDR_FILE);
    if opened.is_local
        && let Err(e) = std::fs::write(&addr_file, addr.to_string())
    {
        tracing::warn!(error = %e, "cannot write {}", addr_file.display());
    }
    tracing::info!(
        storage = %opened.description,
        jobs = config.scrape_configs.len(),
        "listening on http://{addr}"
    );
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        })
        .await;
    let _ = scrape_task.await;
    let _ = compact_task.await;
    let _ = rules_task.await;
    if let Some(t) = notify_task {
        let _ = t.await;
    }
    if let Some(task) = cloudwatch_task {
        let _ = task.await;
    }
    let _ = std::fs::remove_file(&addr_file);
    served.map_err(ServeError::Serve)?;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the CloudWatch import jobs (`ember.cloudwatch.jobs`), each on its interval, with
/// their watermarks in `DATA_DIR/state`. Without jobs nothing starts and no AWS
/// configuration is loaded.
async fn start_cloudwatch(
    args: &ServeArgs,
    config: &Config,
    storage: Arc<dyn ember_storage::Storage>,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>, ServeError> {
    let jobs = config.ember.cloudwatch.jobs.clone();
    if jobs.is_empty() {
        return Ok(None);
    }
    let state = ember_storage::state::FileStateStore::new(args.data_dir.join("state"))?;
    let clients = ember_cloudwatch::SdkClients::from_env().await;
    tracing::info!(jobs = jobs.len(), "cloudwatch import enabled");
    let importer = Arc::new(ember_cloudwatch::Importer::new(
        jobs,
        Arc::new(clients),
        Arc::new(state),
        storage,
        ember_model::DEFAULT_TENANT,
    ));
    Ok(Some(tokio::spawn(importer.run(async move {
        let _ = stop.wait_for(|s| *s).await;
    }))))
}

/// Builds the rule manager: rule files and Alertmanagers from the config, alert state in
/// `DATA_DIR/rules-state` so it survives restarts.
async fn start_rules(
    args: &ServeArgs,
    config: &Config,
    addr: SocketAddr,
    storage: Arc<dyn ember_storage::Storage>,
    engine: ember_promql::Engine,
) -> Result<Arc<ember_rules::RuleManager>, ServeError> {
    let store = Arc::new(ember_rules::FileStateStore::new(
        args.data_dir.join("rules-state"),
    )?);
    let opts = ember_rules::ManagerOptions {
        tenant: ember_model::DEFAULT_TENANT.into(),
        external_labels: config.global.external_labels.clone().into_iter().collect(),
        external_url: format!("http://{addr}"),
        ..Default::default()
    };
    let mgr = Arc::new(ember_rules::RuleManager::new(
        storage,
        Arc::new(engine),
        store,
        opts,
    ));
    let base_dir = args
        .config
        .as_deref()
        .and_then(|p| p.parent())
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    mgr.load_config(config, &base_dir)?;
    mgr.restore_all().await;
    Ok(mgr)
}

/// Starts the built-in notifier when `--alertmanager.config` is set: the rule manager hands
/// it its alerts, state and silences go to `DATA_DIR/state`.
fn start_notifier(
    args: &ServeArgs,
    addr: SocketAddr,
    rules: &Arc<ember_rules::RuleManager>,
) -> Result<Option<Arc<ember_alertmanager::Notifier>>, ServeError> {
    let Some(path) = &args.alertmanager_config else {
        return Ok(None);
    };
    let store =
        ember_storage::state::FileStateStore::new(args.data_dir.join("state")).map_err(|e| {
            ember_alertmanager::Error::State {
                key: "state directory".into(),
                message: e.to_string(),
            }
        })?;
    let n = Arc::new(ember_alertmanager::Notifier::from_file(
        path,
        Arc::new(store),
        &format!("http://{addr}"),
    )?);
    rules.set_sink(Some(n.clone()));
    tracing::info!(config = %path.display(), "built-in notifier enabled");
    Ok(Some(n))
}

/// How often the built-in notifier sends what is due (group_wait and group_interval are
/// honoured to within this).
const NOTIFY_TICK: std::time::Duration = std::time::Duration::from_secs(5);

/// Flushes the notifier every [`NOTIFY_TICK`] until stopped; failures are logged and the
/// failed groups retried on a later tick.
async fn notify_loop(n: Arc<ember_alertmanager::Notifier>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(NOTIFY_TICK) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = chrono::Utc::now().timestamp_millis();
        match n.flush(now).await {
            Ok(r) if !r.errors.is_empty() => {
                tracing::warn!(errors = ?r.errors, "some notifications failed; will retry")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "notifier flush failed; will retry"),
        }
    }
}

/// How often the server compacts closed hot buckets into blocks.
const COMPACTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

/// Compacts every [`COMPACTION_INTERVAL`] until stopped; failures are logged and retried
/// on the next tick (compaction is idempotent).
async fn compaction_loop(
    compactor: Arc<dyn RunCompaction>,
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
fn admin_routes(compactor: Arc<dyn RunCompaction>, retention_ms: Option<i64>) -> axum::Router {
    use axum::extract::{Query, State};
    use axum::http::StatusCode;
    use axum::routing::post;

    #[derive(serde::Deserialize)]
    struct CompactParams {
        retention_ms: Option<i64>,
    }

    async fn compact_now(
        State((compactor, default_retention)): State<(Arc<dyn RunCompaction>, Option<i64>)>,
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
