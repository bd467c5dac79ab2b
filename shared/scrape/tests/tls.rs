//! `tls_config` against a real HTTPS target on 127.0.0.1 that requires a client
//! certificate (Python's `ssl` + `http.server`; certificates made with the `openssl` CLI).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ember_config::Config;
use ember_scrape::{ScrapeManager, ScrapeOptions};
use ember_storage::MemStorage;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("the openssl CLI is needed for this test (apt-get install openssl): {e}")
        });
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const SERVER: &str = r#"
import http.server, ssl, sys
port, d = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"tls_ok 1\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(d + "/server.crt", d + "/server.key")
ctx.load_verify_locations(d + "/ca.crt")
ctx.verify_mode = ssl.CERT_REQUIRED
srv = http.server.HTTPServer(("127.0.0.1", port), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_ca_client_certificate_and_insecure_skip_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=ember-test-ca",
        ],
    );
    std::fs::write(
        d.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(
        d.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for who in ["server", "client"] {
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{who}.key"),
                "-out",
                &format!("{who}.csr"),
                "-subj",
                &format!("/CN={who}"),
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{who}.crt"),
                "-days",
                "2",
                "-extfile",
                &format!("{who}.ext"),
            ],
        );
    }
    std::fs::write(d.join("server.py"), SERVER).unwrap();
    let python = find_program("EMBER_PYTHON", "python3", &["/usr/bin/python3"])
        .expect("python3 is needed for the HTTPS target");
    let port = free_port();
    let _srv = ChildGuard::spawn(
        &python,
        &[
            d.join("server.py").to_str().unwrap(),
            &port.to_string(),
            d.to_str().unwrap(),
        ],
        &d.join("server.log"),
    );
    wait_for_port(port, Duration::from_secs(15));

    let p = |f: &str| d.join(f).display().to_string();
    let yaml = format!(
        r#"scrape_configs:
  - job_name: verified
    scheme: https
    tls_config: {{ca_file: '{ca}', cert_file: '{cc}', key_file: '{ck}'}}
    static_configs: [{{targets: ['127.0.0.1:{port}']}}]
  - job_name: insecure
    scheme: https
    tls_config: {{insecure_skip_verify: true, cert_file: '{cc}', key_file: '{ck}'}}
    static_configs: [{{targets: ['127.0.0.1:{port}']}}]
  - job_name: untrusted
    scheme: https
    tls_config: {{cert_file: '{cc}', key_file: '{ck}'}}
    static_configs: [{{targets: ['127.0.0.1:{port}']}}]
  - job_name: no_client_cert
    scheme: https
    tls_config: {{ca_file: '{ca}'}}
    static_configs: [{{targets: ['127.0.0.1:{port}']}}]
"#,
        ca = p("ca.crt"),
        cc = p("client.crt"),
        ck = p("client.key"),
    );
    let cfg = Config::from_yaml(&yaml, Path::new("tls.yml")).unwrap();
    let store = Arc::new(MemStorage::new());
    let m = ScrapeManager::new(&cfg, store.clone(), ScrapeOptions::default()).unwrap();
    m.scrape_all_once().await;
    let targets = m.targets();
    let get = |job: &str| {
        targets
            .active_targets
            .iter()
            .find(|t| t.scrape_pool == job)
            .unwrap()
            .clone()
    };
    assert_eq!(
        get("verified").health,
        "up",
        "{}",
        get("verified").last_error
    );
    assert_eq!(
        get("insecure").health,
        "up",
        "{}",
        get("insecure").last_error
    );
    assert_eq!(get("untrusted").health, "down");
    assert_eq!(get("no_client_cert").health, "down");
    assert_eq!(
        last_value(&store, &[("__name__", "tls_ok"), ("job", "verified")]),
        1.0
    );
    assert!(
        get("untrusted")
            .last_error
            .to_lowercase()
            .contains("certificate"),
        "{}",
        get("untrusted").last_error
    );
}
