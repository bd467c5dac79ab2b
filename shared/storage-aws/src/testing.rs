//! Test support: a real moto server on a free loopback port (stopped by PID), and a
//! fault-injecting [`DynamoApi`] wrapper (throttling, ambiguous timeouts, partial
//! batches, the 25-item limit moto does not enforce).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::AwsClients;
use crate::api::{DdbError, DynamoApi, Item, QueryPage, QuerySpec};
use async_trait::async_trait;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::types::WriteRequest;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A running `moto_server`.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// Finds `moto_server`: `$EMBER_MOTO_SERVER`, then `$PATH`. Panics with instructions.
pub fn moto_binary() -> PathBuf {
    if let Ok(p) = std::env::var("EMBER_MOTO_SERVER") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "EMBER_MOTO_SERVER={} does not exist",
            p.display()
        );
        return p;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let c = dir.join("moto_server");
            if c.is_file() {
                return c;
            }
        }
    }
    panic!(
        "moto_server not found: these tests need a real moto server. Install it with \
         `python3 -m venv /tmp/moto-venv && /tmp/moto-venv/bin/pip install 'moto[server]==5.2.5'` \
         and set EMBER_MOTO_SERVER=/tmp/moto-venv/bin/moto_server (tests/run does this for you)"
    );
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a free loopback port");
    l.local_addr().expect("local address").port()
}

impl Moto {
    /// Starts moto on 127.0.0.1 and waits until it accepts connections.
    pub fn start() -> Moto {
        let bin = moto_binary();
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            let mut moto = Moto {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
            };
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(status)) = moto.child.try_wait() {
                    eprintln!("moto_server exited early ({status}); retrying on another port");
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return moto;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("moto_server did not start listening on 127.0.0.1");
    }

    /// SDK configuration pointed at this server (us-east-1, test credentials).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "ember-tests"))
            .load()
            .await
    }

    /// SDK clients pointed at this server.
    pub async fn clients(&self) -> AwsClients {
        AwsClients::from_sdk_config(&self.sdk_config().await)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Stopped by its PID (the child handle), never by name.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fault rates (0.0–1.0) for [`FaultyDynamo`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Requests answered with a throttling error (nothing written).
    pub throttle: f64,
    /// Write requests that succeed but answer with a timeout (the caller cannot know).
    pub ambiguous: f64,
    /// Batch writes of which a random part is returned as `UnprocessedItems`.
    pub partial: f64,
    /// Requests that hang for `hang` (a slow or stuck connection).
    pub hang_rate: f64,
    /// How long a hanging request hangs.
    pub hang: Duration,
}

/// Counts of what [`FaultyDynamo`] injected.
#[derive(Debug, Default)]
pub struct Injected {
    /// Throttling errors.
    pub throttled: AtomicU64,
    /// Ambiguous timeouts.
    pub ambiguous: AtomicU64,
    /// Partial batches.
    pub partial: AtomicU64,
    /// Batches over 25 items (a bug: DynamoDB would reject them).
    pub oversized_batches: AtomicU64,
}

/// A [`DynamoApi`] that injects faults in front of another.
pub struct FaultyDynamo<A> {
    inner: A,
    faults: Mutex<Faults>,
    rng: AtomicU64,
    /// What was injected so far.
    pub injected: Injected,
}

impl<A> FaultyDynamo<A> {
    /// Wraps `inner` with `faults` and a deterministic random sequence from `seed`.
    pub fn new(inner: A, faults: Faults, seed: u64) -> Self {
        Self {
            inner,
            faults: Mutex::new(faults),
            rng: AtomicU64::new(seed | 1),
            injected: Injected::default(),
        }
    }

    /// Changes the fault rates.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    fn faults(&self) -> Faults {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn roll(&self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        (x % 1_000_000) as f64 / 1_000_000.0 < p
    }

    async fn before(&self, op: &str) -> Result<(), DdbError> {
        let f = self.faults();
        if self.roll(f.hang_rate) {
            tokio::time::sleep(f.hang).await;
        }
        if self.roll(f.throttle) {
            self.injected.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(DdbError::Throttled {
                context: op.to_string(),
                message: "injected throttling".into(),
            });
        }
        Ok(())
    }

    fn after<T>(&self, op: &str, r: Result<T, DdbError>) -> Result<T, DdbError> {
        if r.is_ok() && self.roll(self.faults().ambiguous) {
            self.injected.ambiguous.fetch_add(1, Ordering::Relaxed);
            return Err(DdbError::Transient {
                context: op.to_string(),
                message: "injected timeout after success".into(),
            });
        }
        r
    }
}

#[async_trait]
impl<A: DynamoApi> DynamoApi for FaultyDynamo<A> {
    async fn batch_write(
        &self,
        mut requests: Vec<WriteRequest>,
    ) -> Result<Vec<WriteRequest>, DdbError> {
        if requests.len() > 25 {
            self.injected
                .oversized_batches
                .fetch_add(1, Ordering::Relaxed);
            return Err(DdbError::Fatal {
                context: "BatchWriteItem".into(),
                message: "more than 25 items".into(),
            });
        }
        self.before("BatchWriteItem").await?;
        let mut held = Vec::new();
        if requests.len() > 1 && self.roll(self.faults().partial) {
            self.injected.partial.fetch_add(1, Ordering::Relaxed);
            let keep = requests.len() / 2;
            held = requests.split_off(keep);
        }
        let r = self.inner.batch_write(requests).await;
        let mut unprocessed = self.after("BatchWriteItem", r)?;
        unprocessed.extend(held);
        Ok(unprocessed)
    }

    async fn put_if_absent(&self, item: Item) -> Result<bool, DdbError> {
        self.before("PutItem").await?;
        let r = self.inner.put_if_absent(item).await;
        self.after("PutItem", r)
    }

    async fn put_if_equal(
        &self,
        item: Item,
        attr: &str,
        expected: Option<u64>,
    ) -> Result<bool, DdbError> {
        self.before("PutItem").await?;
        self.inner.put_if_equal(item, attr, expected).await
    }

    async fn put(&self, item: Item) -> Result<(), DdbError> {
        self.before("PutItem").await?;
        let r = self.inner.put(item).await;
        self.after("PutItem", r)
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, DdbError> {
        self.before("GetItem").await?;
        self.inner.get(pk, sk).await
    }

    async fn add(&self, pk: &str, sk: &str, attr: &str, n: u64) -> Result<u64, DdbError> {
        self.before("UpdateItem").await?;
        let r = self.inner.add(pk, sk, attr, n).await;
        self.after("UpdateItem", r)
    }

    async fn set_number(&self, pk: &str, sk: &str, attr: &str, v: i64) -> Result<(), DdbError> {
        self.before("UpdateItem").await?;
        let r = self.inner.set_number(pk, sk, attr, v).await;
        self.after("UpdateItem", r)
    }

    async fn query(&self, spec: &QuerySpec, start: Option<Item>) -> Result<QueryPage, DdbError> {
        self.before("Query").await?;
        self.inner.query(spec, start).await
    }
}
