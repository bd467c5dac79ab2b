//! The event loop of the scheduled functions (scrape, rules, compact, cloudwatch):
//! [`run_scheduled`] hands each EventBridge event to a handler as an [`Invocation`] that
//! knows its deadline and scheduled time, so the handler can compute its [`Window`].
//!
//! `lambda_runtime` needs the Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`): run the
//! binaries under `cargo lambda watch`, in Lambda, or with a Runtime-API emulator.

use std::future::Future;
use std::time::{Duration, SystemTime};

use lambda_runtime::{LambdaEvent, service_fn};

use crate::window::{Window, scheduled_time, window};

/// One invocation of a scheduled function.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The event as received (EventBridge / Scheduler JSON, or anything for manual runs).
    pub event: serde_json::Value,
    /// The Lambda request id.
    pub request_id: String,
    /// When Lambda will stop this invocation (`None` when the runtime did not say).
    pub deadline: Option<SystemTime>,
    /// The event's scheduled time (`time`), if any.
    pub scheduled: Option<SystemTime>,
}

impl Invocation {
    /// The window for a schedule of `period`, keeping `margin` free before the deadline.
    pub fn window(&self, period: Duration, margin: Duration) -> Window {
        window(
            SystemTime::now(),
            self.scheduled,
            self.deadline,
            period,
            margin,
        )
    }
}

/// Sets up logging for a function: `RUST_LOG` / `AWS_LAMBDA_LOG_LEVEL` filter, JSON when
/// `AWS_LAMBDA_LOG_FORMAT=JSON` (lambda_runtime's subscriber).
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Runs the Lambda event loop, calling `handler` for each event. The handler's `Ok`
/// value is the invocation's JSON result; an `Err` is reported as an invocation error
/// (its `Display` text; it must not contain secrets).
pub async fn run_scheduled<F, Fut, E>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Invocation) -> Fut,
    Fut: Future<Output = Result<serde_json::Value, E>>,
    E: std::fmt::Display,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |ev: LambdaEvent<serde_json::Value>| async move {
            let deadline = (ev.context.deadline > 0)
                .then(|| SystemTime::UNIX_EPOCH + Duration::from_millis(ev.context.deadline));
            let inv = Invocation {
                scheduled: scheduled_time(&ev.payload),
                event: ev.payload,
                request_id: ev.context.request_id,
                deadline,
            };
            handler(inv)
                .await
                .map_err(|e| lambda_runtime::Error::from(e.to_string()))
        },
    ))
    .await
}
