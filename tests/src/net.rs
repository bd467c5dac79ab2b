//! Loopback ports and readiness polling.

use crate::error::{Error, Result};
use crate::process::ProcessGuard;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read the port,
/// release it). Another process could take it before the caller binds it; on a test
/// machine that is rare enough.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error::new(format!("cannot bind 127.0.0.1:0 to find a free port: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::new(format!("cannot read the port bound on 127.0.0.1: {e}")))?
        .port();
    Ok(port)
}

/// Fails unless `url` is plain `http` to 127.0.0.1 or localhost: the tests never
/// contact any other address.
pub fn ensure_loopback(url: &str) -> Result<()> {
    let parsed = reqwest::Url::parse(url).map_err(|e| Error::new(format!("bad URL {url}: {e}")))?;
    match parsed.host_str() {
        Some("127.0.0.1") | Some("localhost") | Some("[::1]") => Ok(()),
        _ => Err(Error::new(format!(
            "refusing to contact {url}: the tests only talk to 127.0.0.1"
        ))),
    }
}

/// Polls `url` with GET until it answers 2xx, for at most `timeout`.
///
/// When `process` is given and it exits meanwhile, fails at once with the tail of its
/// logs instead of waiting out the timeout.
pub fn wait_for_http(
    url: &str,
    timeout: Duration,
    mut process: Option<&mut ProcessGuard>,
) -> Result<()> {
    ensure_loopback(url)?;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .map_err(|e| Error::new(format!("cannot build an HTTP client: {e}")))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(p) = process.as_deref_mut()
            && let Some(status) = p.try_exit_status()
        {
            return Err(Error::new(format!(
                "{} exited ({status}) before {url} answered\n{}",
                p.name(),
                p.log_tail(40)
            )));
        }
        let last = match client.get(url).send() {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => format!("HTTP {}", resp.status()),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            let logs = process.map(|p| p.log_tail(40)).unwrap_or_default();
            return Err(Error::new(format!(
                "{url} did not answer 2xx within {timeout:?} (last: {last})\n{logs}"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `check` every `interval` until it returns `Ok(Some(value))`, for at most
/// `timeout`; the error names `what` and the last reason `check` gave.
pub fn poll_until<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => String::from("condition not met"),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(Error::new(format!(
                "timed out after {timeout:?} waiting for {what} (last: {last})"
            )));
        }
        std::thread::sleep(interval);
    }
}
