//! A full scrape pass over many loopback targets: N tiny HTTP servers on 127.0.0.1 each
//! serving a ~500-series page, scraped by one `ScrapeManager` into a counting appender.
//!
//! `cargo run --release -p ember-scrape --example scrape_pass_bench [TARGETS] [CONCURRENCY]`

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ember_config::Config;
use ember_scrape::{ScrapeManager, ScrapeOptions};
use ember_storage::{AppendBatch, AppendStats, Appender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Counts samples instead of storing them.
#[derive(Default)]
struct CountingAppender {
    samples: AtomicUsize,
}

#[async_trait::async_trait]
impl Appender for CountingAppender {
    async fn append(
        &self,
        _tenant: &str,
        batch: AppendBatch,
    ) -> ember_storage::Result<AppendStats> {
        let n = batch.sample_count();
        self.samples.fetch_add(n, Ordering::Relaxed);
        Ok(AppendStats {
            samples: n,
            series_created: 0,
        })
    }
}

fn page() -> String {
    let mut s = String::from(
        "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n# TYPE node_cpu_seconds_total counter\n",
    );
    for cpu in 0..16 {
        for mode in [
            "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
        ] {
            s.push_str(&format!(
                "node_cpu_seconds_total{{cpu=\"{cpu}\",mode=\"{mode}\"}} 12345.67\n"
            ));
        }
    }
    for i in 0..372 {
        s.push_str(&format!("# HELP node_metric_{i} Some node statistic.\n# TYPE node_metric_{i} gauge\nnode_metric_{i}{{device=\"eth0\"}} {}\n", i * 31));
    }
    s
}

async fn serve(body: Arc<Vec<u8>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    addr
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let concurrency: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let body = Arc::new(page().into_bytes());
    let mut targets = Vec::new();
    for _ in 0..n {
        targets.push(format!("'{}'", serve(body.clone()).await));
    }
    let yaml = format!(
        "scrape_configs:\n  - job_name: many\n    static_configs: [{{targets: [{}]}}]\n",
        targets.join(",")
    );
    let cfg = Config::from_yaml(&yaml, Path::new("bench.yml")).expect("config");
    let appender = Arc::new(CountingAppender::default());
    let m = ScrapeManager::new(
        &cfg,
        appender.clone(),
        ScrapeOptions {
            max_concurrent_scrapes: concurrency,
            ..Default::default()
        },
    )
    .expect("manager");
    println!(
        "{n} targets × {} bytes, concurrency {concurrency}",
        body.len()
    );
    for pass in 0..4 {
        appender.samples.store(0, Ordering::Relaxed);
        let start = Instant::now();
        let r = m.scrape_all_once().await;
        let t = start.elapsed().as_secs_f64();
        let samples = appender.samples.load(Ordering::Relaxed);
        println!(
            "pass {pass} ({}): {:.3} s, {} scrapes ({} failed), {:.0} targets/s, {:.2} M samples/s, {:.1} MB/s of pages",
            if pass == 0 { "cold caches" } else { "warm" },
            t,
            r.scraped,
            r.failed,
            r.scraped as f64 / t,
            samples as f64 / t / 1e6,
            (n * body.len()) as f64 / t / 1e6
        );
    }
}
