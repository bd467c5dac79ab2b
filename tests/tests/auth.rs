//! `ember serve --auth-token file:<path>`: every route but the health endpoints needs
//! the token (Bearer, or basic auth with the token as password); a real Prometheus agent
//! remote-writes with `authorization: credentials_file`; the built-in self-scrape sends the
//! token; the token never shows up in the server's log.

use std::time::Duration;

use base64_free::basic;
use ember_e2e::net::poll_until;
use ember_e2e::servers::PrometheusMode;
use ember_e2e::{EmberServer, PrometheusServer, binaries, test_dir};

/// Basic-auth header without a base64 dependency in this crate (RFC 4648 alphabet).
mod base64_free {
    pub fn basic(user: &str, pass: &str) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let input = format!("{user}:{pass}");
        let mut out = String::new();
        for chunk in input.as_bytes().chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        format!("Basic {out}")
    }
}

const TOKEN: &str = "e2e-token-5b1f0c9e7d";

fn get(url: &str, auth: Option<&str>) -> (u16, reqwest::header::HeaderMap, String) {
    let client = reqwest::blocking::Client::new();
    let mut req = client.get(url);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = req.send().expect("request to the local server");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().unwrap_or_default())
}

#[test]
fn serve_requires_the_token_everywhere_but_health() {
    let dir = test_dir("auth").expect("test dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");
    let ember_bin = binaries::ember_bin(binaries::Profile::Debug).expect("ember binary");
    let reference = format!("file:{}", token_file.display());
    let mut ember = EmberServer::start_with(
        &ember_bin,
        "ember",
        &data,
        &logs,
        &["--auth-token", &reference],
    )
    .expect("ember serve starts (waiting for /-/ready needs no token)");
    let base = ember.url();

    // Health endpoints are open.
    for path in ["/-/healthy", "/-/ready"] {
        assert_eq!(get(&format!("{base}{path}"), None).0, 200, "{path}");
    }
    // Everything else needs the token.
    let query = format!("{base}/api/v1/query?query=1%2B1");
    let (status, headers, body) = get(&query, None);
    assert_eq!(status, 401, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error envelope");
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "unauthorized");
    let challenges: Vec<_> = headers.get_all("www-authenticate").iter().collect();
    assert_eq!(challenges.len(), 2, "Basic and Bearer challenges");
    for path in ["/metrics", "/api/v1/labels", "/api/v1/status/buildinfo"] {
        assert_eq!(get(&format!("{base}{path}"), None).0, 401, "{path}");
    }
    assert_eq!(get(&query, Some("Bearer wrong-token")).0, 401);
    assert_eq!(get(&query, Some(&basic("grafana", "nope"))).0, 401);
    let (status, _, body) = get(&query, Some(&format!("Bearer {TOKEN}")));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"resultType\":\"scalar\""), "{body}");
    assert!(body.contains("\"2\""), "{body}");
    let (status, _, body) = get(&query, Some(&basic("grafana", TOKEN)));
    assert_eq!(status, 200, "{body}");

    // Remote write without the token is refused.
    let denied = reqwest::blocking::Client::new()
        .post(ember.write_url())
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(vec![0u8; 16])
        .send()
        .expect("write request");
    assert_eq!(denied.status().as_u16(), 401);

    // A real Prometheus agent remote-writes with the token from a file.
    // It also scrapes Ember's /metrics with basic auth (the token as password).
    let prom_config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ember-basic\n    basic_auth:\n      username: agent\n      password_file: {token}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\nremote_write:\n  - url: {url}\n    authorization:\n      credentials_file: {token}\n",
        token = token_file.display(),
        port = ember.port(),
        url = ember.write_url(),
    );
    let agent = PrometheusServer::start(
        PrometheusMode::Agent,
        &prom_config,
        &dir.path().join("prom"),
        &logs,
        &[],
    )
    .expect("prometheus agent");
    let bearer = format!("Bearer {TOKEN}");
    let up_url = format!("{base}/api/v1/query?query=up%7Bjob%3D%22ember-basic%22%7D");
    poll_until(
        "up{job=\"ember-basic\"} == 1 via the agent",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let (status, _, body) = get(&up_url, Some(&bearer));
            Ok((status == 200 && body.contains("\"1\"")).then_some(()))
        },
    )
    .expect("the agent scraped Ember with basic auth and remote-wrote up=1 with the bearer token");

    // The built-in self-scrape (default config) sends the token too.
    let self_up = format!("{base}/api/v1/query?query=up%7Bjob%3D%22ember%22%7D");
    poll_until(
        "up{job=\"ember\"} == 1 (self-scrape)",
        Duration::from_secs(90),
        Duration::from_secs(1),
        || {
            let (status, _, body) = get(&self_up, Some(&bearer));
            Ok((status == 200 && body.contains("\"1\"")).then_some(()))
        },
    )
    .expect("Ember's self-scrape succeeds with auth on (up{job=\"ember\"} == 1)");

    drop(agent);
    ember
        .process
        .stop_cleanly(Duration::from_secs(10))
        .expect("ember stops");
    let log = format!("{}{}", ember.process.stdout(), ember.process.stderr());
    assert!(!log.contains(TOKEN), "the token leaked into the server log");
}
