//! Resolving `ssm:` and `secretsmanager:` references against a real moto server
//! (started on a free loopback port, stopped by PID), and `file:`/`env:` ones.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ssm::config::Credentials;
use ember_secrets::{SecretClients, SecretError, SecretRef};

struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Stopped by its own PID, never by name.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> PathBuf {
    if let Ok(p) = std::env::var("EMBER_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    if venv.is_file() {
        return venv;
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
        "moto_server not found: run tests/run (installs it into .venv) or set EMBER_MOTO_SERVER"
    );
}

fn start_moto() -> Moto {
    let bin = moto_binary();
    for _ in 0..3 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free loopback port")
            .port();
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
            if let Ok(Some(_)) = moto.child.try_wait() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("moto_server did not start");
}

async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "ember-tests"))
        .load()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_ssm_and_secrets_manager_from_moto() {
    let moto = start_moto();
    let sdk = sdk(&moto.endpoint).await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);

    ssm.put_parameter()
        .name("/ember/token")
        .value("s3cr3t-ssm-token")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("put_parameter");
    let created = sm
        .create_secret()
        .name("ember/token")
        .secret_string("s3cr3t-sm-token")
        .send()
        .await
        .expect("create_secret");
    let arn = created.arn().expect("secret ARN").to_string();
    sm.create_secret()
        .name("ember/json")
        .secret_string(r#"{"token":"from-json","user":"grafana"}"#)
        .send()
        .await
        .expect("create_secret json");

    let clients = SecretClients::from_sdk_config(&sdk);

    let s = SecretRef::parse("ssm:/ember/token")
        .unwrap()
        .resolve(&clients)
        .await
        .expect("ssm secret");
    assert_eq!(s.expose(), "s3cr3t-ssm-token");
    assert!(s.matches(b"s3cr3t-ssm-token"));
    assert!(!format!("{s:?}").contains("s3cr3t"));

    let s = SecretRef::parse("secretsmanager:ember/token")
        .unwrap()
        .resolve(&clients)
        .await
        .expect("secrets manager by name");
    assert_eq!(s.expose(), "s3cr3t-sm-token");
    let s = SecretRef::parse(&format!("secretsmanager:{arn}"))
        .unwrap()
        .resolve(&clients)
        .await
        .expect("secrets manager by ARN");
    assert_eq!(s.expose(), "s3cr3t-sm-token");
    let s = SecretRef::parse("secretsmanager:ember/json#token")
        .unwrap()
        .resolve(&clients)
        .await
        .expect("json key");
    assert_eq!(s.expose(), "from-json");

    // Missing things are typed errors naming the reference, not the value.
    let e = SecretRef::parse("ssm:/ember/missing")
        .unwrap()
        .resolve(&clients)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, SecretError::Ssm { name, .. } if name == "/ember/missing"),
        "{e}"
    );
    assert!(e.to_string().contains("ParameterNotFound"), "{e}");
    let e = SecretRef::parse("secretsmanager:ember/missing")
        .unwrap()
        .resolve(&clients)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, SecretError::SecretsManager { id, .. } if id == "ember/missing"),
        "{e}"
    );
    assert!(e.to_string().contains("ResourceNotFound"), "{e}");
    let e = SecretRef::parse("secretsmanager:ember/json#password")
        .unwrap()
        .resolve(&clients)
        .await
        .unwrap_err();
    assert!(matches!(e, SecretError::JsonKey { .. }), "{e}");
    assert!(!e.to_string().contains("from-json"), "{e}");
}

#[tokio::test]
async fn resolves_files_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "file-token\n").unwrap();
    let clients = SecretClients::unconfigured();
    let s = SecretRef::parse(&format!("file:{}", path.display()))
        .unwrap()
        .resolve(&clients)
        .await
        .unwrap();
    assert_eq!(s.expose(), "file-token");
    assert!(s.matches(b"file-token"));
    assert!(!s.matches(b"file-token\n"));

    std::fs::write(&path, "\n").unwrap();
    let e = SecretRef::parse(&format!("file:{}", path.display()))
        .unwrap()
        .resolve_from_env()
        .await
        .unwrap_err();
    assert!(matches!(e, SecretError::Empty { .. }), "{e}");

    let e = SecretRef::parse(&format!("file:{}/absent", dir.path().display()))
        .unwrap()
        .resolve(&clients)
        .await
        .unwrap_err();
    assert!(matches!(e, SecretError::File { .. }), "{e}");

    // A variable name unique to this test (tests in one binary share the environment).
    let name = "EMBER_SECRETS_TEST_TOKEN_7f3a";
    // SAFETY: set before reading, in the only test that uses this variable.
    unsafe { std::env::set_var(name, "env-token") };
    let s = SecretRef::parse(&format!("env:{name}"))
        .unwrap()
        .resolve_from_env()
        .await
        .unwrap();
    assert_eq!(s.expose(), "env-token");
    let e = SecretRef::parse("env:EMBER_SECRETS_TEST_UNSET_91b2")
        .unwrap()
        .resolve_from_env()
        .await
        .unwrap_err();
    assert!(matches!(e, SecretError::Env { .. }), "{e}");
}
