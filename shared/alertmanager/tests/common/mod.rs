//! Test helpers: a capture server on loopback, the seeds' memory rules on generated data,
//! and a driver that evaluates rules and flushes the notifier on a simulated clock.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as AxPath, State};
use axum::http::StatusCode;
use axum::routing::post;
use ember_alertmanager::{Config, Notifier};
use ember_promql::{Engine, EngineOptions};
use ember_rules::{GroupDefaults, ManagerOptions, RuleManager, RuleStateStore, load_rule_file};
use ember_storage::MemStorage;
use ember_storage::state::StateStore;

pub const TENANT: &str = "default";
pub const M: i64 = 60_000;

/// One request the capture server received.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Path after `/hook/`.
    pub path: String,
    /// Parsed JSON body.
    pub body: serde_json::Value,
}

#[derive(Clone, Default)]
struct CaptureState {
    got: Arc<Mutex<Vec<Captured>>>,
    /// Remaining failures to answer per path (status code).
    fail: Arc<Mutex<Vec<(String, u16, usize)>>>,
}

/// A server on 127.0.0.1 recording JSON posts to `/hook/{name}`.
pub struct Capture {
    pub base: String,
    state: CaptureState,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hook(
    State(s): State<CaptureState>,
    AxPath(name): AxPath<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    {
        let mut fail = s.fail.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = fail.iter_mut().find(|f| f.0 == name && f.2 > 0) {
            f.2 -= 1;
            let code = f.1;
            s.got
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Captured {
                    path: format!("{name}!{code}"),
                    body: serde_json::Value::Null,
                });
            return StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        }
    }
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    s.got
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Captured { path: name, body });
    StatusCode::OK
}

impl Capture {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Capture {
        let state = CaptureState::default();
        let app = Router::new()
            .route("/hook/{name}", post(hook))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind capture server");
        let addr = listener.local_addr().expect("capture addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Capture {
            base: format!("http://{addr}/hook"),
            state,
            task,
        }
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<Captured> {
        self.state
            .got
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Answers the next `n` posts to `name` with `code`.
    pub fn fail_next(&self, name: &str, code: u16, n: usize) {
        self.state
            .fail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.to_string(), code, n));
    }
}

/// Writes node_exporter memory series every 15 s from `t0 - 5m` to `t0 + 30m` (the
/// data shared/rules' tests alert on).
pub fn generate(storage: &MemStorage, t0: i64) {
    ember_rules::testing::write_node_memory(storage, TENANT, t0, 30).expect("append");
}

/// The seeds' rule file (shared with shared/rules' tests).
pub fn rules_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/tests/data/memory-rules.yml")
}

/// A rule manager over `storage` running the memory rules.
pub fn manager(storage: Arc<MemStorage>, store: Arc<dyn RuleStateStore>) -> RuleManager {
    let groups = load_rule_file(&rules_file(), GroupDefaults::default()).expect("rules");
    let m = RuleManager::new(
        storage,
        Arc::new(Engine::new(EngineOptions::default())),
        store,
        ManagerOptions::default(),
    );
    m.set_groups(groups);
    m
}

/// The rule group's key.
pub fn group_key() -> String {
    format!("{};node-memory", rules_file().display())
}

/// A notifier for `yaml` with `{{BASE}}` replaced by the capture server's base URL.
pub fn notifier(yaml: &str, base: &str, store: Arc<dyn StateStore>) -> Arc<Notifier> {
    let cfg = Config::from_yaml(&yaml.replace("{{BASE}}", base)).expect("config");
    let mut n =
        Notifier::from_config(&cfg, &[], store, "http://ember.example:9090").expect("notifier");
    n.set_retry(2, std::time::Duration::from_millis(10));
    Arc::new(n)
}

/// A whole minute (ms), `after` from now, so wall-clock silences line up with simulated time.
pub fn minute_from_now(after: i64) -> i64 {
    let now = chrono::Utc::now().timestamp_millis() + after;
    now - now % M + M
}

/// Runs evaluation + flush every 30 s over `[from, to]`; returns `(offset from t0 in s,
/// message)` for every message received.
pub async fn drive(
    mgr: &RuleManager,
    n: &Notifier,
    cap: &Capture,
    t0: i64,
    from: i64,
    to: i64,
) -> Vec<(i64, Captured)> {
    let key = group_key();
    let mut out = Vec::new();
    let mut t = from;
    while t <= to {
        let r = mgr.evaluate_group_at(&key, t).await.expect("evaluate");
        assert!(r.rule_errors.is_empty(), "{:?}", r.rule_errors);
        let before = cap.all().len();
        n.flush(t).await.expect("flush");
        for c in cap.all().into_iter().skip(before) {
            out.push(((t - t0) / 1000, c));
        }
        t += 30_000;
    }
    out
}

/// Alert names and statuses in a webhook message, sorted.
pub fn webhook_alerts(body: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = body["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                        x["status"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
