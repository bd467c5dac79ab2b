//! Shared helpers for the integration tests: free loopback ports, child processes that
//! are stopped by PID on drop (also when a test fails), and a tiny loopback HTTP target.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ember_model::{Labels, Matcher, Series};
use ember_storage::MemStorage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A free port on 127.0.0.1 (bind :0, read the port, release it).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// A child process killed by PID when dropped.
pub struct ChildGuard {
    child: Child,
    name: String,
}

impl ChildGuard {
    /// Starts `program args…` with output to `log`.
    pub fn spawn(program: &Path, args: &[&str], log: &Path) -> Self {
        let out = std::fs::File::create(log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        Self {
            child,
            name: program.display().to_string(),
        }
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Stop exactly this process by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.name;
    }
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listening on 127.0.0.1:{port} after {timeout:?}");
}

/// Finds an executable: `$env_var` if set, else `name` on PATH, else the extra candidates.
pub fn find_program(env_var: &str, name: &str, extra: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env_var)
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let cand = dir.join(name);
            if cand.is_file() {
                return Some(cand);
            }
        }
    }
    extra.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// What the test target answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` (none if `None`).
    pub content_type: Option<String>,
    /// Body (sent as is).
    pub body: Vec<u8>,
    /// Send `Content-Encoding: gzip` (the body must already be compressed).
    pub gzip: bool,
}

impl Reply {
    /// A 200 text-format page.
    pub fn text(body: &str) -> Self {
        Self {
            status: 200,
            content_type: Some("text/plain; version=0.0.4; charset=utf-8".into()),
            body: body.as_bytes().to_vec(),
            gzip: false,
        }
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that answers every request with the current
/// [`Reply`] and records the request heads.
pub struct TestTarget {
    /// `127.0.0.1:port`.
    pub address: String,
    reply: Arc<Mutex<Reply>>,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestTarget {
    /// Starts the server.
    pub async fn start(reply: Reply) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let reply = Arc::new(Mutex::new(reply));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (r2, q2) = (reply.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (r3, q3) = (r2.clone(), q2.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    q3.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf).into_owned());
                    let reply = r3.lock().unwrap().clone();
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    if let Some(ct) = &reply.content_type {
                        head.push_str(&format!("Content-Type: {ct}\r\n"));
                    }
                    if reply.gzip {
                        head.push_str("Content-Encoding: gzip\r\n");
                    }
                    head.push_str("\r\n");
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(&reply.body).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Self {
            address,
            reply,
            requests,
            task,
        }
    }

    /// Changes the reply.
    pub fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    /// Request heads received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TestTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Gzip-compresses `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// Every series of the default tenant matching `name="value"` pairs.
pub fn select(store: &MemStorage, pairs: &[(&str, &str)]) -> Vec<Series> {
    let matchers: Vec<Matcher> = pairs.iter().map(|(n, v)| Matcher::equal(*n, *v)).collect();
    store
        .select_sync(ember_model::DEFAULT_TENANT, &matchers, i64::MIN, i64::MAX)
        .expect("select")
}

/// The last value of the single series matching `pairs`.
pub fn last_value(store: &MemStorage, pairs: &[(&str, &str)]) -> f64 {
    let s = select(store, pairs);
    assert_eq!(
        s.len(),
        1,
        "expected one series for {pairs:?}, got {:?}",
        s.iter().map(|s| s.labels.to_string()).collect::<Vec<_>>()
    );
    s[0].samples.last().expect("a sample").v
}

/// Labels as `{a="b", …}` for messages.
pub fn show(l: &Labels) -> String {
    l.to_string()
}
