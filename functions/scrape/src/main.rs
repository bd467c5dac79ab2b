//! `ember-scrape-fn`: the scrape Lambda function. EventBridge Scheduler fires it every
//! minute; one invocation runs one scrape window: every job scrapes at each of its
//! interval boundaries (sub-minute intervals loop inside the invocation, aligned) until
//! the next invocation starts or the deadline minus the longest scrape timeout. The
//! scraper's state (last tick per job, known targets and series for staleness markers)
//! is kept in the StateStore under `scrape/state`, so it survives cold starts.
//!
//! The configuration (`EMBER_CONFIG`: file, `s3://`, `ssm:`) is read at the first
//! invocation and re-read when it changes (checked at most every `EMBER_CONFIG_TTL`).
//! Without one there are no scrape jobs and each invocation returns at once.

use std::sync::Arc;
use std::time::Duration;

use ember_runtime::lambda::{Invocation, run_scheduled};
use ember_runtime::{ConfigLoader, Process, RuntimeSettings};
use ember_scrape::{ScrapeManager, ScrapeOptions, ScrapeState};
use tokio::sync::Mutex;

/// The schedule's period (EventBridge `rate(1 minute)`).
const PERIOD: Duration = Duration::from_secs(60);
/// StateStore key of the scraper's state.
const STATE_KEY: &str = "scrape/state";
/// Kept free before the deadline beyond the longest scrape timeout (writing the state).
const STATE_MARGIN: Duration = Duration::from_secs(3);

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
enum ScrapeFnError {
    #[error("configuration: {0}")]
    Config(#[from] ember_runtime::ConfigLoadError),
    #[error("scrape configuration: {0}")]
    Scrape(#[from] ember_scrape::ScrapeError),
    #[error("scrape state: {0}")]
    State(#[from] ember_runtime::StorageError),
    #[error("scrape state is not valid JSON: {0}")]
    StateFormat(#[from] serde_json::Error),
}

/// The scraper of this container, rebuilt when the configuration changes.
struct Current {
    manager: ScrapeManager,
    margin: Duration,
    jobs: usize,
}

struct Scraper {
    process: Process,
    loader: Mutex<ConfigLoader>,
    current: Mutex<Option<Current>>,
}

impl Scraper {
    async fn handle(&self, inv: Invocation) -> Result<serde_json::Value, ScrapeFnError> {
        let mut current = self.current.lock().await;
        let polled = self.loader.lock().await.poll().await;
        match polled {
            Ok(Some(loaded)) => {
                let manager = ScrapeManager::new(
                    &loaded.config,
                    self.process.storage.clone(),
                    ScrapeOptions::default(),
                )?;
                // Carry the state over: from the previous scraper in this container, else
                // from the store (a cold start).
                let state = match current.as_ref() {
                    Some(c) => c.manager.export_state(),
                    None => self.load_state().await?,
                };
                manager.import_state(state);
                let longest = loaded
                    .config
                    .scrape_configs
                    .iter()
                    .filter_map(|c| c.resolve(&loaded.config.global).ok())
                    .map(|r| r.timeout)
                    .max()
                    .unwrap_or_default();
                tracing::info!(
                    config = %loaded.location,
                    jobs = loaded.config.scrape_configs.len(),
                    "scrape configuration loaded"
                );
                *current = Some(Current {
                    manager,
                    margin: longest + STATE_MARGIN,
                    jobs: loaded.config.scrape_configs.len(),
                });
            }
            Ok(None) => {}
            Err(e) if current.is_some() => {
                tracing::warn!(error = %e, "configuration reload failed; keeping the running one");
            }
            Err(e) => return Err(e.into()),
        }
        let Some(cur) = current.as_ref() else {
            return Ok(serde_json::json!({"jobs": 0}));
        };
        let window = inv.window(PERIOD, cur.margin);
        let report = cur.manager.run_pass(window.until).await;
        let blob = serde_json::to_vec(&cur.manager.export_state())?;
        self.process.state.put(STATE_KEY, blob).await?;
        tracing::info!(
            ticks = report.ticks,
            scraped = report.scraped,
            failed = report.failed,
            "scrape window done"
        );
        Ok(serde_json::json!({
            "jobs": cur.jobs,
            "ticks": report.ticks,
            "scraped": report.scraped,
            "failed": report.failed,
            "vanished": report.vanished,
            "until_ms": ember_runtime::window::epoch_ms(window.until),
        }))
    }

    async fn load_state(&self) -> Result<ScrapeState, ScrapeFnError> {
        match self.process.state.get(STATE_KEY).await? {
            Some(blob) => match serde_json::from_slice(&blob) {
                Ok(s) => Ok(s),
                Err(e) => {
                    // An unreadable state only costs staleness markers; do not stop scraping.
                    tracing::warn!(error = %e, "ignoring unreadable scrape state");
                    Ok(ScrapeState::default())
                }
            },
            None => Ok(ScrapeState::default()),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ember_runtime::lambda::init_tracing();
    let process = Process::open(RuntimeSettings::from_env()?).await?;
    tracing::info!(storage = %process.description, "ember-scrape-fn ready");
    let scraper = Arc::new(Scraper {
        loader: Mutex::new(process.config_loader()),
        process,
        current: Mutex::new(None),
    });
    run_scheduled(|inv| {
        let scraper = scraper.clone();
        async move { scraper.handle(inv).await }
    })
    .await
}
