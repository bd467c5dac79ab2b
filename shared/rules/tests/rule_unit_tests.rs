//! promtool's rule unit-test format: the same files pass (or fail) under `promtool test rules`
//! (Debian `prometheus`) and `ember_rules::run_rule_tests`.

mod common;

use std::path::Path;
use std::process::Command;

use common::data_file;
use ember_rules::run_rule_tests;

fn promtool(file: &Path) -> (bool, String) {
    let dir = file.parent().unwrap_or(Path::new("."));
    let out = Command::new("promtool")
        .current_dir(dir)
        .args(["test", "rules"])
        .arg(file.file_name().unwrap_or_default())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running `promtool` failed ({e}): install it with \
                 `apt-get install -y --no-install-recommends prometheus` (Debian, Prometheus 2.42)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn memory_rule_tests_pass_in_both() {
    let file = data_file("memory-rules.test.yml");
    let report = run_rule_tests(&file).await;
    assert_eq!(report.tests, 2);
    assert!(report.passed(), "ember: {:#?}", report.failures);
    assert!(report.to_string().ends_with("  SUCCESS\n"));
    let (ok, text) = promtool(&file);
    assert!(ok, "promtool: {text}");
}

#[tokio::test]
async fn wrong_expectations_fail_in_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        data_file("memory-rules.yml"),
        dir.path().join("memory-rules.yml"),
    )
    .expect("copy");
    let text = std::fs::read_to_string(data_file("memory-rules.test.yml"))
        .expect("read")
        .replace(
            "Memory usage is 85% on node1:9100",
            "Memory usage is 84% on node1:9100",
        )
        .replace("value: 300", "value: 360");
    let file = dir.path().join("bad.test.yml");
    std::fs::write(&file, text).expect("write");
    let report = run_rule_tests(&file).await;
    assert!(!report.passed());
    // Two alert checks (7m, 11m) and one expression check differ.
    assert_eq!(report.failures.len(), 3, "{:#?}", report.failures);
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.contains("ALERTS_FOR_STATE"))
    );
    let (ok, text) = promtool(&file);
    assert!(!ok, "promtool should fail: {text}");
}
