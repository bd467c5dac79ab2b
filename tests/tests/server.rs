//! The `ember serve` process contract: it logs where it listens, answers the health
//! endpoints, and stops cleanly on SIGTERM and SIGINT.

use ember_e2e::servers::EmberServer;
use ember_e2e::test_dir;
use std::time::Duration;

#[test]
fn serve_logs_its_address_and_stops_cleanly_on_sigterm() {
    let dir = test_dir("sigterm").expect("temp dir");
    let mut ember = EmberServer::start("ember", &dir.path().join("data"), &dir.path().join("logs"))
        .expect("start ember serve");
    let expected = format!("listening on http://127.0.0.1:{}", ember.port());
    ember
        .process
        .wait_for_log_line(&expected, Duration::from_secs(10))
        .expect("ember logs the address it listens on");

    let api = ember.api().expect("api");
    let (status, body) = api.get_raw("/-/healthy", &[]).expect("GET /-/healthy");
    assert_eq!(status, 200, "/-/healthy: {body}");
    let (status, body) = api.get_raw("/-/ready", &[]).expect("GET /-/ready");
    assert_eq!(status, 200, "/-/ready: {body}");
    let info = api
        .get_data("/api/v1/status/buildinfo", &[])
        .expect("buildinfo");
    assert!(
        info["version"].is_string(),
        "buildinfo has a version: {info}"
    );

    ember
        .process
        .stop_cleanly(Duration::from_secs(15))
        .expect("ember exits 0 on SIGTERM");
}

#[test]
fn serve_stops_cleanly_on_sigint() {
    let dir = test_dir("sigint").expect("temp dir");
    let mut ember = EmberServer::start("ember", &dir.path().join("data"), &dir.path().join("logs"))
        .expect("start ember serve");
    ember.process.interrupt();
    let status = ember
        .process
        .wait_timeout(Duration::from_secs(15))
        .expect("ember exits within 15 s of SIGINT");
    assert!(
        status.success(),
        "ember exit status after SIGINT: {status}\n{}",
        ember.process.log_tail(40)
    );
}
